//! Authorization server metadata (RFC 8414 §2), also served as OpenID discovery.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::{AppState, paths};

/// The metadata document.
#[derive(Debug, Serialize)]
pub struct Metadata {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    revocation_endpoint: String,
    introspection_endpoint: String,
    end_session_endpoint: String,
    response_types_supported: [&'static str; 1],
    response_modes_supported: [&'static str; 1],
    grant_types_supported: [&'static str; 3],
    code_challenge_methods_supported: [&'static str; 1],
    token_endpoint_auth_methods_supported: [&'static str; 3],
    revocation_endpoint_auth_methods_supported: [&'static str; 3],
    introspection_endpoint_auth_methods_supported: [&'static str; 2],
    subject_types_supported: [&'static str; 1],
    authorization_response_iss_parameter_supported: bool,
}

impl Metadata {
    /// The metadata for an issuer.
    pub fn for_issuer(issuer: &str) -> Self {
        Self {
            issuer: issuer.to_owned(),
            authorization_endpoint: format!("{issuer}{}", paths::AUTHORIZE),
            token_endpoint: format!("{issuer}{}", paths::TOKEN),
            jwks_uri: format!("{issuer}{}", paths::JWKS),
            revocation_endpoint: format!("{issuer}{}", paths::REVOKE),
            introspection_endpoint: format!("{issuer}{}", paths::INTROSPECT),
            // OpenID Connect RP-Initiated Logout 1.0 §2.1.
            end_session_endpoint: format!("{issuer}{}", paths::LOGOUT),
            response_types_supported: ["code"],
            response_modes_supported: ["query"],
            grant_types_supported: ["authorization_code", "refresh_token", "client_credentials"],
            // RFC 7636 §4.2: plain is deliberately absent.
            code_challenge_methods_supported: ["S256"],
            token_endpoint_auth_methods_supported: [
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
            revocation_endpoint_auth_methods_supported: [
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
            // RFC 7662 §2.1: callers must authenticate; public clients cannot.
            introspection_endpoint_auth_methods_supported: [
                "client_secret_basic",
                "client_secret_post",
            ],
            subject_types_supported: ["public"],
            // RFC 9207 §3: authorization responses carry `iss`.
            authorization_response_iss_parameter_supported: true,
        }
    }
}

/// `GET /.well-known/oauth-authorization-server` and `/.well-known/openid-configuration`.
pub async fn metadata(State(state): State<AppState>) -> Response {
    let mut response = Json(Metadata::for_issuer(&state.server.policy().issuer)).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}
