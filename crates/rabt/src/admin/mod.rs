//! The admin surface: what operators read and act on, each route behind its
//! permission (403 for members, 401 without a session): the analytics
//! overview, email statistics and the suppression list, the job queue, and
//! the audit log.

pub mod analytics;
pub mod audit;
pub mod email;
pub mod jobs;
pub mod routes;
