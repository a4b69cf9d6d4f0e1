//! Authentication end to end (API.md §3), with mail read from a real SMTP
//! server and sessions checked through real Redis.

use serde_json::{Value, json};

use crate::helpers::{
    AppOptions, PATIENCE,
    auth::{AuthApp, PASSWORD, access, login, signed_in, signup, spawn, token_in_mail, unfold},
    problem, spawn_app_with, wait_until,
};

async fn refresh(env: &AuthApp, token: &str) -> reqwest::Response {
    env.app
        .post_json("/v1/auth/token/refresh", &json!({"refresh_token": token}))
        .await
}

#[tokio::test]
async fn signup_mails_a_link_that_verifies_the_email_and_signs_in() {
    let env = spawn(vec![]).await;
    let pair = signed_in(&env, "ada@rabt.test").await;
    assert_eq!(pair["token_type"], "bearer");
    assert_eq!(pair["expires_in"], 900);
    assert!(pair["refresh_token"].as_str().unwrap().len() >= 43);
    assert_eq!(pair["user"]["email"], "ada@rabt.test");
    assert_eq!(pair["user"]["email_verified"], true);

    let me: Value = env
        .app
        .get_as(access(&pair), "/v1/me")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["email"], "ada@rabt.test");
    assert_eq!(me["roles"], json!(["member"]));

    let mail = &env.smtp.messages()[0];
    assert!(mail.data.contains("Message-ID: <"), "a stable Message-ID");
    assert!(mail.data.contains("text/html") && mail.data.contains("text/plain"));
}

#[tokio::test]
async fn a_verification_token_works_once() {
    let env = spawn(vec![]).await;
    signup(&env, "ada@rabt.test").await;
    let token = token_in_mail(&env.smtp, "ada@rabt.test", "/auth/verify-email");
    let first = env
        .app
        .post_json("/v1/auth/verify-email", &json!({"token": token}))
        .await;
    assert_eq!(first.status(), 200);
    let again = env
        .app
        .post_json("/v1/auth/verify-email", &json!({"token": token}))
        .await;
    assert_eq!(again.status(), 400);
    assert_eq!(problem(again).await["code"], "invalid_token");
    let forged = env
        .app
        .post_json("/v1/auth/verify-email", &json!({"token": "nope"}))
        .await;
    assert_eq!(problem(forged).await["code"], "invalid_token");
}

#[tokio::test]
async fn signup_with_a_taken_email_answers_the_same_and_warns_the_owner() {
    let env = spawn(vec![]).await;
    signup(&env, "ada@rabt.test").await;
    let response = env
        .app
        .post_json(
            "/v1/auth/signup",
            &json!({"email": "ADA@rabt.test", "password": "another-long-pass-9", "display_name": "Eve"}),
        )
        .await;
    assert_eq!(response.status(), 202);
    env.app.drain_jobs().await;
    let mails = env.smtp.messages();
    assert_eq!(mails.len(), 2);
    assert!(unfold(&mails[1].data).contains("Someone tried to sign up"));
    assert_eq!(mails[1].to, vec!["ada@rabt.test"]);
    let users: i64 = sqlx::query_scalar("select count(*) from users")
        .fetch_one(&env.app.db.admin)
        .await
        .unwrap();
    assert_eq!(users, 1);
}

#[tokio::test]
async fn signup_refuses_bad_input_naming_each_field() {
    let env = spawn(vec![]).await;
    let response = env
        .app
        .post_json(
            "/v1/auth/signup",
            &json!({"email": "not-an-email", "password": "password1", "display_name": ""}),
        )
        .await;
    assert_eq!(response.status(), 422);
    let body = problem(response).await;
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, vec!["email", "password", "display_name"]);
    assert_eq!(body["errors"][1]["code"], "too_common");
}

#[tokio::test]
async fn login_tells_apart_only_what_is_safe_to_tell() {
    let env = spawn(vec![]).await;
    signup(&env, "ada@rabt.test").await;

    let unverified = login(&env, "ada@rabt.test", PASSWORD).await;
    assert_eq!(unverified.status(), 403);
    assert_eq!(problem(unverified).await["code"], "email_not_verified");

    let wrong = login(&env, "ada@rabt.test", "wrong-password-123").await;
    assert_eq!(problem(wrong).await["code"], "invalid_credentials");
    let unknown = login(&env, "nobody@rabt.test", PASSWORD).await;
    assert_eq!(unknown.status(), 401);
    assert_eq!(problem(unknown).await["code"], "invalid_credentials");

    let token = token_in_mail(&env.smtp, "ada@rabt.test", "/auth/verify-email");
    env.app
        .post_json("/v1/auth/verify-email", &json!({"token": token}))
        .await;
    let ok = login(&env, "Ada@Rabt.test", PASSWORD).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["cache-control"], "no-store");

    sqlx::query("update users set suspended_at = now()")
        .execute(&env.app.db.admin)
        .await
        .unwrap();
    let suspended = login(&env, "ada@rabt.test", PASSWORD).await;
    assert_eq!(problem(suspended).await["code"], "account_suspended");
}

#[tokio::test]
async fn repeated_logins_for_one_account_are_rate_limited() {
    let env = spawn(vec![]).await;
    let mut last = None;
    for _ in 0..11 {
        last = Some(login(&env, "target@rabt.test", "guess-guess-guess").await);
    }
    let response = last.unwrap();
    assert_eq!(response.status(), 429);
    assert!(
        response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_eq!(problem(response).await["code"], "rate_limited");
}

#[tokio::test]
async fn a_refresh_rotates_the_token_and_keeps_the_session() {
    let env = spawn(vec![]).await;
    let pair = signed_in(&env, "ada@rabt.test").await;
    let first = pair["refresh_token"].as_str().unwrap();
    let response = refresh(&env, first).await;
    assert_eq!(response.status(), 200);
    let next: Value = response.json().await.unwrap();
    assert_ne!(next["refresh_token"], pair["refresh_token"]);
    let second = refresh(&env, next["refresh_token"].as_str().unwrap()).await;
    assert_eq!(second.status(), 200);
    let sessions: Vec<Value> = env
        .app
        .get_as(access(&next), "/v1/auth/sessions")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["current"], true);
}

#[tokio::test]
async fn refresh_token_reuse_after_the_grace_window_revokes_the_session() {
    let env = spawn(vec![("refresh_grace_secs", "0".into())]).await;
    let pair = signed_in(&env, "ada@rabt.test").await;
    let spent = pair["refresh_token"].as_str().unwrap();
    let next: Value = refresh(&env, spent).await.json().await.unwrap();
    // The window is zero and the server measures it by the database's clock:
    // replay once that clock has moved past the spend.
    wait_until(
        PATIENCE,
        "the spent token to be past its grace window",
        async || {
            sqlx::query_scalar("select exists(select 1 from refresh_tokens where used_at < now())")
                .fetch_one(&env.app.db.admin)
                .await
                .unwrap()
        },
    )
    .await;

    let replay = refresh(&env, spent).await;
    assert_eq!(replay.status(), 401);
    assert_eq!(problem(replay).await["code"], "refresh_token_reused");

    // Everything the spent token led to is dead: the successor and the access tokens.
    let successor = refresh(&env, next["refresh_token"].as_str().unwrap()).await;
    assert_eq!(successor.status(), 401);
    let me = env.app.get_as(access(&next), "/v1/me").await;
    assert_eq!(me.status(), 401);
    let audited: i64 =
        sqlx::query_scalar("select count(*) from audit_log where action = 'refresh_token_reused'")
            .fetch_one(&env.app.db.admin)
            .await
            .unwrap();
    assert_eq!(audited, 1);
}

#[tokio::test]
async fn two_tabs_refreshing_one_token_at_once_both_stay_signed_in() {
    let env = spawn(vec![]).await;
    let pair = signed_in(&env, "ada@rabt.test").await;
    let token = pair["refresh_token"].as_str().unwrap();
    let (a, b) = tokio::join!(refresh(&env, token), refresh(&env, token));
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    let (a, b): (Value, Value) = (a.json().await.unwrap(), b.json().await.unwrap());
    for tab in [&a, &b] {
        assert_eq!(env.app.get_as(access(tab), "/v1/me").await.status(), 200);
        let onward = refresh(&env, tab["refresh_token"].as_str().unwrap()).await;
        assert_eq!(onward.status(), 200);
    }
    let sessions: i64 =
        sqlx::query_scalar("select count(*) from sessions where revoked_at is null")
            .fetch_one(&env.app.db.admin)
            .await
            .unwrap();
    assert_eq!(sessions, 1, "one session for both tabs");
}

#[tokio::test]
async fn a_logout_on_one_instance_is_refused_within_a_second_by_another() {
    let env = spawn(vec![]).await;
    let pair = signed_in(&env, "ada@rabt.test").await;
    let (second, stop) = env.app.second_instance().await;
    let me_on_second = || {
        env.app
            .client
            .get(format!("http://{second}/v1/me"))
            .bearer_auth(access(&pair))
            .send()
    };
    // The second instance has checked (and cached) the session as alive.
    assert_eq!(me_on_second().await.unwrap().status(), 200);

    let logout = env
        .app
        .post_json_as(
            access(&pair),
            "/v1/auth/logout",
            &json!({"scope": "session"}),
        )
        .await;
    assert_eq!(logout.status(), 204);
    // The second instance holds its answer for at most a second and drops
    // it when NOTIFY rabt_sessions arrives (milliseconds): refused within
    // that second, whatever the machine's load.
    let deadline = std::time::Instant::now() + rabt::auth::sessions::HELD_FOR;
    let status = loop {
        let status = me_on_second().await.unwrap().status();
        if status == 401 || std::time::Instant::now() > deadline {
            break status;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(status, 401, "still served a second after the logout");
    stop.cancel();
}

#[tokio::test]
async fn logout_all_ends_every_session_and_a_session_can_be_revoked_by_id() {
    let env = spawn(vec![]).await;
    let first = signed_in(&env, "ada@rabt.test").await;
    let second: Value = login(&env, "ada@rabt.test", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let third: Value = login(&env, "ada@rabt.test", PASSWORD)
        .await
        .json()
        .await
        .unwrap();

    let sessions: Vec<Value> = env
        .app
        .get_as(access(&first), "/v1/auth/sessions")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sessions.len(), 3);
    let victim = sessions.iter().find(|s| s["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoked = env
        .app
        .client
        .delete(env.app.url(&format!("/v1/auth/sessions/{victim}")))
        .bearer_auth(access(&first))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    let live: Vec<Value> = env
        .app
        .get_as(access(&first), "/v1/auth/sessions")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(live.len(), 2);

    let all = env
        .app
        .post_json_as(access(&first), "/v1/auth/logout", &json!({"scope": "all"}))
        .await;
    assert_eq!(all.status(), 204);
    for pair in [&first, &second, &third] {
        assert_eq!(env.app.get_as(access(pair), "/v1/me").await.status(), 401);
    }
}

#[tokio::test]
async fn someone_elses_session_cannot_be_revoked() {
    let env = spawn(vec![]).await;
    let ada = signed_in(&env, "ada@rabt.test").await;
    let eve = signed_in(&env, "eve@rabt.test").await;
    let ada_sessions: Vec<Value> = env
        .app
        .get_as(access(&ada), "/v1/auth/sessions")
        .await
        .json()
        .await
        .unwrap();
    let id = ada_sessions[0]["id"].as_str().unwrap();
    let attempt = env
        .app
        .client
        .delete(env.app.url(&format!("/v1/auth/sessions/{id}")))
        .bearer_auth(access(&eve))
        .send()
        .await
        .unwrap();
    assert_eq!(attempt.status(), 404);
    assert_eq!(env.app.get_as(access(&ada), "/v1/me").await.status(), 200);
}

#[tokio::test]
async fn a_password_reset_link_sets_a_new_password_and_ends_other_sessions() {
    let env = spawn(vec![]).await;
    let old = signed_in(&env, "ada@rabt.test").await;
    let forgot = env
        .app
        .post_json(
            "/v1/auth/password/forgot",
            &json!({"email": "ada@rabt.test"}),
        )
        .await;
    assert_eq!(forgot.status(), 202);
    let unknown = env
        .app
        .post_json(
            "/v1/auth/password/forgot",
            &json!({"email": "nobody@rabt.test"}),
        )
        .await;
    assert_eq!(unknown.status(), 202);
    env.app.drain_jobs().await;
    let token = token_in_mail(&env.smtp, "ada@rabt.test", "/auth/reset-password");

    let weak = env
        .app
        .post_json(
            "/v1/auth/password/reset",
            &json!({"token": token, "password": "short"}),
        )
        .await;
    assert_eq!(weak.status(), 422);
    let reset = env
        .app
        .post_json(
            "/v1/auth/password/reset",
            &json!({"token": token, "password": "new-and-long-password-7"}),
        )
        .await;
    assert_eq!(reset.status(), 200);
    let again = env
        .app
        .post_json(
            "/v1/auth/password/reset",
            &json!({"token": token, "password": "another-long-password-8"}),
        )
        .await;
    assert_eq!(problem(again).await["code"], "invalid_token");

    assert_eq!(env.app.get_as(access(&old), "/v1/me").await.status(), 401);
    assert_eq!(login(&env, "ada@rabt.test", PASSWORD).await.status(), 401);
    assert_eq!(
        login(&env, "ada@rabt.test", "new-and-long-password-7")
            .await
            .status(),
        200
    );
    env.app.drain_jobs().await;
    let last = env.smtp.messages().last().cloned().unwrap();
    assert!(unfold(&last.data).contains("password was changed"));
}

#[tokio::test]
async fn a_password_change_needs_the_current_one_and_ends_other_sessions() {
    let env = spawn(vec![]).await;
    let here = signed_in(&env, "ada@rabt.test").await;
    let elsewhere: Value = login(&env, "ada@rabt.test", PASSWORD)
        .await
        .json()
        .await
        .unwrap();

    let wrong = env
        .app
        .post_json_as(
            access(&here),
            "/v1/auth/password/change",
            &json!({"current_password": "not-it-at-all", "new_password": "new-and-long-password-7"}),
        )
        .await;
    assert_eq!(problem(wrong).await["code"], "invalid_credentials");

    let changed = env
        .app
        .post_json_as(
            access(&here),
            "/v1/auth/password/change",
            &json!({"current_password": PASSWORD, "new_password": "new-and-long-password-7"}),
        )
        .await;
    assert_eq!(changed.status(), 204);
    assert_eq!(env.app.get_as(access(&here), "/v1/me").await.status(), 200);
    assert_eq!(
        env.app.get_as(access(&elsewhere), "/v1/me").await.status(),
        401
    );
}

#[tokio::test]
async fn requests_without_a_valid_token_are_refused_not_anonymous() {
    let env = spawn(vec![]).await;
    let none = env.app.get("/v1/me").await;
    assert_eq!(problem(none).await["code"], "unauthorized");
    let garbage = env.app.get_as("not.a.jwt", "/v1/me").await;
    assert_eq!(garbage.status(), 401);
}

#[tokio::test]
async fn a_login_rehashes_a_password_stored_with_old_parameters() {
    use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, Version};
    let env = spawn(vec![]).await;
    let weak = Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(8 * 1024, 1, 1, None).unwrap(),
    )
    .hash_password(PASSWORD.as_bytes())
    .unwrap()
    .to_string();
    sqlx::query(
        "insert into users (email, display_name, password_hash, email_verified_at) \
         values ('old@rabt.test', 'Old', $1, now())",
    )
    .bind(&weak)
    .execute(&env.app.db.admin)
    .await
    .unwrap();
    assert_eq!(login(&env, "old@rabt.test", PASSWORD).await.status(), 200);
    let stored: String = sqlx::query_scalar("select password_hash from users")
        .fetch_one(&env.app.db.admin)
        .await
        .unwrap();
    assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
    assert_eq!(login(&env, "old@rabt.test", PASSWORD).await.status(), 200);
}

#[tokio::test]
async fn the_refresh_cookie_needs_the_csrf_token_and_the_app_origin() {
    let env = spawn(vec![]).await;
    signed_in(&env, "ada@rabt.test").await;
    let response = env
        .app
        .post_json(
            "/v1/auth/login",
            &json!({"email": "ada@rabt.test", "password": PASSWORD, "refresh_cookie": true}),
        )
        .await;
    let cookies: Vec<String> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let pair: Value = response.json().await.unwrap();
    assert!(pair.get("refresh_token").is_none());
    let refresh_cookie = cookies
        .iter()
        .find(|c| c.starts_with("rabt_refresh="))
        .unwrap();
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict"] {
        assert!(refresh_cookie.contains(attribute), "{refresh_cookie}");
    }
    let cookie_header = cookies
        .iter()
        .map(|c| c.split(';').next().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join("; ");
    let csrf = pair["csrf_token"].as_str().unwrap();

    let attempt = |origin: &'static str, csrf: Option<&str>| {
        let mut request = env
            .app
            .client
            .post(env.app.url("/v1/auth/token/refresh"))
            .header("cookie", cookie_header.clone())
            .header("origin", origin)
            .json(&json!({}));
        if let Some(csrf) = csrf {
            request = request.header("x-csrf-token", csrf);
        }
        request.send()
    };
    assert_eq!(
        attempt("https://app.rabt.test", None)
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        attempt("https://evil.example", Some(csrf))
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        attempt("https://app.rabt.test", Some("forged"))
            .await
            .unwrap()
            .status(),
        403
    );
    let ok = attempt("https://app.rabt.test", Some(csrf)).await.unwrap();
    assert_eq!(ok.status(), 200);
}

/// Signs in with the refresh token in a cookie: the `Cookie` header to send
/// back, and the CSRF token.
async fn cookie_session(env: &AuthApp, email: &str) -> (String, String) {
    let response = env
        .app
        .post_json(
            "/v1/auth/login",
            &json!({"email": email, "password": PASSWORD, "refresh_cookie": true}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let cookie_header = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join("; ");
    let pair: Value = response.json().await.unwrap();
    (
        cookie_header,
        pair["csrf_token"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn without_an_origin_the_refresh_cookie_needs_a_same_origin_referer() {
    let env = spawn(vec![]).await;
    signed_in(&env, "ada@rabt.test").await;
    let (cookie_header, csrf) = cookie_session(&env, "ada@rabt.test").await;
    let attempt = |referer: Option<&'static str>| {
        let mut request = env
            .app
            .client
            .post(env.app.url("/v1/auth/token/refresh"))
            .header("cookie", cookie_header.clone())
            .header("x-csrf-token", csrf.clone())
            .json(&json!({}));
        if let Some(referer) = referer {
            request = request.header("referer", referer);
        }
        request.send()
    };

    // Neither Origin nor Referer: refused.
    let bare = attempt(None).await.unwrap();
    assert_eq!(bare.status(), 403);
    assert_eq!(problem(bare).await["code"], "forbidden");
    // A foreign Referer, even one that mentions the app: refused.
    for foreign in [
        "https://evil.example/page",
        "https://evil.example/https://app.rabt.test/",
        "https://app.rabt.test.evil.example/",
        "http://app.rabt.test/settings",
    ] {
        assert_eq!(
            attempt(Some(foreign)).await.unwrap().status(),
            403,
            "{foreign}"
        );
    }
    // Not a URL: refused.
    assert_eq!(attempt(Some("app.rabt.test")).await.unwrap().status(), 403);
    // A page of the app: accepted (this rotates the token, so it comes last).
    let ok = attempt(Some("https://app.rabt.test/settings?tab=security"))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn security_events_land_in_the_audit_log() {
    let env = spawn(vec![]).await;
    signed_in(&env, "ada@rabt.test").await;
    login(&env, "ada@rabt.test", "wrong-password-123").await;
    let actions: Vec<String> = sqlx::query_scalar("select action from audit_log order by at, id")
        .fetch_all(&env.app.db.admin)
        .await
        .unwrap();
    assert_eq!(actions, vec!["signup", "email_verified", "login_failed"]);
    let ip: Option<String> = sqlx::query_scalar("select host(ip) from audit_log limit 1")
        .fetch_one(&env.app.db.admin)
        .await
        .unwrap();
    assert_eq!(ip.as_deref(), Some("127.0.0.1"));
}

#[tokio::test]
async fn a_private_profile_is_visible_to_its_owner_only() {
    let env = spawn(vec![]).await;
    let ada = signed_in(&env, "ada@rabt.test").await;
    let eve = signed_in(&env, "eve@rabt.test").await;
    sqlx::query("update users set visibility = 'private' where email = 'ada@rabt.test'")
        .execute(&env.app.db.admin)
        .await
        .unwrap();
    let path = format!("/v1/users/{}", ada["user"]["id"].as_str().unwrap());
    assert_eq!(env.app.get_as(access(&ada), &path).await.status(), 200);
    assert_eq!(env.app.get_as(access(&eve), &path).await.status(), 404);
    assert_eq!(env.app.get(&path).await.status(), 404);
}

#[tokio::test]
async fn known_and_unknown_addresses_cost_the_same_one_job() {
    let env = spawn(vec![]).await;
    signed_in(&env, "ada@rabt.test").await;
    let before = env.smtp.messages().len();
    for email in ["ada@rabt.test", "nobody@rabt.test"] {
        let response = env
            .app
            .post_json("/v1/auth/password/forgot", &json!({"email": email}))
            .await;
        assert_eq!(response.status(), 202);
    }
    let queued: Vec<String> = sqlx::query_scalar(
        "select payload->>'email' from jobs where kind = 'auth.send_password_reset' order by created_at",
    )
    .fetch_all(&env.app.db.admin)
    .await
    .unwrap();
    assert_eq!(queued, vec!["ada@rabt.test", "nobody@rabt.test"]);
    env.app.drain_jobs().await;
    assert_eq!(
        env.smtp.messages().len(),
        before + 1,
        "only the account gets mail"
    );
}

#[tokio::test]
async fn without_smtp_mail_is_written_to_the_mail_folder() {
    let dir = std::env::temp_dir().join(format!("rabt-mail-{}", uuid::Uuid::new_v4().simple()));
    let app = spawn_app_with(AppOptions {
        overrides: vec![("mail_dir", dir.display().to_string())],
        ..AppOptions::default()
    })
    .await;
    let response = app
        .post_json(
            "/v1/auth/signup",
            &json!({"email": "ada@rabt.test", "password": PASSWORD, "display_name": "Ada"}),
        )
        .await;
    assert_eq!(response.status(), 202);
    app.drain_jobs().await;
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(files.len(), 1);
    let mail = std::fs::read_to_string(files[0].as_ref().unwrap().path()).unwrap();
    assert!(unfold(&mail).contains("https://app.rabt.test/auth/verify-email?token="));
    // Sent: its token no longer sits in the queue.
    let payload: Value = sqlx::query_scalar("select payload from jobs where kind = 'email.send'")
        .fetch_one(&app.db.admin)
        .await
        .unwrap();
    assert_eq!(payload, json!({}));
    std::fs::remove_dir_all(dir).ok();
}
