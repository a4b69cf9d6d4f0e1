//! This instance's sockets, by user, and the listener that feeds them.
//!
//! Every event is announced by Postgres at the commit of the change that
//! wrote it (`NOTIFY rabt_realtime`, migrations/0035), to every instance; each
//! hands it to its own sockets of that user. A socket's queue is bounded: one
//! that fills up belongs to a client that does not keep up, and is closed
//! with [`Close::TooSlow`] (it reconnects with `since` and loses nothing).
//! What is not announced with its frame (too large for a notification), and
//! whatever was missed while the listener was away, each socket reads from
//! the log, so a lost notification delays an event but never drops it.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    time::Duration,
};

use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::store;
use crate::db::{Actor, Db};

/// How often each instance announces itself on `rabt_realtime`, and checks
/// that its sockets are not behind the log.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);
/// A listener that hears nothing (not even a heartbeat) for this long is
/// taken for lost and listens again.
const HEARD_WITHIN: Duration = Duration::from_secs(30);

/// What a socket is told.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// A logged event: its seq and frame (JSON text, `seq` included).
    Event { seq: i64, frame: Arc<str> },
    /// Events up to `seq` were written: read what is missing from the log.
    CatchUp { seq: Option<i64> },
    /// An ephemeral frame (`typing`), without `seq`: the socket adds its own.
    Ephemeral(Arc<serde_json::Map<String, serde_json::Value>>),
    /// Check that the session is still alive (a grants change of its user).
    CheckSession,
}

/// Why the server closes a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// The session ended (logout, revocation, password change, suspension).
    SessionEnded,
    /// The client did not keep up; reconnect with `since`.
    TooSlow,
    /// The server is shutting down; reconnect (elsewhere) with `since`.
    GoingAway,
}

impl Close {
    /// The WebSocket close code and reason.
    pub fn code(self) -> (u16, &'static str) {
        match self {
            Self::SessionEnded => (4001, "session ended"),
            Self::TooSlow => (4008, "too slow: reconnect with since"),
            Self::GoingAway => (1001, "going away: reconnect with since"),
        }
    }
}

/// One socket as the hub sees it.
#[derive(Debug)]
struct Entry {
    id: u64,
    user: Uuid,
    session: Uuid,
    /// The seq of the last event the socket sent.
    last_sent: AtomicI64,
    queue: mpsc::Sender<Delivery>,
    closing: CancellationToken,
    reason: Mutex<Option<Close>>,
}

impl Entry {
    fn close(&self, reason: Close) {
        if let Ok(mut slot) = self.reason.lock() {
            slot.get_or_insert(reason);
        }
        self.closing.cancel();
    }

    fn deliver(&self, delivery: Delivery) {
        match self.queue.try_send(delivery) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics::counter!("rabt_realtime_slow_closed_total").increment(1);
                self.close(Close::TooSlow);
            }
            // The socket is on its way out.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// This instance's open sockets.
#[derive(Clone, Debug, Default)]
pub struct Hub(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    users: RwLock<HashMap<Uuid, Vec<Arc<Entry>>>>,
    next_id: AtomicU64,
}

/// A socket's place in the hub; leaving it (drop) unregisters the socket.
#[derive(Debug)]
pub struct Registration {
    hub: Hub,
    user: Uuid,
    entry: Arc<Entry>,
    pub deliveries: mpsc::Receiver<Delivery>,
}

impl Registration {
    /// Fires when the hub closes this socket.
    pub fn closing(&self) -> &CancellationToken {
        &self.entry.closing
    }

    /// Why the hub closed this socket, once [`Registration::closing`] fired.
    pub fn reason(&self) -> Option<Close> {
        self.entry.reason.lock().ok().and_then(|slot| *slot)
    }

    /// Where the socket records the seq of the last event it sent.
    pub fn position(&self) -> Position {
        Position(self.entry.clone())
    }
}

/// A socket's record of the last event it sent, which the hub reads to tell
/// whether it is behind the log.
#[derive(Debug, Clone)]
pub struct Position(Arc<Entry>);

impl Position {
    pub fn set(&self, seq: i64) {
        self.0.last_sent.store(seq, Ordering::Relaxed);
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Ok(mut users) = self.hub.0.users.write()
            && let Some(sockets) = users.get_mut(&self.user)
        {
            sockets.retain(|s| s.id != self.entry.id);
            if sockets.is_empty() {
                users.remove(&self.user);
            }
        }
        metrics::gauge!("rabt_realtime_sockets").decrement(1.0);
    }
}

impl Hub {
    /// Registers a socket of `user` signed in with `session`, with a queue of
    /// `capacity` deliveries.
    pub fn register(&self, user: Uuid, session: Uuid, capacity: usize) -> Registration {
        let (queue, deliveries) = mpsc::channel(capacity);
        let entry = Arc::new(Entry {
            id: self.0.next_id.fetch_add(1, Ordering::Relaxed),
            user,
            session,
            last_sent: AtomicI64::new(i64::MAX),
            queue,
            closing: CancellationToken::new(),
            reason: Mutex::new(None),
        });
        if let Ok(mut users) = self.0.users.write() {
            users.entry(user).or_default().push(entry.clone());
        }
        metrics::gauge!("rabt_realtime_sockets").increment(1.0);
        Registration {
            hub: self.clone(),
            user,
            entry,
            deliveries,
        }
    }

    /// The sockets of `user`.
    fn sockets_of(&self, user: Uuid) -> Vec<Arc<Entry>> {
        self.0
            .users
            .read()
            .map(|users| users.get(&user).cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    fn every_socket(&self) -> Vec<Arc<Entry>> {
        self.0
            .users
            .read()
            .map(|users| users.values().flatten().cloned().collect())
            .unwrap_or_default()
    }

    /// How many sockets are open here.
    pub fn len(&self) -> usize {
        self.0
            .users
            .read()
            .map(|users| users.values().map(Vec::len).sum())
            .unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn deliver(&self, user: Uuid, delivery: &Delivery) {
        for socket in self.sockets_of(user) {
            socket.deliver(delivery.clone());
        }
    }

    /// Closes the sockets signed in with any of `sessions`.
    pub fn end_sessions(&self, sessions: &[Uuid]) {
        for socket in self.every_socket() {
            if sessions.contains(&socket.session) {
                socket.close(Close::SessionEnded);
            }
        }
    }

    /// Makes the sockets of `users` check their sessions again.
    pub fn check_users(&self, users: &[Uuid]) {
        for user in users {
            self.deliver(*user, &Delivery::CheckSession);
        }
    }

    /// Makes the sockets that are behind the log read what they missed: one
    /// query for the latest seq of every user with a socket here, then a
    /// wake-up for each socket below it. What a lost announcement (or a lost
    /// listener) delayed is delivered from here.
    pub async fn wake_behind(&self, db: &Db) {
        let sockets = self.every_socket();
        if sockets.is_empty() {
            return;
        }
        let mut users: Vec<Uuid> = sockets.iter().map(|s| s.user).collect();
        users.sort_unstable();
        users.dedup();
        let latest = async {
            let mut conn = db.read(&Actor::Service).await?;
            store::latest(&mut conn, &users).await
        };
        let latest: HashMap<Uuid, i64> = match latest.await {
            Ok(latest) => latest.into_iter().collect(),
            Err(err) => {
                tracing::warn!(error = %err, "could not check the realtime sockets' positions");
                return;
            }
        };
        for socket in sockets {
            if let Some(&seq) = latest.get(&socket.user)
                && socket.last_sent.load(Ordering::Relaxed) < seq
            {
                socket.deliver(Delivery::CatchUp { seq: Some(seq) });
            }
        }
    }

    /// Makes every socket check its session (a session end may have been
    /// missed).
    pub fn check_all(&self) {
        for socket in self.every_socket() {
            socket.deliver(Delivery::CheckSession);
        }
    }

    /// Closes every socket with "going away".
    pub fn close_all(&self) {
        for socket in self.every_socket() {
            socket.close(Close::GoingAway);
        }
    }

    /// Hands one `rabt_realtime` notification to the sockets it concerns.
    fn dispatch(&self, payload: &str) {
        match serde_json::from_str::<Announcement>(payload) {
            Ok(Announcement::Event {
                u,
                s,
                f: Some(frame),
            }) => {
                record_lag(&frame);
                let frame: Arc<str> = frame.to_string().into();
                self.deliver(u, &Delivery::Event { seq: s, frame });
            }
            Ok(Announcement::Event { u, s, f: None }) => {
                self.deliver(u, &Delivery::CatchUp { seq: Some(s) });
            }
            Ok(Announcement::Ephemeral { to, e }) => {
                let frame = Arc::new(e);
                for user in to {
                    self.deliver(user, &Delivery::Ephemeral(frame.clone()));
                }
            }
            Ok(Announcement::Heartbeat { .. }) => {}
            Err(err) => tracing::warn!(error = %err, "unreadable rabt_realtime notification"),
        }
    }
}

/// Records how long a new message took from its transaction to this
/// instance (`rabt_realtime_fanout_lag_seconds`).
fn record_lag(frame: &serde_json::Value) {
    if frame["type"] != "message.created" {
        return;
    }
    let stored = frame["message"]["created_at"]
        .as_str()
        .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok());
    if let Some(stored) = stored {
        let lag = chrono::Utc::now().signed_duration_since(stored);
        if let Ok(lag) = lag.to_std() {
            metrics::histogram!("rabt_realtime_fanout_lag_seconds").record(lag.as_secs_f64());
        }
    }
}

/// A `rabt_realtime` notification.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Announcement {
    /// An event of user `u` with seq `s`, with its frame when it fit.
    Event {
        u: Uuid,
        s: i64,
        f: Option<serde_json::Value>,
    },
    /// An ephemeral frame for users `to`.
    Ephemeral {
        to: Vec<Uuid>,
        e: serde_json::Map<String, serde_json::Value>,
    },
    /// An instance's heartbeat: proof that the listener still hears.
    Heartbeat {
        #[allow(dead_code)]
        hb: Uuid,
    },
}

/// Follows `NOTIFY rabt_realtime` into `hub` until `shutdown`. Every
/// [`HEARTBEAT_EVERY`] it announces this instance (so a listener that hears
/// nothing for [`HEARD_WITHIN`] knows its connection is gone, and listens
/// again) and wakes the sockets that are behind the log; so does every
/// (re)start of the listener, since announcements may have been missed.
pub async fn follow(db: Db, hub: Hub, shutdown: CancellationToken) {
    let beat = {
        let (db, hub, shutdown) = (db.clone(), hub.clone(), shutdown.clone());
        async move {
            let instance = Uuid::now_v7();
            let mut every = tokio::time::interval(HEARTBEAT_EVERY);
            loop {
                tokio::select! {
                    _ = every.tick() => {}
                    () = shutdown.cancelled() => return,
                }
                if let Err(err) = store::heartbeat(&db, instance).await {
                    tracing::warn!(error = %err, "could not announce the realtime heartbeat");
                }
                hub.wake_behind(&db).await;
            }
        }
    };
    let listen = crate::db::follow_channel_within(
        &db,
        "rabt_realtime",
        "the realtime listener",
        &shutdown,
        Some(HEARD_WITHIN),
        || hub.wake_behind(&db),
        |payload| {
            hub.dispatch(&payload);
            async {}
        },
    );
    tokio::join!(beat, listen);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn events_reach_only_their_users_sockets_and_a_full_queue_closes_its_socket() {
        let hub = Hub::default();
        let (alice, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let mut a = hub.register(alice, Uuid::now_v7(), 2);
        let mut b = hub.register(bob, Uuid::now_v7(), 2);
        let event =
            |seq: i64| format!(r#"{{"u":"{alice}","s":{seq},"f":{{"type":"x","seq":{seq}}}}}"#);
        hub.dispatch(&event(1));
        assert!(matches!(
            a.deliveries.try_recv(),
            Ok(Delivery::Event { seq: 1, .. })
        ));
        assert!(b.deliveries.try_recv().is_err());

        hub.dispatch(&format!(r#"{{"u":"{alice}","s":2}}"#));
        assert!(matches!(
            a.deliveries.try_recv(),
            Ok(Delivery::CatchUp { seq: Some(2) })
        ));

        for seq in 3..=5 {
            hub.dispatch(&event(seq));
        }
        assert!(a.closing().is_cancelled());
        assert_eq!(a.reason(), Some(Close::TooSlow));
        assert!(!b.closing().is_cancelled());

        hub.dispatch(&format!(
            r#"{{"to":["{bob}"],"e":{{"type":"typing","user_id":"{alice}"}}}}"#
        ));
        assert!(matches!(
            b.deliveries.try_recv(),
            Ok(Delivery::Ephemeral(_))
        ));

        assert_eq!(hub.len(), 2);
        drop(a);
        assert_eq!(hub.len(), 1);
    }

    #[tokio::test]
    async fn ending_a_session_closes_only_its_sockets() {
        let hub = Hub::default();
        let user = Uuid::now_v7();
        let (ended, kept) = (Uuid::now_v7(), Uuid::now_v7());
        let a = hub.register(user, ended, 8);
        let b = hub.register(user, kept, 8);
        hub.end_sessions(&[ended]);
        assert_eq!(a.reason(), Some(Close::SessionEnded));
        assert!(!b.closing().is_cancelled());
    }
}
