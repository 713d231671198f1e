//! Behaviour suite for the store ports of `tessera-core`.
//!
//! Every check is an `async fn check_*` generic over the ports, so the same bodies can run
//! against any adapter; the `#[tokio::test]` wrappers at the bottom run them against a fresh
//! SQLite database in a temporary directory. A PostgreSQL adapter only needs its own
//! wrappers.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tempfile::TempDir;
use tessera_core::StoreError;
use tessera_core::authorization_code::{CodeRecord, CodeStore};
use tessera_core::client::{Client, ClientStore, GrantType};
use tessera_core::keys::{Jwk, KeyRing, KeyStore, StoredKey};
use tessera_core::pkce::CodeChallenge;
use tessera_core::scope::ScopeSet;
use tessera_core::secret::SecretHash;
use tessera_core::session::{Session, SessionStore};
use tessera_core::time::UnixTime;
use tessera_core::user::{User, UserStore};
use tessera_store::MasterKey;
use tessera_store::SqliteStore;
use tessera_store::key_material::StaticKeyRing;

/// Every store port, as one adapter implements them.
trait Store: ClientStore + UserStore + CodeStore + SessionStore + KeyStore {}
impl<S: ClientStore + UserStore + CodeStore + SessionStore + KeyStore> Store for S {}

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
        created_at: UnixTime(1_700_000_123),
    }
}

fn user(id: &str, username: &str) -> User {
    User {
        id: id.to_owned(),
        username: username.to_owned(),
        password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1$salt${username}"),
        roles: vec!["admin".into(), "viewer".into()],
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
    }
}

fn stored_key(kid: &str, created_at: i64) -> StoredKey {
    StoredKey {
        kid: kid.to_owned(),
        public: Jwk {
            kty: "RSA".into(),
            use_: "sig".into(),
            alg: "RS256".into(),
            kid: kid.to_owned(),
            n: format!("modulus-of-{kid}"),
            e: "AQAB".into(),
        },
        sealed_private: vec![0, 1, 2, 255, created_at as u8],
        created_at: UnixTime(created_at),
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

async fn check_code_consume_once<S: Store>(store: &S) {
    seed_owner(store, "client", "user").await;
    let record = code("tsc_once", "client", "user", Some("https://api.example"));
    let other = code("tsc_other", "client", "user", None);
    CodeStore::insert(store, &record).await.unwrap();
    CodeStore::insert(store, &other).await.unwrap();

    let now = UnixTime(1_700_000_530);
    assert!(
        CodeStore::consume(store, &record.code_hash, now)
            .await
            .unwrap()
    );
    assert!(
        !CodeStore::consume(store, &record.code_hash, UnixTime(1_700_000_540))
            .await
            .unwrap()
    );

    // The used code stays findable, marked with the time of the first (winning) consume.
    let found = CodeStore::find(store, &record.code_hash)
        .await
        .unwrap()
        .expect("a used code stays findable");
    assert_eq!(found.used_at, Some(now));
    assert_eq!(
        CodeRecord {
            used_at: None,
            ..found
        },
        record
    );

    // Other codes are untouched.
    assert_eq!(
        CodeStore::find(store, &other.code_hash).await.unwrap(),
        Some(other)
    );
    // An unknown code is never consumed.
    assert!(
        !CodeStore::consume(store, &SecretHash::of("tsc_unknown"), now)
            .await
            .unwrap()
    );
}

async fn check_code_inserted_used_cannot_be_consumed<S: Store>(store: &S) {
    seed_owner(store, "client", "user").await;
    let mut record = code("tsc_used", "client", "user", None);
    record.used_at = Some(UnixTime(1_700_000_501));
    CodeStore::insert(store, &record).await.unwrap();
    assert!(
        !CodeStore::consume(store, &record.code_hash, UnixTime(1_700_000_502))
            .await
            .unwrap()
    );
    assert_eq!(
        CodeStore::find(store, &record.code_hash).await.unwrap(),
        Some(record)
    );
}

async fn check_code_consume_concurrent<S>(store: &S)
where
    S: Store + Clone + 'static,
{
    const TASKS: i64 = 16;
    seed_owner(store, "client", "user").await;
    let record = code("tsc_race", "client", "user", None);
    CodeStore::insert(store, &record).await.unwrap();

    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(TASKS as usize));
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let store = store.clone();
            let barrier = barrier.clone();
            let hash = record.code_hash;
            tokio::spawn(async move {
                barrier.wait().await;
                let now = UnixTime(1_700_000_510 + i);
                CodeStore::consume(&store, &hash, now)
                    .await
                    .map(|won| (won, now))
            })
        })
        .collect();

    let mut winners = Vec::new();
    for task in tasks {
        let (won, now) = task
            .await
            .expect("task panicked")
            .expect("consume failed under concurrency");
        if won {
            winners.push(now);
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one concurrent consume must win, got {winners:?}"
    );
    let found = CodeStore::find(store, &record.code_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        found.used_at,
        Some(winners[0]),
        "used_at is the winner's time"
    );
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
    assert!(
        CodeStore::consume(store, &used.code_hash, UnixTime(1_700_000_520))
            .await
            .unwrap()
    );

    assert!(ClientStore::delete(store, "doomed").await.unwrap());

    assert_eq!(
        CodeStore::find(store, &unused.code_hash).await.unwrap(),
        None
    );
    assert_eq!(CodeStore::find(store, &used.code_hash).await.unwrap(), None);
    assert!(
        !CodeStore::consume(store, &unused.code_hash, UnixTime(1_700_000_530))
            .await
            .unwrap(),
        "a code of a deleted client cannot be redeemed"
    );
    assert_eq!(
        CodeStore::find(store, &kept.code_hash).await.unwrap(),
        Some(kept)
    );
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
// Signing keys
// ---------------------------------------------------------------------------------------

async fn check_keys_insert_and_list<S: Store>(store: &S) {
    assert!(KeyStore::list(store).await.unwrap().is_empty());
    // Inserted out of age order, and with kids that sort against age: list must order by
    // created_at, not by insertion or kid.
    let middle = stored_key("a-middle", 200);
    let newest = stored_key("b-newest", 300);
    let oldest = stored_key("z-oldest", 100);
    for k in [&middle, &newest, &oldest] {
        KeyStore::insert(store, k).await.unwrap();
    }
    assert_eq!(
        KeyStore::list(store).await.unwrap(),
        vec![oldest.clone(), middle.clone(), newest.clone()]
    );

    let mut duplicate = stored_key("a-middle", 999);
    duplicate.sealed_private = vec![9; 16];
    assert_conflict(
        KeyStore::insert(store, &duplicate).await,
        "insert of an existing kid",
    );
    assert_eq!(
        KeyStore::list(store).await.unwrap(),
        vec![oldest, middle, newest]
    );
}

async fn check_key_ring_generates_once<S: Store>(store: &S) {
    let master = master_key();
    let (ring, generated) = StaticKeyRing::load_or_generate(store, &master, UnixTime(1_000))
        .await
        .unwrap();
    assert!(generated, "an empty store gets a key generated");
    let kid = ring.signing_key().kid().to_owned();

    let stored = KeyStore::list(store).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].kid, kid);
    assert_eq!(stored[0].public.kid, kid);
    assert_eq!(stored[0].created_at, UnixTime(1_000));
    assert_eq!(ring.published().keys, vec![stored[0].public.clone()]);

    let (again, generated) = StaticKeyRing::load_or_generate(store, &master, UnixTime(2_000))
        .await
        .unwrap();
    assert!(!generated, "a stored key is loaded, not regenerated");
    assert_eq!(again.signing_key().kid(), kid);
    assert_eq!(again.published(), ring.published());
    assert_eq!(KeyStore::list(store).await.unwrap(), stored);

    // The reloaded key signs the same way (RS256 PKCS#1 v1.5 is deterministic).
    let a = ring.signing_key().sign(b"payload").unwrap();
    let b = again.signing_key().sign(b"payload").unwrap();
    assert_eq!(a, b);
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
        CodeStore::consume(
            store,
            &SecretHash::of("tsc_persist"),
            UnixTime(1_700_000_505)
        )
        .await
        .unwrap()
    );
    SessionStore::create(store, &persisted_session())
        .await
        .unwrap();
    KeyStore::insert(store, &stored_key("kid-1", 100))
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
        ..code("tsc_persist", "client", "user", Some("r"))
    };
    assert_eq!(
        CodeStore::find(store, &expected_code.code_hash)
            .await
            .unwrap(),
        Some(expected_code.clone())
    );
    // Single use survives a restart.
    assert!(
        !CodeStore::consume(store, &expected_code.code_hash, UnixTime(1_700_000_506))
            .await
            .unwrap()
    );
    assert_eq!(
        SessionStore::find(store, &persisted_session().id_hash)
            .await
            .unwrap(),
        Some(persisted_session())
    );
    assert_eq!(
        KeyStore::list(store).await.unwrap(),
        vec![stored_key("kid-1", 100)]
    );
    // Uniqueness constraints survive too.
    assert_conflict(
        ClientStore::create(store, &public_client("client")).await,
        "create of a client persisted before reopen",
    );
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

mod sqlite {
    use super::open_sqlite;

    sqlite_tests!(
        check_client_round_trip,
        check_client_duplicate_is_conflict,
        check_client_list_ordered_by_id,
        check_client_set_secret,
        check_client_delete,
        check_user_round_trip,
        check_user_duplicates_are_conflicts,
        check_user_set_disabled,
        check_user_set_password,
        check_user_list_ordered_by_username,
        check_code_round_trip,
        check_code_duplicate_hash_is_rejected,
        check_code_consume_once,
        check_code_inserted_used_cannot_be_consumed,
        check_code_foreign_keys,
        check_client_delete_cascades_codes,
        check_session_lifecycle,
        check_session_requires_user,
        check_keys_insert_and_list,
        check_key_ring_generates_once,
    );

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn check_code_consume_concurrent() {
        let (_dir, store) = open_sqlite().await;
        super::check_code_consume_concurrent(&store).await;
    }

    /// Repeats the race on fresh databases, since a lost race is probabilistic.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn check_code_consume_concurrent_repeated() {
        for _ in 0..10 {
            let (_dir, store) = open_sqlite().await;
            super::check_code_consume_concurrent(&store).await;
            store.close().await;
        }
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

        // The migration was recorded once and not re-run.
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        let applied: Vec<(i64, bool)> =
            sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(applied, vec![(1, true)]);
        pool.close().await;
    }
}
