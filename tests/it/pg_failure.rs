//! The database fails under Roster: a private PostgreSQL cluster (initdb into a temporary
//! directory, its own port), stopped with `-m immediate` under write load and started again.
//! While it is down, `/readyz` answers 503 within a second and writes fail fast with 503 and
//! `Retry-After`; no acknowledged write is lost; Roster serves again without a restart.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use roster::core::store::prelude::*;
use serde_json::json;

use crate::common::{TestApp, TestStore, scope_of};

/// A PostgreSQL cluster of the test's own, removed when dropped.
struct Cluster {
    dir: PathBuf,
    port: u16,
    bin: PathBuf,
    /// Run its commands as `postgres` (initdb refuses root).
    as_postgres: bool,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Cluster {
    fn new() -> Cluster {
        let bin = Command::new("pg_config")
            .arg("--bindir")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
            .filter(|b| b.join("initdb").exists())
            .expect("PostgreSQL's server binaries (pg_config --bindir with initdb)");
        let root = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        let dir = std::env::temp_dir().join(format!(
            "roster-pgc-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        ));
        std::fs::create_dir_all(&dir).expect("cluster directory");
        let c = Cluster {
            dir,
            port: free_port(),
            bin,
            as_postgres: root,
        };
        if root {
            c.run("chown", &["-R", "postgres:postgres", &c.path()], false);
        }
        let data = c.data();
        c.run_pg(
            "initdb",
            &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"],
        );
        c
    }

    fn path(&self) -> String {
        self.dir.display().to_string()
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn run(&self, program: &str, args: &[&str], as_postgres: bool) {
        let mut cmd = if as_postgres && self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", program]);
            c
        } else {
            Command::new(program)
        };
        let out = cmd.args(args).output().expect("run a PostgreSQL command");
        assert!(
            out.status.success(),
            "{program} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn run_pg(&self, tool: &str, args: &[&str]) {
        let program = self.bin.join(tool).display().to_string();
        self.run(&program, args, true);
    }

    fn start(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=on",
            self.port,
            self.path()
        );
        let log = self.dir.join("server.log").display().to_string();
        self.run_pg(
            "pg_ctl",
            &["-D", &self.data(), "-l", &log, "-o", &opts, "-w", "start"],
        );
    }

    /// Stops it as a crash would: no checkpoint, connections cut.
    fn crash(&self) {
        self.run_pg("pg_ctl", &["-D", &self.data(), "-m", "immediate", "stop"]);
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&pg_ctl);
            c
        } else {
            Command::new(&pg_ctl)
        };
        let _ = cmd
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Every write the load made: the userNames acknowledged with 201, and every other answer.
#[derive(Default)]
struct Outcomes {
    acknowledged: Vec<String>,
    failed: Vec<(Option<StatusCode>, String)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loses_no_acknowledged_write_and_roster_recovers() {
    let cluster = Cluster::new();
    cluster.start();
    let app = TestApp::start_on(TestStore::postgres_at(&cluster.url()).await, |s| s).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
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
                    .json(&json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name}))
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
                        outcomes.lock().unwrap().failed.push((Some(r.status()), what));
                        true
                    }
                    Err(e) => {
                        outcomes.lock().unwrap().failed.push((None, format!("{name}: {e}")));
                        true
                    }
                };
                if failed {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }));
    }
    let acked = || outcomes.lock().unwrap().acknowledged.len();
    let deadline = Instant::now() + Duration::from_secs(20);
    while acked() < 50 {
        assert!(Instant::now() < deadline, "the load never got going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster.crash();
    let before_crash = acked();

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
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        r.headers().get("retry-after").is_some(),
        "503 without Retry-After"
    );
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "a write took {:?} to fail",
        t.elapsed()
    );

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
    while acked() < before_crash + 50 {
        assert!(
            back.elapsed() < Duration::from_secs(20),
            "writes did not resume"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.unwrap();
    }

    let o = std::mem::take(&mut *outcomes.lock().unwrap());
    // What failed, failed as unavailable (with Retry-After), never as an internal error.
    for (status, what) in &o.failed {
        match status {
            Some(s) => assert!(
                *s == StatusCode::SERVICE_UNAVAILABLE && what.ends_with("Retry-After true"),
                "a write failed with {s}: {what}"
            ),
            None => panic!("a write got no answer: {what}"),
        }
    }
    // Every acknowledged write survived the crash.
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
    assert!(o.acknowledged.len() >= before_crash + 50);
    app.stop().await;
}
