//! Introspection (RFC 7662) as `tessera serve` wires it, without HTTP: client
//! authentication through the client cache, then the validation cache (`LocalCache` behind
//! `TieredCache`, no Redis) or, on a miss, RS256 verification, claim checks, a revocation-list
//! read from SQLite and the cache fill.
//!
//!     cargo bench -p tessera-server --bench introspection
//!
//! - `introspection/cached`: one token over and over (every call after the first a hit).
//! - `introspection/uncached`: 512 distinct tokens cycled through a 16-entry cache: every
//!   call a miss.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tessera_cache::{CachingClientStore, LocalCache, TieredCache};
use tessera_core::AuthorizationServer;
use tessera_core::access_token::AccessTokenClaims;
use tessera_core::client::{Client, ClientStore, GrantType};
use tessera_core::key_schedule::KeyPolicy;
use tessera_core::keys::KeyRing;
use tessera_core::params::Params;
use tessera_core::policy::Policy;
use tessera_core::scope::ScopeSet;
use tessera_core::secret::SecretHash;
use tessera_core::time::{Clock, SystemClock};
use tessera_store::key_material::{KeyKind, ScheduledKeyRing};
use tessera_store::{MasterKey, OsRandom, SqliteStore};

const ISSUER: &str = "https://auth.example.test";
const AUDIENCE: &str = "https://api.example.test";
const SECRET: &str = "tss_bench-secret-of-the-introspecting-client";
const POOL: usize = 512;

struct Node {
    server: AuthorizationServer,
    tokens: Vec<String>,
}

async fn node(dir: &std::path::Path, cache_capacity: u64, tokens: usize) -> Node {
    std::fs::create_dir_all(dir).expect("data directory");
    let url = format!("sqlite://{}/bench.db", dir.display());
    let store = SqliteStore::open(&url).await.expect("store");
    let master =
        MasterKey::from_base64("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").expect("key");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let policy = KeyPolicy {
        rotation_interval: Duration::from_secs(30 * 86_400),
        publish_ahead: Duration::from_secs(600),
        token_lifetime: Duration::from_secs(900),
        leeway: Duration::from_secs(60),
    };
    let (ring, _) =
        ScheduledKeyRing::start(&store, master, KeyKind::default(), clock.clone(), policy)
            .await
            .expect("key ring");
    let ring = Arc::new(ring);
    let mut ports = store.ports(ring.clone(), clock.clone(), Arc::new(OsRandom::default()));
    // As `tessera serve` wires them (default client cache TTL 5 s, validation TTL 300 s).
    ports.clients = Arc::new(CachingClientStore::new(
        ports.clients.clone(),
        10_000,
        Duration::from_secs(5),
    ));
    ports.cache = Arc::new(TieredCache::new(
        LocalCache::new(cache_capacity, Duration::from_secs(300)),
        None,
    ));
    let client = Client {
        id: "gateway".into(),
        name: "gateway".into(),
        secret_hash: Some(SecretHash::of(SECRET)),
        redirect_uris: Vec::new(),
        grant_types: vec![GrantType::ClientCredentials],
        scopes: ScopeSet::from_tokens(["orders:read", "orders:write"]),
        audiences: vec![AUDIENCE.into()],
        access_token_ttl: None,
        refresh_token_ttl: None,
        first_party: true,
        post_logout_redirect_uris: Vec::new(),
        created_at: clock.now(),
    };
    ClientStore::create(&store, &client).await.expect("client");
    let now = clock.now().0;
    let key = ring.signing_key();
    let tokens = (0..tokens)
        .map(|i| {
            AccessTokenClaims {
                iss: ISSUER.into(),
                sub: "svc-0042".into(),
                aud: AUDIENCE.into(),
                exp: now + 900,
                iat: now,
                nbf: now,
                jti: format!("bench-{i:016}"),
                client_id: "svc-0042".into(),
                scope: "orders:read orders:write".into(),
                roles: None,
                auth_time: None,
            }
            .sign(key.as_ref())
            .expect("signs")
        })
        .collect();
    Node {
        server: AuthorizationServer::new(ports, Policy::new(ISSUER.to_owned())),
        tokens,
    }
}

async fn introspect(server: &AuthorizationServer, token: &str) -> bool {
    let params = Params::from_pairs([("token", token)]);
    let basic = Some(("gateway".to_owned(), SECRET.to_owned()));
    let (answer, _) = server.introspect(&params, basic).await.expect("answers");
    answer.active
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temporary directory");
    let cached = runtime.block_on(node(&dir.path().join("cached"), 100_000, 1));
    let uncached = runtime.block_on(node(&dir.path().join("uncached"), 16, POOL));
    for node in [&cached, &uncached] {
        for token in &node.tokens {
            assert!(runtime.block_on(introspect(&node.server, token)), "active");
        }
    }

    let mut group = c.benchmark_group("introspection");
    group.bench_function("cached", |b| {
        b.iter(|| runtime.block_on(introspect(&cached.server, black_box(&cached.tokens[0]))))
    });
    let mut i = 0;
    group.bench_function("uncached", |b| {
        b.iter(|| {
            i = (i + 1) % POOL;
            runtime.block_on(introspect(&uncached.server, black_box(&uncached.tokens[i])))
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
