//! `LifecycleStore` on SQLite and PostgreSQL: the event feed, webhook endpoints and their
//! leases and deliveries, the audit log, role mappings, admin keys and the drift report.

use serde_json::{Value, json};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::engine::Arg;
use super::engine::batch::Batch;
use super::engine::bind_all;
use super::roles;
use super::sql_store::{SqlStore, e, fold, get};
use crate::core::audit::{Anchor, AuditDraft, StoredEntry};
use crate::core::error::{CoreError, CoreResult, StoreError};
use crate::core::events::{EventDraft, EventKind};
use crate::core::model::*;
use crate::core::report::{
    ClientTraffic, DirectoryHealth, DriftReport, LIST_LIMIT, Section, UserLine,
};
use crate::core::store::*;
use crate::core::webhooks::{self, Endpoint, EventRecord};

pub(super) const EVENT_COLS: &str = "id, org_id, kind, resource_type, resource_id, actor, actor_kind, actor_id, \
                          request_id, received_at, data, created_at";

const ENDPOINT_COLS: &str = "id, org_id, url, url_enc, event_types, secret_enc, created_at, disabled_at, cursor, \
     next_attempt_at, allow_private";

fn bad(what: &str) -> CoreError {
    CoreError::Store(StoreError::Other(format!("malformed {what} row")))
}

pub(super) fn event_from_row(r: &AnyRow) -> CoreResult<EventRecord> {
    let actor = match get::<Option<String>>(r, "actor")? {
        Some(a) => serde_json::from_str(&a).map_err(|_| bad("event"))?,
        // Events written before actors were recorded in full.
        None => {
            json!({"type": get::<String>(r, "actor_kind")?, "id": get::<String>(r, "actor_id")?})
        }
    };
    Ok(EventRecord {
        cursor: get(r, "id")?,
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

pub(super) fn entry_from_row(r: &AnyRow) -> CoreResult<StoredEntry> {
    Ok(StoredEntry {
        chain: get(r, "chain")?,
        seq: get(r, "seq")?,
        at: get(r, "at")?,
        body: get(r, "body")?,
        prev_hash: get(r, "prev_hash")?,
        hash: get(r, "hash")?,
    })
}

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

fn mapping_from_row(r: &AnyRow) -> CoreResult<RoleMapping> {
    Ok(RoleMapping {
        id: get(r, "id")?,
        org_id: OrgId::from_store(get(r, "org_id")?),
        match_on: get(r, "match_on")?,
        group_value: get(r, "group_value")?,
        role: get(r, "role")?,
        created_at: get(r, "created_at")?,
    })
}

fn user_line(r: &AnyRow) -> CoreResult<UserLine> {
    Ok(UserLine {
        id: get(r, "id")?,
        user_name: get(r, "user_name")?,
        provenance: get(r, "provenance")?,
        active: get::<i64>(r, "active")? != 0,
        created_at: get(r, "created_at")?,
        last_login_at: get(r, "last_login_at")?,
        last_directory_sync_at: get(r, "last_directory_sync_at")?,
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

impl SqlStore {
    async fn section(&self, cond: &str, args: &[Arg]) -> CoreResult<Section> {
        let count: i64 = bind_all(
            sqlx::query(&format!("SELECT COUNT(*) AS n FROM users u WHERE {cond}")),
            args,
        )
        .fetch_one(&mut *self.read_conn().await?)
        .await
        .map_err(e)?
        .try_get("n")
        .map_err(e)?;
        let rows = bind_all(
            sqlx::query(&format!(
                "SELECT u.id, u.user_name, u.provenance, u.active, u.created_at, u.last_login_at, \
                 u.last_directory_sync_at FROM users u WHERE {cond} ORDER BY u.pos LIMIT {LIST_LIMIT}"
            )),
            args,
        )
        .fetch_all(&mut *self.read_conn().await?)
        .await
        .map_err(e)?;
        Ok(Section {
            count,
            users: rows.iter().map(user_line).collect::<CoreResult<_>>()?,
        })
    }

    /// Re-derives the grants of every group and login a mapping value can touch.
    async fn refresh_for_mapping(
        &self,
        b: &mut Batch,
        org: &OrgId,
        actor: &Actor,
        match_on: &str,
        value: &str,
    ) -> CoreResult<()> {
        let (cond, v) = if match_on == "displayName" {
            ("display_name_norm = $2", fold(value))
        } else {
            ("external_id = $2", value.to_owned())
        };
        let groups = sqlx::query(&format!(
            "SELECT id FROM org_groups WHERE org_id = $1 AND {cond}"
        ))
        .bind(org.as_str())
        .bind(v.as_str())
        .fetch_all(&mut *self.read_conn().await?)
        .await
        .map_err(e)?;
        for g in &groups {
            let id: String = get(g, "id")?;
            roles::refresh_group_roles(b, self.d, org, actor, &id);
        }
        let users = sqlx::query("SELECT DISTINCT user_id FROM user_identities WHERE org_id = $1")
            .bind(org.as_str())
            .fetch_all(&mut *self.read_conn().await?)
            .await
            .map_err(e)?;
        for u in &users {
            let id: String = get(u, "user_id")?;
            roles::refresh_idp_roles(b, self.d, org, actor, &id);
        }
        Ok(())
    }
}

impl LifecycleStore for SqlStore {
    async fn events_after(
        &self,
        after: i64,
        org: Option<&OrgId>,
        limit: i64,
    ) -> CoreResult<Vec<EventRecord>> {
        let rows = match org {
            Some(o) => sqlx::query(&format!(
                "SELECT {EVENT_COLS} FROM events WHERE org_id = $1 AND id > $2 ORDER BY id LIMIT $3"
            ))
            .bind(o.as_str())
            .bind(after)
            .bind(limit)
            .fetch_all(&mut *self.read_conn().await?)
            .await,
            None => {
                sqlx::query(&format!(
                    "SELECT {EVENT_COLS} FROM events WHERE id > $1 ORDER BY id LIMIT $2"
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
        let r = sqlx::query("SELECT COALESCE(MAX(id), 0) AS n FROM events")
            .fetch_one(&mut *self.read_conn().await?)
            .await
            .map_err(e)?;
        get(&r, "n")
    }

    async fn insert_webhook(&self, ep: &Endpoint, actor: &Actor) -> CoreResult<()> {
        // URLs carry credentials: only the redacted form is stored in the clear.
        let url_enc = ep.url_enc.clone().ok_or_else(|| {
            CoreError::Internal("a webhook endpoint is stored with its URL encrypted".into())
        })?;
        let mut b = Batch::default();
        b.push(
            "INSERT INTO webhook_endpoints (id, org_id, url, url_enc, event_types, secret_enc, created_at, cursor, next_attempt_at, allow_private) \
             VALUES ($1, $2, $3, $8, $4, $5, $6, (SELECT COALESCE(MAX(id), 0) FROM events), $6, $7)",
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

    async fn webhooks_due(&self, now: &str) -> CoreResult<bool> {
        let row = sqlx::query(
            "SELECT 1 AS due FROM webhook_endpoints w WHERE w.disabled_at IS NULL AND w.next_attempt_at <= $1 \
             AND (w.lease_until IS NULL OR w.lease_until < $1) \
             AND EXISTS (SELECT 1 FROM events ev WHERE ev.id > w.cursor AND (w.org_id IS NULL OR ev.org_id = w.org_id)) \
             LIMIT 1",
        )
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
        let lock = self.d.for_update_skip_locked();
        let sql = format!(
            "UPDATE webhook_endpoints SET lease_owner = $1, lease_until = $2 WHERE id IN ( \
               SELECT w.id FROM webhook_endpoints w WHERE w.disabled_at IS NULL AND w.next_attempt_at <= $3 \
               AND (w.lease_until IS NULL OR w.lease_until < $3) \
               AND EXISTS (SELECT 1 FROM events ev WHERE ev.id > w.cursor AND (w.org_id IS NULL OR ev.org_id = w.org_id)) \
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

    async fn audit_chains(&self) -> CoreResult<Vec<(String, Option<Anchor>)>> {
        let rows = sqlx::query(
            "SELECT c.chain, a.seq, a.hash FROM (SELECT DISTINCT chain FROM audit_log \
             UNION SELECT chain FROM audit_anchors) c LEFT JOIN audit_anchors a ON a.chain = c.chain \
             ORDER BY c.chain",
        )
        .fetch_all(&mut *self.read_conn().await?)
        .await
        .map_err(e)?;
        rows.iter()
            .map(|r| {
                let seq: Option<i64> = get(r, "seq")?;
                let hash: Option<String> = get(r, "hash")?;
                Ok((
                    get(r, "chain")?,
                    seq.zip(hash).map(|(seq, hash)| Anchor { seq, hash }),
                ))
            })
            .collect()
    }

    async fn audit_entries(
        &self,
        chain: &str,
        since: Option<&str>,
    ) -> CoreResult<Vec<StoredEntry>> {
        let rows = sqlx::query(
            "SELECT chain, seq, at, body, prev_hash, hash FROM audit_log \
             WHERE chain = $1 AND at >= $2 ORDER BY seq",
        )
        .bind(chain)
        .bind(since.unwrap_or(""))
        .fetch_all(&mut *self.read_conn().await?)
        .await
        .map_err(e)?;
        rows.iter().map(entry_from_row).collect()
    }

    async fn prune_audit(&self, chain: &str, before: &str) -> CoreResult<u64> {
        let mut tx = self.begin().await?;
        let last = sqlx::query(
            "SELECT seq, hash FROM audit_log WHERE chain = $1 AND at < $2 ORDER BY seq DESC LIMIT 1",
        )
        .bind(chain)
        .bind(before)
        .fetch_optional(&mut *tx)
        .await
        .map_err(e)?;
        let Some(last) = last else {
            return Ok(0);
        };
        let seq: i64 = get(&last, "seq")?;
        let hash: String = get(&last, "hash")?;
        let mut b = Batch::default();
        b.push(
            "INSERT INTO audit_anchors (chain, seq, hash, pruned_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (chain) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, pruned_at = excluded.pruned_at",
            vec![
                Arg::Str(chain.to_owned()),
                Arg::I64(seq),
                Arg::Str(hash),
                Arg::Str(crate::core::now()),
            ],
        );
        b.push(
            "DELETE FROM audit_log WHERE chain = $1 AND seq <= $2",
            vec![Arg::Str(chain.to_owned()), Arg::I64(seq)],
        );
        let org = (!chain.is_empty()).then(|| OrgId::from_store(chain.to_owned()));
        b.audit(
            org.as_ref(),
            &Actor::System,
            AuditDraft::new(
                "audit.pruned",
                "AuditLog",
                chain,
                json!({"through_seq": seq, "before": before}),
            ),
        );
        tx.finish(self.d, b).await.map_err(e)?;
        tx.commit().await?;
        Ok(u64::try_from(seq).unwrap_or(0))
    }

    async fn insert_role_mapping(&self, m: &RoleMapping, actor: &Actor) -> CoreResult<()> {
        let mut b = Batch::default();
        b.push(
            "INSERT INTO role_mappings (id, org_id, match_on, group_value, group_value_norm, role, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            vec![
                Arg::Str(m.id.clone()),
                Arg::Str(m.org_id.as_str().to_owned()),
                Arg::Str(m.match_on.clone()),
                Arg::Str(m.group_value.clone()),
                Arg::Str(fold(&m.group_value)),
                Arg::Str(m.role.clone()),
                Arg::Str(m.created_at.clone()),
            ],
        );
        b.event(
            Some(&m.org_id),
            actor,
            &EventDraft::new(
                EventKind::RoleMappingCreated,
                &m.id,
                json!({"match_on": m.match_on, "group": m.group_value, "role": m.role}),
            ),
        );
        self.refresh_for_mapping(&mut b, &m.org_id, actor, &m.match_on, &m.group_value)
            .await?;
        let mut tx = self.begin_fresh().await?;
        tx.finish(self.d, b)
            .await
            .map_err(|err| match super::db_err(err) {
                StoreError::Unique(_) => CoreError::Uniqueness(format!(
                    "group {} \"{}\" already maps to role \"{}\"",
                    m.match_on, m.group_value, m.role
                )),
                other => CoreError::Store(other),
            })?;
        tx.commit().await
    }

    async fn delete_role_mapping(&self, org: &OrgId, id: &str, actor: &Actor) -> CoreResult<bool> {
        let Some(m) = self
            .role_mappings(org)
            .await?
            .into_iter()
            .find(|m| m.id == id)
        else {
            return Ok(false);
        };
        let mut b = Batch::default();
        b.push(
            "DELETE FROM role_mappings WHERE org_id = $1 AND id = $2",
            vec![Arg::Str(org.as_str().to_owned()), Arg::Str(id.to_owned())],
        );
        b.event(
            Some(org),
            actor,
            &EventDraft::new(
                EventKind::RoleMappingDeleted,
                id,
                json!({"match_on": m.match_on, "group": m.group_value, "role": m.role}),
            ),
        );
        self.refresh_for_mapping(&mut b, org, actor, &m.match_on, &m.group_value)
            .await?;
        self.write_batch(b).await?;
        Ok(true)
    }

    async fn role_mappings(&self, org: &OrgId) -> CoreResult<Vec<RoleMapping>> {
        let rows = sqlx::query(
            "SELECT id, org_id, match_on, group_value, role, created_at FROM role_mappings \
             WHERE org_id = $1 ORDER BY created_at, id",
        )
        .bind(org.as_str())
        .fetch_all(&mut *self.read_conn().await?)
        .await
        .map_err(e)?;
        rows.iter().map(mapping_from_row).collect()
    }

    async fn user_roles(&self, scope: &Scope, user_id: &str) -> CoreResult<Vec<String>> {
        let rows = sqlx::query(
            "SELECT DISTINCT role FROM role_grants WHERE org_id = $1 AND user_id = $2 ORDER BY role",
        )
        .bind(scope.org.as_str())
        .bind(user_id)
        .fetch_all(&mut *self.read_conn().await?)
        .await
        .map_err(e)?;
        rows.iter().map(|r| get(r, "role")).collect()
    }

    async fn insert_admin_key(
        &self,
        info: &AdminKeyInfo,
        key_hash: &str,
        actor: &Actor,
    ) -> CoreResult<()> {
        let mut b = Batch::default();
        b.push(
            "INSERT INTO admin_keys (id, org_id, name, key_hash, read_only, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            vec![
                Arg::Str(info.id.clone()),
                Arg::opt(info.org_id.clone()),
                Arg::Str(info.name.clone()),
                Arg::Str(key_hash.to_owned()),
                Arg::I64(i64::from(info.read_only)),
                Arg::Str(info.created_at.clone()),
            ],
        );
        let org = info.org_id.clone().map(OrgId::from_store);
        b.event(
            org.as_ref(),
            actor,
            &EventDraft::new(
                EventKind::AdminKeyCreated,
                &info.id,
                json!({"name": info.name, "read_only": info.read_only}),
            ),
        );
        self.write_batch(b).await
    }

    async fn admin_key_grant(&self, key_hash: &str) -> CoreResult<Option<AdminKeyGrant>> {
        let row = sqlx::query(
            "SELECT id, org_id, read_only FROM admin_keys WHERE key_hash = $1 AND revoked_at IS NULL",
        )
        .bind(key_hash)
        .fetch_optional(&mut *self.read_conn().await?)
        .await
        .map_err(e)?;
        row.map(|r| {
            Ok(AdminKeyGrant {
                key_id: get(&r, "id")?,
                org: get::<Option<String>>(&r, "org_id")?.map(OrgId::from_store),
                read_only: get::<i64>(&r, "read_only")? != 0,
            })
        })
        .transpose()
    }

    async fn list_admin_keys(&self) -> CoreResult<Vec<AdminKeyInfo>> {
        let rows = sqlx::query(
            "SELECT id, org_id, name, read_only, created_at, revoked_at FROM admin_keys ORDER BY created_at",
        )
        .fetch_all(&mut *self.read_conn().await?)
        .await
        .map_err(e)?;
        rows.iter()
            .map(|r| {
                Ok(AdminKeyInfo {
                    id: get(r, "id")?,
                    org_id: get(r, "org_id")?,
                    name: get(r, "name")?,
                    read_only: get::<i64>(r, "read_only")? != 0,
                    created_at: get(r, "created_at")?,
                    revoked_at: get(r, "revoked_at")?,
                })
            })
            .collect()
    }

    async fn revoke_admin_key(&self, id: &str, actor: &Actor) -> CoreResult<bool> {
        let Some(k) = self
            .list_admin_keys()
            .await?
            .into_iter()
            .find(|k| k.id == id && k.revoked_at.is_none())
        else {
            return Ok(false);
        };
        let mut b = Batch::default();
        b.push(
            "UPDATE admin_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
            vec![Arg::Str(crate::core::now()), Arg::Str(id.to_owned())],
        );
        let org = k.org_id.clone().map(OrgId::from_store);
        b.event(
            org.as_ref(),
            actor,
            &EventDraft::new(EventKind::AdminKeyRevoked, id, json!({"name": k.name})),
        );
        self.write_batch(b).await?;
        Ok(true)
    }

    async fn add_traffic(&self, counts: &[TrafficCount]) -> CoreResult<()> {
        if counts.is_empty() {
            return Ok(());
        }
        let mut b = Batch::default();
        for c in counts {
            b.push(
                "INSERT INTO directory_traffic (directory_id, minute, user_agent, requests, errors, last_request_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (directory_id, minute, user_agent) DO UPDATE SET \
                 requests = directory_traffic.requests + excluded.requests, \
                 errors = directory_traffic.errors + excluded.errors, \
                 last_request_at = CASE WHEN excluded.last_request_at > directory_traffic.last_request_at \
                   THEN excluded.last_request_at ELSE directory_traffic.last_request_at END",
                vec![
                    Arg::Str(c.directory_id.clone()),
                    Arg::Str(c.minute.clone()),
                    Arg::Str(c.user_agent.clone()),
                    Arg::I64(c.requests),
                    Arg::I64(c.errors),
                    Arg::Str(c.last_request_at.clone()),
                ],
            );
        }
        self.write_batch(b).await
    }

    async fn drift_report(&self, org: &Org, stale_days: i64, now: &str) -> CoreResult<DriftReport> {
        let o = Arg::Str(org.id.as_str().to_owned());
        let dirs = self.list_directories(Some(&org.id)).await?;
        let has_directory = !dirs.is_empty();
        let jit_never_synced = if has_directory {
            self.section(
                "u.org_id = $1 AND u.provenance = 'jit' AND u.last_directory_sync_at IS NULL",
                std::slice::from_ref(&o),
            )
            .await?
        } else {
            Section {
                count: 0,
                users: Vec::new(),
            }
        };
        let cutoff = crate::core::now_plus_secs(-stale_days.saturating_mul(86_400));
        let stale_directory_users = self
            .section(
                "u.org_id = $1 AND u.last_directory_sync_at IS NOT NULL AND u.last_directory_sync_at < $2",
                &[o.clone(), Arg::Str(cutoff)],
            )
            .await?;
        let deactivated_with_live_access = self
            .section(
                "u.org_id = $1 AND u.active = 0 AND (\
                 EXISTS (SELECT 1 FROM sessions s WHERE s.user_id = u.id AND s.revoked_at IS NULL AND s.expires_at > $2) \
                 OR EXISTS (SELECT 1 FROM oauth_tokens t WHERE t.user_id = u.id AND t.revoked_at IS NULL \
                   AND t.consumed_at IS NULL AND t.expires_at > $2))",
                &[o.clone(), Arg::Str(now.to_owned())],
            )
            .await?;
        let mut directories = Vec::new();
        for d in dirs {
            let rows = sqlx::query(
                "SELECT user_agent, CAST(SUM(requests) AS BIGINT) AS requests, CAST(SUM(errors) AS BIGINT) AS errors, \
                 MAX(last_request_at) AS last \
                 FROM directory_traffic WHERE directory_id = $1 GROUP BY user_agent ORDER BY user_agent",
            )
            .bind(d.id.as_str())
            .fetch_all(&mut *self.read_conn().await?)
            .await
            .map_err(e)?;
            let mut by_client = Vec::new();
            let (mut requests, mut errors, mut last) = (0i64, 0i64, None::<String>);
            for r in &rows {
                let c = ClientTraffic {
                    user_agent: get(r, "user_agent")?,
                    requests: get(r, "requests")?,
                    errors: get(r, "errors")?,
                };
                requests += c.requests;
                errors += c.errors;
                let l: Option<String> = get(r, "last")?;
                if l > last {
                    last = l;
                }
                by_client.push(c);
            }
            directories.push(DirectoryHealth {
                directory_id: d.id,
                name: d.name,
                last_request_at: last,
                requests,
                errors,
                error_rate: if requests > 0 {
                    errors as f64 / requests as f64
                } else {
                    0.0
                },
                by_client,
            });
        }
        Ok(DriftReport {
            org: org.slug.clone(),
            generated_at: now.to_owned(),
            stale_days,
            has_directory,
            jit_never_synced,
            stale_directory_users,
            deactivated_with_live_access,
            directories,
        })
    }
}
