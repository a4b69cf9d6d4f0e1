//! Billing end to end (API.md §7): a fake Stripe answering with Stripe's own
//! fixture objects, webhook events signed with Stripe's scheme, real
//! Postgres with RLS.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    auth::{self, access, signed_in},
    problem,
    projects::{draft, published, transition},
    stripe::{
        BillingApp, PRICE_PRO, PRICE_TEAM, WEBHOOK_SECRET, event, invoice, now, signature,
        subscription,
    },
};

fn user_id(pair: &Value) -> Uuid {
    pair["user"]["id"].as_str().unwrap().parse().unwrap()
}

async fn plan_of(app: &BillingApp, token: &str) -> String {
    let me: Value = app
        .env
        .app
        .get_as(token, "/v1/me")
        .await
        .json()
        .await
        .unwrap();
    me["plan"].as_str().unwrap().to_owned()
}

async fn count(app: &BillingApp, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&app.env.app.db.admin)
        .await
        .unwrap()
}

/// What became of the event `id`.
async fn outcome(app: &BillingApp, id: &str) -> String {
    sqlx::query_scalar("select outcome from billing_events where id = $1")
        .bind(id)
        .fetch_one(&app.env.app.db.admin)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_plans_are_public_with_their_limits_and_stripes_prices() {
    let app = BillingApp::start(vec![]).await;
    let response = app.env.app.get("/v1/billing/plans").await;
    assert_eq!(response.status(), 200);
    let plans: Value = response.json().await.unwrap();
    assert_eq!(
        plans,
        json!([
            {"id": "free", "name": "Free", "price": {"amount": 0, "currency": "eur"},
             "interval": null, "limits": {"open_projects": 3}},
            {"id": "pro", "name": "Pro", "price": {"amount": 1500, "currency": "eur"},
             "interval": "month", "limits": {"open_projects": 25}},
            {"id": "team", "name": "Team", "price": {"amount": 4900, "currency": "eur"},
             "interval": "month", "limits": {"open_projects": null}},
        ])
    );
    // Prices are kept a while: a second look does not ask Stripe again.
    app.env.app.get("/v1/billing/plans").await;
    assert_eq!(
        app.stripe
            .calls_to(&format!("/v1/prices/{PRICE_PRO}"))
            .len(),
        1
    );
}

#[tokio::test]
async fn without_stripe_billing_answers_503_but_the_plans_and_the_rest_works() {
    let env = auth::spawn(vec![("plan_pro_open_projects", "40".into())]).await;
    let plans: Value = env.app.get("/v1/billing/plans").await.json().await.unwrap();
    assert_eq!(plans[1]["limits"]["open_projects"], 40);
    assert_eq!(plans[1]["price"], Value::Null);
    let pair = signed_in(&env, "ada@rabt.test").await;
    let token = access(&pair);
    for response in [
        env.app
            .post_json_as(token, "/v1/billing/checkout", &json!({"plan": "pro"}))
            .await,
        env.app
            .post_json_as(token, "/v1/billing/portal", &json!({}))
            .await,
        env.app.get_as(token, "/v1/billing/subscription").await,
        env.app.get_as(token, "/v1/billing/invoices").await,
        env.app.post_json("/v1/billing/webhook", &json!({})).await,
    ] {
        assert_eq!(response.status(), 503);
        assert!(response.headers().contains_key("retry-after"));
        let body = problem(response).await;
        assert_eq!(body["code"], "unavailable");
        assert!(body["detail"].as_str().unwrap().contains("not configured"));
    }
    // The rest of rabt does not need Stripe.
    published(&env, token, "Still works").await;
}

#[tokio::test]
async fn parallel_checkouts_make_one_customer_and_sessions_for_the_plans_price() {
    let app = BillingApp::start(vec![]).await;
    let pair = signed_in(&app.env, "ada@rabt.test").await;
    let token = access(&pair).to_owned();
    let team = json!({"plan": "team"});
    let checkout = || {
        app.env
            .app
            .post_json_as(&token, "/v1/billing/checkout", &team)
    };
    let (first, second) = tokio::join!(checkout(), checkout());
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    let url = first.json::<Value>().await.unwrap()["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        url.starts_with("https://checkout.stripe.com/c/pay/cs_test_"),
        "{url}"
    );

    let customers = app.stripe.calls_to("/v1/customers");
    assert_eq!(customers.len(), 1, "one customer for two checkouts");
    assert_eq!(customers[0].form["email"], "ada@rabt.test");
    let customer: String =
        sqlx::query_scalar("select stripe_customer_id from billing_customers where user_id = $1")
            .bind(user_id(&pair))
            .fetch_one(&app.env.app.db.admin)
            .await
            .unwrap();

    let sessions = app.stripe.calls_to("/v1/checkout/sessions");
    assert_eq!(sessions.len(), 2);
    for session in &sessions {
        assert_eq!(session.form["mode"], "subscription");
        assert_eq!(session.form["customer"], customer);
        assert_eq!(session.form["line_items[0][price]"], PRICE_TEAM);
        assert_eq!(
            session.form["client_reference_id"],
            user_id(&pair).to_string()
        );
        assert!(session.form["success_url"].starts_with("https://app.rabt.test/billing/success"));
        assert!(session.form["cancel_url"].starts_with("https://app.rabt.test/billing/cancel"));
    }
    for call in app.stripe.calls() {
        assert_eq!(
            call.stripe_version.as_deref(),
            Some(rabt::billing::stripe::API_VERSION)
        );
        if call.method == "POST" {
            assert!(call.idempotency_key.is_some(), "{call:?}");
        }
    }
    // The same client key gives the same Stripe key: a retried request does
    // not make a second session.
    let keyed = |key: &'static str| {
        app.env
            .app
            .client
            .post(app.env.app.url("/v1/billing/checkout"))
            .bearer_auth(&token)
            .header("idempotency-key", key)
            .json(&json!({"plan": "pro"}))
            .send()
    };
    let (a, b) = (keyed("k-1").await.unwrap(), keyed("k-1").await.unwrap());
    assert_eq!(
        a.json::<Value>().await.unwrap()["url"],
        b.json::<Value>().await.unwrap()["url"]
    );
    let sessions = app.stripe.calls_to("/v1/checkout/sessions");
    assert_eq!(sessions[2].idempotency_key, sessions[3].idempotency_key);
    assert_ne!(sessions[0].idempotency_key, sessions[1].idempotency_key);
    // The same client key on another plan is another call to Stripe.
    let other_plan = app
        .env
        .app
        .client
        .post(app.env.app.url("/v1/billing/checkout"))
        .bearer_auth(&token)
        .header("idempotency-key", "k-1")
        .json(&json!({"plan": "team"}))
        .send()
        .await
        .unwrap();
    assert_eq!(other_plan.status(), 200);
    let sessions = app.stripe.calls_to("/v1/checkout/sessions");
    assert_ne!(sessions[4].idempotency_key, sessions[3].idempotency_key);
    assert_eq!(sessions[4].form["line_items[0][price]"], PRICE_TEAM);
}

#[tokio::test]
async fn checkout_takes_a_paid_plan_and_maps_stripes_failures() {
    let app = BillingApp::start(vec![]).await;
    let pair = signed_in(&app.env, "ada@rabt.test").await;
    let token = access(&pair);
    for body in [
        json!({"plan": "free"}),
        json!({"plan": "gold"}),
        json!({"plan": "pro", "x": 1}),
    ] {
        let response = app
            .env
            .app
            .post_json_as(token, "/v1/billing/checkout", &body)
            .await;
        assert_eq!(response.status(), 422, "{body}");
    }
    app.stripe.fail_with(Some(500));
    let down = app
        .env
        .app
        .post_json_as(token, "/v1/billing/checkout", &json!({"plan": "pro"}))
        .await;
    assert_eq!(down.status(), 503);
    assert!(down.headers().contains_key("retry-after"));
    app.stripe.fail_with(Some(400));
    let refused = app
        .env
        .app
        .post_json_as(token, "/v1/billing/checkout", &json!({"plan": "pro"}))
        .await;
    assert_eq!(refused.status(), 502);
    assert_eq!(problem(refused).await["code"], "upstream_error");
    app.stripe.fail_with(None);
    let portal = app
        .env
        .app
        .post_json_as(token, "/v1/billing/portal", &json!({}))
        .await;
    assert_eq!(portal.status(), 200);
    let url = portal.json::<Value>().await.unwrap()["url"].clone();
    assert!(
        url.as_str()
            .unwrap()
            .starts_with("https://billing.stripe.com/")
    );
    let call = app
        .stripe
        .calls_to("/v1/billing_portal/sessions")
        .pop()
        .unwrap();
    assert_eq!(call.form["return_url"], "https://app.rabt.test/billing");
}

#[tokio::test]
async fn a_webhook_upgrade_allows_the_fourth_open_project() {
    let app = BillingApp::start(vec![]).await;
    let pair = signed_in(&app.env, "ada@rabt.test").await;
    let token = access(&pair);
    for n in 0..3 {
        published(&app.env, token, &format!("Project {n}")).await;
    }
    let fourth = draft(&app.env, token, "Project 4").await;
    let refused = transition(&app.env, token, &fourth, "open", None).await;
    assert_eq!(refused.status(), 402);
    assert_eq!(problem(refused).await["code"], "plan_limit_reached");

    let customer = app.checkout(token, "pro").await;
    let sub = subscription("sub_up", &customer, PRICE_PRO, "active");
    let response = app
        .deliver(&event(
            "evt_up",
            "customer.subscription.created",
            now(),
            sub,
        ))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(plan_of(&app, token).await, "pro");
    let allowed = transition(&app.env, token, &fourth, "open", None).await;
    assert_eq!(allowed.status(), 200);

    let subscription: Value = app
        .env
        .app
        .get_as(token, "/v1/billing/subscription")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        subscription,
        json!({"plan": "pro", "status": "active",
               "current_period_end": "2030-03-17T17:46:40Z", "cancel_at_period_end": false})
    );
    assert_eq!(
        count(
            &app,
            "select count(*) from audit_log where action = 'plan_changed'"
        )
        .await,
        1
    );
    // A second checkout while subscribed is sent to the portal.
    let again = app
        .env
        .app
        .post_json_as(token, "/v1/billing/checkout", &json!({"plan": "team"}))
        .await;
    assert_eq!(again.status(), 409);
}

#[tokio::test]
async fn bad_stale_and_missing_signatures_are_400_and_store_nothing() {
    let app = BillingApp::start(vec![]).await;
    let pair = signed_in(&app.env, "ada@rabt.test").await;
    let customer = app.checkout(access(&pair), "pro").await;
    let body = event(
        "evt_forged",
        "customer.subscription.created",
        now(),
        subscription("sub_forged", &customer, PRICE_PRO, "active"),
    )
    .to_string();
    let tampered = body.replace("\"active\"", "\"trialing\"");
    for (payload, header) in [
        (&body, signature(&body, "whsec_not_ours", now())),
        (&body, signature(&body, WEBHOOK_SECRET, now() - 301)),
        (&body, signature(&body, WEBHOOK_SECRET, now() + 301)),
        (&tampered, signature(&body, WEBHOOK_SECRET, now())),
        (&body, String::new()),
        (&body, "t=abc,v1=00".to_owned()),
    ] {
        let response = app.deliver_raw(payload, &header).await;
        assert_eq!(response.status(), 400, "{header}");
        assert_eq!(problem(response).await["code"], "invalid_token");
    }
    assert_eq!(count(&app, "select count(*) from billing_events").await, 0);
    assert_eq!(count(&app, "select count(*) from subscriptions").await, 0);
    assert_eq!(plan_of(&app, access(&pair)).await, "free");
    assert_eq!(
        count(
            &app,
            "select count(*) from audit_log where action = 'billing_webhook_failed'"
        )
        .await,
        6
    );
    // Signed, but not an event.
    let junk = "not json";
    let response = app
        .deliver_raw(junk, &signature(junk, WEBHOOK_SECRET, now()))
        .await;
    assert_eq!(response.status(), 400);
    assert_eq!(problem(response).await["code"], "invalid_json");
}

#[tokio::test]
async fn the_same_event_twice_applies_once() {
    let app = BillingApp::start(vec![]).await;
    let pair = signed_in(&app.env, "ada@rabt.test").await;
    let customer = app.checkout(access(&pair), "pro").await;
    let created = now();
    let upgrade = event(
        "evt_once",
        "customer.subscription.created",
        created,
        subscription("sub_once", &customer, PRICE_PRO, "active"),
    );
    let (first, second) = tokio::join!(app.deliver(&upgrade), app.deliver(&upgrade));
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    // A replay of an event whose state was since replaced changes nothing.
    let cancel = event(
        "evt_cancel",
        "customer.subscription.deleted",
        created + 5,
        subscription("sub_once", &customer, PRICE_PRO, "canceled"),
    );
    assert_eq!(app.deliver(&cancel).await.status(), 200);
    assert_eq!(app.deliver(&upgrade).await.status(), 200);
    assert_eq!(plan_of(&app, access(&pair)).await, "free");
    assert_eq!(count(&app, "select count(*) from billing_events").await, 2);
    assert_eq!(
        count(
            &app,
            "select count(*) from audit_log where action = 'plan_changed'"
        )
        .await,
        2,
        "free to pro, then pro to free: once each"
    );
    // Unknown types are taken and ignored.
    let other = event(
        "evt_other",
        "customer.created",
        now(),
        json!({"id": "cus_x"}),
    );
    assert_eq!(app.deliver(&other).await.status(), 200);
    let outcome = outcome(&app, "evt_other").await;
    assert_eq!(outcome, "ignored");
}

#[tokio::test]
async fn an_older_update_after_a_newer_delete_leaves_the_user_on_free() {
    let app = BillingApp::start(vec![]).await;
    let pair = signed_in(&app.env, "ada@rabt.test").await;
    let token = access(&pair);
    let customer = app.checkout(token, "team").await;
    let t0 = now() - 60;
    let sub = |status| subscription("sub_order", &customer, PRICE_TEAM, status);
    for (id, kind, at, status) in [
        ("evt_1", "customer.subscription.created", t0, "active"),
        (
            "evt_3",
            "customer.subscription.deleted",
            t0 + 20,
            "canceled",
        ),
        ("evt_2", "customer.subscription.updated", t0 + 10, "active"),
    ] {
        assert_eq!(
            app.deliver(&event(id, kind, at, sub(status)))
                .await
                .status(),
            200
        );
    }
    assert_eq!(plan_of(&app, token).await, "free");
    let view: Value = app
        .env
        .app
        .get_as(token, "/v1/billing/subscription")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view["status"], "canceled");
    assert_eq!(view["plan"], "free");
    let outcome = outcome(&app, "evt_2").await;
    assert_eq!(outcome, "stale");
}

#[tokio::test]
async fn two_events_in_one_second_are_settled_by_asking_stripe() {
    let app = BillingApp::start(vec![]).await;
    let pair = signed_in(&app.env, "ada@rabt.test").await;
    let token = access(&pair);
    let customer = app.checkout(token, "pro").await;
    let second = now() - 30;
    let sub = |status| subscription("sub_tie", &customer, PRICE_PRO, status);
    app.deliver(&event(
        "evt_a",
        "customer.subscription.updated",
        second,
        sub("active"),
    ))
    .await;
    assert_eq!(plan_of(&app, token).await, "pro");
    // Same second: which came last cannot be told from the events, so
    // neither wins; Stripe says which state is current.
    app.stripe.set_subscription(sub("active"));
    let response = app
        .deliver(&event(
            "evt_b",
            "customer.subscription.updated",
            second,
            sub("canceled"),
        ))
        .await;
    assert_eq!(response.status(), 200);
    let outcome = outcome(&app, "evt_b").await;
    assert_eq!(outcome, "deferred");
    app.settle("the subscription fetched from Stripe", async || {
        !app.stripe.calls_to("/v1/subscriptions/sub_tie").is_empty()
    })
    .await;
    assert_eq!(plan_of(&app, token).await, "pro");
    assert_eq!(app.stripe.calls_to("/v1/subscriptions/sub_tie").len(), 1);
}

#[tokio::test]
async fn a_completed_checkout_fetches_its_subscription() {
    let app = BillingApp::start(vec![]).await;
    let pair = signed_in(&app.env, "ada@rabt.test").await;
    let token = access(&pair);
    let customer = app.checkout(token, "team").await;
    app.stripe
        .set_subscription(subscription("sub_new", &customer, PRICE_TEAM, "trialing"));
    let mut session = crate::helpers::stripe::fixture("checkout.session");
    session["mode"] = json!("subscription");
    session["customer"] = json!(customer);
    session["subscription"] = json!("sub_new");
    session["client_reference_id"] = json!(user_id(&pair).to_string());
    let response = app
        .deliver(&event(
            "evt_done",
            "checkout.session.completed",
            now(),
            session,
        ))
        .await;
    assert_eq!(response.status(), 200);
    app.settle("the plan of the new subscription", async || {
        plan_of(&app, token).await == "team"
    })
    .await;
}

#[tokio::test]
async fn past_due_keeps_the_plan_only_for_the_grace_period() {
    let app = BillingApp::start(vec![("billing_past_due_grace_days", "0".into())]).await;
    let pair = signed_in(&app.env, "ada@rabt.test").await;
    let token = access(&pair);
    let customer = app.checkout(token, "pro").await;
    let t0 = now() - 60;
    let sub = |status| subscription("sub_due", &customer, PRICE_PRO, status);
    app.deliver(&event(
        "evt_ok",
        "customer.subscription.created",
        t0,
        sub("active"),
    ))
    .await;
    assert_eq!(plan_of(&app, token).await, "pro");
    app.deliver(&event(
        "evt_due",
        "customer.subscription.updated",
        t0 + 1,
        sub("past_due"),
    ))
    .await;
    // No grace here: the plan falls back at once.
    assert_eq!(plan_of(&app, token).await, "free");

    let app = BillingApp::start(vec![]).await;
    let pair = signed_in(&app.env, "ada@rabt.test").await;
    let token = access(&pair);
    let customer = app.checkout(token, "pro").await;
    let sub = |status| subscription("sub_due", &customer, PRICE_PRO, status);
    app.deliver(&event(
        "evt_due",
        "customer.subscription.updated",
        t0 + 1,
        sub("past_due"),
    ))
    .await;
    assert_eq!(plan_of(&app, token).await, "pro", "7 days of grace");
    // The re-check at the end of the grace period is queued.
    assert_eq!(
        count(&app, "select count(*) from jobs where kind = 'billing.refresh_plan' and run_at > now() + interval '6 days'").await,
        1
    );
}

#[tokio::test]
async fn invoices_are_each_users_own_and_render_as_a_pdf() {
    let app = BillingApp::start(vec![]).await;
    let ada = signed_in(&app.env, "ada@rabt.test").await;
    let bob = signed_in(&app.env, "bob@rabt.test").await;
    let ada_customer = app.checkout(access(&ada), "pro").await;
    let bob_customer = app.checkout(access(&bob), "pro").await;
    let t0 = now() - 60;
    for (n, (customer, number)) in [(&ada_customer, "ADA-0001"), (&bob_customer, "BOB-0001")]
        .into_iter()
        .enumerate()
    {
        let id = format!("in_test{n}");
        app.deliver(&event(
            &format!("evt_fin{n}"),
            "invoice.finalized",
            t0,
            invoice(&id, customer, number, "open", 1440),
        ))
        .await;
        app.deliver(&event(
            &format!("evt_paid{n}"),
            "invoice.paid",
            t0 + 1,
            invoice(&id, customer, number, "paid", 1440),
        ))
        .await;
    }
    // A late `finalized` does not move a paid invoice back to open.
    app.deliver(&event(
        "evt_late",
        "invoice.finalized",
        t0,
        invoice("in_test0", &ada_customer, "ADA-0001", "open", 1440),
    ))
    .await;

    let page: Value = app
        .env
        .app
        .get_as(access(&ada), "/v1/billing/invoices")
        .await
        .json()
        .await
        .unwrap();
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{page}");
    let mine = &items[0];
    assert_eq!(mine["number"], "ADA-0001");
    assert_eq!(mine["status"], "paid");
    assert_eq!(mine["total"], json!({"amount": 1440, "currency": "eur"}));
    assert_eq!(mine["tax"], json!({"amount": 288, "currency": "eur"}));
    let bobs: Value = app
        .env
        .app
        .get_as(access(&bob), "/v1/billing/invoices")
        .await
        .json()
        .await
        .unwrap();
    let bobs_id = bobs["items"][0]["id"].as_str().unwrap().to_owned();
    for path in [
        format!("/v1/billing/invoices/{bobs_id}"),
        format!("/v1/billing/invoices/{bobs_id}/pdf"),
    ] {
        assert_eq!(app.env.app.get_as(access(&ada), &path).await.status(), 404);
    }
    let others: Value = app
        .env
        .app
        .get_as(
            access(&ada),
            &format!("/v1/billing/invoices?user_id={}", user_id(&bob)),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(others["items"], json!([]));

    let response = app
        .env
        .app
        .get_as(access(&ada), mine["pdf_url"].as_str().unwrap())
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/pdf");
    let bytes = response.bytes().await.unwrap();
    let pdf = lopdf::Document::load_mem(&bytes).unwrap();
    let pages: Vec<u32> = pdf.get_pages().keys().copied().collect();
    let text = pdf.extract_text(&pages).unwrap();
    for expected in [
        "ADA-0001",
        "Zoë Łukasz-Ærøskøbing",
        "EUR 14.40",
        "EUR 2.88",
        "rabt",
    ] {
        assert!(text.contains(expected), "{expected} in {text}");
    }

    // `billing.read_all` reads every user's invoices.
    sqlx::query("insert into user_roles (user_id, role_name) values ($1, 'admin')")
        .bind(user_id(&ada))
        .execute(&app.env.app.db.admin)
        .await
        .unwrap();
    let login = auth::login(&app.env, "ada@rabt.test", auth::PASSWORD).await;
    let admin: Value = login.json().await.unwrap();
    let read = app
        .env
        .app
        .get_as(access(&admin), &format!("/v1/billing/invoices/{bobs_id}"))
        .await;
    assert_eq!(read.status(), 200);
}

#[tokio::test]
async fn a_removed_accounts_invoices_stay_without_its_personal_data() {
    let app = BillingApp::start(vec![]).await;
    let ada = signed_in(&app.env, "ada@rabt.test").await;
    let customer = app.checkout(access(&ada), "pro").await;
    app.deliver(&event(
        "evt_paid",
        "invoice.paid",
        now(),
        invoice("in_kept", &customer, "KEPT-0001", "paid", 1440),
    ))
    .await;
    sqlx::query("delete from users where id = $1")
        .bind(user_id(&ada))
        .execute(&app.env.app.db.admin)
        .await
        .unwrap();
    let (user, name, email, total): (Option<Uuid>, Option<String>, Option<String>, i64) =
        sqlx::query_as(
            "select user_id, customer_name, customer_email, total from invoices \
             where stripe_invoice_id = 'in_kept'",
        )
        .fetch_one(&app.env.app.db.admin)
        .await
        .unwrap();
    assert_eq!((user, name, email, total), (None, None, None, 1440));
    // Later events of the erased user's customer bring no personal data back.
    app.deliver(&event(
        "evt_again",
        "invoice.paid",
        now(),
        invoice("in_later", &customer, "KEPT-0002", "paid", 1440),
    ))
    .await;
    let (name, email): (Option<String>, Option<String>) = sqlx::query_as(
        "select customer_name, customer_email from invoices where stripe_invoice_id = 'in_later'",
    )
    .fetch_one(&app.env.app.db.admin)
    .await
    .unwrap();
    assert_eq!((name, email), (None, None));
}

#[tokio::test]
async fn two_first_events_of_one_second_race_into_a_fetch_not_a_lost_state() {
    let app = BillingApp::start(vec![]).await;
    let pair = signed_in(&app.env, "ada@rabt.test").await;
    let token = access(&pair);
    let customer = app.checkout(token, "pro").await;
    let second = now() - 30;
    let sub = |status| subscription("sub_race", &customer, PRICE_PRO, status);
    app.stripe.set_subscription(sub("active"));
    let created = event(
        "evt_c",
        "customer.subscription.created",
        second,
        sub("incomplete"),
    );
    let updated = event(
        "evt_u",
        "customer.subscription.updated",
        second,
        sub("active"),
    );
    let (a, b) = tokio::join!(app.deliver(&created), app.deliver(&updated));
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    let deferred = count(
        &app,
        "select count(*) from billing_events where outcome = 'deferred'",
    )
    .await;
    assert_eq!(
        deferred, 1,
        "the second of the same second is settled by Stripe"
    );
    app.settle("the subscription fetched from Stripe", async || {
        plan_of(&app, token).await == "pro"
    })
    .await;
}

#[tokio::test]
async fn only_the_service_links_a_stripe_customer_to_a_user() {
    let app = BillingApp::start(vec![]).await;
    let pair = signed_in(&app.env, "ada@rabt.test").await;
    let ada = user_id(&pair);
    let mut tx = app
        .env
        .app
        .app_db()
        .begin(&crate::helpers::TestApp::as_user(ada))
        .await
        .unwrap();
    let claimed = sqlx::query(
        "insert into billing_customers (user_id, stripe_customer_id) values ($1, 'cus_someone')",
    )
    .bind(ada)
    .execute(&mut *tx)
    .await;
    assert!(claimed.is_err(), "a user cannot claim a Stripe customer");
}

#[tokio::test]
async fn a_paid_invoice_is_receipted_by_email_once_and_not_when_billing_emails_are_off() {
    let app = BillingApp::start(vec![]).await;
    let ada = signed_in(&app.env, "ada@rabt.test").await;
    let bob = signed_in(&app.env, "bob@rabt.test").await;
    let ada_customer = app.checkout(access(&ada), "pro").await;
    let bob_customer = app.checkout(access(&bob), "pro").await;
    let response = app
        .env
        .app
        .put_json_as(
            access(&bob),
            "/v1/me/notification-preferences",
            &json!({"messages": "immediately", "applications": true, "billing": false,
                    "product_news": false}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let receipts = |to: &'static str| {
        let smtp = app.env.smtp.clone();
        move || {
            smtp.messages()
                .iter()
                .filter(|m| m.to == [to] && m.data.contains("Subject: Your rabt receipt"))
                .count()
        }
    };
    let t0 = now() - 60;
    for (customer, id) in [(&ada_customer, "in_ada"), (&bob_customer, "in_bob")] {
        app.deliver(&event(
            &format!("evt_open_{id}"),
            "invoice.finalized",
            t0,
            invoice(id, customer, "R-0001", "open", 1440),
        ))
        .await;
        // Paid, then the same payment again under another event id.
        for n in 0..2 {
            app.deliver(&event(
                &format!("evt_paid_{id}_{n}"),
                "invoice.paid",
                t0 + 1 + n,
                invoice(id, customer, "R-0001", "paid", 1440),
            ))
            .await;
        }
    }
    app.env.app.drain_jobs().await;
    assert_eq!(receipts("ada@rabt.test")(), 1);
    assert_eq!(receipts("bob@rabt.test")(), 0, "billing emails are off");
    let mail = app
        .env
        .smtp
        .messages()
        .into_iter()
        .find(|m| m.to == ["ada@rabt.test"] && m.data.contains("Subject: Your rabt receipt"))
        .unwrap();
    let text = auth::unfold(&mail.data);
    assert!(text.contains("14.40"), "{text}");
    assert!(
        text.contains("/v1/email/unsubscribe/"),
        "transactional: {text}"
    );
}
