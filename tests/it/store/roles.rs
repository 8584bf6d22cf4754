//! Role mappings: roles follow groups in the same transaction, per organization.

use roster::core::events::EventKind;
use roster::core::model::Actor;
use roster::core::roles::new_mapping;
use roster::core::store::MemberOp;
use roster::core::store::prelude::*;

use super::{Fx, change_members, is_uniqueness, refs};
use crate::store_tests;

async fn roles_follow_mappings_and_memberships(fx: &Fx) {
    let s = fx.store();
    let (_, scope) = fx.scope("acme").await;
    let ada = fx.user(&scope, "ada").await;
    let bob = fx.user(&scope, "bob").await;
    let g = fx.group(&scope, "Engineering", &[&ada]).await;
    // The mapping assigns the role to the group's members in its own transaction; the
    // group name is compared caselessly.
    let m = new_mapping(&scope.org, "displayName", "ENGINEERING", "developer").unwrap();
    fx.changes(
        Some(&scope.org),
        &[EventKind::RoleMappingCreated, EventKind::RoleAssigned],
        s.insert_role_mapping(&m, &Actor::Cli),
    )
    .await;
    assert_eq!(s.user_roles(&scope, &ada).await.unwrap(), ["developer"]);
    assert!(s.user_roles(&scope, &bob).await.unwrap().is_empty());
    let mapped = s.role_mappings(&scope.org).await.unwrap();
    assert_eq!(mapped.len(), 1);
    assert_eq!(
        (
            mapped[0].match_on.as_str(),
            mapped[0].group_value.as_str(),
            mapped[0].role.as_str()
        ),
        ("displayName", "ENGINEERING", "developer")
    );
    // The same mapping twice is refused whole.
    let again = new_mapping(&scope.org, "displayName", "engineering", "developer").unwrap();
    is_uniqueness(
        fx.appends_nothing(s.insert_role_mapping(&again, &Actor::Cli))
            .await,
    );
    // Joining the group grants the role with the membership.
    fx.changes(
        Some(&scope.org),
        &[EventKind::GroupMemberAdded, EventKind::RoleAssigned],
        change_members(s, &scope, &g, MemberOp::Add(refs(&[&bob])), None),
    )
    .await;
    assert_eq!(s.user_roles(&scope, &bob).await.unwrap(), ["developer"]);
    assert_eq!(
        s.get_user(&scope, &bob).await.unwrap().unwrap().roles,
        ["developer"]
    );
    // Deleting the mapping takes the role from both.
    assert!(
        fx.changes(
            Some(&scope.org),
            &[
                EventKind::RoleMappingDeleted,
                EventKind::RoleUnassigned,
                EventKind::RoleUnassigned
            ],
            s.delete_role_mapping(&scope.org, &m.id, &Actor::Cli),
        )
        .await
    );
    assert!(s.user_roles(&scope, &ada).await.unwrap().is_empty());
    assert!(
        !fx.appends_nothing(s.delete_role_mapping(&scope.org, &m.id, &Actor::Cli))
            .await
            .unwrap()
    );
}

async fn mappings_are_isolated(fx: &Fx) {
    let s = fx.store();
    let (_, acme) = fx.scope("acme").await;
    let (_, globex) = fx.scope("globex").await;
    let ada = fx.user(&acme, "ada").await;
    let gus = fx.user(&globex, "gus").await;
    fx.group(&acme, "Admins", &[&ada]).await;
    fx.group(&globex, "Admins", &[&gus]).await;
    let m = new_mapping(&acme.org, "displayName", "Admins", "admin").unwrap();
    fx.changes(
        Some(&acme.org),
        &[EventKind::RoleMappingCreated, EventKind::RoleAssigned],
        s.insert_role_mapping(&m, &Actor::Cli),
    )
    .await;
    // globex's group of the same name maps to nothing.
    assert!(s.user_roles(&globex, &gus).await.unwrap().is_empty());
    assert!(s.user_roles(&globex, &ada).await.unwrap().is_empty());
    assert!(s.role_mappings(&globex.org).await.unwrap().is_empty());
    assert!(
        !fx.appends_nothing(s.delete_role_mapping(&globex.org, &m.id, &Actor::Cli))
            .await
            .unwrap()
    );
    assert_eq!(s.user_roles(&acme, &ada).await.unwrap(), ["admin"]);
}

store_tests!(roles_follow_mappings_and_memberships, mappings_are_isolated);
