//! Authorization server metadata (RFC 8414 §2), also served as OpenID Provider metadata
//! (OpenID Connect Discovery 1.0 §3): one document, valid as both.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use tessera_core::id_token::{CLAIM_SCOPES, CLAIMS_SUPPORTED, OPENID};

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
    userinfo_endpoint: String,
    end_session_endpoint: String,
    scopes_supported: Vec<String>,
    claims_supported: [&'static str; CLAIMS_SUPPORTED.len()],
    response_types_supported: [&'static str; 1],
    response_modes_supported: [&'static str; 1],
    grant_types_supported: [&'static str; 3],
    code_challenge_methods_supported: [&'static str; 1],
    token_endpoint_auth_methods_supported: [&'static str; 3],
    revocation_endpoint_auth_methods_supported: [&'static str; 3],
    introspection_endpoint_auth_methods_supported: [&'static str; 2],
    subject_types_supported: [&'static str; 1],
    id_token_signing_alg_values_supported: [&'static str; 1],
    prompt_values_supported: [&'static str; 4],
    claims_parameter_supported: bool,
    request_parameter_supported: bool,
    request_uri_parameter_supported: bool,
    authorization_response_iss_parameter_supported: bool,
}

impl Metadata {
    /// The metadata for an issuer whose clients may be registered with `scopes` (besides
    /// the OpenID Connect ones, always supported).
    pub fn for_issuer<'a>(issuer: &str, scopes: impl IntoIterator<Item = &'a str>) -> Self {
        let mut scopes_supported: Vec<String> = [OPENID]
            .into_iter()
            .chain(CLAIM_SCOPES)
            .chain(scopes)
            .map(str::to_owned)
            .collect();
        scopes_supported.sort();
        scopes_supported.dedup();
        Self {
            issuer: issuer.to_owned(),
            authorization_endpoint: format!("{issuer}{}", paths::AUTHORIZE),
            token_endpoint: format!("{issuer}{}", paths::TOKEN),
            jwks_uri: format!("{issuer}{}", paths::JWKS),
            revocation_endpoint: format!("{issuer}{}", paths::REVOKE),
            introspection_endpoint: format!("{issuer}{}", paths::INTROSPECT),
            userinfo_endpoint: format!("{issuer}{}", paths::USERINFO),
            // OpenID Connect RP-Initiated Logout 1.0 §2.1.
            end_session_endpoint: format!("{issuer}{}", paths::LOGOUT),
            // OpenID Connect Discovery §3: RECOMMENDED, need not list every scope.
            scopes_supported,
            claims_supported: CLAIMS_SUPPORTED,
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
            id_token_signing_alg_values_supported: ["RS256"],
            // `select_account` is taken as `login`: signing in again is how to switch.
            prompt_values_supported: ["none", "login", "consent", "select_account"],
            // Discovery §3 defaults `request_uri_parameter_supported` to true: say no.
            claims_parameter_supported: false,
            request_parameter_supported: false,
            request_uri_parameter_supported: false,
            // RFC 9207 §3: authorization responses carry `iss`.
            authorization_response_iss_parameter_supported: true,
        }
    }
}

/// `GET /.well-known/oauth-authorization-server` and `/.well-known/openid-configuration`.
pub async fn metadata(State(state): State<AppState>) -> Response {
    let policy = state.server.policy();
    // Scopes are registered per client; the ones the operator described for the consent
    // page are the deployment's public vocabulary, so they are listed beside OIDC's own.
    let metadata = Metadata::for_issuer(&policy.issuer, policy.scope_descriptions.scopes());
    let mut response = Json(metadata).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}
