//! `tessera guard`: the forward-auth service in front of other people's APIs.

use anyhow::{Context, Result};
use tessera_guard::forward_auth::{self, ScopeRules};
use tessera_guard::revocation_feed::{self, FeedConfig};
use tessera_guard::{Guard, GuardConfig};
use tokio::net::TcpListener;

use crate::cli::{GuardArgs, LogFormat};
use crate::serve;

/// Runs the forward-auth service until SIGINT or SIGTERM.
pub async fn run(args: GuardArgs) -> Result<()> {
    serve::init_logging(LogFormat::Text);
    let issuer = args.issuer.trim_end_matches('/').to_owned();
    let jwks_url = args
        .jwks_url
        .clone()
        .unwrap_or_else(|| format!("{issuer}/.well-known/jwks.json"));
    let mut config = GuardConfig::new(jwks_url, issuer.clone(), args.audience.clone());
    config.algorithms = args.algorithms.clone();
    config.cache_ttl = args.cache_ttl;
    config.jwks_min_refresh = args.jwks_min_refresh;
    let guard = Guard::new(config).context("guard settings")?;
    let rules = match &args.rules {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            ScopeRules::parse(&text).with_context(|| path.display().to_string())?
        }
        None => ScopeRules::default(),
    };
    let _feed = match (&args.feed_client_id, &args.feed_client_secret) {
        (Some(id), Some(secret)) => Some(
            revocation_feed::follow(guard.clone(), FeedConfig::new(&issuer, id, secret))
                .await
                .context("cannot follow the issuer's revocation feed")?,
        ),
        _ => {
            tracing::warn!(
                "no TESSERA_GUARD_FEED_CLIENT_ID: revoked tokens are accepted until they expire"
            );
            None
        }
    };
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let bound = listener.local_addr()?;
    tracing::info!(listen = %bound, %issuer, "tessera guard is ready");
    tessera_server::serve(
        listener,
        forward_auth::router(guard, rules),
        serve::shutdown_signal(),
    )
    .await
    .context("guard failed")
}
