//! Group commit: the one thread that writes to the SQLite database.
//!
//! Every write is a job queued for this thread. When the thread becomes free it takes what
//! is queued (at most [`MAX_BATCH`] jobs; no timer, it never waits for more) and runs the jobs
//! in queue order inside one `BEGIN IMMEDIATE … COMMIT`, each inside its own savepoint:
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
//!
//! The thread owns a plain `rusqlite` connection and runs a whole batch synchronously.
//! Reads stay on sqlx's pool, whose SQLite driver runs each statement on the connection's
//! own worker thread: one cross-thread round trip per statement, which for the half-dozen
//! statements of a refresh rotation cost more CPU than the statements themselves
//! (docs/profiles/refresh.svg). Here a job is one hand-off in and one answer out.

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rusqlite::{Connection, ErrorCode};
use tessera_core::StoreError;
use tokio::sync::{mpsc, oneshot};

/// Most jobs committed together.
pub(super) const MAX_BATCH: usize = 64;

/// What a job leaves once it has run: whether it succeeded (its savepoint is released) or
/// failed (rolled back), and how to answer its caller once the batch's fate is known.
struct Ran {
    ok: bool,
    /// It failed for a transient reason (a full disk): a batch failure after it is one too.
    transient: bool,
    answer: Box<dyn FnOnce(Result<(), StoreError>) + Send>,
}

/// A queued write. Given the connection, it runs its work; given `None` (its batch failed
/// before its turn, or the writer is closing), it runs nothing and only returns how to
/// answer.
type Job = Box<dyn FnOnce(Option<&Connection>) -> Ran + Send>;

enum Message {
    Job(Job),
    /// Run what was queued before this, close the connection and say so; refuse anything
    /// queued after.
    Close(oneshot::Sender<()>),
}

/// Counts kept by the writer thread (read by the tests; the `tessera_sqlite_batch_size`
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
    /// Close requests queued.
    pub(crate) close_requests: AtomicUsize,
}

/// Opens the writer connection (again, after one had to be abandoned).
pub(super) type Opener = Box<dyn Fn() -> rusqlite::Result<Connection> + Send>;

/// The handle to the writer thread: cheap to clone, shared by every clone of the store.
#[derive(Clone)]
pub(super) struct Writer {
    queue: mpsc::UnboundedSender<Message>,
    stats: Arc<Stats>,
}

impl fmt::Debug for Writer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writer")
            .field("submitted", &self.stats.submitted)
            .finish()
    }
}

impl Writer {
    /// Starts the writer thread on `conn`; `reopen` replaces the connection when one is left
    /// unusable. The thread ends on [`close`](Self::close) or when every handle is gone.
    pub(super) fn start(conn: Connection, reopen: Opener) -> std::io::Result<Self> {
        let (queue, messages) = mpsc::unbounded_channel();
        let stats = Arc::new(Stats::default());
        let thread_stats = stats.clone();
        std::thread::Builder::new()
            .name("tessera-sqlite-writer".into())
            .spawn(move || run(conn, reopen, messages, &thread_stats))?;
        Ok(Self { queue, stats })
    }

    /// Runs `work` on the writer connection inside the next batch, and answers once that
    /// batch's COMMIT has returned: `work`'s own result if the COMMIT succeeded, the
    /// COMMIT's error otherwise. An `Err` from `work` rolls back everything it wrote.
    ///
    /// `work` runs on the writer thread and holds up the whole batch while it runs: it must
    /// only run statements. The job runs to its end even if this future is dropped (it is
    /// already queued).
    pub(super) async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (answer_to, answer) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = conn.map(work);
            Ran {
                ok: matches!(result, Some(Ok(_))),
                transient: matches!(result, Some(Err(StoreError::Unavailable(_)))),
                answer: Box::new(move |batch| {
                    let answer = match (batch, result) {
                        (Err(e), _) => Err(e),
                        (Ok(()), Some(result)) => result,
                        (Ok(()), None) => Err(StoreError::Backend("the write was not run".into())),
                    };
                    // The caller may have gone away; the write stands regardless.
                    let _ = answer_to.send(answer);
                }),
            }
        });
        self.queue.send(Message::Job(job)).map_err(|_| stopped())?;
        self.stats.submitted.fetch_add(1, Ordering::Relaxed);
        answer.await.map_err(|_| {
            StoreError::Backend("the SQLite writer dropped the write (the job panicked)".into())
        })?
    }

    /// Runs the writes queued so far, then closes the connection; writes submitted later
    /// fail as unavailable.
    pub(super) async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.queue.send(Message::Close(done)).is_ok() {
            self.stats.close_requests.fetch_add(1, Ordering::SeqCst);
            let _ = closed.await;
        }
    }

    #[cfg(test)]
    pub(crate) fn stats(&self) -> &Stats {
        &self.stats
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the SQLite writer has stopped".into())
}

/// The writer thread: one batch at a time, each everything queued (up to `MAX_BATCH`).
fn run(
    conn: Connection,
    reopen: Opener,
    mut queue: mpsc::UnboundedReceiver<Message>,
    stats: &Stats,
) {
    let mut conn = Some(conn);
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    let mut closing = None;
    while closing.is_none() {
        match queue.blocking_recv() {
            Some(Message::Job(job)) => jobs.push(job),
            Some(Message::Close(done)) => closing = Some(done),
            None => break,
        }
        while closing.is_none() && jobs.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(Message::Job(job)) => jobs.push(job),
                Ok(Message::Close(done)) => closing = Some(done),
                Err(_) => break,
            }
        }
        if jobs.is_empty() {
            continue;
        }
        let size = jobs.len();
        stats.largest_batch.fetch_max(size, Ordering::Relaxed);
        metrics::histogram!("tessera_sqlite_batch_size").record(size as f64);
        if conn.is_none() {
            match reopen() {
                Ok(fresh) => conn = Some(fresh),
                Err(e) => {
                    let failed = BatchFailed::new("reopening the writer connection", e);
                    fail(jobs.drain(..), &failed);
                    continue;
                }
            }
        }
        if let Some(live) = &conn
            && !run_batch(live, jobs.drain(..), stats)
        {
            // After a failed batch the next one starts on a fresh connection: nothing the
            // failure left behind (an open transaction, a connection setting) carries over.
            conn = None;
        }
    }
    // Closing: what was queued before the request has run; nothing queued after it runs.
    // The caller of `close` hears once the connection is closed.
    queue.close();
    while let Ok(message) = queue.try_recv() {
        match message {
            Message::Job(job) => (job(None).answer)(Err(stopped())),
            Message::Close(done) => drop(done),
        }
    }
    drop(conn);
    if let Some(done) = closing {
        let _ = done.send(());
    }
}

/// Runs one batch and answers its callers. Returns `false` if the batch failed.
fn run_batch(conn: &Connection, jobs: impl ExactSizeIterator<Item = Job>, stats: &Stats) -> bool {
    let size = jobs.len();
    let mut jobs = jobs;
    // Takes the write lock up front (waiting out other processes' writers for the busy
    // timeout), so every job's first statement already runs under it.
    if let Err(e) = exec(conn, "BEGIN IMMEDIATE") {
        fail(jobs, &BatchFailed::new("BEGIN IMMEDIATE", e));
        return true;
    }
    let mut ran = Vec::with_capacity(size);
    let mut failure = None;
    // How the job before the next one ended; `None` before the first.
    let mut last_ok = None;
    for job in jobs.by_ref() {
        let step = match last_ok {
            None => exec(conn, "SAVEPOINT tessera_job"),
            Some(true) => {
                exec(conn, "RELEASE tessera_job").and_then(|()| exec(conn, "SAVEPOINT tessera_job"))
            }
            Some(false) => exec(conn, "ROLLBACK TO tessera_job")
                .and_then(|()| exec(conn, "RELEASE tessera_job"))
                .and_then(|()| exec(conn, "SAVEPOINT tessera_job")),
        };
        // Ending a savepoint fails when SQLite rolled the whole transaction back on its own
        // (a full disk, an I/O error): the jobs before this one are gone too.
        if let Err(e) = step {
            let failed = BatchFailed::new("a savepoint", e).after(&ran);
            fail(std::iter::once(job), &failed);
            failure = Some(failed);
            break;
        }
        let outcome = run_job(job, conn);
        last_ok = Some(outcome.as_ref().is_some_and(|r| r.ok));
        ran.extend(outcome);
    }
    let failure = match failure {
        // COMMIT releases the last job's savepoint with the rest.
        None => match last_ok {
            Some(false) => {
                exec(conn, "ROLLBACK TO tessera_job").and_then(|()| exec(conn, "COMMIT"))
            }
            _ => exec(conn, "COMMIT"),
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
        return true;
    };
    // A failed COMMIT may leave the transaction open (a deferred constraint) or already
    // rolled back (an I/O error, a full disk); the connection is dropped either way.
    if !conn.is_autocommit() {
        let _ = exec(conn, "ROLLBACK");
    }
    tracing::warn!(error = %failure, "a SQLite write batch failed; every job in it fails");
    for r in ran {
        (r.answer)(Err(failure.to_store()));
    }
    fail(jobs, &failure);
    false
}

/// Runs one job on the connection; `None` if it panicked (its caller then hears that its
/// write was dropped, and its savepoint is rolled back).
fn run_job(job: Job, conn: &Connection) -> Option<Ran> {
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| job(Some(conn)))).ok();
    if outcome.is_none() {
        tracing::error!("a SQLite write job panicked; its savepoint is rolled back");
    }
    outcome
}

/// Answers jobs that never ran with the batch's failure.
fn fail(jobs: impl Iterator<Item = Job>, failure: &BatchFailed) {
    for job in jobs {
        (job(None).answer)(Err(failure.to_store()));
    }
}

/// One statement without parameters, prepared once per connection.
fn exec(conn: &Connection, sql: &'static str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Whether an error of the writer connection is transient: the database is busy, locked,
/// out of space or unreachable on disk. The caller then answers 503 and readiness reports it.
pub(super) fn is_transient(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::DiskFull
                | ErrorCode::SystemIoFailure
                | ErrorCode::CannotOpen
                | ErrorCode::ReadOnly
        )
    )
}

/// Why a whole batch failed, shared by every job in it.
#[derive(Debug, Clone)]
struct BatchFailed {
    stage: &'static str,
    error: Arc<rusqlite::Error>,
    /// A job before it failed transiently: SQLite rolls the whole transaction back after
    /// `SQLITE_FULL`, so the next savepoint or the COMMIT fails only as a consequence.
    after_transient: bool,
}

impl BatchFailed {
    fn new(stage: &'static str, error: rusqlite::Error) -> Self {
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

    /// Transient trouble (busy, full disk, I/O) is unavailability (the caller answers 503);
    /// anything else a failure.
    fn to_store(&self) -> StoreError {
        if self.after_transient || is_transient(&self.error) {
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
