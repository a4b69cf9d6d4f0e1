//! Realtime delivery (API.md §6): the WebSocket, the per-user event log it
//! replays, and the fan-out across instances.
//!
//! Events are written by the database in the transaction of the change (a
//! per-user `seq` from a counter row that transaction locks, so commit order
//! is seq order) and kept `RABT_REALTIME_RETENTION_HOURS` for replays. At
//! commit Postgres announces each one on `rabt_realtime`; every instance
//! listens ([`hub::follow`]) and delivers to its own sockets. The
//! announcement is transactional (never for a rolled-back change, never
//! missed by a write path, since triggers write the events) and needs no
//! second system: with or without Redis, every instance sees every event,
//! and a socket that notices a gap, or an instance whose listener
//! reconnected, reads the log, so a lost announcement delays an event but
//! never loses it.

pub mod hub;
pub mod socket;
pub mod store;

use std::time::Duration;

use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{jobs::JobRegistry, state::AppState};

pub use hub::Hub;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(socket::realtime))
}

/// Registers the sweep of events older than `retention`.
pub fn register(registry: &mut JobRegistry, retention: Duration) {
    let hours = i32::try_from(retention.as_secs() / 3600)
        .unwrap_or(i32::MAX)
        .max(1);
    registry.sweep("realtime events", move |conn| {
        Box::pin(store::prune(conn, hours))
    });
}
