//! The token endpoint's optional rate limit per client (`TESSERA_TOKEN_RATE_LIMIT`).
//!
//! A token bucket per client id, checked after the client authenticated (so an attacker
//! cannot spend a real client's allowance by naming it): `N/s`, `N/m` or `N/h` lets a client
//! make a burst of N requests, refilled continuously at N per period. Off by default, so
//! benchmarks and batch jobs are never throttled by surprise.
//!
//! Buckets live in this process's memory: the limit is **per node** (N nodes behind a load
//! balancer admit up to N times the rate). Only authenticated clients get a bucket, so the
//! map is bounded by the registered clients; full buckets, which are the same as no bucket,
//! are dropped when it grows past [`DEFAULT_CAPACITY`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Buckets kept before full ones are dropped.
pub const DEFAULT_CAPACITY: usize = 10_000;

/// A rate limit setting: `off`, or `N/s`, `N/m`, `N/h` (N from 1 to 1,000,000).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RateLimit {
    /// No limit.
    #[default]
    Off,
    /// At most `requests` per `per`, in bursts of up to `requests`.
    Limit {
        /// Requests allowed per period (the bucket's size).
        requests: u32,
        /// The period.
        per: Duration,
    },
}

impl RateLimit {
    /// Parses `off`, `100/s`, `6000/m` or `10000/h` (`sec`, `min`, `hour` and their plurals
    /// are accepted too).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("off") {
            return Ok(Self::Off);
        }
        let problem =
            || format!("`{text}` is not a rate: write off, or N/s, N/m, N/h (e.g. 100/s)");
        let (count, unit) = text.split_once('/').ok_or_else(problem)?;
        let requests: u32 = count.trim().parse().map_err(|_| problem())?;
        if !(1..=1_000_000).contains(&requests) {
            return Err(format!(
                "`{text}`: the number of requests must be 1 to 1000000"
            ));
        }
        let per = match unit.trim().to_ascii_lowercase().as_str() {
            "s" | "sec" | "second" | "seconds" => Duration::from_secs(1),
            "m" | "min" | "minute" | "minutes" => Duration::from_secs(60),
            "h" | "hour" | "hours" => Duration::from_secs(3600),
            _ => return Err(problem()),
        };
        Ok(Self::Limit { requests, per })
    }
}

impl std::str::FromStr for RateLimit {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl std::fmt::Display for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Off => f.write_str("off"),
            Self::Limit { requests, per } => {
                let unit = match per.as_secs() {
                    1 => "s".to_owned(),
                    60 => "m".to_owned(),
                    3600 => "h".to_owned(),
                    s => format!("{s}s"),
                };
                write!(f, "{requests}/{unit}")
            }
        }
    }
}

/// A request refused by the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimited {
    /// How long until the bucket holds a request again, rounded up to whole seconds (the
    /// `Retry-After` header, RFC 9110 §10.2.3).
    pub retry_after: Duration,
}

/// One client's bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated_ms: i64,
}

/// The buckets of one node.
#[derive(Debug)]
pub struct TokenRateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
    capacity: usize,
}

impl Default for TokenRateLimiter {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl TokenRateLimiter {
    /// No buckets; full ones are dropped past `capacity`.
    pub fn new(capacity: usize) -> Self {
        Self {
            buckets: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// Takes one request from `client_id`'s bucket at `now_ms`, or says how long to wait.
    pub fn check(&self, client_id: &str, limit: RateLimit, now_ms: i64) -> Result<(), RateLimited> {
        let RateLimit::Limit { requests, per } = limit else {
            return Ok(());
        };
        let size = f64::from(requests);
        let period_ms = per.as_millis().max(1) as f64;
        // Tokens per millisecond.
        let rate = size / period_ms;
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !buckets.contains_key(client_id) && buckets.len() >= self.capacity {
            buckets.retain(|_, b| level(b, size, rate, now_ms) < size);
        }
        let bucket = buckets.entry(client_id.to_owned()).or_insert(Bucket {
            tokens: size,
            updated_ms: now_ms,
        });
        // A lowered limit (a reload) applies at once: the bucket never holds more than it.
        bucket.tokens = level(bucket, size, rate, now_ms);
        bucket.updated_ms = bucket.updated_ms.max(now_ms);
        // The tolerance absorbs floating-point noise of many small refills.
        if bucket.tokens + 1e-9 >= 1.0 {
            bucket.tokens = (bucket.tokens - 1.0).max(0.0);
            return Ok(());
        }
        // Computed from the period, not the rate, and with a hair of tolerance, so that an
        // exact wait (20 s for 3/m) is not rounded up by floating-point noise.
        let wait_ms = ((1.0 - bucket.tokens) * period_ms / size - 1e-6).max(1.0);
        let secs = (wait_ms / 1000.0 - 1e-9).ceil().max(1.0) as u64;
        Err(RateLimited {
            retry_after: Duration::from_secs(secs),
        })
    }
}

/// The bucket's level at `now_ms`: refilled at `rate` since its last update, at most `size`
/// (a clock that went back refills nothing).
fn level(bucket: &Bucket, size: f64, rate: f64, now_ms: i64) -> f64 {
    let elapsed = now_ms.saturating_sub(bucket.updated_ms).max(0) as f64;
    (bucket.tokens + elapsed * rate).min(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(text: &str) -> RateLimit {
        RateLimit::parse(text).unwrap()
    }

    #[test]
    fn rates_parse_and_display() {
        assert_eq!(RateLimit::parse("off"), Ok(RateLimit::Off));
        assert_eq!(
            limit("100/s"),
            RateLimit::Limit {
                requests: 100,
                per: Duration::from_secs(1)
            }
        );
        assert_eq!(limit("6000/m").to_string(), "6000/m");
        assert_eq!(limit(" 5 / hour ").to_string(), "5/h");
        assert_eq!(RateLimit::Off.to_string(), "off");
        for bad in ["", "100", "0/s", "x/s", "10/d", "-1/s", "2000000/s"] {
            assert!(RateLimit::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn off_never_refuses() {
        let limiter = TokenRateLimiter::default();
        for _ in 0..10_000 {
            limiter.check("svc", RateLimit::Off, 0).unwrap();
        }
    }

    #[test]
    fn a_burst_of_n_then_a_steady_refill() {
        let limiter = TokenRateLimiter::default();
        let l = limit("3/m");
        for _ in 0..3 {
            limiter.check("svc", l, 0).unwrap();
        }
        // Empty: one request comes back every 20 s.
        let refused = limiter.check("svc", l, 0).unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_secs(20));
        assert_eq!(
            limiter.check("svc", l, 15_000).unwrap_err().retry_after,
            Duration::from_secs(5)
        );
        limiter.check("svc", l, 20_000).unwrap();
        assert!(limiter.check("svc", l, 20_000).is_err());
        // A long pause refills the bucket to its size, no more.
        for _ in 0..3 {
            limiter.check("svc", l, 3_600_000).unwrap();
        }
        assert!(limiter.check("svc", l, 3_600_000).is_err());
    }

    #[test]
    fn long_periods_give_exact_waits() {
        let limiter = TokenRateLimiter::default();
        let l = limit("1/h");
        limiter.check("svc", l, 0).unwrap();
        assert_eq!(
            limiter.check("svc", l, 0).unwrap_err().retry_after,
            Duration::from_secs(3600)
        );
        assert_eq!(
            limiter.check("svc", l, 1).unwrap_err().retry_after,
            Duration::from_secs(3600)
        );
        limiter.check("svc", l, 3_600_000).unwrap();
    }

    #[test]
    fn retry_after_is_rounded_up_to_a_whole_second() {
        let limiter = TokenRateLimiter::default();
        let l = limit("100/s");
        for _ in 0..100 {
            limiter.check("svc", l, 0).unwrap();
        }
        // The next token comes in 10 ms: Retry-After says 1 s, never 0.
        assert_eq!(
            limiter.check("svc", l, 0).unwrap_err().retry_after,
            Duration::from_secs(1)
        );
        limiter.check("svc", l, 10).unwrap();
    }

    #[test]
    fn clients_have_their_own_buckets() {
        let limiter = TokenRateLimiter::default();
        let l = limit("2/h");
        limiter.check("a", l, 0).unwrap();
        limiter.check("a", l, 0).unwrap();
        assert!(limiter.check("a", l, 0).is_err());
        limiter.check("b", l, 0).unwrap();
        limiter.check("b", l, 0).unwrap();
    }

    #[test]
    fn a_lowered_limit_applies_at_once() {
        let limiter = TokenRateLimiter::default();
        limiter.check("svc", limit("1000/s"), 0).unwrap();
        let l = limit("1/m");
        limiter.check("svc", l, 0).unwrap();
        assert!(limiter.check("svc", l, 0).is_err());
    }

    #[test]
    fn full_buckets_are_dropped_when_the_map_is_full() {
        let limiter = TokenRateLimiter::new(10);
        let l = limit("1/s");
        for n in 0..100 {
            // Each bucket is refilled a second later, so it can go.
            limiter.check(&format!("c{n}"), l, n * 1000).unwrap();
        }
        assert!(limiter.buckets.lock().unwrap().len() <= 10);
    }
}
