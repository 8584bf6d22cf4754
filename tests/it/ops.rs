//! Operations: readiness, logs.

use reqwest::StatusCode;

use crate::backend_tests;
use crate::common::TestApp;
use crate::lifecycle::raw;

/// `/readyz` answers 200 only while the database has every migration this binary expects.
async fn readyz_checks_migrations(app: &TestApp) {
    let ready = || async {
        app.client
            .get(format!("{}/readyz", app.base()))
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(ready().await, StatusCode::OK);
    let pool = raw(&app.db.location()).await;
    // As if a node with an older binary ran the migrations: the newest is missing.
    sqlx::query(
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)",
    )
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(ready().await, StatusCode::SERVICE_UNAVAILABLE);
    pool.close().await;
}

backend_tests!(readyz_checks_migrations);

/// `--log-format json` writes one JSON object per line.
#[test]
fn logs_can_be_json_lines() {
    use std::io::{BufRead, BufReader};
    let dir = std::env::temp_dir().join(format!("roster-log-{}", uuid::Uuid::new_v4().simple()));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_roster"))
        .args(["--log-format", "json", "--data-dir"])
        .arg(&dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("ROSTER_DATABASE_URL")
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start roster");
    let stderr = child.stderr.take().unwrap();
    let mut listening = None;
    for line in BufReader::new(stderr).lines().take(10) {
        let line = line.unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["level"].is_string() && v["timestamp"].is_string(), "{v}");
        if v["fields"]["message"] == "roster listening" {
            listening = Some(v);
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let v = listening.expect("a `roster listening` line");
    assert!(
        v["fields"]["addr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
}
