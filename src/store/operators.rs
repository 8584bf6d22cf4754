//! [`OperatorStore`] and [`ConsoleStore`]: admin API keys, console sessions and setup links.

use super::engine::Arg;
use super::engine::batch::Batch;
use super::sql_store::{SqlStore, e, get};
use crate::core::audit::AuditDraft;
use crate::core::error::CoreResult;
use crate::core::events::{EventDraft, EventKind};
use crate::core::model::*;
use crate::core::store::*;
use serde_json::json;
use sqlx::any::AnyRow;

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

impl OperatorStore for SqlStore {
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
}

impl ConsoleStore for SqlStore {
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
               (SELECT COUNT(*) FROM role_grants g WHERE g.org_id = u.org_id AND g.user_id = u.id AND g.role = $3) AS admin_n, \
               (SELECT COUNT(*) FROM role_grants g WHERE g.org_id = u.org_id AND g.user_id = u.id AND g.role = $4) AS viewer_n \
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
