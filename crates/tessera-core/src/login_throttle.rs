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
//! - failures are forgotten after a lockout period without a new one.
//!
//! While a key waits or is locked, attempts are refused *before* the password is checked:
//! no Argon2 work is spent on an attacker, and the answer cannot depend on the password.
//! The key is the typed username, looked up nowhere, so an unknown username is throttled
//! exactly like a known one. A successful sign-in clears its account's count, not the
//! address's (one valid account must not reset the count of everything else tried from
//! that address).
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

    /// Whether an attempt for `username` from `ip` may be checked at `now_ms`; when not,
    /// the password must not be looked at.
    pub fn check(
        &self,
        username: &str,
        ip: Option<IpAddr>,
        settings: &ThrottleSettings,
        now_ms: i64,
    ) -> Result<(), Throttled> {
        let lockout = millis(settings.lockout);
        let account = lock(&self.accounts).blocked(&account_key(username), lockout, now_ms);
        let address = ip.and_then(|ip| lock(&self.addresses).blocked(&ip_key(ip), lockout, now_ms));
        let throttled = [(Scope::Account, account), (Scope::Ip, address)]
            .into_iter()
            .filter_map(|(scope, blocked)| blocked.map(|(until, locked)| (scope, until, locked)))
            .max_by_key(|(_, until, _)| *until);
        match throttled {
            None => Ok(()),
            Some((scope, until, locked)) => Err(Throttled {
                scope,
                locked,
                retry_after: Duration::from_secs(ceil_secs(until - now_ms)),
            }),
        }
    }

    /// Counts a failed attempt; returns the scopes this failure locked (empty, one or both).
    pub fn failed(
        &self,
        username: &str,
        ip: Option<IpAddr>,
        settings: &ThrottleSettings,
        now_ms: i64,
    ) -> Vec<Scope> {
        let mut locked = Vec::new();
        let rule = |max| Rule {
            max_failures: max,
            lockout: millis(settings.lockout),
            backoff: millis(settings.backoff),
        };
        if lock(&self.accounts).fail(account_key(username), &rule(settings.max_failures), now_ms) {
            locked.push(Scope::Account);
        }
        if let Some(ip) = ip
            && lock(&self.addresses).fail(ip_key(ip), &rule(settings.ip_max_failures), now_ms)
        {
            locked.push(Scope::Ip);
        }
        locked
    }

    /// A successful sign-in: forgets the account's failures (the address's stay).
    pub fn succeeded(&self, username: &str) {
        lock(&self.accounts).map.remove(&account_key(username));
    }
}

/// The per-key rule of one scope, in milliseconds.
struct Rule {
    max_failures: u32,
    lockout: i64,
    backoff: i64,
}

/// The state of one key.
#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last_failure: i64,
    /// No attempt is considered before this instant.
    blocked_until: i64,
    /// Whether `blocked_until` ends a lockout (rather than a backoff).
    locked: bool,
}

impl Record {
    /// Whether the record no longer counts: its lockout is over, or it has had no failure
    /// for a lockout period.
    fn expired(&self, lockout: i64, now: i64) -> bool {
        now >= self.blocked_until
            && (self.locked || now.saturating_sub(self.last_failure) >= lockout)
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

    /// `Some((until, locked))` while `key` may not attempt.
    fn blocked(&mut self, key: &K, lockout: i64, now: i64) -> Option<(i64, bool)> {
        let record = *self.map.get(key)?;
        if record.expired(lockout, now) {
            self.map.remove(key);
            return None;
        }
        (now < record.blocked_until).then_some((record.blocked_until, record.locked))
    }

    /// Counts a failure; `true` if it starts a lockout.
    fn fail(&mut self, key: K, rule: &Rule, now: i64) -> bool {
        if !self.map.contains_key(&key) && self.map.len() >= self.capacity {
            self.prune(rule.lockout, now);
        }
        let record = self.map.entry(key).or_insert(Record {
            failures: 0,
            last_failure: now,
            blocked_until: now,
            locked: false,
        });
        if record.expired(rule.lockout, now) {
            *record = Record {
                failures: 0,
                last_failure: now,
                blocked_until: now,
                locked: false,
            };
        }
        record.failures = record.failures.saturating_add(1);
        record.last_failure = now;
        if record.failures >= rule.max_failures {
            let starts = !record.locked;
            record.locked = true;
            record.blocked_until = now.saturating_add(rule.lockout);
            return starts;
        }
        let free = rule.max_failures / 2;
        if record.failures > free {
            let doublings = (record.failures - free - 1).min(40);
            let wait = rule
                .backoff
                .saturating_mul(1_i64 << doublings)
                .min(rule.lockout);
            record.blocked_until = record.blocked_until.max(now.saturating_add(wait));
        }
        false
    }

    /// Makes room: drops expired records, then (if still full) the oldest tenth.
    fn prune(&mut self, lockout: i64, now: i64) {
        self.map.retain(|_, r| !r.expired(lockout, now));
        if self.map.len() < self.capacity {
            return;
        }
        let mut ages: Vec<i64> = self.map.values().map(|r| r.last_failure).collect();
        let cut = (ages.len() / 10).max(1);
        let (_, oldest_kept, _) = ages.select_nth_unstable(cut - 1);
        let threshold = *oldest_kept;
        let mut removed = 0;
        self.map.retain(|_, r| {
            if removed < cut && r.last_failure <= threshold {
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

    /// Fails `n` times for `user`, each attempt made as soon as it is allowed; returns the
    /// time after the last failure.
    fn fail_n(t: &LoginThrottle, user: &str, from: Option<IpAddr>, n: u32, mut now: i64) -> i64 {
        for _ in 0..n {
            if let Err(th) = t.check(user, from, &settings(), now) {
                now += i64::try_from(th.retry_after.as_millis()).unwrap();
            }
            t.check(user, from, &settings(), now).unwrap();
            t.failed(user, from, &settings(), now);
        }
        now
    }

    #[test]
    fn free_failures_then_a_doubling_wait() {
        let t = LoginThrottle::default();
        let now = 0;
        // Failures 1 and 2 (of 5) are free.
        for _ in 0..2 {
            t.check("alice", None, &settings(), now).unwrap();
            assert!(t.failed("alice", None, &settings(), now).is_empty());
        }
        t.check("alice", None, &settings(), now).unwrap();
        // Failure 3: wait 1 s; failure 4: wait 2 s.
        t.failed("alice", None, &settings(), now);
        let th = t.check("alice", None, &settings(), now).unwrap_err();
        assert_eq!(th.retry_after, Duration::from_secs(1));
        assert_eq!((th.scope, th.locked), (Scope::Account, false));
        assert!(t.check("alice", None, &settings(), now + S - 1).is_err());
        t.check("alice", None, &settings(), now + S).unwrap();
        t.failed("alice", None, &settings(), now + S);
        let th = t.check("alice", None, &settings(), now + S).unwrap_err();
        assert_eq!(th.retry_after, Duration::from_secs(2));
        assert!(
            t.check("alice", None, &settings(), now + 3 * S - 1)
                .is_err()
        );
        t.check("alice", None, &settings(), now + 3 * S).unwrap();
    }

    #[test]
    fn the_backoff_doubles_up_to_the_lockout() {
        let mut s = settings();
        s.max_failures = 40;
        s.lockout = Duration::from_secs(60);
        let t = LoginThrottle::default();
        let mut waits = Vec::new();
        for n in 1..=30 {
            t.failed("bob", None, &s, 0);
            if n > 20 {
                let retry = t.check("bob", None, &s, 0).unwrap_err().retry_after;
                waits.push(retry.as_secs());
            }
        }
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]);
    }

    #[test]
    fn the_nth_failure_locks_and_the_lockout_releases() {
        let t = LoginThrottle::default();
        let mut now = fail_n(&t, "alice", None, 4, 0);
        if let Err(th) = t.check("alice", None, &settings(), now) {
            now += i64::try_from(th.retry_after.as_millis()).unwrap();
        }
        assert_eq!(
            t.failed("alice", None, &settings(), now),
            vec![Scope::Account]
        );
        let th = t.check("alice", None, &settings(), now).unwrap_err();
        assert_eq!((th.scope, th.locked), (Scope::Account, true));
        assert_eq!(th.retry_after, Duration::from_secs(900));
        // Still locked a second before the end, whatever is tried.
        assert!(t.check("alice", None, &settings(), now + 899 * S).is_err());
        // Released after the lockout, with a fresh count: two free failures again.
        let later = now + 900 * S;
        t.check("alice", None, &settings(), later).unwrap();
        t.failed("alice", None, &settings(), later);
        t.failed("alice", None, &settings(), later);
        t.check("alice", None, &settings(), later).unwrap();
    }

    #[test]
    fn a_success_resets_the_account_but_not_the_address() {
        let t = LoginThrottle::default();
        let from = ip("203.0.113.7");
        let now = fail_n(&t, "alice", from, 4, 0);
        t.succeeded("alice");
        // The account starts again from zero...
        t.failed("alice", None, &settings(), now);
        t.failed("alice", None, &settings(), now);
        t.check("alice", None, &settings(), now).unwrap();
        // ...while the address keeps its four: with a limit of 7 (3 free), a fifth makes
        // the next attempt from it wait, whatever the username.
        let mut s = settings();
        s.ip_max_failures = 7;
        t.failed("carol", from, &s, now);
        assert!(t.check("dave", from, &s, now).is_err());
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
                trace.push(t.check(user, None, &settings(), now));
                if trace.last().is_some_and(Result::is_ok) {
                    t.failed(user, None, &settings(), now);
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
            let user = format!("user{n}");
            t.check(&user, from, &s, 0).unwrap();
            locked.extend(t.failed(&user, from, &s, 0));
        }
        assert_eq!(locked, vec![Scope::Ip]);
        let th = t.check("someone-else", from, &s, 0).unwrap_err();
        assert_eq!((th.scope, th.locked), (Scope::Ip, true));
        // Another address is unaffected.
        t.check("someone-else", ip("198.51.100.5"), &s, 0).unwrap();
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
        t.failed("alice", None, &settings(), later);
        t.failed("alice", None, &settings(), later);
        t.check("alice", None, &settings(), later).unwrap();
    }

    #[test]
    fn a_full_map_makes_room_and_stays_bounded() {
        let t = LoginThrottle::new(100);
        for n in 0..1000 {
            t.failed(&format!("user{n}"), None, &settings(), n);
        }
        assert!(lock(&t.accounts).map.len() <= 100);
        // The newest records survive.
        t.failed("user999", None, &settings(), 1000);
        t.failed("user999", None, &settings(), 1000);
        assert!(t.check("user999", None, &settings(), 1000).is_err());
    }
}
