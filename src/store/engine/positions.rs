//! Dense per-organization positions, so that a page at `startIndex` K costs an index lookup
//! instead of skipping K rows, and `totalResults` of an unfiltered list is one row read.
//!
//! Each user or group takes the next position of its organization when created; a deleted
//! one's position is recorded in `deleted_positions`. The K-th live resource is at the least
//! position p with p − deleted(≤ p) = K, found by iterating p ← K + deleted(≤ p) from p = K
//! (monotone, so it stops at the least fix point, which is always a live position). Deletions
//! are rare next to reads (IdPs deactivate far more than they delete), so few iterations run.

use sqlx::{AnyConnection, Row};

use super::db_err;
use crate::core::error::{CoreError, CoreResult};

fn e(err: sqlx::Error) -> CoreError {
    CoreError::Store(db_err(err))
}

/// Past this many deletions in an organization, the caller falls back to OFFSET paging: each
/// seek step counts deleted positions, so its cost grows with them. (Renumbering positions
/// once deletions pile up would remove the bound; not needed yet.)
pub const MAX_DELETED_FOR_SEEK: i64 = 10_000;
const MAX_ITERATIONS: usize = 64;

/// In a batch: takes the next position (see [`taken`] for reading it back). SQLite, whose
/// single writer takes positions as it writes. On PostgreSQL a write leaves the position
/// to the seal after its commit (`seal`), so that creates in one organization never wait
/// on its counter row.
pub fn take_in(b: &mut super::batch::Batch, d: super::Dialect, org: &str, kind: &str) {
    if d == super::Dialect::Postgres {
        return;
    }
    b.push(
        "INSERT INTO org_counters (org_id, kind, live, next_pos) VALUES ($1, $2, 1, 1) \
         ON CONFLICT (org_id, kind) DO UPDATE SET live = org_counters.live + 1, \
         next_pos = org_counters.next_pos + 1",
        vec![
            super::Arg::Str(org.to_owned()),
            super::Arg::Str(kind.to_owned()),
        ],
    );
}

/// SQL for the position just taken by `take_in`, for a statement whose placeholders `$org`
/// and `$kind` hold the organization and the kind (NULL on PostgreSQL: sealed later).
pub fn taken(d: super::Dialect, org: usize, kind: usize) -> String {
    match d {
        // NULL, with the placeholders still referenced (every bound one must be).
        super::Dialect::Postgres => {
            format!("CAST(NULLIF(${org}, ${org}) AS BIGINT) + LENGTH(${kind}) * 0")
        }
        super::Dialect::Sqlite => {
            format!("(SELECT next_pos FROM org_counters WHERE org_id = ${org} AND kind = ${kind})")
        }
    }
}

/// How many live and how many deleted resources of `kind` the organization has.
pub async fn counts(c: &mut AnyConnection, org: &str, kind: &str) -> CoreResult<(i64, i64)> {
    let row = sqlx::query("SELECT live, deleted FROM org_counters WHERE org_id = $1 AND kind = $2")
        .bind(org)
        .bind(kind)
        .fetch_optional(&mut *c)
        .await
        .map_err(e)?;
    match row {
        Some(r) => Ok((r.try_get(0).map_err(e)?, r.try_get(1).map_err(e)?)),
        None => Ok((0, 0)),
    }
}

async fn deleted_up_to(c: &mut AnyConnection, org: &str, kind: &str, pos: i64) -> CoreResult<i64> {
    let row = sqlx::query(
        "SELECT COUNT(*) FROM deleted_positions WHERE org_id = $1 AND kind = $2 AND pos <= $3",
    )
    .bind(org)
    .bind(kind)
    .bind(pos)
    .fetch_one(&mut *c)
    .await
    .map_err(e)?;
    row.try_get(0).map_err(e)
}

/// The position of the `k`-th (1-based) live resource, given how many were ever deleted,
/// or `None` when seeking is not worth it (too many deletions) and the caller should use
/// OFFSET.
pub async fn nth(
    c: &mut AnyConnection,
    org: &str,
    kind: &str,
    k: i64,
    deleted: i64,
) -> CoreResult<Option<i64>> {
    if deleted <= 0 {
        return Ok(Some(k));
    }
    if deleted > MAX_DELETED_FOR_SEEK {
        return Ok(None);
    }
    let mut p = k;
    for _ in 0..MAX_ITERATIONS {
        let next = k + deleted_up_to(c, org, kind, p).await?;
        if next == p {
            return Ok(Some(p));
        }
        p = next;
    }
    Ok(None)
}
