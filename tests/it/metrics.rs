//! `/metrics`: every label from a known set, whatever clients send, and a bearer token when
//! one is configured.

use std::io::{BufRead, BufReader};

use reqwest::{Method, StatusCode};

use crate::backend_tests;
use crate::common::{Backend, TestApp};

/// The value of label `name` on an exposition line, if it has one.
fn label<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let start = line.find(&format!("{name}=\""))? + name.len() + 2;
    let len = line[start..].find('"')?;
    Some(&line[start..start + len])
}

async fn metric_labels_are_bounded(app: &TestApp) {
    let base = app.base();
    let c = &app.client;
    // Unauthenticated requests with invented methods and paths made of route words.
    for (method, path) in [
        ("FOOBAR", "/x"),
        ("BREW", "/scim/v2/Users"),
        ("PROPFIND", "/metrics"),
        ("GET", "/no/such/path/made/up"),
        ("GET", "/scim/scim/oauth/token/v2/Users"),
        ("POST", "/api/v1/orgs/orgs/orgs/orgs"),
        ("GET", "/scim/v2/Users/x/y/z"),
    ] {
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        c.request(m, format!("{base}{path}")).send().await.unwrap();
    }
    // Known routes keep their labels.
    app.get("/Users").await.expect(200);
    let id = app.user("labels@example.com").await;
    app.get(&format!("/Users/{id}")).await.expect(200);
    let text = c
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let methods = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other",
    ];
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        if let Some(m) = label(line, "method") {
            assert!(methods.contains(&m), "method label {m}: {line}");
        }
        if let Some(s) = label(line, "status") {
            let known = s.len() == 3
                && (s.ends_with("xx") || s.parse::<u16>().is_ok_and(|n| (100..600).contains(&n)));
            assert!(known, "status label {s}: {line}");
        }
        if let Some(r) = label(line, "route") {
            assert!(
                r == "other" || r == "/" || r.starts_with('/'),
                "route label {r}: {line}"
            );
            for bad in ["/scim/scim", "orgs/orgs", "/no/", "/x", "made"] {
                assert!(!r.contains(bad), "route label {r}: {line}");
            }
        }
    }
    for invented in ["FOOBAR", "BREW", "PROPFIND"] {
        assert!(!text.contains(invented), "{invented} in\n{text}");
    }
    assert!(text.contains(r#"method="other""#), "{text}");
    assert!(text.contains(r#"route="other""#), "{text}");
    assert!(
        text.contains(
            r#"roster_http_requests_total{method="GET",route="/scim/v2/Users",status="200"}"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"method="GET",route="/scim/v2/Users/{id}",status="200"}"#),
        "{text}"
    );
    // PostgreSQL seals what writes append after commit, and says how far behind it is;
    // SQLite has nothing to seal.
    let lag = text
        .lines()
        .find_map(|l| l.strip_prefix("roster_seal_lag_seconds "));
    if app.db.schema.is_some() {
        let lag: f64 = lag.expect("a seal lag gauge").parse().expect("a number");
        assert!((0.0..60.0).contains(&lag), "{lag}");
        assert!(text.contains("\nroster_seal_pending_events "), "{text}");
        assert!(
            text.contains("\nroster_seal_pending_audit_entries "),
            "{text}"
        );
    } else {
        assert!(lag.is_none(), "{text}");
    }
}

backend_tests!(metric_labels_are_bounded);

async fn metrics_token_is_required(backend: Backend) {
    let app = TestApp::start_with(backend, |s| s.metrics_token(Some("m3trics-t0ken".into()))).await;
    let url = format!("{}/metrics", app.base());
    let c = &app.client;
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert!(!r.text().await.unwrap().contains("roster_"));
    for wrong in [
        "Bearer m3trics-t0ke",
        "Bearer m3trics-t0ken2",
        "Basic m3trics-t0ken",
        "m3trics-t0ken",
    ] {
        let r = c
            .get(&url)
            .header("authorization", wrong)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{wrong}");
    }
    // A SCIM token is not the metrics token.
    let r = c.get(&url).bearer_auth(&app.token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = c
        .get(&url)
        .bearer_auth("m3trics-t0ken")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("roster_http_requests_total")
    );
    // Probes stay open.
    let r = c
        .get(format!("{}/healthz", app.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    app.stop().await;
}

mod metrics_token_is_required {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::metrics_token_is_required(crate::common::Backend::Sqlite).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::metrics_token_is_required(crate::common::Backend::Postgres).await;
    }
}

/// `metrics_token` in the configuration file (or `ROSTER_METRICS_TOKEN`) guards `/metrics` of
/// `roster serve`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_token_comes_from_the_config_file() {
    let base = std::env::temp_dir().join(format!("roster-mt-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&base).unwrap();
    let file = base.join("roster.toml");
    std::fs::write(
        &file,
        format!(
            "data_dir = {:?}\nlisten = \"127.0.0.1:0\"\nlog_format = \"json\"\nmetrics_token = \"from-the-file\"\n",
            base.join("data").display().to_string()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_roster"))
        .arg("--config")
        .arg(&file)
        .arg("serve")
        .env_remove("ROSTER_DATABASE_URL")
        .env_remove("ROSTER_DATA_DIR")
        .env_remove("ROSTER_METRICS_TOKEN")
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start roster");
    let stderr = child.stderr.take().unwrap();
    let mut addr = None;
    for line in BufReader::new(stderr).lines().take(20) {
        let v: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap_or_default();
        if v["fields"]["message"] == "roster listening" {
            addr = v["fields"]["addr"].as_str().map(str::to_owned);
            break;
        }
    }
    let url = format!(
        "http://{}/metrics",
        addr.expect("a `roster listening` line")
    );
    let c = reqwest::Client::new();
    let open = c.get(&url).send().await.unwrap().status();
    let with = c
        .get(&url)
        .bearer_auth("from-the-file")
        .send()
        .await
        .unwrap()
        .status();
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&base);
    assert_eq!(open, StatusCode::UNAUTHORIZED);
    assert_eq!(with, StatusCode::OK);
}
