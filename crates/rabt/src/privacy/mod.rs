//! Privacy (API.md §11): privacy policy versions, the consents users give
//! them, and the gate that holds back changes from a user who has not
//! accepted the policy in force.

pub mod gate;
pub mod routes;
pub mod store;
