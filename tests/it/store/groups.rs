//! Groups and memberships: set operations in SQL, one event per member that moved.

use roster::core::audit::AuditDraft;
use roster::core::error::CoreError;
use roster::core::events::{EventDraft, EventKind};
use roster::core::model::{Expect, Scope};
use roster::core::query::ListQuery;
use roster::core::store::MemberOp;
use roster::core::store::prelude::*;
use roster::store::SqlStore;
use serde_json::json;

use super::{Fx, change_members, refs};
use crate::store_tests;

async fn members(s: &SqlStore, scope: &Scope, group: &str) -> Vec<String> {
    let mut m: Vec<String> = s
        .group_members(scope, group)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    m.sort();
    m
}

fn sorted(ids: &[&String]) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().map(|s| (*s).clone()).collect();
    v.sort();
    v
}

async fn a_group_round_trips_with_its_members(fx: &Fx) {
    let s = fx.store();
    let (_, scope) = fx.scope("acme").await;
    let a = fx.user(&scope, "a").await;
    let b = fx.user(&scope, "b").await;
    let id = fx
        .changes(
            Some(&scope.org),
            &[
                EventKind::GroupCreated,
                EventKind::GroupMemberAdded,
                EventKind::GroupMemberAdded,
            ],
            async { Ok::<_, ()>(fx.group(&scope, "Engineering \"core\" €", &[&a, &b]).await) },
        )
        .await;
    let g = s.get_group(&scope, &id).await.unwrap().expect("group");
    assert_eq!(g.display_name(), "Engineering \"core\" €");
    assert_eq!(g.meta.version, 1);
    assert_eq!(members(s, &scope, &id).await, sorted(&[&a, &b]));
    assert_eq!(s.member_count(&scope.org, &id).await.unwrap(), 2);
    let user = s.get_user(&scope, &a).await.unwrap().unwrap();
    assert_eq!(user.groups.len(), 1);
    assert_eq!(user.groups[0].id, id);
    // Keyset pages of members, in id order.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = s
            .member_page(&scope.org, &id, after.as_deref(), 1)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        seen.extend(page.into_iter().map(|m| m.id));
    }
    assert_eq!(seen, sorted(&[&a, &b]));
    let lines = s
        .group_page(&scope.org, Some("ENGINEERING"), 0, 10)
        .await
        .unwrap();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].members, 2);
    let listed = s
        .list_groups(
            &scope,
            &ListQuery {
                filter: None,
                sort: None,
                start_index: 1,
                count: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(listed.total, 1);
}

async fn membership_is_a_set_with_an_event_per_member_moved(fx: &Fx) {
    let s = fx.store();
    let (_, scope) = fx.scope("acme").await;
    let a = fx.user(&scope, "a").await;
    let b = fx.user(&scope, "b").await;
    let c = fx.user(&scope, "c").await;
    let g = fx.group(&scope, "staff", &[&a]).await;
    // Adding a member already there adds nothing: one event, for b.
    let v2 = fx
        .changes(
            Some(&scope.org),
            &[EventKind::GroupMemberAdded],
            change_members(s, &scope, &g, MemberOp::Add(refs(&[&a, &b, &b])), None),
        )
        .await;
    assert_eq!(v2.meta.version, 2);
    let last = fx.events().await.pop().unwrap();
    assert_eq!(
        (
            last.data["group_id"].as_str(),
            last.data["member_id"].as_str()
        ),
        (Some(g.as_str()), Some(b.as_str()))
    );
    assert_eq!(members(s, &scope, &g).await, sorted(&[&a, &b]));
    // Replace: c in, a and b out.
    fx.changes(
        Some(&scope.org),
        &[
            EventKind::GroupMemberRemoved,
            EventKind::GroupMemberRemoved,
            EventKind::GroupMemberAdded,
        ],
        change_members(
            s,
            &scope,
            &g,
            MemberOp::Replace(refs(&[&c])),
            Some(Expect::Version(2)),
        ),
    )
    .await;
    assert_eq!(members(s, &scope, &g).await, [c.as_str()]);
    // Removing someone who is not a member removes nothing.
    fx.changes(
        Some(&scope.org),
        &[],
        change_members(s, &scope, &g, MemberOp::Remove(vec![a.clone()]), None),
    )
    .await;
    // A stale version, an unknown member: nothing at all.
    let stale = fx
        .appends_nothing(change_members(
            s,
            &scope,
            &g,
            MemberOp::RemoveAll,
            Some(Expect::Version(1)),
        ))
        .await;
    assert!(
        matches!(stale, Err(CoreError::VersionMismatch(_))),
        "{stale:?}"
    );
    let unknown = fx
        .appends_nothing(change_members(
            s,
            &scope,
            &g,
            MemberOp::Add(refs(&[&a, "no-such-user"])),
            None,
        ))
        .await;
    assert!(unknown.is_err());
    assert_eq!(members(s, &scope, &g).await, [c.as_str()]);
    // A deleted user leaves every group: its own event, then each group's.
    fx.changes(
        Some(&scope.org),
        &[EventKind::UserDeleted, EventKind::GroupMemberRemoved],
        roster::core::resources::delete_user(s, &scope, &c, None),
    )
    .await;
    assert!(members(s, &scope, &g).await.is_empty());
}

async fn the_read_free_member_change_has_the_same_effects(fx: &Fx) {
    let s = fx.store();
    let (_, scope) = fx.scope("acme").await;
    let (_, other) = fx.scope("globex").await;
    let a = fx.user(&scope, "a").await;
    let foreign = fx.user(&other, "f").await;
    let g = fx.group(&scope, "staff", &[]).await;
    let audit = || AuditDraft::new("group.updated", "Group", &g, json!({}));
    // Another organization's user is never added, by either path.
    let declined = fx
        .appends_nothing(s.try_change_members(
            &scope,
            &g,
            &[MemberOp::Add(refs(&[&foreign]))],
            None,
            audit(),
        ))
        .await
        .unwrap();
    assert_eq!(declined, None);
    let refused = fx
        .appends_nothing(change_members(
            s,
            &scope,
            &g,
            MemberOp::Add(refs(&[&foreign])),
            None,
        ))
        .await;
    assert!(refused.is_err());
    let before = fx.events().await.len();
    match s
        .try_change_members(
            &scope,
            &g,
            &[MemberOp::Add(refs(&[&a]))],
            Some(Expect::Version(1)),
            audit(),
        )
        .await
        .unwrap()
    {
        // This backend makes it without reading: the same event, the same version.
        Some(v) => assert_eq!(v, 2),
        None => {
            assert_eq!(
                fx.events().await.len(),
                before,
                "declined means nothing changed"
            );
            change_members(s, &scope, &g, MemberOp::Add(refs(&[&a])), None)
                .await
                .unwrap();
        }
    }
    let kinds: Vec<String> = fx.events().await[before..]
        .iter()
        .map(|e| e.kind.clone())
        .collect();
    assert_eq!(kinds, [EventKind::GroupMemberAdded.as_str()]);
    assert_eq!(members(s, &scope, &g).await, [a.as_str()]);
    assert_eq!(
        s.get_group(&scope, &g).await.unwrap().unwrap().meta.version,
        2
    );
    // A stale version is declined or refused, never applied.
    let stale = s
        .try_change_members(
            &scope,
            &g,
            &[MemberOp::RemoveAll],
            Some(Expect::Version(1)),
            audit(),
        )
        .await
        .unwrap();
    assert_eq!(stale, None);
    assert_eq!(members(s, &scope, &g).await, [a]);
}

async fn groups_are_isolated(fx: &Fx) {
    let s = fx.store();
    let (_, acme) = fx.scope("acme").await;
    let (_, globex) = fx.scope("globex").await;
    let a = fx.user(&acme, "a").await;
    let g = fx.group(&acme, "staff", &[&a]).await;
    assert!(s.get_group(&globex, &g).await.unwrap().is_none());
    assert!(s.group_members(&globex, &g).await.unwrap().is_empty());
    assert_eq!(s.member_count(&globex.org, &g).await.unwrap(), 0);
    let r = fx
        .appends_nothing(change_members(s, &globex, &g, MemberOp::RemoveAll, None))
        .await;
    assert!(matches!(r, Err(CoreError::NotFound(_))), "{r:?}");
    assert!(
        !fx.appends_nothing(s.delete_group(
            &globex,
            &g,
            None,
            EventDraft::new(EventKind::GroupDeleted, &g, json!({}))
        ))
        .await
        .unwrap()
    );
    assert_eq!(members(s, &acme, &g).await, [a]);
    // The same name is free in another organization.
    fx.group(&globex, "staff", &[]).await;
    assert_eq!(s.group_page(&acme.org, None, 0, 10).await.unwrap().len(), 1);
    fx.changes(
        Some(&acme.org),
        &[EventKind::GroupDeleted],
        roster::core::resources::delete_group(s, &acme, &g, None),
    )
    .await;
    assert!(s.get_group(&acme, &g).await.unwrap().is_none());
}

/// Many read-free changes of one group at once (on PostgreSQL they share transactions,
/// `combine`): each made once, versions one after another, an event per member added;
/// a change whose statement fails (a trigger refuses one member) fails alone, and one whose
/// precondition does not hold (another organization's user) is declined without effect.
async fn concurrent_member_changes_fail_alone(fx: &Fx) {
    let s = fx.store();
    let (_, scope) = fx.scope("acme").await;
    let (_, other) = fx.scope("globex").await;
    let foreign = fx.user(&other, "foreign").await;
    let mut users = Vec::new();
    for i in 0..12 {
        users.push(fx.user(&scope, &format!("u{i}")).await);
    }
    let refused = users[5].clone();
    let g = fx.group(&scope, "crowd", &[]).await;
    let raw = crate::lifecycle::raw(&fx.db.location()).await;
    let trigger: &[&str] = match fx.db.schema {
        Some(_) => &[
            "CREATE FUNCTION refuse_member() RETURNS trigger AS $$ BEGIN \
               IF NEW.member_id IN (SELECT v FROM refused_members) THEN \
               RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql",
            "CREATE TABLE refused_members (v TEXT)",
            "CREATE TRIGGER refuse_member BEFORE INSERT ON group_members FOR EACH ROW \
               EXECUTE FUNCTION refuse_member()",
        ],
        None => &[
            "CREATE TABLE refused_members (v TEXT)",
            "CREATE TRIGGER refuse_member BEFORE INSERT ON group_members \
               WHEN NEW.member_id IN (SELECT v FROM refused_members) \
               BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
        ],
    };
    for sql in trigger {
        sqlx::query(sql).execute(&raw).await.unwrap();
    }
    sqlx::query("INSERT INTO refused_members (v) VALUES ($1)")
        .bind(&refused)
        .execute(&raw)
        .await
        .unwrap();
    let before = fx.events().await.len();
    let mut tasks = Vec::new();
    for id in users.iter().chain([&foreign]) {
        let s = s.clone();
        let scope = scope.clone();
        let g = g.clone();
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            let audit = AuditDraft::new("group.updated", "Group", &g, json!({}));
            let ops = [MemberOp::Add(refs(&[&id]))];
            let r = s.try_change_members(&scope, &g, &ops, None, audit).await;
            (id, r)
        }))
    }
    let mut versions = Vec::new();
    for t in tasks {
        let (id, r) = t.await.unwrap();
        match r.unwrap() {
            Some(v) => {
                assert!(id != refused && id != foreign, "{id} was made");
                versions.push(v);
            }
            None => {
                // Declined: made the reading way, which refuses it for good.
                assert!(id == refused || id == foreign, "{id} was declined");
                let again = change_members(s, &scope, &g, MemberOp::Add(refs(&[&id])), None).await;
                assert!(again.is_err(), "{again:?}");
            }
        }
    }
    versions.sort();
    assert_eq!(versions, (2..=12).collect::<Vec<i64>>());
    let mut want: Vec<String> = users.iter().filter(|u| **u != refused).cloned().collect();
    want.sort();
    assert_eq!(members(s, &scope, &g).await, want);
    assert_eq!(
        s.get_group(&scope, &g).await.unwrap().unwrap().meta.version,
        12
    );
    let added = fx.events().await[before..]
        .iter()
        .filter(|e| e.kind == EventKind::GroupMemberAdded.as_str())
        .count();
    assert_eq!(added, 11, "one event per member added");
    raw.close().await;
}

store_tests!(
    a_group_round_trips_with_its_members,
    membership_is_a_set_with_an_event_per_member_moved,
    the_read_free_member_change_has_the_same_effects,
    groups_are_isolated,
    concurrent_member_changes_fail_alone
);
