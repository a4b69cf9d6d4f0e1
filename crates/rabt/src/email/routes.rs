//! The links in sent mail, and the bounce webhook. None needs a session:
//! each is authorised by a token rabt minted for one message, or by the
//! events secret. A token that rabt did not mint is 404, and a redirect goes
//! only to a URL stored with its token: never an open redirect.

use axum::{
    Json,
    body::Bytes,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    Template,
    store::{self, Mark},
    tokens,
};
use crate::{
    db::Actor,
    http::{
        ApiError, AppPath, ErrorCode, FieldError,
        openapi::{InvalidJson, InvalidToken, NotFound, Unavailable, Validation},
    },
    signature,
    state::AppState,
};

/// The most events one delivery of `POST /email/events` may carry.
const MAX_EVENTS: usize = 100;

/// A transparent 1×1 GIF.
const PIXEL: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

/// The unsubscribe pages: a form that posts to the same URL, and nothing
/// else may run or load.
const PAGE_CSP: &str =
    "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub fn router() -> OpenApiRouter<crate::state::AppState> {
    OpenApiRouter::new()
        .routes(routes!(open))
        .routes(routes!(click))
        .routes(routes!(unsubscribe_page, unsubscribe))
        .routes(routes!(events))
}

/// An email's open pixel. Fetches by known image proxies are counted apart
/// from opens.
#[utoipa::path(get, path = "/email/o/{token}", tag = "email",
    params(("token" = String, Path)),
    responses(
        (status = 200, description = "A 1×1 GIF", content_type = "image/gif", body = Vec<u8>),
        NotFound,
    ))]
pub async fn open(
    State(state): State<AppState>,
    headers: HeaderMap,
    AppPath(token): AppPath<String>,
) -> Result<Response, ApiError> {
    let hash = tokens::parse(&token).ok_or_else(ApiError::not_found)?;
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut tx = state.db.begin(&Actor::Service).await?;
    if !store::record_open(&mut tx, &hash, tokens::is_image_proxy(agent)).await? {
        return Err(ApiError::not_found());
    }
    tx.commit().await?;
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("image/gif")),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-store, max-age=0"),
            ),
            // Mail clients show it from their own origin.
            (
                header::HeaderName::from_static("cross-origin-resource-policy"),
                HeaderValue::from_static("cross-origin"),
            ),
        ],
        PIXEL,
    )
        .into_response())
}

/// A tracked link: counts the click and redirects to where rabt put it.
#[utoipa::path(get, path = "/email/c/{token}", tag = "email",
    params(("token" = String, Path)),
    responses(
        (status = 302, description = "To the link's target",
            headers(("Location" = String, description = "The link's original target"))),
        NotFound,
    ))]
pub async fn click(
    State(state): State<AppState>,
    AppPath(token): AppPath<String>,
) -> Result<Response, ApiError> {
    let hash = tokens::parse(&token).ok_or_else(ApiError::not_found)?;
    let mut tx = state.db.begin(&Actor::Service).await?;
    let target = store::record_click(&mut tx, &hash)
        .await?
        .ok_or_else(ApiError::not_found)?;
    tx.commit().await?;
    let location = HeaderValue::from_str(&target).map_err(ApiError::internal)?;
    Ok((
        StatusCode::FOUND,
        [
            (header::LOCATION, location),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
    )
        .into_response())
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>{title}</title></head>\
         <body><main><h1>{title}</h1>{body}</main></body></html>\n"
    );
    (
        status,
        [
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(PAGE_CSP),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        Html(html),
    )
        .into_response()
}

/// What an unsubscribe turns off, for the page.
fn what(template: &str) -> &'static str {
    match Template::from_name(template) {
        Some(Template::ProductNews) => "product news",
        Some(Template::ApplicationEvent) => "emails about applications",
        Some(Template::UnreadMessages | Template::UnreadDigest) => "emails about messages",
        Some(Template::BillingReceipt) => "billing emails",
        _ => "these emails",
    }
}

/// The unsubscribe link's page: it asks, and changes nothing (scanners and
/// link previews follow links).
#[utoipa::path(get, path = "/email/unsubscribe/{token}", tag = "email",
    params(("token" = String, Path)),
    responses(
        (status = 200, description = "A confirmation page with a button", content_type = "text/html", body = String),
        NotFound,
    ))]
pub async fn unsubscribe_page(
    State(state): State<AppState>,
    AppPath(token): AppPath<String>,
) -> Result<Response, ApiError> {
    let hash = tokens::parse(&token).ok_or_else(ApiError::not_found)?;
    let mut tx = state.db.read(&Actor::Service).await?;
    let found = store::unsubscribe_token(&mut tx, &hash)
        .await?
        .ok_or_else(ApiError::not_found)?;
    drop(tx);
    Ok(page(
        StatusCode::OK,
        "Unsubscribe",
        &format!(
            "<p>Stop {} from rabt? Security emails about your account still arrive.</p>\
             <form method=\"post\"><input type=\"hidden\" name=\"List-Unsubscribe\" \
             value=\"One-Click\"><button type=\"submit\">Unsubscribe</button></form>",
            what(&found.template)
        ),
    ))
}

/// One-click unsubscribe (RFC 8058): no session, idempotent. Turns off the
/// preference behind the message and puts the address on the suppression
/// list, which holds back everything but security mail.
#[utoipa::path(post, path = "/email/unsubscribe/{token}", tag = "email",
    params(("token" = String, Path)),
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "`List-Unsubscribe=One-Click`, or nothing"),
    responses(
        (status = 200, description = "Unsubscribed", content_type = "text/html", body = String),
        NotFound,
    ))]
pub async fn unsubscribe(
    State(state): State<AppState>,
    AppPath(token): AppPath<String>,
) -> Result<Response, ApiError> {
    let hash = tokens::parse(&token).ok_or_else(ApiError::not_found)?;
    let mut tx = state.db.begin(&Actor::Service).await?;
    let found = store::unsubscribe_token(&mut tx, &hash)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if let (Some(user), Some(topic)) = (
        found.user,
        Template::from_name(&found.template).and_then(Template::topic),
    ) {
        store::turn_off(&mut tx, user, topic).await?;
    }
    if let Some(address) = &found.address {
        store::suppress(&mut tx, address, "unsubscribed", "unsubscribe", None, None).await?;
    }
    store::mark(&mut tx, found.message, Mark::Unsubscribed).await?;
    tx.commit().await?;
    if let Some(template) = Template::from_name(&found.template) {
        super::send::count(template, "unsubscribed");
    }
    Ok(page(
        StatusCode::OK,
        "Unsubscribed",
        &format!(
            "<p>You will get no more {} from rabt. Security emails about your account \
             still arrive. You can turn emails back on in your notification preferences.</p>",
            what(&found.template)
        ),
    ))
}

/// A delivery report from the mail provider (or a relay of its reports).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailEvents {
    /// At most 100.
    pub events: Vec<EmailEvent>,
}

/// A bounce or complaint about one address.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailEvent {
    #[serde(rename = "type")]
    pub kind: EventKind,
    pub email: String,
    /// For bounces: `hard` (the default) or `soft` (suppressed for
    /// `RABT_EMAIL_SOFT_BOUNCE_DAYS`).
    pub bounce_type: Option<BounceType>,
    /// The `Message-ID` of the message it is about, when known.
    pub message_id: Option<String>,
    /// The provider's words, kept with the suppression (500 characters).
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Bounce,
    Complaint,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BounceType {
    Hard,
    Soft,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventsAck {
    pub applied: usize,
}

/// Bounces and complaints, signed like Stripe's webhooks with
/// `RABT_EMAIL_EVENTS_SECRET`: `Rabt-Signature: t=<unix time>,v1=<hex
/// HMAC-SHA256 of "<t>.<body>">`, within 5 minutes. A hard bounce or a
/// complaint suppresses the address for good, a soft bounce for a while.
#[utoipa::path(post, path = "/email/events", tag = "email",
    request_body = EmailEvents,
    params(("Rabt-Signature" = String, Header, description = "`t=…,v1=…`")),
    responses(
        (status = 200, body = EventsAck),
        InvalidToken, InvalidJson, Validation, Unavailable,
    ))]
pub async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<EventsAck>, ApiError> {
    let Some(secret) = state.settings.email.events_secret.as_ref() else {
        return Err(ApiError::unavailable(
            "Email events are not configured (RABT_EMAIL_EVENTS_SECRET).",
        ));
    };
    let header = headers
        .get("rabt-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if let Err(err) = signature::verify(
        &body,
        header,
        secret.expose_secret(),
        Utc::now().timestamp(),
    ) {
        tracing::warn!(reason = err.as_str(), "email events refused: bad signature");
        return Err(ApiError::new(ErrorCode::InvalidToken)
            .with_detail("The Rabt-Signature header does not verify this body."));
    }
    let report: EmailEvents = serde_json::from_slice(&body).map_err(|err| {
        ApiError::new(ErrorCode::InvalidJson)
            .with_detail(format!("The body is not a report: {err}"))
    })?;
    let mut errors = Vec::new();
    if report.events.len() > MAX_EVENTS {
        errors.push(FieldError::new(
            "events",
            "too_long",
            "At most 100 events per delivery.",
        ));
    }
    for (i, event) in report.events.iter().enumerate() {
        let email = event.email.trim();
        if email.len() > 320 || email.parse::<lettre::Address>().is_err() {
            errors.push(FieldError::new(
                format!("events[{i}].email"),
                "invalid",
                "Not an email address.",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let soft_until: DateTime<Utc> = Utc::now()
        + chrono::Duration::from_std(state.settings.email.soft_bounce_suppression)
            .map_err(ApiError::internal)?;
    let mut tx = state.db.begin(&Actor::Service).await?;
    for event in &report.events {
        let (reason, expires, mark) = match (event.kind, event.bounce_type) {
            (EventKind::Complaint, _) => ("complaint", None, Mark::Complained),
            (EventKind::Bounce, Some(BounceType::Soft)) => {
                ("soft_bounce", Some(soft_until), Mark::Bounced)
            }
            (EventKind::Bounce, _) => ("hard_bounce", None, Mark::Bounced),
        };
        store::suppress(
            &mut tx,
            event.email.trim(),
            reason,
            "webhook",
            event.detail.as_deref(),
            expires,
        )
        .await?;
        if let Some(message_id) = &event.message_id
            && let Some(message) = store::message_by_message_id(&mut tx, message_id).await?
        {
            store::mark(&mut tx, message, mark).await?;
        }
        metrics::counter!("rabt_email_events_total", "reason" => reason).increment(1);
    }
    tx.commit().await?;
    Ok(Json(EventsAck {
        applied: report.events.len(),
    }))
}
