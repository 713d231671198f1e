//! The UserInfo endpoint, `GET|POST /api/v2/auth/userinfo` (OIDC Core §5.3).
//!
//! The access token comes as `Authorization: Bearer` (RFC 6750 §2.1) or, on `POST`, as the
//! `access_token` form parameter (§2.2); never in the query (§2.3: it would end up in
//! logs). Refusals follow RFC 6750 §3: `401` with a `WWW-Authenticate: Bearer` challenge,
//! carrying `error="invalid_token"` for a token that is not active, none at all when no
//! token was sent (§3.1), `403` with `error="insufficient_scope"` for a token without the
//! `openid` scope, and `400` `invalid_request` for a token sent two ways at once.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tessera_core::userinfo::UserInfoError;

use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::form::{FormError, is_form, read_form};
use crate::no_store;

/// `GET|POST /api/v2/auth/userinfo`.
pub async fn userinfo(State(state): State<AppState>, parts: Parts, body: Body) -> Response {
    let token = match bearer_token(&parts, body).await {
        Ok(Some(token)) => token,
        Ok(None) => return challenge(StatusCode::UNAUTHORIZED, None),
        Err(Refusal::Form(e)) => {
            return ApiError::with_status(e.to_oauth(), e.status()).into_response();
        }
        Err(Refusal::InvalidRequest(description)) => return invalid_request(description),
    };
    match state.server.userinfo(&token).await {
        Ok(info) => no_store(Json(info)),
        Err(UserInfoError::InsufficientScope) => challenge(
            StatusCode::FORBIDDEN,
            Some((
                "insufficient_scope",
                "the access token was not granted the openid scope",
            )),
        ),
        Err(UserInfoError::Server(e)) => ApiError::from(e).into_response(),
        // `InvalidToken`, and whatever refusal a later version adds: fail closed.
        Err(_) => challenge(
            StatusCode::UNAUTHORIZED,
            Some(("invalid_token", "the access token is not active")),
        ),
    }
}

/// Why the request's token could not be read.
enum Refusal {
    /// The form body was refused.
    Form(FormError),
    /// `invalid_request`, with this description.
    InvalidRequest(&'static str),
}

/// The access token of the request, from the header or (on `POST`) the form body.
async fn bearer_token(parts: &Parts, body: Body) -> Result<Option<String>, Refusal> {
    let header = from_header(&parts.headers).map_err(Refusal::InvalidRequest)?;
    let form = if parts.method == Method::POST && is_form(&parts.headers) {
        let params = read_form(&parts.headers, body)
            .await
            .map_err(Refusal::Form)?;
        params
            .get("access_token")
            .map_err(|_| Refusal::InvalidRequest("access_token is repeated"))?
            .map(str::to_owned)
    } else {
        None
    };
    match (header, form) {
        // RFC 6750 §2: "Clients MUST NOT use more than one method to transmit the token".
        (Some(_), Some(_)) => Err(Refusal::InvalidRequest(
            "the access token must be sent one way only",
        )),
        (header, form) => Ok(header.or(form)),
    }
}

/// The token of an `Authorization: Bearer` header; other schemes are no token at all.
fn from_header(headers: &HeaderMap) -> Result<Option<String>, &'static str> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| "the Authorization header is malformed")?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
            let token = token.trim();
            if token.is_empty() {
                return Err("the bearer token is empty");
            }
            Ok(Some(token.to_owned()))
        }
        _ => Ok(None),
    }
}

fn invalid_request(description: &'static str) -> Response {
    challenge(
        StatusCode::BAD_REQUEST,
        Some(("invalid_request", description)),
    )
}

/// A refusal with its RFC 6750 §3 challenge; `error` is `None` when no token was sent.
fn challenge(status: StatusCode, error: Option<(&'static str, &'static str)>) -> Response {
    let mut value = String::from(r#"Bearer realm="tessera""#);
    let mut response = no_store(match error {
        Some((code, description)) => {
            value.push_str(&format!(
                r#", error="{code}", error_description="{description}""#
            ));
            if code == "insufficient_scope" {
                value.push_str(r#", scope="openid""#);
            }
            let body = ErrorBody {
                error: code,
                error_description: description,
            };
            (status, Json(body)).into_response()
        }
        None => status.into_response(),
    });
    if let Ok(value) = HeaderValue::from_str(&value) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}
