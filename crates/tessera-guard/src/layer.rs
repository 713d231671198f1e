//! Tower middleware and axum extractor: the guard at a Rust service's ingress.
//!
//! [`GuardLayer`] takes the token from the `Authorization: Bearer` header (RFC 6750 §2.1;
//! query and form tokens only when the configuration enables them, see [`credential`]),
//! verifies it, and puts [`Claims`] in the request extensions. [`require_scope`] adds a per-route scope check, answered with
//! `403 insufficient_scope` (RFC 6750 §3.1). Refusals are built by [`GuardError`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::{FromRequestParts, Request};
use axum::http::Method;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};

use crate::claims::Claims;
use crate::config::GuardConfig;
use crate::credential;
use crate::error::GuardError;
use crate::guard::Guard;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A tower layer that admits only requests with a valid bearer token.
#[derive(Debug, Clone)]
pub struct GuardLayer {
    guard: Guard,
}

impl GuardLayer {
    /// A layer verifying with `guard`.
    pub fn new(guard: Guard) -> Self {
        Self { guard }
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = GuardService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GuardService {
            guard: self.guard.clone(),
            inner,
        }
    }
}

/// The service of [`GuardLayer`].
#[derive(Debug, Clone)]
pub struct GuardService<S> {
    guard: Guard,
    inner: S,
}

impl<S> Service<Request> for GuardService<S>
where
    S: Service<Request, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // The clone that was driven to readiness handles this request (tower's contract).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let guard = self.guard.clone();
        Box::pin(async move {
            let (mut request, token) = match credential(guard.config(), request).await {
                Ok(found) => found,
                Err(error) => return Ok(error.into_response()),
            };
            let verdict = match token {
                Ok(token) => guard.verify_token(&token).await,
                Err(error) => Err(error),
            };
            match verdict {
                Ok(claims) => {
                    request.extensions_mut().insert(claims);
                    inner.call(request).await
                }
                Err(error) => Ok(error.into_response()),
            }
        })
    }
}

/// Largest form body read for an `access_token` member (when form tokens are enabled).
const FORM_LIMIT: usize = 64 * 1024;

/// The request (its body restored if it was read) and its bearer token.
async fn credential(
    config: &GuardConfig,
    request: Request,
) -> Result<(Request, Result<String, GuardError>), GuardError> {
    let read_form = config.allow_form_token
        && request.method() != Method::GET
        && request.method() != Method::HEAD
        && credential::is_form(request.headers());
    if !read_form {
        let token =
            credential::bearer_token(config, request.headers(), request.uri().query(), None);
        return Ok((request, token));
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, FORM_LIMIT)
        .await
        .map_err(|_| GuardError::InvalidRequest)?;
    let token = credential::bearer_token(config, &parts.headers, parts.uri.query(), Some(&bytes));
    Ok((Request::from_parts(parts, Body::from(bytes)), token))
}

/// The verified claims, as put in the extensions by [`GuardLayer`].
impl<S: Send + Sync> FromRequestParts<S> for Claims {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Claims>().cloned().ok_or_else(|| {
            // Only a route outside the layer gets here: a wiring bug, not the client's.
            tracing::error!("Claims extracted on a route without GuardLayer");
            axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
        })
    }
}

/// A layer refusing requests whose token lacks `scope` (put it inside [`GuardLayer`]).
pub fn require_scope(scope: &'static str) -> RequireScopeLayer {
    RequireScopeLayer { scope }
}

/// A per-route scope requirement; see [`require_scope`].
#[derive(Debug, Clone, Copy)]
pub struct RequireScopeLayer {
    scope: &'static str,
}

impl<S> Layer<S> for RequireScopeLayer {
    type Service = RequireScopeService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireScopeService {
            scope: self.scope,
            inner,
        }
    }
}

/// The service of [`RequireScopeLayer`].
#[derive(Debug, Clone)]
pub struct RequireScopeService<S> {
    scope: &'static str,
    inner: S,
}

impl<S> Service<Request> for RequireScopeService<S>
where
    S: Service<Request, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // Checked on every request, never cached with the token (ory/oathkeeper#743).
        let verdict = match request.extensions().get::<Claims>() {
            Some(claims) => claims.require_scope(self.scope),
            None => Err(GuardError::MissingToken),
        };
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            match verdict {
                Ok(()) => inner.call(request).await,
                Err(error) => Ok(error.into_response()),
            }
        })
    }
}
