//! PostgreSQL: the queued writes of one group share transactions.
//!
//! A membership change that reads nothing first (`Batch::check` holds its precondition:
//! the group there, of the expected version, every added member a user of the
//! organization) takes the group's row lock and holds it to its commit, so the changes of
//! one group commit one at a time, each paying its own round trips and its own WAL flush:
//! about 650 a second on this project's machine, where SQLite's group commit shares one
//! flush among a burst of them. Here the changes queued for a group while its previous
//! round ran go together: one transaction, the group's row lock taken first (so every
//! statement after sees the latest committed state, whichever node wrote it), each change's
//! statements in order (each precondition sees the changes before it: versions follow one
//! another), one COMMIT.
//!
//! A change whose precondition does not hold is declined and leaves nothing (its checks run
//! before any of its statements); the caller then makes it the reading way. A statement that
//! fails aborts the transaction: the round is rolled back and each of its changes runs again
//! in a transaction of its own, so a bad change fails only itself. The rounds run in a task
//! of their own: a caller that goes away never leaves a round half done.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sqlx::Connection;
use tokio::sync::oneshot;

use super::batch::{Batch, PgRun, is_declined};
use super::lent::Conns;
use super::{Arg, bind_all};

/// Changes in one round, at most.
const ROUND: usize = 64;

/// What a queued change came to: `Ok(Some(v))` the checked value, `Ok(None)` none came
/// back, `Err` declined or failed (nothing of it written).
pub type Outcome = Result<(Option<i64>, Option<u64>), sqlx::Error>;

/// The row lock a round takes first: SQL over `args`.
#[derive(Clone)]
pub struct RowLock {
    pub key: String,
    pub sql: String,
    pub args: Vec<Arg>,
}

struct Job {
    batch: Batch,
    answer: oneshot::Sender<Outcome>,
}

/// Queues per key; a key is present while a runner works it.
pub struct Combiner {
    conns: Conns,
    queues: Mutex<HashMap<String, (RowLock, Vec<Job>)>>,
}

impl Combiner {
    pub fn new(conns: Conns) -> Arc<Self> {
        Arc::new(Combiner {
            conns,
            queues: Mutex::new(HashMap::new()),
        })
    }

    fn queues(&self) -> std::sync::MutexGuard<'_, HashMap<String, (RowLock, Vec<Job>)>> {
        // Nothing panics while holding the lock.
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `batch` behind `lock`'s key and waits for its round.
    pub async fn submit(self: &Arc<Self>, lock: RowLock, batch: Batch) -> Outcome {
        let (answer, rx) = oneshot::channel();
        let start = {
            let mut q = self.queues();
            let key = lock.key.clone();
            match q.get_mut(&key) {
                Some((_, jobs)) => {
                    jobs.push(Job { batch, answer });
                    None
                }
                None => {
                    q.insert(key.clone(), (lock, vec![Job { batch, answer }]));
                    Some(key)
                }
            }
        };
        if let Some(key) = start {
            tokio::spawn(self.clone().run(key));
        }
        rx.await.unwrap_or_else(|_| {
            Err(sqlx::Error::Protocol(
                "a combined write's round ended without an answer".into(),
            ))
        })
    }

    /// Runs rounds of `key` until its queue is empty (then removes it, under the lock that
    /// saw it empty, so no change is left without a runner).
    async fn run(self: Arc<Self>, key: String) {
        loop {
            let (lock, jobs) = {
                let mut q = self.queues();
                let Some((lock, jobs)) = q.get_mut(&key) else {
                    return;
                };
                if jobs.is_empty() {
                    q.remove(&key);
                    return;
                }
                let n = jobs.len().min(ROUND);
                (lock.clone(), jobs.drain(..n).collect::<Vec<Job>>())
            };
            self.round(&lock, jobs).await;
        }
    }

    async fn round(&self, lock: &RowLock, jobs: Vec<Job>) {
        let batches: Vec<Batch> = jobs.iter().map(|j| j.batch.clone()).collect();
        match self.together(lock, batches).await {
            Ok(outcomes) => {
                for (job, out) in jobs.into_iter().zip(outcomes) {
                    let _ = job.answer.send(out);
                }
            }
            // A statement of one change failed the transaction: each alone. (Not when the
            // database is out of reach: every change would wait for it again.)
            Err(sqlx::Error::Database(_)) if jobs.len() > 1 => {
                for job in jobs {
                    let out = self.together(lock, vec![job.batch]).await;
                    let _ = job.answer.send(out.and_then(|mut o| o.remove(0)));
                }
            }
            Err(e) => {
                for job in jobs {
                    let _ = job.answer.send(Err(clone_err(&e)));
                }
            }
        }
    }

    /// One transaction for `batches`: the outcome of each, once committed.
    async fn together(
        &self,
        lock: &RowLock,
        batches: Vec<Batch>,
    ) -> Result<Vec<Outcome>, sqlx::Error> {
        let mut c = self.conns.lend().await?;
        let result = async {
            let mut tx = (*c).begin().await?;
            bind_all(sqlx::query(&lock.sql), &lock.args)
                .execute(&mut *tx)
                .await?;
            let mut outs = Vec::with_capacity(batches.len());
            for b in batches {
                match b.run_pg(&mut tx).await {
                    Ok(PgRun { xid, checked }) => outs.push(Ok((checked, xid))),
                    Err(e) if is_declined(&e) => outs.push(Err(e)),
                    Err(e) => return Err(e),
                }
            }
            tx.commit().await?;
            Ok(outs)
        }
        .await;
        if let Err(e) = &result {
            // Its rollback still to send, or the connection lost: checked before reuse.
            c.suspect(e);
        }
        result
    }
}

/// The error again, for each change of a round that failed as a whole; an unreachable
/// database stays recognisable as one (the caller answers 503 at once rather than trying
/// the reading way and waiting for a connection again).
fn clone_err(e: &sqlx::Error) -> sqlx::Error {
    match e {
        sqlx::Error::PoolTimedOut => sqlx::Error::PoolTimedOut,
        sqlx::Error::PoolClosed => sqlx::Error::PoolClosed,
        sqlx::Error::Io(io) => sqlx::Error::Io(std::io::Error::new(io.kind(), io.to_string())),
        other => sqlx::Error::Protocol(other.to_string()),
    }
}
