//! Property tests of the refresh-token family state machine (RFC 9700 §4.14.2), driven
//! through the token and revocation endpoints of `AuthorizationServer` (the path the HTTP
//! adapter takes) against a real store: SQLite in a temporary directory, and PostgreSQL on a
//! database of its own (`TESSERA_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`; without a reachable server the PostgreSQL
//! test prints `SKIPPED` and passes, except with `CI=true`, where it fails).
//!
//! Each case starts a family with a real code exchange, then runs a random interleaving of
//! rotate (present the live token), reuse (present an older token of the family), revoke
//! (RFC 7009, any token of the family) and expire (move the test clock forward), under a
//! random policy (refresh TTL, absolute family limit, grace window on or off). After every
//! event the outcome and the stored state of every token are compared with a plain
//! reference model, and these invariants are checked on what the store holds:
//! - a family never has more than one live token;
//! - a revoked family never yields a token (and has no live token);
//! - no token's expiry goes past the family's absolute cap, which never moves;
//! - reuse revokes the family and puts its unexpired access tokens on the revocation list,
//!   except a retry inside the grace window whose successor was never used, which
//!   supersedes that successor instead.
//!
//! `PROPTEST_CASES` overrides the number of cases (default 256 on SQLite, 128 on PostgreSQL,
//! so both run in well under a minute in a debug build).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use sha2::{Digest, Sha256};
use tessera_core::client::{Client, ClientStore, GrantType};
use tessera_core::grant::refresh_token::is_live;
use tessera_core::key_schedule::KeyPolicy;
use tessera_core::keys::KeyStore;
use tessera_core::params::Params;
use tessera_core::policy::Policy;
use tessera_core::revocation::RevocationReason;
use tessera_core::scope::ScopeSet;
use tessera_core::secret::SecretHash;
use tessera_core::session::{Session, SessionStore};
use tessera_core::time::{Clock, UnixTime};
use tessera_core::user::{User, UserProfile, UserStore};
use tessera_core::{AuthorizationServer, OAuthError, Ports};
use tessera_store::key_material::{KeyKind, ScheduledKeyRing};
use tessera_store::{MasterKey, OsRandom};

const CLIENT: &str = "spa";
const REDIRECT: &str = "https://app.example/cb";
const USER: &str = "u-alice";
/// RFC 7636 Appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mpA3BJc3TZ6bB2VQ9HCcsMlt8SXmsa3yAX4a7iVhD9oi8MHbc6k";
const ACCESS_TTL: u64 = 60;

// ---------------------------------------------------------------------------------------
// The system under test
// ---------------------------------------------------------------------------------------

/// A clock that moves only when told.
#[derive(Debug)]
struct TestClock(AtomicI64);

impl Clock for TestClock {
    fn now(&self) -> UnixTime {
        UnixTime(self.0.load(Ordering::SeqCst))
    }
}

/// Every store port the server needs from one adapter, plus key storage for the ring.
trait Store: ClientStore + UserStore + SessionStore + KeyStore {
    fn server_ports(&self, keys: Arc<ScheduledKeyRing>, clock: Arc<TestClock>) -> Ports;
}

impl Store for tessera_store::SqliteStore {
    fn server_ports(&self, keys: Arc<ScheduledKeyRing>, clock: Arc<TestClock>) -> Ports {
        self.ports(keys, clock, Arc::new(OsRandom::default()))
    }
}

impl Store for tessera_store::PostgresStore {
    fn server_ports(&self, keys: Arc<ScheduledKeyRing>, clock: Arc<TestClock>) -> Ports {
        self.ports(keys, clock, Arc::new(OsRandom::default()))
    }
}

/// The server, its clock, and a signed-in session of the user.
struct Harness {
    server: AuthorizationServer,
    clock: Arc<TestClock>,
    session: Session,
}

fn public_client(id: &str) -> Client {
    Client {
        id: id.to_owned(),
        name: format!("Public {id}"),
        secret_hash: None,
        redirect_uris: vec![REDIRECT.into()],
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        scopes: ScopeSet::from_tokens(["openid", "read"]),
        audiences: vec![],
        access_token_ttl: None,
        refresh_token_ttl: None,
        first_party: true,
        post_logout_redirect_uris: vec![],
        created_at: UnixTime(1_700_000_000),
    }
}

async fn harness<S: Store>(store: &S) -> Harness {
    // Far in the future, so no housekeeping keyed on the wall clock interferes.
    let clock = Arc::new(TestClock(AtomicI64::new(4_000_000_000)));
    ClientStore::create(store, &public_client(CLIENT))
        .await
        .unwrap();
    UserStore::create(
        store,
        &User {
            id: USER.into(),
            username: "alice".into(),
            // Never checked: the case signs in through a stored session, not the form.
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$unused".into(),
            roles: vec!["viewer".into()],
            profile: UserProfile::default(),
            disabled: false,
            created_at: UnixTime(1_600_000_000),
        },
    )
    .await
    .unwrap();
    let session = Session {
        id_hash: SecretHash::of("tsn_property-test-session"),
        user_id: USER.into(),
        auth_time: clock.now(),
        expires_at: UnixTime(i64::MAX / 2),
    };
    SessionStore::create(store, &session).await.unwrap();
    let master = MasterKey::from_base64("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap();
    let key_policy = KeyPolicy {
        rotation_interval: Duration::from_secs(365 * 86_400),
        publish_ahead: Duration::from_secs(600),
        token_lifetime: Duration::from_secs(ACCESS_TTL),
        leeway: Duration::from_secs(60),
    };
    // ES256: key generation and signing are cheap, and signing is not what is tested here.
    let (ring, _) =
        ScheduledKeyRing::start(store, master, KeyKind::Es256, clock.clone(), key_policy)
            .await
            .unwrap();
    let ports = store.server_ports(Arc::new(ring), clock.clone());
    let server = AuthorizationServer::new(ports, Policy::new("https://issuer.example"));
    Harness {
        server,
        clock,
        session,
    }
}

fn challenge() -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(VERIFIER.as_bytes()))
}

/// The `jti` of an access token (its payload, unverified: the server just signed it).
fn jti(access_token: &str) -> String {
    let payload = access_token.split('.').nth(1).expect("a JWT");
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["jti"].as_str().unwrap().to_owned()
}

impl Harness {
    fn now(&self) -> i64 {
        self.clock.now().0
    }

    /// Authorization request, code issued to the session, code redeemed: a new family.
    async fn start_family(&self) -> (String, String) {
        let request = self
            .server
            .authorization_request(&Params::from_pairs([
                ("response_type", "code"),
                ("client_id", CLIENT),
                ("redirect_uri", REDIRECT),
                ("scope", "openid read"),
                ("nonce", "n-0S6_WzA2Mj"),
                ("code_challenge", challenge().as_str()),
                ("code_challenge_method", "S256"),
            ]))
            .await
            .expect("a valid authorization request");
        let redirect = self
            .server
            .issue_code(&request, &self.session)
            .await
            .unwrap();
        let (_, query) = redirect.split_once('?').expect("a query in the redirect");
        let query = Params::parse(query.as_bytes()).unwrap();
        let code = query.require("code").expect("a code in the redirect");
        let response = self
            .server
            .token(
                &Params::from_pairs([
                    ("grant_type", "authorization_code"),
                    ("client_id", CLIENT),
                    ("code", code),
                    ("code_verifier", VERIFIER),
                    ("redirect_uri", REDIRECT),
                ]),
                None,
            )
            .await
            .expect("the code exchange");
        (
            response.refresh_token.expect("a refresh token"),
            jti(&response.access_token),
        )
    }

    /// A refresh grant presenting `token`: the new refresh token and access token `jti`.
    async fn refresh(&self, token: &str) -> Result<(String, String), OAuthError> {
        let params = Params::from_pairs([
            ("grant_type", "refresh_token"),
            ("client_id", CLIENT),
            ("refresh_token", token),
        ]);
        let response = self.server.token(&params, None).await?;
        Ok((
            response.refresh_token.expect("a refresh token"),
            jti(&response.access_token),
        ))
    }

    /// RFC 7009 revocation of `token` by its client.
    async fn revoke(&self, token: &str) {
        let params = Params::from_pairs([
            ("token", token),
            ("token_type_hint", "refresh_token"),
            ("client_id", CLIENT),
        ]);
        self.server.revoke(&params, None).await.unwrap();
    }
}

// ---------------------------------------------------------------------------------------
// The reference model
// ---------------------------------------------------------------------------------------

/// One refresh token as the model sees it.
#[derive(Debug, Clone)]
struct ModelToken {
    expires_at: i64,
    rotated_at: Option<i64>,
    /// Index of its successor in [`Model::tokens`].
    successor: Option<usize>,
}

/// An access token the family issued.
#[derive(Debug, Clone)]
struct ModelAccess {
    jti: String,
    expires_at: i64,
}

/// A family: its tokens in issue order, its cap, and whether it is revoked.
#[derive(Debug)]
struct Model {
    tokens: Vec<ModelToken>,
    access: Vec<ModelAccess>,
    cap: i64,
    /// When and why it was revoked.
    revoked: Option<(i64, RevocationReason)>,
}

/// What presenting a token should do, by the rules of `grant/refresh_token.rs`.
#[derive(Debug, PartialEq, Eq)]
enum Expected {
    /// Refused, nothing changes (revoked family, or an expired token).
    Refused,
    /// Refused as reuse: the family is revoked.
    Reuse,
    /// The live token is rotated.
    Rotate,
    /// A retry inside the grace window: the unused successor (index) is superseded.
    Supersede(usize),
}

impl Model {
    fn expect(&self, index: usize, now: i64, grace: i64) -> Expected {
        if self.revoked.is_some() {
            return Expected::Refused;
        }
        let token = &self.tokens[index];
        let step = match (token.rotated_at, token.successor) {
            (None, _) => Expected::Rotate,
            // A retry inside the grace window whose successor was never used.
            (Some(rotated_at), Some(next))
                if grace > 0
                    && now < rotated_at + grace
                    && self.tokens[next].rotated_at.is_none() =>
            {
                Expected::Supersede(next)
            }
            _ => return Expected::Reuse,
        };
        if now >= token.expires_at || now >= self.cap {
            return Expected::Refused;
        }
        step
    }

    /// Records a successful refresh of `index` at `now` that issued `access`.
    fn issued(
        &mut self,
        index: usize,
        step: &Expected,
        now: i64,
        ttl: i64,
        access: ModelAccess,
    ) -> usize {
        let new = self.tokens.len();
        self.tokens.push(ModelToken {
            expires_at: (now + ttl).min(self.cap),
            rotated_at: None,
            successor: None,
        });
        match step {
            Expected::Rotate => self.tokens[index].rotated_at = Some(now),
            Expected::Supersede(stale) => self.tokens[*stale].rotated_at = Some(now),
            _ => unreachable!("only rotation and supersession issue"),
        }
        self.tokens[index].successor = Some(new);
        self.access.push(access);
        new
    }

    fn live(&self) -> Option<usize> {
        self.tokens.iter().position(|t| t.rotated_at.is_none())
    }
}

// ---------------------------------------------------------------------------------------
// Events and the property
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Event {
    /// Present the family's live token (if it has none, its newest token).
    Rotate,
    /// Present an earlier token of the family (picked by `index` modulo their count).
    Reuse(usize),
    /// Revoke the family through RFC 7009, presenting token `index` (modulo their count).
    Revoke(usize),
    /// Move the clock forward.
    Expire(i64),
}

/// The policy a case runs under (seconds).
#[derive(Debug, Clone)]
struct CasePolicy {
    refresh_ttl: i64,
    max_lifetime: i64,
    grace: i64,
}

fn policy_strategy() -> impl Strategy<Value = CasePolicy> {
    (40i64..=120, 1i64..=3, prop_oneof![Just(0i64), 5i64..=40]).prop_map(
        |(refresh_ttl, factor, grace)| CasePolicy {
            refresh_ttl,
            // A cap shorter than one TTL too, so the cap, not the TTL, ends some tokens.
            max_lifetime: refresh_ttl * factor - 20,
            grace,
        },
    )
}

fn event_strategy() -> impl Strategy<Value = Event> {
    prop_oneof![
        6 => Just(Event::Rotate),
        2 => any::<usize>().prop_map(Event::Reuse),
        1 => any::<usize>().prop_map(Event::Revoke),
        4 => prop_oneof![0i64..=10, 10i64..=90].prop_map(Event::Expire),
    ]
}

fn case_strategy() -> impl Strategy<Value = (CasePolicy, Vec<Event>)> {
    (
        policy_strategy(),
        proptest::collection::vec(event_strategy(), 1..24),
    )
}

macro_rules! check {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(TestCaseError::fail(format!($($fmt)+)));
        }
    };
}

/// How often each path was taken over all cases, so the run can show it exercised them all.
#[derive(Debug, Default)]
struct Seen {
    rotated: usize,
    superseded: usize,
    reuse_revoked: usize,
    refused_revoked: usize,
    refused_expired: usize,
    capped: usize,
    revoked_by_client: usize,
}

/// Runs one case: a new family, then `events`, checking the model and the invariants after
/// each.
async fn run_case(
    h: &Harness,
    policy: &CasePolicy,
    events: &[Event],
    seen: &mut Seen,
) -> Result<(), TestCaseError> {
    let mut p = Policy::new("https://issuer.example");
    p.access_token_ttl = Duration::from_secs(ACCESS_TTL);
    p.refresh_token_ttl = Duration::from_secs(policy.refresh_ttl as u64);
    p.refresh_token_max_lifetime = Duration::from_secs(policy.max_lifetime as u64);
    p.refresh_grace = Duration::from_secs(policy.grace as u64);
    h.server.set_policy(p);

    let started = h.now();
    let (first, first_jti) = h.start_family().await;
    let mut secrets = vec![first];
    let mut model = Model {
        tokens: vec![ModelToken {
            expires_at: (started + policy.refresh_ttl).min(started + policy.max_lifetime),
            rotated_at: None,
            successor: None,
        }],
        access: vec![ModelAccess {
            jti: first_jti,
            expires_at: started + ACCESS_TTL as i64,
        }],
        cap: started + policy.max_lifetime,
        revoked: None,
    };
    check_store(h, &model, &secrets, started + policy.max_lifetime).await?;

    for (step, event) in events.iter().enumerate() {
        let now = h.now();
        match event {
            Event::Expire(secs) => {
                h.clock.0.fetch_add(*secs, Ordering::SeqCst);
            }
            Event::Revoke(index) => {
                let index = index % secrets.len();
                h.revoke(&secrets[index]).await;
                if model.revoked.is_none() {
                    model.revoked = Some((now, RevocationReason::ClientRequest));
                    seen.revoked_by_client += 1;
                }
            }
            Event::Rotate | Event::Reuse(_) => {
                let index = match event {
                    Event::Rotate => model.live().unwrap_or(secrets.len() - 1),
                    Event::Reuse(i) => match model.live() {
                        // An earlier token than the live one, if there is any.
                        Some(live) if live > 0 => i % live,
                        _ => i % secrets.len(),
                    },
                    _ => unreachable!(),
                };
                let revoked_before = family_revoked(h, &secrets[0]).await;
                let expected = model.expect(index, now, policy.grace);
                let result = h.refresh(&secrets[index]).await;
                check!(
                    !(revoked_before && result.is_ok()),
                    "step {step}: a revoked family yielded a token"
                );
                match (&expected, result) {
                    (Expected::Rotate | Expected::Supersede(_), Ok((secret, access_jti))) => {
                        check!(
                            now < model.cap,
                            "step {step}: a token was issued at {now}, past the cap {}",
                            model.cap
                        );
                        let access = ModelAccess {
                            jti: access_jti,
                            expires_at: now + ACCESS_TTL as i64,
                        };
                        let new = model.issued(index, &expected, now, policy.refresh_ttl, access);
                        secrets.push(secret);
                        match expected {
                            Expected::Supersede(_) => seen.superseded += 1,
                            _ => seen.rotated += 1,
                        }
                        if model.tokens[new].expires_at == model.cap {
                            seen.capped += 1;
                        }
                    }
                    (Expected::Refused, Err(OAuthError::InvalidGrant(_))) => {
                        if model.revoked.is_some() {
                            seen.refused_revoked += 1;
                        } else {
                            seen.refused_expired += 1;
                        }
                    }
                    (Expected::Reuse, Err(OAuthError::InvalidGrant(_))) => {
                        model.revoked = Some((now, RevocationReason::RefreshTokenReuse));
                        seen.reuse_revoked += 1;
                    }
                    (expected, got) => {
                        return Err(TestCaseError::fail(format!(
                            "step {step} ({event:?}, token {index} at t+{}): the model expects \
                             {expected:?}, the server answered {:?}",
                            now - started,
                            got.map(|_| "a token pair")
                        )));
                    }
                }
            }
        }
        check_store(h, &model, &secrets, started + policy.max_lifetime)
            .await
            .map_err(|e| TestCaseError::fail(format!("after step {step} ({event:?}): {e}")))?;
    }
    Ok(())
}

async fn family_revoked(h: &Harness, secret: &str) -> bool {
    let (_, family) = h
        .server
        .ports()
        .refresh
        .find(&SecretHash::of(secret))
        .await
        .unwrap()
        .expect("the family's first token is stored");
    family.revoked.is_some()
}

/// Compares the stored family with the model, and checks the invariants on the store alone.
async fn check_store(
    h: &Harness,
    model: &Model,
    secrets: &[String],
    cap: i64,
) -> Result<(), TestCaseError> {
    let ports = h.server.ports();
    let now = h.clock.now();
    let mut live = 0;
    let mut family_id = None;
    for (i, secret) in secrets.iter().enumerate() {
        let hash = SecretHash::of(secret);
        let Some((token, family)) = ports.refresh.find(&hash).await.unwrap() else {
            return Err(TestCaseError::fail(format!("token {i} is not stored")));
        };
        // Every token belongs to the one family.
        check!(
            *family_id.get_or_insert_with(|| family.id.clone()) == family.id,
            "token {i} is in another family"
        );
        // The cap never moves, and no token outlives it.
        check!(
            family.absolute_expires_at == UnixTime(cap),
            "the family's cap moved: {:?} != {cap}",
            family.absolute_expires_at
        );
        check!(
            token.expires_at <= family.absolute_expires_at,
            "token {i} expires at {:?}, past the cap {cap}",
            token.expires_at
        );
        if is_live(&token, &family, now) {
            live += 1;
        }
        // Revocation as the model has it, with its reason.
        check!(
            family.revoked.as_ref().map(|r| (r.at.0, r.reason)) == model.revoked,
            "family revocation {:?}, the model has {:?}",
            family.revoked,
            model.revoked
        );
        // Each token's state as the model has it.
        let expected = &model.tokens[i];
        check!(
            token.rotated_at.map(|t| t.0) == expected.rotated_at,
            "token {i} rotated at {:?}, the model has {:?}",
            token.rotated_at,
            expected.rotated_at
        );
        check!(
            token.successor == expected.successor.map(|s| SecretHash::of(&secrets[s])),
            "token {i} has another successor than the model's {:?}",
            expected.successor
        );
        check!(
            token.expires_at.0 == expected.expires_at,
            "token {i} expires at {:?}, the model has {}",
            token.expires_at,
            expected.expires_at
        );
    }
    check!(live <= 1, "the family has {live} live tokens");
    if model.revoked.is_some() {
        check!(live == 0, "a revoked family has a live token");
    }
    // Revocation put every access token of the family still unexpired then on the list.
    if let Some((at, _)) = model.revoked {
        for access in model.access.iter().filter(|a| a.expires_at > at) {
            check!(
                ports
                    .revocations
                    .is_access_token_revoked(&access.jti)
                    .await
                    .unwrap(),
                "access token {} of the revoked family is not on the revocation list",
                access.jti
            );
        }
    }
    Ok(())
}

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs the property on `store` with `cases` cases.
fn run_property<S: Store>(runtime: &tokio::runtime::Runtime, store: &S, cases: u32) {
    let h = runtime.block_on(harness(store));
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let seen = std::cell::RefCell::new(Seen::default());
    let result = runner.run(&case_strategy(), |(policy, events)| {
        runtime.block_on(run_case(&h, &policy, &events, &mut seen.borrow_mut()))
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // Every path of the state machine was taken at least once (with the default case count;
    // a handful of cases may not reach them all).
    let seen = seen.into_inner();
    println!("paths taken: {seen:?}");
    if cases >= 20 {
        for (path, count) in [
            ("rotation", seen.rotated),
            ("grace-window supersession", seen.superseded),
            ("reuse revoking the family", seen.reuse_revoked),
            ("refusal in a revoked family", seen.refused_revoked),
            ("refusal of an expired token", seen.refused_expired),
            ("a token ending at the cap", seen.capped),
            ("revocation by the client", seen.revoked_by_client),
        ] {
            assert!(count > 0, "no case exercised {path}: {seen:?}");
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn sqlite_family_state_machine_matches_the_model() {
    let runtime = runtime();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/t.db", dir.path().display());
    let store = runtime
        .block_on(tessera_store::SqliteStore::open(&url))
        .unwrap();
    run_property(&runtime, &store, cases(256));
    runtime.block_on(store.close());
}

// ---------------------------------------------------------------------------------------
// PostgreSQL: a database of its own, dropped afterwards (also when the property fails)
// ---------------------------------------------------------------------------------------

fn pg_admin_url() -> String {
    std::env::var("TESSERA_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// `url` naming `database` instead of its own.
fn pg_url_of(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let (scheme, rest) = base.split_once("://").expect("a postgres:// URL");
    let authority = rest.split_once('/').map_or(rest, |(a, _)| a);
    match query {
        Some(query) => format!("{scheme}://{authority}/{database}?{query}"),
        None => format!("{scheme}://{authority}/{database}"),
    }
}

/// Drops the test database when it goes, also when the property panicked.
struct PgDatabase {
    name: String,
}

impl PgDatabase {
    /// Creates `tessera_prop_<random>`; `None` (after printing SKIPPED) if PostgreSQL cannot
    /// be reached, unless `CI=true`, where that is a failure.
    async fn create() -> Option<(Self, String)> {
        use sqlx::Connection;
        use tessera_core::random::SecureRandom;

        let admin_url = pg_admin_url();
        let mut admin = match sqlx::PgConnection::connect(&admin_url).await {
            Ok(admin) => admin,
            Err(e) if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
                panic!("PostgreSQL is unreachable, and CI=true requires it: {e}")
            }
            Err(e) => {
                println!("SKIPPED: PostgreSQL is unreachable ({e}); set CI=true to fail instead");
                return None;
            }
        };
        let mut random = [0u8; 8];
        OsRandom::default().fill(&mut random);
        let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let name = format!("tessera_prop_{suffix}");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create the test database");
        let _ = admin.close().await;
        let url = pg_url_of(&admin_url, &name);
        Some((Self { name }, url))
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        use sqlx::Connection;

        let name = std::mem::take(&mut self.name);
        // A runtime of its own: the test's may be the one unwinding.
        let _ = std::thread::spawn(move || {
            runtime().block_on(async {
                let mut admin = sqlx::PgConnection::connect(&pg_admin_url())
                    .await
                    .expect("connect to drop the test database");
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut admin)
                .await
                .expect("drop the test database");
                let _ = admin.close().await;
            });
        })
        .join();
    }
}

#[test]
fn postgres_family_state_machine_matches_the_model() {
    let runtime = runtime();
    let Some((db, url)) = runtime.block_on(PgDatabase::create()) else {
        return;
    };
    let store = runtime
        .block_on(tessera_store::PostgresStore::open(&url))
        .unwrap();
    run_property(&runtime, &store, cases(128));
    runtime.block_on(store.close());
    drop(db);
}
