//! The in-process validation cache: a bounded `quick_cache` map from token hash to a packed
//! result, each entry carrying its own deadline.
//!
//! Memory is the point of the layout (issue 11: a million cached validations in at most
//! 300 MB). A moka entry alone costs about 350 bytes before its value; a quick_cache entry
//! is the key, the value and a few bytes of bookkeeping in a slab, plus a `u32` in an index.
//! The value is one boxed byte string: the three timestamps, then each member as a `u16`
//! header followed by its bytes, or as the index of an interned string. The members that
//! repeat across tokens (`iss`, `aud`, `token_type`, `scope`, `client_id`) are interned in a
//! bounded table, so an entry holds only its `jti` and `sub` (and not even `sub` when it is
//! the `client_id`, as in client-credentials tokens).
//!
//! Expiry is checked on read: an entry past its deadline is a miss and is removed. Entries
//! nobody reads again stay until capacity pushes them out (S3-FIFO), so memory is bounded by
//! the capacity, never by time.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use quick_cache::sync::Cache;
use tessera_core::introspection::{ActiveToken, CacheTier, ValidationCache};
use tessera_core::secret::SecretHash;

/// How many distinct strings the interning table holds at most; later ones are stored inline.
const INTERNED_MAX: usize = 4096;
/// Strings longer than this are never interned (they would make the table's bound large).
const INTERNED_LEN_MAX: usize = 256;
/// A member header below this is an inline length.
const INLINE_MAX: u16 = 0x8000;
/// Header of an absent `jti`.
const ABSENT: u16 = 0xFFFF;
/// Header of a `sub` equal to the `client_id`.
const SAME_AS_CLIENT: u16 = 0xFFFE;

/// One cached validation: when it stops being served, and the packed result.
#[derive(Clone)]
struct Entry {
    /// Nanoseconds since the cache's epoch.
    deadline: u64,
    packed: Box<[u8]>,
}

/// A bounded in-process cache of active validations; cheap to clone (shared state inside).
#[derive(Clone)]
pub struct LocalCache {
    inner: Arc<Inner>,
}

struct Inner {
    entries: Cache<[u8; 32], Entry>,
    /// `jti`s revoked while their entries may still live, each with the deadline (nanoseconds
    /// since the epoch) until which it is refused: at least as long as any entry may live.
    revoked: Cache<Box<str>, u64>,
    strings: Interner,
    epoch: Instant,
    max_ttl: Duration,
    revoked_ttl: Duration,
    /// Time added to the real clock, so tests can pass entries' deadlines without waiting.
    #[cfg(test)]
    skew: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for LocalCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCache")
            .field("entries", &self.inner.entries.len())
            .field("max_ttl", &self.inner.max_ttl)
            .finish_non_exhaustive()
    }
}

impl LocalCache {
    /// A cache of at most `capacity` entries (approximately: the bound is kept per shard),
    /// none living longer than `max_ttl`.
    pub fn new(capacity: u64, max_ttl: Duration) -> Self {
        let capacity = usize::try_from(capacity).unwrap_or(usize::MAX);
        Self {
            inner: Arc::new(Inner {
                entries: Cache::new(capacity),
                // Revocations are rarer than validations; the bound is a safety net.
                revoked: Cache::new(capacity.max(1024)),
                strings: Interner::new(),
                epoch: Instant::now(),
                max_ttl,
                revoked_ttl: max_ttl.max(Duration::from_secs(1)),
                #[cfg(test)]
                skew: std::sync::atomic::AtomicU64::new(0),
            }),
        }
    }

    /// The longest TTL an entry may have (the validation cache TTL); longer puts are cut.
    pub fn max_ttl(&self) -> Duration {
        self.inner.max_ttl
    }

    /// Whether `jti` was evicted recently enough that its entries may still live elsewhere.
    pub fn is_revoked(&self, jti: &str) -> bool {
        self.inner
            .revoked
            .get(jti)
            .is_some_and(|until| self.now() < until)
    }

    /// Entries currently held, expired ones included until they are read or pushed out.
    pub fn len(&self) -> u64 {
        self.inner.entries.len() as u64
    }

    /// Whether the cache holds no entry.
    pub fn is_empty(&self) -> bool {
        self.inner.entries.is_empty()
    }

    /// Nanoseconds since the cache's epoch.
    fn now(&self) -> u64 {
        let now = nanos(self.inner.epoch.elapsed());
        #[cfg(test)]
        let now = now.saturating_add(self.inner.skew.load(std::sync::atomic::Ordering::SeqCst));
        now
    }

    #[cfg(test)]
    fn advance(&self, by: Duration) {
        self.inner
            .skew
            .fetch_add(nanos(by), std::sync::atomic::Ordering::SeqCst);
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[async_trait]
impl ValidationCache for LocalCache {
    async fn get(&self, key: &SecretHash) -> Option<(ActiveToken, CacheTier)> {
        let inner = &self.inner;
        let entry = inner.entries.get(&key.0)?;
        if self.now() >= entry.deadline {
            // Only this entry: a fresh one put in the meantime stays.
            inner
                .entries
                .remove_if(&key.0, |e| e.deadline == entry.deadline);
            return None;
        }
        let token = inner.strings.unpack(&entry.packed)?;
        if token.jti.as_deref().is_some_and(|jti| self.is_revoked(jti)) {
            inner.entries.remove(&key.0);
            return None;
        }
        Some((token, CacheTier::Local))
    }

    async fn put(&self, key: &SecretHash, token: &ActiveToken, ttl: Duration) {
        let inner = &self.inner;
        // Never past `max_ttl`: revocation markers live that long and no longer.
        let ttl = ttl.min(inner.max_ttl);
        if ttl.is_zero() {
            return;
        }
        // A member too long to pack is simply not cached (a miss is always correct).
        let Some(packed) = inner.strings.pack(token) else {
            return;
        };
        let deadline = self.now().saturating_add(nanos(ttl));
        inner.entries.insert(key.0, Entry { deadline, packed });
        // A revocation that raced with this validation wins: check after inserting, so that
        // either the eviction's marker is seen here or `get` sees it.
        if let Some(jti) = &token.jti
            && self.is_revoked(jti)
        {
            inner.entries.remove(&key.0);
        }
    }

    async fn evict_jti(&self, jti: &str) {
        // Marking is enough: `get` refuses entries of a marked jti and removes them.
        let until = self.now().saturating_add(nanos(self.inner.revoked_ttl));
        self.inner.revoked.insert(jti.into(), until);
    }
}

/// The strings that repeat across entries, each stored once; bounded, never shrinking.
struct Interner {
    index: RwLock<HashMap<Box<str>, u16>>,
    /// Filled in order under the `index` write lock; read without locking.
    strings: Box<[OnceLock<Box<str>>]>,
}

impl Interner {
    fn new() -> Self {
        Self {
            index: RwLock::new(HashMap::new()),
            strings: (0..INTERNED_MAX).map(|_| OnceLock::new()).collect(),
        }
    }

    /// The index of `s`, interning it if there is room.
    fn intern(&self, s: &str) -> Option<u16> {
        if s.len() > INTERNED_LEN_MAX {
            return None;
        }
        let read = match self.index.read() {
            Ok(index) => index.get(s).copied(),
            Err(poisoned) => poisoned.into_inner().get(s).copied(),
        };
        if read.is_some() {
            return read;
        }
        let mut index = match self.index.write() {
            Ok(index) => index,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(&i) = index.get(s) {
            return Some(i);
        }
        let next = index.len();
        if next >= INTERNED_MAX {
            return None;
        }
        let i = u16::try_from(next).ok()?;
        self.strings[next].get_or_init(|| s.into());
        index.insert(s.into(), i);
        Some(i)
    }

    fn resolve(&self, i: u16) -> Option<&str> {
        self.strings.get(usize::from(i))?.get().map(|s| &**s)
    }

    /// `exp`, `iat`, `nbf`, then `scope`, `client_id`, `sub`, `aud`, `iss`, `jti`,
    /// `token_type`, each a `u16` header (inline length, interned index, or a marker).
    fn pack(&self, token: &ActiveToken) -> Option<Box<[u8]>> {
        let mut out = Vec::with_capacity(
            24 + 14 + token.jti.as_ref().map_or(0, String::len) + token.sub.len(),
        );
        for n in [token.exp, token.iat, token.nbf] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        self.shared(&mut out, &token.scope)?;
        self.shared(&mut out, &token.client_id)?;
        if token.sub == token.client_id {
            out.extend_from_slice(&SAME_AS_CLIENT.to_le_bytes());
        } else {
            inline(&mut out, &token.sub)?;
        }
        self.shared(&mut out, &token.aud)?;
        self.shared(&mut out, &token.iss)?;
        match &token.jti {
            Some(jti) => inline(&mut out, jti)?,
            None => out.extend_from_slice(&ABSENT.to_le_bytes()),
        }
        self.shared(&mut out, &token.token_type)?;
        Some(out.into_boxed_slice())
    }

    fn shared(&self, out: &mut Vec<u8>, s: &str) -> Option<()> {
        match self.intern(s) {
            Some(i) => {
                out.extend_from_slice(&(INLINE_MAX | i).to_le_bytes());
                Some(())
            }
            None => inline(out, s),
        }
    }

    fn unpack(&self, packed: &[u8]) -> Option<ActiveToken> {
        let mut r = Reader { rest: packed };
        let (exp, iat, nbf) = (r.i64()?, r.i64()?, r.i64()?);
        let scope = self.member(&mut r)?;
        let client_id = self.member(&mut r)?;
        let sub = match r.peek_header()? {
            SAME_AS_CLIENT => {
                r.u16()?;
                client_id.clone()
            }
            _ => self.member(&mut r)?,
        };
        let aud = self.member(&mut r)?;
        let iss = self.member(&mut r)?;
        let jti = match r.peek_header()? {
            ABSENT => {
                r.u16()?;
                None
            }
            _ => Some(self.member(&mut r)?),
        };
        let token_type = self.member(&mut r)?;
        Some(ActiveToken {
            scope,
            client_id,
            sub,
            aud,
            iss,
            exp,
            iat,
            nbf,
            jti,
            token_type,
        })
    }

    fn member(&self, r: &mut Reader<'_>) -> Option<String> {
        let header = r.u16()?;
        if header < INLINE_MAX {
            let bytes = r.take(usize::from(header))?;
            return std::str::from_utf8(bytes).ok().map(str::to_owned);
        }
        self.resolve(header & !INLINE_MAX).map(str::to_owned)
    }
}

fn inline(out: &mut Vec<u8>, s: &str) -> Option<()> {
    let len = u16::try_from(s.len()).ok().filter(|&l| l < INLINE_MAX)?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(s.as_bytes());
    Some(())
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.rest.split_at_checked(n)?;
        self.rest = rest;
        Some(head)
    }

    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }

    fn peek_header(&self) -> Option<u16> {
        Some(u16::from_le_bytes(self.rest.get(..2)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(jti: &str, exp: i64) -> ActiveToken {
        ActiveToken {
            scope: "read".into(),
            client_id: "c".into(),
            sub: "s".into(),
            aud: "a".into(),
            iss: "i".into(),
            exp,
            iat: 0,
            nbf: 0,
            jti: Some(jti.into()),
            token_type: "Bearer".into(),
        }
    }

    #[tokio::test]
    async fn hit_then_eviction_by_jti() {
        let cache = LocalCache::new(100, Duration::from_secs(300));
        let key = SecretHash::of("t1");
        cache
            .put(&key, &token("j1", 10), Duration::from_secs(60))
            .await;
        assert_eq!(
            cache.get(&key).await.map(|(t, _)| t.jti),
            Some(Some("j1".into()))
        );
        cache.evict_jti("j2").await;
        assert!(
            cache.get(&key).await.is_some(),
            "another jti leaves it alone"
        );
        cache.evict_jti("j1").await;
        assert!(cache.get(&key).await.is_none());
        assert!(cache.is_empty(), "the refused entry is removed");
    }

    #[tokio::test]
    async fn a_put_after_the_eviction_is_refused() {
        let cache = LocalCache::new(100, Duration::from_secs(300));
        cache.evict_jti("j1").await;
        let key = SecretHash::of("t1");
        cache
            .put(&key, &token("j1", 10), Duration::from_secs(60))
            .await;
        assert!(cache.get(&key).await.is_none());
        assert!(cache.is_empty(), "the late put is taken out again");
    }

    #[tokio::test]
    async fn a_revocation_outlives_every_entry_it_may_block() {
        let cache = LocalCache::new(100, Duration::from_secs(300));
        cache.evict_jti("j1").await;
        cache.advance(Duration::from_secs(299));
        assert!(cache.is_revoked("j1"));
        let key = SecretHash::of("t1");
        // Asked for an hour, the entry gets at most max_ttl (300 s) ...
        cache
            .put(&key, &token("j1", 10), Duration::from_secs(3600))
            .await;
        assert!(cache.get(&key).await.is_none());
        // ... and once the marker has lapsed, a new entry of that jti is served again.
        cache.advance(Duration::from_secs(2));
        assert!(!cache.is_revoked("j1"));
        cache
            .put(&key, &token("j1", 10), Duration::from_secs(3600))
            .await;
        assert!(cache.get(&key).await.is_some());
        cache.advance(Duration::from_secs(300));
        assert!(
            cache.get(&key).await.is_none(),
            "cut to max_ttl, not the hour asked for"
        );
    }

    #[tokio::test]
    async fn each_entry_lives_exactly_its_own_ttl() {
        let cache = LocalCache::new(100, Duration::from_secs(300));
        let short = SecretHash::of("short");
        let long = SecretHash::of("long");
        cache
            .put(&short, &token("a", 10), Duration::from_secs(10))
            .await;
        cache
            .put(&long, &token("b", 10), Duration::from_secs(60))
            .await;
        cache.advance(Duration::from_millis(9_999));
        assert!(
            cache.get(&short).await.is_some(),
            "just before its deadline"
        );
        cache.advance(Duration::from_millis(1));
        assert!(cache.get(&short).await.is_none(), "at its deadline");
        assert_eq!(cache.len(), 1, "the expired entry was removed on read");
        assert!(cache.get(&long).await.is_some());
        cache.advance(Duration::from_secs(50));
        assert!(cache.get(&long).await.is_none());
        assert!(cache.is_empty());
    }

    #[tokio::test]
    async fn entries_expire_on_the_real_clock() {
        let cache = LocalCache::new(100, Duration::from_secs(300));
        let short = SecretHash::of("short");
        let long = SecretHash::of("long");
        cache
            .put(&short, &token("a", 10), Duration::from_millis(50))
            .await;
        cache
            .put(&long, &token("b", 10), Duration::from_secs(60))
            .await;
        let deadline = Instant::now() + Duration::from_secs(5);
        while cache.get(&short).await.is_some() {
            assert!(Instant::now() < deadline, "the short entry never expired");
            tokio::task::yield_now().await;
        }
        assert!(cache.get(&long).await.is_some());
    }

    #[tokio::test]
    async fn a_zero_ttl_caches_nothing() {
        let cache = LocalCache::new(100, Duration::from_secs(300));
        let key = SecretHash::of("t1");
        cache.put(&key, &token("j1", 10), Duration::ZERO).await;
        assert!(cache.get(&key).await.is_none());
        assert!(cache.is_empty());
    }

    #[tokio::test]
    async fn capacity_is_bounded() {
        let cache = LocalCache::new(10, Duration::from_secs(300));
        for i in 0..1000 {
            let key = SecretHash::of(&format!("t{i}"));
            cache
                .put(&key, &token(&format!("j{i}"), 10), Duration::from_secs(60))
                .await;
        }
        assert!(cache.len() <= 10, "holds {}", cache.len());
        let last = SecretHash::of("t999");
        assert!(cache.get(&last).await.is_some(), "the newest entry is held");
    }

    #[tokio::test]
    async fn every_member_comes_back_as_it_was_put() {
        let cache = LocalCache::new(100, Duration::from_secs(300));
        let cases = [
            token("j1", 1_900_000_000),
            ActiveToken {
                sub: "same".into(),
                client_id: "same".into(),
                scope: String::new(),
                exp: -5,
                iat: i64::MAX,
                nbf: i64::MIN,
                ..token("j2", 0)
            },
            ActiveToken {
                jti: None,
                token_type: "refresh_token".into(),
                iss: "x".repeat(INTERNED_LEN_MAX + 1),
                aud: "ä ü 🦀".into(),
                sub: String::new(),
                ..token("", 7)
            },
        ];
        for (i, t) in cases.iter().enumerate() {
            let key = SecretHash::of(&format!("t{i}"));
            cache.put(&key, t, Duration::from_secs(60)).await;
            assert_eq!(cache.get(&key).await.map(|(t, _)| t).as_ref(), Some(t));
        }
    }

    #[tokio::test]
    async fn an_unpackable_member_is_not_cached() {
        let cache = LocalCache::new(100, Duration::from_secs(300));
        let key = SecretHash::of("t1");
        let huge = ActiveToken {
            sub: "s".repeat(usize::from(INLINE_MAX)),
            ..token("j1", 10)
        };
        cache.put(&key, &huge, Duration::from_secs(60)).await;
        assert!(cache.get(&key).await.is_none());
    }

    #[test]
    fn interning_is_bounded_and_then_falls_back_to_inline() {
        let strings = Interner::new();
        for i in 0..INTERNED_MAX {
            assert_eq!(strings.intern(&format!("s{i}")), u16::try_from(i).ok());
        }
        assert_eq!(strings.intern("one more"), None);
        assert_eq!(
            strings.intern("s7"),
            Some(7),
            "known strings keep their index"
        );
        let t = ActiveToken {
            scope: "one more".into(),
            ..token("j", 1)
        };
        let packed = strings.pack(&t).expect("packs inline");
        assert_eq!(strings.unpack(&packed), Some(t));
    }

    #[test]
    fn a_truncated_buffer_unpacks_to_nothing() {
        let strings = Interner::new();
        let packed = strings.pack(&token("j1", 1)).expect("packs");
        for len in 0..packed.len() {
            assert_eq!(strings.unpack(&packed[..len]), None, "{len} bytes");
        }
    }
}
