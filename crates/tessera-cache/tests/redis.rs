//! The Redis tier, the tiered cache and the Redis bus, against a real Redis.
//!
//! Most tests use the machine's Redis at 127.0.0.1:6379 (or `TESSERA_TEST_REDIS_URL`), each
//! under its own random key prefix, deleting its keys at the end (also when it fails). The
//! outage test starts its own `redis-server` and kills it. Without Redis (or `redis-server`)
//! a test prints why and passes, except with `CI=true`, where it fails.
//!
//! One contract runs against every `ValidationCache`: local, Redis, and tiered.

use std::hash::{BuildHasher, RandomState};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use tessera_cache::{
    LocalCache, RedisBus, RedisCache, RedisLink, RedisOptions, RevocationFollower, TieredCache,
};
use tessera_core::StoreError;
use tessera_core::introspection::{ActiveToken, CacheTier, ValidationCache};
use tessera_core::revocation::{
    Revocation, RevocationList, RevocationListener, RevocationReason, RevokedEntry,
};
use tessera_core::secret::SecretHash;
use tessera_core::time::UnixTime;

const TIMEOUT: Duration = Duration::from_millis(100);
/// What a failing call may take beyond the timeout (scheduling on a loaded test machine).
const SLACK: Duration = Duration::from_millis(400);
const MAX_TTL: Duration = Duration::from_secs(300);

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Says why the test is skipped or, under CI, fails it.
fn skip(why: &str) {
    assert!(!in_ci(), "CI=true and {why}");
    eprintln!("SKIPPED: {why}");
}

/// The shared Redis's URL if it answers `PING`.
fn shared_redis() -> Option<String> {
    let url = std::env::var("TESSERA_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let answered = redis::Client::open(url.as_str())
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)))
        .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
    match answered {
        Ok(_) => Some(url),
        Err(e) => {
            skip(&format!("Redis at {url} is unreachable ({e})"));
            None
        }
    }
}

/// A random key prefix whose keys are deleted when this is dropped.
struct Keyspace {
    url: String,
    base: String,
}

impl Keyspace {
    fn new(url: &str) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = RandomState::new().hash_one((
            std::process::id(),
            SystemTime::now(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
        ));
        Self {
            url: url.to_owned(),
            base: format!("tessera-test:{n:016x}:"),
        }
    }

    /// A prefix inside this keyspace.
    fn prefix(&self, name: &str) -> String {
        format!("{}{name}:", self.base)
    }

    fn sync(&self) -> redis::Connection {
        redis::Client::open(self.url.as_str())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)))
            .expect("connect to Redis")
    }

    /// Every key of this keyspace (the base has no glob characters).
    fn keys(&self) -> Vec<String> {
        let mut conn = self.sync();
        let mut cursor = 0u64;
        let mut all = Vec::new();
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{}*", self.base))
                .arg("COUNT")
                .arg(1000)
                .query(&mut conn)
                .expect("SCAN");
            all.extend(keys);
            if next == 0 {
                return all;
            }
            cursor = next;
        }
    }

    fn link(&self, prefix: &str) -> RedisLink {
        link(&self.url, prefix)
    }
}

impl Drop for Keyspace {
    fn drop(&mut self) {
        let keys = self.keys();
        if !keys.is_empty() {
            let _: Result<(), _> = redis::cmd("DEL").arg(&keys).query(&mut self.sync());
        }
    }
}

fn link(url: &str, prefix: &str) -> RedisLink {
    RedisLink::open(&RedisOptions {
        url: url.to_owned(),
        prefix: prefix.to_owned(),
        timeout: TIMEOUT,
    })
    .expect("valid options")
}

fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs(),
    )
    .expect("fits")
}

fn token(jti: &str) -> ActiveToken {
    ActiveToken {
        scope: "read write".into(),
        client_id: "client".into(),
        sub: "alice".into(),
        aud: "api".into(),
        iss: "https://issuer.test".into(),
        exp: now() + 3600,
        iat: now(),
        nbf: now(),
        jti: Some(jti.into()),
        token_type: "Bearer".into(),
    }
}

/// Polls `done` every few milliseconds until it holds, failing after `within`.
async fn eventually<F, Fut>(within: Duration, what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A revocation list in memory: what the store would be, shared by the "nodes" of a test.
#[derive(Default)]
struct MemoryList {
    entries: Mutex<Vec<RevokedEntry>>,
}

impl MemoryList {
    fn entries(&self) -> std::sync::MutexGuard<'_, Vec<RevokedEntry>> {
        self.entries.lock().expect("not poisoned")
    }
}

#[async_trait]
impl RevocationList for MemoryList {
    async fn revoke_access_token(
        &self,
        jti: &str,
        expires_at: UnixTime,
        _: Revocation,
    ) -> Result<(), StoreError> {
        let mut entries = self.entries();
        if !entries.iter().any(|e| e.jti == jti) {
            let seq = i64::try_from(entries.len()).expect("fits") + 1;
            entries.push(RevokedEntry {
                seq,
                jti: jti.to_owned(),
                expires_at,
            });
        }
        Ok(())
    }
    async fn is_access_token_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        Ok(self.entries().iter().any(|e| e.jti == jti))
    }
    async fn revoked_since(&self, after: i64, limit: u32) -> Result<Vec<RevokedEntry>, StoreError> {
        Ok(self
            .entries()
            .iter()
            .filter(|e| e.seq > after)
            .take(limit as usize)
            .cloned()
            .collect())
    }
    async fn latest_seq(&self) -> Result<i64, StoreError> {
        Ok(self.entries().last().map_or(0, |e| e.seq))
    }
}

async fn revoke(list: &MemoryList, jti: &str) {
    list.revoke_access_token(
        jti,
        UnixTime(now() + 3600),
        Revocation {
            at: UnixTime(now()),
            reason: RevocationReason::ClientRequest,
        },
    )
    .await
    .expect("in memory");
}

// ---------------------------------------------------------------------------------------
// The contract, for every tier
// ---------------------------------------------------------------------------------------

/// The `ValidationCache` contract: hits, eviction by `jti` before and after the put, TTLs.
async fn contract(cache: &dyn ValidationCache, tier: CacheTier) {
    let (a, b) = (SecretHash::of("token-a"), SecretHash::of("token-b"));
    let ttl = Duration::from_secs(60);
    assert!(cache.get(&a).await.is_none(), "empty at first");

    cache.put(&a, &token("jti-a"), ttl).await;
    cache.put(&b, &token("jti-b"), ttl).await;
    let (hit, got_tier) = cache.get(&a).await.expect("a hit");
    assert_eq!((hit, got_tier), (token("jti-a"), tier));

    cache.evict_jti("jti-a").await;
    assert!(cache.get(&a).await.is_none(), "an evicted jti is refused");
    assert!(cache.get(&b).await.is_some(), "another jti is left alone");
    cache.put(&a, &token("jti-a"), ttl).await;
    assert!(
        cache.get(&a).await.is_none(),
        "a put after the eviction is refused"
    );

    cache.evict_jti("jti-c").await;
    let c = SecretHash::of("token-c");
    cache.put(&c, &token("jti-c"), ttl).await;
    assert!(
        cache.get(&c).await.is_none(),
        "an eviction blocks a first put"
    );

    let short = SecretHash::of("token-short");
    cache
        .put(&short, &token("jti-short"), Duration::from_millis(100))
        .await;
    eventually(
        Duration::from_secs(5),
        "the short entry expires",
        || async { cache.get(&short).await.is_none() },
    )
    .await;
    assert!(cache.get(&b).await.is_some(), "the long entry lives on");
}

#[tokio::test]
async fn local_cache_keeps_the_contract() {
    contract(&LocalCache::new(100, MAX_TTL), CacheTier::Local).await;
}

#[tokio::test]
async fn redis_cache_keeps_the_contract() {
    let Some(url) = shared_redis() else { return };
    let keys = Keyspace::new(&url);
    let cache = RedisCache::new(keys.link(&keys.prefix("contract")), MAX_TTL);
    contract(&cache, CacheTier::Shared).await;
    assert!(cache.is_up());
}

#[tokio::test]
async fn tiered_cache_keeps_the_contract() {
    let Some(url) = shared_redis() else { return };
    let keys = Keyspace::new(&url);
    let shared = RedisCache::new(keys.link(&keys.prefix("tiered")), MAX_TTL);
    let cache = TieredCache::new(LocalCache::new(100, MAX_TTL), Some(shared));
    contract(&cache, CacheTier::Local).await;
}

// ---------------------------------------------------------------------------------------
// The Redis tier
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn put_then_get_round_trips_through_redis() {
    let Some(url) = shared_redis() else { return };
    let keys = Keyspace::new(&url);
    let prefix = keys.prefix("rt");
    let cache = RedisCache::new(keys.link(&prefix), MAX_TTL);
    let key = SecretHash::of("a-token");
    let mut stored = token("jti-1");
    stored.scope = String::new();
    stored.jti = None;
    cache.put(&key, &stored, Duration::from_secs(30)).await;
    assert_eq!(cache.get(&key).await, Some((stored, CacheTier::Shared)));
    assert!(cache.is_up());

    let expected = format!(
        "{prefix}v:{}",
        key.0.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    assert_eq!(
        keys.keys(),
        vec![expected],
        "one entry, under the token hash"
    );
}

#[tokio::test]
async fn every_key_is_written_with_a_ttl() {
    let Some(url) = shared_redis() else { return };
    let keys = Keyspace::new(&url);
    let cache = RedisCache::new(keys.link(&keys.prefix("ttl")), MAX_TTL);
    cache
        .put(&SecretHash::of("t1"), &token("j1"), Duration::from_secs(30))
        .await;
    let mut without_jti = token("j2");
    without_jti.jti = None;
    cache
        .put(&SecretHash::of("t2"), &without_jti, Duration::from_secs(40))
        .await;
    cache.evict_jti("j3").await;

    let written = keys.keys();
    assert_eq!(written.len(), 3, "{written:?}");
    let mut conn = keys.sync();
    for key in written {
        let pttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut conn).expect("PTTL");
        let limit = if key.contains(":r:") { 300_000 } else { 40_000 };
        assert!(pttl > 0 && pttl <= limit, "{key}: PTTL {pttl}");
    }
}

#[tokio::test]
async fn an_eviction_on_one_node_hides_entries_put_by_another() {
    let Some(url) = shared_redis() else { return };
    let keys = Keyspace::new(&url);
    let prefix = keys.prefix("nodes");
    let (one, two) = (
        RedisCache::new(keys.link(&prefix), MAX_TTL),
        RedisCache::new(keys.link(&prefix), MAX_TTL),
    );
    let key = SecretHash::of("shared-token");
    one.put(&key, &token("j"), Duration::from_secs(60)).await;
    assert!(two.get(&key).await.is_some());
    two.evict_jti("j").await;
    assert!(
        one.get(&key).await.is_none(),
        "the existing entry is refused"
    );
    one.put(&key, &token("j"), Duration::from_secs(60)).await;
    assert!(one.get(&key).await.is_none(), "a later put is refused");
    assert!(two.get(&key).await.is_none());

    // Refused means not written: an entry written after the marker could outlive it.
    let later = SecretHash::of("another-token-of-j");
    one.put(&later, &token("j"), MAX_TTL).await;
    let hex: String = later.0.iter().map(|b| format!("{b:02x}")).collect();
    assert!(
        !keys.keys().iter().any(|k| k.ends_with(&hex)),
        "no entry for a marked jti"
    );
}

#[tokio::test]
async fn the_tiered_cache_fills_its_local_tier_from_the_shared_one() {
    let Some(url) = shared_redis() else { return };
    let keys = Keyspace::new(&url);
    let prefix = keys.prefix("fill");
    let node = || {
        TieredCache::new(
            LocalCache::new(100, MAX_TTL),
            Some(RedisCache::new(keys.link(&prefix), MAX_TTL)),
        )
    };
    let (one, two) = (node(), node());
    let key = SecretHash::of("a-token");
    one.put(&key, &token("j"), Duration::from_secs(60)).await;

    assert_eq!(two.get(&key).await.map(|(_, t)| t), Some(CacheTier::Shared));
    assert_eq!(two.get(&key).await.map(|(_, t)| t), Some(CacheTier::Local));
    assert!(two.local().get(&key).await.is_some(), "copied into memory");

    // The local tier's own revocation record wins over a shared entry whose marker is
    // missing (Redis was down at the eviction, or restored from a snapshot).
    let other = SecretHash::of("other-token");
    one.put(&other, &token("k"), Duration::from_secs(60)).await;
    two.local().evict_jti("k").await;
    assert!(two.get(&other).await.is_none());
}

#[tokio::test]
async fn a_shared_hit_lives_locally_no_longer_than_in_redis() {
    let Some(url) = shared_redis() else { return };
    let keys = Keyspace::new(&url);
    let prefix = keys.prefix("short");
    let shared = RedisCache::new(keys.link(&prefix), MAX_TTL);
    let key = SecretHash::of("a-token");
    shared
        .put(&key, &token("j"), Duration::from_millis(300))
        .await;
    let node = TieredCache::new(LocalCache::new(100, MAX_TTL), Some(shared));
    assert_eq!(
        node.get(&key).await.map(|(_, t)| t),
        Some(CacheTier::Shared)
    );
    eventually(Duration::from_secs(5), "the local copy expires", || async {
        node.local().get(&key).await.is_none()
    })
    .await;
}

#[tokio::test]
async fn the_sweep_removes_only_our_keys_without_a_ttl() {
    let Some(url) = shared_redis() else { return };
    let keys = Keyspace::new(&url);
    // A glob character in the prefix must not widen the match to the neighbour's keys.
    let ours = keys.prefix("s*");
    let neighbour = keys.prefix("sX");
    let cache = RedisCache::new(keys.link(&ours), MAX_TTL);
    cache
        .put(&SecretHash::of("t"), &token("j"), Duration::from_secs(60))
        .await;
    cache.evict_jti("j2").await;
    let mut conn = keys.sync();
    let set = |conn: &mut redis::Connection, key: String| {
        redis::cmd("SET").arg(key).arg("x").exec(conn).expect("SET");
    };
    set(&mut conn, format!("{ours}stray-1"));
    set(&mut conn, format!("{ours}stray-2"));
    set(&mut conn, format!("{neighbour}not-ours"));

    assert_eq!(cache.sweep_keys_without_ttl().await.expect("sweep"), 2);
    let mut left = keys.keys();
    left.sort();
    assert_eq!(left.len(), 3, "{left:?}");
    assert!(left.contains(&format!("{neighbour}not-ours")));
    assert!(left.iter().all(|k| !k.contains("stray")));
    assert_eq!(cache.sweep_keys_without_ttl().await.expect("sweep"), 0);
}

// ---------------------------------------------------------------------------------------
// The bus
// ---------------------------------------------------------------------------------------

/// One node: a tiered cache, a follower of the shared list that never polls on its own
/// (so only the bus can wake it), and the bus.
async fn bus_node(list: &Arc<MemoryList>, link: &RedisLink) -> (TieredCache, RedisBus) {
    let cache = TieredCache::new(
        LocalCache::new(100, MAX_TTL),
        Some(RedisCache::new(link.clone(), MAX_TTL)),
    );
    let (follower, _poll) = RevocationFollower::start(
        list.clone(),
        Arc::new(cache.clone()),
        Duration::from_secs(3600),
        |_| {},
    )
    .await
    .expect("in memory");
    let bus = RedisBus::new(link.clone(), follower);
    bus.subscribe();
    (cache, bus)
}

#[tokio::test]
async fn a_revocation_on_one_node_wakes_the_other_at_once() {
    let Some(url) = shared_redis() else { return };
    let keys = Keyspace::new(&url);
    let prefix = keys.prefix("bus");
    let list = Arc::new(MemoryList::default());
    let (_one_cache, one) = bus_node(&list, &keys.link(&prefix)).await;
    let (two_cache, two) = bus_node(&list, &keys.link(&prefix)).await;
    eventually(Duration::from_secs(5), "both subscribed", || async {
        one.is_subscribed() && two.is_subscribed()
    })
    .await;

    // Node two caches the token only locally, so Redis's marker cannot be what hides it.
    let key = SecretHash::of("a-token");
    two_cache
        .local()
        .put(&key, &token("j"), Duration::from_secs(60))
        .await;
    revoke(&list, "j").await;
    assert!(two_cache.get(&key).await.is_some(), "not caught up yet");
    one.revoked().await;
    eventually(
        Duration::from_secs(2),
        "node two catches up on the message",
        || async { two_cache.local().get(&key).await.is_none() },
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// A Redis that dies and comes back
// ---------------------------------------------------------------------------------------

/// A private `redis-server` on `port`, killed when dropped.
struct PrivateRedis {
    child: Child,
}

impl PrivateRedis {
    fn start(port: u16) -> Result<Self, String> {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(std::env::temp_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run redis-server ({e})"))?;
        let mut server = Self { child };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("redis-server exited at start ({status})"));
            }
            if pong(port) {
                return Ok(server);
            }
            if Instant::now() > deadline {
                server.kill();
                return Err("redis-server did not accept connections within 10s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether something on `port` answers a `PING` with `+PONG`.
fn pong(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

async fn timed<T>(what: &str, call: impl std::future::Future<Output = T>) -> T {
    let started = Instant::now();
    let out = call.await;
    let took = started.elapsed();
    assert!(
        took < TIMEOUT + SLACK,
        "{what} took {took:?} with Redis dead"
    );
    out
}

#[tokio::test]
async fn a_killed_redis_means_misses_until_it_is_back() {
    let port = free_port();
    let mut server = match PrivateRedis::start(port) {
        Ok(s) => s,
        Err(why) => {
            skip(&why);
            return;
        }
    };
    let url = format!("redis://127.0.0.1:{port}");
    let link = link(&url, "tessera-test:outage:");
    let cache = RedisCache::new(link.clone(), MAX_TTL);
    let list = Arc::new(MemoryList::default());
    let (_node, bus) = bus_node(&list, &link).await;
    let key = SecretHash::of("a-token");
    cache.put(&key, &token("j"), Duration::from_secs(60)).await;
    assert!(cache.get(&key).await.is_some());
    assert!(cache.is_up());
    eventually(Duration::from_secs(5), "subscribed", || async {
        bus.is_subscribed()
    })
    .await;

    server.kill();
    // Every call returns within the timeout, as a miss or a no-op; repeated, because the
    // first calls after the kill and the probes of a down Redis take different paths.
    for _ in 0..3 {
        assert!(timed("get", cache.get(&key)).await.is_none());
        timed("put", cache.put(&key, &token("j"), Duration::from_secs(60))).await;
        timed("evict", cache.evict_jti("other")).await;
        timed("publish", bus.revoked()).await;
        assert!(!cache.is_up());
    }
    eventually(Duration::from_secs(15), "the bus notices", || async {
        !bus.is_subscribed()
    })
    .await;

    let _server = PrivateRedis::start(port).expect("redis-server restarts on the same port");
    eventually(Duration::from_secs(10), "the cache works again", || async {
        cache.put(&key, &token("j"), Duration::from_secs(60)).await;
        cache.get(&key).await.is_some()
    })
    .await;
    assert!(cache.is_up());
    eventually(Duration::from_secs(10), "the bus re-subscribes", || async {
        bus.is_subscribed()
    })
    .await;
}

#[tokio::test]
async fn a_node_starts_without_redis_and_misses_quickly() {
    // Nothing listens on this port.
    let link = link(
        &format!("redis://127.0.0.1:{}", free_port()),
        "tessera-test:",
    );
    let cache = RedisCache::new(link.clone(), MAX_TTL);
    let key = SecretHash::of("a-token");
    for _ in 0..3 {
        assert!(timed("get", cache.get(&key)).await.is_none());
        timed("put", cache.put(&key, &token("j"), Duration::from_secs(60))).await;
        timed("evict", cache.evict_jti("j")).await;
    }
    assert!(!cache.is_up());
    assert!(!link.ping().await);
    assert!(cache.sweep_keys_without_ttl().await.is_err());
}

#[tokio::test]
async fn a_silent_redis_costs_at_most_the_timeout() {
    // Accepts connections and never answers: what a black-holed Redis looks like.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    let cache = RedisCache::new(
        link(&format!("redis://127.0.0.1:{port}"), "tessera-test:"),
        MAX_TTL,
    );
    let key = SecretHash::of("a-token");
    assert!(timed("get", cache.get(&key)).await.is_none());
    assert!(!cache.is_up());
    // While down, calls between probes do not wait at all.
    let started = Instant::now();
    for _ in 0..20 {
        assert!(cache.get(&key).await.is_none());
        cache.put(&key, &token("j"), Duration::from_secs(60)).await;
        cache.evict_jti("j").await;
    }
    assert!(
        started.elapsed() < TIMEOUT + SLACK,
        "60 calls took {:?}",
        started.elapsed()
    );
}
