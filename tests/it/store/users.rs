//! Users: writes with their events, reads by every key, pages, isolation.

use roster::core::error::CoreError;
use roster::core::events::{EventDraft, EventKind};
use roster::core::model::{Expect, Provenance, User};
use roster::core::query::{Cond, ListQuery, Page};
use roster::core::resources;
use roster::core::store::UserListing;
use roster::core::store::prelude::*;
use serde_json::json;

use super::{Fx, is_uniqueness};
use crate::store_tests;

fn all(start: u64, count: u64) -> ListQuery {
    ListQuery {
        filter: None,
        sort: None,
        start_index: start,
        count,
    }
}

/// The same page, found by a filtered scan (OFFSET) rather than by seeking to a position.
fn scanned(start: u64, count: u64) -> ListQuery {
    ListQuery {
        filter: Some(Cond::Const(true)),
        ..all(start, count)
    }
}

fn ids(page: Page<User>) -> Vec<String> {
    page.items.into_iter().map(|u| u.id).collect()
}

async fn a_user_round_trips_by_every_key(fx: &Fx) {
    let s = fx.store();
    let (_, scope) = fx.scope("acme").await;
    let body = json!({
        "userName": "Ada@Example.com",
        "externalId": "okta-00u1",
        "displayName": "Ada \"Countess\" Lovelace",
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "emails": [{"value": "ADA@example.com", "type": "work", "primary": true}],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D"}
    });
    let created = fx
        .changes(
            Some(&scope.org),
            &[EventKind::UserCreated],
            resources::create_user(s, &scope, body.as_object().unwrap(), Provenance::Admin),
        )
        .await;
    let events = fx.events().await;
    let ev = events.last().unwrap();
    assert_eq!(ev.resource_id, created.id);
    assert_eq!(ev.data["userName"], "Ada@Example.com");
    assert_eq!(created.meta.version, 1);
    let by_id = s
        .get_user(&scope, &created.id)
        .await
        .unwrap()
        .expect("by id");
    assert_eq!(by_id.attrs, created.attrs);
    assert_eq!(by_id.provenance, Provenance::Admin);
    assert_eq!(by_id.attrs["displayName"], "Ada \"Countess\" Lovelace");
    let by_name = s
        .user_by_user_name(&scope, "ada@EXAMPLE.com")
        .await
        .unwrap();
    assert_eq!(
        by_name.map(|u| u.id),
        Some(created.id.clone()),
        "userName is caseless"
    );
    let by_ext = s.users_by_external_id(&scope, "okta-00u1").await.unwrap();
    assert_eq!(by_ext.len(), 1);
    assert!(
        s.users_by_external_id(&scope, "OKTA-00U1")
            .await
            .unwrap()
            .is_empty(),
        "externalId is exact"
    );
    let by_email = s.users_by_email(&scope, "ada@example.com").await.unwrap();
    assert_eq!(by_email.len(), 1);
    let listed = s
        .get_listed_user(&scope, &created.id)
        .await
        .unwrap()
        .expect("listed");
    assert_eq!(listed.id, created.id);
    assert!(s.get_user(&scope, "no-such-id").await.unwrap().is_none());
}

async fn changes_append_their_events_and_failures_nothing(fx: &Fx) {
    let s = fx.store();
    let (_, scope) = fx.scope("acme").await;
    let u = fx.user(&scope, "ev@example.com").await;
    // Uniqueness (userName is caseless).
    is_uniqueness(
        fx.appends_nothing(resources::create_user(
            s,
            &scope,
            json!({"userName": "EV@example.com"}).as_object().unwrap(),
            Provenance::Admin,
        ))
        .await,
    );
    // A precondition that fails after the core decided the change.
    let stale = fx
        .appends_nothing(resources::replace_user(
            s,
            &scope,
            &u,
            json!({"userName": "ev@example.com", "active": false})
                .as_object()
                .unwrap(),
            Some(Expect::Version(99)),
        ))
        .await;
    assert!(
        matches!(stale, Err(CoreError::VersionMismatch(_))),
        "{stale:?}"
    );
    // The core refusing the change inside the transaction.
    let refused = fx
        .appends_nothing(s.update_user(&scope, &u, |_| Err(CoreError::Forbidden("no".into()))))
        .await;
    assert!(matches!(refused, Err(CoreError::Forbidden(_))));
    assert_eq!(
        s.get_user(&scope, &u).await.unwrap().unwrap().meta.version,
        1
    );
    // Deactivation: the change and its deactivation, one transaction.
    let off = fx
        .changes(
            Some(&scope.org),
            &[EventKind::UserUpdated, EventKind::UserDeactivated],
            resources::replace_user(
                s,
                &scope,
                &u,
                json!({"userName": "ev@example.com", "active": false, "title": "gone"})
                    .as_object()
                    .unwrap(),
                Some(Expect::Version(1)),
            ),
        )
        .await;
    assert_eq!(off.meta.version, 2);
    assert!(!off.active());
    // A PUT that changes nothing appends nothing (it still touches the user: its version
    // and, from a directory, its last sync).
    fx.appends_nothing(resources::replace_user(
        s,
        &scope,
        &u,
        json!({"userName": "ev@example.com", "active": false, "title": "gone"})
            .as_object()
            .unwrap(),
        None,
    ))
    .await
    .unwrap();
    fx.changes(
        Some(&scope.org),
        &[EventKind::UserDeleted],
        resources::delete_user(s, &scope, &u, Some(Expect::Version(3))),
    )
    .await;
    assert!(s.get_user(&scope, &u).await.unwrap().is_none());
    assert!(
        !fx.appends_nothing(s.delete_user(
            &scope,
            &u,
            None,
            EventDraft::new(EventKind::UserDeleted, &u, json!({}))
        ))
        .await
        .unwrap()
    );
}

async fn users_are_isolated(fx: &Fx) {
    let s = fx.store();
    let (_, acme) = fx.scope("acme").await;
    let (_, globex) = fx.scope("globex").await;
    let u = fx.user(&acme, "iso@example.com").await;
    fx.user(&globex, "other@example.com").await;
    assert!(s.get_user(&globex, &u).await.unwrap().is_none());
    assert!(s.get_listed_user(&globex, &u).await.unwrap().is_none());
    assert!(
        s.user_by_user_name(&globex, "iso@example.com")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.users_by_email(&globex, "iso@example.com")
            .await
            .unwrap()
            .is_empty()
    );
    let updated = fx
        .appends_nothing(resources::set_active(s, &globex, &u, false))
        .await;
    assert!(
        matches!(updated, Err(CoreError::NotFound(_))),
        "{updated:?}"
    );
    assert!(
        !fx.appends_nothing(s.delete_user(
            &globex,
            &u,
            None,
            EventDraft::new(EventKind::UserDeleted, &u, json!({}))
        ))
        .await
        .unwrap()
    );
    let still = s.get_user(&acme, &u).await.unwrap().expect("still there");
    assert!(still.active());
    // The same userName in another organization is another user.
    fx.user(&globex, "iso@example.com").await;
    assert_eq!(s.list_users(&globex, &all(1, 10)).await.unwrap().total, 2);
    assert_eq!(
        s.list_users(&globex, &scanned(1, 10)).await.unwrap().total,
        2
    );
    assert_eq!(s.list_users(&acme, &all(1, 10)).await.unwrap().total, 1);
    let page = s
        .user_page(
            &globex.org,
            &UserListing {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.len(), 2);
}

async fn admin_listing_filters_and_pages(fx: &Fx) {
    let s = fx.store();
    let (_, scope) = fx.scope("acme").await;
    let mut made = Vec::new();
    for i in 0..7 {
        made.push(fx.user(&scope, &format!("member{i}@example.com")).await);
    }
    resources::set_active(s, &scope, &made[3], false)
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let page = s
            .user_page(
                &scope.org,
                &UserListing {
                    after,
                    limit: 3,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let Some((pos, _)) = page.last() else { break };
        after = *pos;
        seen.extend(page.into_iter().map(|(_, u)| u.id));
    }
    assert_eq!(seen, made, "keyset pages in creation order, each user once");
    let inactive = s
        .user_page(
            &scope.org,
            &UserListing {
                active: Some(false),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        inactive.iter().map(|(_, u)| &u.id).collect::<Vec<_>>(),
        [&made[3]]
    );
    let q = s
        .user_page(
            &scope.org,
            &UserListing {
                q: Some("MEMBER5".into()),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(q.len(), 1);
}

/// Pages found by seeking to a position must be exactly the pages OFFSET finds, whatever
/// was deleted (the first, runs, the last).
async fn position_paging_matches_offset(fx: &Fx) {
    let s = fx.store();
    let (_, scope) = fx.scope("acme").await;
    let mut made = Vec::new();
    for i in 0..30 {
        made.push(fx.user(&scope, &format!("p{i:02}")).await);
    }
    for i in [0usize, 5, 6, 7, 13, 29] {
        resources::delete_user(s, &scope, &made[i], None)
            .await
            .unwrap();
    }
    fx.user(&scope, "late").await;
    assert_eq!(s.list_users(&scope, &all(1, 0)).await.unwrap().total, 25);
    assert_eq!(
        s.list_users(&scope, &scanned(1, 0)).await.unwrap().total,
        25
    );
    for start in 1..=27 {
        for count in [1, 3, 10] {
            let a = ids(s.list_users(&scope, &all(start, count)).await.unwrap());
            let b = ids(s.list_users(&scope, &scanned(start, count)).await.unwrap());
            assert_eq!(a, b, "startIndex {start} count {count}");
        }
    }
}

/// Concurrent writes that share a group commit: failures (duplicates) roll back alone,
/// every success is there with exactly one event, and the counters agree with the rows.
async fn concurrent_writes_with_failures(fx: &Fx) {
    let store = fx.store().clone();
    let (_, scope) = fx.scope("acme").await;
    let before = fx.events().await.len();
    let mut tasks = Vec::new();
    for i in 0..60 {
        let (store, scope) = (store.clone(), scope.clone());
        // Every fifth name repeats an earlier one (case differs): a uniqueness failure.
        let name = if i % 5 == 4 {
            format!("C{}", i - 1)
        } else {
            format!("c{i}")
        };
        tasks.push(tokio::spawn(async move {
            resources::create_user(
                &store,
                &scope,
                json!({"userName": name}).as_object().unwrap(),
                Provenance::Admin,
            )
            .await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(CoreError::Uniqueness(_)) => {}
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!(ok, 48);
    // Queued writes, some of them failing in the writer's turn, link their audit entries
    // into one unbroken chain.
    let chains = store.audit_chains().await.unwrap();
    assert!(!chains.is_empty());
    for (chain, anchor) in chains {
        let e = store.audit_entries(&chain, None).await.unwrap();
        roster::core::audit::verify_chain(&chain, anchor.as_ref(), e).expect("intact chain");
    }
    let a = store.list_users(&scope, &all(1, 100)).await.unwrap();
    let b = store.list_users(&scope, &scanned(1, 100)).await.unwrap();
    assert_eq!((a.total, b.total), (48, 48));
    assert_eq!(
        a.items.len(),
        48,
        "positions stay dense: the seek page sees every user"
    );
    let created = fx.events().await[before..]
        .iter()
        .filter(|e| e.kind == EventKind::UserCreated.as_str())
        .count();
    assert_eq!(created, 48);
}

/// A page carries each user exactly as a read by id returns it (attributes, meta,
/// provenance, groups, roles, timestamps), whatever characters the values hold: pages are
/// assembled in SQL, reads by id are not.
async fn pages_match_reads_by_id(fx: &Fx) {
    let s = fx.store();
    let (_, scope) = fx.scope("acme").await;
    let awkward = "q\"uo\\te \u{1}\n\t€ 😀 </script> ' %";
    // Group names in role mappings may not hold control characters.
    let group_name = "g \"quoted\" \\ € 😀";
    let mapping =
        roster::core::roles::new_mapping(&scope.org, "displayName", group_name, "role \"x\"")
            .unwrap();
    s.insert_role_mapping(&mapping, &scope.actor).await.unwrap();
    let mut made = Vec::new();
    for i in 0..5 {
        let u = resources::create_user(
            s,
            &scope,
            json!({
                "userName": format!("u{i} {awkward}"),
                "displayName": awkward,
                "name": {"givenName": awkward, "familyName": "Ünïcödé"},
                "emails": [{"value": format!("u{i}@example.com"), "type": "work", "primary": true}],
                "active": i % 2 == 0,
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                    "employeeNumber": format!("{i}"), "department": awkward
                }
            })
            .as_object()
            .unwrap(),
            Provenance::Admin,
        )
        .await
        .unwrap();
        made.push(u.id);
    }
    let members: Vec<&str> = made[..3].iter().map(String::as_str).collect();
    fx.group(&scope, group_name, &members).await;
    for q in [all(1, 10), scanned(1, 10)] {
        let page = s.list_users(&scope, &q).await.unwrap();
        assert_eq!((page.total, page.items.len()), (5, 5));
        for (item, id) in page.items.iter().zip(&made) {
            let one = s.get_user(&scope, id).await.unwrap().expect("user");
            assert_eq!(&item.id, id, "creation order");
            assert_eq!(item.attrs, one.attrs);
            assert_eq!(item.meta.version, one.meta.version);
            assert_eq!(item.meta.created, one.meta.created);
            assert_eq!(item.meta.last_modified, one.meta.last_modified);
            assert_eq!(item.provenance, one.provenance);
            assert_eq!(item.last_directory_sync_at, one.last_directory_sync_at);
            assert_eq!(item.last_login_at, one.last_login_at);
            assert_eq!(item.groups, one.groups);
            assert_eq!(item.roles, one.roles);
        }
        let first = &page.items[0];
        assert_eq!(first.groups.len(), 1);
        assert_eq!(first.groups[0].display, group_name);
        assert_eq!(first.roles, vec!["role \"x\"".to_owned()]);
        assert!(page.items[4].groups.is_empty() && page.items[4].roles.is_empty());
        assert_eq!(first.attrs["displayName"], json!(awkward));
    }
}

store_tests!(
    a_user_round_trips_by_every_key,
    changes_append_their_events_and_failures_nothing,
    users_are_isolated,
    admin_listing_filters_and_pages,
    position_paging_matches_offset,
    concurrent_writes_with_failures,
    pages_match_reads_by_id
);
