//! Conversations as tests arrange them (through the API), and a real
//! WebSocket client of `/v1/realtime`.

use std::{net::SocketAddr, time::Duration};

use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{self, Message, client::IntoClientRequest as _, http::HeaderValue},
};

use crate::helpers::{
    PATIENCE,
    auth::{AuthApp, access, signed_in},
};

/// A signed-in user: their access token and id.
pub struct User {
    pub token: String,
    pub id: String,
}

/// Signs up, verifies and signs in `email`.
pub async fn user(env: &AuthApp, email: &str) -> User {
    let pair = signed_in(env, email).await;
    let token = access(&pair).to_owned();
    let me: Value = env.app.get_as(&token, "/v1/me").await.json().await.unwrap();
    User {
        token,
        id: me["id"].as_str().unwrap().to_owned(),
    }
}

/// `from` starts a conversation with `others`; returns its id.
pub async fn conversation(env: &AuthApp, from: &User, others: &[&User]) -> String {
    let ids: Vec<&str> = others.iter().map(|u| u.id.as_str()).collect();
    let response = env
        .app
        .post_json_as(
            &from.token,
            "/v1/conversations",
            &json!({"participant_ids": ids}),
        )
        .await;
    assert!(
        response.status() == 201 || response.status() == 200,
        "{}",
        response.status()
    );
    response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `from` sends `body` to `conversation`; returns the response.
pub async fn send(
    env: &AuthApp,
    from: &User,
    conversation: &str,
    body: Value,
) -> reqwest::Response {
    env.app
        .post_json_as(
            &from.token,
            &format!("/v1/conversations/{conversation}/messages"),
            &body,
        )
        .await
}

/// `from` sends the text `body`; returns the stored message.
pub async fn say(env: &AuthApp, from: &User, conversation: &str, body: &str) -> Value {
    let response = send(env, from, conversation, json!({"body": body})).await;
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

/// A realtime socket of one user.
pub struct Socket {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How a connection attempt ended.
pub type Refusal = tungstenite::Error;

/// Opens `/v1/realtime` on `address` with the token in
/// `Sec-WebSocket-Protocol`, and `query` (e.g. `since=3`) if any.
pub async fn try_connect(
    address: SocketAddr,
    token: &str,
    query: &str,
) -> Result<(Socket, Option<String>), Refusal> {
    let url = format!("ws://{address}/v1/realtime?{query}");
    let mut request = url.into_client_request()?;
    request.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_str(&format!("bearer, {token}")).unwrap(),
    );
    let (ws, response) = tokio_tungstenite::connect_async(request).await?;
    let protocol = response
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok((Socket { ws }, protocol))
}

/// [`try_connect`], which must succeed.
pub async fn connect(address: SocketAddr, token: &str, query: &str) -> Socket {
    try_connect(address, token, query)
        .await
        .expect("the socket opens")
        .0
}

/// What the server sent next.
#[derive(Debug)]
pub enum Received {
    Frame(Value),
    Closed(Option<u16>),
}

impl Socket {
    /// The next text frame or close, skipping pings; `None` after `limit`.
    pub async fn next_within(&mut self, limit: Duration) -> Option<Received> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()?;
            match next {
                Some(Ok(Message::Text(text))) => {
                    return Some(Received::Frame(serde_json::from_str(&text).unwrap()));
                }
                Some(Ok(Message::Close(frame))) => {
                    return Some(Received::Closed(frame.map(|f| u16::from(f.code))));
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Some(Received::Closed(None)),
            }
        }
    }

    /// The next text frame; panics on a close or after [`PATIENCE`].
    pub async fn frame(&mut self) -> Value {
        match self.next_within(PATIENCE).await {
            Some(Received::Frame(frame)) => frame,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    /// The close code the server ends with, skipping frames; panics after
    /// [`PATIENCE`].
    pub async fn close_code(&mut self) -> Option<u16> {
        loop {
            match self.next_within(PATIENCE).await {
                Some(Received::Frame(_)) => {}
                Some(Received::Closed(code)) => return code,
                None => panic!("the socket stayed open"),
            }
        }
    }

    /// Whether no frame arrives within `limit`.
    pub async fn quiet_for(&mut self, limit: Duration) -> bool {
        self.next_within(limit).await.is_none()
    }

    /// Sends a text frame.
    pub async fn send(&mut self, frame: Value) {
        self.ws
            .send(Message::Text(frame.to_string().into()))
            .await
            .expect("frame sent");
    }

    /// Sends raw text.
    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::Text(text.to_owned().into()))
            .await
            .expect("frame sent");
    }

    /// Sends a ping frame and returns the `pong` (with the latest seq).
    pub async fn pong(&mut self) -> Value {
        self.send(json!({"type": "ping"})).await;
        let pong = self.frame().await;
        assert_eq!(pong["type"], "pong", "{pong}");
        pong
    }
}
