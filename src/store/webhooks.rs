//! [`WebhookStore`] and [`DeliveryStore`]: webhook endpoints, their leases, attempts and
//! deliveries.

use super::engine::batch::Batch;
use super::engine::{Arg, bind_all};
use super::sql_store::{SqlStore, bad, e, get};
use crate::core::audit::AuditDraft;
use crate::core::error::{CoreError, CoreResult};
use crate::core::events::{EventDraft, EventKind};
use crate::core::model::*;
use crate::core::store::*;
use crate::core::webhooks;
use crate::core::webhooks::Endpoint;
use serde_json::{Value, json};
use sqlx::any::AnyRow;

const ENDPOINT_COLS: &str = "id, org_id, url, url_enc, event_types, secret_enc, created_at, disabled_at, cursor, \
     next_attempt_at, allow_private";

fn endpoint_from_row(r: &AnyRow) -> CoreResult<Endpoint> {
    Ok(Endpoint {
        id: get(r, "id")?,
        org_id: get::<Option<String>>(r, "org_id")?.map(OrgId::from_store),
        url: get(r, "url")?,
        url_enc: get(r, "url_enc")?,
        event_types: serde_json::from_str(&get::<String>(r, "event_types")?)
            .map_err(|_| bad("webhook"))?,
        secret_enc: get(r, "secret_enc")?,
        created_at: get(r, "created_at")?,
        disabled_at: get(r, "disabled_at")?,
        cursor: get(r, "cursor")?,
        next_attempt_at: get(r, "next_attempt_at")?,
        allow_private: get::<i64>(r, "allow_private")? != 0,
    })
}

/// In a batch: one delivery attempt, its delivery's state and its attempt row.
fn attempt_in(b: &mut Batch, endpoint_id: &str, node: &str, a: &Attempt) {
    let delivery = format!("{endpoint_id}:{}", a.event_id);
    b.push(
        "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, org_id, status, attempts, first_attempt_at, \
         last_attempt_at, next_attempt_at, response_status, last_error) \
         VALUES ($1, $2, $3, $4, $5, 1, $6, $6, $7, $8, $9) \
         ON CONFLICT (endpoint_id, event_id) DO UPDATE SET status = excluded.status, \
         attempts = webhook_deliveries.attempts + 1, last_attempt_at = excluded.last_attempt_at, \
         next_attempt_at = excluded.next_attempt_at, response_status = excluded.response_status, \
         last_error = excluded.last_error",
        vec![
            Arg::Str(delivery.clone()),
            Arg::Str(endpoint_id.to_owned()),
            Arg::I64(a.event_id),
            Arg::opt(a.org_id.clone()),
            Arg::Str(a.status.to_owned()),
            Arg::Str(a.at.clone()),
            Arg::opt(a.next_attempt_at.clone()),
            Arg::opt_i64(a.response_status),
            Arg::opt(a.error.clone()),
        ],
    );
    b.push(
        "INSERT INTO webhook_attempts (delivery_id, attempt, at, response_status, error, duration_ms, node) \
         SELECT $1, attempts, $2, $3, $4, $5, $6 FROM webhook_deliveries WHERE id = $1",
        vec![
            Arg::Str(delivery),
            Arg::Str(a.at.clone()),
            Arg::opt_i64(a.response_status),
            Arg::opt(a.error.clone()),
            Arg::I64(a.duration_ms),
            Arg::Str(node.to_owned()),
        ],
    );
}

impl WebhookStore for SqlStore {
    async fn insert_webhook(&self, ep: &Endpoint, actor: &Actor) -> CoreResult<()> {
        // URLs carry credentials: only the redacted form is stored in the clear.
        let url_enc = ep.url_enc.clone().ok_or_else(|| {
            CoreError::Internal("a webhook endpoint is stored with its URL encrypted".into())
        })?;
        self.sealed().await;
        let mut b = Batch::default();
        b.push(
            format!("INSERT INTO webhook_endpoints (id, org_id, url, url_enc, event_types, secret_enc, created_at, cursor, next_attempt_at, allow_private) \
             VALUES ($1, $2, $3, $8, $4, $5, $6, (SELECT COALESCE(MAX({}), 0) FROM events), $6, $7)", self.d.event_pos()),
            vec![
                Arg::Str(ep.id.clone()),
                Arg::opt(ep.org_id.as_ref().map(|o| o.as_str().to_owned())),
                Arg::Str(webhooks::display_url(&ep.url)),
                Arg::Str(Value::from(ep.event_types.clone()).to_string()),
                Arg::Str(ep.secret_enc.clone()),
                Arg::Str(ep.created_at.clone()),
                Arg::I64(i64::from(ep.allow_private)),
                Arg::Str(url_enc),
            ],
        );
        b.event(
            ep.org_id.as_ref(),
            actor,
            &EventDraft::new(
                EventKind::WebhookCreated,
                &ep.id,
                json!({"url": webhooks::display_url(&ep.url), "event_types": ep.event_types}),
            ),
        );
        self.write_batch(b).await
    }

    async fn list_webhooks(&self, org: Option<&OrgId>) -> CoreResult<Vec<Endpoint>> {
        let rows = match org {
            Some(o) => sqlx::query(&format!(
                "SELECT {ENDPOINT_COLS} FROM webhook_endpoints WHERE org_id = $1 ORDER BY created_at"
            ))
            .bind(o.as_str())
            .fetch_all(&mut *self.read_conn().await?)
            .await,
            None => sqlx::query(&format!(
                "SELECT {ENDPOINT_COLS} FROM webhook_endpoints ORDER BY created_at"
            ))
            .fetch_all(&mut *self.read_conn().await?)
            .await,
        }
        .map_err(e)?;
        rows.iter().map(endpoint_from_row).collect()
    }

    async fn disable_webhook(&self, id: &str, actor: &Actor) -> CoreResult<bool> {
        let Some(ep) = self
            .list_webhooks(None)
            .await?
            .into_iter()
            .find(|w| w.id == id && w.disabled_at.is_none())
        else {
            return Ok(false);
        };
        let mut b = Batch::default();
        b.push(
            "UPDATE webhook_endpoints SET disabled_at = $1 WHERE id = $2 AND disabled_at IS NULL",
            vec![Arg::Str(crate::core::now()), Arg::Str(id.to_owned())],
        );
        b.event(
            ep.org_id.as_ref(),
            actor,
            &EventDraft::new(
                EventKind::WebhookDisabled,
                id,
                json!({"url": webhooks::display_url(&ep.url)}),
            ),
        );
        self.write_batch(b).await?;
        Ok(true)
    }

    async fn seal_webhook_url(&self, id: &str, shown: &str, url_enc: &str) -> CoreResult<()> {
        let mut b = Batch::default();
        b.push(
            "UPDATE webhook_endpoints SET url = $1, url_enc = $2 WHERE id = $3 AND url_enc IS NULL",
            vec![
                Arg::Str(shown.to_owned()),
                Arg::Str(url_enc.to_owned()),
                Arg::Str(id.to_owned()),
            ],
        );
        self.write_batch(b).await
    }

    async fn webhook_stats(&self) -> CoreResult<Vec<(String, i64, i64)>> {
        let rows = sqlx::query(
            "SELECT w.id, w.cursor, (SELECT COUNT(*) FROM webhook_deliveries d \
             WHERE d.endpoint_id = w.id AND d.status = 'failed') AS failed \
             FROM webhook_endpoints w WHERE w.disabled_at IS NULL ORDER BY w.created_at",
        )
        .fetch_all(&mut *self.read_conn().await?)
        .await
        .map_err(e)?;
        rows.iter()
            .map(|r| Ok((get(r, "id")?, get(r, "cursor")?, get(r, "failed")?)))
            .collect()
    }
}

impl DeliveryStore for SqlStore {
    async fn webhooks_due(&self, now: &str) -> CoreResult<bool> {
        // Sealed events only, without sealing first: the dispatcher asks after every commit
        // with events, and sealing here ran a seal round per commit on PostgreSQL beside the
        // seal loop's (which keeps its rounds 10 ms apart, 250 rounds a second under PATCH
        // load). The loop's rounds bump the event signal, so the dispatcher asks again once
        // the events have their cursors.
        let row = sqlx::query(&format!(
            "SELECT 1 AS due FROM webhook_endpoints w WHERE w.disabled_at IS NULL AND w.next_attempt_at <= $1 \
             AND (w.lease_until IS NULL OR w.lease_until < $1) \
             AND EXISTS (SELECT 1 FROM events ev WHERE ev.{p} > w.cursor AND (w.org_id IS NULL OR ev.org_id = w.org_id)) \
             LIMIT 1",
            p = self.d.event_pos()
        ))
        .bind(now)
        .fetch_optional(&mut *self.read_conn().await?)
        .await
        .map_err(e)?;
        Ok(row.is_some())
    }

    async fn lease_webhooks(
        &self,
        node: &str,
        now: &str,
        until: &str,
        limit: i64,
    ) -> CoreResult<Vec<Endpoint>> {
        self.sealed().await;
        let lock = self.d.for_update_skip_locked();
        let p = self.d.event_pos();
        let sql = format!(
            "UPDATE webhook_endpoints SET lease_owner = $1, lease_until = $2 WHERE id IN ( \
               SELECT w.id FROM webhook_endpoints w WHERE w.disabled_at IS NULL AND w.next_attempt_at <= $3 \
               AND (w.lease_until IS NULL OR w.lease_until < $3) \
               AND EXISTS (SELECT 1 FROM events ev WHERE ev.{p} > w.cursor AND (w.org_id IS NULL OR ev.org_id = w.org_id)) \
               ORDER BY w.next_attempt_at LIMIT $4{lock}) \
             RETURNING {ENDPOINT_COLS}"
        );
        let args = vec![
            Arg::Str(node.to_owned()),
            Arg::Str(until.to_owned()),
            Arg::Str(now.to_owned()),
            Arg::I64(limit),
        ];
        let mut tx = self.begin().await?;
        let rows = bind_all(sqlx::query(&sql), &args)
            .fetch_all(&mut *tx)
            .await
            .map_err(e)?;
        tx.commit().await?;
        rows.iter().map(endpoint_from_row).collect()
    }

    async fn settle_webhook(
        &self,
        endpoint_id: &str,
        node: &str,
        attempts: &[Attempt],
        cursor: i64,
        next_attempt_at: &str,
        until: &str,
    ) -> CoreResult<bool> {
        let mut tx = self.begin().await?;
        // Fencing: only the lease holder moves the endpoint.
        let r = sqlx::query(
            "UPDATE webhook_endpoints SET cursor = $1, next_attempt_at = $2, lease_until = $3 \
             WHERE id = $4 AND lease_owner = $5",
        )
        .bind(cursor)
        .bind(next_attempt_at)
        .bind(until)
        .bind(endpoint_id)
        .bind(node)
        .execute(&mut *tx)
        .await
        .map_err(e)?;
        if r.rows_affected() == 0 {
            return Ok(false);
        }
        let mut b = Batch::default();
        for a in attempts {
            attempt_in(&mut b, endpoint_id, node, a);
        }
        tx.finish(self.d, b).await.map_err(e)?;
        tx.commit().await?;
        Ok(true)
    }

    async fn release_webhook(&self, endpoint_id: &str, node: &str) -> CoreResult<()> {
        let mut b = Batch::default();
        b.push(
            "UPDATE webhook_endpoints SET lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2",
            vec![Arg::Str(endpoint_id.to_owned()), Arg::Str(node.to_owned())],
        );
        self.write_batch(b).await
    }

    async fn release_webhooks(&self, node: &str) -> CoreResult<()> {
        let mut b = Batch::default();
        b.push(
            "UPDATE webhook_endpoints SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1",
            vec![Arg::Str(node.to_owned())],
        );
        self.write_batch(b).await
    }

    async fn record_resend(
        &self,
        endpoint_id: &str,
        attempt: &Attempt,
        actor: &Actor,
    ) -> CoreResult<()> {
        let mut b = Batch::default();
        attempt_in(&mut b, endpoint_id, "resend", attempt);
        let org = attempt.org_id.clone().map(OrgId::from_store);
        b.audit(
            org.as_ref(),
            actor,
            AuditDraft::new(
                "webhook.resent",
                "Webhook",
                endpoint_id,
                json!({"event_cursor": attempt.event_id, "result": attempt.status,
                       "response_status": attempt.response_status}),
            ),
        );
        self.write_batch(b).await
    }

    async fn delivery_attempts(&self, endpoint_id: &str, event_id: i64) -> CoreResult<i64> {
        let r = sqlx::query(
            "SELECT attempts FROM webhook_deliveries WHERE endpoint_id = $1 AND event_id = $2",
        )
        .bind(endpoint_id)
        .bind(event_id)
        .fetch_optional(&mut *self.read_conn().await?)
        .await
        .map_err(e)?;
        r.map_or(Ok(0), |r| get(&r, "attempts"))
    }

    async fn deliveries_before(
        &self,
        endpoint_id: &str,
        status: Option<&str>,
        before: Option<i64>,
        limit: i64,
    ) -> CoreResult<Vec<Delivery>> {
        let rows = sqlx::query(
            "SELECT id, endpoint_id, event_id, status, attempts, first_attempt_at, last_attempt_at, \
             next_attempt_at, response_status, last_error FROM webhook_deliveries \
             WHERE endpoint_id = $1 AND ($2 = '' OR status = $2) AND event_id < $4 \
             ORDER BY event_id DESC LIMIT $3",
        )
        .bind(endpoint_id)
        .bind(status.unwrap_or(""))
        .bind(limit)
        .bind(before.unwrap_or(i64::MAX))
        .fetch_all(&mut *self.read_conn().await?)
        .await
        .map_err(e)?;
        rows.iter()
            .map(|r| {
                Ok(Delivery {
                    id: get(r, "id")?,
                    endpoint_id: get(r, "endpoint_id")?,
                    event_id: get(r, "event_id")?,
                    status: get(r, "status")?,
                    attempts: get(r, "attempts")?,
                    first_attempt_at: get(r, "first_attempt_at")?,
                    last_attempt_at: get(r, "last_attempt_at")?,
                    next_attempt_at: get(r, "next_attempt_at")?,
                    response_status: get(r, "response_status")?,
                    last_error: get(r, "last_error")?,
                })
            })
            .collect()
    }

    async fn delivery_attempt_log(
        &self,
        endpoint_id: &str,
        event_id: i64,
    ) -> CoreResult<Vec<AttemptRecord>> {
        let rows = sqlx::query(
            "SELECT a.attempt, a.at, a.response_status, a.error, a.duration_ms, a.node \
             FROM webhook_deliveries d JOIN webhook_attempts a ON a.delivery_id = d.id \
             WHERE d.endpoint_id = $1 AND d.event_id = $2 ORDER BY a.attempt",
        )
        .bind(endpoint_id)
        .bind(event_id)
        .fetch_all(&mut *self.read_conn().await?)
        .await
        .map_err(e)?;
        rows.iter()
            .map(|r| {
                Ok(AttemptRecord {
                    attempt: get(r, "attempt")?,
                    at: get(r, "at")?,
                    response_status: get(r, "response_status")?,
                    error: get(r, "error")?,
                    duration_ms: get(r, "duration_ms")?,
                    node: get(r, "node")?,
                })
            })
            .collect()
    }
}
