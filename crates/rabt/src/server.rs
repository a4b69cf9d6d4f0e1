//! The connection loop: plain HTTP or TLS (rustls, HTTP/1.1 and HTTP/2 by
//! ALPN), with the limits that keep slow or numerous clients from exhausting
//! the server:
//! - at most `RABT_MAX_CONNECTIONS` open connections (further ones wait in the
//!   kernel's backlog);
//! - within `RABT_HEADER_READ_TIMEOUT_SECS` (slowloris) a client must finish
//!   its TLS handshake, then send enough bytes to tell HTTP/1 from HTTP/2
//!   ([`FirstBytesDeadline`]), then, on HTTP/1, each request's headers;
//! - a connection with no request in flight for `RABT_IDLE_TIMEOUT_SECS` is
//!   shut down gracefully (HTTP/2 clients that answer pings would otherwise
//!   hold their connection forever), and what is left of it is dropped after
//!   one more header timeout;
//! - HTTP/2 streams per connection are capped, and HTTP/2 peers that stop
//!   answering pings are dropped.
//!
//! Request bodies are limited by the router (`RABT_BODY_LIMIT_BYTES`) and
//! whole requests by `RABT_REQUEST_TIMEOUT_SECS`.

use std::{
    io,
    net::SocketAddr,
    path::Path,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use anyhow::Context as _;
use axum::{Router, body::Body, extract::ConnectInfo};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
    service::TowerToHyperService,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpListener,
    sync::Semaphore,
    time::{Instant, Sleep},
};
use tokio_rustls::TlsAcceptor;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower::ServiceExt as _;

/// Connection limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
}

/// A TLS acceptor for the certificate chain and key in these PEM files.
pub fn tls_acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("RABT_TLS_CERT: cannot read {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| {
            format!(
                "RABT_TLS_CERT: {} is not a PEM certificate chain",
                cert.display()
            )
        })?;
    if chain.is_empty() {
        anyhow::bail!("RABT_TLS_CERT: {} holds no certificate", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| {
        format!(
            "RABT_TLS_KEY: cannot read a PEM private key from {}",
            key.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("RABT_TLS_CERT/RABT_TLS_KEY: the key does not fit the certificate")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Whether this process is draining: shutting down, readiness failing, yet
/// still serving (see [`crate::app::Application::run_until_stopped`]).
#[derive(Clone, Debug, Default)]
pub struct Draining(Arc<std::sync::atomic::AtomicBool>);

impl Draining {
    pub fn start(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn is_draining(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// While draining, HTTP/1.1 responses say `Connection: close`, so clients
/// do not reuse a connection the server is about to close (and see no reset
/// when it does); they connect again, and a load balancer sends them
/// elsewhere.
pub async fn close_when_draining(
    axum::extract::State(draining): axum::extract::State<Draining>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let http1 = request.version() <= axum::http::Version::HTTP_11;
    let mut response = next.run(request).await;
    if http1 && draining.is_draining() {
        response.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    response
}

/// Serves `router` on `listener` until `shutdown` fires; then stops accepting,
/// lets open requests finish within `grace`, and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<TlsAcceptor>,
    limits: Limits,
    shutdown: CancellationToken,
    grace: Duration,
) {
    let connections = TaskTracker::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(200)
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20));
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = shutdown.cancelled() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let connection = Connection {
            builder: builder.clone(),
            router: router.clone(),
            peer,
            limits,
            shutdown: shutdown.clone(),
        };
        let tls = tls.clone();
        connections.spawn(async move {
            let _permit = permit;
            match tls {
                None => connection.serve(stream).await,
                Some(acceptor) => {
                    let handshake = acceptor.accept(stream);
                    match tokio::time::timeout(limits.header_read_timeout, handshake).await {
                        Ok(Ok(stream)) => connection.serve(stream).await,
                        Ok(Err(err)) => {
                            tracing::debug!(%peer, error = %err, "TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("requests still open at shutdown; closing them");
    }
}

/// One accepted connection, ready to be served.
struct Connection {
    builder: auto::Builder<TokioExecutor>,
    router: Router,
    peer: SocketAddr,
    limits: Limits,
    shutdown: CancellationToken,
}

impl Connection {
    /// Serves HTTP on `stream` until the client leaves, the connection idles
    /// out, or the server shuts down.
    async fn serve<S>(self, stream: S)
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let Self {
            builder,
            router,
            peer,
            limits,
            shutdown,
        } = self;
        let activity = Activity::new();
        let requests = activity.clone();
        let service = tower::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let busy = requests.busy();
            let router = router.clone();
            async move {
                let response = router.oneshot(request).await?;
                // The request stays in flight until its body has been sent.
                Ok::<_, std::convert::Infallible>(
                    response.map(|body| Body::new(TrackedBody { body, _busy: busy })),
                )
            }
        });
        let stream = FirstBytesDeadline::new(stream, limits.header_read_timeout);
        let connection = builder.serve_connection_with_upgrades(
            TokioIo::new(stream),
            TowerToHyperService::new(service),
        );
        let mut connection = std::pin::pin!(connection);
        let idled = loop {
            let idle_at = activity.idle_deadline(limits.idle_timeout);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(err) = result {
                        tracing::debug!(%peer, error = %err, "connection ended with an error");
                    }
                    return;
                }
                () = shutdown.cancelled() => break false,
                () = tokio::time::sleep_until(idle_at) => {
                    if activity.is_idle(limits.idle_timeout) {
                        break true;
                    }
                }
            }
        };
        tracing::debug!(%peer, idled, "closing the connection");
        connection.as_mut().graceful_shutdown();
        // A graceful close needs the client's help (HTTP/2 GOAWAY and ping):
        // an idle one that does not help is dropped. At shutdown, `serve`
        // bounds the wait.
        let closed = if idled {
            tokio::time::timeout(limits.header_read_timeout, connection).await
        } else {
            Ok(connection.await)
        };
        match closed {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::debug!(%peer, error = %err, "connection ended with an error"),
            Err(_) => tracing::debug!(%peer, "connection did not close gracefully; dropped"),
        }
    }
}

/// When a connection last had a request in flight, and how many it has now.
#[derive(Clone)]
struct Activity(Arc<ActivityState>);

struct ActivityState {
    in_flight: AtomicUsize,
    last_quiet: Mutex<Instant>,
}

impl Activity {
    fn new() -> Self {
        Self(Arc::new(ActivityState {
            in_flight: AtomicUsize::new(0),
            last_quiet: Mutex::new(Instant::now()),
        }))
    }

    /// Marks a request in flight until the returned guard is dropped.
    fn busy(&self) -> Busy {
        self.0.in_flight.fetch_add(1, Ordering::SeqCst);
        Busy(self.clone())
    }

    fn last_quiet(&self) -> Instant {
        match self.0.last_quiet.lock() {
            Ok(last) => *last,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    /// When to look again whether the connection has idled for `timeout`:
    /// that long after its last request ended, or, while one is in flight,
    /// that long from now (a request can outlast the timeout).
    fn idle_deadline(&self, timeout: Duration) -> Instant {
        if self.0.in_flight.load(Ordering::SeqCst) > 0 {
            Instant::now() + timeout
        } else {
            self.last_quiet() + timeout
        }
    }

    fn is_idle(&self, timeout: Duration) -> bool {
        self.0.in_flight.load(Ordering::SeqCst) == 0 && self.last_quiet().elapsed() >= timeout
    }
}

/// A request in flight (see [`Activity::busy`]).
struct Busy(Activity);

impl Drop for Busy {
    fn drop(&mut self) {
        let state = &self.0.0;
        match state.last_quiet.lock() {
            Ok(mut last) => *last = Instant::now(),
            Err(poisoned) => *poisoned.into_inner() = Instant::now(),
        }
        state.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A response body that keeps its request counted as in flight.
struct TrackedBody {
    body: Body,
    _busy: Busy,
}

impl hyper::body::Body for TrackedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The HTTP/2 connection preface; hyper reads up to this much to choose
/// between HTTP/1 and HTTP/2, with no deadline of its own.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A stream whose reads fail with `TimedOut` if the bytes that tell HTTP/1
/// from HTTP/2 have not arrived by a deadline. From then on, hyper's own
/// limits apply (the HTTP/1 header timeout, HTTP/2 pings, the idle timeout).
struct FirstBytesDeadline<S> {
    inner: S,
    /// `None` once the protocol is known.
    deadline: Option<Pin<Box<Sleep>>>,
    /// How many bytes so far match the HTTP/2 preface.
    matched: usize,
}

impl<S> FirstBytesDeadline<S> {
    fn new(inner: S, timeout: Duration) -> Self {
        Self {
            inner,
            deadline: Some(Box::pin(tokio::time::sleep(timeout))),
            matched: 0,
        }
    }

    /// Follows the bytes just read; stops the clock once they either leave
    /// the HTTP/2 preface (HTTP/1) or complete it (HTTP/2).
    fn observe(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            if H2_PREFACE.get(self.matched) != Some(&byte) {
                self.deadline = None;
                return;
            }
            self.matched += 1;
            if self.matched == H2_PREFACE.len() {
                self.deadline = None;
                return;
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FirstBytesDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if self.deadline.is_some() {
                    self.observe(&buf.filled()[before..]);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => {
                let expired = self
                    .deadline
                    .as_mut()
                    .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready());
                if expired {
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no request arrived in time",
                    )))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FirstBytesDeadline<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    #[tokio::test]
    async fn a_connection_is_idle_only_with_no_request_in_flight_for_the_timeout() {
        let timeout = Duration::from_millis(20);
        let activity = Activity::new();
        let busy = activity.busy();
        tokio::time::sleep_until(activity.last_quiet() + timeout * 2).await;
        assert!(!activity.is_idle(timeout), "idle with a request in flight");
        // While busy, the next look is in the future, not at a passed instant.
        assert!(activity.idle_deadline(timeout) > Instant::now());
        drop(busy);
        assert!(
            !activity.is_idle(timeout),
            "idle as soon as the request ended"
        );
        tokio::time::sleep_until(activity.idle_deadline(timeout)).await;
        assert!(activity.is_idle(timeout));
    }

    #[tokio::test]
    async fn a_silent_peer_times_out_before_its_first_byte() {
        let (_client, server) = tokio::io::duplex(64);
        let mut reader = FirstBytesDeadline::new(server, Duration::from_millis(10));
        let mut buf = [0; 8];
        let err = reader.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn a_half_sent_http2_preface_still_times_out() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut reader = FirstBytesDeadline::new(server, Duration::from_millis(50));
        client.write_all(&H2_PREFACE[..10]).await.unwrap();
        let mut buf = [0; 64];
        assert_eq!(reader.read(&mut buf).await.unwrap(), 10);
        let err = reader.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn the_deadline_stops_once_http1_or_http2_is_recognised() {
        for first in [&b"GET"[..], H2_PREFACE] {
            let (mut client, server) = tokio::io::duplex(64);
            let mut reader = FirstBytesDeadline::new(server, Duration::from_millis(10));
            client.write_all(first).await.unwrap();
            let mut buf = [0; 64];
            assert_eq!(reader.read(&mut buf).await.unwrap(), first.len());
            // Well past the deadline, a read still waits for data.
            let later =
                tokio::time::timeout(Duration::from_millis(100), reader.read(&mut buf)).await;
            assert!(later.is_err(), "the read failed instead of waiting");
            client.write_all(b"x").await.unwrap();
            assert_eq!(reader.read(&mut buf).await.unwrap(), 1);
        }
    }
}
