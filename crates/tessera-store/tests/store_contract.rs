//! Behaviour suite for the store ports of `tessera-core`.
//!
//! Every check is an `async fn check_*` generic over the ports, so the same bodies run
//! against every adapter: `behaviour_suite!` lists them once and the `#[tokio::test]`
//! wrappers at the bottom run them against a fresh SQLite database in a temporary directory
//! and against a fresh PostgreSQL database (`tessera_test_<random>`, created on the server
//! at `TESSERA_TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`,
//! and dropped afterwards, also when a check fails). Without a reachable PostgreSQL those
//! tests print `SKIPPED` and pass, except with `CI=true`, where they fail.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tempfile::TempDir;
use tessera_core::StoreError;
use tessera_core::authorization_code::{CodeRecord, CodeStore};
use tessera_core::client::{Client, ClientStore, GrantType};
use tessera_core::consent::{Consent, ConsentStore};
use tessera_core::janitor::{Janitor, Purged};
use tessera_core::key_schedule::{KeyPolicy, KeySchedule, KeyState};
use tessera_core::keys::{Jwk, KeyRing, KeyStore, StoredKey};
use tessera_core::pkce::CodeChallenge;
use tessera_core::refresh_family::{
    Family, IssuedAccessToken, NewGrant, NewRefreshToken, RefreshStore, RefreshToken,
};
use tessera_core::revocation::{Revocation, RevocationList, RevocationReason, RevokedEntry};
use tessera_core::scope::ScopeSet;
use tessera_core::secret::SecretHash;
use tessera_core::session::{Session, SessionStore};
use tessera_core::time::{Clock, UnixTime};
use tessera_core::user::{User, UserProfile, UserStore};
use tessera_store::MasterKey;
use tessera_store::SqliteStore;
use tessera_store::key_material::{KeyError, KeyKind, ScheduledKeyRing, Tick};

/// Every store port, as one adapter implements them.
trait Store:
    ClientStore
    + UserStore
    + CodeStore
    + SessionStore
    + ConsentStore
    + KeyStore
    + RefreshStore
    + RevocationList
    + Janitor
{
}
impl<S> Store for S where
    S: ClientStore
        + UserStore
        + CodeStore
        + SessionStore
        + ConsentStore
        + KeyStore
        + RefreshStore
        + RevocationList
        + Janitor
{
}

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

/// RFC 7636 Appendix B challenge.
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn public_client(id: &str) -> Client {
    Client {
        id: id.to_owned(),
        name: format!("Public {id}"),
        secret_hash: None,
        redirect_uris: vec![
            "https://app.example/cb".into(),
            "http://127.0.0.1:8080/callback?x=1".into(),
        ],
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        scopes: ScopeSet::from_tokens(["openid", "read", "write"]),
        audiences: vec!["https://api.example".into(), "https://other.example".into()],
        access_token_ttl: None,
        refresh_token_ttl: None,
        first_party: true,
        post_logout_redirect_uris: vec![
            "https://app.example/signed-out".into(),
            "http://127.0.0.1:8080/bye?x=1".into(),
        ],
        created_at: UnixTime(1_700_000_000),
    }
}

fn confidential_client(id: &str) -> Client {
    Client {
        id: id.to_owned(),
        name: format!("Confidential {id} — ünïcode"),
        secret_hash: Some(SecretHash::of(&format!("tss_secret_{id}"))),
        redirect_uris: vec![],
        grant_types: vec![GrantType::ClientCredentials],
        scopes: ScopeSet::from_tokens(["admin:read"]),
        audiences: vec![],
        // Per-client lifetimes, so every check round-trips them too.
        access_token_ttl: Some(Duration::from_secs(5 * 60)),
        refresh_token_ttl: Some(Duration::from_secs(2 * DAY as u64)),
        first_party: false,
        post_logout_redirect_uris: vec![],
        created_at: UnixTime(1_700_000_123),
    }
}

fn user(id: &str, username: &str) -> User {
    User {
        id: id.to_owned(),
        username: username.to_owned(),
        password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1$salt${username}"),
        roles: vec!["admin".into(), "viewer".into()],
        profile: UserProfile {
            name: Some(format!("{username} Example")),
            email: Some(format!("{username}@example.test")),
            email_verified: true,
        },
        disabled: false,
        created_at: UnixTime(1_600_000_000),
    }
}

fn code(secret: &str, client_id: &str, user_id: &str, resource: Option<&str>) -> CodeRecord {
    CodeRecord {
        code_hash: SecretHash::of(secret),
        client_id: client_id.to_owned(),
        user_id: user_id.to_owned(),
        redirect_uri: "https://app.example/cb".into(),
        redirect_uri_explicit: resource.is_some(),
        challenge: CodeChallenge::from_stored(CHALLENGE.to_owned()),
        scope: ScopeSet::from_tokens(["openid", "read"]),
        resource: resource.map(str::to_owned),
        auth_time: UnixTime(1_700_000_500),
        expires_at: UnixTime(1_700_000_560),
        used_at: None,
        family_id: None,
        nonce: Some(format!("nonce-{secret}")),
    }
}

/// Base time of families, refresh and access tokens: far in the future, so no adapter
/// housekeeping keyed on the wall clock can drop a revocation entry mid-check.
const T0: i64 = 4_000_000_000;
const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;

fn family(id: &str, client_id: &str, user_id: &str) -> Family {
    Family {
        id: id.to_owned(),
        client_id: client_id.to_owned(),
        user_id: user_id.to_owned(),
        scope: ScopeSet::from_tokens(["openid", "read"]),
        audience: "https://api.example".into(),
        auth_time: UnixTime(T0 - 60),
        created_at: UnixTime(T0),
        absolute_expires_at: UnixTime(T0 + 30 * DAY),
        revoked: None,
    }
}

fn refresh_hash(tag: &str) -> SecretHash {
    SecretHash::of(&format!("tsr_{tag}"))
}

/// The refresh token `tsr_{tag}`, issued at `at` and valid for a day.
fn new_refresh(tag: &str, at: i64) -> NewRefreshToken {
    NewRefreshToken {
        token_hash: refresh_hash(tag),
        issued_at: UnixTime(at),
        expires_at: UnixTime(at + DAY),
    }
}

fn access(jti: &str, expires_at: i64) -> IssuedAccessToken {
    IssuedAccessToken {
        jti: jti.to_owned(),
        expires_at: UnixTime(expires_at),
    }
}

/// What redeeming a code of `client_id`/`user_id` creates: family `fam-{tag}`, first
/// refresh token `tsr_{tag}` and access token `jti-{tag}`, issued at `T0`.
fn grant(tag: &str, client_id: &str, user_id: &str) -> NewGrant {
    NewGrant {
        family: family(&format!("fam-{tag}"), client_id, user_id),
        refresh: Some(new_refresh(tag, T0)),
        access: access(&format!("jti-{tag}"), T0 + HOUR),
    }
}

/// The refresh token stored for `new` in `family_id`, not yet rotated.
fn live_token(new: &NewRefreshToken, family_id: &str) -> RefreshToken {
    RefreshToken {
        token_hash: new.token_hash,
        family_id: family_id.to_owned(),
        issued_at: new.issued_at,
        expires_at: new.expires_at,
        rotated_at: None,
        successor: None,
    }
}

/// A key row with fake material (the store never looks inside). Its times run against its
/// generation, so ordering by anything but the generation shows.
fn stored_key(kid: &str, generation: i64) -> StoredKey {
    StoredKey {
        schedule: KeySchedule {
            kid: kid.to_owned(),
            generation,
            created_at: UnixTime(1_000 - generation),
            activates_at: UnixTime(2_000 - generation),
            revoked_at: None,
        },
        public: Jwk {
            kty: "RSA".into(),
            use_: "sig".into(),
            alg: "RS256".into(),
            kid: kid.to_owned(),
            n: Some(format!("modulus-of-{kid}")),
            e: Some("AQAB".into()),
            crv: None,
            x: None,
            y: None,
        },
        sealed_private: vec![0, 1, 2, 255, generation as u8],
    }
}

fn master_key() -> MasterKey {
    MasterKey::from_base64(&STANDARD.encode([7u8; 32])).expect("valid master key")
}

fn assert_conflict<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::Conflict) => {}
        other => panic!("{what}: expected StoreError::Conflict, got {other:?}"),
    }
}

/// Creates the client and user that codes and sessions reference.
async fn seed_owner<S: Store>(store: &S, client_id: &str, user_id: &str) {
    ClientStore::create(store, &public_client(client_id))
        .await
        .unwrap();
    UserStore::create(store, &user(user_id, &format!("name-of-{user_id}")))
        .await
        .unwrap();
}

/// Issues code `tsc_{tag}` and redeems it with `grant(tag, ..)`, starting a family; the
/// client and user must exist.
async fn start_family<S: Store>(store: &S, tag: &str, client_id: &str, user_id: &str) -> NewGrant {
    let record = code(&format!("tsc_{tag}"), client_id, user_id, None);
    CodeStore::insert(store, &record).await.unwrap();
    let grant = grant(tag, client_id, user_id);
    assert!(
        CodeStore::redeem(store, &record.code_hash, UnixTime(T0), &grant)
            .await
            .unwrap(),
        "redeem of a fresh code"
    );
    grant
}

async fn find_token<S: Store>(store: &S, hash: &SecretHash) -> Option<(RefreshToken, Family)> {
    RefreshStore::find(store, hash).await.unwrap()
}

async fn is_revoked<S: Store>(store: &S, jti: &str) -> bool {
    RevocationList::is_access_token_revoked(store, jti)
        .await
        .unwrap()
}

/// Asserts that `grant` was stored: its first refresh token is findable, live, and in the
/// grant's family.
async fn assert_grant_stored<S: Store>(store: &S, grant: &NewGrant) {
    let first = grant
        .refresh
        .as_ref()
        .expect("a grant with a refresh token");
    let (token, family) = find_token(store, &first.token_hash)
        .await
        .unwrap_or_else(|| panic!("the first refresh token of {} is stored", grant.family.id));
    assert_eq!(family, grant.family);
    assert_eq!(token, live_token(first, &grant.family.id));
}

/// Asserts that nothing of `grant` was stored.
async fn assert_grant_absent<S: Store>(store: &S, grant: &NewGrant) {
    if let Some(first) = &grant.refresh {
        assert_eq!(
            find_token(store, &first.token_hash).await,
            None,
            "the refresh token of {} must not be stored",
            grant.family.id
        );
    }
    // The port has no family lookup; revoke_family answers false for an unknown family.
    assert!(
        !RefreshStore::revoke_family(
            store,
            &grant.family.id,
            RevocationReason::CodeReplay,
            UnixTime(T0)
        )
        .await
        .unwrap(),
        "family {} must not be stored",
        grant.family.id
    );
    assert!(!is_revoked(store, &grant.access.jti).await);
}

// ---------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------

async fn check_client_round_trip<S: Store>(store: &S) {
    let public = public_client("pub");
    let confidential = confidential_client("conf");
    ClientStore::create(store, &public).await.unwrap();
    ClientStore::create(store, &confidential).await.unwrap();

    let found = ClientStore::find(store, "pub").await.unwrap();
    assert_eq!(found.as_ref(), Some(&public));
    assert!(found.unwrap().is_public());

    let found = ClientStore::find(store, "conf").await.unwrap();
    assert_eq!(found.as_ref(), Some(&confidential));
    let found = found.unwrap();
    assert!(!found.is_public());
    assert!(found.secret_hash.unwrap().matches("tss_secret_conf"));

    assert_eq!(ClientStore::find(store, "missing").await.unwrap(), None);
    // Ids are matched exactly, not case-insensitively or by prefix.
    assert_eq!(ClientStore::find(store, "PUB").await.unwrap(), None);
    assert_eq!(ClientStore::find(store, "pu").await.unwrap(), None);
}

async fn check_client_duplicate_is_conflict<S: Store>(store: &S) {
    let original = confidential_client("dup");
    ClientStore::create(store, &original).await.unwrap();

    let mut impostor = public_client("dup");
    impostor.name = "Impostor".into();
    assert_conflict(
        ClientStore::create(store, &impostor).await,
        "create of an existing client id",
    );
    // The exact same record again is a conflict too.
    assert_conflict(
        ClientStore::create(store, &original).await,
        "create of an identical client",
    );

    assert_eq!(
        ClientStore::find(store, "dup").await.unwrap(),
        Some(original.clone())
    );
    assert_eq!(ClientStore::list(store).await.unwrap(), vec![original]);
}

async fn check_client_list_ordered_by_id<S: Store>(store: &S) {
    assert!(ClientStore::list(store).await.unwrap().is_empty());
    for id in ["m-client", "b-client", "z-client", "a-client"] {
        ClientStore::create(store, &public_client(id))
            .await
            .unwrap();
    }
    let listed = ClientStore::list(store).await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["a-client", "b-client", "m-client", "z-client"]);
    // List returns full records, not just ids.
    assert_eq!(listed[0], public_client("a-client"));
}

async fn check_client_set_secret<S: Store>(store: &S) {
    ClientStore::create(store, &confidential_client("conf"))
        .await
        .unwrap();
    ClientStore::create(store, &public_client("pub"))
        .await
        .unwrap();

    let new_hash = SecretHash::of("tss_rotated");
    assert!(
        ClientStore::set_secret(store, "conf", new_hash)
            .await
            .unwrap()
    );
    let found = ClientStore::find(store, "conf").await.unwrap().unwrap();
    assert_eq!(found.secret_hash, Some(new_hash));
    assert!(!found.secret_hash.unwrap().matches("tss_secret_conf"));
    // Nothing else about the client changed.
    assert_eq!(
        Client {
            secret_hash: confidential_client("conf").secret_hash,
            ..found
        },
        confidential_client("conf")
    );

    // Setting a secret on a public client makes it confidential.
    let other = SecretHash::of("tss_for_pub");
    assert!(ClientStore::set_secret(store, "pub", other).await.unwrap());
    let found = ClientStore::find(store, "pub").await.unwrap().unwrap();
    assert_eq!(found.secret_hash, Some(other));
    // Only the named client changed.
    assert_eq!(
        ClientStore::find(store, "conf")
            .await
            .unwrap()
            .unwrap()
            .secret_hash,
        Some(new_hash)
    );

    assert!(
        !ClientStore::set_secret(store, "missing", SecretHash::of("x"))
            .await
            .unwrap()
    );
    assert_eq!(ClientStore::find(store, "missing").await.unwrap(), None);
}

async fn check_client_set_token_lifetimes<S: Store>(store: &S) {
    let minutes = |m: u64| Some(Duration::from_secs(m * 60));
    ClientStore::create(store, &public_client("pub"))
        .await
        .unwrap();
    ClientStore::create(store, &confidential_client("conf"))
        .await
        .unwrap();
    let lifetimes = |c: Client| (c.access_token_ttl, c.refresh_token_ttl);

    // Set both on a client that had none.
    assert!(
        ClientStore::set_token_lifetimes(store, "pub", minutes(10), minutes(3 * 60))
            .await
            .unwrap()
    );
    let found = ClientStore::find(store, "pub").await.unwrap().unwrap();
    assert_eq!(lifetimes(found.clone()), (minutes(10), minutes(3 * 60)));
    // Nothing else about the client changed.
    assert_eq!(
        Client {
            access_token_ttl: None,
            refresh_token_ttl: None,
            ..found
        },
        public_client("pub")
    );
    // The other client kept its own.
    assert_eq!(
        ClientStore::find(store, "conf").await.unwrap(),
        Some(confidential_client("conf"))
    );

    // Change one, clear the other; then clear both (back to the global values).
    assert!(
        ClientStore::set_token_lifetimes(store, "conf", minutes(1), None)
            .await
            .unwrap()
    );
    let found = ClientStore::find(store, "conf").await.unwrap().unwrap();
    assert_eq!(lifetimes(found), (minutes(1), None));
    assert!(
        ClientStore::set_token_lifetimes(store, "conf", None, None)
            .await
            .unwrap()
    );
    let listed = ClientStore::list(store).await.unwrap();
    assert_eq!(
        listed.into_iter().map(lifetimes).collect::<Vec<_>>(),
        [(None, None), (minutes(10), minutes(3 * 60))]
    );

    // Large values survive the trip (365 days in seconds).
    let year = Some(Duration::from_secs(365 * DAY as u64));
    assert!(
        ClientStore::set_token_lifetimes(store, "pub", minutes(24 * 60), year)
            .await
            .unwrap()
    );
    let found = ClientStore::find(store, "pub").await.unwrap().unwrap();
    assert_eq!(lifetimes(found), (minutes(24 * 60), year));

    assert!(
        !ClientStore::set_token_lifetimes(store, "missing", minutes(5), None)
            .await
            .unwrap()
    );
    assert_eq!(ClientStore::find(store, "missing").await.unwrap(), None);
}

async fn check_client_set_first_party<S: Store>(store: &S) {
    ClientStore::create(store, &confidential_client("conf"))
        .await
        .unwrap();
    ClientStore::create(store, &public_client("pub"))
        .await
        .unwrap();

    assert!(
        ClientStore::set_first_party(store, "conf", true)
            .await
            .unwrap()
    );
    let found = ClientStore::find(store, "conf").await.unwrap().unwrap();
    assert!(found.first_party);
    // Nothing else about the client changed, and the other client kept its own.
    assert_eq!(
        Client {
            first_party: false,
            ..found
        },
        confidential_client("conf")
    );
    assert_eq!(
        ClientStore::find(store, "pub").await.unwrap(),
        Some(public_client("pub"))
    );
    // Back, and idempotent.
    for _ in 0..2 {
        assert!(
            ClientStore::set_first_party(store, "conf", false)
                .await
                .unwrap()
        );
    }
    assert_eq!(
        ClientStore::find(store, "conf").await.unwrap(),
        Some(confidential_client("conf"))
    );
    assert!(
        !ClientStore::set_first_party(store, "missing", true)
            .await
            .unwrap()
    );
}

async fn check_client_delete<S: Store>(store: &S) {
    ClientStore::create(store, &public_client("a"))
        .await
        .unwrap();
    ClientStore::create(store, &public_client("b"))
        .await
        .unwrap();

    assert!(ClientStore::delete(store, "a").await.unwrap());
    assert_eq!(ClientStore::find(store, "a").await.unwrap(), None);
    assert!(!ClientStore::delete(store, "a").await.unwrap());
    assert!(!ClientStore::delete(store, "never-existed").await.unwrap());

    // The other client is untouched, and the deleted id can be registered again.
    assert_eq!(
        ClientStore::find(store, "b").await.unwrap(),
        Some(public_client("b"))
    );
    ClientStore::create(store, &confidential_client("a"))
        .await
        .unwrap();
    assert_eq!(
        ClientStore::find(store, "a").await.unwrap(),
        Some(confidential_client("a"))
    );
}

// ---------------------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------------------

async fn check_user_round_trip<S: Store>(store: &S) {
    let alice = user("u-alice", "alice");
    let mut bob = user("u-bob", "bob");
    bob.roles = vec![];
    bob.disabled = true;
    UserStore::create(store, &alice).await.unwrap();
    UserStore::create(store, &bob).await.unwrap();

    assert_eq!(
        UserStore::find(store, "u-alice").await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(
        UserStore::find_by_username(store, "alice").await.unwrap(),
        Some(alice)
    );
    assert_eq!(
        UserStore::find(store, "u-bob").await.unwrap(),
        Some(bob.clone())
    );
    assert_eq!(
        UserStore::find_by_username(store, "bob").await.unwrap(),
        Some(bob)
    );

    // find is by id, find_by_username by username: neither answers for the other key.
    assert_eq!(UserStore::find(store, "alice").await.unwrap(), None);
    assert_eq!(
        UserStore::find_by_username(store, "u-alice").await.unwrap(),
        None
    );
    assert_eq!(
        UserStore::find_by_username(store, "nobody").await.unwrap(),
        None
    );
    assert_eq!(UserStore::find(store, "nobody").await.unwrap(), None);
}

async fn check_user_duplicates_are_conflicts<S: Store>(store: &S) {
    let original = user("u1", "alice");
    UserStore::create(store, &original).await.unwrap();

    // Same username, different id.
    let mut other = user("u2", "alice");
    other.password_hash = "$argon2id$other".into();
    other.roles = vec!["root".into()];
    assert_conflict(
        UserStore::create(store, &other).await,
        "create of an existing username",
    );
    assert_eq!(UserStore::find(store, "u2").await.unwrap(), None);

    // Same id, different username.
    assert_conflict(
        UserStore::create(store, &user("u1", "mallory")).await,
        "create of an existing user id",
    );
    assert_eq!(
        UserStore::find_by_username(store, "mallory").await.unwrap(),
        None
    );

    assert_eq!(
        UserStore::find_by_username(store, "alice").await.unwrap(),
        Some(original.clone())
    );
    assert_eq!(UserStore::list(store).await.unwrap(), vec![original]);
}

async fn check_user_set_disabled<S: Store>(store: &S) {
    UserStore::create(store, &user("u1", "alice"))
        .await
        .unwrap();
    UserStore::create(store, &user("u2", "bob")).await.unwrap();

    assert!(UserStore::set_disabled(store, "alice", true).await.unwrap());
    let alice = UserStore::find_by_username(store, "alice")
        .await
        .unwrap()
        .unwrap();
    assert!(alice.disabled);
    assert_eq!(
        User {
            disabled: false,
            ..alice
        },
        user("u1", "alice")
    );
    // Only alice changed.
    assert!(
        !UserStore::find(store, "u2")
            .await
            .unwrap()
            .unwrap()
            .disabled
    );

    assert!(
        UserStore::set_disabled(store, "alice", false)
            .await
            .unwrap()
    );
    assert_eq!(
        UserStore::find(store, "u1").await.unwrap(),
        Some(user("u1", "alice"))
    );

    assert!(
        !UserStore::set_disabled(store, "nobody", true)
            .await
            .unwrap()
    );
    // set_disabled names the user by username, not id.
    assert!(!UserStore::set_disabled(store, "u1", true).await.unwrap());
    assert!(
        !UserStore::find(store, "u1")
            .await
            .unwrap()
            .unwrap()
            .disabled
    );
}

async fn check_user_set_password<S: Store>(store: &S) {
    UserStore::create(store, &user("u1", "alice"))
        .await
        .unwrap();
    UserStore::create(store, &user("u2", "bob")).await.unwrap();

    let new_hash = "$argon2id$v=19$m=19456,t=2,p=1$bmV3$bmV3aGFzaA";
    assert!(
        UserStore::set_password(store, "alice", new_hash)
            .await
            .unwrap()
    );
    let alice = UserStore::find(store, "u1").await.unwrap().unwrap();
    assert_eq!(alice.password_hash, new_hash);
    assert_eq!(
        User {
            password_hash: user("u1", "alice").password_hash,
            ..alice
        },
        user("u1", "alice")
    );
    assert_eq!(
        UserStore::find(store, "u2").await.unwrap(),
        Some(user("u2", "bob"))
    );

    assert!(
        !UserStore::set_password(store, "nobody", new_hash)
            .await
            .unwrap()
    );
    assert!(
        !UserStore::set_password(store, "u2", new_hash)
            .await
            .unwrap()
    );
    assert_eq!(
        UserStore::find(store, "u2").await.unwrap(),
        Some(user("u2", "bob"))
    );
}

async fn check_user_list_ordered_by_username<S: Store>(store: &S) {
    assert!(UserStore::list(store).await.unwrap().is_empty());
    // Ids deliberately sort in the opposite order to usernames.
    for (id, name) in [
        ("id-4", "carol"),
        ("id-9", "alice"),
        ("id-1", "dave"),
        ("id-5", "bob"),
    ] {
        UserStore::create(store, &user(id, name)).await.unwrap();
    }
    let listed = UserStore::list(store).await.unwrap();
    let names: Vec<&str> = listed.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(names, ["alice", "bob", "carol", "dave"]);
    assert_eq!(listed[0], user("id-9", "alice"));
}

// ---------------------------------------------------------------------------------------
// Authorization codes
// ---------------------------------------------------------------------------------------

async fn check_code_round_trip<S: Store>(store: &S) {
    seed_owner(store, "client", "user").await;
    let without = code("tsc_one", "client", "user", None);
    let with = code("tsc_two", "client", "user", Some("https://api.example"));
    CodeStore::insert(store, &without).await.unwrap();
    CodeStore::insert(store, &with).await.unwrap();

    let found = CodeStore::find(store, &without.code_hash).await.unwrap();
    assert_eq!(found.as_ref(), Some(&without));
    let found = found.unwrap();
    assert_eq!(found.resource, None);
    assert_eq!(found.used_at, None);
    assert!(!found.redirect_uri_explicit);
    assert_eq!(found.challenge.as_str(), CHALLENGE);

    let found = CodeStore::find(store, &with.code_hash).await.unwrap();
    assert_eq!(found.as_ref(), Some(&with));
    let found = found.unwrap();
    assert_eq!(found.resource.as_deref(), Some("https://api.example"));
    assert!(found.redirect_uri_explicit);
    assert_eq!(found.scope.to_string(), "openid read");

    assert_eq!(
        CodeStore::find(store, &SecretHash::of("tsc_unknown"))
            .await
            .unwrap(),
        None
    );
}

async fn check_code_duplicate_hash_is_rejected<S: Store>(store: &S) {
    seed_owner(store, "client", "user").await;
    let original = code("tsc_same", "client", "user", None);
    CodeStore::insert(store, &original).await.unwrap();
    let again = code("tsc_same", "client", "user", Some("https://evil.example"));
    assert_conflict(
        CodeStore::insert(store, &again).await,
        "insert of an existing code hash",
    );
    assert_eq!(
        CodeStore::find(store, &original.code_hash).await.unwrap(),
        Some(original)
    );
}

async fn check_code_redeem_once<S: Store>(store: &S) {
    seed_owner(store, "client", "user").await;
    let record = code("tsc_once", "client", "user", Some("https://api.example"));
    let other = code("tsc_other", "client", "user", None);
    CodeStore::insert(store, &record).await.unwrap();
    CodeStore::insert(store, &other).await.unwrap();

    let now = UnixTime(1_700_000_530);
    let first = grant("first", "client", "user");
    assert!(
        CodeStore::redeem(store, &record.code_hash, now, &first)
            .await
            .unwrap()
    );
    let second = grant("second", "client", "user");
    assert!(
        !CodeStore::redeem(store, &record.code_hash, UnixTime(1_700_000_540), &second)
            .await
            .unwrap()
    );

    // The used code stays findable, marked with the time and family of the winning redeem.
    let found = CodeStore::find(store, &record.code_hash)
        .await
        .unwrap()
        .expect("a used code stays findable");
    assert_eq!(found.used_at, Some(now));
    assert_eq!(found.family_id.as_deref(), Some("fam-first"));
    assert_eq!(
        CodeRecord {
            used_at: None,
            family_id: None,
            ..found
        },
        record
    );
    // The winner stored its grant; the loser stored nothing.
    assert_grant_stored(store, &first).await;
    assert_grant_absent(store, &second).await;

    // Other codes are untouched.
    assert_eq!(
        CodeStore::find(store, &other.code_hash).await.unwrap(),
        Some(other)
    );
    // An unknown code is never redeemed, and its grant is not stored.
    let stray = grant("stray", "client", "user");
    assert!(
        !CodeStore::redeem(store, &SecretHash::of("tsc_unknown"), now, &stray)
            .await
            .unwrap()
    );
    assert_grant_absent(store, &stray).await;
}

async fn check_code_redeem_without_refresh_token<S: Store>(store: &S) {
    seed_owner(store, "client", "user").await;
    let record = code("tsc_norefresh", "client", "user", None);
    CodeStore::insert(store, &record).await.unwrap();
    let grant = NewGrant {
        refresh: None,
        ..grant("norefresh", "client", "user")
    };
    assert!(
        CodeStore::redeem(store, &record.code_hash, UnixTime(T0), &grant)
            .await
            .unwrap()
    );
    let found = CodeStore::find(store, &record.code_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.family_id.as_deref(), Some("fam-norefresh"));
    assert_eq!(find_token(store, &refresh_hash("norefresh")).await, None);
    // The family and its access token were stored: revoking the family revokes the token.
    assert!(!is_revoked(store, "jti-norefresh").await);
    assert!(
        RefreshStore::revoke_family(
            store,
            "fam-norefresh",
            RevocationReason::CodeReplay,
            UnixTime(T0 + 1)
        )
        .await
        .unwrap()
    );
    assert!(is_revoked(store, "jti-norefresh").await);
}

async fn check_code_redeem_is_atomic<S: Store>(store: &S) {
    seed_owner(store, "client", "user").await;
    start_family(store, "taken", "client", "user").await;
    let record = code("tsc_clash", "client", "user", None);
    CodeStore::insert(store, &record).await.unwrap();

    // A grant that cannot be stored (its family id exists) fails the whole redeem.
    let clashing = NewGrant {
        family: family("fam-taken", "client", "user"),
        ..grant("clash", "client", "user")
    };
    assert!(
        CodeStore::redeem(store, &record.code_hash, UnixTime(T0 + 5), &clashing)
            .await
            .is_err(),
        "a grant whose family id exists cannot be stored"
    );
    assert_eq!(
        CodeStore::find(store, &record.code_hash).await.unwrap(),
        Some(record.clone()),
        "a failed redeem leaves the code unused"
    );
    assert_eq!(find_token(store, &refresh_hash("clash")).await, None);
    assert!(!is_revoked(store, "jti-clash").await);

    // The code can still be redeemed with a grant that can be stored.
    let good = grant("good", "client", "user");
    assert!(
        CodeStore::redeem(store, &record.code_hash, UnixTime(T0 + 6), &good)
            .await
            .unwrap()
    );
    assert_grant_stored(store, &good).await;
}

async fn check_code_inserted_used_cannot_be_redeemed<S: Store>(store: &S) {
    seed_owner(store, "client", "user").await;
    let mut record = code("tsc_used", "client", "user", None);
    record.used_at = Some(UnixTime(1_700_000_501));
    record.family_id = Some("fam-earlier".into());
    CodeStore::insert(store, &record).await.unwrap();
    let late = grant("late", "client", "user");
    assert!(
        !CodeStore::redeem(store, &record.code_hash, UnixTime(1_700_000_502), &late)
            .await
            .unwrap()
    );
    assert_eq!(
        CodeStore::find(store, &record.code_hash).await.unwrap(),
        Some(record)
    );
    assert_grant_absent(store, &late).await;
}

async fn check_code_redeem_concurrent<S>(store: &S)
where
    S: Store + Clone + 'static,
{
    const TASKS: i64 = 16;
    seed_owner(store, "client", "user").await;
    let record = code("tsc_race", "client", "user", None);
    CodeStore::insert(store, &record).await.unwrap();

    // Every task brings its own grant: its own family id, refresh token and jti.
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(TASKS as usize));
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let store = store.clone();
            let barrier = barrier.clone();
            let hash = record.code_hash;
            tokio::spawn(async move {
                let grant = grant(&format!("race-{i}"), "client", "user");
                barrier.wait().await;
                let now = UnixTime(1_700_000_510 + i);
                CodeStore::redeem(&store, &hash, now, &grant)
                    .await
                    .map(|won| (won, now, grant))
            })
        })
        .collect();

    let mut winners = Vec::new();
    let mut grants = Vec::new();
    for task in tasks {
        let (won, now, grant) = task
            .await
            .expect("task panicked")
            .expect("redeem failed under concurrency");
        if won {
            winners.push((now, grant.family.id.clone()));
        }
        grants.push(grant);
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one concurrent redeem must win, got {winners:?}"
    );
    let (won_at, won_family) = winners.pop().unwrap();
    let found = CodeStore::find(store, &record.code_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.used_at, Some(won_at), "used_at is the winner's time");
    assert_eq!(
        found.family_id.as_deref(),
        Some(won_family.as_str()),
        "family_id is the winner's family"
    );

    // Exactly one family exists: the winner's.
    let mut stored = Vec::new();
    for grant in &grants {
        let first = grant.refresh.as_ref().unwrap();
        if let Some((_, family)) = find_token(store, &first.token_hash).await {
            stored.push(family.id);
        }
    }
    assert_eq!(
        stored,
        vec![won_family.clone()],
        "only the winner's grant is stored"
    );
    for grant in &grants {
        if grant.family.id == won_family {
            assert_grant_stored(store, grant).await;
        } else {
            assert_grant_absent(store, grant).await;
        }
    }
}

async fn check_code_foreign_keys<S: Store>(store: &S) {
    seed_owner(store, "client", "user").await;
    // A code for an unknown client or user is refused.
    assert!(
        CodeStore::insert(store, &code("tsc_a", "no-client", "user", None))
            .await
            .is_err(),
        "a code must reference an existing client"
    );
    assert!(
        CodeStore::insert(store, &code("tsc_b", "client", "no-user", None))
            .await
            .is_err(),
        "a code must reference an existing user"
    );
    assert_eq!(
        CodeStore::find(store, &SecretHash::of("tsc_a"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        CodeStore::find(store, &SecretHash::of("tsc_b"))
            .await
            .unwrap(),
        None
    );
}

async fn check_client_delete_cascades_codes<S: Store>(store: &S) {
    seed_owner(store, "doomed", "user").await;
    ClientStore::create(store, &public_client("survivor"))
        .await
        .unwrap();
    let unused = code("tsc_unused", "doomed", "user", None);
    let used = code("tsc_used", "doomed", "user", Some("https://api.example"));
    let kept = code("tsc_kept", "survivor", "user", None);
    for r in [&unused, &used, &kept] {
        CodeStore::insert(store, r).await.unwrap();
    }
    let doomed_grant = grant("used", "doomed", "user");
    assert!(
        CodeStore::redeem(
            store,
            &used.code_hash,
            UnixTime(1_700_000_520),
            &doomed_grant
        )
        .await
        .unwrap()
    );
    let survivor_grant = start_family(store, "survivor", "survivor", "user").await;

    assert!(ClientStore::delete(store, "doomed").await.unwrap());

    assert_eq!(
        CodeStore::find(store, &unused.code_hash).await.unwrap(),
        None
    );
    assert_eq!(CodeStore::find(store, &used.code_hash).await.unwrap(), None);
    let late = grant("late", "doomed", "user");
    assert!(
        !CodeStore::redeem(store, &unused.code_hash, UnixTime(1_700_000_530), &late)
            .await
            .unwrap(),
        "a code of a deleted client cannot be redeemed"
    );
    assert_grant_absent(store, &late).await;
    // The deleted client's grants go with it.
    assert_eq!(find_token(store, &refresh_hash("used")).await, None);
    assert_eq!(
        CodeStore::find(store, &kept.code_hash).await.unwrap(),
        Some(kept)
    );
    assert_grant_stored(store, &survivor_grant).await;
    // The user is not affected by deleting the client.
    assert!(UserStore::find(store, "user").await.unwrap().is_some());
}

// ---------------------------------------------------------------------------------------
// Sessions
// ---------------------------------------------------------------------------------------

async fn check_session_lifecycle<S: Store>(store: &S) {
    UserStore::create(store, &user("u1", "alice"))
        .await
        .unwrap();
    UserStore::create(store, &user("u2", "bob")).await.unwrap();
    let one = Session {
        id_hash: SecretHash::of("tsx_one"),
        user_id: "u1".into(),
        auth_time: UnixTime(1_700_000_000),
        expires_at: UnixTime(1_700_003_600),
    };
    // Already expired: find returns it anyway, callers check expires_at.
    let expired = Session {
        id_hash: SecretHash::of("tsx_expired"),
        user_id: "u2".into(),
        auth_time: UnixTime(10),
        expires_at: UnixTime(20),
    };
    SessionStore::create(store, &one).await.unwrap();
    SessionStore::create(store, &expired).await.unwrap();

    assert_eq!(
        SessionStore::find(store, &one.id_hash).await.unwrap(),
        Some(one.clone())
    );
    assert_eq!(
        SessionStore::find(store, &expired.id_hash).await.unwrap(),
        Some(expired.clone())
    );
    assert_eq!(
        SessionStore::find(store, &SecretHash::of("tsx_unknown"))
            .await
            .unwrap(),
        None
    );

    assert!(SessionStore::delete(store, &one.id_hash).await.unwrap());
    assert_eq!(SessionStore::find(store, &one.id_hash).await.unwrap(), None);
    assert!(!SessionStore::delete(store, &one.id_hash).await.unwrap());
    assert!(
        !SessionStore::delete(store, &SecretHash::of("tsx_unknown"))
            .await
            .unwrap()
    );
    // Deleting one session leaves the others.
    assert_eq!(
        SessionStore::find(store, &expired.id_hash).await.unwrap(),
        Some(expired)
    );
}

async fn check_session_requires_user<S: Store>(store: &S) {
    let orphan = Session {
        id_hash: SecretHash::of("tsx_orphan"),
        user_id: "no-such-user".into(),
        auth_time: UnixTime(1),
        expires_at: UnixTime(2),
    };
    assert!(
        SessionStore::create(store, &orphan).await.is_err(),
        "a session must reference an existing user"
    );
    assert_eq!(
        SessionStore::find(store, &orphan.id_hash).await.unwrap(),
        None
    );
}

// ---------------------------------------------------------------------------------------
// Consents
// ---------------------------------------------------------------------------------------

fn consent(user_id: &str, client_id: &str, scopes: &[&str], at: i64) -> Consent {
    Consent {
        user_id: user_id.to_owned(),
        client_id: client_id.to_owned(),
        scopes: ScopeSet::from_tokens(scopes.iter().copied()),
        granted_at: UnixTime(at),
    }
}

async fn find_consent<S: Store>(store: &S, user_id: &str, client_id: &str) -> Option<Consent> {
    ConsentStore::find_consent(store, user_id, client_id)
        .await
        .unwrap()
}

async fn check_consent_save_and_replace<S: Store>(store: &S) {
    seed_owner(store, "c1", "u1").await;
    ClientStore::create(store, &public_client("c2"))
        .await
        .unwrap();
    UserStore::create(store, &user("u2", "bob")).await.unwrap();
    assert_eq!(find_consent(store, "u1", "c1").await, None);

    let first = consent("u1", "c1", &["read"], T0);
    ConsentStore::save_consent(store, &first).await.unwrap();
    assert_eq!(find_consent(store, "u1", "c1").await, Some(first.clone()));
    // Per user and client: nobody else has consented to anything.
    assert_eq!(find_consent(store, "u1", "c2").await, None);
    assert_eq!(find_consent(store, "u2", "c1").await, None);

    // Saving again replaces the record whole (scopes and time), never duplicates it.
    let wider = consent("u1", "c1", &["read", "write", "orders:read"], T0 + 60);
    ConsentStore::save_consent(store, &wider).await.unwrap();
    assert_eq!(find_consent(store, "u1", "c1").await, Some(wider.clone()));
    let narrower = consent("u1", "c1", &["write"], T0 + 120);
    ConsentStore::save_consent(store, &narrower).await.unwrap();
    assert_eq!(find_consent(store, "u1", "c1").await, Some(narrower));
    // An empty scope set round-trips as empty.
    let empty = consent("u2", "c2", &[], T0);
    ConsentStore::save_consent(store, &empty).await.unwrap();
    assert_eq!(find_consent(store, "u2", "c2").await, Some(empty));
}

async fn check_consent_revoke<S: Store>(store: &S) {
    seed_owner(store, "c1", "u1").await;
    ClientStore::create(store, &public_client("c2"))
        .await
        .unwrap();
    UserStore::create(store, &user("u2", "bob")).await.unwrap();
    for (u, c) in [("u1", "c1"), ("u1", "c2"), ("u2", "c1")] {
        ConsentStore::save_consent(store, &consent(u, c, &["read"], T0))
            .await
            .unwrap();
    }

    // One client.
    assert_eq!(
        ConsentStore::revoke_consents(store, "u1", Some("c1"))
            .await
            .unwrap(),
        1
    );
    assert_eq!(find_consent(store, "u1", "c1").await, None);
    assert!(find_consent(store, "u1", "c2").await.is_some());
    assert!(find_consent(store, "u2", "c1").await.is_some());
    assert_eq!(
        ConsentStore::revoke_consents(store, "u1", Some("c1"))
            .await
            .unwrap(),
        0
    );

    // Every client of one user; the other user keeps theirs.
    ConsentStore::save_consent(store, &consent("u1", "c1", &["read"], T0))
        .await
        .unwrap();
    assert_eq!(
        ConsentStore::revoke_consents(store, "u1", None)
            .await
            .unwrap(),
        2
    );
    assert_eq!(find_consent(store, "u1", "c1").await, None);
    assert_eq!(find_consent(store, "u1", "c2").await, None);
    assert!(find_consent(store, "u2", "c1").await.is_some());
    assert_eq!(
        ConsentStore::revoke_consents(store, "nobody", None)
            .await
            .unwrap(),
        0
    );
}

async fn check_consent_goes_with_its_user_and_client<S: Store>(store: &S) {
    seed_owner(store, "c1", "u1").await;
    ClientStore::create(store, &public_client("c2"))
        .await
        .unwrap();
    for c in ["c1", "c2"] {
        ConsentStore::save_consent(store, &consent("u1", c, &["read"], T0))
            .await
            .unwrap();
    }
    // A consent must name an existing user and client.
    assert!(
        ConsentStore::save_consent(store, &consent("ghost", "c1", &["read"], T0))
            .await
            .is_err()
    );
    assert!(
        ConsentStore::save_consent(store, &consent("u1", "ghost", &["read"], T0))
            .await
            .is_err()
    );
    // Deleting the client deletes its consents; re-registering the id does not revive them.
    assert!(ClientStore::delete(store, "c1").await.unwrap());
    assert_eq!(find_consent(store, "u1", "c1").await, None);
    ClientStore::create(store, &public_client("c1"))
        .await
        .unwrap();
    assert_eq!(find_consent(store, "u1", "c1").await, None);
    assert!(find_consent(store, "u1", "c2").await.is_some());
}

// ---------------------------------------------------------------------------------------
// Signing keys
// ---------------------------------------------------------------------------------------

async fn check_keys_insert_and_list<S: Store>(store: &S) {
    assert!(KeyStore::list(store).await.unwrap().is_empty());
    // Inserted out of generation order, with kids and times that sort against it: list must
    // order by generation, not by insertion, kid, created_at or activates_at.
    let second = stored_key("a-second", 2);
    let third = stored_key("b-third", 3);
    let first = stored_key("z-first", 1);
    for k in [&second, &third, &first] {
        KeyStore::insert(store, k).await.unwrap();
    }
    let all = vec![first.clone(), second.clone(), third.clone()];
    assert_eq!(KeyStore::list(store).await.unwrap(), all);

    // A duplicate kid (under a fresh generation) changes nothing.
    let mut duplicate = stored_key("a-second", 9);
    duplicate.sealed_private = vec![9; 16];
    assert_conflict(
        KeyStore::insert(store, &duplicate).await,
        "insert of an existing kid",
    );
    assert_eq!(KeyStore::list(store).await.unwrap(), all);

    // A duplicate generation under a new kid: this is how the second of two nodes taking
    // the same rotation step loses, so nothing of its key may be stored.
    let rival = stored_key("rival-of-second", 2);
    assert_conflict(
        KeyStore::insert(store, &rival).await,
        "insert of an existing generation",
    );
    assert_eq!(KeyStore::list(store).await.unwrap(), all);

    // A revoked key round-trips its revocation time.
    let mut revoked = stored_key("revoked", 4);
    revoked.schedule.revoked_at = Some(UnixTime(1_234));
    KeyStore::insert(store, &revoked).await.unwrap();
    assert_eq!(
        KeyStore::list(store).await.unwrap(),
        vec![first, second, third, revoked]
    );
}

async fn check_keys_delete_and_revoke<S: Store>(store: &S) {
    let one = stored_key("one", 1);
    let two = stored_key("two", 2);
    let three = stored_key("three", 3);
    for k in [&one, &two, &three] {
        KeyStore::insert(store, k).await.unwrap();
    }

    assert!(KeyStore::delete(store, "two").await.unwrap());
    assert!(
        !KeyStore::delete(store, "two").await.unwrap(),
        "already gone"
    );
    assert!(!KeyStore::delete(store, "never-existed").await.unwrap());
    assert_eq!(
        KeyStore::list(store).await.unwrap(),
        vec![one.clone(), three.clone()]
    );

    assert!(
        KeyStore::revoke(store, "three", UnixTime(500))
            .await
            .unwrap()
    );
    // A second revocation neither succeeds nor moves the time.
    assert!(
        !KeyStore::revoke(store, "three", UnixTime(600))
            .await
            .unwrap()
    );
    assert!(
        !KeyStore::revoke(store, "two", UnixTime(500)).await.unwrap(),
        "deleted"
    );
    assert!(
        !KeyStore::revoke(store, "never-existed", UnixTime(500))
            .await
            .unwrap()
    );
    let mut revoked = three.clone();
    revoked.schedule.revoked_at = Some(UnixTime(500));
    assert_eq!(
        KeyStore::list(store).await.unwrap(),
        vec![one.clone(), revoked.clone()]
    );

    // A revoked key can still be deleted; its generation stays free only once it is gone.
    assert!(KeyStore::delete(store, "three").await.unwrap());
    assert_eq!(KeyStore::list(store).await.unwrap(), vec![one]);
}

async fn check_keys_reseal_is_atomic<S: Store>(store: &S) {
    let keys: Vec<StoredKey> = (1..=3)
        .map(|g| stored_key(&format!("kid-{g}"), g))
        .collect();
    for k in &keys {
        KeyStore::insert(store, k).await.unwrap();
    }
    let resealed = |k: &StoredKey, tag: u8| StoredKey {
        sealed_private: vec![tag; 8 + k.schedule.generation as usize],
        ..k.clone()
    };

    // Every listed key gets its new bytes; nothing else about it changes.
    let batch: Vec<(String, Vec<u8>)> = keys
        .iter()
        .map(|k| (k.schedule.kid.clone(), resealed(k, 0xA1).sealed_private))
        .collect();
    KeyStore::reseal(store, &batch).await.unwrap();
    let after: Vec<StoredKey> = keys.iter().map(|k| resealed(k, 0xA1)).collect();
    assert_eq!(KeyStore::list(store).await.unwrap(), after);

    // One unknown kid in the batch (after a key that would already have been updated, and
    // before one that would not): the whole batch fails and no key changes.
    let batch = vec![
        ("kid-1".to_owned(), vec![0xB2; 9]),
        ("kid-missing".to_owned(), vec![0xB2; 9]),
        ("kid-3".to_owned(), vec![0xB2; 9]),
    ];
    assert!(
        KeyStore::reseal(store, &batch).await.is_err(),
        "a reseal naming an unknown kid must fail"
    );
    assert_eq!(
        KeyStore::list(store).await.unwrap(),
        after,
        "a failed reseal changes none of the keys"
    );

    // The store is still usable for a proper reseal after the rolled-back one.
    KeyStore::reseal(store, &[("kid-2".to_owned(), vec![0xC3; 4])])
        .await
        .unwrap();
    let mut expected = after;
    expected[1].sealed_private = vec![0xC3; 4];
    assert_eq!(KeyStore::list(store).await.unwrap(), expected);
}

// ---------------------------------------------------------------------------------------
// The scheduled key ring, through the store
// ---------------------------------------------------------------------------------------

/// A clock the test sets.
#[derive(Debug)]
struct TestClock(AtomicI64);

impl TestClock {
    fn at(t: i64) -> Arc<Self> {
        Arc::new(Self(AtomicI64::new(t)))
    }

    fn set(&self, t: i64) {
        self.0.store(t, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> UnixTime {
        UnixTime(self.0.load(Ordering::SeqCst))
    }
}

const KEY_T0: i64 = 1_800_000_000;
const MINUTE: i64 = 60;
/// When the first key (active at `KEY_T0`) hands over: `rotation_interval` later.
const ROTATION: i64 = KEY_T0 + HOUR;
/// When the successor is generated and published: `publish_ahead` before the rotation.
const PUBLISH_FROM: i64 = ROTATION - 10 * MINUTE;
/// When the first key leaves: its successor's activation + token lifetime + leeway.
const FIRST_REMOVED: i64 = ROTATION + 15 * MINUTE + MINUTE;

fn key_policy() -> KeyPolicy {
    KeyPolicy {
        rotation_interval: Duration::from_secs(HOUR as u64),
        publish_ahead: Duration::from_secs(10 * 60),
        token_lifetime: Duration::from_secs(15 * 60),
        leeway: Duration::from_secs(60),
    }
}

async fn start_ring_with<S: Store>(
    store: &S,
    master: MasterKey,
    clock: &Arc<TestClock>,
) -> Result<(ScheduledKeyRing, Tick), KeyError> {
    ScheduledKeyRing::start(
        store,
        master,
        KeyKind::default(),
        clock.clone(),
        key_policy(),
    )
    .await
}

async fn start_ring<S: Store>(store: &S, clock: &Arc<TestClock>) -> (ScheduledKeyRing, Tick) {
    start_ring_with(store, master_key(), clock)
        .await
        .expect("start key ring")
}

fn published_kids(ring: &ScheduledKeyRing) -> Vec<String> {
    ring.published().keys.into_iter().map(|k| k.kid).collect()
}

fn states(ring: &ScheduledKeyRing) -> Vec<(String, KeyState)> {
    ring.timeline()
        .into_iter()
        .map(|l| (l.key.kid, l.state))
        .collect()
}

fn generated(kid: &str) -> Tick {
    Tick {
        generated: vec![kid.to_owned()],
        deleted: Vec::new(),
    }
}

async fn check_key_ring_generates_once<S: Store>(store: &S) {
    let clock = TestClock::at(KEY_T0);
    let (ring, tick) = start_ring(store, &clock).await;
    let kid = ring.signing_key().kid().to_owned();
    assert_eq!(tick, generated(&kid), "an empty store gets a key generated");

    let stored = KeyStore::list(store).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0].schedule,
        KeySchedule {
            kid: kid.clone(),
            generation: 1,
            created_at: UnixTime(KEY_T0),
            activates_at: UnixTime(KEY_T0),
            revoked_at: None,
        },
        "the first key is active at once"
    );
    assert_eq!(stored[0].public.kid, kid);
    assert_eq!(ring.published().keys, vec![stored[0].public.clone()]);
    assert_eq!(states(&ring), vec![(kid.clone(), KeyState::Active)]);

    clock.set(KEY_T0 + MINUTE);
    let (again, tick) = start_ring(store, &clock).await;
    assert_eq!(
        tick,
        Tick::default(),
        "a stored key is loaded, not regenerated"
    );
    assert_eq!(again.signing_key().kid(), kid);
    assert_eq!(again.published(), ring.published());
    assert_eq!(KeyStore::list(store).await.unwrap(), stored);

    // The reloaded key signs the same way (RS256 PKCS#1 v1.5 is deterministic).
    let a = ring.signing_key().sign(b"payload").unwrap();
    let b = again.signing_key().sign(b"payload").unwrap();
    assert_eq!(a, b);
}

async fn check_key_ring_verifies_its_signatures<S: Store>(store: &S) {
    let clock = TestClock::at(KEY_T0);
    let (ring, _) = start_ring(store, &clock).await;
    let key = ring.signing_key();
    let kid = key.kid().to_owned();
    assert_eq!(key.alg(), "RS256");
    assert!(ring.publishes(&kid));
    let message = b"header.payload";
    let signature = key.sign(message).unwrap();

    assert!(ring.verify(&kid, "RS256", message, &signature));
    // A ring reloaded from the store verifies the same signature.
    let (reloaded, tick) = start_ring(store, &clock).await;
    assert_eq!(tick, Tick::default());
    assert!(reloaded.verify(&kid, "RS256", message, &signature));

    assert!(!ring.verify("unknown-kid", "RS256", message, &signature));
    assert!(!ring.publishes("unknown-kid"));
    assert!(!ring.verify("", "RS256", message, &signature));
    for alg in ["HS256", "none", "rs256", "RS384", "PS256", ""] {
        assert!(
            !ring.verify(&kid, alg, message, &signature),
            "alg {alg:?} must not verify"
        );
    }
    assert!(!ring.verify(&kid, "RS256", b"header.payloaD", &signature));
    assert!(!ring.verify(&kid, "RS256", b"", &signature));
    let mut tampered = signature.clone();
    tampered[0] ^= 1;
    assert!(!ring.verify(&kid, "RS256", message, &tampered));
    let mut tampered = signature.clone();
    *tampered.last_mut().unwrap() ^= 0x80;
    assert!(!ring.verify(&kid, "RS256", message, &tampered));
    assert!(!ring.verify(&kid, "RS256", message, &signature[1..]));
    assert!(!ring.verify(&kid, "RS256", message, &[]));
}

async fn check_key_ring_rotates_on_schedule<S: Store>(store: &S) {
    let clock = TestClock::at(KEY_T0);
    let (ring, tick) = start_ring(store, &clock).await;
    let first = ring.signing_key().kid().to_owned();
    assert_eq!(tick, generated(&first));
    let message = b"header.payload";
    let old_signature = ring.signing_key().sign(message).unwrap();

    // Until publish_ahead before the rotation, ticks do nothing.
    for t in [KEY_T0, KEY_T0 + 1, KEY_T0 + 30 * MINUTE, PUBLISH_FROM - 1] {
        clock.set(t);
        assert_eq!(ring.tick(store).await.unwrap(), Tick::default(), "at {t}");
        assert_eq!(KeyStore::list(store).await.unwrap().len(), 1, "at {t}");
        assert_eq!(ring.signing_key().kid(), first);
    }

    // Then the successor is generated, published and scheduled for the rotation.
    clock.set(PUBLISH_FROM);
    let tick = ring.tick(store).await.unwrap();
    assert_eq!(tick.deleted, Vec::<String>::new());
    assert_eq!(tick.generated.len(), 1, "{tick:?}");
    let second = tick.generated[0].clone();
    assert_ne!(second, first);
    let stored = KeyStore::list(store).await.unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(
        stored[1].schedule,
        KeySchedule {
            kid: second.clone(),
            generation: 2,
            created_at: UnixTime(PUBLISH_FROM),
            activates_at: UnixTime(ROTATION),
            revoked_at: None,
        }
    );
    assert_eq!(published_kids(&ring), vec![first.clone(), second.clone()]);
    assert!(ring.publishes(&second));
    assert_eq!(
        ring.signing_key().kid(),
        first,
        "the next key does not sign yet"
    );
    assert_eq!(
        states(&ring),
        vec![
            (first.clone(), KeyState::Active),
            (second.clone(), KeyState::Next)
        ]
    );
    // Only once.
    clock.set(ROTATION - 1);
    assert_eq!(ring.tick(store).await.unwrap(), Tick::default());
    assert_eq!(ring.signing_key().kid(), first);

    // The rotation needs no tick: the active key follows the clock.
    clock.set(ROTATION);
    assert_eq!(ring.signing_key().kid(), second);
    assert_eq!(published_kids(&ring), vec![first.clone(), second.clone()]);
    assert!(
        ring.verify(&first, "RS256", message, &old_signature),
        "tokens of the retired key still verify"
    );
    let new_signature = ring.signing_key().sign(message).unwrap();
    assert!(ring.verify(&second, "RS256", message, &new_signature));
    assert!(!ring.verify(&first, "RS256", message, &new_signature));
    assert_eq!(
        states(&ring),
        vec![
            (first.clone(), KeyState::Retired),
            (second.clone(), KeyState::Active)
        ]
    );

    // The retired key stays until its last token has expired, plus the leeway.
    clock.set(FIRST_REMOVED - 1);
    assert_eq!(ring.tick(store).await.unwrap(), Tick::default());
    assert!(ring.verify(&first, "RS256", message, &old_signature));
    assert_eq!(KeyStore::list(store).await.unwrap().len(), 2);

    clock.set(FIRST_REMOVED);
    assert!(!ring.publishes(&first), "removed by time, before any tick");
    let tick = ring.tick(store).await.unwrap();
    assert_eq!(
        tick,
        Tick {
            generated: Vec::new(),
            deleted: vec![first.clone()],
        }
    );
    let stored = KeyStore::list(store).await.unwrap();
    assert_eq!(
        stored.iter().map(|k| &k.schedule.kid).collect::<Vec<_>>(),
        [&second]
    );
    assert!(!ring.verify(&first, "RS256", message, &old_signature));
    assert!(!ring.publishes(&first));
    assert_eq!(published_kids(&ring), vec![second.clone()]);
    assert_eq!(ring.signing_key().kid(), second);
    assert!(ring.verify(&second, "RS256", message, &new_signature));
}

async fn check_key_ring_two_nodes_rotate_once<S>(store: &S)
where
    S: Store + Clone + 'static,
{
    let clock = TestClock::at(KEY_T0);
    let (a, tick) = start_ring(store, &clock).await;
    let first = a.signing_key().kid().to_owned();
    assert_eq!(tick, generated(&first));
    let (b, tick) = start_ring(store, &clock).await;
    assert_eq!(
        tick,
        Tick::default(),
        "the second node loads the first node's key"
    );
    assert_eq!(b.signing_key().kid(), first);

    // Both nodes tick at the same due instant.
    clock.set(PUBLISH_FROM);
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let nodes = [Arc::new(a), Arc::new(b)];
    let tasks: Vec<_> = nodes
        .iter()
        .map(|ring| {
            let ring = ring.clone();
            let store = store.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                ring.tick(&store).await
            })
        })
        .collect();
    let mut ticks = Vec::new();
    for task in tasks {
        ticks.push(
            task.await
                .expect("task panicked")
                .expect("tick failed under concurrency"),
        );
    }

    let stored = KeyStore::list(store).await.unwrap();
    assert_eq!(stored.len(), 2, "exactly one new key: {stored:?}");
    let second = stored[1].schedule.kid.clone();
    assert_eq!(stored[1].schedule.generation, 2);
    assert_eq!(stored[1].schedule.activates_at, UnixTime(ROTATION));
    let generated: Vec<&String> = ticks.iter().flat_map(|t| &t.generated).collect();
    assert_eq!(
        generated,
        [&second],
        "exactly one node generated the stored key: {ticks:?}"
    );
    assert!(ticks.iter().all(|t| t.deleted.is_empty()));

    for ring in &nodes {
        ring.reload(store).await.unwrap();
        assert_eq!(published_kids(ring), vec![first.clone(), second.clone()]);
        assert_eq!(ring.signing_key().kid(), first);
    }
    clock.set(ROTATION);
    let message = b"header.payload";
    for ring in &nodes {
        assert_eq!(
            ring.signing_key().kid(),
            second,
            "both nodes sign with the same key"
        );
        // Each node verifies what the other signs.
        let signature = ring.signing_key().sign(message).unwrap();
        for other in &nodes {
            assert!(other.verify(&second, "RS256", message, &signature));
        }
    }
}

async fn check_key_ring_revocation<S: Store>(store: &S) {
    let clock = TestClock::at(KEY_T0);
    let (ring, _) = start_ring(store, &clock).await;
    let revoked = ring.signing_key().kid().to_owned();
    let message = b"header.payload";
    let signature = ring.signing_key().sign(message).unwrap();

    let now = KEY_T0 + 20 * MINUTE;
    clock.set(now);
    assert!(
        KeyStore::revoke(store, &revoked, UnixTime(now))
            .await
            .unwrap()
    );
    // Seen before a replacement exists (a reload without a tick): nothing signs with the
    // revoked key, signing fails closed.
    ring.reload(store).await.unwrap();
    assert!(!ring.publishes(&revoked));
    assert_ne!(ring.signing_key().kid(), revoked);
    assert!(ring.signing_key().sign(message).is_err());
    let tick = ring.tick(store).await.unwrap();
    assert_eq!(tick.deleted, Vec::<String>::new());
    assert_eq!(tick.generated.len(), 1, "{tick:?}");
    let fresh = tick.generated[0].clone();

    let stored = KeyStore::list(store).await.unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].schedule.revoked_at, Some(UnixTime(now)));
    assert_eq!(
        stored[1].schedule,
        KeySchedule {
            kid: fresh.clone(),
            generation: 2,
            created_at: UnixTime(now),
            activates_at: UnixTime(now),
            revoked_at: None,
        },
        "the replacement is active at once"
    );
    assert_eq!(ring.signing_key().kid(), fresh);
    assert_eq!(published_kids(&ring), vec![fresh.clone()]);
    assert!(!ring.publishes(&revoked));
    assert!(
        !ring.verify(&revoked, "RS256", message, &signature),
        "tokens of a revoked key stop verifying"
    );
    assert_eq!(
        states(&ring),
        vec![
            (revoked.clone(), KeyState::Revoked),
            (fresh.clone(), KeyState::Active)
        ]
    );
    let new_signature = ring.signing_key().sign(message).unwrap();
    assert!(ring.verify(&fresh, "RS256", message, &new_signature));

    // Another node starting now sees the same.
    let (other, tick) = start_ring(store, &clock).await;
    assert_eq!(tick, Tick::default());
    assert_eq!(other.signing_key().kid(), fresh);
    assert!(!other.publishes(&revoked));
    assert!(!other.verify(&revoked, "RS256", message, &signature));

    // The revoked row goes once its tokens would have expired anyway.
    clock.set(now + 16 * MINUTE - 1);
    assert_eq!(ring.tick(store).await.unwrap(), Tick::default());
    clock.set(now + 16 * MINUTE);
    assert_eq!(
        ring.tick(store).await.unwrap(),
        Tick {
            generated: Vec::new(),
            deleted: vec![revoked],
        }
    );
    assert_eq!(KeyStore::list(store).await.unwrap(), stored[1..].to_vec());
}

async fn check_key_ring_wrong_master_key_fails_closed<S: Store>(store: &S) {
    let clock = TestClock::at(KEY_T0);
    let (ring, _) = start_ring(store, &clock).await;
    let kid = ring.signing_key().kid().to_owned();
    // A rotation is due, so a ring that acted before opening the keys would insert one.
    clock.set(PUBLISH_FROM);
    let before = KeyStore::list(store).await.unwrap();

    let wrong = MasterKey::from_base64(&STANDARD.encode([8u8; 32])).unwrap();
    match start_ring_with(store, wrong, &clock).await {
        Err(KeyError::Unseal { kid: failed }) => assert_eq!(failed, kid),
        Err(other) => panic!("expected KeyError::Unseal, got {other:?}"),
        Ok(_) => panic!("a ring started under the wrong master key"),
    }
    assert_eq!(
        KeyStore::list(store).await.unwrap(),
        before,
        "a wrong master key must not add a key"
    );

    // The right master key still works, and takes the due step.
    let (_, tick) = start_ring(store, &clock).await;
    assert_eq!(tick.generated.len(), 1);
}

// ---------------------------------------------------------------------------------------
// Refresh-token families
// ---------------------------------------------------------------------------------------

async fn check_refresh_find_unknown<S: Store>(store: &S) {
    assert_eq!(find_token(store, &refresh_hash("unknown")).await, None);
}

async fn check_refresh_rotate<S: Store>(store: &S) {
    seed_owner(store, "client", "user").await;
    let grant = start_family(store, "a", "client", "user").await;
    let other = start_family(store, "b", "client", "user").await;
    let old = refresh_hash("a");

    let now = UnixTime(T0 + 100);
    let next = new_refresh("a2", now.0);
    assert!(
        RefreshStore::rotate(store, &old, &next, &access("jti-a2", now.0 + HOUR), now)
            .await
            .unwrap()
    );

    // The old token is rotated, pointing at its successor; its family is unchanged.
    let (token, family) = find_token(store, &old).await.unwrap();
    assert_eq!(
        token,
        RefreshToken {
            rotated_at: Some(now),
            successor: Some(next.token_hash),
            ..live_token(grant.refresh.as_ref().unwrap(), "fam-a")
        }
    );
    assert_eq!(family, grant.family);
    // The successor is live, in the same family, with the given times.
    let (token, family) = find_token(store, &next.token_hash).await.unwrap();
    assert_eq!(token, live_token(&next, "fam-a"));
    assert_eq!(family, grant.family);

    // The old token cannot be rotated again; the second attempt stores nothing.
    let again = new_refresh("a3", now.0 + 1);
    assert!(
        !RefreshStore::rotate(
            store,
            &old,
            &again,
            &access("jti-a3", now.0 + HOUR),
            UnixTime(now.0 + 1)
        )
        .await
        .unwrap()
    );
    assert_eq!(find_token(store, &again.token_hash).await, None);
    let (token, _) = find_token(store, &old).await.unwrap();
    assert_eq!(token.rotated_at, Some(now));
    assert_eq!(token.successor, Some(next.token_hash));
    assert_eq!(
        find_token(store, &next.token_hash).await.unwrap().0,
        live_token(&next, "fam-a")
    );

    // An unknown token is never rotated.
    let stray = new_refresh("stray", now.0);
    assert!(
        !RefreshStore::rotate(
            store,
            &refresh_hash("unknown"),
            &stray,
            &access("jti-stray", now.0 + HOUR),
            now
        )
        .await
        .unwrap()
    );
    assert_eq!(find_token(store, &stray.token_hash).await, None);

    // The successor rotates in turn; the other family is untouched throughout.
    let third = new_refresh("a4", now.0 + 10);
    assert!(
        RefreshStore::rotate(
            store,
            &next.token_hash,
            &third,
            &access("jti-a4", now.0 + HOUR),
            UnixTime(now.0 + 10)
        )
        .await
        .unwrap()
    );
    assert_eq!(
        find_token(store, &third.token_hash).await.unwrap().0,
        live_token(&third, "fam-a")
    );
    assert_grant_stored(store, &other).await;
}

async fn check_refresh_rotate_concurrent<S>(store: &S)
where
    S: Store + Clone + 'static,
{
    const TASKS: i64 = 16;
    seed_owner(store, "client", "user").await;
    let grant = start_family(store, "race", "client", "user").await;
    let old = refresh_hash("race");

    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(TASKS as usize));
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let store = store.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                let next = new_refresh(&format!("race-next-{i}"), T0 + 100);
                let jti = access(&format!("jti-race-{i}"), T0 + HOUR);
                barrier.wait().await;
                RefreshStore::rotate(&store, &old, &next, &jti, UnixTime(T0 + 100 + i))
                    .await
                    .map(|won| (won, next))
            })
        })
        .collect();

    let mut winners = Vec::new();
    let mut successors = Vec::new();
    for task in tasks {
        let (won, next) = task
            .await
            .expect("task panicked")
            .expect("rotate failed under concurrency");
        if won {
            winners.push(next.token_hash);
        }
        successors.push(next);
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one concurrent rotate must win, got {winners:?}"
    );

    let mut stored = Vec::new();
    for next in &successors {
        if let Some((token, family)) = find_token(store, &next.token_hash).await {
            assert_eq!(token, live_token(next, "fam-race"));
            assert_eq!(family, grant.family);
            stored.push(next.token_hash);
        }
    }
    assert_eq!(
        stored, winners,
        "exactly one successor is stored: the winner's"
    );
    let (token, _) = find_token(store, &old).await.unwrap();
    assert_eq!(token.successor, Some(winners[0]));
    assert!(token.rotated_at.is_some());
}

async fn check_refresh_rotate_refused_in_revoked_family<S: Store>(store: &S) {
    seed_owner(store, "client", "user").await;
    start_family(store, "a", "client", "user").await;
    let now = UnixTime(T0 + 100);
    let second = new_refresh("a2", now.0);
    assert!(
        RefreshStore::rotate(
            store,
            &refresh_hash("a"),
            &second,
            &access("jti-a2", T0 + HOUR),
            now
        )
        .await
        .unwrap()
    );
    assert!(
        RefreshStore::revoke_family(store, "fam-a", RevocationReason::ClientRequest, now)
            .await
            .unwrap()
    );

    // Neither the live token nor the rotated one rotates once the family is revoked.
    for (old, tag) in [(second.token_hash, "a3"), (refresh_hash("a"), "a4")] {
        let next = new_refresh(tag, now.0 + 1);
        assert!(
            !RefreshStore::rotate(
                store,
                &old,
                &next,
                &access(&format!("jti-{tag}"), T0 + HOUR),
                UnixTime(now.0 + 1)
            )
            .await
            .unwrap(),
            "rotate in a revoked family must fail"
        );
        assert_eq!(find_token(store, &next.token_hash).await, None);
        assert!(!is_revoked(store, &format!("jti-{tag}")).await);
    }
    let (token, family) = find_token(store, &second.token_hash).await.unwrap();
    assert_eq!(token, live_token(&second, "fam-a"));
    assert!(family.revoked.is_some());
}

async fn check_refresh_supersede<S: Store>(store: &S) {
    seed_owner(store, "client", "user").await;
    let grant = start_family(store, "a", "client", "user").await;
    let old = refresh_hash("a");
    let rotated = UnixTime(T0 + 100);
    let s1 = new_refresh("s1", rotated.0);
    assert!(
        RefreshStore::rotate(store, &old, &s1, &access("jti-s1", T0 + HOUR), rotated)
            .await
            .unwrap()
    );

    // A retry supersedes the unused successor s1 with s2.
    let now = UnixTime(T0 + 105);
    let s2 = new_refresh("s2", now.0);
    assert!(
        RefreshStore::supersede(
            store,
            &old,
            &s1.token_hash,
            &s2,
            &access("jti-s2", T0 + HOUR),
            now
        )
        .await
        .unwrap()
    );
    let (token, _) = find_token(store, &s1.token_hash).await.unwrap();
    assert_eq!(
        token.rotated_at,
        Some(now),
        "the superseded token is rotated"
    );
    let (token, _) = find_token(store, &old).await.unwrap();
    assert_eq!(token.successor, Some(s2.token_hash));
    assert_eq!(
        token.rotated_at,
        Some(rotated),
        "old keeps its rotation time"
    );
    let (token, family) = find_token(store, &s2.token_hash).await.unwrap();
    assert_eq!(token, live_token(&s2, "fam-a"));
    assert_eq!(family, grant.family);

    // s1 is stale now: superseding it again fails and stores nothing.
    let s3 = new_refresh("s3", now.0 + 1);
    assert!(
        !RefreshStore::supersede(
            store,
            &old,
            &s1.token_hash,
            &s3,
            &access("jti-s3", T0 + HOUR),
            UnixTime(now.0 + 1)
        )
        .await
        .unwrap()
    );
    assert_eq!(find_token(store, &s3.token_hash).await, None);
    assert_eq!(
        find_token(store, &old).await.unwrap().0.successor,
        Some(s2.token_hash)
    );
    assert_eq!(
        find_token(store, &s2.token_hash).await.unwrap().0,
        live_token(&s2, "fam-a")
    );
    // Naming the live successor s2 as stale works only through old, never through a
    // token that is not its predecessor.
    let s4 = new_refresh("s4", now.0 + 2);
    assert!(
        !RefreshStore::supersede(
            store,
            &s1.token_hash,
            &s2.token_hash,
            &s4,
            &access("jti-s4", T0 + HOUR),
            UnixTime(now.0 + 2)
        )
        .await
        .unwrap(),
        "stale must be the successor of old"
    );
    assert_eq!(find_token(store, &s4.token_hash).await, None);
    assert_eq!(
        find_token(store, &s2.token_hash).await.unwrap().0,
        live_token(&s2, "fam-a")
    );
}

async fn check_refresh_supersede_refused_after_successor_rotated<S: Store>(store: &S) {
    seed_owner(store, "client", "user").await;
    start_family(store, "a", "client", "user").await;
    let old = refresh_hash("a");
    let s1 = new_refresh("s1", T0 + 100);
    let t1 = new_refresh("t1", T0 + 110);
    assert!(
        RefreshStore::rotate(
            store,
            &old,
            &s1,
            &access("jti-s1", T0 + HOUR),
            UnixTime(T0 + 100)
        )
        .await
        .unwrap()
    );
    // The successor was used: it is no longer a stale candidate for a retry.
    assert!(
        RefreshStore::rotate(
            store,
            &s1.token_hash,
            &t1,
            &access("jti-t1", T0 + HOUR),
            UnixTime(T0 + 110)
        )
        .await
        .unwrap()
    );
    let s2 = new_refresh("s2", T0 + 120);
    assert!(
        !RefreshStore::supersede(
            store,
            &old,
            &s1.token_hash,
            &s2,
            &access("jti-s2", T0 + HOUR),
            UnixTime(T0 + 120)
        )
        .await
        .unwrap()
    );
    assert_eq!(find_token(store, &s2.token_hash).await, None);
    assert_eq!(
        find_token(store, &old).await.unwrap().0.successor,
        Some(s1.token_hash)
    );
    let (token, _) = find_token(store, &s1.token_hash).await.unwrap();
    assert_eq!(token.rotated_at, Some(UnixTime(T0 + 110)));
    assert_eq!(token.successor, Some(t1.token_hash));
    assert_eq!(
        find_token(store, &t1.token_hash).await.unwrap().0,
        live_token(&t1, "fam-a")
    );
}

async fn check_refresh_supersede_refused_in_revoked_family<S: Store>(store: &S) {
    seed_owner(store, "client", "user").await;
    start_family(store, "a", "client", "user").await;
    let old = refresh_hash("a");
    let s1 = new_refresh("s1", T0 + 100);
    assert!(
        RefreshStore::rotate(
            store,
            &old,
            &s1,
            &access("jti-s1", T0 + HOUR),
            UnixTime(T0 + 100)
        )
        .await
        .unwrap()
    );
    assert!(
        RefreshStore::revoke_family(
            store,
            "fam-a",
            RevocationReason::RefreshTokenReuse,
            UnixTime(T0 + 101)
        )
        .await
        .unwrap()
    );
    let s2 = new_refresh("s2", T0 + 102);
    assert!(
        !RefreshStore::supersede(
            store,
            &old,
            &s1.token_hash,
            &s2,
            &access("jti-s2", T0 + HOUR),
            UnixTime(T0 + 102)
        )
        .await
        .unwrap()
    );
    assert_eq!(find_token(store, &s2.token_hash).await, None);
    assert!(!is_revoked(store, "jti-s2").await);
    assert_eq!(
        find_token(store, &old).await.unwrap().0.successor,
        Some(s1.token_hash)
    );
    assert_eq!(
        find_token(store, &s1.token_hash).await.unwrap().0,
        live_token(&s1, "fam-a")
    );
}

async fn check_refresh_revoke_family<S: Store>(store: &S) {
    seed_owner(store, "client", "user").await;
    let grant = start_family(store, "a", "client", "user").await;
    let other = start_family(store, "b", "client", "user").await;
    let revoke_at = UnixTime(T0 + 1_000);

    // Access tokens recorded at redeem (jti-a) and at each rotation: one that expires
    // exactly at the revocation (already dead then), one after it.
    let a2 = new_refresh("a2", T0 + 100);
    let a3 = new_refresh("a3", T0 + 200);
    assert!(
        RefreshStore::rotate(
            store,
            &refresh_hash("a"),
            &a2,
            &access("jti-a2-dead", revoke_at.0),
            UnixTime(T0 + 100)
        )
        .await
        .unwrap()
    );
    assert!(
        RefreshStore::rotate(
            store,
            &a2.token_hash,
            &a3,
            &access("jti-a3", revoke_at.0 + 1),
            UnixTime(T0 + 200)
        )
        .await
        .unwrap()
    );
    for jti in ["jti-a", "jti-a2-dead", "jti-a3", "jti-b"] {
        assert!(!is_revoked(store, jti).await, "{jti} is not revoked yet");
    }
    // One of them is already on the list (RFC 7009); revoking the family still works.
    RevocationList::revoke_access_token(
        store,
        "jti-a3",
        UnixTime(revoke_at.0 + 1),
        Revocation {
            at: UnixTime(T0 + 300),
            reason: RevocationReason::ClientRequest,
        },
    )
    .await
    .unwrap();

    assert!(
        RefreshStore::revoke_family(
            store,
            "fam-a",
            RevocationReason::RefreshTokenReuse,
            revoke_at
        )
        .await
        .unwrap()
    );
    // A second revocation does nothing and keeps the first one's time and reason.
    assert!(
        !RefreshStore::revoke_family(
            store,
            "fam-a",
            RevocationReason::ClientRequest,
            UnixTime(revoke_at.0 + 5)
        )
        .await
        .unwrap()
    );
    assert!(
        !RefreshStore::revoke_family(
            store,
            "fam-unknown",
            RevocationReason::ClientRequest,
            revoke_at
        )
        .await
        .unwrap()
    );

    let revocation = Revocation {
        at: revoke_at,
        reason: RevocationReason::RefreshTokenReuse,
    };
    // Every token of the family stays findable (so reuse is recognised), showing the
    // revocation.
    for hash in [refresh_hash("a"), a2.token_hash, a3.token_hash] {
        let (_, family) = find_token(store, &hash).await.unwrap();
        assert_eq!(
            family,
            Family {
                revoked: Some(revocation),
                ..grant.family.clone()
            }
        );
    }
    assert!(is_revoked(store, "jti-a").await);
    assert!(is_revoked(store, "jti-a3").await);
    assert!(
        !is_revoked(store, "jti-a2-dead").await,
        "an access token expired at the revocation is not listed"
    );
    // The other family is untouched.
    assert!(!is_revoked(store, "jti-b").await);
    assert_grant_stored(store, &other).await;
}

async fn check_refresh_revoke_user_families<S: Store>(store: &S) {
    seed_owner(store, "client", "u1").await;
    UserStore::create(store, &user("u2", "name-of-u2"))
        .await
        .unwrap();
    let now = UnixTime(T0 + 1_000);
    start_family(store, "f1", "client", "u1").await;
    start_family(store, "f2", "client", "u1").await;
    let f3 = start_family(store, "f3", "client", "u1").await;
    let g1 = start_family(store, "g1", "client", "u2").await;
    // f1 also issued an access token that expires exactly at `now`: dead, not listed.
    let f1b = new_refresh("f1b", T0 + 10);
    assert!(
        RefreshStore::rotate(
            store,
            &refresh_hash("f1"),
            &f1b,
            &access("jti-f1-dead", now.0),
            UnixTime(T0 + 10)
        )
        .await
        .unwrap()
    );
    // f3 was revoked earlier, for another reason.
    let earlier = Revocation {
        at: UnixTime(T0 + 500),
        reason: RevocationReason::CodeReplay,
    };
    assert!(
        RefreshStore::revoke_family(store, "fam-f3", earlier.reason, earlier.at)
            .await
            .unwrap()
    );

    assert_eq!(
        RefreshStore::revoke_user_families(store, "u1", RevocationReason::UserSignOut, now)
            .await
            .unwrap(),
        2,
        "the two unrevoked families of u1"
    );

    let signed_out = Revocation {
        at: now,
        reason: RevocationReason::UserSignOut,
    };
    for hash in [refresh_hash("f1"), f1b.token_hash, refresh_hash("f2")] {
        let (_, family) = find_token(store, &hash).await.unwrap();
        assert_eq!(family.revoked, Some(signed_out));
    }
    let (_, family) = find_token(store, &refresh_hash("f3")).await.unwrap();
    assert_eq!(
        family,
        Family {
            revoked: Some(earlier),
            ..f3.family.clone()
        },
        "an already revoked family keeps its first revocation"
    );
    assert!(is_revoked(store, "jti-f1").await);
    assert!(is_revoked(store, "jti-f2").await);
    assert!(is_revoked(store, "jti-f3").await);
    assert!(!is_revoked(store, "jti-f1-dead").await);
    // Other users' families are untouched.
    assert!(!is_revoked(store, "jti-g1").await);
    assert_grant_stored(store, &g1).await;

    // The families are revoked for good: nothing rotates, nothing is left to revoke.
    let late = new_refresh("f1c", now.0 + 1);
    assert!(
        !RefreshStore::rotate(
            store,
            &f1b.token_hash,
            &late,
            &access("jti-f1c", now.0 + HOUR),
            UnixTime(now.0 + 1)
        )
        .await
        .unwrap()
    );
    assert_eq!(
        RefreshStore::revoke_user_families(store, "u1", RevocationReason::UserSignOut, now)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        RefreshStore::revoke_user_families(store, "nobody", RevocationReason::UserSignOut, now)
            .await
            .unwrap(),
        0
    );
    assert_grant_stored(store, &g1).await;
}

// ---------------------------------------------------------------------------------------
// Access-token revocation list
// ---------------------------------------------------------------------------------------

async fn check_revocation_list<S: Store>(store: &S) {
    assert!(!is_revoked(store, "jti-x").await);
    let first = Revocation {
        at: UnixTime(T0),
        reason: RevocationReason::ClientRequest,
    };
    RevocationList::revoke_access_token(store, "jti-x", UnixTime(T0 + HOUR), first)
        .await
        .unwrap();
    assert!(is_revoked(store, "jti-x").await);
    // Revoking again is fine and changes nothing visible.
    let second = Revocation {
        at: UnixTime(T0 + 10),
        reason: RevocationReason::UserSignOut,
    };
    RevocationList::revoke_access_token(store, "jti-x", UnixTime(T0 + 2 * HOUR), second)
        .await
        .unwrap();
    assert!(is_revoked(store, "jti-x").await);
    // Jtis are matched exactly.
    assert!(!is_revoked(store, "jti-y").await);
    assert!(!is_revoked(store, "JTI-X").await);
    assert!(!is_revoked(store, "jti-").await);
    assert!(!is_revoked(store, "").await);
}

// ---------------------------------------------------------------------------------------
// Revocation log (the ordered list caches and gateways follow)
// ---------------------------------------------------------------------------------------

async fn revoked_since<S: Store>(store: &S, after: i64, limit: u32) -> Vec<RevokedEntry> {
    RevocationList::revoked_since(store, after, limit)
        .await
        .unwrap()
}

async fn latest_seq<S: Store>(store: &S) -> i64 {
    RevocationList::latest_seq(store).await.unwrap()
}

/// Lists `jti` directly (RFC 7009) until `expires_at`, revoked at `at`.
async fn revoke_jti<S: Store>(store: &S, jti: &str, expires_at: i64, at: i64) {
    RevocationList::revoke_access_token(
        store,
        jti,
        UnixTime(expires_at),
        Revocation {
            at: UnixTime(at),
            reason: RevocationReason::ClientRequest,
        },
    )
    .await
    .unwrap();
}

fn jtis(entries: &[RevokedEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.jti.as_str()).collect()
}

fn assert_seqs_increasing(entries: &[RevokedEntry]) {
    assert!(
        entries.iter().all(|e| e.seq > 0),
        "seq starts above 0 (the empty list's latest_seq): {entries:?}"
    );
    assert!(
        entries.windows(2).all(|w| w[0].seq < w[1].seq),
        "seq strictly increases: {entries:?}"
    );
}

async fn check_revocation_log<S: Store>(store: &S) {
    assert_eq!(latest_seq(store).await, 0, "latest_seq of an empty list");
    assert!(revoked_since(store, 0, 10).await.is_empty());

    seed_owner(store, "client", "u1").await;
    UserStore::create(store, &user("u2", "name-of-u2"))
        .await
        .unwrap();
    // The first access tokens live long, the two issued by rotation below expire first, so
    // the janitor can drop the newest entries while older ones stay.
    let long = T0 + 5 * DAY;
    let short = T0 + 2 * HOUR;
    for (tag, user_id) in [
        ("f1", "u1"),
        ("f2", "u1"),
        ("f3", "u1"),
        ("g1", "u2"),
        ("g2", "u2"),
    ] {
        start_family_with(
            store,
            tag,
            user_id,
            T0 + HOUR,
            Some(new_refresh(tag, T0)),
            access(&format!("jti-{tag}"), long),
        )
        .await;
    }
    rotate_ok(store, "f2", &new_refresh("f2b", T0 + 10), "jti-f2b", short).await;
    rotate_ok(store, "f3", &new_refresh("f3b", T0 + 10), "jti-f3b", short).await;
    assert_eq!(latest_seq(store).await, 0, "issuing tokens lists nothing");

    // The three revoking paths, interleaved.
    revoke_jti(store, "jti-x1", long, T0 + 100).await;
    assert!(
        RefreshStore::revoke_family(
            store,
            "fam-f1",
            RevocationReason::RefreshTokenReuse,
            UnixTime(T0 + 110)
        )
        .await
        .unwrap()
    );
    revoke_jti(store, "jti-f2", long, T0 + 120).await;
    revoke_jti(store, "jti-f3", long, T0 + 130).await;
    revoke_jti(store, "jti-x2", long, T0 + 140).await;
    assert_eq!(
        RefreshStore::revoke_user_families(
            store,
            "u2",
            RevocationReason::UserSignOut,
            UnixTime(T0 + 150)
        )
        .await
        .unwrap(),
        2
    );
    let before = revoked_since(store, 0, 100).await;
    assert_eq!(before.len(), 7, "{before:?}");
    assert_eq!(
        jtis(&before[..5]),
        ["jti-x1", "jti-f1", "jti-f2", "jti-f3", "jti-x2"]
    );
    // One revoke_user_families call lists its jtis in no particular order among themselves.
    let mut signed_out = jtis(&before[5..]);
    signed_out.sort_unstable();
    assert_eq!(signed_out, ["jti-g1", "jti-g2"]);
    assert_seqs_increasing(&before);
    assert!(before.iter().all(|e| e.expires_at == UnixTime(long)));
    assert_eq!(latest_seq(store).await, before[6].seq);

    // Re-revoking listed jtis, by any path, adds nothing and moves nothing.
    revoke_jti(store, "jti-x1", long + DAY, T0 + 200).await;
    revoke_jti(store, "jti-f1", long + DAY, T0 + 200).await;
    revoke_jti(store, "jti-g2", long + DAY, T0 + 200).await;
    assert!(
        !RefreshStore::revoke_family(
            store,
            "fam-g1",
            RevocationReason::ClientRequest,
            UnixTime(T0 + 210)
        )
        .await
        .unwrap()
    );
    assert_eq!(
        RefreshStore::revoke_user_families(
            store,
            "u2",
            RevocationReason::UserSignOut,
            UnixTime(T0 + 220)
        )
        .await
        .unwrap(),
        0
    );
    assert_eq!(revoked_since(store, 0, 100).await, before);
    assert_eq!(
        latest_seq(store).await,
        before[6].seq,
        "an ignored re-revocation uses up no seq"
    );

    // A family revocation (and a user sign-out) whose first access token is already listed
    // adds only the tokens not yet on the list.
    assert!(
        RefreshStore::revoke_family(
            store,
            "fam-f2",
            RevocationReason::ClientRequest,
            UnixTime(T0 + 300)
        )
        .await
        .unwrap()
    );
    assert_eq!(
        RefreshStore::revoke_user_families(
            store,
            "u1",
            RevocationReason::UserSignOut,
            UnixTime(T0 + 400)
        )
        .await
        .unwrap(),
        1,
        "only fam-f3 was still unrevoked"
    );
    let all = revoked_since(store, 0, 100).await;
    assert_eq!(all.len(), 9, "{all:?}");
    assert_eq!(all[..7], before[..], "earlier entries keep their positions");
    assert_eq!(jtis(&all[7..]), ["jti-f2b", "jti-f3b"]);
    assert!(all[7..].iter().all(|e| e.expires_at == UnixTime(short)));
    assert_seqs_increasing(&all);
    let high = all[8].seq;
    assert_eq!(latest_seq(store).await, high);

    // Paging: every page size walks the whole list exactly once, then comes back empty.
    for limit in 1..=10u32 {
        let mut cursor = 0;
        let mut walked = Vec::new();
        loop {
            let page = revoked_since(store, cursor, limit).await;
            let start = walked.len();
            let end = all.len().min(start + limit as usize);
            assert_eq!(page, all[start..end], "page after {cursor}, limit {limit}");
            let Some(last) = page.last() else { break };
            cursor = last.seq;
            walked.extend(page);
        }
        assert_eq!(walked, all);
    }
    // Any cursor resumes right after its entry.
    for (i, entry) in all.iter().enumerate() {
        assert_eq!(
            revoked_since(store, entry.seq, 2).await,
            all[i + 1..all.len().min(i + 3)],
            "after {}",
            entry.seq
        );
    }
    assert!(revoked_since(store, 0, 0).await.is_empty(), "limit 0");
    assert!(revoked_since(store, high, 10).await.is_empty());
    assert!(revoked_since(store, high + 1_000, 10).await.is_empty());

    // The janitor drops the two newest entries (expired at `short`); the high-water mark
    // stays, or a follower whose cursor is at `high` would miss the next entries.
    assert_eq!(
        purge(store, short, 100).await.revocations,
        2,
        "the entries of jti-f2b and jti-f3b"
    );
    assert_eq!(revoked_since(store, 0, 100).await, all[..7]);
    assert_eq!(latest_seq(store).await, high, "latest_seq never goes back");
    // Then all of them.
    assert_eq!(purge(store, long, 100).await.revocations, 7);
    assert!(revoked_since(store, 0, 100).await.is_empty());
    assert_eq!(latest_seq(store).await, high, "latest_seq never goes back");

    // The next revocation is positioned after everything handed out before.
    revoke_jti(store, "jti-next", long + DAY, long + 1).await;
    let next = revoked_since(store, high, 10).await;
    assert_eq!(jtis(&next), ["jti-next"]);
    assert!(next[0].seq > high, "{} > {high}", next[0].seq);
    assert_eq!(revoked_since(store, 0, 10).await, next);
    assert_eq!(latest_seq(store).await, next[0].seq);
}

// ---------------------------------------------------------------------------------------
// Janitor
// ---------------------------------------------------------------------------------------

async fn purge<S: Store>(store: &S, now: i64, batch: u32) -> Purged {
    Janitor::purge_expired(store, UnixTime(now), batch)
        .await
        .unwrap()
}

/// Issues code `tsc_{tag}` of `client` to `user_id`, expiring at `code_expires_at`, and
/// redeems it at `T0` into family `fam-{tag}` with the given first tokens; the client and
/// user must exist.
async fn start_family_with<S: Store>(
    store: &S,
    tag: &str,
    user_id: &str,
    code_expires_at: i64,
    refresh: Option<NewRefreshToken>,
    access: IssuedAccessToken,
) -> NewGrant {
    let record = CodeRecord {
        expires_at: UnixTime(code_expires_at),
        ..code(&format!("tsc_{tag}"), "client", user_id, None)
    };
    CodeStore::insert(store, &record).await.unwrap();
    let grant = NewGrant {
        family: family(&format!("fam-{tag}"), "client", user_id),
        refresh,
        access,
    };
    assert!(
        CodeStore::redeem(store, &record.code_hash, UnixTime(T0), &grant)
            .await
            .unwrap(),
        "redeem of a fresh code"
    );
    grant
}

/// Rotates `tsr_{old}` into `new` at `new.issued_at`, recording access token `jti`.
async fn rotate_ok<S: Store>(
    store: &S,
    old: &str,
    new: &NewRefreshToken,
    jti: &str,
    jti_expires_at: i64,
) {
    assert!(
        RefreshStore::rotate(
            store,
            &refresh_hash(old),
            new,
            &access(jti, jti_expires_at),
            new.issued_at
        )
        .await
        .unwrap(),
        "rotation of tsr_{old}"
    );
}

/// The refresh token `tsr_{tag}`, issued at `issued_at`, expiring at `expires_at`.
fn refresh_until(tag: &str, issued_at: i64, expires_at: i64) -> NewRefreshToken {
    NewRefreshToken {
        token_hash: refresh_hash(tag),
        issued_at: UnixTime(issued_at),
        expires_at: UnixTime(expires_at),
    }
}

fn session(tag: &str, user_id: &str, expires_at: i64) -> Session {
    Session {
        id_hash: SecretHash::of(&format!("tsx_{tag}")),
        user_id: user_id.to_owned(),
        auth_time: UnixTime(T0),
        expires_at: UnixTime(expires_at),
    }
}

fn standalone_code(tag: &str, expires_at: i64) -> CodeRecord {
    CodeRecord {
        expires_at: UnixTime(expires_at),
        ..code(&format!("tsc_{tag}"), "client", "user", None)
    }
}

/// When the janitor runs in the janitor checks.
const NOW: i64 = T0 + 10 * DAY;

/// Families of `seed_janitor_mix` that the janitor keeps (fam-c, fam-d and fam-f go).
const LIVE_FAMILIES: [&str; 4] = ["fam-a", "fam-b", "fam-e", "fam-g"];
/// Access token records of `seed_janitor_mix` that outlive `NOW`.
const LIVE_ACCESS_RECORDS: [&str; 3] = ["jti-b1", "jti-e", "jti-g"];

/// Live and dead records of every kind at `NOW`; `expires_at == NOW` counts as dead.
async fn seed_janitor_mix<S: Store>(store: &S) {
    seed_owner(store, "client", "user").await;
    let live_code = NOW + 60;

    // (a) Live: its unrotated token lives. Its rotated first token and both access tokens
    //     have expired (one exactly at NOW).
    start_family_with(
        store,
        "a",
        "user",
        live_code,
        Some(refresh_until("a1", T0, NOW - DAY)),
        access("jti-a1", T0 + HOUR),
    )
    .await;
    rotate_ok(
        store,
        "a1",
        &refresh_until("a2", T0 + 10, NOW + DAY),
        "jti-a2",
        NOW,
    )
    .await;

    // (b) Revoked, but one access token it issued still lives: kept (so it can still be
    //     answered), minus its expired unrotated token and access token record. Its code
    //     (used) expires exactly at NOW.
    start_family_with(
        store,
        "b",
        "user",
        NOW,
        Some(refresh_until("b1", T0, NOW + DAY)),
        access("jti-b1", NOW + 1),
    )
    .await;
    rotate_ok(
        store,
        "b1",
        &refresh_until("b2", T0 + 10, NOW),
        "jti-b2",
        NOW - 1,
    )
    .await;
    assert!(
        RefreshStore::revoke_family(
            store,
            "fam-b",
            RevocationReason::CodeReplay,
            UnixTime(T0 + 20)
        )
        .await
        .unwrap()
    );

    // (c) Revoked, every access token expired: removed, with its unexpired refresh tokens.
    //     Its code (used) has expired.
    start_family_with(
        store,
        "c",
        "user",
        NOW - 1,
        Some(refresh_until("c1", T0, NOW + DAY)),
        access("jti-c1", NOW - HOUR),
    )
    .await;
    rotate_ok(
        store,
        "c1",
        &refresh_until("c2", T0 + 10, NOW + 2 * DAY),
        "jti-c2",
        NOW,
    )
    .await;
    assert!(
        RefreshStore::revoke_family(
            store,
            "fam-c",
            RevocationReason::RefreshTokenReuse,
            UnixTime(T0 + 20)
        )
        .await
        .unwrap()
    );

    // (d) Not revoked, but its only unrotated token has expired (its rotated one has not)
    //     and so have its access tokens: removed.
    start_family_with(
        store,
        "d",
        "user",
        live_code,
        Some(refresh_until("d1", T0, NOW + DAY)),
        access("jti-d1", NOW - 1),
    )
    .await;
    rotate_ok(
        store,
        "d1",
        &refresh_until("d2", T0 + 10, NOW - 1),
        "jti-d2",
        NOW,
    )
    .await;

    // (e) No refresh token at all, but a live access token: kept.
    start_family_with(
        store,
        "e",
        "user",
        live_code,
        None,
        access("jti-e", NOW + 1),
    )
    .await;

    // (f) No refresh token, access token expired exactly at NOW: removed.
    start_family_with(store, "f", "user", live_code, None, access("jti-f", NOW)).await;

    // (g) Not revoked, its refresh token expired exactly at NOW, but its access token lives:
    //     kept, minus the refresh token.
    start_family_with(
        store,
        "g",
        "user",
        live_code,
        Some(refresh_until("g1", T0, NOW)),
        access("jti-g", NOW + HOUR),
    )
    .await;

    // Unused codes.
    for (tag, expires_at) in [
        ("unused-live", live_code),
        ("unused-dead", NOW - 1),
        ("unused-edge", NOW),
    ] {
        CodeStore::insert(store, &standalone_code(tag, expires_at))
            .await
            .unwrap();
    }
    // Entries listed directly (fam-b and fam-c listed jti-b1, jti-b2, jti-c1 and jti-c2).
    for (jti, expires_at) in [
        ("jti-x-live", NOW + 1),
        ("jti-x-dead", NOW - 1),
        ("jti-x-edge", NOW),
    ] {
        revoke_jti(store, jti, expires_at, T0 + 30).await;
    }
    for (tag, expires_at) in [("s-live", NOW + 1), ("s-dead", NOW - 1), ("s-edge", NOW)] {
        SessionStore::create(store, &session(tag, "user", expires_at))
            .await
            .unwrap();
    }
}

async fn check_janitor_purges_only_dead<S: Store>(store: &S) {
    seed_janitor_mix(store).await;
    let listed_before = revoked_since(store, 0, 100).await;
    let mut listed_jtis = jtis(&listed_before);
    listed_jtis.sort_unstable();
    assert_eq!(
        listed_jtis,
        [
            "jti-b1",
            "jti-b2",
            "jti-c1",
            "jti-c2",
            "jti-x-dead",
            "jti-x-edge",
            "jti-x-live"
        ]
    );
    let codes_before: Vec<(&str, Option<CodeRecord>)> = {
        let mut found = Vec::new();
        for tag in [
            "a",
            "b",
            "c",
            "d",
            "e",
            "f",
            "g",
            "unused-live",
            "unused-dead",
            "unused-edge",
        ] {
            let hash = SecretHash::of(&format!("tsc_{tag}"));
            found.push((tag, CodeStore::find(store, &hash).await.unwrap()));
        }
        found
    };
    let a2_before = find_token(store, &refresh_hash("a2")).await.unwrap();
    let b1_before = find_token(store, &refresh_hash("b1")).await.unwrap();

    assert_eq!(
        purge(store, NOW, 100).await,
        Purged {
            // tsc_b and tsc_c (used), tsc_unused-dead and tsc_unused-edge.
            codes: 4,
            // tsr_a1 (rotated), tsr_b2, tsr_d2 and tsr_g1; the unexpired tokens of the dead
            // families (tsr_c1, tsr_c2, tsr_d1) go with them, uncounted.
            refresh_tokens: 4,
            families: 3,
            // Every expired record, of live and dead families alike: jti-a1, jti-a2,
            // jti-b2, jti-c1, jti-c2, jti-d1, jti-d2 and jti-f.
            access_token_records: 8,
            // jti-b2, jti-c1, jti-c2, jti-x-dead and jti-x-edge.
            revocations: 5,
            sessions: 2,
        }
    );
    // Nothing dead is left for a second pass.
    assert_eq!(purge(store, NOW, 100).await, Purged::default());

    // Codes: the expired ones are gone, used or not; the others are unchanged.
    for (tag, before) in codes_before {
        let after = CodeStore::find(store, &SecretHash::of(&format!("tsc_{tag}")))
            .await
            .unwrap();
        let dead = matches!(tag, "b" | "c" | "unused-dead" | "unused-edge");
        assert!(before.is_some(), "tsc_{tag} was stored");
        if dead {
            assert_eq!(after, None, "tsc_{tag} is purged");
        } else {
            assert_eq!(after, before, "tsc_{tag} is kept unchanged");
        }
    }

    // Refresh tokens: expired ones and those of dead families are gone.
    for tag in ["a1", "b2", "c1", "c2", "d1", "d2", "g1"] {
        assert_eq!(
            find_token(store, &refresh_hash(tag)).await,
            None,
            "tsr_{tag} is purged"
        );
    }
    assert_eq!(
        find_token(store, &refresh_hash("a2")).await,
        Some(a2_before),
        "tsr_a2 and fam-a are kept unchanged"
    );
    assert_eq!(
        find_token(store, &refresh_hash("b1")).await,
        Some(b1_before),
        "tsr_b1 and fam-b are kept unchanged"
    );

    // Revocation list: the expired entries are gone, the others keep their positions.
    let kept: Vec<RevokedEntry> = listed_before
        .iter()
        .filter(|e| e.expires_at.0 > NOW)
        .cloned()
        .collect();
    assert_eq!(jtis(&kept), ["jti-b1", "jti-x-live"]);
    assert_eq!(revoked_since(store, 0, 100).await, kept);
    for jti in ["jti-b2", "jti-c1", "jti-c2", "jti-x-dead", "jti-x-edge"] {
        assert!(!is_revoked(store, jti).await, "{jti} is no longer listed");
    }

    // Sessions.
    assert_eq!(
        SessionStore::find(store, &session("s-live", "user", 0).id_hash)
            .await
            .unwrap(),
        Some(session("s-live", "user", NOW + 1))
    );
    for tag in ["s-dead", "s-edge"] {
        assert_eq!(
            SessionStore::find(store, &session(tag, "user", 0).id_hash)
                .await
                .unwrap(),
            None,
            "session {tag} is purged"
        );
    }

    // Families without a findable refresh token: the live ones still exist and still hold
    // their live access token records (revoking lists them); the dead ones are unknown.
    for id in ["fam-e", "fam-g"] {
        assert!(
            RefreshStore::revoke_family(store, id, RevocationReason::ClientRequest, UnixTime(NOW))
                .await
                .unwrap(),
            "{id} is kept"
        );
    }
    assert!(is_revoked(store, "jti-e").await);
    assert!(is_revoked(store, "jti-g").await);
    for id in ["fam-d", "fam-f"] {
        assert!(
            !RefreshStore::revoke_family(store, id, RevocationReason::ClientRequest, UnixTime(NOW))
                .await
                .unwrap(),
            "{id} is purged"
        );
    }
    assert!(!is_revoked(store, "jti-d1").await);
    assert!(!is_revoked(store, "jti-f").await);
}

async fn check_janitor_batches<S: Store>(store: &S) {
    seed_owner(store, "client", "user").await;
    for i in 0..5 {
        SessionStore::create(store, &session(&format!("dead-{i}"), "user", NOW - i))
            .await
            .unwrap();
        CodeStore::insert(store, &standalone_code(&format!("dead-{i}"), NOW - i))
            .await
            .unwrap();
        revoke_jti(store, &format!("jti-dead-{i}"), NOW - i, T0).await;
    }
    // Four expired refresh tokens: a multiple of the batch size.
    for tag in ["r1", "r2", "r3", "r4"] {
        start_family_with(
            store,
            tag,
            "user",
            NOW + 1,
            Some(refresh_until(tag, T0, NOW - 1)),
            access(&format!("jti-{tag}"), NOW + 1),
        )
        .await;
    }
    SessionStore::create(store, &session("live", "user", NOW + 1))
        .await
        .unwrap();
    CodeStore::insert(store, &standalone_code("live", NOW + 1))
        .await
        .unwrap();
    revoke_jti(store, "jti-live", NOW + 1, T0).await;

    assert_eq!(
        purge(store, NOW, 2).await,
        Purged {
            codes: 5,
            refresh_tokens: 4,
            revocations: 5,
            sessions: 5,
            ..Purged::default()
        },
        "one pass removes everything dead, batch after batch"
    );
    assert_eq!(purge(store, NOW, 2).await, Purged::default());
    assert_eq!(purge(store, NOW, 1).await, Purged::default());

    assert_eq!(
        SessionStore::find(store, &session("live", "user", 0).id_hash)
            .await
            .unwrap(),
        Some(session("live", "user", NOW + 1))
    );
    assert_eq!(
        CodeStore::find(store, &standalone_code("live", 0).code_hash)
            .await
            .unwrap(),
        Some(standalone_code("live", NOW + 1))
    );
    assert_eq!(jtis(&revoked_since(store, 0, 100).await), ["jti-live"]);
    for i in 0..5 {
        assert_eq!(
            SessionStore::find(store, &session(&format!("dead-{i}"), "user", 0).id_hash)
                .await
                .unwrap(),
            None
        );
    }

    // Batch size 1 works the same way.
    for i in 0..3 {
        SessionStore::create(store, &session(&format!("late-{i}"), "user", NOW))
            .await
            .unwrap();
    }
    assert_eq!(
        purge(store, NOW, 1).await,
        Purged {
            sessions: 3,
            ..Purged::default()
        }
    );
}

// ---------------------------------------------------------------------------------------
// Persistence across reopen
// ---------------------------------------------------------------------------------------

async fn seed_everything<S: Store>(store: &S) {
    seed_owner(store, "client", "user").await;
    ClientStore::create(store, &confidential_client("conf"))
        .await
        .unwrap();
    CodeStore::insert(store, &code("tsc_persist", "client", "user", Some("r")))
        .await
        .unwrap();
    assert!(
        CodeStore::redeem(
            store,
            &SecretHash::of("tsc_persist"),
            UnixTime(1_700_000_505),
            &grant("persist", "client", "user")
        )
        .await
        .unwrap()
    );
    let next = new_refresh("persist-2", T0 + 100);
    assert!(
        RefreshStore::rotate(
            store,
            &refresh_hash("persist"),
            &next,
            &access("jti-persist-2", T0 + HOUR),
            UnixTime(T0 + 100)
        )
        .await
        .unwrap()
    );
    RevocationList::revoke_access_token(
        store,
        "jti-persist-listed",
        UnixTime(T0 + HOUR),
        Revocation {
            at: UnixTime(T0),
            reason: RevocationReason::ClientRequest,
        },
    )
    .await
    .unwrap();
    SessionStore::create(store, &persisted_session())
        .await
        .unwrap();
    ConsentStore::save_consent(store, &consent("user", "client", &["read", "write"], T0))
        .await
        .unwrap();
    KeyStore::insert(store, &stored_key("kid-1", 1))
        .await
        .unwrap();
}

fn persisted_session() -> Session {
    Session {
        id_hash: SecretHash::of("tsx_persist"),
        user_id: "user".into(),
        auth_time: UnixTime(5),
        expires_at: UnixTime(6),
    }
}

async fn check_everything_present<S: Store>(store: &S) {
    assert_eq!(
        ClientStore::list(store).await.unwrap(),
        vec![public_client("client"), confidential_client("conf")]
    );
    assert_eq!(
        UserStore::list(store).await.unwrap(),
        vec![user("user", "name-of-user")]
    );
    let expected_code = CodeRecord {
        used_at: Some(UnixTime(1_700_000_505)),
        family_id: Some("fam-persist".into()),
        ..code("tsc_persist", "client", "user", Some("r"))
    };
    assert_eq!(
        CodeStore::find(store, &expected_code.code_hash)
            .await
            .unwrap(),
        Some(expected_code.clone())
    );
    // Single use survives a restart.
    let replay = grant("replay", "client", "user");
    assert!(
        !CodeStore::redeem(
            store,
            &expected_code.code_hash,
            UnixTime(1_700_000_506),
            &replay
        )
        .await
        .unwrap()
    );
    assert_grant_absent(store, &replay).await;
    // So do the family, its rotation and the revocation list.
    let persisted = grant("persist", "client", "user");
    let (token, family) = find_token(store, &refresh_hash("persist")).await.unwrap();
    assert_eq!(family, persisted.family);
    assert_eq!(token.rotated_at, Some(UnixTime(T0 + 100)));
    assert_eq!(token.successor, Some(refresh_hash("persist-2")));
    assert_eq!(
        find_token(store, &refresh_hash("persist-2"))
            .await
            .unwrap()
            .0,
        live_token(&new_refresh("persist-2", T0 + 100), "fam-persist")
    );
    assert!(is_revoked(store, "jti-persist-listed").await);
    assert!(!is_revoked(store, "jti-persist").await);
    assert_eq!(
        SessionStore::find(store, &persisted_session().id_hash)
            .await
            .unwrap(),
        Some(persisted_session())
    );
    assert_eq!(
        find_consent(store, "user", "client").await,
        Some(consent("user", "client", &["read", "write"], T0))
    );
    assert_eq!(
        KeyStore::list(store).await.unwrap(),
        vec![stored_key("kid-1", 1)]
    );
    // Uniqueness constraints survive too.
    assert_conflict(
        ClientStore::create(store, &public_client("client")).await,
        "create of a client persisted before reopen",
    );
}

// ---------------------------------------------------------------------------------------
// Races between revocation and everything else
// ---------------------------------------------------------------------------------------

/// Writers revoke (directly and by family) while a follower reads the list with a cursor,
/// as caches and gateways do: the follower must see every entry exactly once. An adapter
/// whose entries can commit out of `seq` order fails this: the follower moves its cursor
/// past an entry that is still uncommitted and never sees it.
async fn check_revocation_follower_sees_every_entry<S>(store: &S)
where
    S: Store + Clone + 'static,
{
    const WRITERS: usize = 8;
    const EACH: usize = 12;
    seed_owner(store, "client", "user").await;
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let follower = {
        let (store, done) = (store.clone(), done.clone());
        tokio::spawn(async move {
            let (mut cursor, mut seen) = (0, Vec::new());
            loop {
                // Read `done` before the page: once it is set, the page read after it
                // starts after every writer committed.
                let finished = done.load(Ordering::SeqCst);
                let page = RevocationList::revoked_since(&store, cursor, 5)
                    .await
                    .expect("follow the list");
                assert_seqs_increasing(&page);
                for entry in &page {
                    assert!(entry.seq > cursor);
                    cursor = entry.seq;
                    seen.push(entry.jti.clone());
                }
                if page.is_empty() {
                    if finished {
                        return (cursor, seen);
                    }
                    tokio::task::yield_now().await;
                }
            }
        })
    };
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..EACH {
                    let tag = format!("w{w}-{i}");
                    if w % 2 == 0 {
                        revoke_jti(&store, &format!("jti-{tag}"), T0 + HOUR, T0).await;
                    } else {
                        let grant = start_family(&store, &tag, "client", "user").await;
                        assert!(
                            RefreshStore::revoke_family(
                                &store,
                                &grant.family.id,
                                RevocationReason::ClientRequest,
                                UnixTime(T0 + 1)
                            )
                            .await
                            .expect("revoke_family under concurrency")
                        );
                    }
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer panicked");
    }
    done.store(true, Ordering::SeqCst);
    let (cursor, mut seen) = follower.await.expect("follower panicked");
    assert_eq!(seen.len(), WRITERS * EACH, "every entry seen exactly once");
    seen.sort_unstable();
    let mut expected: Vec<String> = (0..WRITERS)
        .flat_map(|w| (0..EACH).map(move |i| format!("jti-w{w}-{i}")))
        .collect();
    expected.sort_unstable();
    assert_eq!(seen, expected);
    assert_eq!(
        latest_seq(store).await,
        cursor,
        "the follower ends at latest_seq"
    );
}

/// A rotation racing the revocation of its family (or of its user's families): whichever
/// wins, no token the rotation issued outlives the revocation. If the rotation won, its
/// access token is on the revocation list and its refresh token belongs to a revoked
/// family; if it lost, nothing of it is stored.
async fn check_refresh_rotate_races_revocation<S>(store: &S)
where
    S: Store + Clone + 'static,
{
    const ROUNDS: usize = 12;
    seed_owner(store, "client", "user").await;
    let mut rotations_won = 0;
    for round in 0..ROUNDS {
        let tag = format!("rr{round}");
        let grant = start_family(store, &tag, "client", "user").await;
        let next = new_refresh(&format!("{tag}-next"), T0 + 10);
        let next_jti = format!("jti-{tag}-next");
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let rotation = {
            let (store, barrier, next, jti) = (
                store.clone(),
                barrier.clone(),
                next.clone(),
                next_jti.clone(),
            );
            let old = refresh_hash(&tag);
            tokio::spawn(async move {
                barrier.wait().await;
                RefreshStore::rotate(
                    &store,
                    &old,
                    &next,
                    &access(&jti, T0 + HOUR),
                    next.issued_at,
                )
                .await
                .expect("rotate under concurrency")
            })
        };
        let revocation = {
            let (store, barrier, family_id) =
                (store.clone(), barrier.clone(), grant.family.id.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let now = UnixTime(T0 + 10);
                if round % 2 == 0 {
                    RefreshStore::revoke_family(
                        &store,
                        &family_id,
                        RevocationReason::RefreshTokenReuse,
                        now,
                    )
                    .await
                    .expect("revoke_family under concurrency")
                } else {
                    RefreshStore::revoke_user_families(
                        &store,
                        "user",
                        RevocationReason::UserSignOut,
                        now,
                    )
                    .await
                    .expect("revoke_user_families under concurrency")
                        == 1
                }
            })
        };
        let rotated = rotation.await.expect("rotation panicked");
        assert!(
            revocation.await.expect("revocation panicked"),
            "round {round}: the family was revoked"
        );
        assert!(is_revoked(store, &grant.access.jti).await, "round {round}");
        let (old, family) = find_token(store, &refresh_hash(&tag)).await.unwrap();
        assert!(family.revoked.is_some(), "round {round}");
        if rotated {
            rotations_won += 1;
            assert_eq!(old.successor, Some(next.token_hash), "round {round}");
            assert!(
                is_revoked(store, &next_jti).await,
                "round {round}: the access token of a rotation that won is listed"
            );
            let (_, family) = find_token(store, &next.token_hash).await.unwrap();
            assert!(family.revoked.is_some(), "round {round}");
        } else {
            assert_eq!(old.rotated_at, None, "round {round}");
            assert_eq!(find_token(store, &next.token_hash).await, None);
            assert!(!is_revoked(store, &next_jti).await, "round {round}");
        }
    }
    // Not asserted: which side wins is up to the scheduler.
    let _ = rotations_won;
}

// ---------------------------------------------------------------------------------------
// The suite, once per engine
// ---------------------------------------------------------------------------------------

/// Every check, handed to an engine's wrapper macros: `$tests` for the plain checks,
/// `$races` for those that race tasks against each other. Listing them once keeps both
/// engines on exactly the same suite.
macro_rules! behaviour_suite {
    ($tests:ident, $races:ident) => {
        $tests!(
            check_client_round_trip,
            check_client_duplicate_is_conflict,
            check_client_list_ordered_by_id,
            check_client_set_secret,
            check_client_set_token_lifetimes,
            check_client_set_first_party,
            check_client_delete,
            check_user_round_trip,
            check_user_duplicates_are_conflicts,
            check_user_set_disabled,
            check_user_set_password,
            check_user_list_ordered_by_username,
            check_code_round_trip,
            check_code_duplicate_hash_is_rejected,
            check_code_redeem_once,
            check_code_redeem_without_refresh_token,
            check_code_redeem_is_atomic,
            check_code_inserted_used_cannot_be_redeemed,
            check_code_foreign_keys,
            check_client_delete_cascades_codes,
            check_refresh_find_unknown,
            check_refresh_rotate,
            check_refresh_rotate_refused_in_revoked_family,
            check_refresh_supersede,
            check_refresh_supersede_refused_after_successor_rotated,
            check_refresh_supersede_refused_in_revoked_family,
            check_refresh_revoke_family,
            check_refresh_revoke_user_families,
            check_revocation_list,
            check_revocation_log,
            check_janitor_purges_only_dead,
            check_janitor_batches,
            check_session_lifecycle,
            check_session_requires_user,
            check_consent_save_and_replace,
            check_consent_revoke,
            check_consent_goes_with_its_user_and_client,
            check_keys_insert_and_list,
            check_keys_delete_and_revoke,
            check_keys_reseal_is_atomic,
            check_key_ring_generates_once,
            check_key_ring_verifies_its_signatures,
            check_key_ring_rotates_on_schedule,
            check_key_ring_revocation,
            check_key_ring_wrong_master_key_fails_closed,
        );

        $races!(
            check_code_redeem_concurrent,
            check_refresh_rotate_concurrent,
            check_refresh_rotate_races_revocation,
            check_revocation_follower_sees_every_entry,
            check_key_ring_two_nodes_rotate_once,
        );
    };
}

/// How many times a race runs, each on a fresh database: a lost race is probabilistic.
const RACE_REPEATS: usize = 10;

/// Records a migration this build does not know, as a newer Tessera would have.
const FUTURE_MIGRATION: i64 = 9_999;

/// Asserts that opening failed because a newer Tessera migrated the database, and that the
/// error says so.
fn assert_newer_schema_refused<T>(result: Result<T, StoreError>) {
    let Err(e) = result else {
        panic!("open must refuse a database migrated by a newer Tessera");
    };
    let mut chain = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    assert!(
        chain.contains("newer Tessera") && chain.contains(&FUTURE_MIGRATION.to_string()),
        "{chain}"
    );
    assert!(
        matches!(
            std::error::Error::source(&e)
                .and_then(|s| s.downcast_ref::<tessera_store::SchemaError>()),
            Some(tessera_store::SchemaError::NewerThanThisTessera {
                version: FUTURE_MIGRATION
            })
        ),
        "{e:?}"
    );
}

/// The ports wired from a `Database` reach the same data as the store itself.
async fn check_ports_reach_the_database(db: Arc<dyn tessera_store::Database>) {
    db.ping().await.expect("ping");
    ClientStore::create(&*db, &public_client("via-db"))
        .await
        .unwrap();
    let keys: Arc<dyn KeyRing> = Arc::new(NoKeys);
    let ports = tessera_store::ports(
        db.clone(),
        keys,
        TestClock::at(T0),
        Arc::new(tessera_store::OsRandom::default()),
    );
    assert_eq!(
        ports.clients.find("via-db").await.unwrap(),
        Some(public_client("via-db"))
    );
    assert_eq!(ports.revocations.latest_seq().await.unwrap(), 0);
    assert_eq!(
        ports
            .consents
            .find_consent("nobody", "via-db")
            .await
            .unwrap(),
        None
    );
    // The key store is reachable through the same handle (upcast from the database).
    let key_store: &dyn KeyStore = &*db;
    assert!(key_store.list().await.unwrap().is_empty());
    db.close().await;
}

/// A key ring that holds nothing (the ports need one; these checks never sign).
struct NoKeys;

impl KeyRing for NoKeys {
    fn signing_key(&self) -> Arc<dyn tessera_core::keys::SigningKey> {
        unreachable!("the checks never sign")
    }
    fn published(&self) -> tessera_core::keys::Jwks {
        tessera_core::keys::Jwks { keys: vec![] }
    }
    fn verify(&self, _: &str, _: &str, _: &[u8], _: &[u8]) -> bool {
        false
    }
    fn publishes(&self, _: &str) -> bool {
        false
    }
}

/// Opening can be spawned or awaited inside `async_trait` methods: its futures are `Send`.
#[test]
fn opening_futures_are_send() {
    fn send<T: Send>(_: T) {}
    let settings = tessera_store::PoolSettings::default();
    send(tessera_store::open("sqlite://unused", &settings));
    send(tessera_store::migrate("postgres://unused", &settings));
    send(SqliteStore::open_with("sqlite://unused", &settings));
    send(tessera_store::PostgresStore::open_with(
        "postgres://unused",
        &settings,
    ));
}

#[test]
fn open_refuses_unknown_schemes_without_echoing_the_url() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let settings = tessera_store::PoolSettings::default();
    for (url, scheme) in [
        ("mysql://root:hunter2@db/tessera", "`mysql`"),
        ("tessera.db", "`(none)`"),
        ("", "`(none)`"),
        ("hunter2 secret://x", "`(none)`"),
    ] {
        let Err(e) = runtime.block_on(tessera_store::open(url, &settings)) else {
            panic!("{url} must be refused");
        };
        let cause = std::error::Error::source(&e).expect("a cause").to_string();
        assert!(cause.contains(scheme), "{url}: {cause}");
        assert!(
            cause.contains("sqlite://") && cause.contains("postgres://"),
            "{cause}"
        );
        assert!(!cause.contains("hunter2"), "{cause}");
    }
}

// ---------------------------------------------------------------------------------------
// SQLite wrappers
// ---------------------------------------------------------------------------------------

fn sqlite_url(dir: &TempDir) -> String {
    format!("sqlite://{}/t.db", dir.path().display())
}

/// A fresh SQLite store in its own temporary directory (kept alive by the returned guard).
async fn open_sqlite() -> (TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&sqlite_url(&dir))
        .await
        .expect("open sqlite store");
    (dir, store)
}

macro_rules! sqlite_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let (_dir, store) = open_sqlite().await;
                super::$name(&store).await;
            }
        )*
    };
}

/// Races run on a multi-threaded runtime, once and then repeated on fresh databases, since
/// a lost race is probabilistic.
macro_rules! sqlite_race_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use super::open_sqlite;

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn once() {
                    let (_dir, store) = open_sqlite().await;
                    super::super::$name(&store).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn repeated() {
                    for _ in 0..super::super::RACE_REPEATS {
                        let (_dir, store) = open_sqlite().await;
                        super::super::$name(&store).await;
                        store.close().await;
                    }
                }
            }
        )*
    };
}

mod sqlite {
    use tessera_core::client::ClientStore;

    use super::open_sqlite;

    behaviour_suite!(sqlite_tests, sqlite_race_tests);

    /// The generic check, plus what no port shows: exactly the live families and access
    /// token records are left, and nothing of a dead family.
    #[tokio::test]
    async fn janitor_leaves_exactly_the_live_rows() {
        let (dir, store) = open_sqlite().await;
        super::seed_janitor_mix(&store).await;
        super::purge(&store, super::NOW, 100).await;
        store.close().await;

        let pool = sqlx::SqlitePool::connect(&super::sqlite_url(&dir))
            .await
            .unwrap();
        let families: Vec<String> =
            sqlx::query_scalar("SELECT id FROM refresh_families ORDER BY id")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(families, super::LIVE_FAMILIES);
        let records: Vec<String> =
            sqlx::query_scalar("SELECT jti FROM family_access_tokens ORDER BY jti")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(records, super::LIVE_ACCESS_RECORDS);
        let tokens: Vec<Vec<u8>> =
            sqlx::query_scalar("SELECT token_hash FROM refresh_tokens ORDER BY family_id")
                .fetch_all(&pool)
                .await
                .unwrap();
        let expected: Vec<Vec<u8>> = ["a2", "b1"]
            .map(|tag| super::refresh_hash(tag).0.to_vec())
            .into();
        assert_eq!(tokens, expected);
        // Foreign keys were on: nothing of a removed family is left behind.
        for sql in [
            "SELECT COUNT(*) FROM refresh_tokens WHERE family_id NOT IN \
             (SELECT id FROM refresh_families)",
            "SELECT COUNT(*) FROM family_access_tokens WHERE family_id NOT IN \
             (SELECT id FROM refresh_families)",
        ] {
            let orphans: i64 = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
            assert_eq!(orphans, 0, "{sql}");
        }
        pool.close().await;
    }

    #[tokio::test]
    async fn reopen_keeps_data_and_does_not_reapply_migrations() {
        let dir = tempfile::tempdir().unwrap();
        let url = super::sqlite_url(&dir);

        let store = tessera_store::SqliteStore::open(&url).await.unwrap();
        super::seed_everything(&store).await;
        super::check_everything_present(&store).await;
        store.close().await;
        drop(store);

        // Reopen after an orderly close.
        let store = tessera_store::SqliteStore::open(&url).await.unwrap();
        super::check_everything_present(&store).await;
        drop(store);

        // Reopen after a plain drop (no close), as after an abrupt shutdown.
        let store = tessera_store::SqliteStore::open(&url).await.unwrap();
        super::check_everything_present(&store).await;
        store.close().await;

        // Each migration was recorded once and not re-run.
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        let applied: Vec<(i64, bool)> =
            sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(
            applied,
            vec![(1, true), (2, true), (3, true), (4, true), (5, true)]
        );
        pool.close().await;
    }

    #[tokio::test]
    async fn open_refuses_a_database_migrated_by_a_newer_tessera() {
        let dir = tempfile::tempdir().unwrap();
        let url = super::sqlite_url(&dir);
        tessera_store::SqliteStore::open(&url)
            .await
            .unwrap()
            .close()
            .await;
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
             execution_time) VALUES (?, 'from a newer Tessera', TRUE, X'00', 0)",
        )
        .bind(super::FUTURE_MIGRATION)
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;

        let settings = tessera_store::PoolSettings::default();
        super::assert_newer_schema_refused(tessera_store::SqliteStore::open(&url).await);
        super::assert_newer_schema_refused(tessera_store::open(&url, &settings).await);
        super::assert_newer_schema_refused(tessera_store::migrate(&url, &settings).await);
    }

    /// Migration 4 keeps clients registered before consent existed signing users in
    /// without a consent page (first-party), with no post-logout redirect URIs.
    #[tokio::test]
    async fn clients_registered_before_consent_existed_stay_first_party() {
        use sqlx::SqlSafeStr;
        use sqlx::migrate::{Migration, MigrationType, Migrator};

        let dir = tempfile::tempdir().unwrap();
        let url = super::sqlite_url(&dir);
        let options = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(&url)
            .unwrap()
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        let before: Vec<Migration> = [
            include_str!("../migrations/sqlite/0001_foundation.sql"),
            include_str!("../migrations/sqlite/0002_refresh_families.sql"),
            include_str!("../migrations/sqlite/0003_client_token_lifetimes.sql"),
        ]
        .into_iter()
        .zip(1..)
        .map(|(sql, version)| {
            Migration::new(
                version,
                "before consent".into(),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect();
        Migrator::with_migrations(before).run(&pool).await.unwrap();
        sqlx::query(
            "INSERT INTO clients (id, name, secret_hash, redirect_uris, grant_types, scopes, \
             audiences, created_at) VALUES ('old', 'Old app', NULL, '[\"https://old.example/cb\"]', \
             '[\"authorization_code\"]', 'read', '[]', 1)",
        )
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;

        let store = tessera_store::SqliteStore::open(&url).await.unwrap();
        let old = ClientStore::find(&store, "old").await.unwrap().unwrap();
        assert!(old.first_party, "registered before consent: first-party");
        assert!(old.post_logout_redirect_uris.is_empty());
        // New registrations are what they say they are.
        ClientStore::create(&store, &super::confidential_client("new"))
            .await
            .unwrap();
        let new = ClientStore::find(&store, "new").await.unwrap().unwrap();
        assert!(!new.first_party);
        store.close().await;
    }

    #[tokio::test]
    async fn open_by_url_picks_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let url = super::sqlite_url(&dir);
        let settings = tessera_store::PoolSettings {
            max_connections: 2,
            acquire_timeout: std::time::Duration::from_secs(5),
        };
        tessera_store::migrate(&url, &settings).await.unwrap();
        let db = tessera_store::open(&url, &settings).await.unwrap();
        assert_eq!(db.engine(), "sqlite");
        super::check_ports_reach_the_database(db).await;
    }
}

// ---------------------------------------------------------------------------------------
// PostgreSQL wrappers
// ---------------------------------------------------------------------------------------

/// The server on which each PostgreSQL check creates a database of its own;
/// `TESSERA_TEST_POSTGRES_URL` names another (any database on it the user may connect to).
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
    let authority = rest
        .split_once('/')
        .map_or(rest, |(authority, _)| authority);
    match query {
        Some(query) => format!("{scheme}://{authority}/{database}?{query}"),
        None => format!("{scheme}://{authority}/{database}"),
    }
}

/// `url` without the password, if it holds one.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(not a URL)".to_owned();
    };
    match rest.split_once('@') {
        Some((user_info, host)) if user_info.contains(':') => {
            let user = user_info.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        _ => url.to_owned(),
    }
}

/// Pools big enough that the 16 racing tasks really run at once.
const PG_POOL: tessera_store::PoolSettings = tessera_store::PoolSettings {
    max_connections: 20,
    acquire_timeout: Duration::from_secs(30),
};

/// A database of its own for one check, dropped when this guard goes, also when the check
/// panics.
struct PgDatabase {
    name: String,
    url: String,
    dropped: bool,
}

impl PgDatabase {
    /// Creates `tessera_test_<random>`; `None` (after printing SKIPPED) if PostgreSQL cannot
    /// be reached, unless `CI=true`, where that is a failure.
    async fn create() -> Option<Self> {
        use sqlx::Connection;
        use tessera_core::random::SecureRandom;

        let admin_url = pg_admin_url();
        let mut admin = match sqlx::PgConnection::connect(&admin_url).await {
            Ok(admin) => admin,
            Err(e) if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
                panic!(
                    "PostgreSQL at {} is unreachable, and CI=true requires it: {e}",
                    redact(&admin_url)
                )
            }
            Err(e) => {
                println!(
                    "SKIPPED: PostgreSQL at {} is unreachable ({e}); \
                     set CI=true to fail instead",
                    redact(&admin_url)
                );
                return None;
            }
        };
        let mut random = [0u8; 8];
        tessera_store::OsRandom::default().fill(&mut random);
        let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let name = format!("tessera_test_{suffix}");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create the test database");
        let _ = admin.close().await;
        Some(Self {
            url: pg_url_of(&admin_url, &name),
            name,
            dropped: false,
        })
    }

    /// Drops the database now (the normal end of a check).
    async fn drop_now(mut self) {
        drop_pg_database(&self.name).await;
        self.dropped = true;
    }
}

async fn drop_pg_database(name: &str) {
    use sqlx::Connection;

    let mut admin = sqlx::PgConnection::connect(&pg_admin_url())
        .await
        .expect("connect to drop the test database");
    // FORCE ends the sessions of a pool a failed check left open.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .expect("drop the test database");
    let _ = admin.close().await;
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        // A check panicked (or was cut short): drop the database on a runtime of its own,
        // since the test's runtime may be the one unwinding.
        let name = std::mem::take(&mut self.name);
        let _ = std::thread::spawn(move || {
            if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                runtime.block_on(drop_pg_database(&name));
            }
        })
        .join();
    }
}

/// A fresh PostgreSQL store on a database of its own, or `None` when skipped.
async fn open_postgres() -> Option<(PgDatabase, tessera_store::PostgresStore)> {
    let db = PgDatabase::create().await?;
    let store = tessera_store::PostgresStore::open_with(&db.url, &PG_POOL)
        .await
        .expect("open postgres store");
    Some((db, store))
}

macro_rules! postgres_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let Some((db, store)) = open_postgres().await else { return };
                super::$name(&store).await;
                store.close().await;
                db.drop_now().await;
            }
        )*
    };
}

/// Races run on a multi-threaded runtime, once and then repeated on fresh databases, since
/// a lost race is probabilistic.
macro_rules! postgres_race_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use super::open_postgres;

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn once() {
                    let Some((db, store)) = open_postgres().await else { return };
                    super::super::$name(&store).await;
                    store.close().await;
                    db.drop_now().await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn repeated() {
                    for _ in 0..super::super::RACE_REPEATS {
                        let Some((db, store)) = open_postgres().await else { return };
                        super::super::$name(&store).await;
                        store.close().await;
                        db.drop_now().await;
                    }
                }
            }
        )*
    };
}

mod postgres {
    use super::{PG_POOL, PgDatabase, open_postgres};

    behaviour_suite!(postgres_tests, postgres_race_tests);

    /// The generic check, plus what no port shows: exactly the live families and access
    /// token records are left, and nothing of a dead family.
    #[tokio::test]
    async fn janitor_leaves_exactly_the_live_rows() {
        let Some((db, store)) = open_postgres().await else {
            return;
        };
        super::seed_janitor_mix(&store).await;
        super::purge(&store, super::NOW, 100).await;
        store.close().await;

        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        let families: Vec<String> =
            sqlx::query_scalar("SELECT id FROM refresh_families ORDER BY id")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(families, super::LIVE_FAMILIES);
        let records: Vec<String> =
            sqlx::query_scalar("SELECT jti FROM family_access_tokens ORDER BY jti")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(records, super::LIVE_ACCESS_RECORDS);
        let tokens: Vec<Vec<u8>> =
            sqlx::query_scalar("SELECT token_hash FROM refresh_tokens ORDER BY family_id")
                .fetch_all(&pool)
                .await
                .unwrap();
        let expected: Vec<Vec<u8>> = ["a2", "b1"]
            .map(|tag| super::refresh_hash(tag).0.to_vec())
            .into();
        assert_eq!(tokens, expected);
        // Foreign keys hold: nothing of a removed family is left behind.
        for sql in [
            "SELECT COUNT(*) FROM refresh_tokens WHERE family_id NOT IN \
             (SELECT id FROM refresh_families)",
            "SELECT COUNT(*) FROM family_access_tokens WHERE family_id NOT IN \
             (SELECT id FROM refresh_families)",
        ] {
            let orphans: i64 = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
            assert_eq!(orphans, 0, "{sql}");
        }
        pool.close().await;
        db.drop_now().await;
    }

    #[tokio::test]
    async fn reopen_keeps_data_and_does_not_reapply_migrations() {
        let Some(db) = PgDatabase::create().await else {
            return;
        };
        let store = tessera_store::PostgresStore::open(&db.url).await.unwrap();
        super::seed_everything(&store).await;
        super::check_everything_present(&store).await;
        store.close().await;
        drop(store);

        // Reopen after an orderly close, then after a plain drop.
        let store = tessera_store::PostgresStore::open(&db.url).await.unwrap();
        super::check_everything_present(&store).await;
        drop(store);
        let store = tessera_store::PostgresStore::open(&db.url).await.unwrap();
        super::check_everything_present(&store).await;
        store.close().await;

        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        let applied: Vec<(i64, bool)> =
            sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(
            applied,
            vec![(1, true), (2, true), (3, true), (4, true), (5, true)]
        );
        pool.close().await;
        db.drop_now().await;
    }

    #[tokio::test]
    async fn open_refuses_a_database_migrated_by_a_newer_tessera() {
        let Some(db) = PgDatabase::create().await else {
            return;
        };
        tessera_store::PostgresStore::open(&db.url)
            .await
            .unwrap()
            .close()
            .await;
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
             execution_time) VALUES ($1, 'from a newer Tessera', TRUE, '\\x00', 0)",
        )
        .bind(super::FUTURE_MIGRATION)
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;

        let settings = tessera_store::PoolSettings::default();
        super::assert_newer_schema_refused(tessera_store::PostgresStore::open(&db.url).await);
        super::assert_newer_schema_refused(tessera_store::open(&db.url, &settings).await);
        super::assert_newer_schema_refused(tessera_store::migrate(&db.url, &settings).await);
        // A refused open leaves no migration lock behind: the database is still usable.
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        sqlx::query("DELETE FROM _sqlx_migrations WHERE version = $1")
            .bind(super::FUTURE_MIGRATION)
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            tessera_store::PostgresStore::open(&db.url),
        )
        .await
        .expect("no migration lock left behind")
        .unwrap()
        .close()
        .await;
        db.drop_now().await;
    }

    /// Nodes starting together on a fresh database: each opens, the migrations run once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nodes_opening_together_migrate_once() {
        let Some(db) = PgDatabase::create().await else {
            return;
        };
        let opens: Vec<_> = (0..4)
            .map(|_| {
                let url = db.url.clone();
                tokio::spawn(async move { tessera_store::PostgresStore::open(&url).await })
            })
            .collect();
        for open in opens {
            open.await
                .unwrap()
                .expect("open while others migrate")
                .close()
                .await;
        }
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        let applied: Vec<(i64, bool)> =
            sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(
            applied,
            vec![(1, true), (2, true), (3, true), (4, true), (5, true)]
        );
        pool.close().await;
        db.drop_now().await;
    }

    #[tokio::test]
    async fn open_by_url_picks_postgres() {
        let Some(db) = PgDatabase::create().await else {
            return;
        };
        tessera_store::migrate(&db.url, &PG_POOL).await.unwrap();
        let alias = db.url.replacen("postgres://", "postgresql://", 1);
        for url in [&db.url, &alias] {
            let db = tessera_store::open(url, &PG_POOL).await.unwrap();
            assert_eq!(db.engine(), "postgres");
            db.close().await;
        }
        let store = tessera_store::open(&db.url, &PG_POOL).await.unwrap();
        super::check_ports_reach_the_database(store).await;
        db.drop_now().await;
    }

    #[tokio::test]
    async fn an_unreachable_server_is_unavailable() {
        // Port 1 on localhost refuses connections at once.
        let result = tessera_store::PostgresStore::open_with(
            "postgres://postgres@127.0.0.1:1/postgres",
            &tessera_store::PoolSettings {
                max_connections: 1,
                acquire_timeout: std::time::Duration::from_secs(2),
            },
        )
        .await;
        assert!(
            matches!(result, Err(tessera_core::StoreError::Unavailable(_))),
            "{result:?}"
        );
    }
}
