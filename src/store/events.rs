//! [`EventStore`]: the event feed and its retention.

use super::engine::Arg;
use super::engine::batch::Batch;
use super::sql_store::{SqlStore, bad, e, get};
use crate::core::error::CoreResult;
use crate::core::model::*;
use crate::core::store::*;
use crate::core::webhooks::EventRecord;
use serde_json::json;
use sqlx::any::AnyRow;

/// An event row's columns, its cursor as `cursor_` (`Dialect::event_pos`).
fn event_cols(pos: &str) -> String {
    format!(
        "{pos} AS cursor_, org_id, kind, resource_type, resource_id, actor, actor_kind, actor_id, \
         request_id, received_at, data, created_at"
    )
}

fn event_from_row(r: &AnyRow) -> CoreResult<EventRecord> {
    let actor = match get::<Option<String>>(r, "actor")? {
        Some(a) => serde_json::from_str(&a).map_err(|_| bad("event"))?,
        // Events written before actors were recorded in full.
        None => {
            json!({"type": get::<String>(r, "actor_kind")?, "id": get::<String>(r, "actor_id")?})
        }
    };
    Ok(EventRecord {
        cursor: get(r, "cursor_")?,
        org_id: get(r, "org_id")?,
        kind: get(r, "kind")?,
        resource_type: get(r, "resource_type")?,
        resource_id: get(r, "resource_id")?,
        actor,
        request_id: get(r, "request_id")?,
        received_at: get(r, "received_at")?,
        data: serde_json::from_str(&get::<String>(r, "data")?).map_err(|_| bad("event"))?,
        created_at: get(r, "created_at")?,
    })
}

impl EventStore for SqlStore {
    async fn events_after(
        &self,
        after: i64,
        org: Option<&OrgId>,
        limit: i64,
    ) -> CoreResult<Vec<EventRecord>> {
        self.sealed().await;
        let p = self.d.event_pos();
        let cols = event_cols(p);
        let rows =
            match org {
                Some(o) => sqlx::query(&format!(
                    "SELECT {cols} FROM events WHERE org_id = $1 AND {p} > $2 ORDER BY {p} LIMIT $3"
                ))
                .bind(o.as_str())
                .bind(after)
                .bind(limit)
                .fetch_all(&mut *self.read_conn().await?)
                .await,
                None => {
                    sqlx::query(&format!(
                        "SELECT {cols} FROM events WHERE {p} > $1 ORDER BY {p} LIMIT $2"
                    ))
                    .bind(after)
                    .bind(limit)
                    .fetch_all(&mut *self.read_conn().await?)
                    .await
                }
            }
            .map_err(e)?;
        rows.iter().map(event_from_row).collect()
    }

    async fn last_event_cursor(&self) -> CoreResult<i64> {
        self.sealed().await;
        let r = sqlx::query(&format!(
            "SELECT COALESCE(MAX({}), 0) AS n FROM events",
            self.d.event_pos()
        ))
        .fetch_one(&mut *self.read_conn().await?)
        .await
        .map_err(e)?;
        get(&r, "n")
    }

    async fn resource_events(
        &self,
        org: &OrgId,
        resource_id: &str,
        before: Option<i64>,
        limit: i64,
    ) -> CoreResult<Vec<EventRecord>> {
        self.sealed().await;
        let p = self.d.event_pos();
        let rows = sqlx::query(&format!(
            "SELECT {} FROM events WHERE resource_id = $1 AND org_id = $2 AND {p} < $3 \
             ORDER BY {p} DESC LIMIT $4",
            event_cols(p)
        ))
        .bind(resource_id)
        .bind(org.as_str())
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&mut *self.read_conn().await?)
        .await
        .map_err(e)?;
        rows.iter().map(event_from_row).collect()
    }

    async fn prune_events(&self, before: &str, batch: i64) -> CoreResult<u64> {
        let p = self.d.event_pos();
        let mut tx = self.begin().await?;
        // Never past an enabled endpoint's cursor: what it has not settled stays. (Events
        // not sealed yet have no cursor, and stay.)
        let r = sqlx::query(&format!(
            "SELECT COUNT(*) AS n, MAX(x.{p}) AS last FROM (SELECT {p} FROM events \
               WHERE created_at < $1 AND {p} <= (SELECT COALESCE(MIN(cursor), 9223372036854775807) \
                 FROM webhook_endpoints WHERE disabled_at IS NULL) \
               ORDER BY {p} LIMIT $2) x"
        ))
        .bind(before)
        .bind(batch)
        .fetch_one(&mut *tx)
        .await
        .map_err(e)?;
        let n: i64 = get(&r, "n")?;
        let Some(last) = get::<Option<i64>>(&r, "last")? else {
            return Ok(0);
        };
        let mut b = Batch::default();
        b.push(
            format!("DELETE FROM events WHERE {p} <= $1 AND created_at < $2"),
            vec![Arg::I64(last), Arg::Str(before.to_owned())],
        );
        // The deliveries of the events just deleted, with their attempts: the delivery log
        // keeps what the feed keeps.
        let gone = format!(
            "SELECT d.id FROM webhook_deliveries d WHERE d.event_id <= $1 \
             AND NOT EXISTS (SELECT 1 FROM events e WHERE e.{p} = d.event_id)"
        );
        b.push(
            format!("DELETE FROM webhook_attempts WHERE delivery_id IN ({gone})"),
            vec![Arg::I64(last)],
        );
        b.push(
            format!("DELETE FROM webhook_deliveries WHERE id IN ({gone})"),
            vec![Arg::I64(last)],
        );
        tx.finish(self.d, b).await.map_err(e)?;
        tx.commit().await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
