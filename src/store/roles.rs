//! Role grants as set operations in a write's batch. A user holds a role while any grant of
//! it remains; a grant's `source` is the mapped group it comes through or `'idp'` (the group
//! claims of the user's logins). Each helper appends `role.assigned` / `role.unassigned`
//! events only for users whose set of roles actually changes, before changing the grants, so
//! the work is proportional to the memberships that changed, never to the group.

use super::Dialect;
use super::engine::Arg;
use super::engine::batch::Batch;
use crate::core::events::EventKind;
use crate::core::model::{Actor, OrgId};

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
         (SELECT 1 FROM role_grants x WHERE x.user_id = u.user_id AND x.role = gr.role)"
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
             WHERE x.user_id = r.user_id AND x.role = r.role AND x.source <> r.source)"
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
        "SELECT member_id AS user_id FROM group_members WHERE group_id = $2 AND member_type = 'User'",
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
             (SELECT 1 FROM role_grants x WHERE x.user_id = ir.user_id AND x.role = ir.role)"
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
