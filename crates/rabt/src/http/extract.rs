//! Extractors whose failures speak the problem format.
//!
//! - [`AppJson`]: a body that is not JSON is 400 `invalid_json`; JSON of the wrong
//!   shape (unknown field, missing field, wrong type) is 422 `validation_failed`
//!   naming the field; a body over the limit is 413; a non-JSON content type 415.
//! - [`AppQuery`]: a malformed query string is 422 naming the parameter.
//! - [`AppPath`]: a path segment that cannot parse (a malformed id) is 404, since
//!   no such resource can exist.

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request, rejection::BytesRejection},
    http::{StatusCode, header, request::Parts},
};
use serde::de::DeserializeOwned;

use super::error::{ApiError, ErrorCode, FieldError};

/// A JSON body, deserialised into `T`.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppJson<T>(pub T);

impl<T, S> FromRequest<S> for AppJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json_content_type(req.headers().get(header::CONTENT_TYPE)) {
            return Err(ApiError::new(ErrorCode::UnsupportedMediaType)
                .with_detail("Send the body as application/json."));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(body_rejection)?;
        parse_json(&bytes).map(AppJson)
    }
}

impl<T: serde::Serialize> axum::response::IntoResponse for AppJson<T> {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self.0).into_response()
    }
}

/// Parses a JSON document into `T`, with the edge's error mapping.
///
/// Two rules hold for every body before it reaches a handler: a string with a
/// NUL character (which Postgres cannot store) is 422 naming the field, and a
/// number with a zero fraction (`4405.0`) counts as the integer it equals, as
/// JSON Schema's `integer` says.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(ErrorCode::InvalidJson).with_detail(format!(
            "The body is not valid JSON (line {}, column {}).",
            e.line(),
            e.column()
        ))
    })?;
    let mut nul_fields = Vec::new();
    normalise_json(&mut value, "", &mut nul_fields);
    if !nul_fields.is_empty() {
        return Err(ApiError::validation(
            nul_fields
                .into_iter()
                .map(|field| FieldError::new(field, "invalid", NUL_MESSAGE))
                .collect(),
        ));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        ApiError::validation(vec![field_error(&path, &e.into_inner().to_string())])
    })
}

const NUL_MESSAGE: &str = "Text may not contain the NUL character.";

/// Turns integral floats into integers and collects the paths of strings (and
/// keys) that hold a NUL character.
fn normalise_json(value: &mut serde_json::Value, path: &str, nul_fields: &mut Vec<String>) {
    use serde_json::Value;
    let join = |name: &str| {
        if path.is_empty() {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        }
    };
    match value {
        Value::String(text) if text.contains('\0') => nul_fields.push(if path.is_empty() {
            "body".into()
        } else {
            path.into()
        }),
        Value::Number(number) if number.is_f64() => {
            if let Some(int) = number.as_f64().and_then(integral) {
                *value = int;
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                normalise_json(item, &format!("{path}[{i}]"), nul_fields);
            }
        }
        Value::Object(fields) => {
            for (name, item) in fields.iter_mut() {
                if name.contains('\0') {
                    nul_fields.push(parent_or_body(path));
                    continue;
                }
                normalise_json(item, &join(name), nul_fields);
            }
        }
        _ => {}
    }
}

/// The integer a float equals, when it has no fraction and fits in 64 bits.
fn integral(float: f64) -> Option<serde_json::Value> {
    if float.fract() != 0.0 || !float.is_finite() {
        return None;
    }
    // 2^63 and 2^64 are exact as f64; the ranges are half-open on purpose.
    if (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&float) {
        Some(serde_json::Value::from(float as i64))
    } else if (0.0..18_446_744_073_709_551_616.0).contains(&float) {
        Some(serde_json::Value::from(float as u64))
    } else {
        None
    }
}

fn body_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(ErrorCode::PayloadTooLarge)
    } else {
        ApiError::new(ErrorCode::InvalidJson).with_detail("The body could not be read.")
    }
}

fn is_json_content_type(value: Option<&header::HeaderValue>) -> bool {
    let Some(mime) = value.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = mime.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Turns a serde message into a field error, so that `errors[].field` always
/// names the offending field: the tracked path already ends in an unknown
/// field's name, while a missing field is reported at its parent's path with the
/// name in backticks.
fn field_error(path: &str, message: &str) -> FieldError {
    let parent = if path == "." { "" } else { path };
    let join = |name: &str| {
        if parent.is_empty() {
            name.to_owned()
        } else {
            format!("{parent}.{name}")
        }
    };
    let quoted = message.split('`').nth(1).unwrap_or_default();
    if message.starts_with("unknown field") {
        FieldError::new(
            parent_or_body(parent),
            "unknown_field",
            "This field is not accepted here.",
        )
    } else if message.starts_with("missing field") {
        FieldError::new(join(quoted), "required", "This field is required.")
    } else if message.starts_with("invalid type") {
        FieldError::new(
            parent_or_body(parent),
            "invalid_type",
            clean_message(message),
        )
    } else {
        FieldError::new(parent_or_body(parent), "invalid", clean_message(message))
    }
}

fn parent_or_body(parent: &str) -> String {
    if parent.is_empty() {
        "body".into()
    } else {
        parent.into()
    }
}

/// serde messages are safe to show (they describe the input, not the server),
/// but they can quote long input; keep them short.
fn clean_message(message: &str) -> String {
    let mut out: String = message.chars().take(200).collect();
    if out.len() < message.len() {
        out.push('…');
    }
    out
}

/// A query string, deserialised into `T`.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for AppQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        if let Some((name, _)) = form_urlencoded_parse(query.as_bytes())
            .find(|(name, value)| name.contains('\0') || value.contains('\0'))
        {
            let field = if name.contains('\0') { "query" } else { &name };
            return Err(ApiError::validation(vec![FieldError::new(
                field,
                "invalid",
                NUL_MESSAGE,
            )]));
        }
        parse_query(query.to_owned()).map(AppQuery)
    }
}

/// Deserialises a query string. As in JSON bodies, a parameter that fails to
/// parse while its value is an integer written with a zero fraction (`4405.0`)
/// is read again as that integer; text parameters keep what was sent.
fn parse_query<T: DeserializeOwned>(mut query: String) -> Result<T, ApiError> {
    // Each retry rewrites one more parameter, so this ends.
    loop {
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded_parse(query.as_bytes()));
        let err = match serde_path_to_error::deserialize(deserializer) {
            Ok(value) => return Ok(value),
            Err(err) => err,
        };
        let path = err.path().to_string();
        if let Some(fixed) = integral_query_value(&query, &path) {
            query = fixed;
            continue;
        }
        return Err(ApiError::validation(vec![field_error(
            &path,
            &err.into_inner().to_string(),
        )]));
    }
}

/// The query with parameter `name`'s values `N.0…` written as `N`, if any was.
fn integral_query_value(query: &str, name: &str) -> Option<String> {
    let mut changed = false;
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in form_urlencoded_parse(query.as_bytes()) {
        let integer = (key == name)
            .then(|| value.split_once('.'))
            .flatten()
            .filter(|(whole, fraction)| {
                let digits = whole.strip_prefix(['-', '+']).unwrap_or(whole);
                !digits.is_empty()
                    && digits.bytes().all(|b| b.is_ascii_digit())
                    && !fraction.is_empty()
                    && fraction.bytes().all(|b| b == b'0')
            })
            .map(|(whole, _)| whole.to_owned());
        match integer {
            Some(integer) => {
                changed = true;
                out.append_pair(&key, &integer);
            }
            None => {
                out.append_pair(&key, &value);
            }
        }
    }
    changed.then(|| out.finish())
}

fn form_urlencoded_parse(input: &[u8]) -> url::form_urlencoded::Parse<'_> {
    url::form_urlencoded::parse(input)
}

/// Path parameters, deserialised into `T`; anything unparsable is 404.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppPath<T>(pub T);

impl<T, S> FromRequestParts<S> for AppPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| AppPath(value))
            .map_err(|_| ApiError::not_found())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        title: String,
        budget: Budget,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Budget {
        min: u32,
    }

    fn fields(bytes: &str) -> (ErrorCode, Vec<(String, String)>) {
        let err = parse_json::<Body>(bytes.as_bytes()).unwrap_err();
        let fields = err
            .field_errors()
            .iter()
            .map(|f| (f.field.clone(), f.code.clone()))
            .collect();
        (err.code(), fields)
    }

    #[test]
    fn malformed_json_is_invalid_json() {
        assert_eq!(fields("{\"title\":").0, ErrorCode::InvalidJson);
    }

    #[test]
    fn an_unknown_field_is_named() {
        let (code, errors) = fields(r#"{"title":"a","budget":{"min":1},"admin":true}"#);
        assert_eq!(code, ErrorCode::ValidationFailed);
        assert_eq!(errors, vec![("admin".into(), "unknown_field".into())]);
    }

    #[test]
    fn a_nested_unknown_field_is_named_with_its_path() {
        let (_, errors) = fields(r#"{"title":"a","budget":{"min":1,"max":2}}"#);
        assert_eq!(errors, vec![("budget.max".into(), "unknown_field".into())]);
    }

    #[test]
    fn a_missing_field_is_required() {
        let (_, errors) = fields(r#"{"budget":{"min":1}}"#);
        assert_eq!(errors, vec![("title".into(), "required".into())]);
    }

    #[test]
    fn a_wrong_type_is_named_with_its_path() {
        let (_, errors) = fields(r#"{"title":"a","budget":{"min":"ten"}}"#);
        assert_eq!(errors, vec![("budget.min".into(), "invalid_type".into())]);
    }

    #[test]
    fn a_nul_character_is_invalid_and_named() {
        let (code, errors) = fields("{\"title\":\"a\\u0000b\",\"budget\":{\"min\":1}}");
        assert_eq!(code, ErrorCode::ValidationFailed);
        assert_eq!(errors, vec![("title".into(), "invalid".into())]);
    }

    #[test]
    fn an_integral_float_counts_as_an_integer() {
        let body = parse_json::<Body>(br#"{"title":"a","budget":{"min":4405.0}}"#).unwrap();
        assert_eq!(body.budget.min, 4405);
        let (_, errors) = fields(r#"{"title":"a","budget":{"min":4405.5}}"#);
        assert_eq!(errors, vec![("budget.min".into(), "invalid_type".into())]);
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Params {
        q: Option<String>,
        limit: Option<i64>,
    }

    #[test]
    fn an_integral_query_number_counts_as_an_integer_and_text_is_kept() {
        let p: Params = parse_query("q=5.0&limit=20.00".into()).unwrap();
        assert_eq!((p.q.as_deref(), p.limit), (Some("5.0"), Some(20)));
        let err = parse_query::<Params>("limit=20.5".into()).unwrap_err();
        assert_eq!(err.field_errors()[0].field, "limit");
        let err = parse_query::<Params>("limit=.0".into()).unwrap_err();
        assert_eq!(err.field_errors()[0].field, "limit");
    }

    #[test]
    fn json_content_types_are_recognised() {
        let ok = |v: &'static str| is_json_content_type(Some(&header::HeaderValue::from_static(v)));
        assert!(ok("application/json"));
        assert!(ok("application/json; charset=utf-8"));
        assert!(ok("application/merge-patch+json"));
        assert!(!ok("text/plain"));
        assert!(!is_json_content_type(None));
    }
}
