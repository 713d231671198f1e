//! Group commit: the one task that writes to the SQLite database.
//!
//! Every write is a job queued for this task. When the task becomes free it takes what is
//! queued (at most [`MAX_BATCH`] jobs; no timer, it never waits for more) and runs the jobs in
//! queue order inside one `BEGIN IMMEDIATE … COMMIT`, each inside its own savepoint:
//!
//! - a job that fails (a constraint, a conflict, its own refusal) is rolled back to its
//!   savepoint alone and answers with its own error; its neighbours go on;
//! - a job sees everything the jobs before it wrote (one connection, one transaction), so a
//!   batch has exactly the effect of its jobs run one after the other: compare-and-set
//!   UPDATEs stay compare-and-sets, AUTOINCREMENT sequences stay gap-free and in commit
//!   order (a rolled-back savepoint takes its `sqlite_sequence` update with it);
//! - no caller hears anything before the COMMIT containing its job has returned, so an
//!   answer (even a refusal, which may rest on a neighbour's uncommitted write) is only given
//!   once that data is durable; a failed COMMIT fails every job of the batch.
//!
//! One COMMIT, and so one fsync under `synchronous=FULL`, serves the whole batch: that is
//! what lifts write throughput when many requests write at once.

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;

use sqlx::pool::PoolConnection;
use sqlx::{Sqlite, SqliteConnection, SqlitePool};
use tessera_core::StoreError;
use tokio::sync::{mpsc, oneshot};

/// Most jobs committed together.
pub(super) const MAX_BATCH: usize = 64;

/// A boxed future borrowing the writer connection.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a job leaves once it has run: whether it succeeded (its savepoint is released) or
/// failed (rolled back), and how to answer its caller once the batch's fate is known.
struct Ran {
    ok: bool,
    /// It failed for a transient reason (a full disk): a batch failure after it is one too.
    transient: bool,
    answer: Box<dyn FnOnce(Result<(), StoreError>) + Send>,
}

/// A queued write. Given the connection, it runs its work; given `None` (its batch failed
/// before its turn), it runs nothing and only returns how to answer.
type Job = Box<dyn for<'c> FnOnce(Option<&'c mut SqliteConnection>) -> BoxFuture<'c, Ran> + Send>;

/// Counts kept by the writer task (read by the tests; the `tessera_sqlite_batch_size`
/// histogram carries the same for operators).
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// Jobs handed to the queue.
    pub(crate) submitted: AtomicUsize,
    /// COMMITs that succeeded.
    pub(crate) commits: AtomicUsize,
    /// Jobs run inside those COMMITs (failed-and-rolled-back ones included).
    pub(crate) committed_jobs: AtomicUsize,
    /// The largest batch run so far.
    pub(crate) largest_batch: AtomicUsize,
}

/// The handle to the writer task: cheap to clone, shared by every clone of the store.
#[derive(Clone)]
pub(super) struct Writer {
    queue: mpsc::UnboundedSender<Job>,
    pool: SqlitePool,
    stats: Arc<Stats>,
}

impl fmt::Debug for Writer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writer").field("pool", &self.pool).finish()
    }
}

impl Writer {
    /// Spawns the writer task on `pool` (one connection). It ends when every handle is gone.
    pub(super) fn start(pool: SqlitePool) -> Self {
        let (queue, jobs) = mpsc::unbounded_channel();
        let stats = Arc::new(Stats::default());
        tokio::spawn(run(pool.clone(), jobs, stats.clone()));
        Self { queue, pool, stats }
    }

    /// Runs `work` on the writer connection inside the next batch, and answers once that
    /// batch's COMMIT has returned: `work`'s own result if the COMMIT succeeded, the
    /// COMMIT's error otherwise. An `Err` from `work` rolls back everything it wrote.
    ///
    /// The job runs to its end even if this future is dropped (it is already queued).
    pub(super) async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, StoreError>>
            + Send
            + 'static,
    {
        let (answer_to, answer) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            Box::pin(async move {
                let result = match conn {
                    Some(conn) => Some(work(conn).await),
                    None => None,
                };
                Ran {
                    ok: matches!(result, Some(Ok(_))),
                    transient: matches!(result, Some(Err(StoreError::Unavailable(_)))),
                    answer: Box::new(move |batch| {
                        let answer = match (batch, result) {
                            (Err(e), _) => Err(e),
                            (Ok(()), Some(result)) => result,
                            (Ok(()), None) => {
                                Err(StoreError::Backend("the write was not run".into()))
                            }
                        };
                        // The caller may have gone away; the write stands regardless.
                        let _ = answer_to.send(answer);
                    }),
                }
            })
        });
        self.queue
            .send(job)
            .map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?;
        self.stats.submitted.fetch_add(1, Ordering::Relaxed);
        answer.await.map_err(|_| {
            StoreError::Backend("the SQLite writer dropped the write (the job panicked)".into())
        })?
    }

    /// Closes the writer's pool, waiting for a batch in flight; later writes fail as
    /// unavailable.
    pub(super) async fn close(&self) {
        self.pool.close().await;
    }

    #[cfg(test)]
    pub(crate) fn stats(&self) -> &Stats {
        &self.stats
    }
}

/// The writer task: one batch at a time, each everything queued (up to `MAX_BATCH`).
async fn run(pool: SqlitePool, mut queue: mpsc::UnboundedReceiver<Job>, stats: Arc<Stats>) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        let size = jobs.len();
        stats.largest_batch.fetch_max(size, Ordering::Relaxed);
        metrics::histogram!("tessera_sqlite_batch_size").record(size as f64);
        run_batch(&pool, jobs.drain(..), &stats).await;
    }
}

/// Runs one batch and answers its callers.
async fn run_batch(pool: &SqlitePool, jobs: impl ExactSizeIterator<Item = Job>, stats: &Stats) {
    let size = jobs.len();
    let mut jobs = jobs;
    let mut conn = match pool.acquire().await {
        Ok(conn) => conn,
        Err(e) => {
            fail(
                jobs,
                &BatchFailed::new("acquiring the writer connection", e),
            )
            .await;
            return;
        }
    };
    // Takes the write lock up front (waiting out other processes' writers for the busy
    // timeout), so every job's first statement already runs under it.
    if let Err(e) = exec(&mut conn, "BEGIN IMMEDIATE").await {
        fail(jobs, &BatchFailed::new("BEGIN IMMEDIATE", e)).await;
        return;
    }
    let mut ran = Vec::new();
    let mut failure = None;
    // How the job before the next one ended; `None` before the first.
    let mut last_ok = None;
    for job in jobs.by_ref() {
        // One round trip ends the previous job's savepoint (released, or rolled back and
        // released) and opens this job's.
        let step = match last_ok {
            None => exec(&mut conn, "SAVEPOINT tessera_job").await,
            Some(true) => exec_raw(&mut conn, "RELEASE tessera_job; SAVEPOINT tessera_job").await,
            Some(false) => {
                exec_raw(
                    &mut conn,
                    "ROLLBACK TO tessera_job; RELEASE tessera_job; SAVEPOINT tessera_job",
                )
                .await
            }
        };
        // Ending a savepoint fails when SQLite rolled the whole transaction back on its own
        // (a full disk, an I/O error): the jobs before this one are gone too.
        if let Err(e) = step {
            let failed = BatchFailed::new("a savepoint", e).after(&ran);
            fail(std::iter::once(job), &failed).await;
            failure = Some(failed);
            break;
        }
        let outcome = run_job(job, &mut conn).await;
        last_ok = Some(outcome.as_ref().is_some_and(|r| r.ok));
        ran.extend(outcome);
    }
    let failure = match failure {
        // COMMIT releases the last job's savepoint with the rest.
        None => match last_ok {
            Some(false) => exec_raw(&mut conn, "ROLLBACK TO tessera_job; COMMIT").await,
            _ => exec(&mut conn, "COMMIT").await,
        }
        .err()
        .map(|e| BatchFailed::new("COMMIT", e).after(&ran)),
        failure => failure,
    };
    let Some(failure) = failure else {
        // Counted before anyone is answered: a caller never sees its write uncounted.
        stats.commits.fetch_add(1, Ordering::SeqCst);
        stats.committed_jobs.fetch_add(size, Ordering::SeqCst);
        for r in ran {
            (r.answer)(Ok(()));
        }
        return;
    };
    // A failed COMMIT may leave the transaction open (a deferred constraint) or already
    // rolled back (an I/O error). A connection that cannot be brought back to autocommit
    // is closed; the pool opens a fresh one for the next batch.
    if exec(&mut conn, "ROLLBACK").await.is_err() {
        tracing::warn!("closing the SQLite writer connection after a failed ROLLBACK");
        let _ = conn.close().await;
    }
    tracing::warn!(error = %failure, "a SQLite write batch failed; every job in it fails");
    for r in ran {
        (r.answer)(Err(failure.to_store()));
    }
    fail(jobs, &failure).await;
}

/// Runs one job on the connection; `None` if it panicked (its caller then hears that its
/// write was dropped, and its savepoint is rolled back).
async fn run_job(job: Job, conn: &mut PoolConnection<Sqlite>) -> Option<Ran> {
    let mut work = job(Some(&mut **conn));
    let outcome = std::future::poll_fn(|cx| {
        match std::panic::catch_unwind(AssertUnwindSafe(|| work.as_mut().poll(cx))) {
            Ok(Poll::Ready(ran)) => Poll::Ready(Some(ran)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(None),
        }
    })
    .await;
    if outcome.is_none() {
        tracing::error!("a SQLite write job panicked; its savepoint is rolled back");
    }
    outcome
}

/// Answers jobs that never ran with the batch's failure.
async fn fail(jobs: impl Iterator<Item = Job>, failure: &BatchFailed) {
    for job in jobs {
        let ran = job(None).await;
        (ran.answer)(Err(failure.to_store()));
    }
}

async fn exec(conn: &mut PoolConnection<Sqlite>, sql: &'static str) -> Result<(), sqlx::Error> {
    sqlx::query(sql).execute(&mut **conn).await.map(|_| ())
}

/// Several statements in one round trip to the connection's thread; stops at the first
/// that fails.
async fn exec_raw(conn: &mut PoolConnection<Sqlite>, sql: &'static str) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(sql).execute(&mut **conn).await.map(|_| ())
}

/// Why a whole batch failed, shared by every job in it.
#[derive(Debug, Clone)]
struct BatchFailed {
    stage: &'static str,
    error: Arc<sqlx::Error>,
    /// A job before it failed transiently: SQLite rolls the whole transaction back after
    /// `SQLITE_FULL`, so the next savepoint or the COMMIT fails only as a consequence.
    after_transient: bool,
}

impl BatchFailed {
    fn new(stage: &'static str, error: sqlx::Error) -> Self {
        Self {
            stage,
            error: Arc::new(error),
            after_transient: false,
        }
    }

    /// Marks the failure transient if a job of the batch failed transiently.
    fn after(mut self, ran: &[Ran]) -> Self {
        self.after_transient = ran.iter().any(|r| r.transient);
        self
    }

    /// Transient trouble (connection, full disk) is unavailability (the caller answers
    /// 503); anything else a failure.
    fn to_store(&self) -> StoreError {
        if self.after_transient || super::is_transient(&self.error) {
            StoreError::Unavailable(Box::new(self.clone()))
        } else {
            StoreError::Backend(Box::new(self.clone()))
        }
    }
}

impl fmt::Display for BatchFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the write batch failed at {}: {}",
            self.stage, self.error
        )
    }
}

impl std::error::Error for BatchFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.error)
    }
}
