//! Tessera's HTTP adapter: the OAuth 2.0 and OpenID Connect endpoints, discovery, JWKS,
//! the sign-in pages (login, consent, error, signed out) and health probes, on axum.
//!
//! Handlers are thin: they read the request strictly ([`form`]), make one call into
//! `tessera_core::AuthorizationServer`, and shape the answer; errors become RFC 6749 §5.2
//! bodies in one place ([`error`]). There are no business rules here.

#![warn(missing_docs)]

pub mod authorize;
pub mod client_ip;
pub mod consent;
pub mod cookies;
pub mod demo;
pub mod discovery;
pub mod error;
pub mod form;
pub mod health;
pub mod introspect;
pub mod jwks;
pub mod logout;
pub mod metrics;
pub mod pages;
pub mod request_id;
pub mod revocations;
pub mod revoke;
pub mod token;
pub mod userinfo;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use tessera_core::{AuthorizationServer, OAuthError};
use tokio::net::TcpListener;
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::cookies::CookiePolicy;
use crate::demo::DemoInfo;
use crate::error::ApiError;

/// The paths of the protocol surface (DESIGN.md).
pub mod paths {
    /// RFC 8414 metadata.
    pub const METADATA: &str = "/.well-known/oauth-authorization-server";
    /// OpenID Connect discovery (same document).
    pub const OPENID_CONFIGURATION: &str = "/.well-known/openid-configuration";
    /// The JWK Set.
    pub const JWKS: &str = "/.well-known/jwks.json";
    /// The authorization endpoint.
    pub const AUTHORIZE: &str = "/api/v2/auth/authorize";
    /// The consent form's target.
    pub const CONSENT: &str = "/api/v2/auth/consent";
    /// Sign-out (OpenID Connect RP-Initiated Logout's `end_session_endpoint`).
    pub const LOGOUT: &str = "/api/v2/auth/logout";
    /// The token endpoint.
    pub const TOKEN: &str = "/api/v2/auth/token";
    /// The revocation endpoint (RFC 7009).
    pub const REVOKE: &str = "/api/v2/auth/revoke";
    /// The UserInfo endpoint (OpenID Connect Core §5.3).
    pub const USERINFO: &str = "/api/v2/auth/userinfo";
    /// The introspection endpoint (RFC 7662).
    pub const INTROSPECT: &str = "/api/v2/auth/introspect";
    /// The revocation feed for remote gateways.
    pub const REVOCATIONS: &str = "/api/v2/auth/revocations";
    /// The demo callback (`serve --demo`).
    pub const DEMO_CALLBACK: &str = "/demo/callback";
}

/// How long a client may take to send a request body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// A readiness check of the backing services.
#[async_trait]
pub trait HealthCheck: Send + Sync {
    /// Whether the server can serve requests now.
    async fn ready(&self) -> bool;
    /// Optional services that are down while the server still serves correctly (only
    /// slower), e.g. `redis unavailable`; named in the `/readyz` body. `None` when all are up.
    async fn degraded(&self) -> Option<String> {
        None
    }
}

/// Everything a handler may need.
#[derive(Clone)]
pub struct AppState {
    /// The domain.
    pub server: Arc<AuthorizationServer>,
    /// Readiness of the backing services.
    pub health: Arc<dyn HealthCheck>,
    /// Cookie names and attributes.
    pub cookies: CookiePolicy,
    /// `max-age` of the JWKS response.
    pub jwks_max_age: Duration,
    /// Demo settings, when `serve --demo` runs.
    pub demo: Option<Arc<DemoInfo>>,
    /// The Prometheus recorder's handle, when metrics are enabled.
    pub metrics: Option<PrometheusHandle>,
}

impl AppState {
    /// State for a server, with cookie policy derived from its issuer.
    pub fn new(server: Arc<AuthorizationServer>, health: Arc<dyn HealthCheck>) -> Self {
        let cookies = CookiePolicy::for_issuer(&server.policy().issuer);
        Self {
            server,
            health,
            cookies,
            jwks_max_age: Duration::from_secs(300),
            demo: None,
            metrics: None,
        }
    }
}

/// The application router.
pub fn app(state: AppState) -> Router {
    let json_405 = || async {
        ApiError::with_status(
            OAuthError::invalid_request("method not allowed"),
            StatusCode::METHOD_NOT_ALLOWED,
        )
    };
    let mut router = Router::new()
        .route(paths::METADATA, get(discovery::metadata))
        .route(paths::OPENID_CONFIGURATION, get(discovery::metadata))
        .route(paths::JWKS, get(jwks::jwks))
        .route(
            paths::AUTHORIZE,
            get(authorize::authorize_get)
                .post(authorize::authorize_post)
                .fallback(json_405),
        )
        .route(
            paths::CONSENT,
            axum::routing::post(consent::consent_post).fallback(json_405),
        )
        .route(
            paths::LOGOUT,
            get(logout::logout).post(logout::logout).fallback(json_405),
        )
        .route(
            paths::TOKEN,
            axum::routing::post(token::token).fallback(json_405),
        )
        .route(
            paths::REVOKE,
            axum::routing::post(revoke::revoke).fallback(json_405),
        )
        .route(
            paths::INTROSPECT,
            axum::routing::post(introspect::introspect).fallback(json_405),
        )
        .route(
            paths::USERINFO,
            get(userinfo::userinfo)
                .post(userinfo::userinfo)
                .fallback(json_405),
        )
        .route(paths::REVOCATIONS, get(revocations::feed))
        .route("/metrics", get(metrics::render))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/assets/tessera.css", get(stylesheet));
    if state.demo.is_some() {
        router = router.route(paths::DEMO_CALLBACK, get(demo::callback));
    }
    router
        // Every other route (JWKS, discovery, health) answers a wrong method in JSON too;
        // this must follow the last `.route`, as it applies to the routes registered so far.
        .method_not_allowed_fallback(json_405)
        .fallback(not_found)
        // The form reader enforces its own limit (and answers 413 in the OAuth format);
        // this bounds every other extractor.
        .layer(DefaultBodyLimit::max(form::MAX_BODY))
        .layer(axum::middleware::from_fn(metrics::track))
        // Error pages mint their request id from the server's random source.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            request_id::scope,
        ))
        // A client that promises a body and trickles it must not hold a connection forever.
        .layer(RequestBodyTimeoutLayer::new(BODY_TIMEOUT))
        .layer(
            // Log the path only: query strings may carry codes (the demo callback).
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path())
            }),
        )
        .with_state(state)
}

/// An answer that must not be stored by any cache: it is about one caller's credentials
/// (RFC 6749 §5.1, RFC 7662 §4, OIDC Core §5.3.2).
pub(crate) fn no_store(answer: impl IntoResponse) -> Response {
    let mut response = answer.into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn not_found() -> ApiError {
    ApiError::with_status(
        OAuthError::invalid_request("no such endpoint"),
        StatusCode::NOT_FOUND,
    )
}

async fn stylesheet() -> Response {
    let mut response = pages::STYLESHEET.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    response
}

/// Serves `router` on `listener` until `shutdown` completes, then drains in-flight requests.
/// Each request carries its peer address (`ConnectInfo<SocketAddr>`), the client address of
/// the login throttle and the audit trail ([`client_ip`]).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
