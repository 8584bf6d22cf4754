//! [`Engine`]: one opened database and how writes and reads run on it. SQLite: one writer
//! connection, group-committed, with writes that read nothing first queued for its runner,
//! and reads of one user by a unique key coalesced. PostgreSQL: a pool, a transaction per
//! write, and turns for writes of one group. The repositories call these methods and never
//! ask which it is.

use std::sync::Arc;

use sqlx::AnyPool;

use super::Dialect;
use super::batch::Batch;
use super::combine::{Combiner, RowLock};
use super::lent::{Conns, Lent};
use super::point_reads::{Key, PointReads};
use super::seal::{self, Sealer};
use super::write::{EventSignal, GroupCommit, WriteTx};
use crate::core::error::{CoreError, CoreResult, StoreError};

/// How many group turns there are: groups whose ids hash alike share one.
const GROUP_TURNS: usize = 64;

#[derive(Clone)]
pub struct Engine {
    pub(in crate::store) d: Dialect,
    write: AnyPool,
    read: Conns,
    /// SQLite only: the single writer connection, group-committed.
    group_commit: Option<Arc<GroupCommit>>,
    /// Bumped after each commit that appended events, and on PostgreSQL after each
    /// background seal round that gave events their cursors.
    signal: EventSignal,
    /// PostgreSQL: orders what writes appended, after they commit (see `seal`).
    sealer: Option<Arc<Sealer>>,
    /// PostgreSQL: queued writes of one group, sharing transactions (see `combine`).
    combiner: Option<Arc<Combiner>>,
    /// PostgreSQL: connections for one-statement writes, combined rounds and seal rounds,
    /// lent without the pool's pings (see `lent`).
    quick: Option<Conns>,
    /// PostgreSQL: turns for writes of one group (`group_turn`).
    group_turns: Arc<[tokio::sync::Mutex<()>]>,
    /// SQLite: reads of one user by id or userName, coalesced (see `point_reads`).
    point: Option<Arc<PointReads>>,
}

impl Engine {
    pub(super) fn new(
        d: Dialect,
        write: AnyPool,
        read: Conns,
        group_commit: Option<Arc<GroupCommit>>,
    ) -> Self {
        Engine {
            d,
            write,
            read,
            group_commit,
            signal: Arc::new(tokio::sync::watch::channel(0).0),
            sealer: None,
            combiner: None,
            quick: None,
            group_turns: (0..GROUP_TURNS)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            point: None,
        }
    }

    /// PostgreSQL: seals what writes append after they commit, with background rounds.
    /// Their connections, and those of one-statement writes, come from `quick`.
    pub(in crate::store) fn seal_after_commit(&mut self, quick: Conns) {
        let sealer = Sealer::new(self.write.clone(), quick.clone(), self.signal.clone());
        sealer.spawn();
        self.sealer = Some(sealer);
        self.combiner = Some(Combiner::new(quick.clone()));
        self.quick = Some(quick);
    }

    /// Waits (briefly) until this node's committed writes are sealed, before a read that
    /// must see them in order: the event feed, webhooks, the audit log, list positions.
    /// Nothing to wait for on SQLite, whose writes are in order as they commit.
    pub(in crate::store) async fn sealed(&self) {
        if let Some(s) = &self.sealer {
            s.ensure().await;
        }
    }

    /// PostgreSQL: one seal round now (tests and `roster audit verify`); `false` when
    /// another round held the lock. SQLite: nothing to seal.
    pub(in crate::store) async fn seal_round(&self) -> CoreResult<bool> {
        match &self.sealer {
            Some(s) => s
                .round()
                .await
                .map(|r| r.is_some())
                .map_err(|err| CoreError::Store(super::db_err(err))),
            None => Ok(true),
        }
    }

    /// PostgreSQL: what waits to be sealed. SQLite: `None` (nothing is ever unsealed).
    pub(in crate::store) async fn seal_backlog(&self) -> CoreResult<Option<seal::Backlog>> {
        match &self.sealer {
            Some(s) => s
                .backlog()
                .await
                .map(Some)
                .map_err(|err| CoreError::Store(super::db_err(err))),
            None => Ok(None),
        }
    }

    /// Coalesces reads of one user by a unique key (see `point_reads`: on SQLite each read
    /// crosses to a worker thread, on PostgreSQL each is a round trip and a statement for
    /// the server to run); `select` gives the statement that reads a batch of keys by
    /// `key_col`.
    pub(in crate::store) fn coalesce_point_reads(&mut self, select: impl Fn(&str) -> String) {
        self.point = Some(Arc::new(PointReads::new(self.read.clone(), select)));
    }

    /// The raw page of the user of `org` whose `key` is `value`, when reads of one user are
    /// coalesced (`None`: read it on its own).
    pub(in crate::store) async fn point_read(
        &self,
        key: Key,
        org: &str,
        value: &str,
    ) -> Option<CoreResult<Option<Box<serde_json::value::RawValue>>>> {
        let point = self.point.as_ref()?;
        Some(point.read(key, org, value).await)
    }

    /// A connection for reads (see `lent`).
    pub(in crate::store) async fn read_conn(&self) -> CoreResult<Lent> {
        self.read.acquire().await
    }

    /// Waits for this process's turn to write group `id`, where writes of one group would
    /// otherwise queue inside the database. On PostgreSQL concurrent PATCHes of one group all
    /// queue on its row lock, where every release wakes every waiter: with 16 of them the
    /// throughput collapsed (11 PATCH/s against 621 in a calmer run). In turn, one waits in
    /// the database and the others here. SQLite's single writer already gives writes their
    /// turns (`None`).
    pub(in crate::store) async fn group_turn(
        &self,
        id: &str,
    ) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        if self.group_commit.is_some() {
            return None;
        }
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        id.hash(&mut h);
        let turn = &self.group_turns[(h.finish() % GROUP_TURNS as u64) as usize];
        Some(turn.lock().await)
    }

    /// A receiver that changes after every local commit that appended events.
    pub(in crate::store) fn event_signal(&self) -> tokio::sync::watch::Receiver<u64> {
        self.signal.subscribe()
    }

    /// Wakes event consumers (after a commit that appended events).
    pub(in crate::store) fn events_committed(&self) {
        self.signal.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A write that reads nothing first: all its statements are in `b`. On SQLite it is
    /// queued for the writer's runner (see `write`); `map` turns its failure into the error
    /// to report.
    pub(in crate::store) async fn write_unread(
        &self,
        b: Batch,
        map: impl FnOnce(sqlx::Error) -> CoreError,
    ) -> CoreResult<()> {
        let Some(gc) = &self.group_commit else {
            let mut b = b;
            if let Some((sql, args)) = b.one_pg() {
                return self.write_one_pg(&sql, &args, b.has_events(), map).await;
            }
            let mut tx = self.begin_fresh().await?;
            tx.finish(self.d, b).await.map_err(map)?;
            return tx.commit().await;
        };
        let events = b.has_events();
        gc.submit(b).await?.map_err(map)?;
        if events {
            self.events_committed();
        }
        Ok(())
    }

    /// PostgreSQL: a whole write as one statement (`Batch::one_pg`), committed on its own:
    /// one round trip. Tells the sealer and event consumers after, as a commit does.
    async fn write_one_pg(
        &self,
        sql: &str,
        args: &[super::Arg],
        events: bool,
        map: impl FnOnce(sqlx::Error) -> CoreError,
    ) -> CoreResult<()> {
        let Some(quick) = &self.quick else {
            return Err(CoreError::Store(StoreError::Other(
                "one-statement writes are for PostgreSQL".into(),
            )));
        };
        let mut c = quick.acquire().await?;
        // `fetch_all`, not `fetch_one`: the statement commits when the server reaches the
        // end of the request, after sending its row; `fetch_one` returns at the row, before
        // the commit is durable (test `a_fail_over_to_a_promoted_standby…` lost writes so
        // acknowledged), `fetch_all` once the server is ready again.
        let rows = match super::bind_all(sqlx::query(sql), args)
            .fetch_all(&mut *c)
            .await
        {
            Ok(rows) => rows,
            Err(err) => {
                c.suspect(&err);
                return Err(map(err));
            }
        };
        let row = rows
            .first()
            .ok_or_else(|| CoreError::Store(StoreError::Other("a write returned no row".into())))?;
        let xid = sqlx::Row::try_get::<String, _>(row, "tx")
            .map_err(|err| CoreError::Store(super::db_err(err)))
            .and_then(|t| {
                seal::parse_xid(&t).map_err(|err| CoreError::Store(super::db_err(err)))
            })?;
        if let Some(s) = &self.sealer {
            s.committed(xid);
        }
        if events {
            self.events_committed();
        }
        Ok(())
    }

    /// Whether a write whose preconditions are checked inside its own command
    /// (`Batch::check`) can be queued unread (`submit_checked`). Where it cannot, the caller
    /// reads first.
    pub(in crate::store) fn queues_checked_writes(&self) -> bool {
        self.group_commit.is_some() || self.combiner.is_some()
    }

    /// Runs `b`, whose `Batch::check`s (before any of its other statements) read its
    /// precondition back: `Ok(Some(v))` the checked value, `Ok(None)` no value came back,
    /// `Err` the precondition (or a statement) failed and nothing was written. Only where
    /// `queues_checked_writes`. On SQLite it joins the writer's queue; on PostgreSQL the
    /// queue of `lock.key`, whose writes share transactions that first take `lock`.
    pub(in crate::store) async fn submit_checked(
        &self,
        lock: RowLock,
        b: Batch,
    ) -> CoreResult<Result<Option<i64>, sqlx::Error>> {
        if !b.checks_first() {
            return Err(CoreError::Store(StoreError::Other(
                "a queued write's preconditions come first".into(),
            )));
        }
        let events = b.has_events();
        if let Some(gc) = &self.group_commit {
            let out = gc.submit(b).await?;
            if matches!(out, Ok(Some(_))) {
                self.events_committed();
            }
            return Ok(out);
        }
        let Some(combiner) = &self.combiner else {
            return Err(CoreError::Store(StoreError::Other(
                "this database reads preconditions first".into(),
            )));
        };
        Ok(match combiner.submit(lock, b).await {
            Ok((checked, xid)) => {
                if let (Some(s), Some(xid)) = (&self.sealer, xid) {
                    s.committed(xid);
                }
                if events || xid.is_some() {
                    self.events_committed();
                }
                Ok(checked)
            }
            Err(e) => Err(e),
        })
    }

    pub(in crate::store) async fn begin(&self) -> CoreResult<WriteTx> {
        self.begin_with(false).await
    }

    /// A write whose statements all go in its final `WriteTx::finish` batch (reads before
    /// it are fine): on SQLite its savepoint travels with that batch.
    pub(in crate::store) async fn begin_fresh(&self) -> CoreResult<WriteTx> {
        self.begin_with(true).await
    }

    async fn begin_with(&self, fresh: bool) -> CoreResult<WriteTx> {
        let tx = match &self.group_commit {
            Some(gc) => gc.begin(fresh).await?,
            None => WriteTx::pg(
                self.write
                    .begin()
                    .await
                    .map_err(|err| CoreError::Store(super::db_err(err)))?,
            ),
        };
        Ok(tx
            .with_signal(self.signal.clone())
            .with_sealer(self.sealer.clone()))
    }

    pub(in crate::store) async fn close(&self) {
        match &self.group_commit {
            // The writer connection stays checked out for the store's lifetime (closing its
            // pool would wait for it forever); commit what is pending and let it drop.
            Some(gc) => gc.drain().await,
            None => self.write.close().await,
        }
        if let Some(quick) = &self.quick {
            quick.close().await;
        }
        self.read.close().await;
    }
}
