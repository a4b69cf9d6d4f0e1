//! Email through the real SMTP sink: what security, transactional and
//! marketing mail carry; tracking that cannot be turned into an open
//! redirect; one-click unsubscribe; the suppression list fed by signed bounce
//! events and by SMTP refusals; statistics; DKIM verified as a receiving
//! server would.

use chrono::Utc;
use mail_parser::MessageParser;
use serde_json::{Value, json};

use crate::helpers::{
    ReceivedMail,
    auth::{self, AuthApp, PASSWORD, login, signed_in},
    problem,
    projects::{apply, published},
};

const EVENTS_SECRET: &str = "email-events-secret-of-at-least-32-chars";

/// A received message, decoded.
struct Mail {
    headers: String,
    html: String,
    text: String,
}

impl Mail {
    fn parse(mail: &ReceivedMail) -> Self {
        let message = MessageParser::new()
            .parse(mail.data.as_bytes())
            .expect("a MIME message");
        let (head, _) = mail
            .data
            .split_once("\r\n\r\n")
            .or_else(|| mail.data.split_once("\n\n"))
            .expect("headers and a body");
        Self {
            // Unfolded: a long header continues on lines that start with space.
            headers: head.replace("\r\n ", " ").replace("\r\n\t", " "),
            html: message.body_html(0).expect("an HTML part").into_owned(),
            text: message.body_text(0).expect("a text part").into_owned(),
        }
    }

    fn header(&self, name: &str) -> Option<String> {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        self.headers.lines().find_map(|line| {
            line.to_ascii_lowercase()
                .starts_with(&prefix)
                .then(|| line[prefix.len()..].trim().to_owned())
        })
    }

    /// The paths under `/v1/email/{kind}/` this message links to (HTML part).
    fn email_paths(&self, kind: &str) -> Vec<String> {
        let needle = format!("/v1/email/{kind}/");
        let html = self.html.replace("&#x2f;", "/");
        html.match_indices(&needle)
            .map(|(at, _)| {
                html[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || "/-_".contains(*c))
                    .collect()
            })
            .collect()
    }
}

/// The newest mail to `to`.
fn newest(env: &AuthApp, to: &str) -> Mail {
    let mail = env
        .smtp
        .messages()
        .into_iter()
        .rev()
        .find(|m| m.to.iter().any(|t| t == to))
        .unwrap_or_else(|| panic!("no mail to {to}"));
    Mail::parse(&mail)
}

fn mails_to(env: &AuthApp, to: &str) -> usize {
    env.smtp
        .messages()
        .iter()
        .filter(|m| m.to.iter().any(|t| t == to))
        .count()
}

/// An owner with an open project, and an applicant who applies to it: the
/// owner is emailed (transactional). Returns the owner's and applicant's
/// tokens.
async fn application_mail(env: &AuthApp, owner: &str, applicant: &str) -> (String, String) {
    let owner_token = auth::access(&signed_in(env, owner).await).to_owned();
    let applicant_token = auth::access(&signed_in(env, applicant).await).to_owned();
    let project = published(env, &owner_token, "A bakery website").await;
    assert_eq!(
        apply(env, &applicant_token, &project, "I bake and I code.")
            .await
            .status(),
        201
    );
    env.app.drain_jobs().await;
    (owner_token, applicant_token)
}

fn signed(body: &str) -> String {
    rabt::signature::sign(body.as_bytes(), EVENTS_SECRET, Utc::now().timestamp())
}

async fn post_events(env: &AuthApp, body: &str, signature: Option<String>) -> reqwest::Response {
    let mut request = env
        .app
        .client
        .post(env.app.url("/v1/email/events"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(signature) = signature {
        request = request.header("rabt-signature", signature);
    }
    request.send().await.unwrap()
}

async fn spawn() -> AuthApp {
    auth::spawn(vec![("email_events_secret", EVENTS_SECRET.into())]).await
}

#[tokio::test]
async fn security_mail_carries_no_pixel_no_tracked_link_and_no_list_unsubscribe() {
    let env = spawn().await;
    auth::signup(&env, "sec@rabt.test").await;
    let mail = newest(&env, "sec@rabt.test");
    assert!(!mail.html.contains("/v1/email/"), "{}", mail.html);
    assert!(!mail.text.contains("/v1/email/"), "{}", mail.text);
    assert!(mail.header("List-Unsubscribe").is_none());
    assert!(mail.header("List-Unsubscribe-Post").is_none());
    // Its token link goes straight to the web app.
    assert!(
        mail.html
            .replace("&#x2f;", "/")
            .contains("https://app.rabt.test/auth/verify-email?token=")
    );
    assert!(
        mail.text
            .contains("https://app.rabt.test/auth/verify-email?token=")
    );
}

#[tokio::test]
async fn a_sign_in_from_a_new_browser_is_told_by_untracked_security_mail() {
    let env = spawn().await;
    signed_in(&env, "ada@rabt.test").await;
    let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
    let sign_in = |agent: Option<&'static str>| {
        let mut request = env
            .app
            .client
            .post(env.app.url("/v1/auth/login"))
            .json(&json!({"email": "ada@rabt.test", "password": PASSWORD}));
        if let Some(agent) = agent {
            request = request.header("user-agent", agent);
        }
        async move {
            assert_eq!(request.send().await.unwrap().status(), 200);
        }
    };
    // The browser that signed up: nothing new.
    sign_in(None).await;
    env.app.drain_jobs().await;
    assert_eq!(mails_to(&env, "ada@rabt.test"), 1, "the verification only");

    sign_in(Some(firefox)).await;
    env.app.drain_jobs().await;
    assert_eq!(mails_to(&env, "ada@rabt.test"), 2);
    let mail = newest(&env, "ada@rabt.test");
    assert!(mail.text.contains("Firefox/133.0"), "{}", mail.text);
    assert!(
        mail.text
            .contains("https://app.rabt.test/auth/forgot-password")
    );
    assert!(!mail.html.contains("/v1/email/"));
    assert!(mail.header("List-Unsubscribe").is_none());

    // The same browser again: known now.
    sign_in(Some(firefox)).await;
    env.app.drain_jobs().await;
    assert_eq!(mails_to(&env, "ada@rabt.test"), 2);
}

#[tokio::test]
async fn transactional_mail_is_tracked_and_its_links_redirect_only_where_rabt_put_them() {
    let env = spawn().await;
    application_mail(&env, "owner@rabt.test", "applicant@rabt.test").await;
    let mail = newest(&env, "owner@rabt.test");

    // Both parts carry the same tracked link; none points past the redirect.
    let clicks = mail.email_paths("c");
    assert_eq!(clicks.len(), 1, "{}", mail.html);
    assert!(mail.text.contains(&clicks[0]), "{}", mail.text);
    assert!(!mail.html.contains("app.rabt.test/applications"));
    let pixels = mail.email_paths("o");
    assert_eq!(pixels.len(), 1);
    assert!(mail.header("List-Unsubscribe").is_some());

    let response = env.app.get(&clicks[0]).await;
    assert_eq!(response.status(), 302);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with("https://app.rabt.test/applications/"),
        "{location}"
    );

    // A forged token, or an altered one, is 404 and goes nowhere.
    let token = clicks[0].rsplit('/').next().unwrap();
    let flipped = format!(
        "{}{}",
        if token.starts_with('A') { "B" } else { "A" },
        &token[1..]
    );
    for path in [
        format!("/v1/email/c/{flipped}"),
        "/v1/email/c/not-a-token".to_owned(),
        format!("/v1/email/c/{token}x"),
        format!("/v1/email/o/{flipped}"),
    ] {
        let response = env.app.get(&path).await;
        assert_eq!(response.status(), 404, "{path}");
        assert!(response.headers().get("location").is_none());
        assert_eq!(problem(response).await["code"], "not_found");
    }

    // The pixel: a GIF nobody caches, counted once for a person and apart
    // for an image proxy.
    let pixel = &pixels[0];
    let response = env
        .app
        .client
        .get(env.app.url(pixel))
        .header("user-agent", "Mozilla/5.0 (Macintosh) AppleWebKit/605.1.15")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/gif");
    assert!(
        response.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("no-store")
    );
    assert!(response.bytes().await.unwrap().starts_with(b"GIF89a"));
    let response = env
        .app
        .client
        .get(env.app.url(pixel))
        .header("user-agent", "Mozilla/5.0 (via ggpht.com GoogleImageProxy)")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let admin = auth::admin(&env, "stats@rabt.test").await;
    let today = Utc::now().date_naive();
    let stats: Value = env
        .app
        .get_as(
            &admin,
            &format!("/v1/admin/email/stats?from={today}&to={today}"),
        )
        .await
        .json()
        .await
        .unwrap();
    let template = stats["templates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["template"] == "application_event")
        .unwrap_or_else(|| panic!("{stats}"));
    assert_eq!(template["sent"], 1, "{stats}");
    assert_eq!(template["opened"], 1);
    assert_eq!(template["clicked"], 1);
    assert_eq!(template["open_rate"], 1.0);
    let messages: (i32, i32, i32) = sqlx::query_as(
        "select opens, proxy_opens, clicks from email_messages where template = 'application_event'",
    )
    .fetch_one(&env.app.db.admin)
    .await
    .unwrap();
    assert_eq!(messages, (1, 1, 1));
    // Verification mail counts too, untracked.
    let verify = stats["templates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["template"] == "verify_email")
        .unwrap();
    assert_eq!(verify["sent"], 3);
    assert_eq!(verify["opened"], 0);
}

#[tokio::test]
async fn with_tracking_off_links_are_plain_and_there_is_no_pixel_but_unsubscribe_stays() {
    let env = auth::spawn(vec![("email_tracking", "false".into())]).await;
    application_mail(&env, "owner@rabt.test", "applicant@rabt.test").await;
    let mail = newest(&env, "owner@rabt.test");
    assert!(mail.email_paths("c").is_empty(), "{}", mail.html);
    assert!(mail.email_paths("o").is_empty());
    assert_eq!(mail.email_paths("unsubscribe").len(), 1);
    assert!(mail.text.contains("https://app.rabt.test/applications/"));
    assert!(mail.header("List-Unsubscribe").is_some());
}

#[tokio::test]
async fn email_stats_need_analytics_read_and_sane_dates() {
    let env = spawn().await;
    let member = auth::access(&signed_in(&env, "member@rabt.test").await).to_owned();
    assert_eq!(env.app.get("/v1/admin/email/stats").await.status(), 401);
    assert_eq!(
        env.app
            .get_as(&member, "/v1/admin/email/stats")
            .await
            .status(),
        403
    );
    let admin = auth::admin(&env, "admin@rabt.test").await;
    for query in [
        "from=yesterday",
        "to=2026-13-01",
        "from=2026-12-07&to=2026-12-01",
        "from=2020-01-01&to=2026-01-01",
    ] {
        let response = env
            .app
            .get_as(&admin, &format!("/v1/admin/email/stats?{query}"))
            .await;
        assert_eq!(response.status(), 422, "{query}");
        assert_eq!(problem(response).await["code"], "validation_failed");
    }
    let response = env.app.get_as(&admin, "/v1/admin/email/stats").await;
    assert_eq!(response.status(), 200);
    let stats: Value = response.json().await.unwrap();
    assert_eq!(stats["total"]["sent"], 2, "{stats}");
}

/// Saves preferences with every email on, product news as given.
async fn save_preferences(env: &AuthApp, token: &str, product_news: bool) {
    let response = env
        .app
        .put_json_as(
            token,
            "/v1/me/notification-preferences",
            &json!({"messages": "immediately", "applications": true, "billing": true,
                    "product_news": product_news}),
        )
        .await;
    assert_eq!(response.status(), 200);
}

async fn preferences(env: &AuthApp, token: &str) -> Value {
    env.app
        .get_as(token, "/v1/me/notification-preferences")
        .await
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn marketing_mail_reaches_only_opted_in_users_and_one_click_post_unsubscribes_but_get_does_not()
 {
    let env = spawn().await;
    let reader = auth::access(&signed_in(&env, "reader@rabt.test").await).to_owned();
    signed_in(&env, "quiet@rabt.test").await;
    save_preferences(&env, &reader, true).await;
    let news = rabt::email::news::News {
        headline: "Search by skill is here".into(),
        paragraphs: vec!["Projects can now be found by the skills they need.".into()],
        path: "/changelog".into(),
        after: None,
    };
    rabt::email::news::queue(env.app.app_db(), &news)
        .await
        .unwrap();
    env.app.drain_jobs().await;
    assert_eq!(
        mails_to(&env, "quiet@rabt.test"),
        1,
        "only the verification"
    );
    let mail = newest(&env, "reader@rabt.test");
    assert!(mail.text.contains("Search by skill is here"));
    assert_eq!(
        mail.header("List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    let header = mail.header("List-Unsubscribe").unwrap();
    let url = header.trim_matches(['<', '>']);
    let path = &url[url.find("/v1/email/unsubscribe/").unwrap()..];
    assert!(mail.email_paths("unsubscribe").contains(&path.to_owned()));

    // A GET (a scanner, a link preview) shows a page and changes nothing.
    let page = env.app.get(path).await;
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("<form method=\"post\">")
    );
    assert_eq!(preferences(&env, &reader).await["product_news"], true);

    // The one-click POST, as a mail client sends it: no cookie, no session.
    for _ in 0..2 {
        let response = env
            .app
            .client
            .post(env.app.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("List-Unsubscribe=One-Click")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    assert_eq!(preferences(&env, &reader).await["product_news"], false);
    let admin = auth::admin(&env, "root@rabt.test").await;
    let list: Value = env
        .app
        .get_as(&admin, "/v1/admin/email/suppressions")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"][0]["address"], "reader@rabt.test", "{list}");
    assert_eq!(list["items"][0]["reason"], "unsubscribed");
    let forged = env
        .app
        .client
        .post(env.app.url(&format!("{path}x")))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 404);

    // Turning emails back on in the preferences is the owner's own choice:
    // it lifts the unsubscribe.
    save_preferences(&env, &reader, false).await;
    let list: Value = env
        .app
        .get_as(&admin, "/v1/admin/email/suppressions")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"], json!([]), "{list}");
}

#[tokio::test]
async fn a_bounced_address_gets_no_transactional_mail_but_still_gets_a_password_reset() {
    let env = spawn().await;
    let body = json!({"events": [{"type": "bounce", "bounce_type": "hard",
                                  "email": "Owner@rabt.test", "detail": "550 no such user"}]})
    .to_string();
    // Unsigned, signed with another secret, or stale: refused, nothing stored.
    assert_eq!(post_events(&env, &body, None).await.status(), 400);
    let forged = rabt::signature::sign(body.as_bytes(), "another-secret", Utc::now().timestamp());
    let response = post_events(&env, &body, Some(forged)).await;
    assert_eq!(problem(response).await["code"], "invalid_token");
    let stale = rabt::signature::sign(
        body.as_bytes(),
        EVENTS_SECRET,
        Utc::now().timestamp() - 3600,
    );
    assert_eq!(post_events(&env, &body, Some(stale)).await.status(), 400);
    let bad = json!({"events": [{"type": "bounce", "email": "not an address"}]}).to_string();
    assert_eq!(
        post_events(&env, &bad, Some(signed(&bad))).await.status(),
        422
    );

    let before = env.smtp.messages().len();
    application_mail(&env, "owner@rabt.test", "applicant@rabt.test").await;
    let owner_mails = mails_to(&env, "owner@rabt.test");
    assert_eq!(owner_mails, 2, "verification and the application event");
    assert!(env.smtp.messages().len() > before);

    let response = post_events(&env, &body, Some(signed(&body))).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["applied"], 1);

    // Another application: the owner's address is suppressed now.
    let other = auth::access(&signed_in(&env, "second@rabt.test").await).to_owned();
    let owner = auth::access(
        &login(&env, "owner@rabt.test", PASSWORD)
            .await
            .json()
            .await
            .unwrap(),
    )
    .to_owned();
    // The owner's own preferences lift an unsubscribe, never a bounce.
    save_preferences(&env, &owner, true).await;
    let project = published(&env, &owner, "Another website").await;
    assert_eq!(apply(&env, &other, &project, "Me too.").await.status(), 201);
    env.app.drain_jobs().await;
    assert_eq!(mails_to(&env, "owner@rabt.test"), owner_mails);
    let suppressed: i64 =
        sqlx::query_scalar("select count(*) from email_messages where suppressed_at is not null")
            .fetch_one(&env.app.db.admin)
            .await
            .unwrap();
    assert_eq!(suppressed, 1);

    // Security mail still goes.
    let response = env
        .app
        .post_json(
            "/v1/auth/password/forgot",
            &json!({"email": "owner@rabt.test"}),
        )
        .await;
    assert_eq!(response.status(), 202);
    env.app.drain_jobs().await;
    assert_eq!(mails_to(&env, "owner@rabt.test"), owner_mails + 1);
    assert!(
        newest(&env, "owner@rabt.test")
            .text
            .contains("reset-password?token=")
    );

    // An admin lifts it; transactional mail flows again.
    let admin = auth::admin(&env, "lift@rabt.test").await;
    let response = env
        .app
        .delete_as(&admin, "/v1/admin/email/suppressions/owner@rabt.test")
        .await;
    assert_eq!(response.status(), 204);
    let response = env
        .app
        .delete_as(&admin, "/v1/admin/email/suppressions/owner@rabt.test")
        .await;
    assert_eq!(response.status(), 404);
    let third = auth::access(&signed_in(&env, "third@rabt.test").await).to_owned();
    assert_eq!(
        apply(&env, &third, &project, "Me three.").await.status(),
        201
    );
    env.app.drain_jobs().await;
    assert_eq!(mails_to(&env, "owner@rabt.test"), owner_mails + 2);
}

#[tokio::test]
async fn a_soft_bounce_suppresses_for_a_while_and_a_complaint_for_good() {
    let env = spawn().await;
    let body = json!({"events": [
        {"type": "bounce", "bounce_type": "soft", "email": "soft@rabt.test"},
        {"type": "complaint", "email": "angry@rabt.test"},
    ]})
    .to_string();
    assert_eq!(
        post_events(&env, &body, Some(signed(&body))).await.status(),
        200
    );
    let rows: Vec<(String, String, bool)> = sqlx::query_as(
        "select address, reason, coalesce(expires_at > now() + interval '6 days', false) \
         from email_suppressions order by address",
    )
    .fetch_all(&env.app.db.admin)
    .await
    .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].0, "angry@rabt.test");
    assert_eq!(rows[0].1, "complaint");
    assert_eq!(
        rows[1],
        ("soft@rabt.test".into(), "soft_bounce".into(), true)
    );
    // A later soft bounce does not weaken a complaint.
    let soft = json!({"events": [{"type": "bounce", "bounce_type": "soft",
                                  "email": "angry@rabt.test"}]})
    .to_string();
    assert_eq!(
        post_events(&env, &soft, Some(signed(&soft))).await.status(),
        200
    );
    let reason: String = sqlx::query_scalar(
        "select reason from email_suppressions where address = 'angry@rabt.test'",
    )
    .fetch_one(&env.app.db.admin)
    .await
    .unwrap();
    assert_eq!(reason, "complaint");
}

#[tokio::test]
async fn without_an_events_secret_the_webhook_is_unavailable() {
    let env = auth::spawn(vec![]).await;
    let body = json!({"events": []}).to_string();
    let response = post_events(&env, &body, Some(signed(&body))).await;
    assert_eq!(response.status(), 503);
}

#[tokio::test]
async fn an_smtp_refusal_of_the_mailbox_fails_the_message_and_suppresses_the_address() {
    let env = spawn().await;
    let owner = auth::access(&signed_in(&env, "owner@rabt.test").await).to_owned();
    let applicant = auth::access(&signed_in(&env, "gone@rabt.test").await).to_owned();
    env.smtp.refuse("owner@rabt.test");
    let project = published(&env, &owner, "A bakery website").await;
    assert_eq!(
        apply(&env, &applicant, &project, "Hello").await.status(),
        201
    );
    env.app.drain_jobs().await;
    let (reason, source): (String, String) = sqlx::query_as(
        "select reason, source from email_suppressions where address = 'owner@rabt.test'",
    )
    .fetch_one(&env.app.db.admin)
    .await
    .unwrap();
    assert_eq!((reason.as_str(), source.as_str()), ("hard_bounce", "smtp"));
    let (outcome, reply): (String, String) = sqlx::query_as(
        "select a.outcome, a.reply from email_attempts a \
         join email_messages m on m.id = a.message where m.template = 'application_event'",
    )
    .fetch_one(&env.app.db.admin)
    .await
    .unwrap();
    assert_eq!(outcome, "rejected");
    assert!(reply.contains("550"), "{reply}");
    let dead: i64 = sqlx::query_scalar(
        "select count(*) from jobs where kind = 'email.send' and status = 'dead'",
    )
    .fetch_one(&env.app.db.admin)
    .await
    .unwrap();
    assert_eq!(dead, 1, "refused for good: not retried");
    // Accepted mail records the server's reply too.
    let accepted: String = sqlx::query_scalar(
        "select a.reply from email_attempts a join email_messages m on m.id = a.message \
         where m.template = 'verify_email' limit 1",
    )
    .fetch_one(&env.app.db.admin)
    .await
    .unwrap();
    assert!(accepted.starts_with("250"), "{accepted}");
}

/// A TXT "DNS" that knows one record, so the verifier needs no network.
struct OneRecord(std::sync::Mutex<std::collections::HashMap<String, mail_auth::Txt>>);

impl mail_auth::ResolverCache<String, mail_auth::Txt> for OneRecord {
    fn get<Q>(&self, key: &Q) -> Option<mail_auth::Txt>
    where
        String: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        self.0.lock().unwrap().get(key).cloned()
    }

    fn remove<Q>(&self, key: &Q) -> Option<mail_auth::Txt>
    where
        String: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        self.0.lock().unwrap().remove(key)
    }

    fn insert(&self, key: String, value: mail_auth::Txt, _: std::time::Instant) {
        self.0.lock().unwrap().insert(key, value);
    }
}

async fn dkim_results(raw: &[u8], record: &OneRecord) -> Vec<mail_auth::DkimResult> {
    let message = mail_auth::AuthenticatedMessage::parse(raw).expect("a message");
    // Never queried: every key comes from `record`.
    let authenticator = mail_auth::MessageAuthenticator::new_cloudflare().unwrap();
    authenticator
        .verify_dkim(mail_auth::Parameters::new(&message).with_txt_cache(record))
        .await
        .iter()
        .map(|output| output.result().clone())
        .collect()
}

#[tokio::test]
async fn every_message_is_dkim_signed_and_verifies_against_the_published_key() {
    use base64::Engine as _;
    use mail_auth::common::parse::TxtRecordParser as _;
    use rsa::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, LineEnding};

    let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap();
    // PKCS#8, as `openssl genpkey` writes it.
    let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
    let public = base64::engine::general_purpose::STANDARD
        .encode(key.to_public_key().to_public_key_der().unwrap().as_bytes());
    let env = auth::spawn(vec![
        ("email_from", "rabt <no-reply@rabt.test>".into()),
        ("dkim_selector", "mail2026".into()),
        ("dkim_private_key", pem),
    ])
    .await;
    let record = OneRecord(Default::default());
    let txt = format!("v=DKIM1; k=rsa; p={public}");
    mail_auth::ResolverCache::insert(
        &record,
        "mail2026._domainkey.rabt.test.".to_owned(),
        mail_auth::common::verify::DomainKey::parse(txt.as_bytes())
            .unwrap()
            .into(),
        std::time::Instant::now() + std::time::Duration::from_secs(3600),
    );

    application_mail(&env, "owner@rabt.test", "applicant@rabt.test").await;
    let messages = env.smtp.messages();
    let security = messages
        .iter()
        .find(|m| m.to == ["applicant@rabt.test"])
        .unwrap();
    let tracked = messages
        .iter()
        .rev()
        .find(|m| m.to == ["owner@rabt.test"])
        .unwrap();
    for mail in [security, tracked] {
        let results = dkim_results(mail.data.as_bytes(), &record).await;
        assert_eq!(results, [mail_auth::DkimResult::Pass], "{}", mail.data);
    }
    // The one-click headers are covered by the signature.
    let signature = Mail::parse(tracked).header("DKIM-Signature").unwrap();
    let signed = signature
        .split(';')
        .find_map(|tag| tag.trim().strip_prefix("h="))
        .unwrap()
        .to_ascii_lowercase();
    assert!(signed.contains("list-unsubscribe"), "{signature}");
    assert!(signed.contains("list-unsubscribe-post"), "{signature}");

    // An altered message fails.
    let altered = tracked.data.replacen("Subject: ", "Subject: Re: ", 1);
    let results = dkim_results(altered.as_bytes(), &record).await;
    assert!(
        matches!(results.as_slice(), [mail_auth::DkimResult::Fail(_)]),
        "{results:?}"
    );
}
