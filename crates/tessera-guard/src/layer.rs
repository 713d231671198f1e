//! Tower middleware and axum extractor: the guard at a Rust service's ingress.
//!
//! [`GuardLayer`] takes the token from the `Authorization: Bearer` header only (RFC 6750
//! §2.1; query and form tokens are never looked at), verifies it, and puts [`Claims`] in
//! the request extensions. [`require_scope`] adds a per-route scope check, answered with
//! `403 insufficient_scope` (RFC 6750 §3.1). Refusals are built by [`GuardError`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::{FromRequestParts, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};

use crate::claims::Claims;
use crate::error::{GuardError, InvalidReason};
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

    fn call(&mut self, mut request: Request) -> Self::Future {
        // The clone that was driven to readiness handles this request (tower's contract).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let guard = self.guard.clone();
        let authorization = authorization(&request);
        Box::pin(async move {
            let verdict = match authorization {
                Ok(value) => guard.verify(&value).await,
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

/// The one `Authorization` value of the request.
fn authorization(request: &Request) -> Result<String, GuardError> {
    let mut values = request.headers().get_all(AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        // Two credentials are ambiguous: refuse rather than pick one (RFC 6750 §2).
        return Err(if request.headers().contains_key(AUTHORIZATION) {
            InvalidReason::Malformed.into()
        } else {
            GuardError::MissingToken
        });
    };
    let value = value.to_str().map_err(|_| InvalidReason::Malformed)?;
    Ok(value.to_owned())
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
