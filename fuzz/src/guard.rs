//! A `tessera-guard` [`Guard`] for the fixed test keys: the key set is served over loopback
//! HTTP by a task on the harness's runtime (the guard only ever fetches keys from a URL),
//! `max-age` one hour, so the guard fetches it once and again only for unknown `kid`s
//! (at most every `jwks_min_refresh`).

use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::http::header;
use axum::routing::get;
use tessera_guard::{Guard, GuardConfig};

use crate::keys::{AUDIENCE, ISSUER, test_keys};

/// The leeway the guard allows on `exp` and `nbf`.
pub const LEEWAY: Duration = Duration::from_secs(60);

/// The process's guard (RS256 and ES256 allowed), started on first use (outside any
/// `block_on`).
pub fn test_guard() -> &'static Guard {
    static GUARD: OnceLock<Guard> = OnceLock::new();
    GUARD.get_or_init(|| crate::block_on(start()))
}

async fn start() -> Guard {
    let jwks = test_keys().jwks().to_string();
    let app = Router::new().route(
        "/jwks.json",
        get(move || {
            let jwks = jwks.clone();
            async move {
                (
                    [
                        (header::CONTENT_TYPE, "application/json"),
                        (header::CACHE_CONTROL, "public, max-age=3600"),
                    ],
                    jwks,
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let address = listener.local_addr().expect("its address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let mut config = GuardConfig::new(format!("http://{address}/jwks.json"), ISSUER, AUDIENCE);
    config.algorithms = vec!["RS256".into(), "ES256".into()];
    config.leeway = LEEWAY;
    config.cache_capacity = 10_000;
    Guard::new(config).expect("a valid guard configuration")
}
