//! The janitor: `tessera janitor [--once]`, and the same loop inside `tessera serve`.

use std::time::Duration;

use anyhow::Result;
use tessera_core::janitor::{Janitor, Purged};
use tessera_core::time::{Clock, SystemClock};

use crate::cli::JanitorArgs;
use crate::storage;

/// Rows per delete transaction: small enough that token traffic interleaves.
const BATCH: u32 = 500;

/// Runs one pass, logs and counts what it removed.
pub async fn pass(store: &dyn Janitor) -> Result<Purged> {
    let purged = store.purge_expired(SystemClock.now(), BATCH).await?;
    for (kind, n) in purged.by_kind() {
        if n > 0 {
            metrics::counter!("tessera_janitor_removed_total", "kind" => kind).increment(n);
        }
    }
    tracing::info!(
        codes = purged.codes,
        refresh_tokens = purged.refresh_tokens,
        families = purged.families,
        access_token_records = purged.access_token_records,
        revocations = purged.revocations,
        sessions = purged.sessions,
        "janitor pass"
    );
    Ok(purged)
}

/// Runs passes every `interval` forever, logging failures and carrying on.
pub async fn run_every(store: &dyn Janitor, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        if let Err(e) = pass(store).await {
            tracing::warn!(error = %e, "janitor pass failed; will retry");
        }
    }
}

/// `tessera janitor`.
pub async fn run(args: JanitorArgs) -> Result<()> {
    crate::serve::init_logging(crate::cli::LogFormat::Text);
    let store = storage::open(&args.store).await?;
    if args.once {
        let purged = pass(&store).await?;
        println!(
            "removed {} expired records (codes {}, refresh tokens {}, families {}, access token records {}, revocations {}, sessions {})",
            purged.total(),
            purged.codes,
            purged.refresh_tokens,
            purged.families,
            purged.access_token_records,
            purged.revocations,
            purged.sessions
        );
        return Ok(());
    }
    run_every(&store, args.interval).await;
    Ok(())
}
