//! Users: the account row and its public profile.
//!
//! For now this is the public profile read; profiles, search and roles grow here.

pub mod routes;
pub mod store;
