//! Ordered events without a global lock (PostgreSQL; `docs/design/event-order.md`). Each
//! test runs on a cluster of its own (`pg_cluster`): it holds transactions open, and a
//! transaction held open holds back the sealing of every database of its cluster.
//!
//! - A transaction that appended an event and commits late is never skipped: the feed stops
//!   before it until it commits, then returns it first.
//! - Writes wait for no other write: not for a transaction holding the old global append
//!   lock, nor for one holding the organization's counter row, nor for a stalled sealer.

use std::time::{Duration, Instant};

use roster::core::audit::{self, AuditDraft};
use roster::core::context::Origin;
use roster::core::model::{Actor, Scope};
use roster::core::store::prelude::*;
use roster::core::webhooks::EventRecord;
use serde_json::json;
use sqlx::{Connection, Row};

use crate::common::TestStore;
use crate::pg_cluster::Cluster;
use crate::store::Fx;

/// A connection of the test's own to the store's schema.
async fn raw(fx: &Fx, cluster: &Cluster) -> sqlx::PgConnection {
    let mut c = sqlx::PgConnection::connect(&cluster.url())
        .await
        .expect("connect");
    let schema = fx
        .db
        .schema
        .clone()
        .expect("a PostgreSQL store has a schema");
    sqlx::query(&format!("SET search_path TO \"{schema}\""))
        .execute(&mut c)
        .await
        .expect("search_path");
    c
}

/// A transaction of the test's own, left open with an id: it holds the horizon (nothing
/// committed after it began is sealed until it ends).
async fn hold_horizon(fx: &Fx, cluster: &Cluster) -> sqlx::PgConnection {
    let mut c = raw(fx, cluster).await;
    sqlx::query("BEGIN").execute(&mut c).await.unwrap();
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut c)
        .await
        .unwrap();
    c
}

/// A transaction of the test's own, left open holding user `id`'s row with `lock` (`FOR
/// UPDATE`, `FOR KEY SHARE`), as a running write would.
async fn lock_user(fx: &Fx, cluster: &Cluster, id: &str, lock: &str) -> sqlx::PgConnection {
    let mut c = raw(fx, cluster).await;
    sqlx::query("BEGIN").execute(&mut c).await.unwrap();
    sqlx::query(&format!("SELECT id FROM users WHERE id = $1 {lock}"))
        .bind(id)
        .execute(&mut c)
        .await
        .unwrap();
    c
}

async fn on_own_cluster() -> (Cluster, Fx) {
    let cluster = Cluster::new();
    cluster.start();
    let db = TestStore::postgres_at(&cluster.url()).await;
    (cluster, Fx { db })
}

/// Polls the feed after `after` until it holds `n` events (the background sealer seals
/// what other connections commit).
async fn feed_until(fx: &Fx, after: i64, n: usize) -> Vec<EventRecord> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = fx
            .store()
            .events_after(after, None, 100)
            .await
            .expect("events");
        if got.len() >= n || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Three users created through the core, each within five seconds.
async fn create_promptly(fx: &Fx, scope: &Scope, names: &[String]) {
    for name in names {
        tokio::time::timeout(Duration::from_secs(5), fx.user(scope, name))
            .await
            .unwrap_or_else(|_| panic!("creating {name} waited for another transaction"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_never_skips_an_event_that_commits_late() {
    let (cluster, fx) = on_own_cluster().await;
    let (org, scope) = fx.scope("late").await;
    let last = fx.events().await.last().map_or(0, |e| e.cursor);
    let audit_before = fx.audit_len().await;

    // A writer that commits late: its transaction appends an event and an audit entry as
    // every write does, and stays open.
    let mut late = raw(&fx, &cluster).await;
    sqlx::query("BEGIN").execute(&mut late).await.unwrap();
    sqlx::query(
        "INSERT INTO events (org_id, kind, resource_type, resource_id, actor_kind, actor_id, actor, data, created_at) \
         VALUES ($1, 'user.updated', 'User', 'late', 'cli', 'cli', '{\"type\":\"cli\"}', '{}', '2026-12-03T00:00:00Z')",
    )
    .bind(org.id.as_str())
    .execute(&mut late)
    .await
    .unwrap();
    let draft = AuditDraft::new("user.updated", "User", "late", json!({}));
    let tail = audit::entry_tail(
        "2026-12-03T00:00:00Z",
        &Actor::Cli,
        &Origin::default(),
        &draft,
    );
    sqlx::query(
        "INSERT INTO audit_pending (chain, at, tail) VALUES ($1, '2026-12-03T00:00:00Z', $2)",
    )
    .bind(org.id.as_str())
    .bind(&tail)
    .execute(&mut late)
    .await
    .unwrap();

    // Writes that began after it commit first, without waiting for it.
    let names: Vec<String> = (0..3).map(|i| format!("u{i}@late.example")).collect();
    create_promptly(&fx, &scope, &names).await;

    // The feed stops before the open transaction: none of the later events shows yet,
    // whatever a reader or a seal round does.
    assert!(fx.store().seal_round().await.expect("a seal round"));
    let during = fx
        .store()
        .events_after(last, None, 100)
        .await
        .expect("events");
    assert!(
        during.is_empty(),
        "events past a transaction still open: {:?}",
        during
            .iter()
            .map(|e| (&e.kind, e.cursor))
            .collect::<Vec<_>>()
    );

    sqlx::query("COMMIT").execute(&mut late).await.unwrap();

    // Now everything, the late event first, cursors rising after the last one seen.
    let after = feed_until(&fx, last, 4).await;
    let got: Vec<(&str, &str)> = after
        .iter()
        .map(|e| (e.kind.as_str(), e.resource_id.as_str()))
        .collect();
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(got[0], ("user.updated", "late"));
    assert!(
        got[1..].iter().all(|(k, _)| *k == "user.created"),
        "{got:?}"
    );
    let cursors: Vec<i64> = after.iter().map(|e| e.cursor).collect();
    assert!(
        cursors.windows(2).all(|w| w[0] < w[1]) && cursors[0] > last,
        "cursors {cursors:?} after {last}"
    );

    // The audit chain holds the late entry before the later writes' entries, and verifies.
    let deadline = Instant::now() + Duration::from_secs(10);
    while fx.audit_len().await < audit_before + 4 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let chains = fx.store().audit_chains().await.expect("chains");
    let (chain, anchor) = chains
        .iter()
        .find(|(c, _)| c == org.id.as_str())
        .expect("the organization's chain");
    let entries = fx
        .store()
        .audit_entries(chain, None)
        .await
        .expect("entries");
    let late_at = entries
        .iter()
        .position(|e| e.body.contains("\"id\":\"late\""))
        .expect("the late entry is sealed");
    assert_eq!(late_at, entries.len() - 4, "the late entry comes first");
    assert_eq!(
        audit::verify_chain(chain, anchor.as_ref(), entries.clone()),
        Ok(entries.len() as u64)
    );
    fx.db.cleanup().await;
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_waits_for_no_other_write() {
    let (cluster, fx) = on_own_cluster().await;
    let (org, scope) = fx.scope("busy").await;
    fx.user(&scope, "first@busy.example").await;
    assert!(fx.store().seal_round().await.expect("a seal round"));

    // A transaction that holds what writes used to wait on: the global append lock and the
    // organization's counter row. And one that holds the sealer's lock, as a sealer whose
    // node stalled mid-round would.
    let mut holder = raw(&fx, &cluster).await;
    sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock(125823003944306)")
        .execute(&mut holder)
        .await
        .unwrap();
    let counters =
        sqlx::query("SELECT live FROM org_counters WHERE org_id = $1 AND kind = 'User' FOR UPDATE")
            .bind(org.id.as_str())
            .fetch_all(&mut holder)
            .await
            .unwrap();
    assert_eq!(counters.len(), 1, "the organization's counter row exists");
    let mut sealer = raw(&fx, &cluster).await;
    sqlx::query("BEGIN").execute(&mut sealer).await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock(1936023916, hashtext(current_schema()))")
        .execute(&mut sealer)
        .await
        .unwrap();
    let pid: i32 = sqlx::query("SELECT pg_backend_pid() AS p")
        .fetch_one(&mut sealer)
        .await
        .unwrap()
        .get("p");

    // Sixteen creates in the organization at once: none waits.
    let started = Instant::now();
    let mut writes = Vec::new();
    for i in 0..16 {
        let store = fx.store().clone();
        let scope = scope.clone();
        writes.push(tokio::spawn(async move {
            let attrs = json!({"userName": format!("w{i}@busy.example")});
            roster::core::resources::create_user(
                &store,
                &scope,
                attrs.as_object().expect("object"),
                roster::core::model::Provenance::Admin,
            )
            .await
        }));
    }
    for w in writes {
        tokio::time::timeout(Duration::from_secs(5), w)
            .await
            .expect("a create waited for another transaction")
            .expect("the write's task")
            .expect("the create");
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        !fx.store().seal_round().await.expect("a seal round"),
        "a round ran while another held the seal lock"
    );
    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();

    // The stalled sealer's session ends (its node is gone): sealing goes on where it
    // stopped, and the organization's positions are dense, each user once.
    let mut admin = raw(&fx, &cluster).await;
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .execute(&mut admin)
        .await
        .unwrap();
    drop(sealer);
    let deadline = Instant::now() + Duration::from_secs(10);
    let positions: Vec<Option<i64>> = loop {
        let rows = sqlx::query("SELECT pos FROM users WHERE org_id = $1 ORDER BY pos")
            .bind(org.id.as_str())
            .fetch_all(&mut admin)
            .await
            .unwrap();
        let p: Vec<Option<i64>> = rows.iter().map(|r| r.get("pos")).collect();
        if p.iter().all(Option::is_some) || Instant::now() > deadline {
            break p;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let want: Vec<Option<i64>> = (1..=17).map(Some).collect();
    assert_eq!(positions, want);
    // A page seeks by those positions: the list reads every user once, in creation order.
    let q = roster::core::query::ListQuery {
        filter: None,
        sort: None,
        start_index: 2,
        count: 100,
    };
    let page = fx.store().list_users(&scope, &q).await.expect("a page");
    assert_eq!(page.total, 17);
    assert_eq!(page.items.len(), 16);
    fx.db.cleanup().await;
    drop(cluster);
}

/// A user changed while its position is still to be sealed (created a moment ago, now held
/// locked by a writer) keeps its place: the users created after it wait for it rather than
/// take the positions before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_new_user_keeps_its_place() {
    let (cluster, fx) = on_own_cluster().await;
    let (org, scope) = fx.scope("locked").await;

    // An open transaction with an id holds the horizon: the three creates stay unsealed.
    let mut holder = hold_horizon(&fx, &cluster).await;
    let mut made = Vec::new();
    for i in 0..3 {
        made.push(fx.user(&scope, &format!("m{i}@locked.example")).await);
    }
    // A writer holds the middle one, as a change to it would.
    let mut writer = lock_user(&fx, &cluster, &made[1], "FOR UPDATE").await;
    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    assert!(fx.store().seal_round().await.expect("a seal round"));
    sqlx::query("COMMIT").execute(&mut writer).await.unwrap();

    let mut admin = raw(&fx, &cluster).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let order: Vec<(String, Option<i64>)> = loop {
        let rows = sqlx::query("SELECT id, pos FROM users WHERE org_id = $1 ORDER BY pos, id")
            .bind(org.id.as_str())
            .fetch_all(&mut admin)
            .await
            .unwrap();
        let got: Vec<(String, Option<i64>)> =
            rows.iter().map(|r| (r.get("id"), r.get("pos"))).collect();
        if got.iter().all(|(_, p)| p.is_some()) || Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let want: Vec<(String, Option<i64>)> = made
        .iter()
        .enumerate()
        .map(|(i, id)| (id.clone(), Some(i as i64 + 1)))
        .collect();
    assert_eq!(order, want, "positions in creation order");
    fx.db.cleanup().await;
    drop(cluster);
}

/// A read that follows this node's own create lists it even while another write holds the
/// new user (a change to it locks its row; here the weakest row lock, which the sealer's
/// `FOR UPDATE SKIP LOCKED` passes all the same): the seal round that has to
/// leave it unpositioned does not count as having sealed it, and the read waits for the
/// round that positions it (once a round that skipped it marked it sealed, and the list
/// went on without it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_after_a_create_waits_for_a_held_user() {
    let (cluster, fx) = on_own_cluster().await;
    let (_, scope) = fx.scope("held").await;

    let mut holder = hold_horizon(&fx, &cluster).await;
    let id = fx.user(&scope, "held@held.example").await;
    let mut writer = lock_user(&fx, &cluster, &id, "FOR KEY SHARE").await;
    // The horizon moves past the create; the writer still holds the user.
    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        sqlx::query("COMMIT").execute(&mut writer).await.unwrap();
    });
    let page = fx
        .store()
        .list_users(
            &scope,
            &roster::core::query::ListQuery {
                filter: None,
                sort: None,
                start_index: 1,
                count: 10,
            },
        )
        .await
        .expect("list");
    let ids: Vec<&str> = page.items.iter().map(|u| u.id.as_str()).collect();
    assert_eq!(ids, [id.as_str()], "the new user is listed");
    assert_eq!(page.total, 1);
    release.await.unwrap();
    fx.db.cleanup().await;
    drop(cluster);
}

/// What a held horizon keeps unsealed shows in the backlog (`/metrics` reads it): counted,
/// with the age of the oldest; empty again once sealing catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backlog_shows_what_waits_to_be_sealed() {
    let (cluster, fx) = on_own_cluster().await;
    let (_, scope) = fx.scope("backlog").await;
    fx.user(&scope, "before@backlog.example").await;
    assert!(fx.store().seal_round().await.expect("a seal round"));
    let empty = fx.store().seal_backlog().await.expect("backlog");
    assert_eq!(empty, Some(roster::store::SealBacklog::default()));

    let mut holder = hold_horizon(&fx, &cluster).await;
    for i in 0..2 {
        fx.user(&scope, &format!("held{i}@backlog.example")).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(fx.store().seal_round().await.expect("a seal round"));
    let held = fx
        .store()
        .seal_backlog()
        .await
        .expect("backlog")
        .expect("PostgreSQL has one");
    assert_eq!((held.events, held.audit_entries), (2, 2), "{held:?}");
    let age = roster::core::secs_since(held.oldest.as_deref().expect("the oldest"))
        .expect("a stored time");
    assert!((0.25..30.0).contains(&age), "{age}");

    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let b = fx.store().seal_backlog().await.expect("backlog");
        if b == Some(roster::store::SealBacklog::default()) {
            break;
        }
        assert!(Instant::now() < deadline, "still unsealed: {b:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fx.db.cleanup().await;
    drop(cluster);
}
