//! Liveness and readiness probes.

use axum::extract::State;
use axum::http::StatusCode;

use crate::AppState;

/// `GET /healthz`: the process is up.
pub async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: 200 when the store answers, naming any optional service that is down
/// (`ready (redis unavailable)`): the node serves correctly without it, so it stays in
/// rotation. 503 otherwise.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, String) {
    if !state.health.ready().await {
        return (StatusCode::SERVICE_UNAVAILABLE, "not ready".to_owned());
    }
    match state.health.degraded().await {
        Some(detail) => (StatusCode::OK, format!("ready ({detail})")),
        None => (StatusCode::OK, "ready".to_owned()),
    }
}
