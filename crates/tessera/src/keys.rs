//! `tessera keys list|rotate|revoke|rewrap`, and the key settings `serve` shares.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde_json::json;
use tessera_core::key_schedule::{KeyPolicy, KeyState, KeyTimeline};
use tessera_core::keys::KeyStore;
use tessera_core::time::{Clock, SystemClock, UnixTime};
use tessera_store::MasterKey;
use tessera_store::key_material::{self, KeyKind, RsaBits, ScheduledKeyRing};
use tessera_store::master_key::MASTER_KEY_FILE;

use crate::cli::{KeySettings, KeysArgs, KeysCommand, OutputFormat, StoreArgs};
use crate::storage;

/// The schedule policy from the settings, checked.
pub fn policy(settings: &KeySettings) -> Result<KeyPolicy> {
    let max_age = settings.jwks_max_age;
    let publish_ahead = settings.key_publish_ahead.unwrap_or(max_age * 2);
    // A verifier may hold the JWKS for max-age: a key published for less than that could
    // sign tokens the verifier cannot check.
    if publish_ahead < max_age {
        bail!(
            "TESSERA_KEY_PUBLISH_AHEAD / --key-publish-ahead must be at least TESSERA_JWKS_MAX_AGE"
        );
    }
    if settings.key_rotation_interval < Duration::from_secs(3600)
        || settings.key_rotation_interval <= publish_ahead
    {
        bail!(
            "TESSERA_KEY_ROTATION_INTERVAL / --key-rotation-interval must be at least 1h and \
             longer than the publish-ahead time"
        );
    }
    Ok(KeyPolicy {
        rotation_interval: settings.key_rotation_interval,
        publish_ahead,
        // A retired key stays published as long as any token it signed may live. That is
        // the longest access-token lifetime the server can be made to issue (24 h), not the
        // current global TTL: a reload may raise it and a client may override it.
        token_lifetime: MAX_ACCESS_TOKEN_LIFETIME,
        leeway: settings.clock_leeway,
    })
}

/// The upper bound of every access-token lifetime (global, reloaded or per client).
pub const MAX_ACCESS_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// The kind of new keys from the settings (`TESSERA_SIGNING_ALG`, `TESSERA_RSA_BITS`).
pub fn kind(settings: &KeySettings) -> Result<KeyKind> {
    match settings.signing_alg.as_str() {
        "RS256" => RsaBits::parse(settings.rsa_bits)
            .map(KeyKind::Rs256)
            .with_context(|| {
                format!(
                    "TESSERA_RSA_BITS / --rsa-bits {}: expected 2048, 3072 or 4096",
                    settings.rsa_bits
                )
            }),
        "ES256" => Ok(KeyKind::Es256),
        other => bail!("TESSERA_SIGNING_ALG / --signing-alg {other}: expected RS256 or ES256"),
    }
}

/// The master key: from the settings, or the embedded `<data-dir>/master.key` (created on
/// first use, and said so).
pub fn master_key(settings: &KeySettings, store: &StoreArgs) -> Result<MasterKey> {
    if let Some(value) = &settings.master_key {
        return MasterKey::from_base64(value).context("TESSERA_MASTER_KEY");
    }
    if store.database_url.is_some() {
        bail!("TESSERA_MASTER_KEY is required when TESSERA_DATABASE_URL is set");
    }
    storage::create_private_dir(&store.data_dir)?;
    let (key, created) = MasterKey::load_or_create(&store.data_dir)?;
    if created {
        tracing::warn!(
            path = %store.data_dir.join(MASTER_KEY_FILE).display(),
            "created a new master key (mode 0600); back it up: signing keys cannot be opened without it"
        );
    }
    Ok(key)
}

/// Runs a keys subcommand.
pub async fn run(args: KeysArgs) -> Result<()> {
    let store = storage::open(&args.store).await?;
    let policy = policy(&args.keys)?;
    let master = master_key(&args.keys, &args.store)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    match &args.command {
        KeysCommand::List { format } => {
            // Loading the ring proves every key opens under this master key.
            let ring = ScheduledKeyRing::load(&*store, master, kind(&args.keys)?, clock, policy)
                .await
                .context("cannot open the stored keys")?;
            print_list(&ring, *format)
        }
        KeysCommand::Rotate => {
            // Key operations are audit events: written to standard error like a server's.
            audit_log();
            let outcome = rotate(&*store, &master, &args, &policy).await;
            wake_nodes(&args).await;
            outcome
        }
        KeysCommand::Revoke { kid } => {
            audit_log();
            let outcome = revoke(&*store, master, &args, policy, clock, kid).await;
            wake_nodes(&args).await;
            outcome
        }
        KeysCommand::Rewrap { .. } => rewrap(&*store, &master, &args).await,
    }
}

/// Sends this command's log events, its audit events among them, to standard error.
fn audit_log() {
    crate::serve::init_logging(crate::cli::LogFormat::Text, &crate::serve::env_log_filter());
}

/// Tells every node to reload its key ring now, when the deployment has Redis.
async fn wake_nodes(args: &KeysArgs) {
    let Some(options) = args.redis.options() else {
        return;
    };
    match tessera_cache::RedisLink::open(&options) {
        Ok(link) => {
            if tessera_cache::RedisBus::wake_all(&link).await.is_err() {
                eprintln!(
                    "note: Redis did not answer; servers pick the change up within \
                     TESSERA_KEY_REFRESH_INTERVAL"
                );
            }
        }
        Err(e) => {
            eprintln!("note: {e}; servers pick the change up within TESSERA_KEY_REFRESH_INTERVAL")
        }
    }
}

async fn rotate(
    store: &dyn KeyStore,
    master: &MasterKey,
    args: &KeysArgs,
    policy: &KeyPolicy,
) -> Result<()> {
    let now = SystemClock.now();
    let stored = store.list().await?;
    if let Some(next) = ScheduledKeyRing::pending(&stored, policy, now) {
        println!(
            "a rotation is already scheduled: {} activates at {}",
            next.key.kid,
            time(next.key.activates_at)
        );
        return Ok(());
    }
    let generation = stored
        .iter()
        .map(|k| k.schedule.generation)
        .max()
        .unwrap_or(0)
        + 1;
    let activates_at = now.plus(policy.publish_ahead);
    let (_, record) =
        key_material::generate(master, kind(&args.keys)?, generation, now, activates_at)?;
    store.insert(&record).await?;
    tessera_core::audit::key_rotated(&record.schedule.kid);
    println!(
        "published {}; it signs from {} (after the publish-ahead time, so verifiers that \
         cache the JWKS learn it first)",
        record.schedule.kid,
        time(activates_at)
    );
    Ok(())
}

async fn revoke(
    store: &dyn KeyStore,
    master: MasterKey,
    args: &KeysArgs,
    policy: KeyPolicy,
    clock: Arc<dyn Clock>,
    kid: &str,
) -> Result<()> {
    let now = SystemClock.now();
    if !store.revoke(kid, now).await? {
        bail!("no key `{kid}`, or it is already revoked");
    }
    tessera_core::audit::key_revoked(kid);
    // A key active at once replaces it (the next server tick would do the same).
    let ring = ScheduledKeyRing::start(store, master, kind(&args.keys)?, clock, policy)
        .await?
        .0;
    let active = ring
        .timeline()
        .into_iter()
        .find(|l| l.state == KeyState::Active)
        .map(|l| l.key.kid)
        .unwrap_or_default();
    eprintln!(
        "warning: {kid} is revoked. Every token it signed now fails introspection on every \
         node (at once where the servers share a Redis, else within \
         TESSERA_KEY_REFRESH_INTERVAL), and the key has left the JWKS; \
         gateways that cached the JWKS accept its tokens until they refetch it (up to \
         TESSERA_JWKS_MAX_AGE). Users and services must get new tokens; refresh tokens \
         are unaffected. Tokens signed from now on use {active}, which verifiers learn \
         only when they refetch the JWKS."
    );
    println!("revoked {kid}; {active} signs from now on");
    Ok(())
}

async fn rewrap(store: &dyn KeyStore, old: &MasterKey, args: &KeysArgs) -> Result<()> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("cannot read the new master key from stdin")?;
    let new = MasterKey::from_base64(input.trim()).context("the new master key")?;
    let embedded = args.keys.master_key.is_none();
    let file = args.store.data_dir.join(MASTER_KEY_FILE);
    let staged = args.store.data_dir.join(format!("{MASTER_KEY_FILE}.new"));
    if embedded {
        // Stage the new key next to the old one first: if the process dies after the
        // database is resealed, the key that opens it is on disk.
        write_private(&staged, input.trim())?;
    }
    let count = key_material::rewrap(store, old, &new).await?;
    if embedded {
        std::fs::rename(&staged, &file)
            .with_context(|| format!("cannot replace {}", file.display()))?;
        println!(
            "resealed {count} keys; {} now holds the new master key",
            file.display()
        );
    } else {
        println!(
            "resealed {count} keys; set TESSERA_MASTER_KEY to the new key on every node before \
             restarting them"
        );
    }
    Ok(())
}

fn write_private(path: &Path, content: &str) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(content.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    Ok(())
}

fn time(t: UnixTime) -> String {
    let at = UNIX_EPOCH + Duration::from_secs(u64::try_from(t.0).unwrap_or(0));
    humantime::format_rfc3339_seconds(at).to_string()
}

fn print_list(ring: &ScheduledKeyRing, format: OutputFormat) -> Result<()> {
    let lines = ring.timeline();
    let alg = |l: &KeyTimeline| ring.alg(&l.key.kid).unwrap_or_default();
    let opt = |t: Option<UnixTime>| t.map(time).unwrap_or_else(|| "-".into());
    match format {
        OutputFormat::Json => {
            let list: Vec<_> = lines
                .iter()
                .map(|l| {
                    json!({
                        "kid": l.key.kid,
                        "alg": alg(l),
                        "state": l.state.as_str(),
                        "generation": l.key.generation,
                        "created": l.key.created_at.0,
                        "activates": l.key.activates_at.0,
                        "retires": l.retires_at.map(|t| t.0),
                        "removes": l.removes_at.map(|t| t.0),
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&list)?);
        }
        OutputFormat::Text => {
            println!(
                "{:<44} {:<6} {:<8} {:<21} {:<21} {:<21} REMOVES",
                "KID", "ALG", "STATE", "CREATED", "ACTIVATES", "RETIRES"
            );
            for l in &lines {
                println!(
                    "{:<44} {:<6} {:<8} {:<21} {:<21} {:<21} {}",
                    l.key.kid,
                    alg(l),
                    l.state.as_str(),
                    time(l.key.created_at),
                    time(l.key.activates_at),
                    opt(l.retires_at),
                    opt(l.removes_at)
                );
            }
        }
    }
    Ok(())
}
