//! [`DirectoryStore`] and [`TrafficStore`]: SCIM directories, their bearer tokens, and what each
//! directory's IdP has sent (traffic counts, recent requests, drift and deprovisioning reports).

use super::engine::batch::Batch;
use super::engine::{Arg, bind_all};
use super::sql_store::{SqlStore, e, get};
use crate::core::error::CoreResult;
use crate::core::events::{EventDraft, EventKind};
use crate::core::model::*;
use crate::core::report::{
    ClientTraffic, DirectoryHealth, DriftReport, LIST_LIMIT, Section, UserLine,
};
use crate::core::store::*;
use crate::core::{new_id, now};
use sqlx::Row;
use sqlx::any::AnyRow;

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

fn recent_of(r: &AnyRow) -> CoreResult<RecentRequest> {
    Ok(RecentRequest {
        directory_id: get(r, "directory_id")?,
        at: get(r, "at")?,
        method: get(r, "method")?,
        path: get(r, "path")?,
        status: get(r, "status")?,
        latency_us: get(r, "latency_us")?,
        user_agent: get(r, "user_agent")?,
        request_id: get(r, "request_id")?,
    })
}

/// How far back (in events) the deprovisioning chart looks.
const DEPROVISION_WINDOW: i64 = 50_000;

impl SqlStore {
    fn dir_from_row(row: &AnyRow) -> CoreResult<Directory> {
        Ok(Directory {
            id: get(row, "id")?,
            org_id: OrgId::from_store(get(row, "org_id")?),
            org_slug: get(row, "slug")?,
            name: get(row, "name")?,
            created_at: get(row, "created_at")?,
        })
    }

    fn token_from_row(row: &AnyRow) -> CoreResult<TokenInfo> {
        Ok(TokenInfo {
            id: get(row, "id")?,
            directory_id: get(row, "directory_id")?,
            read_only: get::<i64>(row, "read_only")? != 0,
            created_at: get(row, "created_at")?,
            revoked_at: get(row, "revoked_at")?,
        })
    }

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
}

impl DirectoryStore for SqlStore {
    async fn create_directory(
        &self,
        org: &Org,
        name: &str,
        actor: &Actor,
    ) -> CoreResult<Directory> {
        let dir = Directory {
            id: new_id(),
            org_id: org.id.clone(),
            org_slug: org.slug.clone(),
            name: name.to_owned(),
            created_at: now(),
        };
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO directories (id, org_id, name, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(dir.id.as_str())
        .bind(org.id.as_str())
        .bind(name)
        .bind(dir.created_at.as_str())
        .execute(&mut *tx)
        .await
        .map_err(e)?;
        let ev = EventDraft::new(
            EventKind::DirectoryCreated,
            &dir.id,
            serde_json::json!({"name": name}),
        );
        let mut b = Batch::default();
        b.event(Some(&org.id), actor, &ev);
        tx.finish(self.d, b).await.map_err(e)?;
        tx.commit().await?;
        Ok(dir)
    }

    async fn list_directories(&self, org: Option<&OrgId>) -> CoreResult<Vec<Directory>> {
        let base = "SELECT d.id, d.org_id, o.slug, d.name, d.created_at FROM directories d \
                    JOIN orgs o ON o.id = d.org_id";
        let rows = match org {
            Some(o) => {
                sqlx::query(&format!("{base} WHERE d.org_id = $1 ORDER BY d.created_at"))
                    .bind(o.as_str())
                    .fetch_all(&mut *self.read_conn().await?)
                    .await
            }
            None => {
                sqlx::query(&format!("{base} ORDER BY o.slug, d.created_at"))
                    .fetch_all(&mut *self.read_conn().await?)
                    .await
            }
        }
        .map_err(e)?;
        rows.iter().map(Self::dir_from_row).collect()
    }

    async fn directory(&self, id: &str) -> CoreResult<Option<Directory>> {
        let row = sqlx::query(
            "SELECT d.id, d.org_id, o.slug, d.name, d.created_at FROM directories d \
             JOIN orgs o ON o.id = d.org_id WHERE d.id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *self.read_conn().await?)
        .await
        .map_err(e)?;
        row.as_ref().map(Self::dir_from_row).transpose()
    }

    async fn org_has_directory(&self, org: &OrgId) -> CoreResult<bool> {
        let row = sqlx::query("SELECT id FROM directories WHERE org_id = $1 LIMIT 1")
            .bind(org.as_str())
            .fetch_optional(&mut *self.read_conn().await?)
            .await
            .map_err(e)?;
        Ok(row.is_some())
    }

    async fn add_token(
        &self,
        directory: &Directory,
        token_hash: &str,
        read_only: bool,
        actor: &Actor,
    ) -> CoreResult<TokenInfo> {
        let info = TokenInfo {
            id: new_id(),
            directory_id: directory.id.clone(),
            read_only,
            created_at: now(),
            revoked_at: None,
        };
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO directory_tokens (id, directory_id, org_id, token_hash, read_only, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(info.id.as_str())
        .bind(directory.id.as_str())
        .bind(directory.org_id.as_str())
        .bind(token_hash)
        .bind(i64::from(read_only))
        .bind(info.created_at.as_str())
        .execute(&mut *tx)
        .await
        .map_err(e)?;
        let ev = EventDraft::new(
            EventKind::DirectoryTokenCreated,
            &directory.id,
            serde_json::json!({"token_id": info.id, "read_only": read_only}),
        );
        let mut b = Batch::default();
        b.event(Some(&directory.org_id), actor, &ev);
        tx.finish(self.d, b).await.map_err(e)?;
        tx.commit().await?;
        Ok(info)
    }

    async fn revoke_scim_token(
        &self,
        directory: &Directory,
        token_id: &str,
        actor: &Actor,
    ) -> CoreResult<bool> {
        let mut tx = self.begin().await?;
        let r = sqlx::query(
            "UPDATE directory_tokens SET revoked_at = $1 WHERE id = $2 AND directory_id = $3 AND revoked_at IS NULL",
        )
        .bind(now())
        .bind(token_id)
        .bind(directory.id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(e)?;
        if r.rows_affected() == 0 {
            return Ok(false);
        }
        let ev = EventDraft::new(
            EventKind::DirectoryTokenRevoked,
            &directory.id,
            serde_json::json!({"token_id": token_id}),
        );
        let mut b = Batch::default();
        b.event(Some(&directory.org_id), actor, &ev);
        tx.finish(self.d, b).await.map_err(e)?;
        tx.commit().await?;
        Ok(true)
    }

    async fn list_tokens(&self, directory_id: &str) -> CoreResult<Vec<TokenInfo>> {
        let rows = sqlx::query(
            "SELECT id, directory_id, read_only, created_at, revoked_at FROM directory_tokens \
             WHERE directory_id = $1 ORDER BY created_at",
        )
        .bind(directory_id)
        .fetch_all(&mut *self.read_conn().await?)
        .await
        .map_err(e)?;
        rows.iter().map(Self::token_from_row).collect()
    }

    async fn token_grant(&self, token_hash: &str) -> CoreResult<Option<TokenGrant>> {
        let row = sqlx::query(
            "SELECT id, directory_id, org_id, read_only FROM directory_tokens \
             WHERE token_hash = $1 AND revoked_at IS NULL",
        )
        .bind(token_hash)
        .fetch_optional(&mut *self.read_conn().await?)
        .await
        .map_err(e)?;
        match row {
            None => Ok(None),
            Some(r) => Ok(Some(TokenGrant {
                token_id: get(&r, "id")?,
                directory_id: get(&r, "directory_id")?,
                org: OrgId::from_store(get(&r, "org_id")?),
                read_only: get::<i64>(&r, "read_only")? != 0,
            })),
        }
    }
}

impl TrafficStore for SqlStore {
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

    async fn add_recent_requests(&self, reqs: &[RecentRequest], keep: i64) -> CoreResult<()> {
        if reqs.is_empty() {
            return Ok(());
        }
        let mut b = Batch::default();
        let mut dirs: Vec<&str> = Vec::new();
        for r in reqs {
            b.push(
                "INSERT INTO scim_requests (directory_id, at, method, path, status, latency_us, user_agent, request_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                vec![
                    Arg::Str(r.directory_id.clone()),
                    Arg::Str(r.at.clone()),
                    Arg::Str(r.method.clone()),
                    Arg::Str(r.path.clone()),
                    Arg::I64(r.status),
                    Arg::I64(r.latency_us),
                    Arg::Str(r.user_agent.clone()),
                    Arg::opt(r.request_id.clone()),
                ],
            );
            if !dirs.contains(&r.directory_id.as_str()) {
                dirs.push(&r.directory_id);
            }
        }
        for d in dirs {
            b.push(
                "DELETE FROM scim_requests WHERE directory_id = $1 AND seq <= \
                   (SELECT seq FROM scim_requests WHERE directory_id = $1 ORDER BY seq DESC LIMIT 1 OFFSET $2)",
                vec![Arg::Str(d.to_owned()), Arg::I64(keep)],
            );
        }
        self.write_batch(b).await
    }

    async fn recent_requests(
        &self,
        directory_id: &str,
        limit: i64,
    ) -> CoreResult<Vec<RecentRequest>> {
        let rows = sqlx::query(
            "SELECT directory_id, at, method, path, status, latency_us, user_agent, request_id \
             FROM scim_requests WHERE directory_id = $1 ORDER BY seq DESC LIMIT $2",
        )
        .bind(directory_id)
        .bind(limit)
        .fetch_all(&mut *self.read_conn().await?)
        .await
        .map_err(e)?;
        rows.iter().map(recent_of).collect()
    }

    async fn deprovision_samples(
        &self,
        org: Option<&OrgId>,
        limit: i64,
    ) -> CoreResult<Vec<DeprovisionSample>> {
        self.sealed().await;
        let sql = format!(
            "SELECT e.{p} AS id, e.kind, e.resource_id, COALESCE(e.received_at, e.created_at) AS received, \
               e.created_at, \
               (SELECT MIN(a.at) FROM webhook_endpoints w \
                  JOIN webhook_deliveries d ON d.endpoint_id = w.id AND d.event_id = e.{p} \
                  JOIN webhook_attempts a ON a.delivery_id = d.id \
                  WHERE a.response_status >= 200 AND a.response_status < 300) AS delivered \
             FROM events e \
             WHERE e.{p} > (SELECT COALESCE(MAX({p}), 0) FROM events) - $1 \
               AND e.kind IN ($3, $4){} \
             ORDER BY e.{p} DESC LIMIT $2",
            if org.is_some() {
                " AND e.org_id = $5"
            } else {
                ""
            },
            p = self.d.event_pos()
        );
        let [deactivated, deleted] = EventKind::DEPROVISIONING.map(EventKind::as_str);
        let mut q = sqlx::query(&sql)
            .bind(DEPROVISION_WINDOW)
            .bind(limit)
            .bind(deactivated)
            .bind(deleted);
        if let Some(o) = org {
            q = q.bind(o.as_str());
        }
        let rows = q
            .fetch_all(&mut *self.read_conn().await?)
            .await
            .map_err(e)?;
        rows.iter()
            .map(|r| {
                Ok(DeprovisionSample {
                    cursor: get(r, "id")?,
                    kind: get(r, "kind")?,
                    user_id: get(r, "resource_id")?,
                    received_at: get(r, "received")?,
                    committed_at: get(r, "created_at")?,
                    webhook_delivered_at: get(r, "delivered")?,
                })
            })
            .collect()
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
                 EXISTS (SELECT 1 FROM sessions s WHERE s.org_id = u.org_id AND s.user_id = u.id AND s.revoked_at IS NULL AND s.expires_at > $2) \
                 OR EXISTS (SELECT 1 FROM oauth_tokens t WHERE t.org_id = u.org_id AND t.user_id = u.id AND t.revoked_at IS NULL \
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
