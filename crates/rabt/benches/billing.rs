//! Billing's costs: an invoice PDF's render time and size, a webhook
//! signature check, and signed Stripe events applied per second through the
//! whole server (HTTP, signature, one transaction per event, RLS roles),
//! each applied once. Run with `cargo bench --bench billing`; it makes (and
//! drops) its own database on the Postgres of `BENCH_DATABASE_URL` (default
//! the local one) and sends traffic to 127.0.0.1 only. Figures go to
//! docs/PERFORMANCE.md; nothing here asserts a timing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod common;

use std::time::{Duration, Instant};

use common::ScratchDb;
use futures::StreamExt as _;
use rabt::{
    app::{Application, ServeOptions},
    billing::{model::InvoiceRow, pdf},
    signature,
};
use serde_json::json;
use sqlx::{Connection as _, Executor as _};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const WEBHOOK_SECRET: &str = "whsec_bench_secret";

fn report(name: &str, iterations: u32, elapsed: Duration) {
    let per = elapsed / iterations;
    let rate = f64::from(iterations) / elapsed.as_secs_f64();
    println!("{name:<56} {per:>12.2?} per op   {rate:>10.0} ops/s");
}

fn invoice(lines: usize) -> InvoiceRow {
    let line = |n: usize| {
        json!({"description": format!("rabt Pro, seat {n} (at €12.00 / month)"), "quantity": 1,
               "amount": 1200, "period_start": "2026-11-01T00:00:00Z",
               "period_end": "2026-12-01T00:00:00Z"})
    };
    InvoiceRow {
        id: Uuid::now_v7(),
        user_id: None,
        number: Some("7FE1103-0001".into()),
        status: "paid".into(),
        currency: "eur".into(),
        subtotal: 1200 * lines as i64,
        tax: 240 * lines as i64,
        total: 1440 * lines as i64,
        amount_due: 1440 * lines as i64,
        amount_paid: 1440 * lines as i64,
        period_start: None,
        period_end: None,
        hosted_invoice_url: None,
        customer_name: Some("Zoë Łukasz-Ærøskøbing".into()),
        customer_email: Some("zoe@example.com".into()),
        lines: serde_json::Value::Array((0..lines).map(line).collect()),
        issued_at: chrono::Utc::now(),
        paid_at: Some(chrono::Utc::now()),
    }
}

fn pdfs() {
    let issuer = vec![
        "rabt GmbH".to_owned(),
        "Hauptstraße 1, 10115 Berlin".to_owned(),
    ];
    for lines in [1, 40] {
        let row = invoice(lines);
        let first = pdf::render(&row, &issuer).unwrap();
        let n = 200;
        let started = Instant::now();
        for _ in 0..n {
            std::hint::black_box(pdf::render(&row, &issuer).unwrap());
        }
        report(
            &format!("invoice PDF, {lines} lines ({} bytes)", first.len()),
            n,
            started.elapsed(),
        );
    }
}

fn signatures() {
    let body = json!({"id": "evt_1", "type": "invoice.paid", "data": {"object": {"id": "in_1"}}})
        .to_string()
        .repeat(20);
    let now = chrono::Utc::now().timestamp();
    let header = signature::sign(body.as_bytes(), WEBHOOK_SECRET, now);
    let n = 100_000;
    let started = Instant::now();
    for _ in 0..n {
        signature::verify(body.as_bytes(), &header, WEBHOOK_SECRET, now).unwrap();
    }
    report(
        &format!("webhook signature check ({} byte body)", body.len()),
        n,
        started.elapsed(),
    );
}

/// An event as Stripe sends it: a subscription of `customer` in `status`.
fn event(id: &str, subscription: &str, customer: &str, created: i64) -> String {
    json!({
        "id": id, "object": "event", "type": "customer.subscription.updated",
        "created": created, "api_version": "2025-09-30.clover", "livemode": false,
        "pending_webhooks": 1, "request": {"id": null, "idempotency_key": null},
        "data": {"object": {
            "id": subscription, "object": "subscription", "customer": customer,
            "status": "active", "cancel_at_period_end": false, "metadata": {},
            "items": {"object": "list", "data": [{
                "id": format!("si_{subscription}"), "object": "subscription_item",
                "current_period_end": created + 2_592_000,
                "price": {"id": "price_benchPro", "object": "price", "currency": "eur",
                          "unit_amount": 1500, "recurring": {"interval": "month"}}}]}
        }}
    })
    .to_string()
}

async fn webhooks() {
    let scratch = ScratchDb::create("billing").await;
    let url = scratch.url.clone();
    let settings = scratch.settings(&[
        ("rate_limit_write_per_minute", "1000000".into()),
        ("stripe_secret_key", "sk_test_bench".into()),
        ("stripe_webhook_secret", WEBHOOK_SECRET.into()),
        ("stripe_price_pro", "price_benchPro".into()),
        // Nothing is fetched: the events never tie.
        ("stripe_api_base", "http://127.0.0.1:9".into()),
    ]);
    let app = Application::build(
        settings,
        ServeOptions {
            workers: false,
            migrate: true,
        },
    )
    .await
    .unwrap();
    let address = app.local_addr();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run_until_stopped(shutdown.clone()));

    // 1,000 users, each with a Stripe customer.
    let mut db = sqlx::PgConnection::connect(url.as_str()).await.unwrap();
    db.execute(
        "insert into users (email, display_name) \
         select 'u' || n || '@bench.test', 'User ' || n from generate_series(1, 1000) n; \
         insert into billing_customers (user_id, stripe_customer_id) \
         select id, 'cus_bench' || row_number() over (order by id) from users",
    )
    .await
    .unwrap();

    let client = reqwest::Client::new();
    let endpoint = format!("http://{address}/v1/billing/webhook");
    let events = 5_000;
    let created = chrono::Utc::now().timestamp() - 3600;
    let bodies: Vec<String> = (0..events)
        .map(|n| {
            let customer = n % 1000 + 1;
            // Each subscription gets five events, one second apart: newer wins.
            event(
                &format!("evt_bench{n}"),
                &format!("sub_bench{customer}"),
                &format!("cus_bench{customer}"),
                created + i64::from(n / 1000),
            )
        })
        .collect();
    let send = |body: String| {
        let client = client.clone();
        let endpoint = endpoint.clone();
        async move {
            let header = signature::sign(
                body.as_bytes(),
                WEBHOOK_SECRET,
                chrono::Utc::now().timestamp(),
            );
            let response = client
                .post(&endpoint)
                .header("content-type", "application/json")
                .header("stripe-signature", header)
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
        }
    };
    for (label, round) in [("first delivery", 1), ("replay of the same events", 2)] {
        let started = Instant::now();
        futures::stream::iter(bodies.iter().cloned().map(send))
            .buffer_unordered(32)
            .collect::<Vec<()>>()
            .await;
        report(
            &format!("signed events over HTTP, 32 at once: {label}"),
            events,
            started.elapsed(),
        );
        let recorded: i64 = sqlx::query_scalar("select count(*) from billing_events")
            .fetch_one(&mut db)
            .await
            .unwrap();
        let applied: i64 =
            sqlx::query_scalar("select count(*) from billing_events where outcome = 'applied'")
                .fetch_one(&mut db)
                .await
                .unwrap();
        println!("  after round {round}: {recorded} events recorded, {applied} applied");
    }
    let pro: i64 = sqlx::query_scalar("select count(*) from users where plan = 'pro'")
        .fetch_one(&mut db)
        .await
        .unwrap();
    println!("  users on pro: {pro}");

    shutdown.cancel();
    let _ = server.await;
    drop(db);
    scratch.drop().await;
}

#[tokio::main]
async fn main() {
    pdfs();
    signatures();
    webhooks().await;
}
