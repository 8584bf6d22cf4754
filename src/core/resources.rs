//! Use cases on users and groups: the one write pipeline every adapter goes through.
//! normalize/validate → decide the change (with the current state, inside the store's
//! transaction) → store applies it with its events, deprovisioning included, atomically.

use serde_json::{Map, Value, json};

use super::attrs::{self, normalize};
use super::audit::{self, AuditDraft};
use super::error::{CoreError, CoreResult};
use super::events::{EventDraft, EventKind};
use super::model::{Expect, Group, Provenance, Scope, User};
use super::patch::{self, PatchOp};
use super::schema::{GROUP_TYPE, USER_TYPE};
use super::store::prelude::*;
use super::store::{GroupChange, MemberOp, NewGroup, NewUser, UserChange};
use super::{cpu_bound, new_resource_id};

fn active(attrs: &Map<String, Value>) -> bool {
    attrs.get("active").and_then(Value::as_bool).unwrap_or(true)
}

/// The events, audit entry and deprovisioning flag for a user going from `before` to `after`.
fn user_change(
    id: &str,
    before: &User,
    after: Map<String, Value>,
    expect_version: Option<Expect>,
) -> UserChange {
    let changes = audit::diff(&before.attrs, &after);
    let mut events = Vec::new();
    let was = active(&before.attrs);
    let is = active(&after);
    let user_name = after.get("userName").cloned().unwrap_or(Value::Null);
    if !changes.is_empty() {
        events.push(EventDraft::new(
            EventKind::UserUpdated,
            id,
            json!({"userName": user_name, "changes": changes}),
        ));
    }
    let action = if was && !is {
        events.push(EventDraft::new(
            EventKind::UserDeactivated,
            id,
            json!({"userName": user_name}),
        ));
        EventKind::UserDeactivated
    } else if !was && is {
        events.push(EventDraft::new(
            EventKind::UserReactivated,
            id,
            json!({"userName": user_name}),
        ));
        EventKind::UserReactivated
    } else {
        EventKind::UserUpdated
    };
    // The audit action is named after the change's event.
    let audit = (!changes.is_empty())
        .then(|| AuditDraft::new(action.as_str(), "User", id, Value::Object(changes)));
    UserChange {
        attrs: after,
        expect_version,
        events,
        audit,
        // Deprovisioning: sessions die in the same transaction as the deactivation.
        revoke_sessions: was && !is,
    }
}

pub async fn create_user<S: Store>(
    store: &S,
    scope: &Scope,
    body: &Map<String, Value>,
    provenance: Provenance,
) -> CoreResult<User> {
    let attrs = cpu_bound(attrs::weight(body), || normalize(&USER_TYPE, body))?;
    let id = new_resource_id();
    let ev = EventDraft::new(
        EventKind::UserCreated,
        &id,
        json!({"userName": attrs.get("userName"), "active": active(&attrs), "provenance": provenance.as_str(),
               "attributes": attrs}),
    );
    let user_name = attrs
        .get("userName")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let adopt_attrs = (provenance == Provenance::Scim).then(|| attrs.clone());
    match store
        .insert_user(
            scope,
            NewUser {
                id,
                attrs,
                provenance,
            },
            ev,
        )
        .await
    {
        Err(CoreError::Uniqueness(m)) => match adopt_attrs {
            Some(attrs) => adopt_jit_user(store, scope, &user_name, attrs)
                .await?
                .ok_or(CoreError::Uniqueness(m)),
            None => Err(CoreError::Uniqueness(m)),
        },
        other => other,
    }
}

/// A directory creating a user that a JIT login created first takes that account over (same
/// id, the directory's attributes), instead of a uniqueness conflict: the person is the same.
/// Only accounts the directory has never synced are adopted.
async fn adopt_jit_user<S: Store>(
    store: &S,
    scope: &Scope,
    user_name: &str,
    attrs: Map<String, Value>,
) -> CoreResult<Option<User>> {
    if scope.directory_id().is_none() {
        return Ok(None);
    }
    let Some(existing) = store.user_by_user_name(scope, user_name).await? else {
        return Ok(None);
    };
    if existing.provenance != Provenance::Jit || existing.last_directory_sync_at.is_some() {
        return Ok(None);
    }
    let id = existing.id.clone();
    let adopted = store
        .update_user(scope, &id, |cur| {
            if cur.provenance != Provenance::Jit || cur.last_directory_sync_at.is_some() {
                return Err(CoreError::Uniqueness(format!(
                    "userName \"{user_name}\" is already taken"
                )));
            }
            let mut change = user_change(&id, cur, attrs, None);
            change.events.push(EventDraft::new(
                EventKind::UserAdopted,
                &id,
                json!({"userName": user_name, "from": "jit"}),
            ));
            Ok(change)
        })
        .await?;
    Ok(Some(adopted))
}

/// Replaces a user's attributes with `attrs` (a login's refresh), unless the user is (by
/// now) inactive: then `Forbidden`, decided inside the write transaction.
pub async fn replace_user_attrs<S: Store>(
    store: &S,
    scope: &Scope,
    id: &str,
    attrs: Map<String, Value>,
) -> CoreResult<User> {
    let attrs = normalize(&USER_TYPE, &attrs)?;
    store
        .update_user(scope, id, move |cur| {
            if !cur.active() {
                return Err(CoreError::Forbidden("the user is deactivated".into()));
            }
            Ok(user_change(id, cur, attrs, None))
        })
        .await
}

/// An administrator activates or deactivates a user; deactivation revokes every session and
/// token in the same transaction, as a directory's would.
pub async fn set_active<S: Store>(
    store: &S,
    scope: &Scope,
    id: &str,
    active: bool,
) -> CoreResult<User> {
    store
        .update_user(scope, id, move |cur| {
            let mut next = cur.attrs.clone();
            next.insert("active".into(), Value::Bool(active));
            Ok(user_change(id, cur, next, None))
        })
        .await
}

/// PUT: the body replaces every writable attribute.
pub async fn replace_user<S: Store>(
    store: &S,
    scope: &Scope,
    id: &str,
    body: &Map<String, Value>,
    expect_version: Option<Expect>,
) -> CoreResult<User> {
    let attrs = cpu_bound(attrs::weight(body), || normalize(&USER_TYPE, body))?;
    store
        .update_user(scope, id, move |cur| {
            Ok(user_change(id, cur, attrs, expect_version))
        })
        .await
}

pub async fn patch_user<S: Store>(
    store: &S,
    scope: &Scope,
    id: &str,
    ops: &[PatchOp],
    expect_version: Option<Expect>,
) -> CoreResult<User> {
    store
        .update_user(scope, id, move |cur| {
            cpu_bound(patch::weight(ops) + attrs::weight(&cur.attrs), || {
                let p = patch::apply(&USER_TYPE, id, &cur.attrs, ops)?;
                Ok(user_change(id, cur, p.attrs, expect_version))
            })
        })
        .await
}

pub async fn delete_user<S: Store>(
    store: &S,
    scope: &Scope,
    id: &str,
    expect_version: Option<Expect>,
) -> CoreResult<()> {
    let ev = EventDraft::new(EventKind::UserDeleted, id, json!({}));
    if store.delete_user(scope, id, expect_version, ev).await? {
        Ok(())
    } else {
        Err(CoreError::NotFound(format!("User {id}")))
    }
}

/// A group body without its members, and the members if it named any.
type SplitGroup = (Map<String, Value>, Option<Vec<super::store::MemberRef>>);

/// A group body normalized, and its members if it named any.
fn split_group(body: &Map<String, Value>) -> CoreResult<SplitGroup> {
    let (rest, members) = split_members(body)?;
    Ok((normalize(&GROUP_TYPE, &rest)?, members))
}

/// Splits `members` off a group body: members live in their own table.
fn split_members(body: &Map<String, Value>) -> CoreResult<SplitGroup> {
    let mut rest = body.clone();
    let key = rest
        .keys()
        .find(|k| k.eq_ignore_ascii_case("members"))
        .cloned();
    let members = match key.and_then(|k| rest.remove(&k)) {
        Some(v) => Some(patch::member_refs(&v)?),
        None => None,
    };
    Ok((rest, members))
}

pub async fn create_group<S: Store>(
    store: &S,
    scope: &Scope,
    body: &Map<String, Value>,
) -> CoreResult<Group> {
    let (attrs, members) = cpu_bound(attrs::weight(body), || split_group(body))?;
    let id = new_resource_id();
    let members = members.unwrap_or_default();
    let ev = EventDraft::new(
        EventKind::GroupCreated,
        &id,
        json!({"displayName": attrs.get("displayName"), "attributes": attrs, "members": members.len()}),
    );
    store
        .insert_group(scope, NewGroup { id, attrs, members }, ev)
        .await
}

/// The attribute events and audit entry of a group change. Membership events are appended
/// by the store, one per membership that actually changed (set-based, in SQL).
fn group_events(
    id: &str,
    before: &Group,
    after: &Map<String, Value>,
    ops: &[MemberOp],
) -> (Vec<EventDraft>, Option<AuditDraft>) {
    let mut events = Vec::new();
    let changes = audit::diff(&before.attrs, after);
    if !changes.is_empty() {
        events.push(EventDraft::new(
            EventKind::GroupUpdated,
            id,
            json!({"displayName": after.get("displayName"), "changes": changes}),
        ));
    }
    let mut facts = changes;
    if !ops.is_empty() {
        facts.insert("members".into(), json!(member_ops_summary(ops)));
    }
    let audit = (!facts.is_empty()).then(|| {
        AuditDraft::new(
            EventKind::GroupUpdated.as_str(),
            "Group",
            id,
            Value::Object(facts),
        )
    });
    (events, audit)
}

/// What membership operations asked for, for the audit entry (the events list what changed).
fn member_ops_summary(ops: &[MemberOp]) -> Vec<Value> {
    ops.iter()
        .map(|op| match op {
            MemberOp::Add(refs) => {
                json!({"add": refs.iter().map(|m| m.id.as_str()).collect::<Vec<_>>()})
            }
            MemberOp::Remove(ids) => json!({"remove": ids}),
            MemberOp::RemoveAll => json!({"remove": "all"}),
            MemberOp::Replace(refs) => {
                json!({"replace": refs.iter().map(|m| m.id.as_str()).collect::<Vec<_>>()})
            }
            MemberOp::RemoveWhere(f) => json!({"remove_where": f.to_string()}),
        })
        .collect()
}

pub async fn replace_group<S: Store>(
    store: &S,
    scope: &Scope,
    id: &str,
    body: &Map<String, Value>,
    expect_version: Option<Expect>,
) -> CoreResult<Group> {
    let (attrs, members) = cpu_bound(attrs::weight(body), || split_group(body))?;
    // PUT replaces the member list: a body without members empties the group. Members
    // already in it stay (no remove-and-add events for them).
    let ops = vec![MemberOp::Replace(members.unwrap_or_default())];
    store
        .update_group(scope, id, move |cur| {
            let (events, audit) = group_events(id, cur, &attrs, &ops);
            Ok(GroupChange {
                attrs,
                member_ops: ops,
                expect_version,
                events,
                audit,
            })
        })
        .await
}

pub async fn patch_group<S: Store>(
    store: &S,
    scope: &Scope,
    id: &str,
    ops: &[PatchOp],
    expect_version: Option<Expect>,
) -> CoreResult<Group> {
    store
        .update_group(scope, id, move |cur| {
            cpu_bound(patch::weight(ops) + attrs::weight(&cur.attrs), || {
                let p = patch::apply(&GROUP_TYPE, id, &cur.attrs, ops)?;
                let (events, audit) = group_events(id, cur, &p.attrs, &p.member_ops);
                Ok(GroupChange {
                    attrs: p.attrs,
                    member_ops: p.member_ops,
                    expect_version,
                    events,
                    audit,
                })
            })
        })
        .await
}

/// A group PATCH answered without a body: the group's new version. A PATCH of members only
/// is made without reading the group first when the store can (`Store::try_change_members`:
/// one write that a burst of them shares); anything else, or what the store declines, goes
/// through `patch_group`, so the effects and errors are the same either way.
pub async fn patch_group_version<S: Store>(
    store: &S,
    scope: &Scope,
    id: &str,
    ops: &[PatchOp],
    expect_version: Option<Expect>,
) -> CoreResult<i64> {
    let members_only = cpu_bound(patch::weight(ops), || {
        let ops = patch::member_ops_only(&GROUP_TYPE, ops)?;
        // What `group_events` makes of a change that leaves the attributes as they are.
        Ok::<_, CoreError>(ops.map(|ops| {
            let summary = json!({"members": member_ops_summary(&ops)});
            (ops, summary)
        }))
    })?;
    if let Some((member_ops, summary)) = members_only
        && !member_ops.is_empty()
    {
        let audit = AuditDraft::new(EventKind::GroupUpdated.as_str(), "Group", id, summary);
        if let Some(v) = store
            .try_change_members(scope, id, &member_ops, expect_version, audit)
            .await?
        {
            return Ok(v);
        }
    }
    Ok(patch_group(store, scope, id, ops, expect_version)
        .await?
        .meta
        .version)
}

pub async fn delete_group<S: Store>(
    store: &S,
    scope: &Scope,
    id: &str,
    expect_version: Option<Expect>,
) -> CoreResult<()> {
    let ev = EventDraft::new(EventKind::GroupDeleted, id, json!({}));
    if store.delete_group(scope, id, expect_version, ev).await? {
        Ok(())
    } else {
        Err(CoreError::NotFound(format!("Group {id}")))
    }
}
