//! Authentication and sessions (API.md §3): sign-up with email verification,
//! password login, rotating refresh tokens with reuse detection, password reset
//! and change, session listing and revocation, and two-factor sign-in (`mfa`).
//!
//! Invariants:
//! - passwords, refresh tokens and one-time tokens are stored only as hashes;
//! - every authenticated request checks that its session is alive, so a
//!   revocation takes effect at once (see `sessions`);
//! - a refresh token is spent by its first use; a replay after the grace window
//!   ends the session.

pub mod demo;
pub mod extract;
pub mod grants;
pub mod jobs;
pub mod mfa;
pub mod oauth;
pub mod passwords;
pub mod routes;
pub mod sessions;
pub mod store;
pub mod tokens;

pub use extract::{
    ALL_PERMISSIONS, AuthUser, Caller, Holding, MaybeAuthUser, Permission, StepUp, permission,
};
