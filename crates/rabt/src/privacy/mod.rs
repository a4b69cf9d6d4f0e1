//! Privacy (API.md §11): privacy policy versions, the consents users give
//! them, the gate that holds back changes from a user who has not accepted
//! the policy in force, and the rights that take work: a copy of one's data
//! ([`export`]) and the erasure of one's account ([`erasure`]).

pub mod erasure;
pub mod export;
pub mod gate;
pub mod routes;
pub mod store;

use crate::{billing::stripe::Stripe, files::storage::Storage, jobs::JobRegistry};

/// Registers the export and erasure jobs, and the sweep of old exports.
pub fn register(
    registry: &mut JobRegistry,
    storage: Storage,
    stripe: Option<Stripe>,
    host: String,
) {
    export::register(registry, storage, host);
    erasure::register(registry, stripe);
}
