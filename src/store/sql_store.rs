//! [`SqlStore`], the one store implementation, and the helpers every repository uses: error
//! mapping, column decoding, version checks. The repositories (one file per concept) hold the
//! SQL; the engine holds how each backend executes it.

use super::engine::batch::Batch;
use super::engine::lent::Lent;
use super::engine::write::WriteTx;
use super::engine::{Arg, Engine, bind_all};
use super::filter_sql::ResourceKind;
use super::{Dialect, Elem, SealBacklog, db_err};
use crate::core::error::{CoreError, CoreResult, StoreError};
use crate::core::model::*;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Row};

/// The one store implementation: the repositories' SQL over one [`Engine`] (how the
/// backend executes it).
#[derive(Clone)]
pub struct SqlStore {
    pub(super) engine: Engine,
    /// The engine's dialect, which the repositories spell their SQL in.
    pub(super) d: Dialect,
}

pub(super) fn e(err: sqlx::Error) -> CoreError {
    CoreError::Store(db_err(err))
}

pub(super) fn get<T>(row: &AnyRow, col: &str) -> CoreResult<T>
where
    T: for<'r> sqlx::Decode<'r, Any> + sqlx::Type<Any>,
{
    row.try_get(col).map_err(e)
}

/// Lower-cased (Unicode) form used for case-insensitive uniqueness and lookups.
pub fn fold(s: &str) -> String {
    s.to_lowercase()
}

pub(super) async fn count_rows(
    conn: &mut AnyConnection,
    sql: &str,
    args: &[Arg],
) -> CoreResult<u64> {
    let n: i64 = bind_all(sqlx::query(sql), args)
        .fetch_one(&mut *conn)
        .await
        .map_err(e)?
        .try_get("n")
        .map_err(e)?;
    Ok(n.max(0) as u64)
}

/// The caller's precondition (`If-Match`) against the stored version.
pub(super) fn check_version(expected: Option<Expect>, current: i64) -> CoreResult<()> {
    expected.map_or(Ok(()), |e| e.check(current))
}

/// `ids` as a JSON array parameter, each once.
pub(super) fn id_list<'a>(ids: impl Iterator<Item = &'a str>) -> String {
    let mut seen = std::collections::HashSet::new();
    Value::from(ids.filter(|id| seen.insert(*id)).collect::<Vec<_>>()).to_string()
}

pub(super) fn bad(what: &str) -> CoreError {
    CoreError::Store(StoreError::Other(format!("malformed {what} row")))
}

pub(super) fn bad_row(what: &str) -> CoreError {
    CoreError::Store(StoreError::Other(format!("malformed {what} row")))
}

pub(super) fn json_col<T: serde::de::DeserializeOwned>(
    row: &AnyRow,
    col: &str,
    what: &str,
) -> CoreResult<T> {
    let text: String = get(row, col)?;
    serde_json::from_str(&text).map_err(|_| bad_row(what))
}

pub(super) fn to_json<T: serde::Serialize>(v: &T) -> CoreResult<String> {
    serde_json::to_string(v).map_err(|e| CoreError::Internal(format!("cannot encode: {e}")))
}

impl SqlStore {
    /// The store over an opened engine; reads of one user by a unique key are coalesced
    /// where the engine does that (`Engine::coalesce_point_reads`).
    pub(super) fn over(engine: Engine) -> Self {
        let d = engine.d;
        let mut store = SqlStore { engine, d };
        let cols = store.json_cols(ResourceKind::User);
        let page = d.json_rows(
            &[
                d.json_elem("x.k_", Elem::Number),
                d.json_array(&store.json_elems(ResourceKind::User)),
            ],
            None,
        );
        // The keys are the outer loop: one index lookup per key (CROSS JOIN on SQLite, a
        // LATERAL subquery on PostgreSQL, whose planner would otherwise weigh a hash join).
        store.engine.coalesce_point_reads(|key_col: &str| match d {
            Dialect::Sqlite => format!(
                "SELECT {page} AS page FROM (SELECT j.key AS k_, {cols} FROM json_each($1) j \
                 CROSS JOIN users t WHERE t.org_id = json_extract(j.value, '$[0]') \
                 AND {key_col} = json_extract(j.value, '$[1]')) x"
            ),
            Dialect::Postgres => {
                let col = key_col.trim_start_matches("t.");
                format!(
                    "SELECT {page} AS page FROM (SELECT j.k - 1 AS k_, {cols} \
                     FROM jsonb_array_elements(CAST($1 AS jsonb)) WITH ORDINALITY AS j(v, k) \
                     CROSS JOIN LATERAL (SELECT * FROM users u WHERE u.org_id = j.v->>0 \
                       AND u.{col} = j.v->>1 LIMIT 1) t) x"
                )
            }
        });
        store
    }

    pub(super) async fn group_turn(&self, id: &str) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        self.engine.group_turn(id).await
    }

    /// A receiver that changes after every local commit that appended events.
    pub fn event_signal(&self) -> tokio::sync::watch::Receiver<u64> {
        self.engine.event_signal()
    }

    /// Before a read that must see this node's writes in their order (see
    /// `Engine::sealed`).
    pub(super) async fn sealed(&self) {
        self.engine.sealed().await
    }

    /// One seal round now (see `Engine::seal_round`).
    pub async fn seal_round(&self) -> CoreResult<bool> {
        self.engine.seal_round().await
    }

    /// What waits to be sealed after commit (PostgreSQL; `None` on SQLite).
    pub async fn seal_backlog(&self) -> CoreResult<Option<SealBacklog>> {
        self.engine.seal_backlog().await
    }

    /// A connection for reads (see `lent`).
    pub(super) async fn read_conn(&self) -> CoreResult<Lent> {
        self.engine.read_conn().await
    }

    pub fn dialect(&self) -> Dialect {
        self.d
    }

    /// Whether the database has every migration this binary knows, and no failed one.
    pub async fn migrations_current(&self) -> CoreResult<bool> {
        let row = sqlx::query(
            "SELECT COALESCE(MAX(version), 0) AS v, \
             CAST(SUM(CASE WHEN success THEN 0 ELSE 1 END) AS BIGINT) AS failed FROM _sqlx_migrations",
        )
        .fetch_one(&mut *self.read_conn().await?)
        .await
        .map_err(e)?;
        let applied: i64 = get(&row, "v")?;
        let failed: Option<i64> = get(&row, "failed")?;
        Ok(applied >= super::engine::latest_migration(self.d) && failed.unwrap_or(0) == 0)
    }

    pub async fn close(&self) {
        self.engine.close().await
    }

    /// In PostgreSQL, reads inside a write transaction lock the row.
    pub(super) fn for_update(&self) -> &'static str {
        self.d.for_update()
    }

    pub(super) fn for_share(&self) -> &'static str {
        self.d.for_share()
    }

    /// A write that reads nothing first (see `Engine::write_unread`).
    pub(super) async fn write_unread(
        &self,
        b: Batch,
        map: impl FnOnce(sqlx::Error) -> CoreError,
    ) -> CoreResult<()> {
        self.engine.write_unread(b, map).await
    }

    /// One write: `b`'s statements and nothing else, committed.
    pub(super) async fn write_batch(&self, b: Batch) -> CoreResult<()> {
        self.write_unread(b, e).await
    }

    pub(super) async fn begin(&self) -> CoreResult<WriteTx> {
        self.engine.begin().await
    }

    /// A write whose statements all go in its final `WriteTx::finish` batch (reads before
    /// it are fine): on SQLite its savepoint travels with that batch.
    pub(super) async fn begin_fresh(&self) -> CoreResult<WriteTx> {
        self.engine.begin_fresh().await
    }
}
