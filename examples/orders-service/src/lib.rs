//! An example API protected by `tessera-guard`: the shape a Rust service takes to accept
//! Tessera access tokens.
//!
//! - `GET /orders` needs the scope `orders:read`;
//! - `POST /orders` needs `orders:write`;
//! - `GET /healthz` is open.
//!
//! The [`GuardLayer`] verifies the bearer token (signature against the issuer's JWKS, `iss`,
//! `aud`, `exp`, `typ`) and puts the [`Claims`] in the request; each route adds its scope
//! requirement with [`require_scope`]; handlers read the caller from the `Claims` extractor.

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use tessera_guard::{Claims, Guard, GuardLayer, require_scope};

/// The API, protected by `guard`.
pub fn app(guard: Guard) -> Router {
    let orders = Router::new()
        .route(
            "/orders",
            get(list_orders).layer(require_scope("orders:read")),
        )
        .route(
            "/orders",
            axum::routing::post(create_order).layer(require_scope("orders:write")),
        )
        .layer(GuardLayer::new(guard));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .merge(orders)
}

async fn list_orders(claims: Claims) -> Json<Value> {
    Json(json!({ "owner": claims.sub, "orders": [] }))
}

async fn create_order(claims: Claims) -> (axum::http::StatusCode, Json<Value>) {
    (
        axum::http::StatusCode::CREATED,
        Json(json!({ "created_by": claims.sub, "client": claims.client_id })),
    )
}
