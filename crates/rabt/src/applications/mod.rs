//! Applications to projects (API.md §5): an applicant applies to an open
//! project, the owner shortlists, accepts or rejects, the applicant may
//! withdraw. `model` holds the machine and validation, `store` the SQL,
//! `routes` the HTTP edge.

pub mod model;
pub mod routes;
pub mod store;
