//! Write transactions. On PostgreSQL each write is an ordinary transaction (the server
//! already merges concurrent commits into one WAL flush). SQLite has one writer and pays an
//! fsync per commit, so writes there are **group-committed**: each write runs inside its own
//! SAVEPOINT of a shared transaction on the single writer connection, and the transaction
//! commits when no other write is waiting (or the batch is full). `commit()` returns only after
//! that COMMIT (with its fsync) succeeded, so every acknowledged write is durable, and a write
//! that fails rolls back to its savepoint without touching its neighbours.
//!
//! Writes that read nothing first (creates, membership changes) are also **queued**: one
//! runner task takes the writer once for a whole burst of them, instead of each write taking
//! the writer, spawning its task and starting its savepoint in turns. Writes of the same
//! shape go as one command per run of 16, 8, 4, 2 or 1 (`run_queued`): each command is a
//! round trip to sqlx-sqlite's worker thread, and its text depends only on the shape and the
//! run's length, so the worker prepares it once and reuses it (compiling SQL was the largest
//! cost of a write). A run that fails is rolled back and its writes run one by one, so each
//! failing write (a duplicate userName) gets its own error and fails only itself.
//!
//! A queued write may carry a **precondition** (`Batch::check`, e.g. "the group exists and
//! every added member is a user"): its value is written to the one row of the writer's
//! temporary `write_checks` table, whose NOT NULL constraint fails the write when the value
//! is NULL; otherwise the value comes back to the caller (`RETURNING`).

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, Executor, Row};
use tokio::sync::{Mutex, OwnedMutexGuard, oneshot};

use super::batch::{AuditHeads, Batch};
use super::bind_all;
use crate::core::error::{CoreError, CoreResult, StoreError};

/// Most writes one SQLite commit may carry; bounds the latency a batch adds.
const MAX_BATCH: usize = 256;

/// Most queued writes the runner sends in one turn holding the writer (other writes waiting
/// for it take turns in between).
const MAX_COMBINED: usize = 64;

/// Sets up the writer connection: the table preconditions go through (see the module
/// documentation), one row that each precondition overwrites. Temporary, so it lives in
/// memory, on this connection only.
pub const WRITER_SETUP: &str =
    "CREATE TEMP TABLE IF NOT EXISTS write_checks (k INTEGER PRIMARY KEY, v INTEGER NOT NULL)";

/// Starts a batch: takes the write lock at once, so another process (the CLI) cannot make
/// the transaction's snapshot stale between its reads and its writes.
const BEGIN_BATCH: &str = "BEGIN IMMEDIATE";

type Waiter = oneshot::Sender<Result<(), String>>;

/// The SQLite writer connection and the batch open on it.
pub struct Writer {
    conn: PoolConnection<Any>,
    in_batch: bool,
    savepoint_open: bool,
    /// The write's SAVEPOINT is not sent yet: it goes first in the write's batch.
    savepoint_pending: bool,
    waiters: Vec<Waiter>,
    /// Audit chain heads as of the open transaction (valid until it ends: no other
    /// connection can write meanwhile).
    audit_heads: AuditHeads,
}

/// Group commit for the SQLite writer.
pub struct GroupCommit {
    writer: Arc<Mutex<Writer>>,
    /// Writes queued for the writer; the last of a burst commits the batch.
    waiting: AtomicUsize,
    /// Writes that read nothing first, waiting for the runner.
    queue: std::sync::Mutex<Vec<Queued>>,
    /// Whether a task is draining `queue`.
    running: std::sync::atomic::AtomicBool,
}

/// A write that reads nothing first, waiting for the writer.
struct Queued {
    batch: Batch,
    /// `batch.shape()`, and how many preconditions it holds.
    shape: u64,
    checks: usize,
    reply: oneshot::Sender<Combined>,
}

/// What became of a queued write.
enum Combined {
    /// Its statements ran; the receiver says whether the COMMIT carrying them succeeded.
    /// With the value of its last precondition, if it had any.
    Joined(oneshot::Receiver<Result<(), String>>, Option<i64>),
    /// It failed (and changed nothing).
    Failed(sqlx::Error),
}

/// The same failure for each write of a run that failed before its statements ran (sqlx's
/// error is not `Clone`; the database's message and code are what a write's caller reads).
fn copy_err(e: &sqlx::Error) -> sqlx::Error {
    sqlx::Error::Protocol(e.to_string())
}

fn err(e: sqlx::Error) -> CoreError {
    CoreError::Store(super::db_err(e))
}

impl Writer {
    /// Undoes what a write that was dropped without commit left behind. If even that fails,
    /// the state of the transaction is unknown: the whole batch is rolled back and every
    /// write waiting on it is told (none of them was acknowledged).
    async fn clean(&mut self) {
        self.savepoint_pending = false;
        if !self.savepoint_open {
            return;
        }
        self.savepoint_open = false;
        if let Err(e) = self.conn.execute("ROLLBACK TO w; RELEASE w").await {
            self.abort_batch(format!("write batch rolled back: {e}"))
                .await;
        }
    }

    /// Commits the batch and tells every write in it.
    async fn flush(&mut self) {
        if self.in_batch {
            self.end_batch("COMMIT").await;
        }
    }

    /// Runs `sql` (which ends with COMMIT) and tells every write in the batch how it went.
    /// On failure it is unknown how far the command got: the whole batch is rolled back.
    async fn end_batch(&mut self, sql: &str) {
        match self.conn.execute(sql).await {
            Ok(_) => {
                self.savepoint_open = false;
                self.in_batch = false;
                for w in self.waiters.drain(..) {
                    let _ = w.send(Ok(()));
                }
            }
            Err(e) => self.abort_batch(e.to_string()).await,
        }
    }

    /// Rolls the whole batch back and tells every write in it (none was acknowledged).
    async fn abort_batch(&mut self, reason: String) {
        let _ = self.conn.execute("ROLLBACK").await;
        self.audit_heads.clear();
        self.savepoint_open = false;
        self.savepoint_pending = false;
        self.in_batch = false;
        for w in self.waiters.drain(..) {
            let _ = w.send(Err(reason.clone()));
        }
    }
}

/// A runner that ends without returning (a panic in the driver, an aborted task) would
/// leave `running` set, and every write queued then or later waiting for a runner that never
/// comes. Dropped armed, this clears it and starts a runner for the writes still queued.
struct RunnerGuard(Option<Arc<GroupCommit>>);

impl RunnerGuard {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for RunnerGuard {
    fn drop(&mut self) {
        let Some(gc) = self.0.take() else {
            return;
        };
        gc.running.store(false, Ordering::SeqCst);
        if gc.queue().is_empty() || gc.running.swap(true, Ordering::SeqCst) {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(gc.run_queue());
            }
            // No runtime left to run it: the next write starts one.
            Err(_) => gc.running.store(false, Ordering::SeqCst),
        }
    }
}

impl GroupCommit {
    pub fn new(conn: PoolConnection<Any>) -> Self {
        GroupCommit {
            writer: Arc::new(Mutex::new(Writer {
                conn,
                in_batch: false,
                savepoint_open: false,
                savepoint_pending: false,
                waiters: Vec::new(),
                audit_heads: AuditHeads::new(),
            })),
            waiting: AtomicUsize::new(0),
            queue: std::sync::Mutex::new(Vec::new()),
            running: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Vec<Queued>> {
        // Nothing panics while holding it; a poisoned queue still holds valid writes.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs a write that reads nothing (its statements are all in `b`) in the runner's next
    /// turn and waits for its COMMIT; `Ok(Ok(v))` carries the value of its last precondition,
    /// if it had one. `Ok(Err(e))`: its statements failed (a precondition did not hold, a
    /// constraint) and changed nothing.
    pub async fn submit(
        self: &Arc<Self>,
        b: Batch,
    ) -> CoreResult<Result<Option<i64>, sqlx::Error>> {
        let (reply, answer) = oneshot::channel();
        self.queue().push(Queued {
            shape: b.shape(),
            checks: b.checks(),
            batch: b,
            reply,
        });
        // One runner at a time drains the queue, in a task of its own: the queued writes of
        // others ride on it, whatever becomes of this caller.
        if !self.running.swap(true, Ordering::SeqCst) {
            let gc = self.clone();
            tokio::spawn(async move { gc.run_queue().await });
        }
        match answer.await {
            Ok(Combined::Joined(commit, v)) => wait_commit(commit).await.map(|()| Ok(v)),
            Ok(Combined::Failed(e)) => Ok(Err(e)),
            Err(_) => Err(CoreError::Store(StoreError::Other(
                "write abandoned".into(),
            ))),
        }
    }

    /// Takes the writer (in turn with other writes) and sends the queued writes, as many
    /// commands as it takes, until the queue is empty.
    async fn run_queue(self: Arc<Self>) {
        let guard = RunnerGuard(Some(self.clone()));
        loop {
            {
                // Counted as waiting: a write holding the writer leaves the batch open for it.
                self.waiting.fetch_add(1, Ordering::SeqCst);
                let mut w = self.writer.clone().lock_owned().await;
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                self.run_queued(&mut w).await;
            }
            if self.queue().is_empty() {
                self.running.store(false, Ordering::SeqCst);
                // A write queued before the store saw a runner and started none: go on if
                // one did, unless another runner has started since.
                if self.queue().is_empty() || self.running.swap(true, Ordering::SeqCst) {
                    guard.disarm();
                    return;
                }
            }
        }
    }

    /// Sends up to `MAX_COMBINED` queued writes in the open batch and commits the batch if
    /// no other write is waiting or queued.
    ///
    /// Writes of the same shape (`Batch::shape`: creates, one-member PATCHes) go together,
    /// in runs of 16, 8, 4, 2 or 1: a run's command text depends only on its shape and
    /// length, so sqlx-sqlite prepares it once and reuses it, and a burst costs a few round
    /// trips to its worker thread instead of one per write. (Queued writes are concurrent,
    /// none acknowledged yet, so any order among them is an order they could have come in.)
    /// A run that fails is rolled back and its writes run one by one, each to its own
    /// answer.
    async fn run_queued(&self, w: &mut Writer) {
        let mut queued: Vec<Queued> = {
            let mut q = self.queue();
            let n = q.len().min(MAX_COMBINED);
            q.drain(..n).collect()
        };
        if queued.is_empty() {
            return;
        }
        queued.sort_by_key(|q| q.shape);
        w.clean().await;
        let mut queued = std::collections::VecDeque::from(queued);
        while let Some(first) = queued.front() {
            let same = queued.iter().take_while(|q| q.shape == first.shape).count();
            let n = [16, 8, 4, 2, 1]
                .into_iter()
                .find(|n| *n <= same)
                .unwrap_or(1);
            let run: Vec<Queued> = queued.drain(..n).collect();
            for q in self.run_together(w, run).await {
                // A run of one answers its write, whatever happens.
                let _ = self.run_together(w, vec![q]).await;
            }
        }
        let idle = self.waiting.load(Ordering::SeqCst) == 0 && self.queue().is_empty();
        if w.in_batch && (idle || w.waiters.len() >= MAX_BATCH) {
            w.end_batch("COMMIT").await;
        }
    }

    /// Runs `run` as one command in its own savepoint and answers each of its writes. If a
    /// run of several fails, nothing of it remains and its writes come back unanswered.
    async fn run_together(&self, w: &mut Writer, run: Vec<Queued>) -> Vec<Queued> {
        let answer_all = |run: Vec<Queued>, e: &sqlx::Error| {
            for q in run {
                let _ = q.reply.send(Combined::Failed(copy_err(e)));
            }
        };
        if !w.in_batch {
            // Another process may have written since the last batch.
            w.audit_heads.clear();
            if let Err(e) = w.conn.execute(BEGIN_BATCH).await {
                answer_all(run, &e);
                return Vec::new();
            }
            w.in_batch = true;
        }
        // Link audit entries to the chain heads, in the order the writes run; the heads
        // advance only once the command ran (a failed run leaves the chain as it was).
        let mut heads = w.audit_heads.clone();
        let mut unknown: Vec<&str> = Vec::new();
        for c in run.iter().flat_map(|q| q.batch.audit_chains()) {
            if !heads.contains_key(c) && !unknown.contains(&c) {
                unknown.push(c);
            }
        }
        if let Err(e) = super::batch::read_audit_heads(&mut w.conn, &unknown, &mut heads).await {
            answer_all(run, &e);
            return Vec::new();
        }
        let mut together = Batch::default();
        for q in &run {
            let mut linked = q.batch.clone();
            if let Err(e) = linked.link_audits(&mut w.conn, &mut heads).await {
                answer_all(run, &e);
                return Vec::new();
            }
            together.append(linked);
        }
        let (sql, args) = together.joined(Some("SAVEPOINT w"), Some("RELEASE w"));
        w.savepoint_open = true;
        match bind_all(sqlx::query(&sql), &args)
            .fetch_all(&mut *w.conn)
            .await
        {
            Ok(rows) => {
                w.savepoint_open = false;
                w.audit_heads = heads;
                // Each precondition returned one row, in the order of the writes.
                let mut values = rows
                    .iter()
                    .map(|r| r.try_get::<Option<i64>, _>("v").ok().flatten());
                for q in run {
                    let v = (0..q.checks).filter_map(|_| values.next().flatten()).last();
                    let (tx, rx) = oneshot::channel();
                    w.waiters.push(tx);
                    let _ = q.reply.send(Combined::Joined(rx, v));
                }
                Vec::new()
            }
            Err(e) => {
                w.clean().await;
                if run.len() > 1 {
                    return run;
                }
                // Its own failure (a duplicate, a precondition), as the database gave it.
                if let Some(q) = run.into_iter().next() {
                    let _ = q.reply.send(Combined::Failed(e));
                }
                Vec::new()
            }
        }
    }

    /// Starts a write. With `fresh`, the write reads nothing before its batch, so its
    /// SAVEPOINT is sent with the batch instead of in a round trip of its own.
    pub async fn begin(self: &Arc<Self>, fresh: bool) -> CoreResult<WriteTx> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let w = self.writer.clone().lock_owned().await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        // Run in a task of its own: if the caller is cancelled mid-statement (a client hung
        // up), the statements still complete and the writer's flags stay true to its state.
        let started = tokio::spawn(async move {
            let mut w = w;
            w.clean().await;
            // IMMEDIATE (see `BEGIN_BATCH`).
            let sql = match (w.in_batch, fresh) {
                (true, true) => None,
                (false, true) => Some(BEGIN_BATCH),
                (true, false) => Some("SAVEPOINT w"),
                (false, false) => Some("BEGIN IMMEDIATE; SAVEPOINT w"),
            };
            if !w.in_batch {
                // Another process may have written since the last batch.
                w.audit_heads.clear();
            }
            if let Some(sql) = sql {
                w.conn.execute(sql).await.map_err(err)?;
            }
            w.in_batch = true;
            w.savepoint_open = !fresh;
            w.savepoint_pending = fresh;
            Ok::<_, CoreError>(w)
        });
        let guard = started.await.map_err(|e| {
            CoreError::Store(StoreError::Other(format!("writer task failed: {e}")))
        })??;
        Ok(WriteTx::new(Inner::Lite(Some(LiteTx {
            guard,
            gc: self.clone(),
        }))))
    }

    /// Commits whatever is pending; used at shutdown.
    pub async fn drain(&self) {
        let mut w = self.writer.lock().await;
        w.clean().await;
        w.flush().await;
    }

    /// Background sweeper: settles batches whose last write went away (dropped on an error
    /// path or cancelled) so their earlier writes still commit promptly.
    pub fn spawn_sweeper(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(20));
            loop {
                tick.tick().await;
                let Some(gc) = weak.upgrade() else { return };
                let Ok(mut w) = gc.writer.clone().try_lock_owned() else {
                    continue;
                };
                if (w.savepoint_open
                    || w.savepoint_pending
                    || (w.in_batch && !w.waiters.is_empty()))
                    && gc.waiting.load(Ordering::SeqCst) == 0
                {
                    gc.settle(&mut w).await;
                }
            }
        });
    }

    /// Closes an idle batch (used when a write was dropped while others waited on it).
    async fn settle(&self, w: &mut Writer) {
        w.clean().await;
        if self.waiting.load(Ordering::SeqCst) == 0 {
            w.flush().await;
        }
    }
}

pub struct LiteTx {
    guard: OwnedMutexGuard<Writer>,
    gc: Arc<GroupCommit>,
}

/// Bumped after every commit that appended events: feed readers and webhook dispatch wait
/// on it instead of polling (other nodes' events are still found by polling).
pub type EventSignal = Arc<tokio::sync::watch::Sender<u64>>;

/// A write transaction; derefs to the connection it runs on.
pub struct WriteTx {
    inner: Inner,
    signal: Option<EventSignal>,
    events: bool,
    /// PostgreSQL: the process's sealer, told once this transaction commits what it
    /// appended (its transaction id).
    sealer: Option<Arc<super::seal::Sealer>>,
    xid: Option<u64>,
}

enum Inner {
    /// `None` once committed.
    Pg(Option<sqlx::Transaction<'static, Any>>),
    /// `None` once committed.
    Lite(Option<LiteTx>),
}

impl WriteTx {
    /// Runs a write's last statements: on SQLite as one command that also opens the write's
    /// savepoint (if still pending) and releases it, leaving `commit()` only the COMMIT.
    pub async fn finish(&mut self, d: super::Dialect, mut b: Batch) -> Result<(), sqlx::Error> {
        self.events |= b.has_events();
        match &mut self.inner {
            Inner::Lite(Some(lt)) => {
                if b.checks() > 0 {
                    // Only a queued write reads its preconditions back (`submit`).
                    return Err(sqlx::Error::Protocol(
                        "a write with preconditions must be submitted".into(),
                    ));
                }
                let w = &mut lt.guard;
                // Link audit entries to the chain heads; the heads advance only once the
                // write's statements ran (a failed write leaves the chain as it was).
                let mut heads = w.audit_heads.clone();
                b.link_audits(&mut w.conn, &mut heads).await?;
                let before = w.savepoint_pending.then_some("SAVEPOINT w");
                let (sql, args) = b.joined(before, Some("RELEASE w"));
                // Until the command succeeds the savepoint may exist: clean() undoes it.
                w.savepoint_pending = false;
                w.savepoint_open = true;
                bind_all(sqlx::query(&sql), &args)
                    .execute(&mut *w.conn)
                    .await?;
                w.savepoint_open = false;
                w.audit_heads = heads;
                Ok(())
            }
            Inner::Pg(Some(tx)) => {
                if let Some(xid) = b.run_pg(tx).await?.xid {
                    self.xid = Some(xid);
                }
                Ok(())
            }
            Inner::Pg(None) | Inner::Lite(None) => {
                let _ = d;
                Err(sqlx::Error::Protocol(
                    "write transaction used after commit".into(),
                ))
            }
        }
    }

    /// Wakes event consumers after the commit if the transaction appended events.
    pub fn with_signal(mut self, signal: EventSignal) -> Self {
        self.signal = Some(signal);
        self
    }

    /// PostgreSQL: the sealer to tell after commit.
    pub fn with_sealer(mut self, sealer: Option<Arc<super::seal::Sealer>>) -> Self {
        self.sealer = sealer;
        self
    }

    fn new(inner: Inner) -> Self {
        WriteTx {
            inner,
            signal: None,
            events: false,
            sealer: None,
            xid: None,
        }
    }

    pub fn pg(tx: sqlx::Transaction<'static, Any>) -> Self {
        WriteTx::new(Inner::Pg(Some(tx)))
    }

    /// Commits; returns once the change is durable.
    pub async fn commit(mut self) -> CoreResult<()> {
        let r = self.commit_inner().await;
        if r.is_ok()
            && let (Some(s), Some(xid)) = (&self.sealer, self.xid)
        {
            s.committed(xid);
        }
        if r.is_ok()
            && self.events
            && let Some(s) = &self.signal
        {
            s.send_modify(|n| *n = n.wrapping_add(1));
        }
        r
    }

    async fn commit_inner(&mut self) -> CoreResult<()> {
        match &mut self.inner {
            Inner::Pg(slot) => match slot.take() {
                Some(tx) => tx.commit().await.map_err(err),
                None => Ok(()),
            },
            Inner::Lite(slot) => {
                let Some(lt) = slot.take() else {
                    return Ok(());
                };
                let (tx, rx) = oneshot::channel();
                // The release and the COMMIT run in a task: a cancelled caller must not leave
                // a COMMIT half-observed (its neighbours' durability depends on it).
                let LiteTx { mut guard, gc } = lt;
                tokio::spawn(async move {
                    guard.waiters.push(tx);
                    guard.savepoint_pending = false;
                    let last =
                        gc.waiting.load(Ordering::SeqCst) == 0 || guard.waiters.len() >= MAX_BATCH;
                    // The release (unless the batch carried it) and, for the last write in
                    // line, the COMMIT: at most one command.
                    match (guard.savepoint_open, last) {
                        (true, true) => guard.end_batch("RELEASE w; COMMIT").await,
                        (false, true) => guard.end_batch("COMMIT").await,
                        (true, false) => match guard.conn.execute("RELEASE w").await {
                            Ok(_) => guard.savepoint_open = false,
                            Err(x) => guard.abort_batch(x.to_string()).await,
                        },
                        (false, false) => {}
                    }
                });
                wait_commit(rx).await
            }
        }
    }
}

/// Waits for the COMMIT of the batch a write joined.
async fn wait_commit(rx: oneshot::Receiver<Result<(), String>>) -> CoreResult<()> {
    match rx.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(m)) => Err(CoreError::Store(StoreError::Other(format!(
            "commit failed: {m}"
        )))),
        Err(_) => Err(CoreError::Store(StoreError::Other(
            "commit abandoned".into(),
        ))),
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        // A write dropped without commit (an error path): roll back its savepoint and, if it
        // was the last in line, commit what the batch already holds, off the async path.
        if let Inner::Lite(slot) = &mut self.inner
            && let Some(LiteTx { mut guard, gc }) = slot.take()
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            handle.spawn(async move {
                gc.settle(&mut guard).await;
            });
        }
    }
}

impl Deref for WriteTx {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        match &self.inner {
            Inner::Pg(Some(tx)) => tx,
            Inner::Lite(Some(lt)) => &lt.guard.conn,
            Inner::Pg(None) | Inner::Lite(None) => {
                unreachable!("a committed write transaction is not used again")
            }
        }
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match &mut self.inner {
            Inner::Pg(Some(tx)) => &mut *tx,
            Inner::Lite(Some(lt)) => &mut lt.guard.conn,
            Inner::Pg(None) | Inner::Lite(None) => {
                unreachable!("a committed write transaction is not used again")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A runner that unwinds hands the queue on: a write queued while it ran is still
    /// answered (without the guard it waits for ever, `running` left set).
    #[tokio::test]
    async fn a_runner_that_unwinds_hands_the_queue_on() {
        sqlx::any::install_default_drivers();
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .expect("an in-memory database");
        let gc = Arc::new(GroupCommit::new(
            pool.acquire().await.expect("a connection"),
        ));
        // As if a runner were busy: the write below queues without starting one.
        gc.running.store(true, Ordering::SeqCst);
        let mut b = Batch::default();
        b.push("CREATE TABLE t (x INTEGER)", vec![]);
        let write = tokio::spawn({
            let gc = gc.clone();
            async move { gc.submit(b).await }
        });
        while gc.queue().is_empty() {
            tokio::task::yield_now().await;
        }
        // The busy runner unwinds.
        drop(RunnerGuard(Some(gc.clone())));
        let answer = tokio::time::timeout(std::time::Duration::from_secs(10), write)
            .await
            .expect("the queued write is answered")
            .expect("the write's task ends");
        assert!(matches!(answer, Ok(Ok(None))), "{answer:?}");
    }
}
