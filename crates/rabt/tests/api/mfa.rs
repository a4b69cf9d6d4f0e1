//! Two-factor sign-in end to end (API.md §3): enrolment, sign-in with a
//! challenge, codes accepted once, recovery codes, step-up for sensitive
//! actions, admins who must enrol, and the last active admin (§4). Codes are
//! computed here from the enrolment's secret, by RFC 6238.

use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::helpers::{
    PATIENCE,
    auth::{AuthApp, PASSWORD, access, login, signed_in, spawn, token_in_mail},
    problem, wait_until,
};

/// An authenticator app: the codes of one secret, each for a later time step
/// than the one before (the server takes a step's code once).
struct Authenticator {
    totp: totp_rs::Totp,
    last_step: u64,
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

impl Authenticator {
    fn new(secret: &str) -> Self {
        let totp = totp_rs::Builder::new()
            .with_secret(totp_rs::Secret::try_from_base32(secret).unwrap())
            .build()
            .unwrap();
        Self { totp, last_step: 0 }
    }

    /// The code of the next unused step; waits when that step is more than
    /// one step (the allowed drift) ahead of the clock.
    async fn code(&mut self) -> String {
        let step = (self.last_step + 1).max(unix_now() / 30);
        while step > unix_now() / 30 + 1 {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        self.last_step = step;
        self.totp.generate(step * 30).to_string()
    }

    /// A code that is wrong at any step near now.
    fn wrong_code(&self) -> String {
        let now = unix_now() / 30;
        let near: Vec<String> = (now - 2..=now + 2)
            .map(|s| self.totp.generate(s * 30).to_string())
            .collect();
        (0..1_000_000)
            .map(|n| format!("{n:06}"))
            .find(|c| !near.contains(c))
            .unwrap()
    }
}

/// A signed-in user with two-factor sign-in on: their token pair (the
/// session that enrolled, now at aal 2), app and recovery codes.
struct Enrolled {
    pair: Value,
    app: Authenticator,
    recovery_codes: Vec<String>,
}

async fn enroll(env: &AuthApp, pair: &Value) -> Value {
    let response = env
        .app
        .post_json_as(access(pair), "/v1/auth/mfa/totp/enroll", &json!({}))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.json().await.unwrap()
}

async fn enrolled(env: &AuthApp, email: &str) -> Enrolled {
    enrolled_as(env, signed_in(env, email).await).await
}

/// Turns two-factor sign-in on for the owner of `pair`, in that session.
async fn enrolled_as(env: &AuthApp, pair: Value) -> Enrolled {
    let enrolment = enroll(env, &pair).await;
    let mut app = Authenticator::new(enrolment["secret"].as_str().unwrap());
    let code = app.code().await;
    let response = env
        .app
        .post_json_as(
            access(&pair),
            "/v1/auth/mfa/totp/verify",
            &json!({"code": code}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let recovery_codes = body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    Enrolled {
        pair,
        app,
        recovery_codes,
    }
}

/// A password sign-in that stops at the second factor: its `mfa_token`.
async fn first_factor(env: &AuthApp, email: &str) -> String {
    let response = login(env, email, PASSWORD).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["mfa_required"], true, "{body}");
    assert!(body.get("access_token").is_none());
    body["mfa_token"].as_str().unwrap().to_owned()
}

async fn challenge(env: &AuthApp, body: Value) -> reqwest::Response {
    env.app.post_json("/v1/auth/mfa/challenge", &body).await
}

/// The claims of an access token (its signature is the server's business).
fn claims(pair: &Value) -> Value {
    let payload = access(pair).split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

async fn me(env: &AuthApp, pair: &Value) -> Value {
    env.app
        .get_as(access(pair), "/v1/me")
        .await
        .json()
        .await
        .unwrap()
}

async fn audit_count(env: &AuthApp, action: &str) -> i64 {
    sqlx::query_scalar("select count(*) from audit_log where action = $1")
        .bind(action)
        .fetch_one(&env.app.db.admin)
        .await
        .unwrap()
}

/// Subjects of the mail sent so far to `to`.
async fn subjects(env: &AuthApp, to: &str) -> Vec<String> {
    env.app.drain_jobs().await;
    env.smtp
        .messages()
        .into_iter()
        .filter(|m| m.to.iter().any(|t| t == to))
        .filter_map(|m| {
            m.data
                .lines()
                .find_map(|l| l.strip_prefix("Subject: ").map(str::to_owned))
        })
        .collect()
}

#[tokio::test]
async fn enrolment_changes_nothing_until_a_code_verifies_it_then_sign_in_takes_a_challenge() {
    let env = spawn(vec![]).await;
    let pair = signed_in(&env, "ada@rabt.test").await;
    let enrolment = enroll(&env, &pair).await;
    let secret = enrolment["secret"].as_str().unwrap();
    assert_eq!(secret.len(), 32, "160 bits in base32");
    let url = enrolment["otpauth_url"].as_str().unwrap();
    assert!(
        url.starts_with("otpauth://totp/rabt:ada%40rabt.test?"),
        "{url}"
    );
    assert!(url.contains(&format!("secret={secret}")));
    assert!(enrolment["qr_svg"].as_str().unwrap().contains("<svg"));

    // Not yet on: sign-in is as before.
    assert_eq!(
        me(&env, &pair).await["mfa"],
        json!({"enabled": false, "recovery_codes_left": 0})
    );
    let plain: Value = login(&env, "ada@rabt.test", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    assert!(plain["access_token"].is_string());

    let mut app = Authenticator::new(secret);
    let wrong = env
        .app
        .post_json_as(
            access(&pair),
            "/v1/auth/mfa/totp/verify",
            &json!({"code": app.wrong_code()}),
        )
        .await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(problem(wrong).await["code"], "invalid_credentials");
    let verified = env
        .app
        .post_json_as(
            access(&pair),
            "/v1/auth/mfa/totp/verify",
            &json!({"code": app.code().await}),
        )
        .await;
    assert_eq!(verified.status(), 200);
    let codes: Value = verified.json().await.unwrap();
    assert_eq!(codes["recovery_codes"].as_array().unwrap().len(), 10);
    assert_eq!(
        me(&env, &pair).await["mfa"],
        json!({"enabled": true, "recovery_codes_left": 10})
    );

    // Now every password sign-in stops at the second factor.
    let mfa_token = first_factor(&env, "ada@rabt.test").await;
    let signed: Value = challenge(
        &env,
        json!({"mfa_token": mfa_token, "code": app.code().await}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(claims(&signed)["aal"], 2);
    assert_eq!(signed["user"]["mfa"]["enabled"], true);
    let sessions: Vec<Value> = env
        .app
        .get_as(access(&signed), "/v1/auth/sessions")
        .await
        .json()
        .await
        .unwrap();
    let current = sessions.iter().find(|s| s["current"] == true).unwrap();
    assert_eq!(current["aal"], 2);
    // The sessions from before two-factor sign-in stay at aal 1, except the
    // one that verified the enrolment.
    let aals: Vec<i64> = sessions
        .iter()
        .map(|s| s["aal"].as_i64().unwrap())
        .collect();
    assert_eq!(aals.iter().filter(|a| **a == 1).count(), 1, "{sessions:?}");

    // A refresh keeps the session's level.
    let refreshed: Value = env
        .app
        .post_json(
            "/v1/auth/token/refresh",
            &json!({"refresh_token": signed["refresh_token"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(claims(&refreshed)["aal"], 2);

    // The token is spent by its first right code.
    let again = challenge(
        &env,
        json!({"mfa_token": mfa_token, "recovery_code": codes["recovery_codes"][0]}),
    )
    .await;
    assert_eq!(again.status(), 400);
    assert_eq!(problem(again).await["code"], "invalid_token");

    assert!(
        subjects(&env, "ada@rabt.test")
            .await
            .contains(&"Two-factor sign-in is on for your rabt account".to_owned())
    );
    assert_eq!(audit_count(&env, "mfa_enabled").await, 1);
    assert_eq!(audit_count(&env, "mfa_failed").await, 1);
    assert_eq!(audit_count(&env, "mfa_succeeded").await, 1);
}

#[tokio::test]
async fn a_code_is_accepted_once_and_a_wrong_code_is_refused() {
    let env = spawn(vec![]).await;
    let Enrolled {
        mut app,
        recovery_codes,
        ..
    } = enrolled(&env, "ada@rabt.test").await;

    let first = first_factor(&env, "ada@rabt.test").await;
    let wrong = challenge(&env, json!({"mfa_token": first, "code": app.wrong_code()})).await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(problem(wrong).await["code"], "invalid_credentials");
    let code = app.code().await;
    let right = challenge(&env, json!({"mfa_token": first, "code": code})).await;
    assert_eq!(right.status(), 200);

    // The same code again, shoulder-surfed: refused within its window.
    let second = first_factor(&env, "ada@rabt.test").await;
    let replay = challenge(&env, json!({"mfa_token": second, "code": code})).await;
    assert_eq!(replay.status(), 401);
    assert_eq!(problem(replay).await["code"], "invalid_credentials");
    // The token survives wrong codes.
    let next = challenge(
        &env,
        json!({"mfa_token": second, "recovery_code": recovery_codes[0]}),
    )
    .await;
    assert_eq!(next.status(), 200);

    let failures: Vec<Value> = sqlx::query_scalar(
        "select details from audit_log where action = 'mfa_failed' order by at, id",
    )
    .fetch_all(&env.app.db.admin)
    .await
    .unwrap();
    assert_eq!(failures.len(), 2);
    assert_eq!(failures[0]["via"], "password");
    assert_eq!(failures[0]["factor"], "totp");
}

#[tokio::test]
async fn recovery_codes_work_once_each_and_their_use_is_audited_and_mailed() {
    let env = spawn(vec![]).await;
    let Enrolled {
        pair,
        mut app,
        recovery_codes,
    } = enrolled(&env, "ada@rabt.test").await;

    let token = first_factor(&env, "ada@rabt.test").await;
    let used = challenge(
        &env,
        json!({"mfa_token": token, "recovery_code": recovery_codes[0]}),
    )
    .await;
    assert_eq!(used.status(), 200);
    let signed: Value = used.json().await.unwrap();
    assert_eq!(claims(&signed)["aal"], 2);
    assert_eq!(signed["user"]["mfa"]["recovery_codes_left"], 9);

    let token = first_factor(&env, "ada@rabt.test").await;
    let spent = challenge(
        &env,
        json!({"mfa_token": token, "recovery_code": recovery_codes[0]}),
    )
    .await;
    assert_eq!(spent.status(), 401);
    // However it is typed.
    let typed = recovery_codes[1].to_uppercase().replace('-', " ");
    let other = challenge(&env, json!({"mfa_token": token, "recovery_code": typed})).await;
    assert_eq!(other.status(), 200);

    assert_eq!(audit_count(&env, "recovery_code_used").await, 2);
    let mails = subjects(&env, "ada@rabt.test").await;
    assert_eq!(
        mails
            .iter()
            .filter(|s| *s == "A recovery code of your rabt account was used")
            .count(),
        2
    );

    // A fresh set voids the old one.
    let fresh = env
        .app
        .post_json_as(
            access(&pair),
            "/v1/auth/mfa/recovery-codes",
            &json!({"code": app.code().await}),
        )
        .await;
    assert_eq!(fresh.status(), 200);
    let fresh: Value = fresh.json().await.unwrap();
    let token = first_factor(&env, "ada@rabt.test").await;
    let old = challenge(
        &env,
        json!({"mfa_token": token, "recovery_code": recovery_codes[2]}),
    )
    .await;
    assert_eq!(old.status(), 401);
    let new = challenge(
        &env,
        json!({"mfa_token": token, "recovery_code": fresh["recovery_codes"][0]}),
    )
    .await;
    assert_eq!(new.status(), 200);
}

#[tokio::test]
async fn wrong_codes_are_limited_per_challenge_and_per_account() {
    let env = spawn(vec![]).await;
    let Enrolled { app, .. } = enrolled(&env, "ada@rabt.test").await;
    let token = first_factor(&env, "ada@rabt.test").await;
    for _ in 0..5 {
        let wrong = challenge(&env, json!({"mfa_token": token, "code": app.wrong_code()})).await;
        assert_eq!(wrong.status(), 401);
    }
    let limited = challenge(&env, json!({"mfa_token": token, "code": app.wrong_code()})).await;
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    assert_eq!(problem(limited).await["code"], "rate_limited");
    // A new challenge of the same account is limited too.
    let fresh = first_factor(&env, "ada@rabt.test").await;
    let limited = challenge(&env, json!({"mfa_token": fresh, "code": app.wrong_code()})).await;
    assert_eq!(limited.status(), 429);
    assert_eq!(audit_count(&env, "mfa_failed").await, 5);
}

#[tokio::test]
async fn every_flow_that_hands_out_tokens_asks_for_the_second_factor() {
    let env = spawn(vec![]).await;
    let Enrolled {
        mut app,
        recovery_codes,
        ..
    } = enrolled(&env, "ada@rabt.test").await;
    let pending = |response: Value| {
        assert_eq!(response["mfa_required"], true, "{response}");
        assert!(response.get("access_token").is_none());
        response["mfa_token"].as_str().unwrap().to_owned()
    };

    // Password reset: the password changes, the sign-in waits.
    let forgot = env
        .app
        .post_json(
            "/v1/auth/password/forgot",
            &json!({"email": "ada@rabt.test"}),
        )
        .await;
    assert_eq!(forgot.status(), 202);
    env.app.drain_jobs().await;
    let token = token_in_mail(&env.smtp, "ada@rabt.test", "/auth/reset-password");
    let reset: Value = env
        .app
        .post_json(
            "/v1/auth/password/reset",
            &json!({"token": token, "password": PASSWORD}),
        )
        .await
        .json()
        .await
        .unwrap();
    let mfa_token = pending(reset);
    let done = challenge(
        &env,
        json!({"mfa_token": mfa_token, "code": app.code().await}),
    )
    .await;
    assert_eq!(done.status(), 200);

    // A provider sign-in's one-time code (as the callback stores it).
    let code = "oauth-code-for-ada";
    sqlx::query(
        "insert into one_time_tokens (user_id, purpose, token_hash, expires_at) \
         select id, 'oauth_code', sha256(convert_to($1, 'UTF8')), now() + interval '1 minute' \
         from users where email = 'ada@rabt.test'",
    )
    .bind(code)
    .execute(&env.app.db.admin)
    .await
    .unwrap();
    let exchanged: Value = env
        .app
        .post_json("/v1/auth/oauth/exchange", &json!({"code": code}))
        .await
        .json()
        .await
        .unwrap();
    let mfa_token = pending(exchanged);
    let done = challenge(
        &env,
        json!({"mfa_token": mfa_token, "recovery_code": recovery_codes[0]}),
    )
    .await;
    assert_eq!(done.status(), 200);

    // Email verification.
    let code = "verify-code-for-ada";
    sqlx::query(
        "insert into one_time_tokens (user_id, purpose, token_hash, expires_at) \
         select id, 'verify_email', sha256(convert_to($1, 'UTF8')), now() + interval '1 hour' \
         from users where email = 'ada@rabt.test'",
    )
    .bind(code)
    .execute(&env.app.db.admin)
    .await
    .unwrap();
    let verified: Value = env
        .app
        .post_json("/v1/auth/verify-email", &json!({"token": code}))
        .await
        .json()
        .await
        .unwrap();
    pending(verified);
}

#[tokio::test]
async fn step_up_refuses_an_aal1_or_stale_aal2_session_and_accepts_a_fresh_one() {
    let env = spawn(vec![]).await;
    let Enrolled { pair, mut app, .. } = enrolled(&env, "ada@rabt.test").await;
    let change = |token: String, current: &'static str, new: &'static str| {
        let env = &env;
        async move {
            env.app
                .post_json_as(
                    &token,
                    "/v1/auth/password/change",
                    &json!({"current_password": current, "new_password": new}),
                )
                .await
        }
    };

    // The enrolling session proved the factor just now: fresh enough.
    let first = change(access(&pair).to_owned(), PASSWORD, "marmalade-compass-17").await;
    assert_eq!(first.status(), 204);

    // A session whose second factor is older than 10 minutes: refused.
    sqlx::query("update sessions set mfa_at = now() - interval '11 minutes' where aal = 2")
        .execute(&env.app.db.admin)
        .await
        .unwrap();
    let stale = change(
        access(&pair).to_owned(),
        "marmalade-compass-17",
        "saffron-lantern-23",
    )
    .await;
    assert_eq!(stale.status(), 403);
    let body = problem(stale).await;
    assert_eq!(body["code"], "mfa_required");
    let mfa_token = body["mfa_token"].as_str().unwrap().to_owned();

    // The challenge raises this same session and hands out its next tokens.
    let raised = challenge(
        &env,
        json!({"mfa_token": mfa_token, "code": app.code().await}),
    )
    .await;
    assert_eq!(raised.status(), 200);
    let raised: Value = raised.json().await.unwrap();
    assert_eq!(claims(&raised)["sid"], claims(&pair)["sid"]);
    assert_eq!(claims(&raised)["aal"], 2);
    let second = change(
        access(&raised).to_owned(),
        "marmalade-compass-17",
        "saffron-lantern-23",
    )
    .await;
    assert_eq!(second.status(), 204);
    assert_eq!(audit_count(&env, "password_changed").await, 2);
}

#[tokio::test]
async fn step_up_refuses_a_session_signed_in_before_two_factor_sign_in_was_on() {
    let env = spawn(vec![]).await;
    // A session of ada from before she turned it on, at aal 1.
    let pair = signed_in(&env, "ada@rabt.test").await;
    let older: Value = login(&env, "ada@rabt.test", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(claims(&older)["aal"], 1);
    let enrolment = enroll(&env, &pair).await;
    let mut app = Authenticator::new(enrolment["secret"].as_str().unwrap());
    let verified = env
        .app
        .post_json_as(
            access(&pair),
            "/v1/auth/mfa/totp/verify",
            &json!({"code": app.code().await}),
        )
        .await;
    assert_eq!(verified.status(), 200);

    for (method, path, body) in [
        (
            "POST",
            "/v1/auth/password/change",
            json!({"current_password": PASSWORD, "new_password": "marmalade-compass-17"}),
        ),
        (
            "POST",
            "/v1/auth/mfa/recovery-codes",
            json!({"code": "000000"}),
        ),
        ("DELETE", "/v1/auth/mfa/totp", json!({"code": "000000"})),
        ("POST", "/v1/auth/mfa/totp/enroll", json!({})),
    ] {
        let response = env
            .app
            .client
            .request(method.parse().unwrap(), env.app.url(path))
            .bearer_auth(access(&older))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{method} {path}");
        let body = problem(response).await;
        assert_eq!(body["code"], "mfa_required", "{method} {path}");
        assert!(body["mfa_token"].is_string());
    }
    // Nothing changed.
    assert_eq!(audit_count(&env, "password_changed").await, 0);
}

#[tokio::test]
async fn turning_it_off_needs_a_code_voids_the_recovery_codes_and_is_mailed() {
    let env = spawn(vec![]).await;
    let Enrolled {
        pair,
        mut app,
        recovery_codes,
    } = enrolled(&env, "ada@rabt.test").await;
    let off = |body: Value| {
        let env = &env;
        let token = access(&pair).to_owned();
        async move {
            env.app
                .client
                .delete(env.app.url("/v1/auth/mfa/totp"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let wrong = off(json!({"code": app.wrong_code()})).await;
    assert_eq!(wrong.status(), 401);
    let both = off(json!({"code": "123456", "recovery_code": recovery_codes[0]})).await;
    assert_eq!(both.status(), 422);
    assert_eq!(off(json!({"code": app.code().await})).await.status(), 204);
    assert_eq!(
        me(&env, &pair).await["mfa"],
        json!({"enabled": false, "recovery_codes_left": 0})
    );
    let again = off(json!({"code": "000000"})).await;
    assert_eq!(again.status(), 409);

    // Sign-in is a token pair again.
    let plain: Value = login(&env, "ada@rabt.test", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(claims(&plain)["aal"], 1);
    assert!(
        subjects(&env, "ada@rabt.test")
            .await
            .contains(&"Two-factor sign-in is off for your rabt account".to_owned())
    );
    let left: i64 = sqlx::query_scalar("select count(*) from recovery_codes")
        .fetch_one(&env.app.db.admin)
        .await
        .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn the_totp_secret_is_not_stored_in_plain_text() {
    let env = spawn(vec![]).await;
    let pair = signed_in(&env, "ada@rabt.test").await;
    let enrolment = enroll(&env, &pair).await;
    let secret = enrolment["secret"].as_str().unwrap();
    let raw = totp_rs::Secret::try_from_base32(secret).unwrap();
    let (id, sealed, key_id): (uuid::Uuid, Vec<u8>, String) =
        sqlx::query_as("select id, secret_sealed, secret_key_id from totp_factors")
            .fetch_one(&env.app.db.admin)
            .await
            .unwrap();
    let raw = raw.as_ref().to_vec();
    assert!(!sealed.windows(raw.len()).any(|w| w == raw.as_slice()));
    assert!(!sealed.windows(secret.len()).any(|w| w == secret.as_bytes()));
    let text: String = sqlx::query_scalar("select row_to_json(f)::text from totp_factors f")
        .fetch_one(&env.app.db.admin)
        .await
        .unwrap();
    assert!(!text.contains(secret) && !text.contains(&hex::encode(&raw)));
    // It is the secret, sealed under the configured key for this row only.
    assert_eq!(key_id, env.app.state.keyring.current_id());
    let opened = env
        .app
        .state
        .keyring
        .open(
            &rabt::crypto::Sealed {
                bytes: sealed,
                key_id,
            },
            &rabt::crypto::totp_secret_context(id),
        )
        .unwrap();
    assert_eq!(opened, raw);
    // Recovery codes are stored as hashes only.
    let Enrolled { recovery_codes, .. } = enrolled(&env, "bob@rabt.test").await;
    let stored: String =
        sqlx::query_scalar("select string_agg(row_to_json(r)::text, '') from recovery_codes r")
            .fetch_one(&env.app.db.admin)
            .await
            .unwrap();
    for code in &recovery_codes {
        assert!(!stored.contains(code) && !stored.contains(&code.replace('-', "")));
    }
}

// Admins ------------------------------------------------------------------------

async fn make_admin(env: &AuthApp, email: &str) {
    assert!(
        rabt::roles::grant_by_email(env.app.app_db(), email, "admin")
            .await
            .unwrap()
    );
}

fn user_id(pair: &Value) -> String {
    pair["user"]["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn admins_without_two_factor_sign_in_are_sent_to_enrol_when_the_deployment_says_so() {
    let env = spawn(vec![("mfa_required_for_admins", "true".into())]).await;
    let admin = signed_in(&env, "admin@rabt.test").await;
    make_admin(&env, "admin@rabt.test").await;
    let eve = signed_in(&env, "eve@rabt.test").await;
    let path = format!("/v1/users/{}", user_id(&eve));

    let refused = env
        .app
        .patch_json_as(access(&admin), &path, &json!({"headline": "Checked"}))
        .await;
    assert_eq!(refused.status(), 403);
    let body = problem(refused).await;
    assert_eq!(body["code"], "mfa_required");
    assert!(
        body["detail"].as_str().unwrap().contains("enroll"),
        "{body}"
    );
    // What every member may do is not affected.
    assert_eq!(env.app.get_as(access(&admin), "/v1/me").await.status(), 200);

    let enrolment = enroll(&env, &admin).await;
    let mut app = Authenticator::new(enrolment["secret"].as_str().unwrap());
    let verified = env
        .app
        .post_json_as(
            access(&admin),
            "/v1/auth/mfa/totp/verify",
            &json!({"code": app.code().await}),
        )
        .await;
    assert_eq!(verified.status(), 200);
    let allowed = env
        .app
        .patch_json_as(access(&admin), &path, &json!({"headline": "Checked"}))
        .await;
    assert_eq!(allowed.status(), 200);
}

#[tokio::test]
async fn without_the_setting_admins_need_no_second_factor() {
    let env = spawn(vec![]).await;
    let admin = signed_in(&env, "admin@rabt.test").await;
    make_admin(&env, "admin@rabt.test").await;
    let eve = signed_in(&env, "eve@rabt.test").await;
    let path = format!("/v1/users/{}", user_id(&eve));
    let allowed = env
        .app
        .patch_json_as(access(&admin), &path, &json!({"headline": "Checked"}))
        .await;
    assert_eq!(allowed.status(), 200);
}

#[tokio::test]
async fn role_assignment_needs_a_recent_second_factor_of_an_admin_who_has_it_on() {
    let env = spawn(vec![]).await;
    let admin = signed_in(&env, "admin@rabt.test").await;
    // Before the session's grants are first read (and cached).
    make_admin(&env, "admin@rabt.test").await;
    let Enrolled { pair, mut app, .. } = enrolled_as(&env, admin).await;
    let eve = signed_in(&env, "eve@rabt.test").await;
    let path = format!("/v1/users/{}/roles", user_id(&eve));
    sqlx::query("update sessions set mfa_at = now() - interval '11 minutes' where aal = 2")
        .execute(&env.app.db.admin)
        .await
        .unwrap();
    let refused = env
        .app
        .put_json_as(access(&pair), &path, &json!({"roles": ["moderator"]}))
        .await;
    assert_eq!(refused.status(), 403);
    let body = problem(refused).await;
    assert_eq!(body["code"], "mfa_required");
    let raised: Value = challenge(
        &env,
        json!({"mfa_token": body["mfa_token"], "code": app.code().await}),
    )
    .await
    .json()
    .await
    .unwrap();
    let granted = env
        .app
        .put_json_as(access(&raised), &path, &json!({"roles": ["moderator"]}))
        .await;
    assert_eq!(granted.status(), 200);
}

#[tokio::test]
async fn the_last_active_admin_keeps_the_role() {
    let env = spawn(vec![]).await;
    let ada = signed_in(&env, "ada@rabt.test").await;
    make_admin(&env, "ada@rabt.test").await;
    let ada_id = user_id(&ada);

    let demoted = env
        .app
        .put_json_as(
            access(&ada),
            &format!("/v1/users/{ada_id}/roles"),
            &json!({"roles": []}),
        )
        .await;
    assert_eq!(demoted.status(), 409);
    assert_eq!(problem(demoted).await["code"], "conflict");
    let suspended = env
        .app
        .patch_json_as(
            access(&ada),
            &format!("/v1/users/{ada_id}"),
            &json!({"suspended": true}),
        )
        .await;
    assert_eq!(suspended.status(), 409);
    let deleted = env
        .app
        .delete_as(access(&ada), &format!("/v1/users/{ada_id}"))
        .await;
    assert_eq!(deleted.status(), 409);
    let revoked = rabt::roles::revoke_by_email(env.app.app_db(), "ada@rabt.test", "admin").await;
    assert!(
        revoked
            .unwrap_err()
            .to_string()
            .contains("last active admin"),
    );
    let erased = sqlx::query("delete from users where email = 'ada@rabt.test'")
        .execute(&env.app.db.admin)
        .await;
    assert!(erased.is_err());
    assert_eq!(me(&env, &ada).await["roles"], json!(["member", "admin"]));

    // With a second admin, the first may go.
    let bob = signed_in(&env, "bob@rabt.test").await;
    make_admin(&env, "bob@rabt.test").await;
    let demoted = env
        .app
        .put_json_as(
            access(&bob),
            &format!("/v1/users/{ada_id}/roles"),
            &json!({"roles": []}),
        )
        .await;
    assert_eq!(demoted.status(), 200);
    // Now bob is the last active admin.
    let bob_id = user_id(&bob);
    let alone = env
        .app
        .delete_as(access(&bob), &format!("/v1/users/{bob_id}"))
        .await;
    assert_eq!(alone.status(), 409);
}

#[tokio::test]
async fn two_parallel_demotions_of_the_last_two_admins_cannot_both_pass() {
    let env = spawn(vec![]).await;
    let ada = signed_in(&env, "ada@rabt.test").await;
    let bob = signed_in(&env, "bob@rabt.test").await;
    make_admin(&env, "ada@rabt.test").await;
    make_admin(&env, "bob@rabt.test").await;
    let demote = |by: &Value, whom: &Value| {
        let (token, path) = (
            access(by).to_owned(),
            format!("/v1/users/{}/roles", user_id(whom)),
        );
        let env = &env;
        async move {
            env.app
                .put_json_as(&token, &path, &json!({"roles": []}))
                .await
                .status()
                .as_u16()
        }
    };
    let (a, b) = tokio::join!(demote(&ada, &bob), demote(&bob, &ada));
    let mut statuses = vec![a, b];
    statuses.sort_unstable();
    assert_eq!(statuses, vec![200, 409]);
    let admins: i64 =
        sqlx::query_scalar("select count(*) from user_roles where role_name = 'admin'")
            .fetch_one(&env.app.db.admin)
            .await
            .unwrap();
    assert_eq!(admins, 1);
}

#[tokio::test]
async fn the_database_serialises_demotions_so_the_second_sees_the_first() {
    let env = spawn(vec![]).await;
    let ada = env.app.insert_user("ada@rabt.test", "Ada", "public").await;
    let bob = env.app.insert_user("bob@rabt.test", "Bob", "public").await;
    sqlx::query("insert into user_roles (user_id, role_name) values ($1, 'admin'), ($2, 'admin')")
        .bind(ada)
        .bind(bob)
        .execute(&env.app.db.admin)
        .await
        .unwrap();
    let db = env.app.app_db().clone();
    let mut first = db.begin(&rabt::db::Actor::Service).await.unwrap();
    sqlx::query("delete from user_roles where user_id = $1")
        .bind(ada)
        .execute(&mut *first)
        .await
        .unwrap();
    // The second waits for the first's lock, then counts what it committed.
    let second = tokio::spawn(async move {
        let mut tx = db.begin(&rabt::db::Actor::Service).await.unwrap();
        sqlx::query("update users set suspended_at = now() where id = $1")
            .bind(bob)
            .execute(&mut *tx)
            .await
            .map(|_| ())
    });
    wait_until(PATIENCE, "the second demotion waits", async || {
        let waiting: i64 = sqlx::query_scalar(
            "select count(*) from pg_locks where locktype = 'advisory' and not granted",
        )
        .fetch_one(&env.app.db.admin)
        .await
        .unwrap();
        waiting > 0
    })
    .await;
    first.commit().await.unwrap();
    let err = second.await.unwrap().unwrap_err();
    assert_eq!(
        err.as_database_error().and_then(|e| e.constraint()),
        Some("users_last_active_admin")
    );
}
