//! Retrying a transaction PostgreSQL aborted to break a deadlock or a serialization
//! conflict: the transaction was rolled back whole, so running it again is safe, and the
//! caller never sees an error that only means "try again".

use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use tessera_core::StoreError;

use super::map_err;

/// How one attempt failed: a database error (retried if transient), or a decided outcome.
pub(super) enum Failure {
    /// From sqlx; mapped by `map_err` unless retried.
    Sql(sqlx::Error),
    /// Final.
    Store(StoreError),
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        Self::Sql(e)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// Attempts before giving up (then `StoreError::Unavailable`: the database is too busy).
const ATTEMPTS: u32 = 8;

/// First backoff step; doubles per attempt, each sleep a random fraction of the step so
/// colliding transactions spread out instead of colliding again.
const BASE: Duration = Duration::from_millis(4);

/// Runs `attempt` until it succeeds, fails for good, or `ATTEMPTS` transient failures.
pub(super) async fn retry<T, F, Fut>(mut attempt: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let mut failures = 0;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(Failure::Store(e)) => return Err(e),
            Err(Failure::Sql(e)) if is_transient(&e) => {
                failures += 1;
                if failures >= ATTEMPTS {
                    tracing::warn!(error = %e, failures, "transaction kept aborting; giving up");
                    return Err(StoreError::Unavailable(Box::new(e)));
                }
                tracing::debug!(error = %e, failures, "transaction aborted; retrying");
                tokio::time::sleep(backoff(failures)).await;
            }
            Err(Failure::Sql(e)) => return Err(map_err(e)),
        }
    }
}

/// SQLSTATE 40001 (serialization_failure) and 40P01 (deadlock_detected): the server
/// rolled the transaction back and says to run it again.
fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => matches!(db.code().as_deref(), Some("40001" | "40P01")),
        _ => false,
    }
}

/// A random duration in `[step/2, step)` with `step = BASE * 2^(failures-1)`.
fn backoff(failures: u32) -> Duration {
    let step = BASE.saturating_mul(1 << failures.saturating_sub(1).min(10));
    // RandomState is seeded randomly per thread and differs per instance: jitter enough.
    let random = RandomState::new().hash_one(failures);
    let fraction = 0.5 + (random % 1024) as f64 / 2048.0;
    step.mul_f64(fraction)
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::sync::atomic::{AtomicU32, Ordering};

    use sqlx::error::{DatabaseError, ErrorKind};

    use super::*;

    /// A server error with a given SQLSTATE.
    #[derive(Debug)]
    struct Sqlstate(&'static str);

    impl std::fmt::Display for Sqlstate {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "SQLSTATE {}", self.0)
        }
    }

    impl std::error::Error for Sqlstate {}

    impl DatabaseError for Sqlstate {
        fn message(&self) -> &str {
            self.0
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(Cow::Borrowed(self.0))
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> ErrorKind {
            match self.0 {
                "23505" => ErrorKind::UniqueViolation,
                _ => ErrorKind::Other,
            }
        }
    }

    fn failing(code: &'static str) -> Failure {
        Failure::Sql(sqlx::Error::Database(Box::new(Sqlstate(code))))
    }

    #[tokio::test]
    async fn deadlocks_and_serialization_failures_are_retried() {
        for code in ["40P01", "40001"] {
            let calls = AtomicU32::new(0);
            let result = retry(|| async {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0 | 1 => Err(failing(code)),
                    _ => Ok(7),
                }
            })
            .await;
            assert_eq!(result.unwrap(), 7, "{code}");
            assert_eq!(calls.load(Ordering::SeqCst), 3, "{code}");
        }
    }

    #[tokio::test]
    async fn a_transaction_that_keeps_aborting_is_unavailable() {
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = retry(|| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(failing("40P01"))
        })
        .await;
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{result:?}"
        );
        assert_eq!(calls.load(Ordering::SeqCst), ATTEMPTS);
    }

    #[tokio::test]
    async fn other_errors_are_not_retried() {
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = retry(|| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(failing("23505"))
        })
        .await;
        assert!(matches!(result, Err(StoreError::Conflict)), "{result:?}");
        let result: Result<(), _> = retry(|| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(Failure::Store(StoreError::Backend("decided".into())))
        })
        .await;
        assert!(matches!(result, Err(StoreError::Backend(_))), "{result:?}");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn backoff_grows_and_stays_bounded() {
        for failures in 1..ATTEMPTS {
            let step = BASE * (1 << (failures - 1));
            let d = backoff(failures);
            assert!(d >= step / 2 && d < step, "{failures}: {d:?}");
        }
    }

    #[test]
    fn connection_trouble_is_unavailable() {
        for code in ["08006", "57P01", "53300"] {
            let e = sqlx::Error::Database(Box::new(Sqlstate(code)));
            assert!(matches!(map_err(e), StoreError::Unavailable(_)), "{code}");
        }
        assert!(matches!(
            map_err(sqlx::Error::PoolTimedOut),
            StoreError::Unavailable(_)
        ));
        let e = sqlx::Error::Database(Box::new(Sqlstate("23503")));
        assert!(matches!(map_err(e), StoreError::Backend(_)));
    }
}
