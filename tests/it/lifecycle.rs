//! Lifecycle events end to end: exact events in the change's transaction, the event feed
//! with long-poll, signed webhooks (retries, failure, restart, three nodes), the audit chain,
//! group-to-role mappings and the drift report — each on SQLite and PostgreSQL.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use hmac::{Hmac, Mac};
use reqwest::Method;
use roster::core::audit;
use roster::core::model::Actor;
use roster::core::store::prelude::*;
use roster::http::Server;
use roster::store::{SqlStore, StoreLocation};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::backend_tests;
use crate::common::{Backend, TestApp, TestStore, patch_op};

/// A raw connection to the test's database, for fault injection and inspection.
pub(crate) async fn raw(loc: &StoreLocation) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    match loc {
        StoreLocation::SqliteDir(d) => {
            sqlx::AnyPool::connect(&format!("sqlite://{}", d.join("roster.db").display()))
                .await
                .unwrap()
        }
        StoreLocation::Postgres { url, schema } => {
            let s = schema.clone().unwrap_or_default();
            sqlx::any::AnyPoolOptions::new()
                .max_connections(1)
                .after_connect(move |c, _| {
                    let s = s.clone();
                    Box::pin(async move {
                        use sqlx::Executor;
                        c.execute(format!("SET search_path TO \"{s}\"").as_str())
                            .await?;
                        Ok(())
                    })
                })
                .connect(url)
                .await
                .unwrap()
        }
    }
}

/// Polls `probe` until it gives `Some`, for at most `within`; fails the test naming `what`.
async fn eventually<T>(
    within: Duration,
    what: &str,
    mut probe: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn is_pg(loc: &StoreLocation) -> bool {
    matches!(loc, StoreLocation::Postgres { .. })
}

async fn feed(app: &TestApp, key: &str, query: &str) -> Value {
    app.call_with(
        key,
        Method::GET,
        &format!("{}/api/v1/events?{query}", app.base()),
        None,
        &[],
    )
    .await
    .expect(200)
    .body
}

fn kinds_of(page: &Value) -> Vec<String> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

async fn group_with(app: &TestApp, name: &str, members: &[&str]) -> String {
    let m: Vec<Value> = members.iter().map(|id| json!({"value": id})).collect();
    app.post(
        "/Groups",
        &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": name, "members": m}),
    )
    .await
    .expect(201)
    .id()
}

/// Membership events name exactly the memberships that changed, whichever way the client
/// phrased the change; the feed shows them in order with their actor and request.
async fn membership_events_are_exact(app: &TestApp) {
    let key = crate::common::admin_key(&app.db.store, None, false).await;
    let a = app.user("a@x.com").await;
    let b = app.user("b@x.com").await;
    let c = app.user("c@x.com").await;
    let g = group_with(app, "Team", &[&a, &b]).await;
    let start = feed(app, &key, "limit=1000").await["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    // PUT keeps b: only a leaves and c joins.
    app.put(
        &format!("/Groups/{g}"),
        &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Team",
                "members": [{"value": b}, {"value": c}]}),
    )
    .await
    .expect(200);
    // Adding a present member changes nothing; Entra's remove-by-value removes only c.
    app.patch(
        &format!("/Groups/{g}"),
        &patch_op(json!([{"op": "Add", "path": "members", "value": [{"value": b}]}])),
    )
    .await;
    app.patch(
        &format!("/Groups/{g}"),
        &patch_op(json!([{"op": "Remove", "path": "members", "value": [{"value": c}]}])),
    )
    .await;
    let page = feed(app, &key, &format!("after={start}")).await;
    let member_events: Vec<(String, String)> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"].as_str().unwrap().starts_with("group.member"))
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_owned(),
                e["data"]["member_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        member_events,
        [
            ("group.member_removed".to_owned(), a.clone()),
            ("group.member_added".to_owned(), c.clone()),
            ("group.member_removed".to_owned(), c.clone()),
        ]
    );
    let ev = &page["events"][0];
    assert_eq!(ev["actor"]["type"], "directory");
    assert!(ev["actor"]["token_id"].is_string() && ev["actor"]["directory_id"].is_string());
    assert!(ev["request_id"].is_string());
    let cursors: Vec<i64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["cursor"].as_i64().unwrap())
        .collect();
    assert!(cursors.windows(2).all(|w| w[0] < w[1]), "{cursors:?}");

    // Deleting a member user removes it from the group with an event; deactivation revokes.
    app.patch(
        &format!("/Users/{b}"),
        &patch_op(json!([{"op": "replace", "value": {"active": false}}])),
    )
    .await
    .expect(200);
    app.delete(&format!("/Users/{b}")).await.expect(204);
    let tail = feed(
        app,
        &key,
        &format!("after={}", page["next_cursor"].as_str().unwrap()),
    )
    .await;
    let updated = &tail["events"][0];
    assert_eq!(updated["type"], "user.updated");
    assert_eq!(updated["data"]["changes"]["active"]["before"], Value::Null);
    assert_eq!(updated["data"]["changes"]["active"]["after"], false);
    assert_eq!(
        kinds_of(&tail),
        [
            "user.updated",
            "user.deactivated",
            "user.deleted",
            "group.member_removed"
        ]
    );
}

/// A write that fails halfway leaves neither its change nor its events (and the reverse).
async fn failed_transactions_leave_nothing(app: &TestApp) {
    let loc = app.db.location();
    let pool = raw(&loc).await;
    let u = app.user("f@x.com").await;
    let g = group_with(app, "Fail", &[]).await;
    let count = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            let r: i64 = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
            r
        }
    };
    let events_before = count("SELECT COUNT(*) FROM events").await;
    // 1. The events insert fails after the membership row was written.
    let (install, remove) = if is_pg(&loc) {
        (
            vec![
                "CREATE FUNCTION fail_ev() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected'; END $$",
                "CREATE TRIGGER fail_ev BEFORE INSERT ON events FOR EACH ROW WHEN (NEW.kind = 'user.updated') EXECUTE FUNCTION fail_ev()",
                "CREATE TRIGGER fail_gm BEFORE INSERT ON group_members FOR EACH ROW EXECUTE FUNCTION fail_ev()",
            ],
            vec![
                "DROP TRIGGER fail_ev ON events",
                "DROP TRIGGER fail_gm ON group_members",
            ],
        )
    } else {
        (
            vec![
                "CREATE TRIGGER fail_ev BEFORE INSERT ON events WHEN NEW.kind = 'user.updated' BEGIN SELECT RAISE(ABORT, 'injected'); END",
                "CREATE TRIGGER fail_gm BEFORE INSERT ON group_members BEGIN SELECT RAISE(ABORT, 'injected'); END",
            ],
            vec!["DROP TRIGGER fail_ev", "DROP TRIGGER fail_gm"],
        )
    };
    for s in &install {
        sqlx::query(s).execute(&pool).await.unwrap();
    }
    // The user update runs its UPDATE first, then its events: the event insert fails.
    let r = app
        .patch(
            &format!("/Users/{u}"),
            &patch_op(json!([{"op": "replace", "path": "displayName", "value": "Changed"}])),
        )
        .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    // The membership insert fails after its event row was written.
    let r = app
        .patch(
            &format!("/Groups/{g}"),
            &patch_op(json!([{"op": "add", "path": "members", "value": [{"value": u}]}])),
        )
        .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    for s in &remove {
        sqlx::query(s).execute(&pool).await.unwrap();
    }
    assert_eq!(count("SELECT COUNT(*) FROM events").await, events_before);
    assert_eq!(count("SELECT COUNT(*) FROM group_members").await, 0);
    let user = app.get(&format!("/Users/{u}")).await.expect(200);
    assert!(user.body.get("displayName").is_none(), "{}", user.body);
    assert_eq!(user.body["meta"]["version"], "W/\"1\"");
    pool.close().await;
}

/// The feed answers at once when events exist and holds an empty page until one arrives;
/// a key scoped to one organization sees only that organization.
async fn feed_long_polls_and_scopes(app: &TestApp) {
    let key = crate::common::admin_key(&app.db.store, None, false).await;
    app.directory_token("other", false).await;
    let other_key = crate::common::admin_key(&app.db.store, Some("other"), false).await;
    app.user("lp@x.com").await;
    let now = feed(app, &key, "org=acme&limit=1000").await;
    let cursor = now["next_cursor"].as_str().unwrap().to_owned();
    let other = feed(app, &other_key, "limit=1000").await;
    assert!(kinds_of(&other).iter().all(|k| !k.starts_with("user.")));
    app.call_with(
        &other_key,
        Method::GET,
        &format!("{}/api/v1/events?org=acme", app.base()),
        None,
        &[],
    )
    .await
    .expect(404);
    app.call_with(
        "rak_wrong",
        Method::GET,
        &format!("{}/api/v1/events", app.base()),
        None,
        &[],
    )
    .await
    .expect(401);

    let started = Instant::now();
    let poll = {
        let client = app.client.clone();
        let url = format!(
            "{}/api/v1/events?org=acme&after={cursor}&wait=20s",
            app.base()
        );
        let key = key.clone();
        tokio::spawn(async move {
            client
                .get(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    app.user("late@x.com").await;
    let page = poll.await.unwrap();
    let waited = started.elapsed();
    assert_eq!(kinds_of(&page), ["user.created"]);
    assert!(waited >= Duration::from_millis(400) && waited < Duration::from_secs(10));
    // Nothing new: the wait runs out and an empty page comes back with the same cursor.
    let next = page["next_cursor"].as_str().unwrap().to_owned();
    let empty = feed(app, &key, &format!("org=acme&after={next}&wait=300ms")).await;
    assert_eq!(empty["events"], json!([]));
    assert_eq!(empty["next_cursor"], next);
}

/// The body of the newest audit entry of the test organization.
async fn last_audit_entry(app: &TestApp) -> Value {
    let store = &app.db.store;
    let org = store.org_by_slug("acme").await.unwrap().unwrap();
    let entries = store.audit_entries(org.id.as_str(), None).await.unwrap();
    serde_json::from_str(&entries.last().unwrap().body).unwrap()
}

/// A membership removal by filter is audited as the filter the IdP sent, in SCIM's own
/// syntax (values of case-insensitive attributes folded, as compared), not as the server's
/// internal form of it.
async fn audit_shows_a_removal_filter_as_scim_text(app: &TestApp) {
    let u = app.user("rw@x.com").await;
    let g = app
        .post(
            "/Groups",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "displayName": "rw", "members": [{"value": u}]}),
        )
        .await
        .expect(201)
        .id();
    let r = app.patch(
        &format!("/Groups/{g}"),
        &patch_op(json!([{"op": "remove",
                          "path": format!("members[value eq \"{u}\" and not (type eq \"Group\")]")}])),
    )
    .await;
    assert!(r.status.is_success(), "{:?} {}", r.status, r.body);
    let last = last_audit_entry(app).await;
    assert_eq!(last["action"], "group.updated");
    assert_eq!(
        last["changes"]["members"],
        json!([{"remove_where": format!("value eq \"{u}\" and not (type eq \"group\")")}])
    );
}

/// Every provisioning action leaves one chained audit entry with actor, before/after,
/// request id and source address; an edit anywhere is found.
async fn audit_chain_verifies_and_detects_tampering(app: &TestApp) {
    let u = app.user("au@x.com").await;
    app.patch(
        &format!("/Users/{u}"),
        &patch_op(json!([{"op": "replace", "path": "title", "value": "CTO"}])),
    )
    .await
    .expect(200);
    let store = &app.db.store;
    let org = store.org_by_slug("acme").await.unwrap().unwrap();
    let last = last_audit_entry(app).await;
    assert_eq!(last["action"], "user.updated");
    assert_eq!(
        last["changes"]["title"],
        json!({"before": null, "after": "CTO"})
    );
    assert_eq!(last["actor"]["type"], "directory");
    assert_eq!(last["source_ip"], "127.0.0.1");
    assert!(last["request_id"].is_string());
    for (chain, anchor) in store.audit_chains().await.unwrap() {
        let e = store.audit_entries(&chain, None).await.unwrap();
        audit::verify_chain(&chain, anchor.as_ref(), e).expect("intact chain");
    }
    // Retention: everything so far is pruned; the chain goes on from its anchor.
    let through = store
        .prune_audit(org.id.as_str(), &roster::core::now_plus_secs(1))
        .await
        .unwrap();
    assert!(through >= 2);
    assert!(
        store
            .audit_entries(org.id.as_str(), None)
            .await
            .unwrap()
            .len()
            <= 1
    );
    app.patch(
        &format!("/Users/{u}"),
        &patch_op(json!([{"op": "replace", "path": "title", "value": "CTO"}])),
    )
    .await
    .expect(200);
    let patched = app
        .patch(
            &format!("/Users/{u}"),
            &patch_op(json!([{"op": "replace", "path": "title", "value": "CFO"}])),
        )
        .await
        .expect(200);
    assert_eq!(patched.body["title"], "CFO");
    let chains = store.audit_chains().await.unwrap();
    let (_, anchor) = chains.iter().find(|(c, _)| c == org.id.as_str()).unwrap();
    assert!(anchor.is_some());
    let entries = store.audit_entries(org.id.as_str(), None).await.unwrap();
    audit::verify_chain(org.id.as_str(), anchor.as_ref(), entries.clone())
        .expect("verifies from its anchor");
    assert!(audit::verify_chain(org.id.as_str(), None, entries.clone()).is_err());
    // The table refuses updates; someone with raw access drops the guard and edits.
    let loc = app.db.location();
    let pool = raw(&loc).await;
    let upd =
        "UPDATE audit_log SET body = REPLACE(body, 'CTO', 'CEO') WHERE chain = $1 AND seq = $2";
    let seq = entries.last().unwrap().seq;
    assert!(
        sqlx::query(upd)
            .bind(org.id.as_str())
            .bind(seq)
            .execute(&pool)
            .await
            .is_err()
    );
    let drop = if is_pg(&loc) {
        "DROP TRIGGER audit_log_append_only ON audit_log"
    } else {
        "DROP TRIGGER audit_log_append_only"
    };
    sqlx::query(drop).execute(&pool).await.unwrap();
    sqlx::query(upd)
        .bind(org.id.as_str())
        .bind(seq)
        .execute(&pool)
        .await
        .unwrap();
    let e = store.audit_entries(org.id.as_str(), None).await.unwrap();
    let broken = audit::verify_chain(org.id.as_str(), anchor.as_ref(), e).unwrap_err();
    assert_eq!(broken.seq, seq);
    pool.close().await;
}

async fn roles_of(app: &TestApp, key: &str, user: &str) -> Vec<String> {
    let r = app
        .call_with(
            key,
            Method::GET,
            &format!("{}/api/v1/orgs/acme/users/{user}/roles", app.base()),
            None,
            &[],
        )
        .await
        .expect(200);
    serde_json::from_value(r.body["roles"].clone()).unwrap()
}

/// Group membership drives roles through mappings; a role stays while any group grants it;
/// renames move it; roles show in SCIM and the admin API, with role.* events.
async fn group_membership_drives_roles(app: &TestApp) {
    let key = crate::common::admin_key(&app.db.store, None, false).await;
    let u = app.user("r@x.com").await;
    let eng = group_with(app, "Engineering", &[]).await;
    let ops = group_with(app, "ops-team", &[&u]).await;
    let map =
        |group: &str, role: &str, on: &str| json!({"group": group, "role": role, "match_on": on});
    let url = format!("{}/api/v1/orgs/acme/role-mappings", app.base());
    app.call_with(
        &key,
        Method::POST,
        &url,
        Some(&map("engineering", "developer", "displayName")),
        &[],
    )
    .await
    .expect(201);
    app.call_with(
        &key,
        Method::POST,
        &url,
        Some(&map("OPS-TEAM", "developer", "displayName")),
        &[],
    )
    .await
    .expect(201);
    // The existing ops-team member got the role when the mapping appeared.
    assert_eq!(roles_of(app, &key, &u).await, ["developer"]);
    let start = feed(app, &key, "limit=1000").await["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    app.patch(
        &format!("/Groups/{eng}"),
        &patch_op(json!([{"op": "add", "path": "members", "value": [{"value": u}]}])),
    )
    .await;
    // Leaving one of two granting groups keeps the role: no event.
    app.patch(
        &format!("/Groups/{ops}"),
        &patch_op(json!([{"op": "remove", "path": format!("members[value eq \"{u}\"]")}])),
    )
    .await;
    assert_eq!(roles_of(app, &key, &u).await, ["developer"]);
    let scim_user = app.get(&format!("/Users/{u}")).await.expect(200).body;
    assert_eq!(
        scim_user["roles"],
        json!([{"value": "developer", "display": "developer", "type": "mapped"}])
    );
    // Renaming the last granting group takes the role away.
    app.patch(
        &format!("/Groups/{eng}"),
        &patch_op(json!([{"op": "replace", "path": "displayName", "value": "Eng (old)"}])),
    )
    .await;
    assert!(roles_of(app, &key, &u).await.is_empty());
    let page = feed(app, &key, &format!("after={start}")).await;
    let role_events: Vec<String> = kinds_of(&page)
        .into_iter()
        .filter(|k| k.starts_with("role."))
        .collect();
    assert_eq!(role_events, ["role.unassigned"]);
    assert!(
        app.get(&format!("/Users/{u}"))
            .await
            .body
            .get("roles")
            .is_none()
    );
}

/// The drift report lists JIT users the directory never saw, keeps the deprovisioning
/// invariant at zero and shows directory traffic by client.
async fn drift_report_and_traffic(app: &TestApp) {
    let key = crate::common::admin_key(&app.db.store, None, false).await;
    let store = &app.db.store;
    let org = store.org_by_slug("acme").await.unwrap().unwrap();
    let scope = roster::core::model::Scope {
        org: org.id.clone(),
        actor: Actor::Connection {
            connection_id: "c1".into(),
        },
    };
    roster::core::resources::create_user(
        store,
        &scope,
        json!({"userName": "jit@x.com"}).as_object().unwrap(),
        roster::core::model::Provenance::Jit,
    )
    .await
    .unwrap();
    let u = app.user("dir@x.com").await;
    app.call_with(
        &app.token,
        Method::PATCH,
        &format!("/Users/{u}"),
        Some(&patch_op(
            json!([{"op": "replace", "value": {"active": false}}]),
        )),
        &[("user-agent", "Okta SCIM Client 1.0")],
    )
    .await
    .expect(200);
    app.call_with(
        &app.token,
        Method::GET,
        "/Users/nope",
        None,
        &[("user-agent", "Okta SCIM Client 1.0")],
    )
    .await
    .expect(404);
    // Traffic reaches the store within the flush interval (5 s).
    let okta_of = |r: &Value| {
        r["directories"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|d| d["by_client"].as_array().unwrap().clone())
            .find(|c| c["user_agent"] == "Okta SCIM Client 1.0")
    };
    let report = eventually(
        Duration::from_secs(15),
        "Okta traffic in the report",
        async || {
            let r = app
                .call_with(
                    &key,
                    Method::GET,
                    &format!("{}/api/v1/orgs/acme/report/drift", app.base()),
                    None,
                    &[],
                )
                .await
                .expect(200)
                .body;
            okta_of(&r).is_some().then_some(r)
        },
    )
    .await;
    assert_eq!(report["jit_never_synced"]["count"], 1);
    assert_eq!(
        report["jit_never_synced"]["users"][0]["user_name"],
        "jit@x.com"
    );
    assert_eq!(report["deactivated_with_live_access"]["count"], 0);
    let okta = okta_of(&report).expect("Okta traffic recorded");
    assert_eq!(okta["requests"], 2);
    assert_eq!(okta["errors"], 1);
    // The deactivation was measured.
    let metrics = app
        .client
        .get(format!("{}/metrics", app.base()))
        .send()
        .await
        .unwrap();
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains("roster_deprovision_revoke_seconds_count"),
        "{text}"
    );
    // Requests by route (ids hidden) and SCIM operations by directory.
    assert!(
        text.contains(
            r#"roster_http_requests_total{method="PATCH",route="/scim/v2/Users/{id}",status="200"}"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"method="GET",status="4xx"}"#)
            && text.contains("roster_scim_operations_total{directory=\""),
        "{text}"
    );
}

backend_tests!(
    membership_events_are_exact,
    failed_transactions_leave_nothing,
    feed_long_polls_and_scopes,
    audit_chain_verifies_and_detects_tampering,
    audit_shows_a_removal_filter_as_scim_text,
    group_membership_drives_roles,
    drift_report_and_traffic,
);

// ---- webhooks -------------------------------------------------------------------------

/// A webhook receiver: verifies Standard Webhooks signatures, records message ids in arrival
/// order, and answers per `plan` (status codes, consumed front to back; then 200).
#[derive(Clone)]
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<(String, Value)>>>,
    plan: Arc<Mutex<Vec<u16>>>,
}

fn verify_signature(secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.", h("webhook-id"), h("webhook-timestamp")).as_bytes());
    mac.update(body);
    let want = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let ts: i64 = h("webhook-timestamp").parse().unwrap_or(0);
    let fresh = (time::OffsetDateTime::now_utc().unix_timestamp() - ts).abs() < 300;
    fresh
        && h("webhook-signature")
            .split(' ')
            .any(|s| s.strip_prefix("v1,") == Some(want.as_str()))
}

impl Receiver {
    async fn start(secret: Arc<Mutex<String>>, delay: Duration) -> Receiver {
        let got: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
        let plan: Arc<Mutex<Vec<u16>>> = Arc::default();
        let (g, p) = (got.clone(), plan.clone());
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let (g, p, secret) = (g.clone(), p.clone(), secret.clone());
                async move {
                    tokio::time::sleep(delay).await;
                    let s = secret.lock().unwrap().clone();
                    assert!(verify_signature(&s, &headers, &body), "bad signature");
                    let status = {
                        let mut p = p.lock().unwrap();
                        if p.is_empty() { 200 } else { p.remove(0) }
                    };
                    if status == 200 {
                        let id = headers["webhook-id"].to_str().unwrap().to_owned();
                        g.lock()
                            .unwrap()
                            .push((id, serde_json::from_slice(&body).unwrap()));
                    }
                    StatusCode::from_u16(status).unwrap()
                }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(l, app).await });
        Receiver { url, got, plan }
    }

    fn ids(&self) -> Vec<i64> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|(id, _)| id.trim_start_matches("evt_").parse().unwrap())
            .collect()
    }

    async fn wait_for(&self, n: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.got.lock().unwrap().len() < n {
            assert!(
                Instant::now() < deadline,
                "only {} of {n} deliveries arrived",
                self.got.lock().unwrap().len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn add_webhook(
    store: &SqlStore,
    master: &roster::core::secrets::MasterKey,
    org: &str,
    url: &str,
    events: &str,
) -> (String, String) {
    let org = store.org_by_slug(org).await.unwrap().unwrap();
    // The operator's endpoint (as the CLI makes it): private networks allowed.
    let (ep, secret) =
        roster::core::webhooks::new_endpoint(master, Some(&org.id), url, events, true).unwrap();
    let id = ep.id.clone();
    store.insert_webhook(&ep, &Actor::Cli).await.unwrap();
    (id, secret)
}

/// A node: a server on `db` with a short retry schedule; returns its URL and a kill switch.
async fn node(db: &TestStore, schedule: &str) -> (String, tokio::task::JoinHandle<()>) {
    let server = Server::bind("127.0.0.1:0", db.store.clone(), None, db.master_key())
        .await
        .unwrap()
        .webhook_schedule_ms(roster::delivery::parse_schedule(schedule).unwrap())
        // A killed node's endpoints resume after this.
        .webhook_lease(Duration::from_secs(2));
    let url = format!("http://{}", server.local_addr().unwrap());
    let h = tokio::spawn(async move {
        let _ = server.run(std::future::pending()).await;
    });
    (url, h)
}

async fn scim_token(db: &TestStore) -> String {
    let s = &db.store;
    let org = roster::core::orgs::create_org(
        s,
        &roster::core::orgs::OrgSlug::parse("acme").unwrap(),
        None,
        &Actor::Cli,
    )
    .await
    .unwrap();
    roster::core::orgs::create_directory(s, &org, None, false, &Actor::Cli)
        .await
        .unwrap()
        .2
}

async fn create_users(base: &str, token: &str, prefix: &str, n: usize) {
    created_users(base, token, prefix, n).await;
}

fn strictly_increasing(ids: &[i64]) -> bool {
    ids.windows(2).all(|w| w[0] < w[1])
}

/// Signed deliveries in order; failures retried with backoff, later events waiting; after
/// the last retry the delivery is marked failed and visible, and the endpoint moves on.
async fn webhooks_retry_then_fail(backend: Backend) {
    let db = TestStore::new(backend).await;
    let token = scim_token(&db).await;
    let secret = Arc::new(Mutex::new(String::new()));
    let rx = Receiver::start(secret.clone(), Duration::ZERO).await;
    let (ep, s) = add_webhook(&db.store, &db.master_key(), "acme", &rx.url, "user.*").await;
    *secret.lock().unwrap() = s;
    // Two failures, then success on the third attempt of the first event.
    rx.plan.lock().unwrap().extend([500, 503]);
    let (base, h) = node(&db, "100ms,200ms").await;
    create_users(&base, &token, "w", 3).await;
    rx.wait_for(3, Duration::from_secs(20)).await;
    let ids = rx.ids();
    assert!(strictly_increasing(&ids), "{ids:?}");
    let got = rx.got.lock().unwrap().clone();
    assert_eq!(got[0].1["type"], "user.created");
    assert_eq!(got[0].1["data"]["data"]["userName"], "w0@x.com");
    // Outcomes are settled right after the deliveries.
    let d0 = eventually(
        Duration::from_secs(10),
        "first delivery settled",
        async || {
            let all = db.store.deliveries(&ep, None, 10).await.unwrap();
            all.into_iter()
                .find(|d| d.event_id == ids[0] && d.status == "delivered")
        },
    )
    .await;
    assert_eq!(d0.attempts, 3);
    // Now every attempt of the next event fails: 1 + 2 retries, then `failed`, then on.
    rx.plan.lock().unwrap().extend([500, 500, 500]);
    create_users(&base, &token, "x", 2).await;
    rx.wait_for(4, Duration::from_secs(20)).await;
    // The outcome is settled right after the next delivery.
    let failed = eventually(
        Duration::from_secs(10),
        "failed delivery recorded",
        async || {
            let f = db.store.deliveries(&ep, Some("failed"), 10).await.unwrap();
            (!f.is_empty()).then_some(f)
        },
    )
    .await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].attempts, 3);
    assert!(failed[0].last_error.as_deref().unwrap().contains("500"));
    let got = rx.got.lock().unwrap().clone();
    assert_eq!(got[3].1["data"]["data"]["userName"], "x1@x.com");
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(&format!(
            "roster_webhook_failed_deliveries{{endpoint=\"{ep}\"}} 1"
        )),
        "{metrics}"
    );
    assert!(metrics.contains(&format!(
        "roster_webhook_backlog_events{{endpoint=\"{ep}\"}}"
    )));
    // The operator resends the failed event: delivered now, the same webhook-id again.
    let dispatcher = roster::delivery::Dispatcher::new(
        db.store.clone(),
        db.master_key(),
        roster::delivery::default_schedule_ms(),
        roster::delivery::DEFAULT_LEASE,
    )
    .unwrap();
    let resent = dispatcher
        .resend(&ep, failed[0].event_id, &Actor::Cli)
        .await
        .unwrap();
    assert_eq!(resent.status, "delivered");
    let last = rx.got.lock().unwrap().last().unwrap().0.clone();
    assert_eq!(last, format!("evt_{}", failed[0].event_id));
    let d = db.store.deliveries(&ep, None, 10).await.unwrap();
    let again = d.iter().find(|d| d.event_id == failed[0].event_id).unwrap();
    assert_eq!((again.status.as_str(), again.attempts), ("delivered", 4));
    h.abort();
    db.cleanup().await;
}

/// Killing the server mid-delivery loses nothing and reorders nothing; a restart resumes
/// from the last settled cursor (a resent event keeps its webhook-id).
async fn webhooks_survive_a_restart(backend: Backend) {
    let db = TestStore::new(backend).await;
    let token = scim_token(&db).await;
    let secret = Arc::new(Mutex::new(String::new()));
    let rx = Receiver::start(secret.clone(), Duration::from_millis(100)).await;
    let (_, s) = add_webhook(&db.store, &db.master_key(), "acme", &rx.url, "*").await;
    *secret.lock().unwrap() = s;
    let (base, h) = node(&db, "100ms").await;
    create_users(&base, &token, "k", 20).await;
    rx.wait_for(3, Duration::from_secs(20)).await;
    h.abort();
    let _ = h.await;
    let at_kill = rx.got.lock().unwrap().len();
    assert!(at_kill < 20, "the kill came too late to test anything");
    let before_kill: Vec<i64> = rx.ids();
    let settled = db.store.list_webhooks(None).await.unwrap()[0].cursor;
    let (_, h2) = node(&db, "100ms").await;
    let all = eventually(
        Duration::from_secs(30),
        "every event after the restart",
        async || {
            let mut seen = Vec::new();
            for id in rx.ids() {
                if !seen.contains(&id) {
                    seen.push(id);
                }
            }
            (seen.len() >= 20).then_some(seen)
        },
    )
    .await;
    // Nothing lost, nothing reordered: in order of first arrival, every event once.
    assert_eq!(all.len(), 20, "{all:?}");
    assert!(strictly_increasing(&all), "{all:?}");
    // At-least-once: only events delivered before the kill but not yet settled come again
    // (same webhook-id), and nothing settled does.
    let ids = rx.ids();
    let again: Vec<i64> = ids[before_kill.len()..]
        .iter()
        .copied()
        .filter(|id| before_kill.contains(id))
        .collect();
    assert!(
        again.iter().all(|id| *id > settled),
        "events settled before the kill (through {settled}) were resent: {ids:?}"
    );
    h2.abort();
    db.cleanup().await;
}

/// Declares each test once per backend, for tests that start their own nodes: each is a
/// function of the backend.
macro_rules! per_backend {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(crate::common::Backend::Sqlite).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name(crate::common::Backend::Postgres).await;
                }
            }
        )*
    };
}

per_backend!(webhooks_retry_then_fail, webhooks_survive_a_restart);

/// POSTs `n` users to the node at `base`; their ids, in creation order.
async fn created_users(base: &str, token: &str, prefix: &str, n: usize) -> Vec<String> {
    let c = reqwest::Client::new();
    let mut ids = Vec::new();
    for i in 0..n {
        let r = c
            .post(format!("{base}/scim/v2/Users"))
            .bearer_auth(token)
            .header("content-type", "application/scim+json")
            .body(json!({"userName": format!("{prefix}{i}@x.com")}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let body: Value = r.json().await.unwrap();
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    ids
}

/// Sends one SCIM PATCH to the node at `base`; it must succeed (200 or 204).
async fn patch_at(base: &str, token: &str, path: &str, ops: Value) {
    let r = reqwest::Client::new()
        .patch(format!("{base}/scim/v2{path}"))
        .bearer_auth(token)
        .header("content-type", "application/scim+json")
        .body(patch_op(ops).to_string())
        .send()
        .await
        .unwrap();
    let status = r.status();
    assert!(
        status.is_success(),
        "PATCH {path}: {status} {}",
        r.text().await.unwrap()
    );
}

/// The organization's whole feed as one node serves it: (event id, type), in feed order.
async fn feed_at(base: &str, key: &str) -> Vec<(i64, String)> {
    let page: Value = reqwest::Client::new()
        .get(format!("{base}/api/v1/events?limit=1000"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let id = e["id"].as_str().unwrap().trim_start_matches("evt_");
            (id.parse().unwrap(), e["type"].as_str().unwrap().to_owned())
        })
        .collect()
}

const NODES: usize = 3;
const USERS_PER_NODE: usize = 15;
const DEACTIVATED_PER_NODE: usize = 3;

/// Three nodes on one PostgreSQL, each with its own connection pool, sealer, membership
/// combiner and webhook dispatcher, the load spread over them: creates on every node at
/// once, one group's members added from every node at once, deactivations. Every event is
/// delivered once, in order (whichever node holds the endpoint's lease); every node's feed
/// shows the same events in the same order; the group has every member; the
/// organization's audit chain is one unbroken chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_share_one_order() {
    let db = TestStore::new(Backend::Postgres).await;
    let token = scim_token(&db).await;
    let key = crate::common::admin_key(&db.store, Some("acme"), true).await;
    let secret = Arc::new(Mutex::new(String::new()));
    let rx = Receiver::start(secret.clone(), Duration::from_millis(2)).await;
    let (_, s) = add_webhook(&db.store, &db.master_key(), "acme", &rx.url, "*").await;
    *secret.lock().unwrap() = s;
    let mut stores = vec![db.store.clone()];
    let mut bases = Vec::new();
    let mut handles = Vec::new();
    for n in 0..NODES {
        let handle_db = if n == 0 {
            None
        } else {
            let other = roster::store::open(&db.location()).await.unwrap();
            stores.push(other.clone());
            Some(TestStore::from_store(other, &db))
        };
        let (base, h) = node(handle_db.as_ref().unwrap_or(&db), "100ms").await;
        bases.push(base);
        handles.push(h);
    }
    let before = feed_at(&bases[0], &key).await.len();
    // Creates on every node at once.
    let mut writers = Vec::new();
    for (n, base) in bases.iter().enumerate() {
        let (base, token) = (base.clone(), token.clone());
        writers.push(tokio::spawn(async move {
            created_users(&base, &token, &format!("n{n}-"), USERS_PER_NODE).await
        }));
    }
    let mut users = Vec::new();
    for w in writers {
        users.push(w.await.unwrap());
    }
    let r = reqwest::Client::new()
        .post(format!("{}/scim/v2/Groups", bases[0]))
        .bearer_auth(&token)
        .header("content-type", "application/scim+json")
        .body(json!({"displayName": "Everyone"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let group = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Each node adds its own users to the one group, one PATCH each, all nodes at once: the
    // nodes' combiners take turns on the group's row lock.
    let mut writers = Vec::new();
    for (base, ids) in bases.iter().zip(&users) {
        let (base, token, ids, path) = (
            base.clone(),
            token.clone(),
            ids.clone(),
            format!("/Groups/{group}"),
        );
        writers.push(tokio::spawn(async move {
            for id in ids {
                let op = json!([{"op": "add", "path": "members", "value": [{"value": id}]}]);
                patch_at(&base, &token, &path, op).await;
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    // Every node deactivates some of its users.
    for (base, ids) in bases.iter().zip(&users) {
        for id in &ids[..DEACTIVATED_PER_NODE] {
            let op = json!([{"op": "replace", "path": "active", "value": false}]);
            patch_at(base, &token, &format!("/Users/{id}"), op).await;
        }
    }
    let r = reqwest::Client::new()
        .get(format!("{}/scim/v2/Groups/{group}", bases[NODES - 1]))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let members = r.json::<Value>().await.unwrap()["members"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(members, NODES * USERS_PER_NODE);

    let all = NODES * USERS_PER_NODE;
    let deactivated = NODES * DEACTIVATED_PER_NODE;
    // Each deactivation is `user.deactivated` and `user.updated`.
    let expected = all + 1 + all + 2 * deactivated;
    rx.wait_for(expected + 1, Duration::from_secs(30)).await;
    // Nothing more arrives: each event came once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let delivered = rx.ids();
    assert!(strictly_increasing(&delivered), "{delivered:?}");
    // Every node's feed: the same events in the same order, exactly the delivered ones.
    let mut feeds = Vec::new();
    for base in &bases {
        feeds.push(feed_at(base, &key).await);
    }
    // The endpoint began with the events after its own creation (`webhook.created`).
    let feed_ids: Vec<i64> = feeds[0].iter().map(|(id, _)| *id).collect();
    assert_eq!(delivered, feed_ids[before - 1..], "{:?}", feeds[0]);
    let feed = &feeds[0][before..];
    assert_eq!(feed.len(), expected, "{feed:?}");
    for f in &feeds[1..] {
        assert_eq!(f, &feeds[0], "nodes disagree on the feed");
    }
    let count = |kind: &str| feed.iter().filter(|(_, k)| k == kind).count();
    assert_eq!(
        (
            count("user.created"),
            count("group.created"),
            count("group.member_added"),
            count("user.deactivated"),
            count("user.updated")
        ),
        (all, 1, all, deactivated, deactivated),
        "{feed:?}"
    );
    // Every node appended to the organization's audit chain: it is one unbroken chain.
    let mut entries = 0;
    for (chain, anchor) in db.store.audit_chains().await.unwrap() {
        let e = db.store.audit_entries(&chain, None).await.unwrap();
        entries += audit::verify_chain(&chain, anchor.as_ref(), e).expect("one chain");
    }
    // One entry per write of the load (a deactivation's two events are one write).
    let writes = (all + 1 + all + deactivated) as u64;
    assert!(
        entries >= writes,
        "{entries} audit entries for {writes} writes"
    );
    for h in handles {
        h.abort();
    }
    for s in &stores[1..] {
        s.close().await;
    }
    db.cleanup().await;
}

/// The CLI end to end beside a running server: role mapping, admin key, webhook (signed
/// delivery to a receiver), audit export and verify (and a tampered log failing), drift.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_lifecycle_commands() {
    use crate::cli::{roster, roster_fails};
    let db = TestStore::new(Backend::Sqlite).await;
    let StoreLocation::SqliteDir(dir) = db.location() else {
        unreachable!()
    };
    roster(&dir, &["org", "create", "umbrella", "--json"]);
    let d = roster(
        &dir,
        &["directory", "create", "--org", "umbrella", "--json"],
    );
    let token = d["token"].as_str().unwrap().to_owned();
    let m = roster(
        &dir,
        &[
            "role-mapping",
            "add",
            "--org",
            "umbrella",
            "--group",
            "Staff",
            "--role",
            "member",
            "--json",
        ],
    );
    assert_eq!(m["match_on"], "displayName");
    let listed = roster(
        &dir,
        &["role-mapping", "list", "--org", "umbrella", "--json"],
    );
    assert_eq!(listed["role_mappings"][0]["role"], "member");
    let key = roster(
        &dir,
        &[
            "admin-key",
            "create",
            "--org",
            "umbrella",
            "--read-only",
            "--json",
        ],
    );
    let key = key["key"].as_str().unwrap().to_owned();

    let secret = Arc::new(Mutex::new(String::new()));
    let rx = Receiver::start(secret.clone(), Duration::ZERO).await;
    let w = roster(
        &dir,
        &[
            "webhook", "create", "--org", "umbrella", "--url", &rx.url, "--events", "user.*",
            "--json",
        ],
    );
    *secret.lock().unwrap() = w["secret"].as_str().unwrap().to_owned();
    let wid = w["id"].as_str().unwrap().to_owned();
    roster_fails(
        &dir,
        &[
            "webhook", "create", "--org", "umbrella", "--url", "ftp://x", "--json",
        ],
        &[],
    );

    let (base, h) = node(&db, "100ms").await;
    create_users(&base, &token, "cli", 2).await;
    rx.wait_for(2, Duration::from_secs(20)).await;
    let got = rx.got.lock().unwrap().clone();
    assert_eq!(got[0].1["data"]["data"]["userName"], "cli0@x.com");
    // The read-only admin key reads the feed of its organization.
    let feed: Value = reqwest::Client::new()
        .get(format!("{base}/api/v1/events?limit=1000"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(kinds_of(&feed).contains(&"user.created".to_owned()));
    let r = reqwest::Client::new()
        .post(format!("{base}/api/v1/orgs/umbrella/role-mappings"))
        .bearer_auth(&key)
        .json(&json!({"group": "x", "role": "y"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    h.abort();

    let deliveries = roster(&dir, &["webhook", "deliveries", &wid, "--json"]);
    assert_eq!(deliveries["deliveries"].as_array().unwrap().len(), 2);
    // A resend from the command line (the receiver is still up; the server is not).
    let cursor = deliveries["deliveries"][0]["event_cursor"]
        .as_i64()
        .unwrap()
        .to_string();
    let resent = roster(
        &dir,
        &["webhook", "resend", &wid, "--event", &cursor, "--json"],
    );
    assert_eq!(resent["status"], "delivered");
    assert_eq!(rx.got.lock().unwrap().len(), 3);
    let out = dir.join("audit.jsonl");
    let out_s = out.to_str().unwrap();
    let export = |args: &[&str]| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_roster"))
            .arg("--data-dir")
            .arg(&dir)
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    export(&["audit", "export", "--org", "umbrella", "--out", out_s]);
    let lines: Vec<Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let actions: Vec<&str> = lines
        .iter()
        .map(|l| l["entry"]["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"user.created") && actions.contains(&"role_mapping.created"),
        "{actions:?}"
    );
    assert!(lines.windows(2).all(|w| w[1]["prev_hash"] == w[0]["hash"]));
    // --since takes a date (the start of that day, UTC) as well as an RFC 3339 time.
    let count_since = |since: &str| {
        export(&[
            "audit", "export", "--org", "umbrella", "--since", since, "--out", out_s,
        ]);
        std::fs::read_to_string(&out).unwrap().lines().count()
    };
    assert_eq!(count_since("2000-01-01"), lines.len());
    assert_eq!(count_since("2000-01-01T00:00:00Z"), lines.len());
    assert_eq!(count_since("2999-01-01"), 0);
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_roster"))
        .arg("--data-dir")
        .arg(&dir)
        .args([
            "audit",
            "export",
            "--org",
            "umbrella",
            "--since",
            "2026-02-30",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("is not a date (2026-11-01, UTC) or an RFC 3339 time"),
        "{err}"
    );
    let ok = roster(&dir, &["audit", "verify", "--json"]);
    assert_eq!(ok["ok"], true);
    let drift = roster(&dir, &["report", "drift", "--org", "umbrella", "--json"]);
    assert_eq!(drift["deactivated_with_live_access"]["count"], 0);

    // Someone edits an entry directly in the database: verify names the entry and fails.
    let pool = raw(&db.location()).await;
    sqlx::query("DROP TRIGGER audit_log_append_only")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE audit_log SET body = REPLACE(body, 'cli1@x.com', 'someone@x.com')")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let err = roster_fails(&dir, &["audit", "verify"], &[]);
    assert!(err.contains("does not verify"), "{err}");
    db.cleanup().await;
}

/// The Standard Webhooks reference library (Python `standardwebhooks`, a real third-party
/// peer) verifies Roster's signatures; a wrong secret fails there too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_webhooks_library_verifies_deliveries() {
    use std::io::{BufRead, BufReader};
    crate::common::install_once("install-webhook-peer.sh", "python3 and PyPI");
    let python = format!(
        "{}/.ci/.venv-webhooks/bin/python",
        env!("CARGO_MANIFEST_DIR")
    );
    let script = format!(
        "{}/tests/peers/webhooks/receiver.py",
        env!("CARGO_MANIFEST_DIR")
    );
    struct Peer(std::process::Child);
    impl Drop for Peer {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Peer(
        std::process::Command::new(python)
            .arg(script)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start the webhook peer"),
    );
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("PORT ")
        .expect("PORT line")
        .to_owned();
    let peer = format!("http://127.0.0.1:{port}");

    let db = TestStore::new(Backend::Sqlite).await;
    let token = scim_token(&db).await;
    let (_, secret) = add_webhook(
        &db.store,
        &db.master_key(),
        "acme",
        &format!("{peer}/hook"),
        "user.*",
    )
    .await;
    // The server installs the TLS crypto provider reqwest needs; start it first.
    let (base, h) = node(&db, "100ms,100ms").await;
    let http = reqwest::Client::new();
    http.post(format!("{peer}/__test/secret"))
        .body(secret)
        .send()
        .await
        .unwrap();
    create_users(&base, &token, "py", 3).await;
    let deliveries = async |n: usize| {
        let d: Vec<Value> = http
            .get(format!("{peer}/__test/deliveries"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (d.len() >= n).then_some(d)
    };
    let got = eventually(Duration::from_secs(20), "3 deliveries", async || {
        deliveries(3).await
    })
    .await;
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(
        got.iter()
            .all(|d| d["verified"] == true && d["type"] == "user.created"),
        "{got:?}"
    );
    // With another secret the library refuses, and Roster retries (401 is a failure).
    http.post(format!("{peer}/__test/secret"))
        .body(roster::core::webhooks::new_secret().unwrap())
        .send()
        .await
        .unwrap();
    create_users(&base, &token, "py-late", 1).await;
    let d = eventually(Duration::from_secs(20), "a retry", async || {
        deliveries(5).await
    })
    .await;
    assert!(d[3..].iter().all(|x| x["verified"] == false), "{d:?}");
    h.abort();
    drop(child);
    db.cleanup().await;
}
