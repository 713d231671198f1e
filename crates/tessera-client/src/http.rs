//! reqwest with tokens attached: `Authorization: Bearer` on every request, and one renewal
//! and retry when a resource server answers `401` with `error="invalid_token"` (RFC 6750
//! §3.1): the token was revoked or the server's clock disagrees with ours.

use reqwest::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Method, Request, RequestBuilder, Response, StatusCode};

use crate::error::Error;
use crate::manager::TokenManager;

/// Why an authorized request failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// No token could be had.
    #[error(transparent)]
    Token(#[from] Error),
    /// The request itself failed.
    #[error("request failed: {0}")]
    Request(#[from] reqwest::Error),
}

/// A reqwest client that authenticates every request with a [`TokenManager`]'s token.
#[derive(Clone)]
pub struct AuthorizedClient {
    http: reqwest::Client,
    tokens: TokenManager,
}

impl AuthorizedClient {
    /// Requests go out through `http` with tokens from `tokens`.
    pub fn new(http: reqwest::Client, tokens: TokenManager) -> Self {
        Self { http, tokens }
    }

    /// A request builder of the inner client; send it with [`send`](Self::send).
    pub fn request(&self, method: Method, url: impl reqwest::IntoUrl) -> RequestBuilder {
        self.http.request(method, url)
    }

    /// `GET url`; send it with [`send`](Self::send).
    pub fn get(&self, url: impl reqwest::IntoUrl) -> RequestBuilder {
        self.http.get(url)
    }

    /// Builds and sends `request` with a bearer token.
    pub async fn send(&self, request: RequestBuilder) -> Result<Response, HttpError> {
        self.execute(request.build()?).await
    }

    /// Sends `request` with a bearer token. On `401 invalid_token` the token is renewed
    /// once and the request repeated, if it is safe to repeat: an idempotent method
    /// (RFC 9110 §9.2.2) whose body can be replayed.
    pub async fn execute(&self, request: Request) -> Result<Response, HttpError> {
        let retry = idempotent(request.method())
            .then(|| request.try_clone())
            .flatten();
        let token = self.tokens.access_token().await?;
        let response = self.http.execute(with_bearer(request, &token)).await?;
        let Some(retry) = retry.filter(|_| invalid_token(&response)) else {
            return Ok(response);
        };
        let renewed = self.tokens.renew_rejected(&token).await?;
        Ok(self.http.execute(with_bearer(retry, &renewed)).await?)
    }
}

fn with_bearer(mut request: Request, token: &str) -> Request {
    if let Ok(value) = format!("Bearer {token}").parse() {
        request.headers_mut().insert(AUTHORIZATION, value);
    }
    request
}

fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// Whether `response` is a `401` whose Bearer challenge says `error="invalid_token"`.
fn invalid_token(response: &Response) -> bool {
    response.status() == StatusCode::UNAUTHORIZED
        && response
            .headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|challenge| {
                let challenge = challenge.to_ascii_lowercase();
                challenge.starts_with("bearer")
                    && (challenge.contains("error=\"invalid_token\"")
                        || challenge.contains("error=invalid_token"))
            })
}
