//! A local fake of Stripe's HTTP API, answering with Stripe's own fixture
//! objects (`fixtures/stripe/fixtures.json`) and recording what it was asked;
//! and webhook events signed with Stripe's scheme, computed here on their
//! own (not with the code under test).

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{
    Form, Json, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use hmac::{Hmac, Mac as _};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::helpers::{
    auth::{self, AuthApp},
    wait_until,
};

pub const SECRET_KEY: &str = "sk_test_rabt_fake";
pub const WEBHOOK_SECRET: &str = "whsec_rabt_test_endpoint_secret";
pub const PRICE_PRO: &str = "price_rabtPro";
pub const PRICE_TEAM: &str = "price_rabtTeam";

/// Stripe's example object of `resource`.
pub fn fixture(resource: &str) -> Value {
    static FIXTURES: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    FIXTURES.get_or_init(|| {
        let text = include_str!("../fixtures/stripe/fixtures.json");
        serde_json::from_str(text).unwrap()
    })["resources"][resource]
        .clone()
}

/// One call the fake answered.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: &'static str,
    pub path: String,
    pub idempotency_key: Option<String>,
    pub stripe_version: Option<String>,
    pub form: HashMap<String, String>,
}

#[derive(Default)]
struct Books {
    calls: Vec<Call>,
    /// Idempotency key → the object first answered.
    answered: HashMap<String, Value>,
    subscriptions: HashMap<String, Value>,
    next: u32,
    /// Answer every call with this status (an outage, a refusal).
    failing: Option<u16>,
}

#[derive(Clone)]
pub struct FakeStripe {
    pub address: SocketAddr,
    books: Arc<Mutex<Books>>,
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn stripe_error(status: u16, kind: &str, message: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        Json(json!({"error": {"type": kind, "message": message}})),
    )
        .into_response()
}

impl FakeStripe {
    pub async fn start() -> Self {
        let books = Arc::new(Mutex::new(Books::default()));
        let router = Router::new()
            .route("/v1/customers", post(create_customer))
            .route("/v1/checkout/sessions", post(create_checkout))
            .route("/v1/billing_portal/sessions", post(create_portal))
            .route(
                "/v1/subscriptions/{id}",
                get(get_subscription).delete(cancel_subscription),
            )
            .route("/v1/prices/{id}", get(get_price))
            .with_state(books.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { address, books }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn calls(&self) -> Vec<Call> {
        self.books.lock().unwrap().calls.clone()
    }

    pub fn calls_to(&self, path: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.path == path)
            .collect()
    }

    /// What `GET /v1/subscriptions/{id}` answers from now on.
    pub fn set_subscription(&self, subscription: Value) {
        let id = subscription["id"].as_str().unwrap().to_owned();
        self.books
            .lock()
            .unwrap()
            .subscriptions
            .insert(id, subscription);
    }

    pub fn fail_with(&self, status: Option<u16>) {
        self.books.lock().unwrap().failing = status;
    }
}

type Books_ = State<Arc<Mutex<Books>>>;

/// Records the call; the answer to give instead, if the fake is failing or
/// the key is not ours.
fn record(
    books: &Arc<Mutex<Books>>,
    method: &'static str,
    path: String,
    headers: &HeaderMap,
    form: HashMap<String, String>,
) -> Option<Response> {
    let mut books = books.lock().unwrap();
    books.calls.push(Call {
        method,
        path,
        idempotency_key: header(headers, "idempotency-key"),
        stripe_version: header(headers, "stripe-version"),
        form,
    });
    if header(headers, "authorization").as_deref() != Some(&format!("Bearer {SECRET_KEY}")) {
        return Some(stripe_error(
            401,
            "invalid_request_error",
            "Invalid API Key provided",
        ));
    }
    books
        .failing
        .map(|status| stripe_error(status, "api_error", "The fake is failing on purpose."))
}

/// Answers a `POST` once per idempotency key, as Stripe does.
fn once(
    books: &Arc<Mutex<Books>>,
    headers: &HeaderMap,
    make: impl FnOnce(u32) -> Value,
) -> Response {
    let mut books = books.lock().unwrap();
    let key = header(headers, "idempotency-key").unwrap_or_default();
    if let Some(first) = books.answered.get(&key) {
        return Json(first.clone()).into_response();
    }
    books.next += 1;
    let object = make(books.next);
    if !key.is_empty() {
        books.answered.insert(key, object.clone());
    }
    Json(object).into_response()
}

async fn create_customer(
    State(books): Books_,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Some(refused) = record(
        &books,
        "POST",
        "/v1/customers".into(),
        &headers,
        form.clone(),
    ) {
        return refused;
    }
    once(&books, &headers, |n| {
        let mut customer = fixture("customer");
        customer["id"] = json!(format!("cus_fake{n}"));
        customer["email"] = json!(form.get("email"));
        customer["name"] = json!(form.get("name"));
        customer
    })
}

async fn create_checkout(
    State(books): Books_,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Some(refused) = record(
        &books,
        "POST",
        "/v1/checkout/sessions".into(),
        &headers,
        form.clone(),
    ) {
        return refused;
    }
    once(&books, &headers, |n| {
        let mut session = fixture("checkout.session");
        let id = format!("cs_test_fake{n}");
        session["url"] = json!(format!("https://checkout.stripe.com/c/pay/{id}"));
        session["id"] = json!(id);
        session["mode"] = json!(form.get("mode"));
        session["customer"] = json!(form.get("customer"));
        session["client_reference_id"] = json!(form.get("client_reference_id"));
        session["success_url"] = json!(form.get("success_url"));
        session["cancel_url"] = json!(form.get("cancel_url"));
        session
    })
}

async fn create_portal(
    State(books): Books_,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Some(refused) = record(
        &books,
        "POST",
        "/v1/billing_portal/sessions".into(),
        &headers,
        form.clone(),
    ) {
        return refused;
    }
    once(&books, &headers, |n| {
        let mut session = fixture("billing_portal.session");
        session["id"] = json!(format!("bps_fake{n}"));
        session["customer"] = json!(form.get("customer"));
        session["return_url"] = json!(form.get("return_url"));
        session["url"] = json!(format!("https://billing.stripe.com/p/session/fake{n}"));
        session
    })
}

async fn get_subscription(
    State(books): Books_,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(refused) = record(
        &books,
        "GET",
        format!("/v1/subscriptions/{id}"),
        &headers,
        HashMap::new(),
    ) {
        return refused;
    }
    match books.lock().unwrap().subscriptions.get(&id) {
        Some(subscription) => Json(subscription.clone()).into_response(),
        None => stripe_error(404, "invalid_request_error", "No such subscription"),
    }
}

/// `DELETE /v1/subscriptions/{id}`: cancels at once, as Stripe does; a
/// subscription already canceled answers Stripe's 400.
async fn cancel_subscription(
    State(books): Books_,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(refused) = record(
        &books,
        "DELETE",
        format!("/v1/subscriptions/{id}"),
        &headers,
        HashMap::new(),
    ) {
        return refused;
    }
    let mut books = books.lock().unwrap();
    let Some(subscription) = books.subscriptions.get_mut(&id) else {
        return stripe_error(404, "invalid_request_error", "No such subscription");
    };
    if subscription["status"] == "canceled" {
        return stripe_error(
            400,
            "invalid_request_error",
            "A canceled subscription can only update its cancellation_details and metadata.",
        );
    }
    subscription["status"] = json!("canceled");
    subscription["canceled_at"] = json!(now());
    Json(subscription.clone()).into_response()
}

async fn get_price(State(books): Books_, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Some(refused) = record(
        &books,
        "GET",
        format!("/v1/prices/{id}"),
        &headers,
        HashMap::new(),
    ) {
        return refused;
    }
    let mut price = fixture("price");
    price["unit_amount"] = json!(if id == PRICE_TEAM { 4900 } else { 1500 });
    price["unit_amount_decimal"] = json!(price["unit_amount"].to_string());
    price["currency"] = json!("eur");
    price["id"] = json!(id);
    Json(price).into_response()
}

/// A subscription of `customer` to `price`, in `status`.
pub fn subscription(id: &str, customer: &str, price: &str, status: &str) -> Value {
    let mut subscription = fixture("subscription");
    subscription["id"] = json!(id);
    subscription["customer"] = json!(customer);
    subscription["status"] = json!(status);
    subscription["cancel_at_period_end"] = json!(false);
    let item = &mut subscription["items"]["data"][0];
    item["price"]["id"] = json!(price);
    item["subscription"] = json!(id);
    item["current_period_end"] = json!(1_900_000_000);
    subscription
}

/// An invoice of `customer`.
pub fn invoice(id: &str, customer: &str, number: &str, status: &str, total: i64) -> Value {
    let mut invoice = fixture("invoice");
    invoice["id"] = json!(id);
    invoice["customer"] = json!(customer);
    invoice["number"] = json!(number);
    invoice["status"] = json!(status);
    invoice["currency"] = json!("eur");
    invoice["subtotal"] = json!(total - total / 5);
    invoice["total_excluding_tax"] = json!(total - total / 5);
    invoice["total"] = json!(total);
    invoice["amount_due"] = json!(total);
    invoice["amount_paid"] = json!(if status == "paid" { total } else { 0 });
    invoice["customer_name"] = json!("Zoë Łukasz-Ærøskøbing");
    invoice["customer_email"] = json!("zoe@rabt.test");
    invoice["hosted_invoice_url"] = json!(format!("https://invoice.stripe.com/i/{id}"));
    let line = &mut invoice["lines"]["data"][0];
    line["amount"] = json!(total - total / 5);
    line["description"] = json!("1 × rabt Pro (at €12.00 / month)");
    invoice
}

/// `object` wrapped in an event of `kind`, created at `created`.
pub fn event(id: &str, kind: &str, created: i64, object: Value) -> Value {
    let mut event = fixture("event");
    event["id"] = json!(id);
    event["type"] = json!(kind);
    event["created"] = json!(created);
    event["data"] = json!({"object": object});
    event
}

/// `Stripe-Signature` for `payload` at `timestamp`: `t=…,v1=HMAC-SHA256(secret, "t.payload")`.
pub fn signature(payload: &str, secret: &str, timestamp: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{payload}").as_bytes());
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// An app whose billing talks to a fake Stripe.
pub struct BillingApp {
    pub env: AuthApp,
    pub stripe: FakeStripe,
}

impl BillingApp {
    pub async fn start(extra: Vec<(&'static str, String)>) -> Self {
        let stripe = FakeStripe::start().await;
        let mut overrides = vec![
            ("stripe_secret_key", SECRET_KEY.to_owned()),
            ("stripe_webhook_secret", WEBHOOK_SECRET.to_owned()),
            ("stripe_price_pro", PRICE_PRO.to_owned()),
            ("stripe_price_team", PRICE_TEAM.to_owned()),
            ("stripe_api_base", stripe.url()),
        ];
        overrides.extend(extra);
        Self {
            env: auth::spawn(overrides).await,
            stripe,
        }
    }

    /// Sends `event` signed now with the endpoint secret.
    pub async fn deliver(&self, event: &Value) -> reqwest::Response {
        let body = event.to_string();
        self.deliver_raw(&body, &signature(&body, WEBHOOK_SECRET, now()))
            .await
    }

    pub async fn deliver_raw(&self, body: &str, signature: &str) -> reqwest::Response {
        self.env
            .app
            .client
            .post(self.env.app.url("/v1/billing/webhook"))
            .header("content-type", "application/json")
            .header("stripe-signature", signature)
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
    }

    /// Checks out `plan` as `token`'s holder; returns the customer id the
    /// session was made for.
    pub async fn checkout(&self, token: &str, plan: &str) -> String {
        let response = self
            .env
            .app
            .post_json_as(token, "/v1/billing/checkout", &json!({"plan": plan}))
            .await;
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        let url = response.json::<Value>().await.unwrap()["url"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(url.starts_with("https://checkout.stripe.com/"), "{url}");
        self.stripe
            .calls_to("/v1/checkout/sessions")
            .last()
            .and_then(|c| c.form.get("customer").cloned())
            .unwrap()
    }

    /// Runs the queued jobs until `done` holds.
    pub async fn settle(&self, what: &str, mut done: impl AsyncFnMut() -> bool) {
        wait_until(std::time::Duration::from_secs(10), what, async || {
            self.env.app.drain_jobs().await;
            done().await
        })
        .await;
    }
}
