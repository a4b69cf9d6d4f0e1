//! Projects and applications (API.md §5): the status machines, rich-text
//! descriptions, search, and the application workflow.

pub mod applications;
pub mod markdown;
pub mod routes;
pub mod status;
pub mod store;
