//! The admin surface: what operators read and act on, each route behind its
//! permission (403 for members, 401 without a session). Today: email
//! statistics and the suppression list.

pub mod email;
pub mod routes;
