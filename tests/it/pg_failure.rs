//! The database fails under Roster: a private PostgreSQL cluster (initdb into a temporary
//! directory, its own port), stopped with `-m immediate` under write load and started again.
//! While it is down, `/readyz` answers 503 within a second and writes fail fast with 503 and
//! `Retry-After`; no acknowledged write is lost; Roster serves again without a restart.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use roster::core::store::prelude::*;
use serde_json::json;
use sqlx::Row;

use crate::common::{TestApp, TestStore, scope_of};
use crate::pg_cluster::Cluster;

/// Every write the load made: the userNames acknowledged with 201, and every other answer.
#[derive(Default)]
struct Outcomes {
    acknowledged: Vec<String>,
    failed: Vec<(Option<StatusCode>, String)>,
}

/// Four writers creating users through SCIM as fast as answers come.
struct Load {
    outcomes: Arc<Mutex<Outcomes>>,
    stop: Arc<AtomicBool>,
    writers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(app: &TestApp, client: &reqwest::Client) -> Load {
        let outcomes = Arc::new(Mutex::new(Outcomes::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut writers = Vec::new();
        for w in 0..4 {
            let (client, outcomes, stop) = (client.clone(), outcomes.clone(), stop.clone());
            let (url, token) = (format!("{}/Users", app.scim), app.token.clone());
            writers.push(tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let name = format!("w{w}-{n}@example.com");
                    let r = client
                        .post(&url)
                        .bearer_auth(&token)
                        .header("content-type", "application/scim+json")
                        .json(&json!({"userName": name}))
                        .send()
                        .await;
                    let failed = match r {
                        Ok(r) if r.status() == StatusCode::CREATED => {
                            outcomes.lock().unwrap().acknowledged.push(name);
                            false
                        }
                        Ok(r) => {
                            let retry = r.headers().get("retry-after").is_some();
                            let what = format!("{name}: Retry-After {retry}");
                            outcomes
                                .lock()
                                .unwrap()
                                .failed
                                .push((Some(r.status()), what));
                            true
                        }
                        Err(e) => {
                            let what = format!("{name}: {e}");
                            outcomes.lock().unwrap().failed.push((None, what));
                            true
                        }
                    };
                    if failed {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }));
        }
        Load {
            outcomes,
            stop,
            writers,
        }
    }

    fn acked(&self) -> usize {
        self.outcomes.lock().unwrap().acknowledged.len()
    }

    /// Waits until `n` writes were acknowledged in all.
    async fn until_acked(&self, n: usize, within: Duration, what: &str) {
        let deadline = Instant::now() + within;
        while self.acked() < n {
            assert!(Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the writers and checks what they saw: every failure a 503 with Retry-After
    /// (never an internal error or no answer), and every acknowledged write in the store.
    /// The number acknowledged.
    async fn finish(self, app: &TestApp) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        for w in self.writers {
            w.await.unwrap();
        }
        let o = std::mem::take(&mut *self.outcomes.lock().unwrap());
        for (status, what) in &o.failed {
            match status {
                Some(s) => assert!(
                    *s == StatusCode::SERVICE_UNAVAILABLE && what.ends_with("Retry-After true"),
                    "a write failed with {s}: {what}"
                ),
                None => panic!("a write got no answer: {what}"),
            }
        }
        let store = &app.db.store;
        let scope = scope_of(store, "acme").await;
        for name in &o.acknowledged {
            assert!(
                store
                    .user_by_user_name(&scope, name)
                    .await
                    .unwrap()
                    .is_some(),
                "{name} was acknowledged and is gone"
            );
        }
        o.acknowledged.len()
    }
}

/// A write sent at `t` while the database is down: 503 with Retry-After, within 5 s.
fn failed_fast(r: &reqwest::Response, t: Instant, what: &str) {
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE, "{what}");
    assert!(
        r.headers().get("retry-after").is_some(),
        "{what}: 503 without Retry-After"
    );
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "{what} took {:?} to fail",
        t.elapsed()
    );
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loses_no_acknowledged_write_and_roster_recovers() {
    let cluster = Cluster::new();
    cluster.start();
    let app = TestApp::start_on(TestStore::postgres_at(&cluster.url()).await, |s| s).await;
    let client = client();
    let member = app.user("member@example.com").await;
    let group = app
        .post(
            "/Groups",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "staff"}),
        )
        .await
        .expect(201)
        .id();
    let load = Load::start(&app, &client);
    load.until_acked(50, Duration::from_secs(20), "the load never got going")
        .await;
    cluster.crash();
    let before_crash = load.acked();

    // Down: readiness says so within a second, and a write fails fast with 503 and Retry-After.
    for _ in 0..3 {
        let t = Instant::now();
        let r = client
            .get(format!("{}/readyz", app.base()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "/readyz took {:?}",
            t.elapsed()
        );
    }
    let t = Instant::now();
    let r = client
        .post(format!("{}/Users", app.scim))
        .bearer_auth(&app.token)
        .header("content-type", "application/scim+json")
        .json(&json!({"userName": "while-down@example.com"}))
        .send()
        .await
        .unwrap();
    failed_fast(&r, t, "a create");
    // A membership change too (queued to share a transaction, it must not then try the
    // reading way and wait for a connection a second time).
    let t = Instant::now();
    let r = client
        .patch(format!("{}/Groups/{group}", app.scim))
        .bearer_auth(&app.token)
        .header("content-type", "application/scim+json")
        .json(&json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                      "Operations": [{"op": "add", "path": "members", "value": [{"value": member}]}]}))
        .send()
        .await
        .unwrap();
    failed_fast(&r, t, "a membership change");

    // Back: ready again within seconds of the database's return, without a restart.
    cluster.start();
    let back = Instant::now();
    loop {
        let r = client
            .get(format!("{}/readyz", app.base()))
            .send()
            .await
            .unwrap();
        if r.status() == StatusCode::OK {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "not ready 10 s after the database returned"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    load.until_acked(
        before_crash + 50,
        Duration::from_secs(20),
        "writes did not resume",
    )
    .await;
    assert!(load.finish(&app).await >= before_crash + 50);
    app.stop().await;
}

/// A fail-over: a synchronous streaming standby is promoted when the primary crashes, and
/// Roster, given both hosts (`target_session_attrs=read-write`), moves to it by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fail_over_to_a_promoted_standby_loses_no_acknowledged_write() {
    let primary = Cluster::new();
    primary.start();
    let standby = Cluster::standby_of(&primary);
    // Commits wait for the standby: what is acknowledged is on both.
    sqlx::any::install_default_drivers();
    let admin = sqlx::AnyPool::connect(&primary.url()).await.unwrap();
    for sql in [
        "ALTER SYSTEM SET synchronous_standby_names = '*'",
        "SELECT pg_reload_conf()",
    ] {
        sqlx::query(sql).execute(&admin).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let sync: i64 =
            sqlx::query("SELECT COUNT(*) AS n FROM pg_stat_replication WHERE sync_state = 'sync'")
                .fetch_one(&admin)
                .await
                .unwrap()
                .get("n");
        if sync == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the standby never became synchronous"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    admin.close().await;
    let url = format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=read-write",
        primary.port, standby.port
    );
    let app = TestApp::start_on(TestStore::postgres_at(&url).await, |s| s).await;
    let client = client();
    let load = Load::start(&app, &client);
    load.until_acked(50, Duration::from_secs(20), "the load never got going")
        .await;
    primary.crash();
    let before = load.acked();
    standby.promote();
    load.until_acked(
        before + 50,
        Duration::from_secs(20),
        "writes did not move to the promoted standby",
    )
    .await;
    let r = client
        .get(format!("{}/readyz", app.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(load.finish(&app).await >= before + 50);
    app.stop().await;
}

/// Ends every client connection of the cluster's server (as a restart between two requests,
/// or an administrator's `pg_terminate_backend`, would), and waits until they are gone
/// (Roster's background work may open new ones meanwhile).
async fn terminate_client_backends(cluster: &Cluster) {
    let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(&cluster.url())
        .await
        .unwrap();
    let ended: Vec<i32> = sqlx::query(
        "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'",
    )
    .fetch_all(&mut c)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect();
    assert!(!ended.is_empty(), "Roster had no connection to end");
    for _ in 0..500 {
        let left: i64 = sqlx::query("SELECT COUNT(*) FROM pg_stat_activity WHERE pid = ANY($1)")
            .bind(&ended)
            .fetch_one(&mut c)
            .await
            .unwrap()
            .get(0);
        if left == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("terminated backends still there after 5 s");
}

/// `n` requests at once (`POST /Users` with `body(i)` for `i` in `from..from + n`, or
/// `GET path`); their statuses.
async fn at_once(
    app: &TestApp,
    client: &reqwest::Client,
    n: usize,
    path: &str,
    body: Option<&(dyn Fn(usize) -> serde_json::Value + Sync)>,
    from: usize,
) -> Vec<u16> {
    let mut set = tokio::task::JoinSet::new();
    for i in from..from + n {
        let url = format!("{}{path}", app.scim);
        let req = match body {
            Some(b) => client
                .post(url)
                .header("content-type", "application/scim+json")
                .json(&b(i)),
            None => client.get(url),
        }
        .bearer_auth(&app.token);
        set.spawn(async move { req.send().await.map(|r| r.status().as_u16()).unwrap_or(0) });
    }
    let mut out = Vec::new();
    while let Some(s) = set.join_next().await {
        out.push(s.unwrap());
    }
    out
}

/// Connections lent without sqlx's pings (`store/engine/lent.rs`) and the pool's, lost behind
/// Roster's back between two requests: the first request that finds a lost connection may
/// fail (503), and every connection kept is then checked before its next use, so the
/// requests after it succeed — one failed request, not one per connection kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_lost_between_requests_cost_one_request_at_most() {
    let cluster = Cluster::new();
    cluster.start();
    let app = TestApp::start_on(TestStore::postgres_at(&cluster.url()).await, |s| s).await;
    let client = client();
    let id = app.user("first@example.com").await;
    let user = |i: usize| {
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
               "userName": format!("u{i}@example.com")})
    };
    let mut next = 0;
    for kind in ["reads", "writes"] {
        // Several connections of each kind opened and kept: concurrent lists and creates.
        let lists = at_once(&app, &client, 16, "/Users?count=5", None, 0).await;
        assert!(lists.iter().all(|s| *s == 200), "{kind}: {lists:?}");
        let creates = at_once(&app, &client, 16, "/Users", Some(&user), next).await;
        next += 16;
        assert!(creates.iter().all(|s| *s == 201), "{kind}: {creates:?}");
        terminate_client_backends(&cluster).await;
        let mut failed = 0;
        for i in 0..12 {
            let status = if kind == "reads" {
                app.get(&format!("/Users/{id}")).await.status.as_u16()
            } else {
                next += 1;
                at_once(&app, &client, 1, "/Users", Some(&user), next - 1).await[0]
            };
            match status {
                200 | 201 => {}
                503 => failed += 1,
                other => panic!("{kind}: request {i} after the connections were lost: {other}"),
            }
        }
        assert!(
            failed <= 1,
            "{kind}: {failed} of 12 requests failed after the connections were lost"
        );
    }
    app.stop().await;
}
