//! The in-process client cache: a [`ClientStore`] decorator that answers `find` from memory,
//! so client authentication (token, introspection, revocation endpoints) does not read the
//! database on every request.
//!
//! Bounds, which are the point of the design:
//!
//! - **Staleness.** An entry lives at most the TTL (5 s in `tessera serve` by default) from
//!   the read that filled it. A client deleted, its secret rotated or its settings changed
//!   by anyone else (the CLI, another node on the same database) therefore takes effect on
//!   this node within the TTL.
//! - **Writes through the decorator take effect at once** on this node: every write method
//!   evicts the client after the store has answered (also when it failed: a timed-out write
//!   may still have committed). A read that started before such a write and finishes after
//!   it cannot put the old value back: fills are discarded when any write happened while
//!   they were reading (a write generation, checked after the insert).
//! - **Memory.** At most `capacity` clients are held (moka's TinyLFU admission and LRU
//!   eviction). Unknown ids are never cached, so a flood of made-up client ids costs
//!   database reads as before but no memory, and a client registered elsewhere is
//!   visible at once.
//!
//! What the cache holds is exactly what the store returns (the client with its secret's
//! SHA-256 hash); [`authenticate`](tessera_core::client::authenticate) still compares the
//! presented secret against that hash in constant time, so caching changes when a client is
//! read, never what is compared.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use moka::future::Cache;
use tessera_core::StoreError;
use tessera_core::client::{Client, ClientStore};
use tessera_core::secret::SecretHash;

/// A [`ClientStore`] that keeps recently found clients in memory for a short TTL.
pub struct CachingClientStore {
    inner: Arc<dyn ClientStore>,
    entries: Cache<String, Client>,
    /// Bumped by every write through this decorator, after the store answered.
    generation: AtomicU64,
    ttl: Duration,
}

impl std::fmt::Debug for CachingClientStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachingClientStore")
            .field("entries", &self.entries.entry_count())
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl CachingClientStore {
    /// Caches the clients `inner` finds, at most `capacity` of them, each for `ttl` from the
    /// read that fetched it. A zero `ttl` caches nothing (every call goes to `inner`).
    pub fn new(inner: Arc<dyn ClientStore>, capacity: u64, ttl: Duration) -> Self {
        let capacity = if ttl.is_zero() { 0 } else { capacity };
        Self {
            inner,
            entries: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl.max(Duration::from_nanos(1)))
                .build(),
            generation: AtomicU64::new(0),
            ttl,
        }
    }

    /// The longest a client is served from memory.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Clients currently held (approximate until [`run_pending_tasks`](Self::run_pending_tasks)).
    pub fn len(&self) -> u64 {
        self.entries.entry_count()
    }

    /// Whether no client is held (approximate).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies pending maintenance (evictions, entry counts) now; for tests and measurements.
    pub async fn run_pending_tasks(&self) {
        self.entries.run_pending_tasks().await;
    }

    /// Evicts `id` after a write through this decorator, whatever the write's outcome.
    async fn after_write<T>(
        &self,
        id: &str,
        result: Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // Bump first, then evict: a fill that read the old row either sees the new generation
        // (and discards itself) or was inserted before this eviction (and is evicted by it).
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.entries.invalidate(id).await;
        result
    }
}

#[async_trait]
impl ClientStore for CachingClientStore {
    async fn create(&self, client: &Client) -> Result<(), StoreError> {
        let result = self.inner.create(client).await;
        self.after_write(&client.id, result).await
    }

    async fn find(&self, id: &str) -> Result<Option<Client>, StoreError> {
        if let Some(client) = self.entries.get(id).await {
            return Ok(Some(client));
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let found = self.inner.find(id).await?;
        if let Some(client) = &found
            && !self.ttl.is_zero()
        {
            self.entries.insert(id.to_owned(), client.clone()).await;
            // A write that finished while the row was being read wins: check after inserting,
            // so that either its eviction saw the entry or this check sees its generation.
            if self.generation.load(Ordering::SeqCst) != generation {
                self.entries.invalidate(id).await;
            }
        }
        Ok(found)
    }

    async fn list(&self) -> Result<Vec<Client>, StoreError> {
        self.inner.list().await
    }

    async fn set_secret(&self, id: &str, secret: SecretHash) -> Result<bool, StoreError> {
        let result = self.inner.set_secret(id, secret).await;
        self.after_write(id, result).await
    }

    async fn set_token_lifetimes(
        &self,
        id: &str,
        access_token_ttl: Option<Duration>,
        refresh_token_ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let result = self
            .inner
            .set_token_lifetimes(id, access_token_ttl, refresh_token_ttl)
            .await;
        self.after_write(id, result).await
    }

    async fn set_first_party(&self, id: &str, first_party: bool) -> Result<bool, StoreError> {
        let result = self.inner.set_first_party(id, first_party).await;
        self.after_write(id, result).await
    }

    async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        let result = self.inner.delete(id).await;
        self.after_write(id, result).await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;
    use std::sync::atomic::AtomicBool;
    use std::time::Instant;

    use futures_util::future::BoxFuture;
    use tessera_core::client::{ClientCredentials, GrantType, authenticate};
    use tessera_core::scope::ScopeSet;
    use tessera_core::time::UnixTime;
    use tokio::sync::Semaphore;

    use super::*;

    const TTL: Duration = Duration::from_secs(300);

    /// An in-memory store that counts its reads, can fail its writes after applying them (a
    /// commit whose answer was lost), and can hold a read between fetching and returning.
    #[derive(Default)]
    struct Fake {
        clients: Mutex<BTreeMap<String, Client>>,
        reads: AtomicU64,
        fail_writes: AtomicBool,
        /// When set, `find` fetches the row, then waits for a permit before returning it.
        gate: Mutex<Option<(Arc<Semaphore>, Arc<Semaphore>)>>,
    }

    impl Fake {
        fn with(clients: &[Client]) -> Arc<Self> {
            let fake = Self::default();
            for c in clients {
                fake.put(c.clone());
            }
            Arc::new(fake)
        }

        fn put(&self, client: Client) {
            self.clients
                .lock()
                .unwrap()
                .insert(client.id.clone(), client);
        }

        fn reads(&self) -> u64 {
            self.reads.load(Ordering::SeqCst)
        }

        fn update(&self, id: &str, f: impl FnOnce(&mut Client)) -> Result<bool, StoreError> {
            let found = self.clients.lock().unwrap().get_mut(id).map(f).is_some();
            self.written(found)
        }

        fn written<T>(&self, value: T) -> Result<T, StoreError> {
            match self.fail_writes.load(Ordering::SeqCst) {
                true => Err(StoreError::Unavailable("answer lost".into())),
                false => Ok(value),
            }
        }
    }

    #[async_trait]
    impl ClientStore for Fake {
        async fn create(&self, client: &Client) -> Result<(), StoreError> {
            let mut clients = self.clients.lock().unwrap();
            if clients.contains_key(&client.id) {
                return Err(StoreError::Conflict);
            }
            clients.insert(client.id.clone(), client.clone());
            drop(clients);
            self.written(())
        }
        async fn find(&self, id: &str) -> Result<Option<Client>, StoreError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            let found = self.clients.lock().unwrap().get(id).cloned();
            let gate = self.gate.lock().unwrap().clone();
            if let Some((fetched, release)) = gate {
                fetched.add_permits(1);
                release.acquire().await.unwrap().forget();
            }
            Ok(found)
        }
        async fn list(&self) -> Result<Vec<Client>, StoreError> {
            Ok(self.clients.lock().unwrap().values().cloned().collect())
        }
        async fn set_secret(&self, id: &str, secret: SecretHash) -> Result<bool, StoreError> {
            self.update(id, |c| c.secret_hash = Some(secret))
        }
        async fn set_token_lifetimes(
            &self,
            id: &str,
            access: Option<Duration>,
            refresh: Option<Duration>,
        ) -> Result<bool, StoreError> {
            self.update(id, |c| {
                (c.access_token_ttl, c.refresh_token_ttl) = (access, refresh)
            })
        }
        async fn set_first_party(&self, id: &str, first_party: bool) -> Result<bool, StoreError> {
            self.update(id, |c| c.first_party = first_party)
        }
        async fn delete(&self, id: &str) -> Result<bool, StoreError> {
            let removed = self.clients.lock().unwrap().remove(id).is_some();
            self.written(removed)
        }
    }

    fn client(id: &str, secret: &str) -> Client {
        Client {
            id: id.into(),
            name: format!("{id} app"),
            secret_hash: Some(SecretHash::of(secret)),
            redirect_uris: vec!["https://app.example/cb".into()],
            grant_types: vec![GrantType::ClientCredentials],
            scopes: ScopeSet::from_tokens(["read"]),
            audiences: vec!["https://api.example".into()],
            access_token_ttl: None,
            refresh_token_ttl: None,
            first_party: false,
            post_logout_redirect_uris: Vec::new(),
            created_at: UnixTime(0),
        }
    }

    fn cached(fake: &Arc<Fake>, ttl: Duration) -> CachingClientStore {
        CachingClientStore::new(fake.clone(), 1000, ttl)
    }

    async fn find(store: &CachingClientStore, id: &str) -> Option<Client> {
        store.find(id).await.unwrap()
    }

    #[tokio::test]
    async fn a_second_find_is_answered_from_memory() {
        let fake = Fake::with(&[client("svc", "s1")]);
        let store = cached(&fake, TTL);
        assert_eq!(find(&store, "svc").await, Some(client("svc", "s1")));
        assert_eq!(find(&store, "svc").await, Some(client("svc", "s1")));
        assert_eq!(fake.reads(), 1);
        assert_eq!(store.list().await.unwrap(), vec![client("svc", "s1")]);
    }

    /// Fills the cache with `svc`, writes through the decorator, and checks that the next
    /// find reads the store again and sees the write, while another client stays cached.
    async fn check_write_evicts(
        write: impl for<'a> FnOnce(&'a CachingClientStore) -> BoxFuture<'a, ()>,
        expect: impl FnOnce(Option<Client>) -> bool,
    ) {
        let fake = Fake::with(&[client("svc", "s1"), client("other", "s2")]);
        let store = cached(&fake, TTL);
        for _ in 0..2 {
            assert!(find(&store, "svc").await.is_some());
            assert!(find(&store, "other").await.is_some());
        }
        assert_eq!(fake.reads(), 2, "filled once each");
        write(&store).await;
        assert!(expect(find(&store, "svc").await));
        assert_eq!(fake.reads(), 3, "read from the store again");
        assert!(find(&store, "other").await.is_some());
        assert_eq!(fake.reads(), 3, "other clients stay cached");
    }

    #[tokio::test]
    async fn set_secret_evicts_at_once() {
        check_write_evicts(
            |s| {
                Box::pin(async {
                    assert!(s.set_secret("svc", SecretHash::of("s9")).await.unwrap())
                })
            },
            |c| c.unwrap().secret_hash == Some(SecretHash::of("s9")),
        )
        .await;
    }

    #[tokio::test]
    async fn set_token_lifetimes_evicts_at_once() {
        let minute = Some(Duration::from_secs(60));
        check_write_evicts(
            |s| {
                Box::pin(async move {
                    assert!(s.set_token_lifetimes("svc", minute, None).await.unwrap())
                })
            },
            |c| c.is_some_and(|c| c.access_token_ttl == minute && c.refresh_token_ttl.is_none()),
        )
        .await;
    }

    #[tokio::test]
    async fn set_first_party_evicts_at_once() {
        check_write_evicts(
            |s| Box::pin(async { assert!(s.set_first_party("svc", true).await.unwrap()) }),
            |c| c.unwrap().first_party,
        )
        .await;
    }

    #[tokio::test]
    async fn delete_evicts_at_once() {
        check_write_evicts(
            |s| Box::pin(async { assert!(s.delete("svc").await.unwrap()) }),
            |c| c.is_none(),
        )
        .await;
    }

    #[tokio::test]
    async fn create_evicts_at_once() {
        // Deleted elsewhere while cached, then registered again here with other settings.
        check_write_evicts(
            |s| {
                Box::pin(async {
                    let fake = s.inner.clone();
                    fake.delete("svc").await.unwrap();
                    let again = Client {
                        redirect_uris: vec!["https://new.example/cb".into()],
                        ..client("svc", "s3")
                    };
                    s.create(&again).await.unwrap();
                })
            },
            |c| c.unwrap().redirect_uris == ["https://new.example/cb"],
        )
        .await;
    }

    #[tokio::test]
    async fn a_failed_write_evicts_too() {
        // The store may have committed a write whose answer was lost.
        let fake = Fake::with(&[client("svc", "s1")]);
        let store = cached(&fake, TTL);
        let _ = find(&store, "svc").await;
        fake.fail_writes.store(true, Ordering::SeqCst);
        assert!(store.delete("svc").await.is_err());
        assert_eq!(find(&store, "svc").await, None);
        assert_eq!(fake.reads(), 2);
    }

    #[tokio::test]
    async fn changes_made_elsewhere_show_within_the_ttl() {
        // moka measures time with its own clock, so the TTL is real and short.
        let ttl = Duration::from_millis(200);
        let fake = Fake::with(&[client("svc", "s1")]);
        let store = cached(&fake, ttl);
        let filled = Instant::now();
        assert!(find(&store, "svc").await.is_some());
        // Deleted behind the decorator's back (the CLI, another node).
        fake.clients.lock().unwrap().remove("svc");
        while find(&store, "svc").await.is_some() {
            assert!(filled.elapsed() < ttl, "served from memory past the TTL");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(filled.elapsed() >= ttl / 2, "expired long before the TTL");
    }

    #[tokio::test]
    async fn a_zero_ttl_caches_nothing() {
        let fake = Fake::with(&[client("svc", "s1")]);
        let store = cached(&fake, Duration::ZERO);
        for _ in 0..3 {
            assert!(find(&store, "svc").await.is_some());
        }
        assert_eq!(fake.reads(), 3);
        store.run_pending_tasks().await;
        assert!(store.is_empty());
    }

    #[tokio::test]
    async fn unknown_ids_are_not_cached() {
        let fake = Fake::with(&[]);
        let store = cached(&fake, TTL);
        for i in 0..5_000 {
            assert_eq!(find(&store, &format!("nobody-{i}")).await, None);
        }
        assert_eq!(find(&store, "nobody-0").await, None);
        assert_eq!(fake.reads(), 5_001);
        store.run_pending_tasks().await;
        assert_eq!(store.len(), 0);
        // A client registered elsewhere is found at once.
        fake.put(client("nobody-0", "s"));
        assert!(find(&store, "nobody-0").await.is_some());
    }

    #[tokio::test]
    async fn the_number_of_clients_held_is_bounded() {
        let clients: Vec<Client> = (0..500).map(|i| client(&format!("c{i}"), "s")).collect();
        let fake = Fake::with(&clients);
        let store = CachingClientStore::new(fake.clone(), 50, TTL);
        for c in &clients {
            assert_eq!(find(&store, &c.id).await.as_ref(), Some(c));
        }
        store.run_pending_tasks().await;
        assert!(store.len() <= 50, "{} clients held", store.len());
    }

    #[tokio::test]
    async fn a_read_racing_a_write_does_not_bring_the_old_client_back() {
        let fake = Fake::with(&[client("svc", "s1")]);
        let store = Arc::new(cached(&fake, TTL));
        let (fetched, release) = (Arc::new(Semaphore::new(0)), Arc::new(Semaphore::new(0)));
        *fake.gate.lock().unwrap() = Some((fetched.clone(), release.clone()));
        // A read fetches the client with its old secret and is held before it returns...
        let reader = tokio::spawn({
            let store = store.clone();
            async move { store.find("svc").await.unwrap() }
        });
        fetched.acquire().await.unwrap().forget();
        // ...while the secret is rotated through the decorator.
        *fake.gate.lock().unwrap() = None;
        assert!(store.set_secret("svc", SecretHash::of("s2")).await.unwrap());
        release.add_permits(1);
        let stale = reader.await.unwrap().unwrap();
        assert_eq!(
            stale.secret_hash,
            Some(SecretHash::of("s1")),
            "the read began first"
        );
        // The old value was not left in the cache.
        let now = find(&store, "svc").await.unwrap();
        assert_eq!(now.secret_hash, Some(SecretHash::of("s2")));
    }

    #[tokio::test]
    async fn authentication_through_the_cache_compares_the_current_hash() {
        let fake = Fake::with(&[client("svc", "s1")]);
        let store = cached(&fake, TTL);
        let basic = |secret: &str| ClientCredentials::Basic {
            id: "svc".into(),
            secret: secret.into(),
        };
        assert!(authenticate(&store, basic("s1")).await.is_ok());
        assert!(authenticate(&store, basic("s1")).await.is_ok());
        assert!(
            authenticate(&store, basic("wrong")).await.is_err(),
            "a hit still checks"
        );
        assert_eq!(fake.reads(), 1);
        assert!(store.set_secret("svc", SecretHash::of("s2")).await.unwrap());
        assert!(authenticate(&store, basic("s1")).await.is_err());
        assert!(authenticate(&store, basic("s2")).await.is_ok());
        assert!(store.delete("svc").await.unwrap());
        assert!(authenticate(&store, basic("s2")).await.is_err());
    }
}
