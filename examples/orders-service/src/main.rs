//! Runs the example orders API: `ORDERS_ISSUER`, `ORDERS_AUDIENCE`, `ORDERS_LISTEN`
//! (default 127.0.0.1:9000).

use anyhow::{Context, Result};
use tessera_guard::{Guard, GuardConfig};

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let issuer = std::env::var("ORDERS_ISSUER").context("ORDERS_ISSUER is required")?;
    let audience = std::env::var("ORDERS_AUDIENCE").context("ORDERS_AUDIENCE is required")?;
    let listen = std::env::var("ORDERS_LISTEN").unwrap_or_else(|_| "127.0.0.1:9000".into());
    let issuer = issuer.trim_end_matches('/').to_owned();
    let config = GuardConfig::new(format!("{issuer}/.well-known/jwks.json"), issuer, audience);
    let guard = Guard::new(config).context("guard settings")?;
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(listen = %listener.local_addr()?, "orders-service is ready");
    axum::serve(listener, orders_service::app(guard))
        .await
        .context("server failed")
}
