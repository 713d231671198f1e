//! Prometheus metrics: request counts and latencies by endpoint, served at `/metrics`.
//!
//! Handlers and the domain record through the `metrics` facade; the binary installs the
//! Prometheus recorder and hands its handle to [`AppState`] for rendering.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;

/// Counts each request by route and status, and times it.
pub async fn track(request: Request, next: Next) -> Response {
    // The route template, never the raw path: unknown paths must not create new series.
    let endpoint = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("tessera_http_requests_total", "endpoint" => endpoint.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("tessera_http_request_duration_seconds", "endpoint" => endpoint)
        .record(started.elapsed().as_secs_f64());
    response
}

/// `GET /metrics` in the Prometheus text format.
pub async fn render(State(state): State<AppState>) -> Response {
    match &state.metrics {
        Some(handle) => {
            let mut response = handle.render().into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            response
        }
        None => (StatusCode::NOT_FOUND, "metrics are not enabled").into_response(),
    }
}
