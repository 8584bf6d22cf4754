//! `AdminStore` on SQLite and PostgreSQL: keyset listings for the admin API and console,
//! timelines, recent SCIM requests, deprovisioning samples, console sessions, setup links.

use serde_json::json;
use sqlx::any::AnyRow;

use super::engine::Arg;
use super::engine::batch::Batch;
use super::engine::bind_all;
use super::sql_store::{SqlStore, e, fold, get};
use crate::core::audit::{AuditDraft, StoredEntry};
use crate::core::error::CoreResult;
use crate::core::events::EventKind;
use crate::core::model::*;
use crate::core::store::*;
use crate::core::webhooks::EventRecord;

/// A member row (`member_id`, `member_type`, `display`).
pub(super) fn member_of(r: &AnyRow) -> CoreResult<Member> {
    let kind: String = get(r, "member_type")?;
    Ok(Member {
        id: get(r, "member_id")?,
        kind: if kind == "Group" {
            MemberType::Group
        } else {
            MemberType::User
        },
        display: get(r, "display")?,
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

fn link_of(r: &AnyRow) -> CoreResult<SetupLink> {
    Ok(SetupLink {
        id: get(r, "id")?,
        org_id: OrgId::from_store(get(r, "org_id")?),
        created_at: get(r, "created_at")?,
        expires_at: get(r, "expires_at")?,
        opened_at: get(r, "opened_at")?,
        directory_id: get(r, "directory_id")?,
        connection_id: get(r, "connection_id")?,
    })
}

const LINK_COLS: &str =
    "id, org_id, created_at, expires_at, opened_at, directory_id, connection_id";

/// How far back (in events) the deprovisioning chart looks.
const DEPROVISION_WINDOW: i64 = 50_000;

impl AdminStore for SqlStore {
    async fn org_page(&self, after: Option<&str>, limit: i64) -> CoreResult<Vec<Org>> {
        let rows = sqlx::query(&format!(
            "SELECT id, slug, name, created_at FROM orgs WHERE {} > $1 ORDER BY {} LIMIT $2",
            self.d.collate("slug"),
            self.d.collate("slug")
        ))
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(&mut *self.read_conn().await?)
        .await
        .map_err(e)?;
        rows.iter().map(Self::org_from_row).collect()
    }

    async fn org_stats(&self, org: &OrgId) -> CoreResult<OrgStats> {
        let r = sqlx::query(
            "SELECT \
               (SELECT COUNT(*) FROM users WHERE org_id = $1) AS users, \
               (SELECT COUNT(*) FROM users WHERE org_id = $1 AND active = 1) AS active_users, \
               (SELECT COUNT(*) FROM org_groups WHERE org_id = $1) AS groups_n, \
               (SELECT COUNT(*) FROM directories WHERE org_id = $1) AS directories, \
               (SELECT COUNT(*) FROM connections WHERE org_id = $1) AS connections, \
               (SELECT MAX(t.last_request_at) FROM directory_traffic t \
                  JOIN directories d ON d.id = t.directory_id WHERE d.org_id = $1) AS last_scim",
        )
        .bind(org.as_str())
        .fetch_one(&mut *self.read_conn().await?)
        .await
        .map_err(e)?;
        Ok(OrgStats {
            users: get(&r, "users")?,
            active_users: get(&r, "active_users")?,
            groups: get(&r, "groups_n")?,
            directories: get(&r, "directories")?,
            connections: get(&r, "connections")?,
            last_scim_request_at: get(&r, "last_scim")?,
        })
    }

    async fn user_page(&self, org: &OrgId, l: &UserListing) -> CoreResult<Vec<(i64, User)>> {
        let mut args = vec![Arg::Str(org.as_str().to_owned()), Arg::I64(l.after)];
        let mut conds = vec!["t.org_id = $1".to_owned(), "t.pos > $2".to_owned()];
        if let Some(q) = l.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
            args.push(Arg::Str(fold(q)));
            let p = format!("${}", args.len());
            conds.push(format!(
                "({} OR {})",
                self.d.contains("t.user_name_norm", &p),
                self.d.contains("COALESCE(t.email_norm, '')", &p)
            ));
        }
        if let Some(active) = l.active {
            args.push(Arg::I64(i64::from(active)));
            conds.push(format!("t.active = ${}", args.len()));
        }
        if let Some(p) = l.provenance {
            args.push(Arg::Str(p.as_str().to_owned()));
            conds.push(format!("t.provenance = ${}", args.len()));
        }
        args.push(Arg::I64(l.limit));
        let sql = format!(
            "SELECT {}, t.pos AS pos_ FROM users t WHERE {} ORDER BY t.pos LIMIT ${}",
            self.user_cols(),
            conds.join(" AND "),
            args.len()
        );
        let rows = bind_all(sqlx::query(&sql), &args)
            .fetch_all(&mut *self.read_conn().await?)
            .await
            .map_err(e)?;
        rows.iter()
            .map(|r| Ok((get(r, "pos_")?, Self::user_from_row(r)?)))
            .collect()
    }

    async fn group_page(
        &self,
        org: &OrgId,
        q: Option<&str>,
        after: i64,
        limit: i64,
    ) -> CoreResult<Vec<GroupLine>> {
        let mut args = vec![Arg::Str(org.as_str().to_owned()), Arg::I64(after)];
        let mut cond = String::new();
        if let Some(q) = q.map(str::trim).filter(|q| !q.is_empty()) {
            args.push(Arg::Str(fold(q)));
            cond = format!(
                " AND {}",
                self.d
                    .contains("t.display_name_norm", &format!("${}", args.len()))
            );
        }
        args.push(Arg::I64(limit));
        let sql = format!(
            "SELECT t.id, {} AS attrs, t.version, t.created_at, t.updated_at, t.pos AS pos_, \
               (SELECT COUNT(*) FROM group_members m WHERE m.group_id = t.id) AS members_n \
             FROM org_groups t WHERE t.org_id = $1 AND t.pos > $2{cond} ORDER BY t.pos LIMIT ${}",
            self.d.json_out("t.attrs"),
            args.len()
        );
        let rows = bind_all(sqlx::query(&sql), &args)
            .fetch_all(&mut *self.read_conn().await?)
            .await
            .map_err(e)?;
        rows.iter()
            .map(|r| {
                Ok(GroupLine {
                    pos: get(r, "pos_")?,
                    group: Self::group_from_row(r)?,
                    members: get(r, "members_n")?,
                })
            })
            .collect()
    }

    async fn member_count(&self, org: &OrgId, group_id: &str) -> CoreResult<i64> {
        let r = sqlx::query(
            "SELECT COUNT(*) AS n FROM group_members WHERE group_id = $1 AND org_id = $2",
        )
        .bind(group_id)
        .bind(org.as_str())
        .fetch_one(&mut *self.read_conn().await?)
        .await
        .map_err(e)?;
        get(&r, "n")
    }

    async fn member_page(
        &self,
        org: &OrgId,
        group_id: &str,
        after: Option<&str>,
        limit: i64,
    ) -> CoreResult<Vec<Member>> {
        let rows = sqlx::query(&format!(
            "SELECT m.member_id, m.member_type, COALESCE(u.user_name, g.display_name) AS display \
             FROM group_members m \
             LEFT JOIN users u ON m.member_type = 'User' AND u.id = m.member_id \
             LEFT JOIN org_groups g ON m.member_type = 'Group' AND g.id = m.member_id \
             WHERE m.org_id = $1 AND m.group_id = $2 AND {} > $3 ORDER BY {} LIMIT $4",
            self.d.collate("m.member_id"),
            self.d.collate("m.member_id")
        ))
        .bind(org.as_str())
        .bind(group_id)
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(&mut *self.read_conn().await?)
        .await
        .map_err(e)?;
        rows.iter().map(member_of).collect()
    }

    async fn resource_events(
        &self,
        org: &OrgId,
        resource_id: &str,
        before: Option<i64>,
        limit: i64,
    ) -> CoreResult<Vec<EventRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {} FROM events WHERE resource_id = $1 AND org_id = $2 AND id < $3 \
             ORDER BY id DESC LIMIT $4",
            super::lifecycle_store::EVENT_COLS
        ))
        .bind(resource_id)
        .bind(org.as_str())
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&mut *self.read_conn().await?)
        .await
        .map_err(e)?;
        rows.iter()
            .map(super::lifecycle_store::event_from_row)
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

    async fn audit_page(
        &self,
        chain: &str,
        since: Option<&str>,
        after_seq: i64,
        limit: i64,
    ) -> CoreResult<Vec<StoredEntry>> {
        let rows = sqlx::query(
            "SELECT chain, seq, at, body, prev_hash, hash FROM audit_log \
             WHERE chain = $1 AND seq > $2 AND at >= $3 ORDER BY seq LIMIT $4",
        )
        .bind(chain)
        .bind(after_seq)
        .bind(since.unwrap_or(""))
        .bind(limit)
        .fetch_all(&mut *self.read_conn().await?)
        .await
        .map_err(e)?;
        rows.iter()
            .map(super::lifecycle_store::entry_from_row)
            .collect()
    }

    async fn prune_events(&self, before: &str, batch: i64) -> CoreResult<u64> {
        let mut tx = self.begin().await?;
        // Never past an enabled endpoint's cursor: what it has not settled stays.
        let r = sqlx::query(
            "SELECT COUNT(*) AS n, MAX(x.id) AS last FROM (SELECT id FROM events \
               WHERE created_at < $1 AND id <= (SELECT COALESCE(MIN(cursor), 9223372036854775807) \
                 FROM webhook_endpoints WHERE disabled_at IS NULL) \
               ORDER BY id LIMIT $2) x",
        )
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
            "DELETE FROM events WHERE id <= $1 AND created_at < $2",
            vec![Arg::I64(last), Arg::Str(before.to_owned())],
        );
        // The deliveries of the events just deleted, with their attempts: the delivery log
        // keeps what the feed keeps.
        let gone = "SELECT d.id FROM webhook_deliveries d WHERE d.event_id <= $1 \
                    AND NOT EXISTS (SELECT 1 FROM events e WHERE e.id = d.event_id)";
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

    async fn sweep_ended(&self, before: &str, batch: i64) -> CoreResult<u64> {
        // Session `s` has ended: it expired or was revoked before `before`.
        let ended = "(s.expires_at < $1 OR (s.revoked_at IS NOT NULL AND s.revoked_at < $1))";
        let sweeps = [
            format!(
                "DELETE FROM oauth_tokens WHERE token_hash IN (SELECT t.token_hash FROM oauth_tokens t \
                 WHERE t.expires_at < $1 AND NOT EXISTS (SELECT 1 FROM sessions s \
                   WHERE s.id = t.session_id AND NOT {ended}) LIMIT $2)"
            ),
            format!(
                "DELETE FROM sessions WHERE id IN (SELECT s.id FROM sessions s WHERE {ended} \
                 AND NOT EXISTS (SELECT 1 FROM oauth_tokens t WHERE t.session_id = s.id) LIMIT $2)"
            ),
            "DELETE FROM setup_links WHERE id IN \
             (SELECT id FROM setup_links WHERE expires_at < $1 LIMIT $2)"
                .to_owned(),
        ];
        let mut tx = self.begin().await?;
        let mut n = 0;
        for sql in &sweeps {
            n += sqlx::query(sql)
                .bind(before)
                .bind(batch)
                .execute(&mut *tx)
                .await
                .map_err(e)?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(n)
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
        let sql = format!(
            "SELECT e.id, e.kind, e.resource_id, COALESCE(e.received_at, e.created_at) AS received, \
               e.created_at, \
               (SELECT MIN(a.at) FROM webhook_endpoints w \
                  JOIN webhook_deliveries d ON d.endpoint_id = w.id AND d.event_id = e.id \
                  JOIN webhook_attempts a ON a.delivery_id = d.id \
                  WHERE a.response_status >= 200 AND a.response_status < 300) AS delivered \
             FROM events e \
             WHERE e.id > (SELECT COALESCE(MAX(id), 0) FROM events) - $1 \
               AND e.kind IN ($3, $4){} \
             ORDER BY e.id DESC LIMIT $2",
            if org.is_some() {
                " AND e.org_id = $5"
            } else {
                ""
            }
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

    async fn insert_console_session(
        &self,
        id_hash: &str,
        who: &ConsoleIdentity,
        expires_at: &str,
    ) -> CoreResult<()> {
        let now = crate::core::now();
        let (key, user) = match who {
            ConsoleIdentity::AdminKey(k) => (Arg::Str(k.clone()), Arg::Null),
            ConsoleIdentity::User(u) => (Arg::Null, Arg::Str(u.clone())),
        };
        let mut b = Batch::default();
        // Expired sessions go as new ones come.
        b.push(
            "DELETE FROM console_sessions WHERE expires_at < $1",
            vec![Arg::Str(now.clone())],
        );
        b.push(
            "INSERT INTO console_sessions (id_hash, admin_key_id, user_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
            vec![
                Arg::Str(id_hash.to_owned()),
                key,
                user,
                Arg::Str(now),
                Arg::Str(expires_at.to_owned()),
            ],
        );
        self.write_batch(b).await
    }

    async fn console_session(&self, id_hash: &str, now: &str) -> CoreResult<Option<ConsoleGrant>> {
        let row = sqlx::query(
            "SELECT s.admin_key_id, s.user_id, k.id AS key_live, k.org_id AS key_org, \
               k.read_only AS key_ro, u.id AS user_live, \
               (SELECT COUNT(*) FROM role_grants g WHERE g.user_id = s.user_id AND g.role = $3) AS admin_n, \
               (SELECT COUNT(*) FROM role_grants g WHERE g.user_id = s.user_id AND g.role = $4) AS viewer_n \
             FROM console_sessions s \
             LEFT JOIN admin_keys k ON k.id = s.admin_key_id AND k.revoked_at IS NULL \
             LEFT JOIN users u ON u.id = s.user_id AND u.active = 1 \
               AND u.org_id IN (SELECT o.id FROM settings st JOIN orgs o ON o.slug = st.value \
                                WHERE st.name = $5) \
               AND EXISTS (SELECT 1 FROM connections c \
                           WHERE c.org_id = u.org_id AND c.disabled_at IS NULL) \
             WHERE s.id_hash = $1 AND s.expires_at > $2",
        )
        .bind(id_hash)
        .bind(now)
        .bind(CONSOLE_ADMIN_ROLE)
        .bind(CONSOLE_VIEWER_ROLE)
        .bind(CONSOLE_SSO_ORG_SETTING)
        .fetch_optional(&mut *self.read_conn().await?)
        .await
        .map_err(e)?;
        let Some(r) = row else { return Ok(None) };
        if get::<Option<String>>(&r, "admin_key_id")?.is_some() {
            let Some(key) = get::<Option<String>>(&r, "key_live")? else {
                return Ok(None);
            };
            return Ok(Some(ConsoleGrant {
                who: ConsoleIdentity::AdminKey(key),
                org: get::<Option<String>>(&r, "key_org")?.map(OrgId::from_store),
                read_only: get::<Option<i64>>(&r, "key_ro")?.unwrap_or(1) != 0,
            }));
        }
        let (Some(user), admin_n, viewer_n) = (
            get::<Option<String>>(&r, "user_live")?,
            get::<i64>(&r, "admin_n")?,
            get::<i64>(&r, "viewer_n")?,
        ) else {
            return Ok(None);
        };
        if admin_n == 0 && viewer_n == 0 {
            return Ok(None);
        }
        Ok(Some(ConsoleGrant {
            who: ConsoleIdentity::User(user),
            org: None,
            read_only: admin_n == 0,
        }))
    }

    async fn setting(&self, name: &str) -> CoreResult<Option<String>> {
        let row = sqlx::query("SELECT value FROM settings WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *self.read_conn().await?)
            .await
            .map_err(e)?;
        row.map(|r| get(&r, "value")).transpose()
    }

    async fn set_setting(&self, name: &str, value: Option<&str>, actor: &Actor) -> CoreResult<()> {
        let mut b = Batch::default();
        b.push(
            "DELETE FROM settings WHERE name = $1",
            vec![Arg::Str(name.to_owned())],
        );
        if let Some(v) = value {
            b.push(
                "INSERT INTO settings (name, value) VALUES ($1, $2)",
                vec![Arg::Str(name.to_owned()), Arg::Str(v.to_owned())],
            );
        }
        b.audit(
            None,
            actor,
            AuditDraft::new("setting.changed", "Setting", name, json!({"value": value})),
        );
        self.write_batch(b).await
    }

    async fn delete_console_session(&self, id_hash: &str) -> CoreResult<()> {
        let mut b = Batch::default();
        b.push(
            "DELETE FROM console_sessions WHERE id_hash = $1",
            vec![Arg::Str(id_hash.to_owned())],
        );
        self.write_batch(b).await
    }

    async fn insert_setup_link(
        &self,
        link: &SetupLink,
        token_hash: &str,
        actor: &Actor,
    ) -> CoreResult<()> {
        let mut b = Batch::default();
        b.push(
            "INSERT INTO setup_links (id, org_id, token_hash, created_at, expires_at, connection_id) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            vec![
                Arg::Str(link.id.clone()),
                Arg::Str(link.org_id.as_str().to_owned()),
                Arg::Str(token_hash.to_owned()),
                Arg::Str(link.created_at.clone()),
                Arg::Str(link.expires_at.clone()),
                Arg::Str(link.connection_id.clone()),
            ],
        );
        b.audit(
            Some(&link.org_id),
            actor,
            AuditDraft::new(
                "setup_link.created",
                "SetupLink",
                &link.id,
                json!({"expires_at": link.expires_at}),
            ),
        );
        self.write_batch(b).await
    }

    async fn open_setup_link(
        &self,
        token_hash: &str,
        session_hash: &str,
        now: &str,
    ) -> CoreResult<Option<SetupLink>> {
        let mut b = Batch::default();
        b.push(
            "UPDATE setup_links SET opened_at = $1, session_hash = $2 \
             WHERE token_hash = $3 AND opened_at IS NULL AND expires_at > $1",
            vec![
                Arg::Str(now.to_owned()),
                Arg::Str(session_hash.to_owned()),
                Arg::Str(token_hash.to_owned()),
            ],
        );
        self.write_batch(b).await?;
        self.setup_session(session_hash, now).await
    }

    async fn setup_session(&self, session_hash: &str, now: &str) -> CoreResult<Option<SetupLink>> {
        let row = sqlx::query(&format!(
            "SELECT {LINK_COLS} FROM setup_links WHERE session_hash = $1 AND expires_at > $2"
        ))
        .bind(session_hash)
        .bind(now)
        .fetch_optional(&mut *self.read_conn().await?)
        .await
        .map_err(e)?;
        row.as_ref().map(link_of).transpose()
    }

    async fn set_setup_directory(&self, link_id: &str, directory_id: &str) -> CoreResult<()> {
        let mut b = Batch::default();
        b.push(
            "UPDATE setup_links SET directory_id = $1 WHERE id = $2 AND directory_id IS NULL",
            vec![
                Arg::Str(directory_id.to_owned()),
                Arg::Str(link_id.to_owned()),
            ],
        );
        self.write_batch(b).await
    }
}
