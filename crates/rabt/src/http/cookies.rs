//! Cookies: reading one from a request, and the pair that carries a
//! cookie-based session (the refresh token, HttpOnly and scoped to
//! `/v1/auth`, and the double-submit CSRF token the web app echoes).

use axum::http::{HeaderMap, HeaderValue, header, header::InvalidHeaderValue};

/// The refresh token of a cookie-based session.
pub const REFRESH_COOKIE: &str = "rabt_refresh";
/// The double-submit token, readable by the web app.
pub const CSRF_COOKIE: &str = "rabt_csrf";

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// The `Set-Cookie` headers of a session's refresh and CSRF cookies.
pub fn session_cookies(
    refresh: &str,
    csrf: &str,
    max_age: u64,
) -> Result<HeaderMap, InvalidHeaderValue> {
    let refresh_cookie = format!(
        "{REFRESH_COOKIE}={refresh}; HttpOnly; Secure; SameSite=Strict; Path=/v1/auth; Max-Age={max_age}"
    );
    let csrf_cookie =
        format!("{CSRF_COOKIE}={csrf}; Secure; SameSite=Strict; Path=/; Max-Age={max_age}");
    let mut headers = HeaderMap::new();
    for cookie in [refresh_cookie, csrf_cookie] {
        headers.append(header::SET_COOKIE, HeaderValue::from_str(&cookie)?);
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_is_found_among_others_and_across_headers() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1; rabt_csrf=x"));
        headers.append(header::COOKIE, HeaderValue::from_static("rabt_refresh=r"));
        assert_eq!(value(&headers, CSRF_COOKIE), Some("x"));
        assert_eq!(value(&headers, REFRESH_COOKIE), Some("r"));
        assert_eq!(value(&headers, "b"), None);
    }
}
