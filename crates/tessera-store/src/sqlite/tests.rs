//! Group commit on SQLite: what the store contract suite cannot see from outside.
//!
//! Most tests first park the writer on a "gate" job, queue the jobs under test behind it
//! and then open the gate, so those jobs are known to run in one batch.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tempfile::TempDir;
use tessera_core::StoreError;
use tessera_core::authorization_code::{CodeRecord, CodeStore};
use tessera_core::client::{Client, ClientStore, GrantType};
use tessera_core::pkce::CodeChallenge;
use tessera_core::refresh_family::{
    Family, IssuedAccessToken, NewGrant, NewRefreshToken, RefreshStore,
};
use tessera_core::revocation::{Revocation, RevocationList, RevocationReason};
use tessera_core::scope::ScopeSet;
use tessera_core::secret::SecretHash;
use tessera_core::time::UnixTime;
use tessera_core::user::{User, UserProfile, UserStore};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::SqliteStore;
use super::writer::MAX_BATCH;

const T0: i64 = 4_000_000_000;
const DAY: i64 = 86_400;

async fn open() -> (TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/t.db", dir.path().display());
    (dir, SqliteStore::open(&url).await.unwrap())
}

fn submitted(store: &SqliteStore) -> usize {
    store.writer.stats().submitted.load(Ordering::SeqCst)
}

fn commits(store: &SqliteStore) -> usize {
    store.writer.stats().commits.load(Ordering::SeqCst)
}

fn committed_jobs(store: &SqliteStore) -> usize {
    store.writer.stats().committed_jobs.load(Ordering::SeqCst)
}

fn largest_batch(store: &SqliteStore) -> usize {
    store.writer.stats().largest_batch.load(Ordering::SeqCst)
}

/// Parks the writer: a job that holds the batch open until the returned sender fires (or
/// is dropped). Returns once the gate job is running, so what is queued next waits.
async fn close_gate(store: &SqliteStore) -> (oneshot::Sender<()>, JoinHandle<()>) {
    let (open, opened) = oneshot::channel::<()>();
    let (running, is_running) = oneshot::channel::<()>();
    let writer = store.clone();
    let gate = tokio::spawn(async move {
        writer
            .write(move |_conn| {
                // The writer thread is not a runtime thread: it may block here.
                let _ = running.send(());
                let _ = opened.blocking_recv();
                Ok(())
            })
            .await
            .unwrap();
    });
    is_running.await.unwrap();
    (open, gate)
}

/// Waits until `n` jobs in all have been queued.
async fn until_submitted(store: &SqliteStore, n: usize) {
    for _ in 0..10_000 {
        if submitted(store) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("only {} of {n} jobs were queued", submitted(store));
}

fn user(id: &str) -> User {
    User {
        id: id.to_owned(),
        username: format!("name-of-{id}"),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$salt$hash".into(),
        roles: vec![],
        profile: UserProfile::default(),
        disabled: false,
        created_at: UnixTime(1_600_000_000),
    }
}

fn client(id: &str) -> Client {
    Client {
        id: id.to_owned(),
        name: id.to_owned(),
        secret_hash: None,
        redirect_uris: vec!["https://app.example/cb".into()],
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        scopes: ScopeSet::from_tokens(["read"]),
        audiences: vec![],
        access_token_ttl: None,
        refresh_token_ttl: None,
        first_party: false,
        post_logout_redirect_uris: vec![],
        created_at: UnixTime(1_600_000_000),
    }
}

fn refresh(tag: &str) -> NewRefreshToken {
    NewRefreshToken {
        token_hash: SecretHash::of(&format!("tsr_{tag}")),
        issued_at: UnixTime(T0),
        expires_at: UnixTime(T0 + DAY),
    }
}

fn access(jti: &str) -> IssuedAccessToken {
    IssuedAccessToken {
        jti: jti.to_owned(),
        expires_at: UnixTime(T0 + 3_600),
    }
}

/// A family `fam-{tag}` of `client`/`user` with refresh token `tsr_{tag}`, through a code
/// redemption.
async fn start_family(store: &SqliteStore, tag: &str) {
    let record = CodeRecord {
        code_hash: SecretHash::of(&format!("tsc_{tag}")),
        client_id: "client".into(),
        user_id: "user".into(),
        redirect_uri: "https://app.example/cb".into(),
        redirect_uri_explicit: false,
        challenge: CodeChallenge::from_stored("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
        scope: ScopeSet::from_tokens(["read"]),
        resource: None,
        auth_time: UnixTime(T0 - 60),
        expires_at: UnixTime(T0 + 60),
        used_at: None,
        family_id: None,
        nonce: None,
    };
    CodeStore::insert(store, &record).await.unwrap();
    let grant = NewGrant {
        family: Family {
            id: format!("fam-{tag}"),
            client_id: "client".into(),
            user_id: "user".into(),
            scope: ScopeSet::from_tokens(["read"]),
            audience: "https://api.example".into(),
            auth_time: UnixTime(T0 - 60),
            created_at: UnixTime(T0),
            absolute_expires_at: UnixTime(T0 + 30 * DAY),
            revoked: None,
        },
        refresh: Some(refresh(tag)),
        access: access(&format!("jti-{tag}")),
    };
    assert!(
        CodeStore::redeem(store, &record.code_hash, UnixTime(T0), &grant)
            .await
            .unwrap()
    );
}

/// A job that writes a user and then fails on its own: everything it wrote must go.
async fn write_then_fail(store: &SqliteStore, id: &str) -> Result<(), StoreError> {
    let id = id.to_owned();
    store
        .write(move |conn| {
            super::run(
                conn,
                "INSERT INTO users (id, username, password_hash, roles, disabled, \
                 created_at) VALUES (?1, ?1, 'x', '[]', 0, 0)",
                rusqlite::params![id],
            )?;
            Err(StoreError::Backend("refused after writing".into()))
        })
        .await
}

#[tokio::test]
async fn the_writer_keeps_wal_and_full_sync() {
    let (_dir, store) = open().await;
    let (journal, synchronous) = store
        .write(|conn| {
            let journal: String = conn
                .pragma_query_value(None, "journal_mode", |row| row.get(0))
                .map_err(super::map_write_err)?;
            let synchronous: i64 = conn
                .pragma_query_value(None, "synchronous", |row| row.get(0))
                .map_err(super::map_write_err)?;
            Ok((journal, synchronous))
        })
        .await
        .unwrap();
    assert_eq!(journal, "wal");
    assert_eq!(synchronous, 2, "synchronous=FULL");
}

/// 64 rotations queued together: two callers race on each of 32 chains. They run as one
/// batch, exactly one caller per chain wins, and what each caller was told is what a
/// reader finds the moment its answer arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_rotations_commit_in_one_batch_and_each_caller_sees_its_outcome() {
    const CHAINS: usize = MAX_BATCH / 2;
    let (_dir, store) = open().await;
    ClientStore::create(&store, &client("client"))
        .await
        .unwrap();
    UserStore::create(&store, &user("user")).await.unwrap();
    for chain in 0..CHAINS {
        start_family(&store, &format!("c{chain}")).await;
    }
    let (commits_before, jobs_before) = (commits(&store), committed_jobs(&store));

    let (gate, gated) = close_gate(&store).await;
    let queued = submitted(&store);
    let rotations: Vec<_> = (0..CHAINS)
        .flat_map(|chain| (0..2).map(move |caller| (chain, caller)))
        .map(|(chain, caller)| {
            let store = store.clone();
            tokio::spawn(async move {
                let old = refresh(&format!("c{chain}")).token_hash;
                let next = refresh(&format!("c{chain}-by-{caller}"));
                let won = RefreshStore::rotate(
                    &store,
                    &old,
                    &next,
                    &access(&format!("jti-c{chain}-by-{caller}")),
                    UnixTime(T0 + 10),
                )
                .await
                .unwrap();
                // Answered: durable and visible to every reader, or not there at all.
                let found = RefreshStore::find(&store, &next.token_hash).await.unwrap();
                assert_eq!(found.is_some(), won, "chain {chain} caller {caller}");
                if won {
                    let (rotated, _) = RefreshStore::find(&store, &old).await.unwrap().unwrap();
                    assert_eq!(rotated.successor, Some(next.token_hash));
                }
                (chain, won)
            })
        })
        .collect();
    until_submitted(&store, queued + 2 * CHAINS).await;
    gate.send(()).unwrap();
    gated.await.unwrap();

    let mut wins = vec![0; CHAINS];
    for rotation in rotations {
        let (chain, won) = rotation.await.unwrap();
        wins[chain] += usize::from(won);
    }
    assert_eq!(wins, vec![1; CHAINS], "exactly one winner per chain");
    // The gate's batch, then all 64 rotations in one.
    assert_eq!(commits(&store) - commits_before, 2);
    assert_eq!(committed_jobs(&store) - jobs_before, 1 + 2 * CHAINS);
    assert_eq!(largest_batch(&store), MAX_BATCH);
}

/// Without a gate: 64 callers writing at once on a multi-threaded runtime share COMMITs,
/// and each finds its own write as soon as it is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_commits_and_are_visible_once_answered() {
    const WRITERS: usize = 64;
    let (_dir, store) = open().await;
    let (commits_before, jobs_before) = (commits(&store), committed_jobs(&store));
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(WRITERS));
    let writers: Vec<_> = (0..WRITERS)
        .map(|i| {
            let store = store.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                let user = user(&format!("u{i}"));
                barrier.wait().await;
                UserStore::create(&store, &user).await.unwrap();
                let found = UserStore::find(&store, &user.id).await.unwrap();
                assert_eq!(found, Some(user));
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let commits = commits(&store) - commits_before;
    assert_eq!(committed_jobs(&store) - jobs_before, WRITERS);
    assert!(
        commits < WRITERS,
        "{WRITERS} concurrent writes took {commits} commits: no batch formed"
    );
    assert_eq!(UserStore::list(&store).await.unwrap().len(), WRITERS);
}

/// In one batch: good writes, a duplicate insert, a job that wrote and then failed, and a
/// job that panicked. The failures answer with their own errors and leave nothing; their
/// neighbours commit.
#[tokio::test]
async fn a_failing_job_is_rolled_back_alone() {
    let (_dir, store) = open().await;
    UserStore::create(&store, &user("existing")).await.unwrap();
    let commits_before = commits(&store);

    let (gate, gated) = close_gate(&store).await;
    let queued = submitted(&store);
    let spawn_create = |id: &'static str| {
        let store = store.clone();
        tokio::spawn(async move { UserStore::create(&store, &user(id)).await })
    };
    let first = spawn_create("first");
    let duplicate = spawn_create("existing");
    let failing = {
        let store = store.clone();
        tokio::spawn(async move { write_then_fail(&store, "failing").await })
    };
    let panicking = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .write(|conn| -> Result<(), StoreError> {
                    super::run(
                        conn,
                        "INSERT INTO users (id, username, password_hash, roles, disabled, \
                         created_at) VALUES ('panicking', 'panicking', 'x', '[]', 0, 0)",
                        [],
                    )?;
                    panic!("a job that panics mid-write");
                })
                .await
        })
    };
    let last = spawn_create("last");
    until_submitted(&store, queued + 5).await;
    gate.send(()).unwrap();
    gated.await.unwrap();

    first.await.unwrap().unwrap();
    match duplicate.await.unwrap() {
        Err(StoreError::Conflict) => {}
        other => panic!("duplicate: {other:?}"),
    }
    match failing.await.unwrap() {
        Err(StoreError::Backend(e)) => assert_eq!(e.to_string(), "refused after writing"),
        other => panic!("failing job: {other:?}"),
    }
    let panicked: Result<(), StoreError> = panicking.await.unwrap();
    assert!(
        matches!(panicked, Err(StoreError::Backend(_))),
        "{panicked:?}"
    );
    last.await.unwrap().unwrap();

    let mut ids: Vec<String> = UserStore::list(&store)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.id)
        .collect();
    ids.sort();
    assert_eq!(ids, ["existing", "first", "last"]);
    assert_eq!(commits(&store) - commits_before, 2, "gate, then one batch");
    assert_eq!(largest_batch(&store), 5);

    // The writer goes on as before.
    UserStore::create(&store, &user("after")).await.unwrap();
    assert!(UserStore::find(&store, "after").await.unwrap().is_some());
}

/// The last job of a batch failing is rolled back before the COMMIT, not committed with it.
#[tokio::test]
async fn a_failing_last_job_is_rolled_back_before_the_commit() {
    let (_dir, store) = open().await;
    let commits_before = commits(&store);
    let (gate, gated) = close_gate(&store).await;
    let queued = submitted(&store);
    let good = {
        let store = store.clone();
        tokio::spawn(async move { UserStore::create(&store, &user("good")).await })
    };
    until_submitted(&store, queued + 1).await;
    let failing = {
        let store = store.clone();
        tokio::spawn(async move { write_then_fail(&store, "failing-last").await })
    };
    until_submitted(&store, queued + 2).await;
    gate.send(()).unwrap();
    gated.await.unwrap();
    good.await.unwrap().unwrap();
    assert!(failing.await.unwrap().is_err());
    assert!(UserStore::find(&store, "good").await.unwrap().is_some());
    assert!(
        UserStore::find(&store, "failing-last")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(commits(&store) - commits_before, 2, "gate, then one batch");
    assert_eq!(largest_batch(&store), 2);
}

/// A job rolled back to its savepoint takes its AUTOINCREMENT draw with it: the revocation
/// list stays gap-free and in order across a batch with a failed job in it.
#[tokio::test]
async fn revocation_seqs_stay_gap_free_around_a_failed_job() {
    let (_dir, store) = open().await;
    let revocation = Revocation {
        at: UnixTime(T0),
        reason: RevocationReason::UserSignOut,
    };
    let (gate, gated) = close_gate(&store).await;
    let queued = submitted(&store);
    let revoke = |jti: &'static str| {
        let store = store.clone();
        tokio::spawn(async move {
            RevocationList::revoke_access_token(&store, jti, UnixTime(T0 + 3_600), revocation).await
        })
    };
    let first = revoke("jti-1");
    let failing = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .write(|conn| {
                    super::run(
                        conn,
                        "INSERT INTO revoked_access_tokens (jti, expires_at, revoked_at, \
                         reason) VALUES ('jti-rolled-back', ?, ?, 'user_sign_out')",
                        rusqlite::params![T0 + 3_600, T0],
                    )?;
                    Err::<(), _>(StoreError::Backend("refused after writing".into()))
                })
                .await
        })
    };
    let second = revoke("jti-2");
    until_submitted(&store, queued + 3).await;
    gate.send(()).unwrap();
    gated.await.unwrap();
    first.await.unwrap().unwrap();
    assert!(failing.await.unwrap().is_err());
    second.await.unwrap().unwrap();

    let listed: Vec<(i64, String)> = RevocationList::revoked_since(&store, 0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.seq, e.jti))
        .collect();
    assert_eq!(listed, [(1, "jti-1".to_owned()), (2, "jti-2".to_owned())]);
    assert_eq!(RevocationList::latest_seq(&store).await.unwrap(), 2);
}

/// A COMMIT that fails (here a deferred foreign key one job left dangling) fails every job
/// of its batch, keeps none of their writes, and leaves the writer usable.
#[tokio::test]
async fn a_failed_commit_fails_every_job_in_the_batch() {
    let (_dir, store) = open().await;
    let commits_before = commits(&store);
    let (gate, gated) = close_gate(&store).await;
    let queued = submitted(&store);
    let good = {
        let store = store.clone();
        tokio::spawn(async move { UserStore::create(&store, &user("good")).await })
    };
    let dangling = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .write(|conn| {
                    super::run(conn, "PRAGMA defer_foreign_keys = ON", [])?;
                    super::run(
                        conn,
                        "INSERT INTO browser_sessions (id_hash, user_id, auth_time, \
                         expires_at) VALUES (x'00', 'nobody', 0, 1)",
                        [],
                    )?;
                    Ok(())
                })
                .await
        })
    };
    until_submitted(&store, queued + 2).await;
    gate.send(()).unwrap();
    gated.await.unwrap();

    for (what, answer) in [
        ("good", good.await.unwrap()),
        ("dangling", dangling.await.unwrap()),
    ] {
        let Err(StoreError::Backend(e)) = answer else {
            panic!("{what}: {answer:?}");
        };
        assert!(e.to_string().contains("COMMIT"), "{what}: {e}");
    }
    assert_eq!(
        commits(&store) - commits_before,
        1,
        "the gate's batch alone"
    );
    assert!(UserStore::find(&store, "good").await.unwrap().is_none());

    UserStore::create(&store, &user("after")).await.unwrap();
    assert!(UserStore::find(&store, "after").await.unwrap().is_some());
}

/// A caller that goes away after queueing its write does not take the write with it.
#[tokio::test]
async fn a_queued_write_survives_its_caller() {
    let (_dir, store) = open().await;
    let (gate, gated) = close_gate(&store).await;
    let queued = submitted(&store);
    let abandoned = {
        let store = store.clone();
        tokio::spawn(async move { UserStore::create(&store, &user("abandoned")).await })
    };
    until_submitted(&store, queued + 1).await;
    abandoned.abort();
    gate.send(()).unwrap();
    gated.await.unwrap();
    // Queued behind it, so answered after it.
    UserStore::create(&store, &user("next")).await.unwrap();
    assert!(
        UserStore::find(&store, "abandoned")
            .await
            .unwrap()
            .is_some()
    );
}

/// A write the database has no room for (`SQLITE_FULL`, here through `max_page_count`, as on
/// a full disk) is unavailability (503), not a backend failure (500), even though SQLite's
/// own rollback of the whole transaction then fails the batch's COMMIT; nothing of it stays,
/// and the writer goes on.
#[tokio::test]
async fn a_full_database_is_unavailable_not_a_failure() {
    let (_dir, store) = open().await;
    let answer = store
        .write(|conn| {
            // SQLite never sets the limit below the pages in use: this is "no more".
            conn.pragma_update(None, "max_page_count", 1)
                .map_err(super::map_write_err)?;
            super::run(
                conn,
                "INSERT INTO users (id, username, password_hash, roles, disabled, \
                 created_at) VALUES ('big', 'big', ?, '[]', 0, 0)",
                rusqlite::params!["x".repeat(1 << 20)],
            )?;
            Ok(())
        })
        .await;
    assert!(
        matches!(answer, Err(StoreError::Unavailable(_))),
        "{answer:?}"
    );
    assert!(UserStore::find(&store, "big").await.unwrap().is_none());
    // The limit lived on the writer's connection, which the failed batch closed.
    UserStore::create(&store, &user("after")).await.unwrap();
}

/// Closing runs what was queued before it (nothing acknowledged or queued is lost), then
/// refuses later writes as unavailable (a 503 for the caller, never a half-written write).
#[tokio::test]
async fn close_runs_what_was_queued_and_refuses_later_writes() {
    let (dir, store) = open().await;
    let (gate, gated) = close_gate(&store).await;
    let queued = {
        let store = store.clone();
        tokio::spawn(async move { UserStore::create(&store, &user("queued")).await })
    };
    until_submitted(&store, 2).await;
    let closing = {
        let store = store.clone();
        tokio::spawn(async move { store.close().await })
    };
    // The close request is queued behind that write before the gate's batch ends.
    for _ in 0..10_000 {
        if store.writer.stats().close_requests.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(
        store.writer.stats().close_requests.load(Ordering::SeqCst),
        1
    );
    gate.send(()).unwrap();
    gated.await.unwrap();
    closing.await.unwrap();
    queued
        .await
        .unwrap()
        .expect("a write queued before close is run");
    let later = UserStore::create(&store, &user("later")).await;
    assert!(
        matches!(later, Err(StoreError::Unavailable(_))),
        "a write after close: {later:?}"
    );
    drop(store);

    let url = format!("sqlite://{}/t.db", dir.path().display());
    let reopened = SqliteStore::open(&url).await.unwrap();
    assert!(
        UserStore::find(&reopened, "queued")
            .await
            .unwrap()
            .is_some()
    );
    assert!(UserStore::find(&reopened, "later").await.unwrap().is_none());
}
