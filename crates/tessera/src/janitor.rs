//! The janitor: `tessera janitor [--once]`, and the same loop inside `tessera serve`.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tessera_cache::RedisLink;
use tessera_cache::redis_link::PROBE_INTERVAL;
use tessera_core::janitor::{Janitor, Purged};
use tessera_core::time::{Clock, SystemClock};

use crate::cli::JanitorArgs;
use crate::storage;

/// Rows per delete transaction: small enough that token traffic interleaves.
const BATCH: u32 = 500;
/// How long `tessera janitor` waits for Redis to answer before giving up on the sweep.
const REDIS_WAIT: Duration = Duration::from_secs(5);

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

/// Deletes the Redis keys under our prefix that have no TTL (every key is written with one;
/// this repairs what a bug or a manual write left), logs and counts them.
pub async fn sweep_redis(redis: &RedisLink) -> Result<u64> {
    let removed = redis
        .sweep_keys_without_ttl()
        .await
        .context("cannot sweep Redis")?;
    if removed > 0 {
        metrics::counter!("tessera_janitor_removed_total", "kind" => "redis_keys_without_ttl")
            .increment(removed);
    }
    tracing::info!(redis_keys_without_ttl = removed, "janitor swept redis");
    Ok(removed)
}

/// Runs passes every `interval` forever, logging failures and carrying on.
pub async fn run_every(store: &dyn Janitor, redis: Option<&RedisLink>, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        if let Err(e) = pass(store).await {
            tracing::warn!(error = %e, "janitor pass failed; will retry");
        }
        if let Some(redis) = redis
            && let Err(e) = sweep_redis(redis).await
        {
            tracing::warn!(error = %format!("{e:#}"), "janitor redis sweep failed; will retry");
        }
    }
}

/// `tessera janitor`.
pub async fn run(args: JanitorArgs) -> Result<()> {
    crate::serve::init_logging(crate::cli::LogFormat::Text, &crate::serve::env_log_filter());
    args.redis.check().map_err(anyhow::Error::msg)?;
    let store = storage::open(&args.store).await?;
    let redis = match args.redis.options() {
        Some(options) => {
            Some(RedisLink::open(&options).context("TESSERA_REDIS_URL / --redis-url")?)
        }
        None => None,
    };
    if args.once {
        let purged = pass(&*store).await?;
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
        if let Some(redis) = &redis {
            if !wait_for(redis).await {
                bail!(
                    "Redis (TESSERA_REDIS_URL) did not answer within {}s; its keys were not swept",
                    REDIS_WAIT.as_secs()
                );
            }
            let removed = sweep_redis(redis).await?;
            println!("removed {removed} Redis keys without a TTL");
        }
        return Ok(());
    }
    run_every(&*store, redis.as_ref(), args.interval).await;
    Ok(())
}

/// Gives a one-shot run's connection a few probes to come up (the first call may be slowed
/// by connecting); whether Redis answered.
async fn wait_for(redis: &RedisLink) -> bool {
    let deadline = Instant::now() + REDIS_WAIT;
    loop {
        if redis.ping().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
}
