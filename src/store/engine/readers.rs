//! The connections reads run on.
//!
//! PostgreSQL reads use sqlx's pool, which reconnects lost connections and checks each one
//! as it comes back. SQLite reads use a fixed set of connections to the local file instead:
//! sqlx's pool pings every connection it takes back, and on SQLite a ping is one more
//! round trip to the connection's worker thread, so it doubled the thread hand-offs of
//! every `GET /Users/{id}`. A file connection cannot be lost, and a read that is
//! cancelled part-way leaves nothing behind: the worker finishes or drops the statement
//! before it takes the next command from its queue, and readers never open transactions.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Connection};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::core::error::{CoreResult, StoreError};

/// Where reads get their connection.
#[derive(Clone)]
pub(crate) enum Readers {
    Pool(AnyPool),
    Fixed(Arc<Fixed>),
}

/// A fixed set of connections, each lent to one reader at a time.
pub(crate) struct Fixed {
    idle: Mutex<Vec<AnyConnection>>,
    permits: Arc<Semaphore>,
    size: u32,
}

impl Fixed {
    pub(crate) fn new(conns: Vec<AnyConnection>) -> Self {
        let size = u32::try_from(conns.len()).unwrap_or(u32::MAX);
        Fixed {
            permits: Arc::new(Semaphore::new(conns.len())),
            idle: Mutex::new(conns),
            size,
        }
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<AnyConnection>> {
        // Nothing panics while holding the lock; a poisoned one still holds valid connections.
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A connection lent for one read (or a few in a row), returned when dropped.
pub(crate) enum ReadConn {
    Pool(PoolConnection<Any>),
    Fixed {
        conn: Option<AnyConnection>,
        home: Arc<Fixed>,
        // Released after `conn` is back in `home` (fields drop after `Drop::drop`).
        _permit: OwnedSemaphorePermit,
    },
}

impl Readers {
    pub(crate) async fn acquire(&self) -> CoreResult<ReadConn> {
        match self {
            Readers::Pool(pool) => Ok(ReadConn::Pool(pool.acquire().await.map_err(super::db_err)?)),
            Readers::Fixed(fixed) => {
                let permit = fixed
                    .permits
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| StoreError::Other("the store is closed".into()))?;
                // A permit guarantees an idle connection.
                let conn = fixed
                    .idle()
                    .pop()
                    .ok_or_else(|| StoreError::Other("no idle reader connection".into()))?;
                Ok(ReadConn::Fixed {
                    conn: Some(conn),
                    home: fixed.clone(),
                    _permit: permit,
                })
            }
        }
    }

    /// Waits for reads in flight, then closes every connection; later reads fail.
    pub(crate) async fn close(&self) {
        match self {
            Readers::Pool(pool) => pool.close().await,
            Readers::Fixed(fixed) => {
                if let Ok(all) = fixed.permits.acquire_many(fixed.size).await {
                    all.forget();
                    fixed.permits.close();
                }
                let conns = std::mem::take(&mut *fixed.idle());
                for c in conns {
                    let _ = c.close().await;
                }
            }
        }
    }
}

impl Deref for ReadConn {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        match self {
            ReadConn::Pool(c) => c,
            ReadConn::Fixed { conn, .. } => conn.as_ref().expect("lent connection present"),
        }
    }
}

impl DerefMut for ReadConn {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match self {
            ReadConn::Pool(c) => c,
            ReadConn::Fixed { conn, .. } => conn.as_mut().expect("lent connection present"),
        }
    }
}

impl Drop for ReadConn {
    fn drop(&mut self) {
        if let ReadConn::Fixed { conn, home, .. } = self
            && let Some(c) = conn.take()
        {
            home.idle().push(c);
        }
    }
}
