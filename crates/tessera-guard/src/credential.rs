//! Where the bearer token is taken from (RFC 6750 §2).
//!
//! The `Authorization: Bearer` header always; the `access_token` query parameter (§2.3)
//! and form body member (§2.2) only when the configuration enables them. A request that
//! carries the token more than one way, or repeats a header or parameter, is refused with
//! `invalid_request` (§3.1) rather than guessed at: picking one of two credentials is how
//! a proxy and a service come to disagree on who the caller is.

use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, HeaderValue};

use crate::config::GuardConfig;
use crate::error::{GuardError, InvalidReason};

/// The bearer token of a request with these headers, this query string (without `?`) and,
/// for a form-encoded body the caller has read, this body.
pub fn bearer_token(
    config: &GuardConfig,
    headers: &HeaderMap,
    query: Option<&str>,
    form: Option<&[u8]>,
) -> Result<String, GuardError> {
    let mut found = Vec::with_capacity(1);
    let mut values = headers.get_all(AUTHORIZATION).iter();
    match (values.next(), values.next()) {
        (None, _) => {}
        (Some(value), None) => found.push(from_header(value)),
        (Some(_), Some(_)) => return Err(GuardError::InvalidRequest),
    }
    if config.allow_query_token
        && let Some(query) = query
        && let Some(token) = parameter(query.as_bytes())?
    {
        found.push(checked(token));
    }
    if config.allow_form_token
        && let Some(body) = form
        && let Some(token) = parameter(body)?
    {
        found.push(checked(token));
    }
    match found.len() {
        0 => Err(GuardError::MissingToken),
        1 => found.pop().unwrap_or(Err(GuardError::MissingToken)),
        _ => Err(GuardError::InvalidRequest),
    }
}

/// Whether a body with these headers is a form whose `access_token` may be read (RFC 6750
/// §2.2: `application/x-www-form-urlencoded`, single-part; the method is the caller's).
pub fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| {
            media
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

fn from_header(value: &HeaderValue) -> Result<String, GuardError> {
    header_token(value.to_str().map_err(|_| InvalidReason::Malformed)?)
}

/// The token of one `Authorization` value, `Bearer <token>` (RFC 6750 §2.1).
pub(crate) fn header_token(value: &str) -> Result<String, GuardError> {
    // RFC 9110 §11.1: the scheme is case-insensitive.
    let (scheme, token) = value.split_once(' ').ok_or(InvalidReason::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(InvalidReason::Malformed.into());
    }
    checked(token.trim_matches(' ').to_owned())
}

/// The one `access_token` of a form-encoded string; a repeated one is `invalid_request`.
fn parameter(encoded: &[u8]) -> Result<Option<String>, GuardError> {
    let mut tokens = url::form_urlencoded::parse(encoded)
        .filter(|(name, _)| name == "access_token")
        .map(|(_, value)| value.into_owned());
    match (tokens.next(), tokens.next()) {
        (token, None) => Ok(token),
        (Some(_), Some(_)) => Err(GuardError::InvalidRequest),
        (None, Some(_)) => Ok(None),
    }
}

/// RFC 6750 §2.1 b64token: no spaces or other characters inside, not empty.
fn checked(token: String) -> Result<String, GuardError> {
    let b64token = |c: char| c.is_ascii_alphanumeric() || "-._~+/=".contains(c);
    if token.is_empty() || !token.chars().all(b64token) {
        return Err(InvalidReason::Malformed.into());
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(query: bool, form: bool) -> GuardConfig {
        let mut config = GuardConfig::new("http://127.0.0.1:1/jwks", "https://i", "api");
        config.allow_query_token = query;
        config.allow_form_token = form;
        config
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn the_header_is_read_with_a_case_insensitive_scheme() {
        let c = config(false, false);
        for (value, expected) in [
            ("Bearer a.b.c", Ok("a.b.c".to_owned())),
            ("bearer a.b.c", Ok("a.b.c".to_owned())),
            ("Basic a.b.c", Err(InvalidReason::Malformed.into())),
            ("Bearer ", Err(InvalidReason::Malformed.into())),
            ("Bearer a b", Err(InvalidReason::Malformed.into())),
            ("a.b.c", Err(InvalidReason::Malformed.into())),
        ] {
            assert_eq!(
                bearer_token(&c, &headers(&[value]), None, None),
                expected,
                "{value}"
            );
        }
        assert_eq!(
            bearer_token(&c, &headers(&[]), None, None),
            Err(GuardError::MissingToken)
        );
    }

    #[test]
    fn query_and_form_tokens_are_ignored_unless_enabled() {
        let none = headers(&[]);
        let query = Some("access_token=a.b.c");
        let form = Some(&b"access_token=a.b.c"[..]);
        assert_eq!(
            bearer_token(&config(false, false), &none, query, form),
            Err(GuardError::MissingToken)
        );
        assert_eq!(
            bearer_token(&config(true, false), &none, query, None).as_deref(),
            Ok("a.b.c")
        );
        assert_eq!(
            bearer_token(&config(false, true), &none, None, form).as_deref(),
            Ok("a.b.c")
        );
    }

    #[test]
    fn more_than_one_credential_is_an_invalid_request() {
        let both = config(true, true);
        type Case<'a> = (&'a str, HeaderMap, Option<&'a str>, Option<&'a [u8]>);
        let cases: [Case; 4] = [
            (
                "two headers",
                headers(&["Bearer a", "Bearer a"]),
                None,
                None,
            ),
            (
                "header and query",
                headers(&["Bearer a"]),
                Some("access_token=a"),
                None,
            ),
            (
                "query and form",
                headers(&[]),
                Some("access_token=a"),
                Some(b"access_token=a"),
            ),
            (
                "repeated parameter",
                headers(&[]),
                Some("access_token=a&access_token=a"),
                None,
            ),
        ];
        for (name, headers, query, form) in cases {
            assert_eq!(
                bearer_token(&both, &headers, query, form),
                Err(GuardError::InvalidRequest),
                "{name}"
            );
        }
    }

    #[test]
    fn only_url_encoded_forms_are_read() {
        let form = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                axum::http::header::CONTENT_TYPE,
                HeaderValue::from_str(value).unwrap(),
            );
            is_form(&headers)
        };
        assert!(form("application/x-www-form-urlencoded"));
        assert!(form("Application/X-WWW-Form-Urlencoded; charset=utf-8"));
        assert!(!form("application/json"));
        assert!(!form("multipart/form-data; boundary=x"));
    }
}
