//! Reads of one user by a unique key, coalesced.
//!
//! IdPs and apps read users one at a time (`GET /Users/{id}`, `userName eq` before each
//! create), many at once. Each statement has a fixed cost beside finding the row: on SQLite
//! a hand-off to a connection's worker thread and back, and a read transaction with its
//! shared-memory locks; on PostgreSQL a round trip, and a statement for a server process to
//! bind, plan and run (the two cores this runs on share that with Roster). So reads that
//! arrive while another batch is being read wait for it and then go together, as one
//! statement that looks up every key of the batch (the keys as a JSON array) and returns
//! all rows as one JSON text, each tagged with its key's position. With nothing in flight a
//! read goes at once, alone; under load a batch carries every read that arrived meanwhile.
//! Every batch starts after each of its reads arrived, so it sees every write acknowledged
//! before them.

use std::sync::{Arc, Mutex};

use serde_json::value::RawValue;
use sqlx::Row;
use tokio::sync::oneshot;

use super::lent::Conns;
use crate::core::error::{CoreResult, StoreError};

/// Which unique key a read looks a user up by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key {
    Id,
    /// `user_name_norm`: the folded userName.
    UserName,
}

/// Batches being read at once, at most: one being read while the next one fills.
const RUNNERS: usize = 2;
/// Reads in one statement, at most.
const BATCH: usize = 64;

/// A user's row as one JSON array (the columns of `SqlStore::json_elems`), if found.
type Found = Option<Box<RawValue>>;

struct Pending {
    key: Key,
    org: String,
    value: String,
    tx: oneshot::Sender<Result<Found, StoreError>>,
}

#[derive(Default)]
struct Queue {
    pending: Vec<Pending>,
    running: usize,
}

pub(crate) struct PointReads {
    readers: Conns,
    /// The batch statement per key (`Key as usize`): `$1` a JSON array of
    /// `[org_id, value]` pairs; one row, one column: a JSON array of `[index, row]`.
    sql: [String; 2],
    queue: Mutex<Queue>,
}

impl PointReads {
    /// `select` gives the batch statement for a key column (e.g. `t.id`).
    pub(crate) fn new(readers: Conns, select: impl Fn(&str) -> String) -> Self {
        PointReads {
            readers,
            sql: [select("t.id"), select("t.user_name_norm")],
            queue: Mutex::new(Queue::default()),
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        // Nothing panics while holding the lock.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The user of organization `org` whose `key` is `value`, as its row's JSON array.
    pub(crate) async fn read(
        self: &Arc<Self>,
        key: Key,
        org: &str,
        value: &str,
    ) -> CoreResult<Found> {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut q = self.queue();
            q.pending.push(Pending {
                key,
                org: org.to_owned(),
                value: value.to_owned(),
                tx,
            });
            let start = q.running < RUNNERS;
            if start {
                q.running += 1;
            }
            start
        };
        if start {
            tokio::spawn(self.clone().run());
        }
        match rx.await {
            Ok(found) => found.map_err(Into::into),
            Err(_) => Err(StoreError::Other("point read abandoned".into()).into()),
        }
    }

    /// Reads batches until none is waiting, then gives its turn back (under the same lock
    /// that saw the queue empty, so no read is left waiting without a runner).
    async fn run(self: Arc<Self>) {
        // If the loop ends any other way (a panic), the turn is given back all the same,
        // and a new runner takes over the reads still waiting.
        struct Turn(Option<Arc<PointReads>>);
        impl Drop for Turn {
            fn drop(&mut self) {
                if let Some(reads) = self.0.take() {
                    let restart = {
                        let mut q = reads.queue();
                        q.running -= 1;
                        let restart = !q.pending.is_empty() && q.running < RUNNERS;
                        if restart {
                            q.running += 1;
                        }
                        restart
                    };
                    if restart {
                        tokio::spawn(reads.run());
                    }
                }
            }
        }
        let mut turn = Turn(Some(self.clone()));
        loop {
            let batch: Vec<Pending> = {
                let mut q = self.queue();
                if q.pending.is_empty() {
                    q.running -= 1;
                    turn.0 = None;
                    return;
                }
                let n = q.pending.len().min(BATCH);
                q.pending.drain(..n).collect()
            };
            let (ids, names): (Vec<Pending>, Vec<Pending>) =
                batch.into_iter().partition(|p| p.key == Key::Id);
            for part in [ids, names] {
                self.serve(part).await;
            }
        }
    }

    /// Reads one batch of a single key kind and answers each of its reads.
    async fn serve(&self, batch: Vec<Pending>) {
        let Some(first) = batch.first() else {
            return;
        };
        let sql = &self.sql[first.key as usize];
        let keys: Vec<[&str; 2]> = batch
            .iter()
            .map(|p| [p.org.as_str(), p.value.as_str()])
            .collect();
        let result = async {
            let keys =
                serde_json::to_string(&keys).map_err(|e| StoreError::Other(e.to_string()))?;
            let mut conn = self.readers.acquire().await.map_err(|e| match e {
                crate::core::error::CoreError::Store(s) => s,
                other => StoreError::Other(other.to_string()),
            })?;
            let row = sqlx::query(sql)
                .bind(keys)
                .fetch_one(&mut *conn)
                .await
                .map_err(super::db_err)?;
            let text: String = row.try_get(0).map_err(super::db_err)?;
            serde_json::from_str::<Vec<(usize, Box<RawValue>)>>(&text)
                .map_err(|e| StoreError::Other(format!("bad point read from store: {e}")))
        }
        .await;
        match result {
            Ok(rows) => {
                let mut found: Vec<Found> =
                    std::iter::repeat_with(|| None).take(batch.len()).collect();
                for (i, row) in rows {
                    if let Some(slot) = found.get_mut(i) {
                        *slot = Some(row);
                    }
                }
                for (p, f) in batch.into_iter().zip(found) {
                    // A reader that went away no longer waits for its answer.
                    let _ = p.tx.send(Ok(f));
                }
            }
            Err(msg) => {
                for p in batch {
                    let _ = p.tx.send(Err(msg.clone()));
                }
            }
        }
    }
}
