//! [`OrgStore`] and [`SettingStore`]: organizations, their keyset listing and statistics, and
//! instance settings.

use super::db_err;
use super::engine::Arg;
use super::engine::batch::Batch;
use super::sql_store::{SqlStore, e, get};
use crate::core::audit::AuditDraft;
use crate::core::error::{CoreError, CoreResult, StoreError};
use crate::core::events::{EventDraft, EventKind};
use crate::core::model::*;
use crate::core::store::*;
use crate::core::{new_id, now};
use serde_json::json;
use sqlx::Row;
use sqlx::any::AnyRow;

impl SqlStore {
    pub(super) fn org_from_row(row: &AnyRow) -> CoreResult<Org> {
        Ok(Org {
            id: OrgId::from_store(get(row, "id")?),
            slug: get(row, "slug")?,
            name: get(row, "name")?,
            created_at: get(row, "created_at")?,
        })
    }
}

impl OrgStore for SqlStore {
    async fn create_org(&self, slug: &str, name: &str, actor: &Actor) -> CoreResult<Org> {
        let org = Org {
            id: OrgId::from_store(new_id()),
            slug: slug.to_owned(),
            name: name.to_owned(),
            created_at: now(),
        };
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO orgs (id, slug, name, created_at) VALUES ($1, $2, $3, $4)")
            .bind(org.id.as_str())
            .bind(slug)
            .bind(name)
            .bind(org.created_at.as_str())
            .execute(&mut *tx)
            .await
            .map_err(|err| match db_err(err) {
                StoreError::Unique(_) => {
                    CoreError::Uniqueness(format!("organization \"{slug}\" already exists"))
                }
                other => CoreError::Store(other),
            })?;
        let ev = EventDraft::new(
            EventKind::OrganizationCreated,
            org.id.as_str(),
            serde_json::json!({"slug": slug, "name": name}),
        );
        let mut b = Batch::default();
        b.event(Some(&org.id), actor, &ev);
        tx.finish(self.d, b).await.map_err(e)?;
        tx.commit().await?;
        Ok(org)
    }

    async fn list_orgs(&self) -> CoreResult<Vec<Org>> {
        let rows = sqlx::query("SELECT id, slug, name, created_at FROM orgs ORDER BY slug")
            .fetch_all(&mut *self.read_conn().await?)
            .await
            .map_err(e)?;
        rows.iter().map(Self::org_from_row).collect()
    }

    async fn org_by_slug(&self, slug: &str) -> CoreResult<Option<Org>> {
        let row = sqlx::query("SELECT id, slug, name, created_at FROM orgs WHERE slug = $1")
            .bind(slug)
            .fetch_optional(&mut *self.read_conn().await?)
            .await
            .map_err(e)?;
        row.as_ref().map(Self::org_from_row).transpose()
    }

    async fn org_by_id(&self, id: &str) -> CoreResult<Option<Org>> {
        let row = sqlx::query("SELECT id, slug, name, created_at FROM orgs WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *self.read_conn().await?)
            .await
            .map_err(e)?;
        row.as_ref().map(Self::org_from_row).transpose()
    }

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
}

impl SettingStore for SqlStore {
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

    async fn ensure_setting(&self, name: &str, value: &str) -> CoreResult<String> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(value)
        .execute(&mut *tx)
        .await
        .map_err(e)?;
        let stored: String = sqlx::query("SELECT value FROM settings WHERE name = $1")
            .bind(name)
            .fetch_one(&mut *tx)
            .await
            .map_err(e)?
            .try_get("value")
            .map_err(e)?;
        tx.finish(self.d, Batch::default()).await.map_err(e)?;
        tx.commit().await?;
        Ok(stored)
    }
}
