//! Users (API.md §4): the account, its profile as others see it, profile
//! search, and moderation. `model` holds the shapes and their validation,
//! `store` the SQL, `routes` the HTTP edge.

pub mod model;
pub mod routes;
pub mod store;
