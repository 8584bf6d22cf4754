//! PostgreSQL: what a write appends is put in order after it commits (the design and why:
//! `docs/design/event-order.md`).
//!
//! Writers take no shared lock. They insert event rows with no cursor (`pos` NULL), audit
//! entries unlinked (`audit_pending`), users and groups with no list position, and
//! deletions uncounted; each of those rows records its transaction (`tx`, an `xid8`). A
//! **seal round** then orders everything whose transaction ended before the oldest one
//! still running — the horizon, `pg_snapshot_xmin(pg_current_snapshot())` — in
//! `(tx, id)` order: every transaction below the horizon has committed or rolled back, so
//! nothing can later appear below what a round sealed. A round
//! - numbers the events after the highest cursor (readers read by `pos`: a reader that has
//!   seen cursor N never finds a later event below N);
//! - links the audit entries into their chains (`seq`, `prev_hash`, `hash`, as SQLite's
//!   writer does while writing);
//! - gives new users and groups the next positions of their organization and counts
//!   deletions (the counters dense paging reads, `positions`).
//!
//! One round runs at a time per schema: each takes a transaction-scoped advisory lock with
//! `pg_try_advisory_xact_lock`, so a node that dies mid-round releases it with its
//! connection, and any node's next round goes on where it stopped (every round works only on
//! rows still unsealed). Every node runs rounds: after each local commit that appended
//! something, on a timer for other nodes' leftovers, and before reads that must see this
//! node's own writes (`Sealer::ensure`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::{AnyConnection, AnyPool, Connection, Row};
use tokio::sync::Notify;

use super::batch::placeholders;
use super::write::EventSignal;
use super::{Arg, bind_all};
use crate::core::audit::{self, GENESIS};

/// Most rows of each kind one round seals (a round is one transaction).
const ROUND_ROWS: i64 = 5_000;

/// The least time between two background rounds that found work. Under write load every
/// commit wakes the loop; rounds back to back (240 a second during group PATCHes, each a
/// transaction of nine statements and a commit) cost the database about what the writes
/// did. After this pause a round seals everything committed meanwhile at once. It bounds
/// what it adds to seal lag; a read that needs its own writes sealed runs a round at once
/// (`Sealer::ensure`).
const ROUND_GAP: Duration = Duration::from_millis(10);

/// How often an idle node looks for rows other nodes left unsealed.
const IDLE_TICK: Duration = Duration::from_millis(250);

/// How long a read waits for this node's own writes to be sealed (only a transaction that
/// began before them and is still running makes it wait; Roster's own last milliseconds).
const READ_WAIT: Duration = Duration::from_millis(500);

/// The advisory lock's first key (the second is the schema's hash): "seal".
const SEAL_LOCK: i32 = 0x7365_616c;

/// What one round did.
#[derive(Debug, Clone, Copy)]
pub struct Round {
    /// Every transaction below this id has ended, and what it appended is sealed.
    pub horizon: u64,
    /// A kind of row filled the round: more may wait below the horizon.
    pub full: bool,
    /// A user or group below the horizon was locked by a running write (a PATCH or a
    /// deactivation of it; any row lock, even `FOR KEY SHARE`, makes `SKIP LOCKED` pass it):
    /// it waits, unpositioned, for a later round, so this round does not seal everything
    /// below its horizon.
    pub held: bool,
    /// How many events it numbered.
    pub events: u64,
}

/// The sealer of one PostgreSQL store (one per process).
pub struct Sealer {
    pool: AnyPool,
    /// Where rounds get their connection (see `lent`).
    conns: super::lent::Conns,
    /// The highest transaction id of a local commit that appended something.
    committed: AtomicU64,
    /// Local commits up to this id are sealed (or a read stopped waiting for them).
    sealed: AtomicU64,
    /// Every row of a transaction below this id is sealed (the horizon of this node's last
    /// round that left nothing below its horizon). Rounds look only from here up: the rows
    /// sealed before, gone from the unsealed rows' partial indexes only once vacuumed, are
    /// where every scan in `(tx, id)` order would start (1.4 ms to find 20 pending audit
    /// entries behind them under PATCH load).
    floor: AtomicU64,
    /// One local round at a time (rounds of other nodes wait on the advisory lock).
    turn: tokio::sync::Mutex<()>,
    wake: Notify,
    /// Bumped by every round that gave events their cursors, so that consumers reading
    /// only sealed events (the webhook dispatcher) look again without sealing themselves.
    signal: EventSignal,
}

impl Sealer {
    pub fn new(pool: AnyPool, conns: super::lent::Conns, signal: EventSignal) -> Arc<Self> {
        Arc::new(Sealer {
            signal,
            pool,
            conns,
            committed: AtomicU64::new(0),
            sealed: AtomicU64::new(0),
            floor: AtomicU64::new(0),
            turn: tokio::sync::Mutex::new(()),
            wake: Notify::new(),
        })
    }

    /// A local transaction that appended something committed.
    pub fn committed(&self, xid: u64) {
        self.committed.fetch_max(xid, Ordering::AcqRel);
        self.wake.notify_one();
    }

    /// Waits until this node's committed writes are sealed, so a read that follows sees
    /// them (the feed, the audit log, list positions). Bounded by `READ_WAIT`: a
    /// transaction older than them that is still running (anywhere in the cluster) holds
    /// them back, and the reader then goes on without them.
    pub async fn ensure(&self) {
        let target = self.committed.load(Ordering::Acquire);
        if self.sealed.load(Ordering::Acquire) >= target {
            return;
        }
        let deadline = Instant::now() + READ_WAIT;
        loop {
            match self.round().await {
                Ok(_) if self.sealed.load(Ordering::Acquire) >= target => return,
                Ok(_) => {}
                // A failed round (a lost connection, a deadlock with a schema change) is
                // tried again until the deadline, as a held horizon is.
                Err(e) => tracing::warn!(error = %e, "sealing before a read failed"),
            }
            if Instant::now() >= deadline {
                tracing::warn!("a read goes on with this node's writes not all sealed");
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // Later reads wait again only for later writes.
        self.sealed.fetch_max(target, Ordering::AcqRel);
    }

    /// One round in this node's turn. `None`: another node's round holds the lock.
    pub async fn round(&self) -> Result<Option<Round>, sqlx::Error> {
        let _turn = self.turn.lock().await;
        let target = self.committed.load(Ordering::Acquire);
        let mut c = self.conns.lend().await?;
        let r = match seal_round(&mut c, self.floor.load(Ordering::Acquire)).await {
            Ok(r) => r,
            Err(e) => {
                c.suspect(&e);
                return Err(e);
            }
        };
        if r.is_some_and(|r| r.events > 0) {
            self.signal.send_modify(|n| *n = n.wrapping_add(1));
        }
        if let Some(r) = r
            && !r.full
            && !r.held
        {
            self.floor.fetch_max(r.horizon, Ordering::AcqRel);
            if r.horizon > target {
                self.sealed.fetch_max(target, Ordering::AcqRel);
            }
        }
        Ok(r)
    }

    /// What waits to be sealed (`/metrics`, `roster audit verify`).
    pub async fn backlog(&self) -> Result<Backlog, sqlx::Error> {
        backlog(&mut *self.pool.acquire().await?).await
    }

    /// Whether anything waits to be sealed.
    async fn pending(&self) -> Result<bool, sqlx::Error> {
        // Each probe in its partial index's order with LIMIT 1, so that it is an index
        // probe whatever the statistics say: as a bare EXISTS, after a burst of creates
        // (most rows unsealed when last analysed) PostgreSQL planned sequential scans, and
        // with everything sealed each probe read every event (24 ms at 100,000 users, run
        // after every commit).
        let row = sqlx::query(
            "SELECT ((SELECT 1 FROM events WHERE pos IS NULL ORDER BY tx, id LIMIT 1) IS NOT NULL \
               OR (SELECT 1 FROM audit_pending ORDER BY tx, id LIMIT 1) IS NOT NULL \
               OR (SELECT 1 FROM users WHERE pos IS NULL ORDER BY tx, id LIMIT 1) IS NOT NULL \
               OR (SELECT 1 FROM org_groups WHERE pos IS NULL ORDER BY tx, id LIMIT 1) IS NOT NULL \
               OR (SELECT 1 FROM deleted_positions WHERE NOT counted ORDER BY tx LIMIT 1) IS NOT NULL) AS p",
        )
        .fetch_one(&self.pool)
        .await?;
        row.try_get("p")
    }

    /// The node's background rounds: woken by local commits, and every `IDLE_TICK` for
    /// what other nodes (or a failed round) left. While the horizon is held (a long
    /// transaction), it backs off up to `IDLE_TICK`. Ends when the store's pool closes.
    pub fn spawn(self: &Arc<Self>) {
        let s = self.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(2);
            let mut woken = false;
            loop {
                if s.pool.is_closed() {
                    return;
                }
                let wait = s.wake.notified();
                // Woken by a local commit: something waits. After a tick: look first.
                let pending = if woken { Ok(true) } else { s.pending().await };
                let idle = match pending {
                    Ok(false) => true,
                    Ok(true) => match s.round().await {
                        Ok(Some(r)) if r.full => continue,
                        // Work done, or held rows left for the next round: go on soon.
                        Ok(Some(r)) if r.events > 0 || r.held => {
                            backoff = Duration::from_millis(2);
                            false
                        }
                        Ok(_) => {
                            backoff = (backoff * 2).min(IDLE_TICK);
                            false
                        }
                        Err(_) if s.pool.is_closed() => return,
                        Err(e) => {
                            tracing::warn!(error = %e, "seal round failed");
                            backoff = IDLE_TICK;
                            false
                        }
                    },
                    Err(_) => {
                        backoff = IDLE_TICK;
                        false
                    }
                };
                let pause = if idle {
                    IDLE_TICK
                } else {
                    // A commit meanwhile leaves its wake-up stored: `wait` ends at once.
                    tokio::time::sleep(ROUND_GAP).await;
                    backoff
                };
                woken = tokio::time::timeout(pause, wait).await.is_ok();
            }
        });
    }
}

/// A transaction id (`xid8`) as PostgreSQL prints it.
pub(super) fn parse_xid(text: &str) -> Result<u64, sqlx::Error> {
    text.parse()
        .map_err(|_| sqlx::Error::Protocol(format!("unexpected transaction id {text}")))
}

/// One round (see the module documentation) over the rows of transactions from `floor` up
/// (every row below it is sealed). `None` when another round holds the lock.
pub async fn seal_round(c: &mut AnyConnection, floor: u64) -> Result<Option<Round>, sqlx::Error> {
    let mut tx = c.begin().await?;
    // A round that loses its node mid-way must not hold the lock until TCP notices.
    let row = sqlx::query(
        "SELECT set_config('idle_in_transaction_session_timeout', '5000', true) AS t, \
         pg_try_advisory_xact_lock($1, hashtext(current_schema())) AS got, \
         CAST(pg_snapshot_xmin(pg_current_snapshot()) AS TEXT) AS h",
    )
    .bind(SEAL_LOCK)
    .fetch_one(&mut *tx)
    .await?;
    if !row.try_get::<bool, _>("got")? {
        return Ok(None);
    }
    let h: String = row.try_get("h")?;
    let horizon = parse_xid(&h)?;
    let lo = floor.to_string();
    let events = sqlx::query(
        "WITH todo AS (SELECT id, tx FROM events WHERE pos IS NULL AND tx < CAST($1 AS xid8) \
           AND tx >= CAST($3 AS xid8) ORDER BY tx, id LIMIT $2), \
         base AS (SELECT COALESCE(MAX(pos), 0) AS m FROM events), \
         n AS (SELECT id, row_number() OVER (ORDER BY tx, id) AS rn FROM todo) \
         UPDATE events e SET pos = base.m + n.rn FROM n, base WHERE e.id = n.id",
    )
    .bind(&h)
    .bind(ROUND_ROWS)
    .bind(&lo)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let mut full = events >= ROUND_ROWS as u64;
    let mut held = false;
    for (table, kind) in [("users", "User"), ("org_groups", "Group")] {
        let (n, h_) = positions(&mut tx, table, kind, &h, &lo).await?;
        full |= n >= ROUND_ROWS as u64;
        held |= h_;
    }
    // Deletions of sealed resources: their positions leave the live count.
    sqlx::query(
        "WITH d AS (UPDATE deleted_positions SET counted = TRUE \
           WHERE NOT counted AND tx < CAST($1 AS xid8) AND tx >= CAST($2 AS xid8) RETURNING org_id, kind), \
         n AS (SELECT org_id, kind, COUNT(*) AS k FROM d GROUP BY org_id, kind) \
         UPDATE org_counters o SET live = o.live - n.k, deleted = o.deleted + n.k \
         FROM n WHERE o.org_id = n.org_id AND o.kind = n.kind",
    )
    .bind(&h)
    .bind(&lo)
    .execute(&mut *tx)
    .await?;
    full |= link_audit(&mut tx, &h, &lo).await? >= ROUND_ROWS as u64;
    tx.commit().await?;
    Ok(Some(Round {
        horizon,
        full,
        held,
        events,
    }))
}

/// Gives the unsealed users or groups (`table`) below the horizon the next positions of
/// their organizations, in `(tx, id)` order, and counts them live. A row a writer holds
/// locked (a change to a user created a moment ago) is not waited for: it and every later
/// row of its organization wait for the next round, so positions stay in creation order.
/// Returns how many it positioned and whether a held row made some wait.
async fn positions(
    c: &mut AnyConnection,
    table: &str,
    kind: &str,
    h: &str,
    lo: &str,
) -> Result<(u64, bool), sqlx::Error> {
    let sql = format!(
        "WITH cand AS (SELECT org_id, id, tx FROM {table} WHERE pos IS NULL AND tx < CAST($1 AS xid8) \
           AND tx >= CAST($4 AS xid8) ORDER BY tx, id LIMIT $2), \
         got AS (SELECT org_id, id FROM {table} WHERE (org_id, id) IN (SELECT org_id, id FROM cand) AND pos IS NULL \
           FOR UPDATE SKIP LOCKED), \
         stop AS (SELECT DISTINCT ON (org_id) org_id, tx, id FROM cand \
           WHERE id NOT IN (SELECT id FROM got) ORDER BY org_id, tx, id), \
         todo AS (SELECT cand.org_id, cand.id, cand.tx FROM cand JOIN got ON got.org_id = cand.org_id AND got.id = cand.id \
           WHERE NOT EXISTS (SELECT 1 FROM stop WHERE stop.org_id = cand.org_id \
             AND (stop.tx, stop.id) < (cand.tx, cand.id))), \
         n AS (SELECT org_id, id, row_number() OVER (PARTITION BY org_id ORDER BY tx, id) AS rn, \
           COUNT(*) OVER (PARTITION BY org_id) AS cnt FROM todo), \
         c AS (INSERT INTO org_counters (org_id, kind, live, next_pos) \
           SELECT org_id, $3, cnt, cnt FROM n WHERE rn = 1 \
           ON CONFLICT (org_id, kind) DO UPDATE SET live = org_counters.live + excluded.live, \
           next_pos = org_counters.next_pos + excluded.next_pos RETURNING org_id, next_pos), \
         u AS (UPDATE {table} t SET pos = c.next_pos - n.cnt + n.rn FROM n JOIN c ON c.org_id = n.org_id \
         WHERE t.org_id = n.org_id AND t.id = n.id RETURNING 1) \
         SELECT (SELECT COUNT(*) FROM u) AS done, EXISTS (SELECT 1 FROM stop) AS held"
    );
    let row = sqlx::query(&sql)
        .bind(h)
        .bind(ROUND_ROWS)
        .bind(kind)
        .bind(lo)
        .fetch_one(&mut *c)
        .await?;
    let done: i64 = row.try_get("done")?;
    Ok((u64::try_from(done).unwrap_or(0), row.try_get("held")?))
}

/// Links the pending audit entries below the horizon into their chains, in `(tx, id)`
/// order, after each chain's head (its last entry, or its anchor if retention emptied it).
async fn link_audit(c: &mut AnyConnection, h: &str, lo: &str) -> Result<u64, sqlx::Error> {
    let rows = sqlx::query(
        "DELETE FROM audit_pending WHERE id IN (SELECT id FROM audit_pending \
           WHERE tx < CAST($1 AS xid8) AND tx >= CAST($3 AS xid8) ORDER BY tx, id LIMIT $2) \
         RETURNING id, CAST(tx AS TEXT) AS tx, chain, at, tail",
    )
    .bind(h)
    .bind(ROUND_ROWS)
    .bind(lo)
    .fetch_all(&mut *c)
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut pending = Vec::with_capacity(rows.len());
    for r in &rows {
        let tx = parse_xid(&r.try_get::<String, _>("tx")?)?;
        let id: i64 = r.try_get("id")?;
        let chain: String = r.try_get("chain")?;
        let at: String = r.try_get("at")?;
        let tail: String = r.try_get("tail")?;
        pending.push((tx, id, chain, at, tail));
    }
    pending.sort_by_key(|p| (p.0, p.1));
    let mut chains: Vec<String> = pending.iter().map(|p| p.2.clone()).collect();
    chains.sort();
    chains.dedup();
    let mut heads = std::collections::HashMap::new();
    for chunk in chains.chunks(500) {
        let values: Vec<String> = (1..=chunk.len())
            .map(|i| format!("(CAST(${i} AS TEXT))"))
            .collect();
        let sql = format!(
            "SELECT c.chain, COALESCE(l.seq, a.seq, 0) AS seq, COALESCE(l.hash, a.hash, ${g}) AS hash \
             FROM (VALUES {}) AS c(chain) \
             LEFT JOIN LATERAL (SELECT x.seq, x.hash FROM audit_log x WHERE x.chain = c.chain \
               ORDER BY x.seq DESC LIMIT 1) l ON TRUE \
             LEFT JOIN audit_anchors a ON a.chain = c.chain",
            values.join(", "),
            g = chunk.len() + 1
        );
        let mut args: Vec<Arg> = chunk.iter().cloned().map(Arg::Str).collect();
        args.push(Arg::Str(GENESIS.to_owned()));
        for r in bind_all(sqlx::query(&sql), &args)
            .fetch_all(&mut *c)
            .await?
        {
            let chain: String = r.try_get("chain")?;
            heads.insert(
                chain,
                (r.try_get::<i64, _>("seq")?, r.try_get::<String, _>("hash")?),
            );
        }
    }
    let mut entries: Vec<Arg> = Vec::with_capacity(pending.len() * 6);
    for (_, _, chain, at, tail) in &pending {
        let (seq, prev) = heads.get(chain).cloned().unwrap_or((0, GENESIS.to_owned()));
        let seq = seq + 1;
        let body = audit::body_with_seq(chain, seq, tail);
        let hash = audit::link_hash(&prev, &body);
        heads.insert(chain.clone(), (seq, hash.clone()));
        entries.extend([
            Arg::Str(chain.clone()),
            Arg::I64(seq),
            Arg::Str(at.clone()),
            Arg::Str(body),
            Arg::Str(prev),
            Arg::Str(hash),
        ]);
    }
    for chunk in entries.chunks(500 * 6) {
        let sql = format!(
            "INSERT INTO audit_log (chain, seq, at, body, prev_hash, hash) VALUES {}",
            placeholders(chunk.len() / 6, 6)
        );
        bind_all(sqlx::query(&sql), chunk).execute(&mut *c).await?;
    }
    Ok(pending.len() as u64)
}

/// What waits to be sealed: committed or running writes' rows without a cursor or a chain
/// link. Counts stop at `BACKLOG_CAP` (a scrape must stay cheap whatever piles up).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backlog {
    pub events: i64,
    pub audit_entries: i64,
    /// When the oldest of them (by transaction) was written, in the storage format.
    pub oldest: Option<String>,
}

pub const BACKLOG_CAP: i64 = 100_000;

/// The backlog (see [`Backlog`]), read through the unsealed rows' partial indexes.
pub async fn backlog(c: &mut AnyConnection) -> Result<Backlog, sqlx::Error> {
    let r = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM events WHERE pos IS NULL LIMIT $1) e) AS events, \
           (SELECT COUNT(*) FROM (SELECT 1 FROM audit_pending LIMIT $1) a) AS audit, \
           (SELECT created_at FROM events WHERE pos IS NULL ORDER BY tx, id LIMIT 1) AS oldest_event, \
           (SELECT at FROM audit_pending ORDER BY tx, id LIMIT 1) AS oldest_audit",
    )
    .bind(BACKLOG_CAP)
    .fetch_one(&mut *c)
    .await?;
    let oldest = [
        r.try_get::<Option<String>, _>("oldest_event")?,
        r.try_get::<Option<String>, _>("oldest_audit")?,
    ]
    .into_iter()
    .flatten()
    .min();
    Ok(Backlog {
        events: r.try_get("events")?,
        audit_entries: r.try_get("audit")?,
        oldest,
    })
}
