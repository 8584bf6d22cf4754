//! What a newcomer meets first: the front door at `/`, the icon every page asks for, and
//! the environment compose files and systemd units produce (variables set but empty).

use std::process::{Command, Stdio};

use crate::backend_tests;
use crate::common::TestApp;

/// `GET /` says what this server is and links each audience to a place that answers; the
/// icon the pages name is served, so no page logs a 404 for it.
async fn front_door_links_to_what_answers(app: &TestApp) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = app.base();
    let r = client.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "{:?}",
        r.headers()
    );
    let html = r.text().await.unwrap();
    assert!(html.contains(&format!("<code>{base}</code>")), "{html}");
    assert!(
        html.contains(&format!("<code>{base}/scim/v2</code>")),
        "{html}"
    );
    // Every link on the page answers (the console sends a stranger to its sign-in).
    let links: Vec<&str> = html
        .split("href=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .collect();
    for want in [
        "/console",
        "/.well-known/openid-configuration",
        "/oauth/jwks",
        "/api/v1/openapi.json",
        "/healthz",
        "/favicon.svg",
    ] {
        assert!(links.contains(&want), "{want} not linked: {links:?}");
    }
    for link in &links {
        let r = client.get(format!("{base}{link}")).send().await.unwrap();
        let status = r.status().as_u16();
        assert!(
            status == 200 || status == 303 || status == 302,
            "{link} answered {status}"
        );
    }
    let head = client.head(format!("{base}/")).send().await.unwrap();
    assert_eq!(head.status().as_u16(), 200);

    for icon in ["/favicon.ico", "/favicon.svg"] {
        let r = client.get(format!("{base}{icon}")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{icon}");
        assert_eq!(r.headers()["content-type"], "image/svg+xml");
        assert!(r.text().await.unwrap().starts_with("<svg"));
    }
    // The console's own pages name the icon.
    let login = client
        .get(format!("{base}/console/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        login.contains("rel=\"icon\" href=\"/favicon.svg\""),
        "{login}"
    );
    // Anything else is still a 404.
    let r = client
        .get(format!("{base}/nothing-here"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
}

backend_tests!(front_door_links_to_what_answers);

/// The `ROSTER_*` variables the binary reads, from its own help (so a new option is covered
/// without editing this test).
fn roster_env_vars() -> Vec<String> {
    let mut vars = Vec::new();
    for args in [
        &["serve", "--help"][..],
        &["connection", "create", "--help"][..],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_roster"))
            .args(args)
            .env_clear()
            .output()
            .expect("roster --help");
        let help = String::from_utf8_lossy(&out.stdout).into_owned();
        for part in help.split("[env: ").skip(1) {
            let name: String = part
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                .collect();
            if !vars.contains(&name) {
                vars.push(name);
            }
        }
    }
    vars
}

/// `ROSTER_DATABASE_URL=` (and every other `ROSTER_*` variable set to nothing) means unset:
/// the server starts on the configuration file's values and the built-in defaults (SQLite),
/// and so do the administration commands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_environment_variables_mean_unset() {
    let vars = roster_env_vars();
    for v in [
        "ROSTER_DATABASE_URL",
        "ROSTER_DATA_DIR",
        "ROSTER_LISTEN",
        "ROSTER_PUBLIC_URL",
        "ROSTER_LOG_FORMAT",
        "ROSTER_METRICS_TOKEN",
        "ROSTER_TLS_CERT",
        "ROSTER_OIDC_CLIENT_SECRET",
    ] {
        assert!(vars.iter().any(|x| x == v), "{v} not in {vars:?}");
    }
    let base = std::env::temp_dir().join(format!("roster-env-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&base).unwrap();
    let data = base.join("data");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let file = base.join("roster.toml");
    std::fs::write(
        &file,
        format!(
            "data_dir = {:?}\nlisten = \"127.0.0.1:{port}\"\n",
            data.display().to_string()
        ),
    )
    .unwrap();
    let cmd = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_roster"));
        c.args(["--config", file.to_str().unwrap()]).args(args);
        for v in &vars {
            if v != "ROSTER_CONFIG" {
                c.env(v, "");
            }
        }
        c.env("ROSTER_MASTER_KEY", "");
        c
    };

    let out = cmd(&["org", "create", "envco", "--json"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        data.join("roster.db").exists(),
        "SQLite in the file's data_dir"
    );

    let log = base.join("serve.log");
    let mut server = cmd(&["serve"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut up = false;
    for _ in 0..100 {
        if let Ok(Some(status)) = server.try_wait() {
            let err = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("serve exited ({status}): {err}");
        }
        if let Ok(r) = client.get(format!("{url}/readyz")).send().await {
            up = r.status().as_u16() == 200;
            if up {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(up, "serve did not come up on {url}");
    // No metrics token (it was empty): /metrics is open, as with the variable unset.
    let m = client.get(format!("{url}/metrics")).send().await.unwrap();
    assert_eq!(m.status().as_u16(), 200);
    // The public URL defaulted to the bound address.
    let d: serde_json::Value = client
        .get(format!("{url}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d["issuer"], url.as_str());
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&base);
}
