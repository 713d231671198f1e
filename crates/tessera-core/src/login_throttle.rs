//! Brute-force protection of the login form (OWASP ASVS V2.2.1, NIST SP 800-63B §5.2.2:
//! "limit the number of failed authentication attempts").
//!
//! Failed sign-ins are counted twice: per **account** (the username exactly as typed, held
//! only as its SHA-256) and per **client address** (an IPv4 address, or the /64 network of
//! an IPv6 one, since a single host usually owns a whole /64). For each:
//!
//! - the first `max_failures / 2` failures are free;
//! - each further failure makes the next attempt wait, doubling from the backoff base
//!   (1 s, 2 s, 4 s, ...; never longer than the lockout);
//! - the `max_failures`-th failure locks the key for the lockout period; when it ends the
//!   count starts again from zero;
//! - failures are forgotten after a lockout period without a new one (counted from the end
//!   of the wait the last one caused).
//!
//! While a key waits or is locked, attempts are refused *before* the password is checked:
//! no Argon2 work is spent on an attacker, and the answer cannot depend on the password.
//! The key is the typed username, looked up nowhere, so an unknown username is throttled
//! exactly like a known one. A successful sign-in clears its account's count, not the
//! address's (one valid account must not reset the count of everything else tried from
//! that address).
//!
//! An attempt under way counts as a failure until it ends: past the free allowance only one
//! attempt per key is checked at a time, so a burst of parallel requests cannot all get past
//! the count before the first failure lands.
//!
//! The counters live in this process's memory, bounded: **per node**. With N nodes behind a
//! load balancer that does not pin clients, an attacker gets up to N times the allowance,
//! and a restart forgets every count. When the map is full, expired records go first, then
//! the oldest tenth.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use crate::secret::SecretHash;

/// Records kept per scope before pruning; about 100 bytes each.
pub const DEFAULT_CAPACITY: usize = 100_000;

/// The limits, part of the policy so that a configuration reload changes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleSettings {
    /// Failures that lock an account (`TESSERA_LOGIN_MAX_FAILURES`).
    pub max_failures: u32,
    /// Failures that lock a client address (`TESSERA_LOGIN_IP_MAX_FAILURES`): higher, as
    /// many people may share one address (NAT, a corporate proxy).
    pub ip_max_failures: u32,
    /// How long a lockout lasts, and how long failures are remembered (`TESSERA_LOGIN_LOCKOUT`).
    pub lockout: Duration,
    /// The first wait once the free failures are used up; it doubles with each further
    /// failure (`TESSERA_LOGIN_BACKOFF`; zero: no waits, only the lockout).
    pub backoff: Duration,
}

impl Default for ThrottleSettings {
    /// 5 failures per account, 20 per address, 15-minute lockout, 1-second backoff base.
    fn default() -> Self {
        Self {
            max_failures: 5,
            ip_max_failures: 20,
            lockout: Duration::from_secs(15 * 60),
            backoff: Duration::from_secs(1),
        }
    }
}

/// What was counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The username.
    Account,
    /// The client address.
    Ip,
}

impl Scope {
    /// `account` or `ip`, as in metrics labels and audit events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Account => "account",
            Self::Ip => "ip",
        }
    }
}

/// An attempt refused without checking the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    /// Which count refused it (the one with the longer wait when both do).
    pub scope: Scope,
    /// Whether that key is locked out (rather than waiting out a backoff).
    pub locked: bool,
    /// How long until an attempt is considered again, rounded up to whole seconds.
    pub retry_after: Duration,
}

/// The failure counts of one node.
#[derive(Debug)]
pub struct LoginThrottle {
    accounts: Mutex<Counters<[u8; 32]>>,
    addresses: Mutex<Counters<IpAddr>>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl LoginThrottle {
    /// Empty counters holding at most `capacity` records per scope.
    pub fn new(capacity: usize) -> Self {
        Self {
            accounts: Mutex::new(Counters::new(capacity)),
            addresses: Mutex::new(Counters::new(capacity)),
        }
    }

    /// Starts an attempt for `username` from `ip` at `now_ms`, or refuses it: then the
    /// password must not be looked at.
    ///
    /// An attempt in flight counts as a failure until it ends, so that a burst of parallel
    /// requests cannot all get past the check before the first failure is counted: past the
    /// free allowance only one attempt per key is in flight at a time, and never more than
    /// would reach the lockout.
    pub fn begin(
        &self,
        username: &str,
        ip: Option<IpAddr>,
        settings: &ThrottleSettings,
        now_ms: i64,
    ) -> Result<Attempt<'_>, Throttled> {
        let account = account_key(username);
        let ip = ip.map(ip_key);
        let account_rule = Rule::new(settings.max_failures, settings);
        let ip_rule = Rule::new(settings.ip_max_failures, settings);
        let by_account = lock(&self.accounts).begin(account, &account_rule, now_ms);
        let by_ip = match ip {
            Some(ip) => lock(&self.addresses).begin(ip, &ip_rule, now_ms),
            None => Ok(()),
        };
        let refusal = match (by_account, by_ip) {
            (Ok(()), Ok(())) => {
                return Ok(Attempt {
                    throttle: self,
                    account,
                    ip,
                    settings: *settings,
                    open: true,
                });
            }
            (Err(a), Err(i)) if i.0 > a.0 => (Scope::Ip, i),
            (Err(a), Err(_)) => (Scope::Account, a),
            (Err(a), Ok(())) => {
                if let Some(ip) = ip {
                    lock(&self.addresses).release(&ip);
                }
                (Scope::Account, a)
            }
            (Ok(()), Err(i)) => {
                lock(&self.accounts).release(&account);
                (Scope::Ip, i)
            }
        };
        let (scope, (until, locked)) = refusal;
        Err(Throttled {
            scope,
            locked,
            retry_after: Duration::from_secs(ceil_secs(until - now_ms)),
        })
    }
}

/// An attempt under way: end it with [`failed`](Self::failed) or
/// [`succeeded`](Self::succeeded). Dropped without either (a storage error, a cancelled
/// request), it counts for nothing.
#[derive(Debug)]
pub struct Attempt<'a> {
    throttle: &'a LoginThrottle,
    account: [u8; 32],
    ip: Option<IpAddr>,
    settings: ThrottleSettings,
    open: bool,
}

impl Attempt<'_> {
    /// The password was wrong (or the user unknown): counts a failure for the account and
    /// the address; returns the scopes this failure locked (empty, one or both).
    pub fn failed(mut self, now_ms: i64) -> Vec<Scope> {
        self.open = false;
        let mut locked = Vec::new();
        let rule = Rule::new(self.settings.max_failures, &self.settings);
        if lock(&self.throttle.accounts).fail(self.account, &rule, now_ms) {
            locked.push(Scope::Account);
        }
        let rule = Rule::new(self.settings.ip_max_failures, &self.settings);
        if let Some(ip) = self.ip
            && lock(&self.throttle.addresses).fail(ip, &rule, now_ms)
        {
            locked.push(Scope::Ip);
        }
        locked
    }

    /// The sign-in succeeded: forgets the account's failures. The address's stay (one valid
    /// account must not reset the count of everything else tried from that address).
    pub fn succeeded(mut self) {
        self.open = false;
        lock(&self.throttle.accounts).clear(&self.account);
        if let Some(ip) = self.ip {
            lock(&self.throttle.addresses).release(&ip);
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if self.open {
            lock(&self.throttle.accounts).release(&self.account);
            if let Some(ip) = self.ip {
                lock(&self.throttle.addresses).release(&ip);
            }
        }
    }
}

/// The per-key rule of one scope, in milliseconds.
struct Rule {
    max_failures: u32,
    /// Failures that cost no wait: half the maximum.
    free: u32,
    lockout: i64,
    backoff: i64,
}

impl Rule {
    fn new(max_failures: u32, settings: &ThrottleSettings) -> Self {
        let max_failures = max_failures.max(1);
        Self {
            max_failures,
            free: max_failures / 2,
            lockout: millis(settings.lockout),
            backoff: millis(settings.backoff),
        }
    }
}

/// The state of one key.
#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    /// Attempts under way, each a failure until it ends otherwise.
    pending: u32,
    last_failure: i64,
    /// No attempt is considered before this instant.
    blocked_until: i64,
    /// Whether `blocked_until` ends a lockout (rather than a backoff).
    locked: bool,
}

impl Record {
    fn fresh(now: i64) -> Self {
        Self {
            failures: 0,
            pending: 0,
            last_failure: now,
            blocked_until: now,
            locked: false,
        }
    }

    /// Whether the failures no longer count: the lockout is over, or a lockout period has
    /// passed since the last failure and the wait it caused.
    fn expired(&self, lockout: i64, now: i64) -> bool {
        let quiet_since = self.last_failure.max(self.blocked_until);
        now >= self.blocked_until && (self.locked || now.saturating_sub(quiet_since) >= lockout)
    }

    /// Forgets expired failures, keeping the attempts under way.
    fn refresh(&mut self, lockout: i64, now: i64) {
        if self.expired(lockout, now) {
            *self = Self {
                pending: self.pending,
                ..Self::fresh(now)
            };
        }
    }

    /// Nothing left to remember.
    fn is_empty(&self) -> bool {
        self.failures == 0 && self.pending == 0 && !self.locked
    }
}

#[derive(Debug)]
struct Counters<K> {
    map: HashMap<K, Record>,
    capacity: usize,
}

impl<K: Eq + Hash + Copy> Counters<K> {
    fn new(capacity: usize) -> Self {
        Self {
            map: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// Starts an attempt, or says until when (and whether locked) the key must wait.
    fn begin(&mut self, key: K, rule: &Rule, now: i64) -> Result<(), (i64, bool)> {
        if !self.map.contains_key(&key) && self.map.len() >= self.capacity {
            self.prune(rule.lockout, now);
        }
        let record = self.map.entry(key).or_insert_with(|| Record::fresh(now));
        record.refresh(rule.lockout, now);
        if now < record.blocked_until {
            return Err((record.blocked_until, record.locked));
        }
        // Past the free allowance, one attempt at a time: its outcome sets the next wait.
        let in_flight = record.failures.saturating_add(record.pending);
        if record.pending > 0 && in_flight >= rule.free {
            return Err((now.saturating_add(1000), false));
        }
        record.pending += 1;
        Ok(())
    }

    /// Ends an attempt that counted for nothing.
    fn release(&mut self, key: &K) {
        if let Some(record) = self.map.get_mut(key) {
            record.pending = record.pending.saturating_sub(1);
            if record.is_empty() {
                self.map.remove(key);
            }
        }
    }

    /// Ends an attempt by forgetting the key's failures.
    fn clear(&mut self, key: &K) {
        if let Some(record) = self.map.get_mut(key) {
            let now = record.last_failure;
            *record = Record {
                pending: record.pending.saturating_sub(1),
                ..Record::fresh(now)
            };
            if record.is_empty() {
                self.map.remove(key);
            }
        }
    }

    /// Ends an attempt with a failure; `true` if it starts a lockout.
    fn fail(&mut self, key: K, rule: &Rule, now: i64) -> bool {
        let record = self.map.entry(key).or_insert_with(|| Record::fresh(now));
        record.pending = record.pending.saturating_sub(1);
        record.refresh(rule.lockout, now);
        record.failures = record.failures.saturating_add(1);
        record.last_failure = now;
        if record.failures >= rule.max_failures {
            let starts = !record.locked;
            record.locked = true;
            record.blocked_until = now.saturating_add(rule.lockout);
            return starts;
        }
        if record.failures > rule.free {
            let doublings = (record.failures - rule.free - 1).min(40);
            let wait = rule
                .backoff
                .saturating_mul(1_i64 << doublings)
                .min(rule.lockout);
            record.blocked_until = record.blocked_until.max(now.saturating_add(wait));
        }
        false
    }

    /// Makes room: drops expired records, then (if still full) the oldest tenth of those
    /// with no attempt under way.
    fn prune(&mut self, lockout: i64, now: i64) {
        self.map
            .retain(|_, r| r.pending > 0 || !r.expired(lockout, now));
        if self.map.len() < self.capacity {
            return;
        }
        let mut ages: Vec<i64> = self
            .map
            .values()
            .filter(|r| r.pending == 0)
            .map(|r| r.last_failure)
            .collect();
        if ages.is_empty() {
            return;
        }
        let cut = (ages.len() / 10).max(1);
        let (_, oldest_kept, _) = ages.select_nth_unstable(cut - 1);
        let threshold = *oldest_kept;
        let mut removed = 0;
        self.map.retain(|_, r| {
            if removed < cut && r.pending == 0 && r.last_failure <= threshold {
                removed += 1;
                false
            } else {
                true
            }
        });
    }
}

/// The account key: the username's SHA-256, so no typed text is kept in memory.
fn account_key(username: &str) -> [u8; 32] {
    SecretHash::of(username).0
}

/// The address key: IPv4 as is (IPv4-mapped IPv6 included), IPv6 by its /64 network.
fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let network = u128::from(v6) & !((1_u128 << 64) - 1);
                IpAddr::V6(network.into())
            }
        },
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The counters stay consistent at every step, so a panic elsewhere leaves them usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Whole seconds, rounded up, at least one.
fn ceil_secs(ms: i64) -> u64 {
    u64::try_from(ms.max(1)).unwrap_or(1).div_ceil(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1000;

    fn settings() -> ThrottleSettings {
        ThrottleSettings {
            max_failures: 5,
            ip_max_failures: 20,
            lockout: Duration::from_secs(900),
            backoff: Duration::from_secs(1),
        }
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    /// One failed attempt at `now`; panics if it is refused.
    fn fail(
        t: &LoginThrottle,
        user: &str,
        from: Option<IpAddr>,
        s: &ThrottleSettings,
        now: i64,
    ) -> Vec<Scope> {
        t.begin(user, from, s, now).unwrap().failed(now)
    }

    /// Fails `n` times for `user`, each attempt made as soon as it is allowed; returns the
    /// time after the last failure.
    fn fail_n(t: &LoginThrottle, user: &str, from: Option<IpAddr>, n: u32, mut now: i64) -> i64 {
        for _ in 0..n {
            let attempt = match t.begin(user, from, &settings(), now) {
                Ok(a) => a,
                Err(th) => {
                    now += i64::try_from(th.retry_after.as_millis()).unwrap();
                    t.begin(user, from, &settings(), now).unwrap()
                }
            };
            attempt.failed(now);
        }
        now
    }

    fn refused(t: &LoginThrottle, user: &str, from: Option<IpAddr>, now: i64) -> Throttled {
        t.begin(user, from, &settings(), now).unwrap_err()
    }

    #[test]
    fn free_failures_then_a_doubling_wait() {
        let t = LoginThrottle::default();
        let s = settings();
        // Failures 1 and 2 (of 5) are free.
        assert!(fail(&t, "alice", None, &s, 0).is_empty());
        assert!(fail(&t, "alice", None, &s, 0).is_empty());
        // Failure 3: wait 1 s; failure 4: wait 2 s.
        fail(&t, "alice", None, &s, 0);
        let th = refused(&t, "alice", None, 0);
        assert_eq!(th.retry_after, Duration::from_secs(1));
        assert_eq!((th.scope, th.locked), (Scope::Account, false));
        refused(&t, "alice", None, S - 1);
        fail(&t, "alice", None, &s, S);
        assert_eq!(
            refused(&t, "alice", None, S).retry_after,
            Duration::from_secs(2)
        );
        refused(&t, "alice", None, 3 * S - 1);
        drop(t.begin("alice", None, &s, 3 * S).unwrap());
    }

    #[test]
    fn the_backoff_doubles_up_to_the_lockout() {
        let mut s = settings();
        s.max_failures = 40;
        s.lockout = Duration::from_secs(60);
        let t = LoginThrottle::default();
        let mut waits = Vec::new();
        let mut now = 0;
        for n in 1..=30 {
            fail(&t, "bob", None, &s, now);
            if n > 20 {
                let retry = t.begin("bob", None, &s, now).unwrap_err().retry_after;
                waits.push(retry.as_secs());
                now += i64::try_from(retry.as_millis()).unwrap();
            }
        }
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]);
    }

    #[test]
    fn the_nth_failure_locks_and_the_lockout_releases() {
        let t = LoginThrottle::default();
        let mut now = fail_n(&t, "alice", None, 4, 0);
        if let Err(th) = t.begin("alice", None, &settings(), now) {
            now += i64::try_from(th.retry_after.as_millis()).unwrap();
        }
        let last = t.begin("alice", None, &settings(), now).unwrap();
        assert_eq!(last.failed(now), vec![Scope::Account]);
        let th = refused(&t, "alice", None, now);
        assert_eq!((th.scope, th.locked), (Scope::Account, true));
        assert_eq!(th.retry_after, Duration::from_secs(900));
        // Still locked a second before the end.
        refused(&t, "alice", None, now + 899 * S);
        // Released after the lockout, with a fresh count: two free failures again.
        let later = now + 900 * S;
        fail(&t, "alice", None, &settings(), later);
        fail(&t, "alice", None, &settings(), later);
        drop(t.begin("alice", None, &settings(), later).unwrap());
    }

    #[test]
    fn a_success_resets_the_account_but_not_the_address() {
        let t = LoginThrottle::default();
        let from = ip("203.0.113.7");
        let now = fail_n(&t, "alice", from, 4, 0);
        let later = now + 10 * S;
        t.begin("alice", from, &settings(), later)
            .unwrap()
            .succeeded();
        // The account starts again from zero...
        fail(&t, "alice", None, &settings(), later);
        fail(&t, "alice", None, &settings(), later);
        drop(t.begin("alice", None, &settings(), later).unwrap());
        // ...while the address keeps its four: with a limit of 7 (3 free), a fifth makes
        // the next attempt from it wait, whatever the username.
        let mut s = settings();
        s.ip_max_failures = 7;
        fail(&t, "carol", from, &s, later);
        assert_eq!(
            t.begin("dave", from, &s, later).unwrap_err().scope,
            Scope::Ip
        );
    }

    #[test]
    fn an_unknown_username_is_throttled_like_a_known_one() {
        // The throttle never looks a user up: any two usernames with the same history get
        // the same answers at the same times.
        let t = LoginThrottle::default();
        let mut answers = Vec::new();
        for user in ["alice", "no-such-user"] {
            let mut trace = Vec::new();
            for step in 0..8 {
                let now = step * 1500;
                match t.begin(user, None, &settings(), now) {
                    Ok(attempt) => trace.push(Ok(attempt.failed(now))),
                    Err(th) => trace.push(Err(th)),
                }
            }
            answers.push(trace);
        }
        assert_eq!(answers[0], answers[1]);
    }

    #[test]
    fn addresses_are_counted_across_usernames() {
        let mut s = settings();
        s.ip_max_failures = 4;
        s.backoff = Duration::ZERO;
        let t = LoginThrottle::default();
        let from = ip("198.51.100.4");
        let mut locked = Vec::new();
        for n in 0..4 {
            locked.extend(fail(&t, &format!("user{n}"), from, &s, 0));
        }
        assert_eq!(locked, vec![Scope::Ip]);
        let th = t.begin("someone-else", from, &s, 0).unwrap_err();
        assert_eq!((th.scope, th.locked), (Scope::Ip, true));
        // The refused attempt left nothing behind for the account.
        assert!(
            !lock(&t.accounts)
                .map
                .contains_key(&account_key("someone-else"))
        );
        // Another address is unaffected.
        drop(t.begin("someone-else", ip("198.51.100.5"), &s, 0).unwrap());
    }

    #[test]
    fn parallel_attempts_cannot_outrun_the_count() {
        let t = LoginThrottle::default();
        let s = settings();
        // Two attempts (the free allowance) may be under way at once, not a third...
        let a = t.begin("alice", None, &s, 0).unwrap();
        let b = t.begin("alice", None, &s, 0).unwrap();
        let th = t.begin("alice", None, &s, 0).unwrap_err();
        assert_eq!((th.locked, th.retry_after), (false, Duration::from_secs(1)));
        a.failed(0);
        b.failed(0);
        // ...and past the allowance only one at a time.
        let c = t.begin("alice", None, &s, 0).unwrap();
        assert!(t.begin("alice", None, &s, 0).is_err());
        c.failed(0);
        // A dropped attempt (cancelled request) counts for nothing.
        drop(t.begin("alice", None, &s, S).unwrap());
        fail(&t, "alice", None, &s, S);
        assert_eq!(
            refused(&t, "alice", None, S).retry_after,
            Duration::from_secs(2)
        );
    }

    #[test]
    fn ipv6_hosts_are_counted_by_their_64_network() {
        assert_eq!(
            ip_key("2001:db8:1:2:aaaa::1".parse().unwrap()),
            "2001:db8:1:2::".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            ip_key("::ffff:192.0.2.1".parse().unwrap()),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn failures_are_forgotten_after_a_quiet_lockout_period() {
        let t = LoginThrottle::default();
        let now = fail_n(&t, "alice", None, 2, 0);
        let later = now + 900 * S;
        // Two more failures are free again: the earlier two were forgotten.
        fail(&t, "alice", None, &settings(), later);
        fail(&t, "alice", None, &settings(), later);
        drop(t.begin("alice", None, &settings(), later).unwrap());
    }

    #[test]
    fn a_full_map_makes_room_and_stays_bounded() {
        let t = LoginThrottle::new(100);
        for n in 0..1000 {
            fail(&t, &format!("user{n}"), None, &settings(), n);
        }
        assert!(lock(&t.accounts).map.len() <= 100);
        // The newest records survive.
        fail(&t, "user999", None, &settings(), 1000);
        fail(&t, "user999", None, &settings(), 1000);
        assert!(t.begin("user999", None, &settings(), 1000).is_err());
    }
}
