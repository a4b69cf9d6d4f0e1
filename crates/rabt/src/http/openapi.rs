//! The problem responses every operation can give because of the shared edge,
//! added to the OpenAPI document once instead of in every annotation.
//!
//! What the edge answers on its own, whatever the handler:
//! - a JSON body ([`super::AppJson`]): 400 `invalid_json`, 413
//!   `payload_too_large`, 415 `unsupported_media_type`, 422 `validation_failed`;
//! - a query string ([`super::AppQuery`]): 422 `validation_failed`;
//! - a path parameter ([`super::AppPath`]): 404 `not_found`;
//! - a bearer token (security `bearer`): 401 `unauthorized`;
//! - every `/v1` route: 429 `rate_limited` and 503 `unavailable` (deadline, busy
//!   database).
//!
//! Responses an annotation already declares are kept as they are.

use utoipa::openapi::{
    ContentBuilder, OpenApi, Ref, RefOr,
    path::{Operation, ParameterIn},
    response::{Response, ResponseBuilder},
};

/// Adds the edge's problem responses to every operation (see the module docs).
pub struct CommonProblems;

impl CommonProblems {
    pub fn apply(openapi: &mut OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let api = path.starts_with("/v1/");
            let ops = [
                item.get.as_mut(),
                item.put.as_mut(),
                item.post.as_mut(),
                item.delete.as_mut(),
                item.patch.as_mut(),
            ];
            for op in ops.into_iter().flatten() {
                add_to(op, api);
            }
        }
    }
}

fn add_to(op: &mut Operation, api: bool) {
    let params = op.parameters.as_deref().unwrap_or_default();
    let has_in = |place: ParameterIn| {
        params
            .iter()
            .any(|p| matches!(p, RefOr::T(p) if p.parameter_in == place))
    };
    let (query, path) = (has_in(ParameterIn::Query), has_in(ParameterIn::Path));
    let body = op.request_body.is_some();
    let bearer = op
        .security
        .as_ref()
        .is_some_and(|requirements| !requirements.is_empty());

    let mut wanted: Vec<(&str, &str)> = Vec::new();
    if body {
        wanted.push(("400", "The body is not valid JSON (`invalid_json`)"));
        wanted.push((
            "413",
            "The body is over the size limit (`payload_too_large`)",
        ));
        wanted.push((
            "415",
            "The body is not `application/json` (`unsupported_media_type`)",
        ));
    }
    if body || query {
        wanted.push((
            "422",
            "A field or parameter is invalid (`validation_failed`)",
        ));
    }
    if bearer {
        wanted.push((
            "401",
            "Missing, invalid or expired access token (`unauthorized`)",
        ));
    }
    if path {
        wanted.push((
            "404",
            "No such resource, or not visible to the caller (`not_found`)",
        ));
    }
    if api {
        wanted.push((
            "429",
            "Too many requests (`rate_limited`, with `Retry-After`)",
        ));
        wanted.push(("503", "Cannot answer right now (`unavailable`)"));
    }
    for (status, description) in wanted {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::T(problem(description)));
    }
}

fn problem(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
}
