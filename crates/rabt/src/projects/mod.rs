//! Projects (API.md §5): what owners post. `model` holds the status machine
//! and the validated shapes, `store` the SQL, `routes` the HTTP edge of one
//! project, `search` the listing with filters, facets and cursors, and
//! `markdown` the rendering of descriptions.

pub mod markdown;
pub mod model;
pub mod routes;
pub mod search;
pub mod store;
