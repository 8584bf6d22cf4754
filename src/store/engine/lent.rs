//! Connections lent without sqlx's pool: the ones reads run on, and on PostgreSQL the ones
//! of the writes that need no transaction object (a one-statement write, a combined
//! round, a seal round). Each is lent to one user at a time and taken back without a round
//! trip.
//!
//! sqlx's pool pings every connection it takes back (and, unless told otherwise, again
//! before it lends one): on SQLite a ping is one more hand-off to the connection's worker
//! thread, which doubled the thread hand-offs of every `GET /Users/{id}`; on PostgreSQL it
//! is one more round trip, and a wake-up of the server process, beside each read's one
//! statement (a write's: before its statement and after its commit). These sets keep their
//! connections out of the pool instead:
//!
//! - **SQLite**: a fixed set opened with the store. A file connection cannot be lost, and a
//!   read cancelled part-way leaves nothing behind: the worker finishes or drops the
//!   statement before it takes the next command from its queue, and readers never open
//!   transactions.
//! - **PostgreSQL**: up to [`PG_READERS`] (reads) or [`PG_WRITERS`] (writes) connections,
//!   opened on demand through the pool's options (its host, schema and timeouts; see
//!   `hosts` for fail-over) and then detached from it. A connection comes back as it is
//!   unless something may be wrong with it: its user marked it suspect ([`Lent::suspect`],
//!   after an error), a connection-level error was seen anywhere in the process during its
//!   lend ([`connection_trouble`]), or it still has a request to send (a cancelled
//!   transaction's rollback). Those are checked in the background (a ping, which also sends
//!   what is left and reads what is owed) and dropped if the check fails. A statement
//!   cancelled after it was sent needs no check: sqlx reads the answer still owed before the
//!   next statement. An idle connection is pinged before it is lent again if it was idle for
//!   longer than [`TRUST_IDLE`] or trouble was seen since it came back
//!   ([`check_before_lending`]): after the database restarts, one request finds a lost
//!   connection and the others are checked first.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use sqlx::{AnyConnection, AnyPool, Connection};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::core::error::CoreResult;

/// PostgreSQL reader connections per node, at most: with point reads coalesced and two
/// cores for Roster and the database, more reads at once only queue inside the database.
pub(crate) const PG_READERS: usize = 8;
/// PostgreSQL connections per node for writes lent from a set (see the module's doc): as
/// many as the clients a node usually serves at once, each a transaction of its own.
pub(crate) const PG_WRITERS: usize = 8;
/// A connection back for less than this is lent without a ping (unless trouble was seen
/// since: `check_before_lending`).
const TRUST_IDLE: Duration = Duration::from_secs(1);
/// How long a background check of a returned connection may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// When this process last saw an error that may have broken a connection, in nanoseconds
/// after `base()` (0: never). A connection that was idle or lent at that moment is checked
/// before it is used again: after a database restart one request finds a lost connection,
/// not one per connection kept.
static TROUBLE_AT: AtomicU64 = AtomicU64::new(0);

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn nanos(t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(base()).as_nanos()).unwrap_or(u64::MAX)
}

/// Records that a database error which may have left its connection unusable (lost,
/// timed out, a protocol error) was seen: every connection lent or idle at this moment is
/// checked before its next use. Called for every such error the store maps (`db_err`).
fn connection_trouble() {
    // Never 0, which means "never".
    TROUBLE_AT.fetch_max(nanos(Instant::now()).max(1), Ordering::Relaxed);
}

/// Calls `connection_trouble` if `e` may have left its connection unusable: the database
/// out of reach (see `unavailable`) or a protocol error.
pub(crate) fn note(e: &sqlx::Error) {
    if super::unavailable(e) || matches!(e, sqlx::Error::Protocol(_)) {
        connection_trouble();
    }
}

/// Whether trouble was seen at or after `t`.
fn trouble_since(t: Instant) -> bool {
    let at = TROUBLE_AT.load(Ordering::Relaxed);
    at != 0 && at >= nanos(t)
}

/// Whether a connection idle since `since` must be pinged before it is lent: idle for
/// longer than `TRUST_IDLE` (the server may have restarted meanwhile), or trouble was seen
/// since.
pub(crate) fn check_before_lending(since: Instant) -> bool {
    since.elapsed() > TRUST_IDLE || trouble_since(since)
}

/// A set of connections to lend.
#[derive(Clone)]
pub(crate) struct Conns(Arc<Set>);

struct Idle {
    conn: AnyConnection,
    since: Instant,
}

struct Set {
    idle: Mutex<Vec<Idle>>,
    permits: Arc<Semaphore>,
    size: u32,
    /// PostgreSQL: where new connections come from. SQLite: none (the set is fixed).
    source: Option<AnyPool>,
}

impl Set {
    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        // Nothing panics while holding the lock; a poisoned one still holds valid connections.
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn put_back(&self, conn: AnyConnection) {
        self.idle().push(Idle {
            conn,
            since: Instant::now(),
        });
    }
}

/// A connection lent for one read or write (or a few in a row), returned when dropped.
pub(crate) struct Lent {
    conn: Option<AnyConnection>,
    home: Arc<Set>,
    /// When it was lent.
    lent_at: Instant,
    /// Marked by its user after an error: checked before it is lent again.
    suspect: bool,
    /// Released once `conn` is back in `home` (or dropped).
    permit: Option<OwnedSemaphorePermit>,
}

impl Conns {
    /// A fixed set of connections (SQLite).
    pub(crate) fn fixed(conns: Vec<AnyConnection>) -> Self {
        let size = u32::try_from(conns.len()).unwrap_or(u32::MAX);
        let now = Instant::now();
        Conns(Arc::new(Set {
            permits: Arc::new(Semaphore::new(conns.len())),
            idle: Mutex::new(
                conns
                    .into_iter()
                    .map(|conn| Idle { conn, since: now })
                    .collect(),
            ),
            size,
            source: None,
        }))
    }

    /// Up to `size` connections opened on demand from `pool`'s options (PostgreSQL).
    pub(crate) fn from_pool(pool: AnyPool, size: usize) -> Self {
        Conns(Arc::new(Set {
            permits: Arc::new(Semaphore::new(size)),
            idle: Mutex::new(Vec::new()),
            size: u32::try_from(size).unwrap_or(u32::MAX),
            source: Some(pool),
        }))
    }

    /// A connection, as a store error (`Unavailable` while the database is out of reach).
    pub(crate) async fn acquire(&self) -> CoreResult<Lent> {
        self.lend().await.map_err(|e| super::db_err(e).into())
    }

    /// A connection; waiting for one is bounded like waiting for a pooled one (the pool's
    /// acquire timeout, then `PoolTimedOut`): while the database is out of reach, requests
    /// fail (503) instead of queueing.
    pub(crate) async fn lend(&self) -> Result<Lent, sqlx::Error> {
        let set = &self.0;
        let Some(pool) = &set.source else {
            let permit = self.permit().await?;
            // A permit guarantees an idle connection in a fixed set.
            let idle = set
                .idle()
                .pop()
                .ok_or_else(|| sqlx::Error::Protocol("no idle connection in a fixed set".into()))?;
            return Ok(self.lent(idle.conn, permit));
        };
        // The whole of it bounded, checks of idle connections included: a ping over a
        // connection whose peer vanished without a reset would otherwise wait for TCP.
        let wait = pool.options().get_acquire_timeout();
        tokio::time::timeout(wait, async {
            let permit = self.permit().await?;
            loop {
                let idle = set.idle().pop();
                match idle {
                    Some(i) if !check_before_lending(i.since) => {
                        return Ok(self.lent(i.conn, permit));
                    }
                    Some(mut i) => {
                        if i.conn.ping().await.is_ok() {
                            return Ok(self.lent(i.conn, permit));
                        }
                        // Lost while idle: the next one, or a new one.
                    }
                    None => return Ok(self.lent(pool.acquire().await?.detach(), permit)),
                }
            }
        })
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)?
    }

    async fn permit(&self) -> Result<OwnedSemaphorePermit, sqlx::Error> {
        self.0
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| sqlx::Error::PoolClosed)
    }

    fn lent(&self, conn: AnyConnection, permit: OwnedSemaphorePermit) -> Lent {
        Lent {
            conn: Some(conn),
            home: self.0.clone(),
            lent_at: Instant::now(),
            suspect: false,
            permit: Some(permit),
        }
    }

    /// Waits for the connections lent, then closes every one; later lends fail.
    pub(crate) async fn close(&self) {
        let set = &self.0;
        if let Ok(all) = set.permits.acquire_many(set.size).await {
            all.forget();
            set.permits.close();
        }
        let conns = std::mem::take(&mut *set.idle());
        for i in conns {
            let _ = i.conn.close().await;
        }
    }
}

impl Deref for Lent {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        self.conn.as_ref().expect("lent connection present")
    }
}

impl DerefMut for Lent {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        self.conn.as_mut().expect("lent connection present")
    }
}

impl Lent {
    /// After an error of its user: checks it in the background before it is lent again,
    /// and if the error may have lost the connection, every other one too (`note`).
    pub(crate) fn suspect(&mut self, e: &sqlx::Error) {
        note(e);
        self.suspect = true;
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let permit = self.permit.take();
        let home = self.home.clone();
        let suspect = home.source.is_some()
            && (self.suspect || conn.should_flush() || trouble_since(self.lent_at));
        if !suspect {
            home.put_back(conn);
            drop(permit);
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    if let Ok(Ok(())) = tokio::time::timeout(CHECK_TIMEOUT, conn.ping()).await {
                        home.put_back(conn);
                    }
                    drop(permit);
                });
            }
            // No runtime to check it on (the store is going away): not kept.
            Err(_) => drop(permit),
        }
    }
}
