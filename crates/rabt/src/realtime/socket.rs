//! `GET /v1/realtime`: one user's WebSocket (API.md §6).
//!
//! The token is checked before the upgrade. The socket is registered with
//! the [`Hub`](super::hub::Hub) before the log is read, so nothing committed
//! in between is missed, and whatever it already sent (its `last_sent` seq)
//! is never sent again: a replay (`?since=`) and the live events join
//! without a gap or a duplicate. Events arrive in seq order; one that skips
//! ahead makes the socket read the missing ones from the log first.

use std::time::{Duration, Instant};

use axum::{
    extract::{
        State,
        ws::{
            CloseFrame, Message as Frame, Utf8Bytes, WebSocket, WebSocketUpgrade,
            rejection::WebSocketUpgradeRejection,
        },
    },
    http::HeaderMap,
    response::Response,
};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;
use uuid::Uuid;

use super::{
    hub::{Close, Delivery, Position, Registration},
    store,
};
use crate::{
    auth::{AuthUser, sessions},
    http::{ApiError, AppQuery, ErrorCode},
    messaging::{self, model::NewMessage},
    state::AppState,
};

/// The largest frame a client may send (a message of 5,000 four-byte
/// characters fits).
pub const MAX_FRAME_BYTES: usize = 32 * 1024;
/// What a socket reads at once, and the most it keeps of unsent output.
const READ_BUFFER_BYTES: usize = 4 * 1024;
const MAX_WRITE_BUFFER_BYTES: usize = 1024 * 1024;
/// Events read from the log per query when catching up.
const REPLAY_PAGE: i64 = 500;
/// How often the server pings, and how long a silent client is kept.
const PING_EVERY: Duration = Duration::from_secs(25);
const SILENT_FOR: Duration = Duration::from_secs(60);
/// How often a socket checks its session without being asked to.
const SESSION_CHECK_EVERY: Duration = Duration::from_secs(30);
/// How long one frame may take to send before the client counts as gone.
const SEND_WITHIN: Duration = Duration::from_secs(10);

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RealtimeParams {
    /// The access token, for clients that cannot set `Sec-WebSocket-Protocol`.
    pub access_token: Option<String>,
    /// The last `seq` the client received: the events after it are replayed
    /// first. Older than what is kept: an `error` frame `resync_required`.
    pub since: Option<i64>,
}

/// The realtime WebSocket.
///
/// Authenticate with `Sec-WebSocket-Protocol: bearer, <access token>` (the
/// server answers with the `bearer` subprotocol) or `?access_token=`; a bad
/// token is refused with 401 before the upgrade.
///
/// Frames are JSON objects with a `type`. Server → client, each with `seq`
/// (increasing per user): `message.created`, `message.updated`,
/// `message.deleted` (`conversation_id`, `message` as the REST API shows
/// it), `conversation.read` (`conversation_id`, `user_id`, `message_id`),
/// `notification.created` (`notification`), and the ephemeral `typing`
/// (`conversation_id`, `user_id`), `pong` and `error` (`code`, `detail`, and
/// `client_message_id` when it answers a send), which carry the latest seq
/// and are never replayed. Client → server: `message.send`
/// (`conversation_id`, `body`, `client_message_id`, `attachment_file_ids`),
/// `typing` (`conversation_id`), `ping`.
///
/// Reconnect with `?since=<last seq>` to receive first what was missed (kept
/// `RABT_REALTIME_RETENTION_HOURS`, 24 by default), then live events. Close
/// codes: 1001 going away (shutdown) and 4008 too slow (reconnect with
/// `since`), 4001 session ended, 4009 `resync_required` (reload by REST,
/// then reconnect without `since`), 1008 too many frames, 1009 frame over
/// 32 KiB.
#[utoipa::path(get, path = "/realtime", tag = "messaging",
    params(RealtimeParams), security(("bearer" = [])),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 401, description = "No valid token (`unauthorized`)",
            body = crate::http::error::ProblemBody, content_type = "application/problem+json"),
        (status = 426, description = "Not a WebSocket upgrade request",
            body = crate::http::error::ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn realtime(
    State(state): State<AppState>,
    headers: HeaderMap,
    AppQuery(params): AppQuery<RealtimeParams>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let offered = protocol_token(&headers);
    let token = offered
        .as_deref()
        .or(params.access_token.as_deref())
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized))?;
    let caller = AuthUser::from_token(&state, token).await?;
    let upgrade = upgrade.map_err(|rejection| {
        ApiError::new(ErrorCode::UpgradeRequired).with_detail(format!(
            "This endpoint speaks WebSocket: {}",
            rejection.body_text()
        ))
    })?;
    if params.since.is_some_and(|since| since < 0) {
        return Err(ApiError::validation(vec![crate::http::FieldError::new(
            "since",
            "invalid",
            "A seq is 0 or more.",
        )]));
    }
    let upgrade = if offered.is_some() {
        upgrade.protocols(["bearer"])
    } else {
        upgrade
    };
    let since = params.since;
    Ok(upgrade
        .max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        // Frames are small and each send is flushed: the 128 KiB default
        // read buffer would be most of a socket's memory.
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_WRITE_BUFFER_BYTES)
        .on_upgrade(move |socket| async move {
            Connection::new(state, caller, socket).run(since).await;
        }))
}

/// The token of `Sec-WebSocket-Protocol: bearer, <token>`.
fn protocol_token(headers: &HeaderMap) -> Option<String> {
    let offered = headers
        .get_all(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    match offered.as_slice() {
        ["bearer", token, ..] if !token.is_empty() => Some((*token).to_owned()),
        _ => None,
    }
}

/// A frame a client sends.
#[derive(Debug, Deserialize)]
#[serde(tag = "type")]
enum ClientFrame {
    #[serde(rename = "message.send")]
    Send {
        conversation_id: Uuid,
        body: String,
        client_message_id: Option<String>,
        #[serde(default)]
        attachment_file_ids: Vec<Uuid>,
    },
    #[serde(rename = "typing")]
    Typing { conversation_id: Uuid },
    #[serde(rename = "ping")]
    Ping {},
}

/// Why the loop ended.
enum Ended {
    /// The client closed, or the connection is gone.
    Gone,
    /// The server closes, with this code and reason.
    Close(u16, &'static str),
}

/// Frames a socket may send: a bucket of `burst`, refilled at `per_sec`.
struct Flood {
    tokens: f64,
    burst: f64,
    per_sec: f64,
    at: Instant,
    refused: u32,
}

impl Flood {
    fn new(per_minute: u32) -> Self {
        let burst = f64::from((per_minute / 10).max(5));
        Self {
            tokens: burst,
            burst,
            per_sec: f64::from(per_minute) / 60.0,
            at: Instant::now(),
            refused: 0,
        }
    }

    /// Whether one more frame may be taken now.
    fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * self.per_sec)
            .min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.refused = 0;
            true
        } else {
            self.refused += 1;
            false
        }
    }
}

struct Connection {
    state: AppState,
    caller: AuthUser,
    socket: WebSocket,
    /// The seq of the last logged event sent (or known to the client).
    last_sent: i64,
    /// Where the hub reads `last_sent`; set once the socket is registered.
    position: Option<Position>,
}

impl Connection {
    fn new(state: AppState, caller: AuthUser, socket: WebSocket) -> Self {
        Self {
            state,
            caller,
            socket,
            last_sent: 0,
            position: None,
        }
    }

    /// Records that the client has every event up to `seq`.
    fn mark(&mut self, seq: i64) {
        self.last_sent = seq;
        if let Some(position) = &self.position {
            position.set(seq);
        }
    }

    async fn run(mut self, since: Option<i64>) {
        let hub = self.state.realtime.clone();
        let mut registration = hub.register(
            self.caller.id,
            self.caller.session_id,
            self.state.settings.realtime.queue,
        );
        self.position = Some(registration.position());
        let ended = match self.start(since).await {
            Ok(None) => self.serve(&mut registration).await,
            Ok(Some(ended)) => ended,
            Err(err) => {
                tracing::warn!(error = %err, "realtime socket could not start");
                Ended::Close(1011, "try again")
            }
        };
        drop(registration);
        if let Ended::Close(code, reason) = ended {
            let close = Frame::Close(Some(CloseFrame {
                code,
                reason: Utf8Bytes::from_static(reason),
            }));
            let _ = tokio::time::timeout(SEND_WITHIN, self.socket.send(close)).await;
        }
    }

    /// Replays what the client missed, or places it at the latest seq.
    async fn start(&mut self, since: Option<i64>) -> Result<Option<Ended>, ApiError> {
        let (latest, oldest) = {
            let mut conn = self.state.db.read(&self.caller.actor()).await?;
            store::bounds(&mut conn, self.caller.id).await?
        };
        let Some(since) = since else {
            self.mark(latest);
            return Ok(None);
        };
        let kept = since == latest || (since < latest && oldest.is_some_and(|o| o <= since + 1));
        if !kept {
            self.mark(latest);
            return Ok(Some(self.resync().await));
        }
        self.mark(since);
        metrics::counter!("rabt_realtime_replays_total").increment(1);
        self.catch_up().await
    }

    /// Tells the client that what it missed is no longer kept, and closes.
    async fn resync(&mut self) -> Ended {
        let frame = self.error_frame(
            "resync_required",
            "Events after this seq are no longer kept: reload by REST, then reconnect \
             without since.",
            None,
        );
        let _ = self.send_text(frame).await;
        Ended::Close(4009, "resync required")
    }

    /// Sends the logged events after `last_sent`, in order.
    async fn catch_up(&mut self) -> Result<Option<Ended>, ApiError> {
        loop {
            let page = {
                let mut conn = self.state.db.read(&self.caller.actor()).await?;
                store::after(&mut conn, self.caller.id, self.last_sent, REPLAY_PAGE).await?
            };
            let full = page.len() == usize::try_from(REPLAY_PAGE).unwrap_or(usize::MAX);
            // Seqs have no holes but those pruning leaves: one here means the
            // client would miss events.
            if page
                .first()
                .is_some_and(|(seq, _)| *seq != self.last_sent + 1)
            {
                return Ok(Some(self.resync().await));
            }
            for (seq, frame) in page {
                if let Some(ended) = self.send_text(frame).await {
                    return Ok(Some(ended));
                }
                self.mark(seq);
            }
            if !full {
                return Ok(None);
            }
        }
    }

    async fn serve(&mut self, registration: &mut Registration) -> Ended {
        let mut flood = Flood::new(self.state.settings.realtime.frames_per_minute);
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        let mut session_check = tokio::time::interval(SESSION_CHECK_EVERY);
        session_check.tick().await;
        let mut heard = Instant::now();
        let closing = registration.closing().clone();
        loop {
            let step = tokio::select! {
                () = closing.cancelled() => {
                    let reason = registration.reason().unwrap_or(Close::GoingAway);
                    let (code, text) = reason.code();
                    return Ended::Close(code, text);
                }
                delivery = registration.deliveries.recv() => match delivery {
                    Some(delivery) => self.deliver(delivery).await,
                    None => return Ended::Close(1011, "try again"),
                },
                frame = self.socket.recv() => {
                    heard = Instant::now();
                    match frame {
                        Some(Ok(frame)) => self.receive(frame, &mut flood).await,
                        Some(Err(err)) => return closed_by_error(&err),
                        None => return Ended::Gone,
                    }
                }
                _ = ping.tick() => {
                    if heard.elapsed() > SILENT_FOR {
                        return Ended::Close(1001, "no answer to pings");
                    }
                    self.send(Frame::Ping(Default::default())).await
                }
                _ = session_check.tick() => self.check_session().await,
            };
            if let Some(ended) = step {
                return ended;
            }
        }
    }

    async fn deliver(&mut self, delivery: Delivery) -> Option<Ended> {
        match delivery {
            Delivery::Event { seq, .. } if seq <= self.last_sent => None,
            Delivery::Event { seq, frame } if seq == self.last_sent + 1 => {
                let ended = self.send_text(frame.to_string()).await;
                if ended.is_none() {
                    self.mark(seq);
                    metrics::counter!("rabt_realtime_events_delivered_total").increment(1);
                }
                ended
            }
            Delivery::CatchUp { seq: Some(seq) } if seq <= self.last_sent => None,
            Delivery::Event { .. } | Delivery::CatchUp { .. } => match self.catch_up().await {
                Ok(ended) => ended,
                Err(err) => {
                    // The hub's next check of positions wakes the socket again.
                    tracing::warn!(error = %err, "realtime socket could not read the log");
                    None
                }
            },
            Delivery::Ephemeral(frame) => {
                let mut frame = (*frame).clone();
                frame.insert("seq".into(), self.last_sent.into());
                self.send_text(Value::Object(frame).to_string()).await
            }
            Delivery::CheckSession => self.check_session().await,
        }
    }

    async fn check_session(&mut self) -> Option<Ended> {
        match sessions::check(&self.state, self.caller.session_id, self.caller.id).await {
            Ok(Some(_)) => None,
            Ok(None) => Some(Ended::Close(4001, "session ended")),
            // The store or the database is away: keep the socket, check later.
            Err(_) => None,
        }
    }

    async fn receive(&mut self, frame: Frame, flood: &mut Flood) -> Option<Ended> {
        match frame {
            Frame::Close(_) => return Some(Ended::Gone),
            // The answers to the server's own pings.
            Frame::Pong(_) => return None,
            Frame::Text(_) | Frame::Binary(_) | Frame::Ping(_) => {}
        }
        if !flood.take() {
            if flood.refused > 20 {
                return Some(Ended::Close(1008, "too many frames"));
            }
            return self
                .send_error("rate_limited", "Too many frames; slow down.", None)
                .await;
        }
        let text = match frame {
            Frame::Text(text) => text,
            Frame::Binary(_) => {
                return self
                    .send_error("invalid_frame", "Frames are JSON text.", None)
                    .await;
            }
            _ => return None,
        };
        let frame = match serde_json::from_str::<ClientFrame>(&text) {
            Ok(frame) => frame,
            Err(err) => {
                let detail = format!("Not a frame this server knows: {err}");
                return self.send_error("invalid_frame", &detail, None).await;
            }
        };
        match frame {
            ClientFrame::Ping {} => {
                let pong = json!({"type": "pong", "seq": self.last_sent}).to_string();
                self.send_text(pong).await
            }
            ClientFrame::Typing { conversation_id } => {
                match typing(&self.state, &self.caller, conversation_id).await {
                    Ok(true) => None,
                    Ok(false) => {
                        let err = ApiError::not_found();
                        self.send_api_error(&err, None).await
                    }
                    Err(err) => self.send_api_error(&err, None).await,
                }
            }
            ClientFrame::Send {
                conversation_id,
                body,
                client_message_id,
                attachment_file_ids,
            } => {
                let message = NewMessage {
                    body,
                    client_message_id: client_message_id.clone(),
                    attachment_file_ids,
                };
                // Stored like a REST send; the sender hears of it through its
                // own `message.created`.
                match store_message(&self.state, &self.caller, conversation_id, message).await {
                    Ok(()) => None,
                    Err(err) => self.send_api_error(&err, client_message_id).await,
                }
            }
        }
    }

    fn error_frame(&self, code: &str, detail: &str, client_message_id: Option<String>) -> String {
        let mut frame = json!({
            "type": "error", "code": code, "detail": detail, "seq": self.last_sent,
        });
        if let Some(id) = client_message_id {
            frame["client_message_id"] = id.into();
        }
        frame.to_string()
    }

    async fn send_error(
        &mut self,
        code: &str,
        detail: &str,
        client_message_id: Option<String>,
    ) -> Option<Ended> {
        let frame = self.error_frame(code, detail, client_message_id);
        self.send_text(frame).await
    }

    async fn send_api_error(
        &mut self,
        err: &ApiError,
        client_message_id: Option<String>,
    ) -> Option<Ended> {
        if err.code() == ErrorCode::Internal {
            tracing::error!(error = ?err, "realtime action failed");
        }
        let body = err.body();
        let mut frame = json!({
            "type": "error", "code": body.code, "detail": body.detail, "seq": self.last_sent,
        });
        if !body.errors.is_empty() {
            frame["errors"] = serde_json::to_value(&body.errors).unwrap_or(Value::Null);
        }
        if let Some(id) = client_message_id {
            frame["client_message_id"] = id.into();
        }
        self.send_text(frame.to_string()).await
    }

    async fn send_text(&mut self, text: String) -> Option<Ended> {
        self.send(Frame::Text(text.into())).await
    }

    async fn send(&mut self, frame: Frame) -> Option<Ended> {
        match tokio::time::timeout(SEND_WITHIN, self.socket.send(frame)).await {
            Ok(Ok(())) => None,
            Ok(Err(_)) => Some(Ended::Gone),
            Err(_) => {
                metrics::counter!("rabt_realtime_slow_closed_total").increment(1);
                Some(Ended::Close(4008, "too slow: reconnect with since"))
            }
        }
    }
}

/// Stores a message sent over the socket, as `POST …/messages` would.
async fn store_message(
    state: &AppState,
    caller: &AuthUser,
    conversation: Uuid,
    message: NewMessage,
) -> Result<(), ApiError> {
    let message = message.validate()?;
    let mut tx = state.db.begin(&caller.actor()).await?;
    messaging::send(
        &mut tx,
        conversation,
        caller.id,
        &message,
        state.settings.realtime.message_email_delay,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Tells the other participants that the caller types; false when the caller
/// does not take part.
async fn typing(state: &AppState, caller: &AuthUser, conversation: Uuid) -> Result<bool, ApiError> {
    let mut tx = state.db.begin(&caller.actor()).await?;
    let sent = store::announce_typing(&mut tx, conversation, caller.id).await?;
    tx.commit().await?;
    Ok(sent)
}

/// How a receive error ends the socket: an oversized frame is answered with
/// 1009, anything else means the connection is gone.
fn closed_by_error(err: &axum::Error) -> Ended {
    let text = err.to_string();
    if text.contains("too long") || text.contains("too big") || text.contains("Space limit") {
        Ended::Close(1009, "frame over 32 KiB")
    } else {
        Ended::Gone
    }
}
