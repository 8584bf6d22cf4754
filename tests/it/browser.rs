//! One complete login in a real browser: headless Chromium (Debian's, driven by
//! playwright-core, `tests/peers/browser`) goes from the app's authorization URL through
//! Roster and the IdP (`oidc-provider`) and back, following the real redirects and cookies.
//! A screenshot of where it landed is kept in `target/screenshots/` (a CI artifact).

use serde_json::{Value, json};

use crate::common::{Backend, TestApp};
use crate::sso_oidc::{Client, Idp, login_url, oidc_org};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_completes_an_oidc_login() {
    let root = env!("CARGO_MANIFEST_DIR");
    crate::common::install_once("install-browser.sh", "root and Debian's chromium package");
    let app = TestApp::start(Backend::Sqlite).await;
    let idp = Idp::for_app(&app, &[]).await;
    idp.account(
        "frank",
        json!({"email": "frank@acme-browser.test", "email_verified": true, "name": "Frank"}),
    )
    .await;
    oidc_org(&app, &idp, "acme-browser", |_| {}).await;
    // The app: a page at its redirect URI (Chromium refuses to load some ports, such as the
    // other tests' never-contacted :9).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let redirect = format!("http://{}/app/callback", listener.local_addr().unwrap());
    let page = axum::Router::new().route(
        "/app/callback",
        axum::routing::get(|| async {
            axum::response::Html("<!doctype html><title>App</title><h1>Signed in</h1>")
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, page).await;
    });
    let client = Client::register_with(&app, &redirect).await;
    let (url, verifier) = login_url(&app, &client, "acme-browser", "frank");

    let shots = format!("{root}/target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let out = tokio::process::Command::new("node")
        .arg(format!("{root}/tests/peers/browser/login.mjs"))
        .args(["--url", &url, "--until", &redirect, "--screenshot"])
        .arg(format!("{shots}/oidc-login.png"))
        .output()
        .await
        .expect("run the browser");
    assert!(
        out.status.success(),
        "the browser login failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).expect("JSON from login.mjs");
    let landed = url::Url::parse(result["final_url"].as_str().unwrap()).unwrap();
    let q: std::collections::HashMap<_, _> = landed.query_pairs().into_owned().collect();
    assert_eq!(q.get("state").map(String::as_str), Some("app-state-1"));
    // The browser really went through the IdP and Roster's callback.
    let visited = result["visited"].to_string();
    assert!(visited.contains(&idp.issuer), "{visited}");
    assert!(visited.contains("/sso/oidc/callback"), "{visited}");
    let (status, tokens) = client.redeem(&app, &q["code"], &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    assert!(std::path::Path::new(&format!("{shots}/oidc-login.png")).exists());
    app.stop().await;
}
