//! rabt: the backend of a platform that connects people with projects.
//!
//! A tour, in the order a request meets the code:
//! - [`app`] assembles the router, middleware and background worker, and
//!   [`state`] holds what handlers reach;
//! - [`http`] is the edge: problem+json errors, extractors, request ids,
//!   pagination, rate limits;
//! - [`db`] opens the row-level-security transaction every handler works in;
//! - capabilities ([`auth`], [`users`], [`roles`], [`projects`],
//!   [`applications`], [`messaging`], [`notifications`], [`files`],
//!   [`billing`], [`privacy`], [`admin`]) each keep `routes` (HTTP), `model`
//!   (validated types and rules) and `store` (SQL) in one folder, and use
//!   each other's models and stores, never each other's routes;
//! - small shared vocabularies: [`money`], [`skills`], [`search`],
//!   [`signature`] (signed webhooks);
//! - [`email`] renders, tracks and sends mail through the outbox;
//! - [`jobs`] runs durable background work; [`kv`] holds short-lived shared
//!   state in Redis or in memory, [`query_cache`] the answers of searches,
//!   [`realtime`] the WebSocket and its per-user event log;
//! - [`config`] and [`telemetry`] are read once at start.

pub mod account;
pub mod admin;
pub mod app;
pub mod applications;
pub mod audit;
pub mod auth;
pub mod billing;
pub mod config;
pub mod crypto;
pub mod db;
pub mod email;
pub mod files;
pub mod http;
pub mod jobs;
pub mod kv;
pub mod messaging;
pub mod money;
pub mod notifications;
pub mod ops;
pub mod privacy;
pub mod projects;
pub mod query_cache;
pub mod realtime;
pub mod roles;
pub mod search;
pub mod server;
pub mod signature;
pub mod skills;
pub mod state;
pub mod telemetry;
pub mod users;
