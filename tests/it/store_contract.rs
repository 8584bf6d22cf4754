//! The store contract, run on both SQLite and PostgreSQL: every write appends its event
//! in the same transaction, failed writes append nothing, organizations are isolated,
//! and membership changes are set operations.

use roster::core::model::{Actor, Expect, Scope};
use roster::core::resources;
use roster::core::store::prelude::*;
use roster::store::SqlStore;
use serde_json::json;
use sqlx::Row;

use crate::backend_tests;
use crate::common::TestApp;

pub async fn scope_of(store: &SqlStore, slug: &str) -> Scope {
    let org = store.org_by_slug(slug).await.unwrap().expect("org exists");
    Scope {
        org: org.id,
        actor: Actor::Cli,
    }
}

/// Creates `n` users named `{prefix}{i:02}` through the core; returns their ids.
async fn create_users(store: &SqlStore, scope: &Scope, prefix: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let u = resources::create_user(
            store,
            scope,
            json!({"userName": format!("{prefix}{i:02}")})
                .as_object()
                .unwrap(),
            roster::core::model::Provenance::Admin,
        )
        .await
        .unwrap();
        ids.push(u.id);
    }
    ids
}

async fn event_kinds(app: &TestApp) -> Vec<String> {
    let pool = match app.db.location() {
        roster::store::StoreLocation::SqliteDir(d) => {
            sqlx::AnyPool::connect(&format!("sqlite://{}", d.join("roster.db").display()))
                .await
                .unwrap()
        }
        roster::store::StoreLocation::Postgres { url, schema } => sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .after_connect(move |c, _| {
                let s = schema.clone().unwrap_or_default();
                Box::pin(async move {
                    use sqlx::Executor;
                    c.execute(format!("SET search_path TO \"{s}\"").as_str())
                        .await?;
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .unwrap(),
    };
    let rows = sqlx::query("SELECT kind FROM events ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    rows.iter().map(|r| r.get::<String, _>(0)).collect()
}

async fn events_in_the_same_transaction(app: &TestApp) {
    sqlx::any::install_default_drivers();
    let before = event_kinds(app).await.len();
    let store = &app.db.store;
    let scope = scope_of(store, "acme").await;
    let u = resources::create_user(
        store,
        &scope,
        json!({"userName": "ev@example.com"}).as_object().unwrap(),
        roster::core::model::Provenance::Admin,
    )
    .await
    .unwrap();
    // A failing write (uniqueness) leaves no event behind.
    let dup = resources::create_user(
        store,
        &scope,
        json!({"userName": "EV@example.com"}).as_object().unwrap(),
        roster::core::model::Provenance::Admin,
    )
    .await;
    assert!(dup.is_err());
    // A change that fails after the core decided it (version precondition) leaves none either.
    let stale = resources::replace_user(
        store,
        &scope,
        &u.id,
        json!({"userName": "ev@example.com", "active": false})
            .as_object()
            .unwrap(),
        Some(Expect::Version(99)),
    )
    .await;
    assert!(stale.is_err());
    resources::replace_user(
        store,
        &scope,
        &u.id,
        json!({"userName": "ev@example.com", "active": false})
            .as_object()
            .unwrap(),
        Some(Expect::Version(1)),
    )
    .await
    .unwrap();
    resources::delete_user(store, &scope, &u.id, None)
        .await
        .unwrap();
    let kinds = event_kinds(app).await;
    assert_eq!(
        &kinds[before..],
        [
            "user.created",
            "user.updated",
            "user.deactivated",
            "user.deleted"
        ]
    );
}

async fn org_isolation_in_the_store(app: &TestApp) {
    let store = &app.db.store;
    let acme = scope_of(store, "acme").await;
    app.directory_token("globex", false).await;
    let globex = scope_of(store, "globex").await;
    let u = resources::create_user(
        store,
        &acme,
        json!({"userName": "iso@example.com"}).as_object().unwrap(),
        roster::core::model::Provenance::Admin,
    )
    .await
    .unwrap();
    assert!(store.get_user(&globex, &u.id).await.unwrap().is_none());
    assert!(
        !store
            .delete_user(
                &globex,
                &u.id,
                None,
                roster::core::events::EventDraft::new(
                    roster::core::events::EventKind::UserDeleted,
                    &u.id,
                    json!({})
                )
            )
            .await
            .unwrap()
    );
    assert!(store.get_user(&acme, &u.id).await.unwrap().is_some());
    let q = roster::core::query::ListQuery {
        filter: None,
        sort: None,
        start_index: 1,
        count: 10,
    };
    assert_eq!(store.list_users(&globex, &q).await.unwrap().total, 0);
}

async fn membership_is_a_set(app: &TestApp) {
    let store = &app.db.store;
    let scope = scope_of(store, "acme").await;
    let ids = create_users(store, &scope, "s", 50).await;
    let members: Vec<_> = ids.iter().map(|id| json!({"value": id})).collect();
    let g = resources::create_group(
        store,
        &scope,
        json!({"displayName": "all", "members": members})
            .as_object()
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(store.group_members(&scope, &g.id).await.unwrap().len(), 50);
    let u = store.get_user(&scope, &ids[7]).await.unwrap().unwrap();
    assert_eq!(u.groups.len(), 1);
    assert_eq!(u.groups[0].id, g.id);
    assert_eq!(u.groups[0].display, "all");
}

backend_tests!(
    events_in_the_same_transaction,
    org_isolation_in_the_store,
    membership_is_a_set
);

/// Pages found by seeking to a position must be exactly the pages OFFSET finds, whatever
/// was deleted (the first, runs, the last).
async fn position_paging_matches_offset(app: &TestApp) {
    use roster::core::query::{Cond, ListQuery};
    let store = &app.db.store;
    let scope = scope_of(store, "acme").await;
    let ids = create_users(store, &scope, "p", 30).await;
    for i in [0usize, 5, 6, 7, 13, 29] {
        resources::delete_user(store, &scope, &ids[i], None)
            .await
            .unwrap();
    }
    resources::create_user(
        store,
        &scope,
        json!({"userName": "late"}).as_object().unwrap(),
        roster::core::model::Provenance::Admin,
    )
    .await
    .unwrap();
    let seek = |start: u64, count: u64| ListQuery {
        filter: None,
        sort: None,
        start_index: start,
        count,
    };
    let offset = |start: u64, count: u64| ListQuery {
        filter: Some(Cond::Const(true)),
        sort: None,
        start_index: start,
        count,
    };
    let total = store.list_users(&scope, &seek(1, 0)).await.unwrap().total;
    assert_eq!(total, 25);
    assert_eq!(
        store.list_users(&scope, &offset(1, 0)).await.unwrap().total,
        25
    );
    let ids_of = |page: roster::core::query::Page<roster::core::model::User>| -> Vec<String> {
        page.items.into_iter().map(|u| u.id).collect()
    };
    for start in 1..=27 {
        for count in [1, 3, 10] {
            let a = ids_of(store.list_users(&scope, &seek(start, count)).await.unwrap());
            let b = ids_of(
                store
                    .list_users(&scope, &offset(start, count))
                    .await
                    .unwrap(),
            );
            assert_eq!(a, b, "startIndex {start} count {count}");
        }
    }
}

backend_tests!(position_paging_matches_offset);

/// Concurrent writes that share a group commit: failures (duplicates) roll back alone,
/// every success is there with exactly one event, and the counters agree with the rows.
async fn concurrent_writes_with_failures(app: &TestApp) {
    use roster::core::query::{Cond, ListQuery};
    let store = app.db.store.clone();
    let scope = scope_of(&store, "acme").await;
    let before = event_kinds(app).await.len();
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
                roster::core::model::Provenance::Admin,
            )
            .await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(roster::core::error::CoreError::Uniqueness(_)) => {}
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!(ok, 48);
    // Queued writes, some of them failing in the writer's turn, link their audit entries
    // into one unbroken chain.
    {
        use roster::core::store::prelude::*;
        let chains = store.audit_chains().await.unwrap();
        assert!(!chains.is_empty());
        for (chain, anchor) in chains {
            let e = store.audit_entries(&chain, None).await.unwrap();
            roster::core::audit::verify_chain(&chain, anchor.as_ref(), e).expect("intact chain");
        }
    }
    let seek = ListQuery {
        filter: None,
        sort: None,
        start_index: 1,
        count: 100,
    };
    let scan = ListQuery {
        filter: Some(Cond::Const(true)),
        sort: None,
        start_index: 1,
        count: 100,
    };
    let a = store.list_users(&scope, &seek).await.unwrap();
    let b = store.list_users(&scope, &scan).await.unwrap();
    assert_eq!(a.total, 48);
    assert_eq!(b.total, 48);
    assert_eq!(
        a.items.len(),
        48,
        "positions stay dense: the seek page sees every user"
    );
    let kinds = event_kinds(app).await;
    assert_eq!(
        kinds[before..]
            .iter()
            .filter(|k| *k == "user.created")
            .count(),
        48
    );
}

backend_tests!(concurrent_writes_with_failures);

/// A page carries each user exactly as a read by id returns it (attributes, meta,
/// provenance, groups, roles, timestamps), whatever characters the values hold: pages are
/// assembled in SQL, reads by id are not.
async fn pages_match_reads_by_id(app: &TestApp) {
    use roster::core::query::{Cond, ListQuery};
    use roster::core::store::prelude::*;
    let store = &app.db.store;
    let scope = scope_of(store, "acme").await;
    let awkward = "q\"uo\\te \u{1}\n\t€ 😀 </script> ' %";
    // Group names in role mappings may not hold control characters.
    let group_name = "g \"quoted\" \\ € 😀";
    let mapping =
        roster::core::roles::new_mapping(&scope.org, "displayName", group_name, "role \"x\"")
            .unwrap();
    store
        .insert_role_mapping(&mapping, &Actor::Cli)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        let u = resources::create_user(
            store,
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
            roster::core::model::Provenance::Admin,
        )
        .await
        .unwrap();
        ids.push(u.id);
    }
    let members: Vec<_> = ids[..3].iter().map(|id| json!({"value": id})).collect();
    resources::create_group(
        store,
        &scope,
        json!({"displayName": group_name, "members": members})
            .as_object()
            .unwrap(),
    )
    .await
    .unwrap();
    let seek = ListQuery {
        filter: None,
        sort: None,
        start_index: 1,
        count: 10,
    };
    let filtered = ListQuery {
        filter: Some(Cond::Const(true)),
        ..seek.clone()
    };
    for q in [seek, filtered] {
        let page = store.list_users(&scope, &q).await.unwrap();
        assert_eq!(page.total, 5);
        assert_eq!(page.items.len(), 5);
        for (item, id) in page.items.iter().zip(&ids) {
            let one = store.get_user(&scope, id).await.unwrap().expect("user");
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

backend_tests!(pages_match_reads_by_id);

/// The sweep deletes what ended before its cutoff and nothing a live session still needs:
/// an expired code of a live session stays (its replay must still be recognized), a
/// session stays while a token of it is unexpired, and live setup links stay.
async fn sweep_takes_only_what_ended(app: &TestApp) {
    use roster::core::now_plus_secs as at;
    use roster::core::sessions::{NewSession, TokenKind, TokenRow};
    use roster::core::store::SetupLink;
    use roster::core::store::prelude::*;
    let store = &app.db.store;
    let scope = scope_of(store, "acme").await;
    let user = create_users(store, &scope, "swept", 1).await.remove(0);
    let token = |hash: &str, session: &str, kind: TokenKind, expires: i64| TokenRow {
        hash: hash.into(),
        kind,
        session_id: session.into(),
        app_id: "app".into(),
        org_id: scope.org.clone(),
        user_id: user.clone(),
        data: json!({}),
        created_at: at(-7200),
        expires_at: at(expires),
        consumed_at: None,
        revoked_at: None,
    };
    // (session, its expiry, its code's expiry, revoked?)
    let sessions = [
        ("expired", -60, -60, false),
        ("live", 7200, -60, false),
        ("revoked", 7200, -60, true),
        ("expired-with-live-refresh", -60, -60, false),
    ];
    for (id, expires, code_expires, revoked) in sessions {
        let s = NewSession {
            id: id.into(),
            user_id: user.clone(),
            connection_id: "conn".into(),
            app_id: "app".into(),
            expires_at: at(expires),
        };
        let code = token(&format!("code-{id}"), id, TokenKind::Code, code_expires);
        assert!(store.start_session(&scope, &s, &code).await.unwrap());
        if revoked {
            store
                .revoke_session(&scope.org, id, &Actor::Cli, "test")
                .await
                .unwrap();
        }
    }
    // A refresh token outliving its session's expiry, as a session extended by refresh
    // would leave it.
    let pool = crate::lifecycle::raw(&app.db.location()).await;
    sqlx::query(
        "INSERT INTO oauth_tokens (token_hash, kind, session_id, app_id, org_id, user_id, data, \
         created_at, expires_at) VALUES ('refresh-live', 'refresh', 'expired-with-live-refresh', \
         'app', $1, $2, '{}', $3, $4)",
    )
    .bind(scope.org.as_str())
    .bind(&user)
    .bind(at(-7200))
    .bind(at(7200))
    .execute(&pool)
    .await
    .unwrap();
    for (id, expires) in [("old-link", -60), ("live-link", 7200)] {
        let link = SetupLink {
            id: id.into(),
            org_id: scope.org.clone(),
            created_at: at(-7200),
            expires_at: at(expires),
            opened_at: None,
            directory_id: None,
            connection_id: format!("conn-{id}"),
        };
        store
            .insert_setup_link(&link, &format!("hash-{id}"), &Actor::Cli)
            .await
            .unwrap();
    }
    let ids = async |sql: &str| -> Vec<String> {
        let mut v: Vec<String> = sqlx::query(sql)
            .fetch_all(&pool)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<String, _>(0))
            .collect();
        v.sort();
        v
    };
    // Nothing has ended a day before now.
    assert_eq!(store.sweep_ended(&at(-86_400), 100).await.unwrap(), 0);
    // In batches of one row of each kind.
    let mut swept = 0;
    loop {
        let n = store.sweep_ended(&at(0), 1).await.unwrap();
        swept += n;
        if n == 0 {
            break;
        }
    }
    assert_eq!(
        ids("SELECT id FROM sessions").await,
        ["expired-with-live-refresh", "live"]
    );
    assert_eq!(
        ids("SELECT token_hash FROM oauth_tokens").await,
        ["code-live", "refresh-live"]
    );
    assert_eq!(ids("SELECT id FROM setup_links").await, ["live-link"]);
    // Three codes, two sessions, one link.
    assert_eq!(swept, 3 + 2 + 1);
    pool.close().await;
}

backend_tests!(sweep_takes_only_what_ended);
