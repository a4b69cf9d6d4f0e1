//! The problem responses of the OpenAPI document: one type per kind of
//! failure, and [`CommonProblems`], which attaches the ones the shared edge
//! produces so that no annotation has to remember them.
//!
//! A route's `#[utoipa::path]` lists only what its handler itself decides:
//! `responses((status = 200, body = Project), NotFound, Conflict)`. Where a
//! route gives a kind of failure a meaning of its own (`project_not_open` or
//! `already_applied`), it keeps an explicit tuple with that description. It
//! does not list 401, nor the 403 of a missing permission: its `security(...)`
//! says those, and it must, since that is what a client reads (below).
//!
//! Everything an extractor or layer can answer is derived from what the
//! annotation already has to declare, so the document stays true by
//! construction:
//! - a request body ([`super::AppJson`]): [`InvalidJson`] 400,
//!   [`PayloadTooLarge`] 413, [`UnsupportedMediaType`] 415, [`Validation`] 422;
//! - query parameters ([`super::AppQuery`]): [`Validation`] 422;
//! - a path parameter ([`super::AppPath`]): [`NotFound`] 404;
//! - the `bearer` security scheme, required (`AuthUser`, `Holding<P>`:
//!   `security(("bearer" = []))`) or optional (`MaybeAuthUser`:
//!   `security((), ("bearer" = []))`): [`Unauthorized`] 401, since a token that
//!   is sent and bad is refused, never downgraded to anonymous;
//! - permissions named as the bearer requirement's roles (`Holding<P>`:
//!   `security(("bearer" = ["users.manage"]))`): [`Forbidden`] 403 naming them;
//! - every `/v1` route: [`RateLimited`] 429 and [`Unavailable`] 503 (deadline,
//!   busy database).
//!
//! Responses an annotation declares itself are kept as they are. The unit
//! tests below check the result, and `tests/api/health.rs` checks that every
//! status the server answers to a bad or unprivileged token is documented.

use utoipa::{
    IntoResponses,
    openapi::{
        OpenApi, RefOr,
        path::{Operation, ParameterIn},
        security::SecurityRequirement,
    },
};

use super::error::ProblemBody;

/// The body is not valid JSON (`invalid_json`).
#[derive(IntoResponses)]
#[response(status = 400, content_type = "application/problem+json")]
pub struct InvalidJson(pub ProblemBody);

/// A bad, used or expired token (`invalid_token`).
#[derive(IntoResponses)]
#[response(status = 400, content_type = "application/problem+json")]
pub struct InvalidToken(pub ProblemBody);

/// Missing, invalid, expired or revoked access token (`unauthorized`, `token_expired`).
#[derive(IntoResponses)]
#[response(status = 401, content_type = "application/problem+json")]
pub struct Unauthorized(pub ProblemBody);

/// A wrong, replayed or spent second-factor code (`invalid_credentials`).
#[derive(IntoResponses)]
#[response(status = 401, content_type = "application/problem+json")]
pub struct WrongCode(pub ProblemBody);

/// Past the plan's limit (`plan_limit_reached`).
#[derive(IntoResponses)]
#[response(status = 402, content_type = "application/problem+json")]
pub struct PlanLimit(pub ProblemBody);

/// The caller may not do this (`forbidden`).
#[derive(IntoResponses)]
#[response(status = 403, content_type = "application/problem+json")]
pub struct Forbidden(pub ProblemBody);

/// With two-factor sign-in on, this needs a second factor proven in the
/// session within the last 10 minutes (`mfa_required`); the problem carries
/// an `mfa_token` for `POST /v1/auth/mfa/challenge`.
#[derive(IntoResponses)]
#[response(status = 403, content_type = "application/problem+json")]
pub struct StepUpRequired(pub ProblemBody);

/// No such resource, or not visible to the caller (`not_found`).
#[derive(IntoResponses)]
#[response(status = 404, content_type = "application/problem+json")]
pub struct NotFound(pub ProblemBody);

/// The request conflicts with the current state (`conflict`).
#[derive(IntoResponses)]
#[response(status = 409, content_type = "application/problem+json")]
pub struct Conflict(pub ProblemBody);

/// Not a step the status machine allows from here (`invalid_transition`).
#[derive(IntoResponses)]
#[response(status = 409, content_type = "application/problem+json")]
pub struct InvalidTransition(pub ProblemBody);

/// The body is over the size limit (`payload_too_large`).
#[derive(IntoResponses)]
#[response(status = 413, content_type = "application/problem+json")]
pub struct PayloadTooLarge(pub ProblemBody);

/// The body is not `application/json` (`unsupported_media_type`).
#[derive(IntoResponses)]
#[response(status = 415, content_type = "application/problem+json")]
pub struct UnsupportedMediaType(pub ProblemBody);

/// A field or parameter is invalid (`validation_failed`).
#[derive(IntoResponses)]
#[response(status = 422, content_type = "application/problem+json")]
pub struct Validation(pub ProblemBody);

/// Too many requests (`rate_limited`).
#[derive(IntoResponses)]
#[response(status = 429, content_type = "application/problem+json",
    headers(("Retry-After" = u64, description = "Seconds to wait before trying again")))]
pub struct RateLimited(pub ProblemBody);

/// A third party (Stripe) refused the call made for this request
/// (`upstream_error`).
#[derive(IntoResponses)]
#[response(status = 502, content_type = "application/problem+json")]
pub struct UpstreamError(pub ProblemBody);

/// Cannot answer right now (`unavailable`).
#[derive(IntoResponses)]
#[response(status = 503, content_type = "application/problem+json")]
pub struct Unavailable(pub ProblemBody);

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
            let writes = [false, true, true, true, true];
            for (op, write) in ops.into_iter().zip(writes) {
                if let Some(op) = op {
                    add_to(op, api, write);
                }
            }
        }
    }
}

fn add_to(op: &mut Operation, api: bool, write: bool) {
    let params = op.parameters.as_deref().unwrap_or_default();
    let has_in = |place: ParameterIn| {
        params
            .iter()
            .any(|p| matches!(p, RefOr::T(p) if p.parameter_in == place))
    };
    let (query, path) = (has_in(ParameterIn::Query), has_in(ParameterIn::Path));
    let body = op.request_body.is_some();
    let bearer = bearer_roles(op.security.as_deref().unwrap_or_default());

    if body {
        add::<InvalidJson>(op);
        add::<PayloadTooLarge>(op);
        add::<UnsupportedMediaType>(op);
    }
    if body || query {
        add::<Validation>(op);
    }
    if let Some(permissions) = bearer {
        add::<Unauthorized>(op);
        let mut reasons = Vec::new();
        if !permissions.is_empty() {
            let names: Vec<String> = permissions.iter().map(|p| format!("`{p}`")).collect();
            reasons.push(format!(
                "The caller lacks the {} permission (`forbidden`), or holds `roles.assign` \
                 or `users.manage` without two-factor sign-in where the deployment requires \
                 it (`mfa_required`)",
                names.join(", ")
            ));
        }
        if write && api {
            reasons.push(
                "The caller has not accepted the privacy policy in force \
                 (`policy_acceptance_required`)"
                    .to_owned(),
            );
        }
        if !reasons.is_empty() {
            add_described::<Forbidden>(op, reasons.join("; or "));
        }
    }
    if path {
        add::<NotFound>(op);
    }
    if api {
        add::<RateLimited>(op);
        add::<Unavailable>(op);
    }
}

/// The roles (for us: permissions) of the operation's `bearer` requirement,
/// if it names that scheme at all, required or as one alternative.
fn bearer_roles(requirements: &[SecurityRequirement]) -> Option<Vec<String>> {
    requirements.iter().find_map(|requirement| {
        // The requirement's map is private; its JSON form is the map.
        let value = serde_json::to_value(requirement).ok()?;
        serde_json::from_value(value.get("bearer")?.clone()).ok()
    })
}

/// Adds `R`'s responses where the operation has none of that status.
fn add<R: IntoResponses>(op: &mut Operation) {
    for (status, response) in R::responses() {
        op.responses.responses.entry(status).or_insert(response);
    }
}

/// As [`add`], with a description that says more than `R`'s own.
fn add_described<R: IntoResponses>(op: &mut Operation, description: String) {
    for (status, mut response) in R::responses() {
        if let RefOr::T(response) = &mut response {
            response.description = description.clone();
        }
        op.responses.responses.entry(status).or_insert(response);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    /// Every operation of the served document, as (method, path, operation).
    fn operations(doc: &Value) -> Vec<(String, String, Value)> {
        let mut found = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                found.push((method.to_uppercase(), path.clone(), op.clone()));
            }
        }
        found
    }

    fn document() -> Value {
        serde_json::to_value(crate::app::openapi_document()).unwrap()
    }

    fn names_bearer(op: &Value) -> bool {
        op["security"]
            .as_array()
            .is_some_and(|alternatives| alternatives.iter().any(|a| a.get("bearer").is_some()))
    }

    #[test]
    fn every_operation_that_takes_a_bearer_token_documents_401() {
        let doc = document();
        let mut bearer = 0;
        for (method, path, op) in operations(&doc) {
            if names_bearer(&op) {
                bearer += 1;
                assert!(
                    op["responses"].get("401").is_some(),
                    "{method} {path} takes a bearer token but does not document 401"
                );
            }
        }
        assert!(
            bearer > 20,
            "only {bearer} operations name the bearer scheme"
        );
    }

    #[test]
    fn parameters_sit_where_the_server_reads_them() {
        let doc = document();
        let mut queries = 0;
        for (method, path, op) in operations(&doc) {
            for param in op["parameters"].as_array().into_iter().flatten() {
                let name = param["name"].as_str().unwrap_or_default();
                match param["in"].as_str() {
                    Some("path") => assert!(
                        path.contains(&format!("{{{name}}}")),
                        "{method} {path} declares `{name}` in the path, which has no such segment"
                    ),
                    Some("query") => queries += 1,
                    _ => {}
                }
            }
        }
        assert!(
            queries > 20,
            "only {queries} query parameters are documented"
        );
    }

    #[test]
    fn public_reads_that_refuse_a_bad_token_document_401() {
        let doc = document();
        for path in ["/v1/projects", "/v1/projects/{id}", "/v1/users/{id}"] {
            let op = &doc["paths"][path]["get"];
            assert_eq!(
                op["security"],
                serde_json::json!([{}, {"bearer": []}]),
                "GET {path}: the token is optional"
            );
            assert!(
                op["responses"].get("401").is_some(),
                "GET {path} does not document 401"
            );
        }
    }

    #[test]
    fn a_permission_in_the_bearer_requirement_documents_403_naming_it() {
        let doc = document();
        let op = &doc["paths"]["/v1/users/{id}"]["delete"];
        assert_eq!(
            op["security"],
            serde_json::json!([{"bearer": ["users.delete"]}])
        );
        let description = op["responses"]["403"]["description"].as_str().unwrap();
        assert!(description.contains("`users.delete`"), "{description}");
    }

    #[test]
    fn every_problem_response_is_problem_json_with_a_description() {
        let doc = document();
        for (method, path, op) in operations(&doc) {
            for (status, response) in op["responses"].as_object().unwrap() {
                if status.as_str() < "400" {
                    continue;
                }
                let content = response["content"].as_object();
                assert_eq!(
                    content.map(|c| c.keys().map(String::as_str).collect::<Vec<_>>()),
                    Some(vec!["application/problem+json"]),
                    "{method} {path} {status} is not application/problem+json"
                );
                assert_eq!(
                    response["content"]["application/problem+json"]["schema"]["$ref"],
                    "#/components/schemas/Problem",
                    "{method} {path} {status} is not a Problem"
                );
                assert!(
                    response["description"]
                        .as_str()
                        .is_some_and(|d| !d.is_empty()),
                    "{method} {path} {status} has no description"
                );
            }
        }
        assert!(doc["components"]["schemas"].get("Problem").is_some());
    }
}
