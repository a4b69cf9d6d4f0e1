//! Black-box tests against real Postgres (RLS on), Redis and SMTP. One binary,
//! one module per capability; `helpers` is the harness.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod applications;
mod auth;
mod billing;
mod binary;
mod db;
mod demo;
mod edge;
mod email;
mod faults;
mod files;
mod health;
mod helpers;
mod jobs;
mod kv;
mod messaging;
mod mfa;
mod oauth;
mod privacy;
mod privacy_rights;
mod project_search;
mod projects;
mod query_cache;
mod rate_limits;
mod realtime;
mod rls;
mod roles;
mod schema_lint;
mod search;
mod smtp;
mod source_lint;
mod tls;
mod users;
