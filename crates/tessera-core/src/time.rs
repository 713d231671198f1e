//! Time as the domain sees it: whole seconds since the Unix epoch, from an injected clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch (the JWT `NumericDate` of RFC 7519 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixTime(pub i64);

impl UnixTime {
    /// This instant moved forward by `d` (saturating, whole seconds).
    pub fn plus(self, d: Duration) -> Self {
        let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        Self(self.0.saturating_add(secs))
    }
}

/// The source of the current time; injected so tests can move it.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> UnixTime;

    /// The current time in milliseconds since the Unix epoch, for rates and backoffs finer
    /// than a second. Defaults to [`now`](Self::now) in whole seconds, so a test clock that
    /// moves in seconds moves this too.
    fn now_millis(&self) -> i64 {
        self.now().0.saturating_mul(1000)
    }
}

/// The operating system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        // A clock before 1970 is a broken host; treat it as the epoch rather than panic.
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        UnixTime(i64::try_from(secs).unwrap_or(i64::MAX))
    }

    fn now_millis(&self) -> i64 {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        i64::try_from(millis).unwrap_or(i64::MAX)
    }
}
