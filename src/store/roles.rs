//! [`RoleStore`] (role mappings and the roles users hold) and role grants as set operations in a write's batch. A user holds a role while any grant of
//! it remains; a grant's `source` is the mapped group it comes through or `'idp'` (the group
//! claims of the user's logins). Each helper appends `role.assigned` / `role.unassigned`
//! events only for users whose set of roles actually changes, before changing the grants, so
//! the work is proportional to the memberships that changed, never to the group.

use super::engine::Arg;
use super::engine::batch::Batch;
use super::sql_store::{SqlStore, e, fold, get};
use super::{Dialect, roles};
use crate::core::error::{CoreError, CoreResult, StoreError};
use crate::core::events::{EventDraft, EventKind};
use crate::core::model::*;
use crate::core::store::*;
use serde_json::json;
use sqlx::any::AnyRow;

/// Where grants come from when they come from logins.
pub const IDP_SOURCE: &str = "idp";

/// The roles group `$2` of organization `$1` maps to.
const GROUP_ROLES: &str = "SELECT DISTINCT rm.role FROM role_mappings rm JOIN org_groups g ON g.org_id = rm.org_id \
     WHERE rm.org_id = $1 AND g.id = $2 AND ((rm.match_on = 'displayName' AND rm.group_value_norm = g.display_name_norm) \
     OR (rm.match_on = 'externalId' AND rm.group_value = g.external_id))";

/// `$1` the organization, `$2` a group id or source, `$3…` the caller's `extra`: the
/// parameter layout every membership and grant statement here shares.
pub fn keyed_args(org: &OrgId, key: &str, extra: &[Arg]) -> Vec<Arg> {
    let mut a = vec![Arg::Str(org.as_str().to_owned()), Arg::Str(key.to_owned())];
    a.extend(extra.iter().cloned());
    a
}

fn role_event_data(d: Dialect, user: &str, role: &str) -> String {
    d.json_object(&[("user_id", user), ("role", role)])
}

/// Grants group `group`'s roles to the users `users` yields (a SELECT of one column
/// `user_id` over parameters `$3…` = `extra`), as the group's members.
pub fn grant_group_roles(
    b: &mut Batch,
    d: Dialect,
    org: &OrgId,
    actor: &Actor,
    group: &str,
    users: &str,
    extra: Vec<Arg>,
) {
    let args = || keyed_args(org, group, &extra);
    let from = format!(
        "FROM ({users}) u, ({GROUP_ROLES}) gr WHERE NOT EXISTS \
         (SELECT 1 FROM role_grants x WHERE x.org_id = $1 AND x.user_id = u.user_id AND x.role = gr.role)"
    );
    b.events_select(
        org,
        actor,
        EventKind::RoleAssigned,
        "u.user_id",
        &role_event_data(d, "u.user_id", "gr.role"),
        &from,
        args(),
    );
    b.push(
        format!(
            "INSERT INTO role_grants (org_id, user_id, role, source) SELECT $1, u.user_id, gr.role, $2 \
             FROM ({users}) u, ({GROUP_ROLES}) gr WHERE 1 = 1 ON CONFLICT DO NOTHING"
        ),
        args(),
    );
}

/// Removes the grants through group `group` of the users `users` yields (as above),
/// with `role.unassigned` for roles no other grant keeps.
pub fn revoke_group_roles(
    b: &mut Batch,
    d: Dialect,
    org: &OrgId,
    actor: &Actor,
    group: &str,
    users: &str,
    extra: Vec<Arg>,
) {
    let cond = format!("r.source = $2 AND r.org_id = $1 AND r.user_id IN ({users})");
    revoke_where(b, d, org, actor, group, &cond, extra);
}

/// Removes grants `r` matching `cond` (over `$1` org, `$2` source, `$3…` = `extra`), with
/// `role.unassigned` for roles no grant from another source keeps.
fn revoke_where(
    b: &mut Batch,
    d: Dialect,
    org: &OrgId,
    actor: &Actor,
    source: &str,
    cond: &str,
    extra: Vec<Arg>,
) {
    let args = || keyed_args(org, source, &extra);
    b.events_select(
        org,
        actor,
        EventKind::RoleUnassigned,
        "r.user_id",
        &role_event_data(d, "r.user_id", "r.role"),
        &format!(
            "FROM role_grants r WHERE {cond} AND NOT EXISTS (SELECT 1 FROM role_grants x \
             WHERE x.org_id = r.org_id AND x.user_id = r.user_id AND x.role = r.role AND x.source <> r.source)"
        ),
        args(),
    );
    b.push(format!("DELETE FROM role_grants AS r WHERE {cond}"), args());
}

/// Brings the grants through group `group` in line with what the group maps to now (after
/// a rename, an externalId change or a mapping change): grants of roles it no longer maps
/// to go, its user members get the roles it maps to.
pub fn refresh_group_roles(b: &mut Batch, d: Dialect, org: &OrgId, actor: &Actor, group: &str) {
    let cond = format!("r.source = $2 AND r.org_id = $1 AND r.role NOT IN ({GROUP_ROLES})");
    revoke_where(b, d, org, actor, group, &cond, Vec::new());
    grant_group_roles(
        b,
        d,
        org,
        actor,
        group,
        "SELECT member_id AS user_id FROM group_members WHERE org_id = $1 AND group_id = $2 AND member_type = 'User'",
        Vec::new(),
    );
}

/// The roles the group claims of user `$3`'s logins map to, as rows (user_id, role).
fn idp_roles(d: Dialect) -> String {
    format!(
        "SELECT ui.user_id AS user_id, rm.role AS role FROM user_identities ui, {} \
         JOIN role_mappings rm ON rm.org_id = $1 AND rm.match_on = 'displayName' AND rm.group_value_norm = jg.value \
         WHERE ui.org_id = $1 AND ui.user_id = $3 \
         UNION \
         SELECT ui.user_id AS user_id, rm.role AS role FROM user_identities ui, {} \
         JOIN role_mappings rm ON rm.org_id = $1 AND rm.match_on = 'externalId' AND rm.group_value = jh.value \
         WHERE ui.org_id = $1 AND ui.user_id = $3",
        d.json_strings_of("ui.idp_groups_norm", "jg"),
        d.json_strings_of("ui.idp_groups", "jh"),
    )
}

/// Brings user `user`'s login-sourced grants in line with its logins' group claims.
pub fn refresh_idp_roles(b: &mut Batch, d: Dialect, org: &OrgId, actor: &Actor, user: &str) {
    let extra = vec![Arg::Str(user.to_owned())];
    let cond = format!(
        "r.source = $2 AND r.org_id = $1 AND r.user_id = $3 AND r.role NOT IN (SELECT role FROM ({}) ir)",
        idp_roles(d)
    );
    revoke_where(b, d, org, actor, IDP_SOURCE, &cond, extra.clone());
    let args = || keyed_args(org, IDP_SOURCE, &extra);
    let roles = idp_roles(d);
    b.events_select(
        org,
        actor,
        EventKind::RoleAssigned,
        "ir.user_id",
        &role_event_data(d, "ir.user_id", "ir.role"),
        &format!(
            "FROM ({roles}) ir WHERE $2 = $2 AND NOT EXISTS \
             (SELECT 1 FROM role_grants x WHERE x.org_id = $1 AND x.user_id = ir.user_id AND x.role = ir.role)"
        ),
        args(),
    );
    b.push(
        format!(
            "INSERT INTO role_grants (org_id, user_id, role, source) SELECT $1, ir.user_id, ir.role, $2 \
             FROM ({roles}) ir WHERE 1 = 1 ON CONFLICT DO NOTHING"
        ),
        args(),
    );
}

/// Removes every grant of a user being deleted, with `role.unassigned` per role.
pub fn drop_user_roles(b: &mut Batch, d: Dialect, org: &OrgId, actor: &Actor, user: &str) {
    let args = || vec![Arg::Str(org.as_str().to_owned()), Arg::Str(user.to_owned())];
    b.events_select(
        org,
        actor,
        EventKind::RoleUnassigned,
        "r.user_id",
        &role_event_data(d, "r.user_id", "r.role"),
        "FROM (SELECT DISTINCT user_id, role FROM role_grants WHERE org_id = $1 AND user_id = $2) r",
        args(),
    );
    b.push(
        "DELETE FROM role_grants WHERE org_id = $1 AND user_id = $2",
        args(),
    );
}

/// Removes every grant through a group being deleted.
pub fn drop_group_roles(b: &mut Batch, d: Dialect, org: &OrgId, actor: &Actor, group: &str) {
    revoke_where(
        b,
        d,
        org,
        actor,
        group,
        "r.source = $2 AND r.org_id = $1",
        Vec::new(),
    );
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

impl SqlStore {
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

impl RoleStore for SqlStore {
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
}
