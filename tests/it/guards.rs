//! Trust boundaries, each on SQLite and PostgreSQL: what an organization-scoped admin key
//! (or anyone, unauthenticated) can make Roster fetch, how much a login start may store and
//! how often, and webhook URLs kept secret at rest and in every view.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::Method;
use roster::core::model::Actor;
use roster::core::orgs::{self, OrgSlug};
use roster::core::sessions;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::common::{Resp, TestApp};
use crate::sso_oidc::APP_REDIRECT;

/// A listener on 127.0.0.1 that counts every request and answers each with a status and
/// content type an error page must not echo.
async fn counting_listener() -> (u16, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let counter = hits.clone();
    tokio::spawn(async move {
        let r = axum::Router::new().fallback(move || {
            let c = counter.clone();
            async move {
                c.fetch_add(1, Ordering::SeqCst);
                (
                    axum::http::StatusCode::IM_A_TEAPOT,
                    [("content-type", "text/x-internal-marker")],
                    "internal-body-marker",
                )
            }
        });
        let _ = axum::serve(listener, r).await;
    });
    (port, hits)
}

async fn api(app: &TestApp, key: &str, method: Method, path: &str, body: Option<&Value>) -> Resp {
    let mut rb = app
        .client
        .request(method, format!("{}/api/v1{path}", app.base()))
        .bearer_auth(key);
    if let Some(b) = body {
        rb = rb.json(b);
    }
    let r = rb.send().await.unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    Resp {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

async fn org(app: &TestApp, slug: &str) {
    orgs::create_org(
        &app.db.store,
        &OrgSlug::parse(slug).unwrap(),
        None,
        &Actor::Cli,
    )
    .await
    .unwrap();
}

/// An app (OAuth client) registered by the operator.
async fn client(app: &TestApp) -> String {
    let (a, _) = sessions::create_app(
        &app.db.store,
        "trust test app",
        &[APP_REDIRECT.to_owned()],
        &Actor::Cli,
    )
    .await
    .unwrap();
    a.id
}

/// `/oauth/authorize` for `org` with `extra` parameters (`scope=openid` unless `extra` has
/// its own scope).
fn authorize_url(app: &TestApp, client_id: &str, org: &str, extra: &str) -> String {
    let scope = if extra.contains("&scope=") {
        ""
    } else {
        "&scope=openid"
    };
    format!(
        "{}/oauth/authorize?response_type=code{scope}&client_id={client_id}\
         &redirect_uri={}&organization={org}{extra}",
        app.base(),
        urlencode(APP_REDIRECT)
    )
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// What a browser sees at the end of `url`'s redirects within Roster: (status, location or
/// body).
async fn landing(url: &str) -> (u16, String) {
    let r = no_redirects().get(url).send().await.unwrap();
    let status = r.status().as_u16();
    if r.status().is_redirection() {
        return (status, r.headers()["location"].to_str().unwrap().to_owned());
    }
    (status, r.text().await.unwrap())
}

/// An organization-scoped key makes OIDC connections whose issuer is on loopback, by IP and
/// by a name resolving there: an unauthenticated `/oauth/authorize` never reaches the
/// listener, and the page it shows says nothing of what is there. The same issuer given by
/// a key for every organization (an operator) is fetched.
async fn scoped_oidc_issuers_reach_public_addresses_only(app: &TestApp) {
    let (port, hits) = counting_listener().await;
    let client_id = client(app).await;
    for (slug, host) in [("ssrf-ip", "127.0.0.1"), ("ssrf-name", "localhost")] {
        org(app, slug).await;
        let key = crate::common::admin_key(&app.db.store, Some(slug), false).await;
        let made = api(
            app,
            &key,
            Method::POST,
            &format!("/orgs/{slug}/connections"),
            // A body cannot ask for private networks.
            Some(
                &json!({"protocol": "oidc", "issuer": format!("http://{host}:{port}"),
                         "client_id": "c", "client_secret": "s", "private_networks": true}),
            ),
        )
        .await
        .expect(201);
        assert_eq!(made.body["private_networks"], false, "{}", made.body);
        let (status, page) = landing(&authorize_url(app, &client_id, slug, "")).await;
        assert_eq!(
            hits.load(Ordering::SeqCst),
            0,
            "{host}: Roster fetched the issuer"
        );
        assert_eq!(status, 502, "{host}: {page}");
        for detail in [
            "418",
            "teapot",
            "x-internal-marker",
            "internal-body-marker",
            "127.0.0.1",
            "localhost",
            &port.to_string(),
        ] {
            assert!(
                !page.contains(detail),
                "{host}: the page shows {detail}: {page}"
            );
        }
    }
    // An operator's connection to the same address is fetched (and the upstream's answer
    // still stays off the page).
    org(app, "ssrf-op").await;
    let global = crate::common::admin_key(&app.db.store, None, false).await;
    let made = api(
        app,
        &global,
        Method::POST,
        "/orgs/ssrf-op/connections",
        Some(
            &json!({"protocol": "oidc", "issuer": format!("http://127.0.0.1:{port}"),
                     "client_id": "c", "client_secret": "s"}),
        ),
    )
    .await
    .expect(201);
    assert_eq!(made.body["private_networks"], true, "{}", made.body);
    let (status, page) = landing(&authorize_url(app, &client_id, "ssrf-op", "")).await;
    assert_eq!(status, 502, "{page}");
    assert!(
        hits.load(Ordering::SeqCst) >= 1,
        "the operator's issuer was not fetched"
    );
    assert!(
        !page.contains("418") && !page.contains("x-internal-marker"),
        "{page}"
    );
}

/// A SAML metadata URL on loopback given by an organization-scoped key is refused before
/// anything is fetched; a key for every organization (an operator) may fetch it.
async fn scoped_saml_metadata_urls_are_refused_unfetched(app: &TestApp) {
    let (port, hits) = counting_listener().await;
    org(app, "saml-ssrf").await;
    let key = crate::common::admin_key(&app.db.store, Some("saml-ssrf"), false).await;
    for host in ["127.0.0.1", "localhost"] {
        let r = api(
            app,
            &key,
            Method::POST,
            "/orgs/saml-ssrf/connections",
            Some(&json!({"protocol": "saml",
                         "metadata_url": format!("http://{host}:{port}/metadata")})),
        )
        .await
        .expect(400);
        let msg = r.body["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains("private networks"), "{host}: {msg}");
        assert_eq!(hits.load(Ordering::SeqCst), 0, "{host}: fetched");
    }
    let global = crate::common::admin_key(&app.db.store, None, false).await;
    let r = api(
        app,
        &global,
        Method::POST,
        "/orgs/saml-ssrf/connections",
        Some(&json!({"protocol": "saml",
                     "metadata_url": format!("http://127.0.0.1:{port}/metadata")})),
    )
    .await
    .expect(400);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "the operator's URL: {}",
        r.body
    );
}

/// `/oauth/authorize` refuses oversized parameters before storing anything, with a page
/// that names the parameter and its limit; ordinary sizes pass.
async fn login_parameters_are_bounded(app: &TestApp) {
    let client_id = client(app).await;
    org(app, "bounded").await;
    for (param, len) in [
        ("state", 4097),
        ("nonce", 513),
        ("login_hint", 1025),
        ("scope", 1025),
    ] {
        let value = if param == "scope" {
            format!("openid {}", "x".repeat(len))
        } else {
            "a".repeat(len)
        };
        let extra = format!("&{param}={value}");
        let (status, page) = landing(&authorize_url(app, &client_id, "bounded", &extra)).await;
        let head: String = page.chars().take(300).collect();
        assert_eq!(status, 400, "{param}: {head}");
        assert!(
            page.contains(param) && page.contains("bytes"),
            "{param}: {page}"
        );
    }
    // Sizes real clients send go on (here to "no connection", at the app).
    let extra = format!("&state={}&nonce={}", "s".repeat(1500), "n".repeat(128));
    let (status, location) = landing(&authorize_url(app, &client_id, "bounded", &extra)).await;
    assert_eq!(status, 303, "{location}");
    assert!(location.starts_with(APP_REDIRECT), "{location}");
}

/// Login starts are limited per client address (on by default): a burst from one address
/// ends in 429 with Retry-After; another address is not held back.
async fn login_starts_are_rate_limited_per_address(app: &TestApp) {
    let client_id = client(app).await;
    let url = authorize_url(app, &client_id, "nobody", "");
    let http = no_redirects();
    let mut limited = None;
    for _ in 0..200 {
        let r = http.get(&url).send().await.unwrap();
        if r.status() == 429 {
            limited = Some(r);
            break;
        }
    }
    let r = limited.expect("200 login starts in a row from one address were all let through");
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // Another address (127.0.0.2 is loopback too) has its own bucket.
    let other = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let r = other.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 303, "another address was limited too");
}

/// Webhook URLs carry credentials (userinfo, query tokens): the database keeps them
/// encrypted, and the admin API, the console and events show them redacted; deliveries
/// still go to the real URL.
async fn webhook_urls_are_secrets(app: &TestApp) {
    let got: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let g = got.clone();
    tokio::spawn(async move {
        let r = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |uri: axum::http::Uri| {
                let g = g.clone();
                async move {
                    g.lock().unwrap().push(uri.query().unwrap_or("").to_owned());
                    "ok"
                }
            }),
        );
        let _ = axum::serve(listener, r).await;
    });
    let url = format!("http://hookuser:pa55word@127.0.0.1:{port}/hook?token=s3cr3t-tok&v=2");
    let secrets = ["pa55word", "hookuser", "s3cr3t-tok"];
    let shows_none = |what: &str, text: &str| {
        for s in secrets {
            assert!(!text.contains(s), "{what} shows {s}: {text}");
        }
    };
    let global = crate::common::admin_key(&app.db.store, None, false).await;
    let created = api(
        app,
        &global,
        Method::POST,
        "/webhooks",
        Some(&json!({"url": url, "org": "acme", "events": ["user.created"]})),
    )
    .await
    .expect(201);
    let id = created.id();
    shows_none("the create answer", &created.body.to_string());
    let shown = created.body["url"].as_str().unwrap().to_owned();
    assert!(shown.contains(&format!("127.0.0.1:{port}/hook")), "{shown}");
    assert!(shown.contains("token="), "the query's names stay: {shown}");
    let list = api(app, &global, Method::GET, "/webhooks", None)
        .await
        .expect(200);
    shows_none("the list", &list.body.to_string());
    let one = api(app, &global, Method::GET, &format!("/webhooks/{id}"), None)
        .await
        .expect(200);
    shows_none("the endpoint", &one.body.to_string());
    let events = api(app, &global, Method::GET, "/events?limit=200", None)
        .await
        .expect(200);
    assert!(
        events.body.to_string().contains("webhook.created"),
        "{}",
        events.body
    );
    shows_none("the event feed", &events.body.to_string());

    // The row itself.
    let pool = crate::lifecycle::raw(&app.db.location()).await;
    let row = sqlx::query("SELECT * FROM webhook_endpoints WHERE id = $1")
        .bind(&id)
        .fetch_one(&pool)
        .await
        .unwrap();
    use sqlx::Row;
    for i in 0..row.len() {
        if let Ok(Some(text)) = row.try_get::<Option<String>, _>(i) {
            shows_none("the database row", &text);
        }
    }
    let audit = sqlx::query("SELECT body FROM audit_log")
        .fetch_all(&pool)
        .await
        .unwrap();
    for r in audit {
        shows_none("the audit log", &r.get::<String, _>(0));
    }
    pool.close().await;

    // The console.
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = crate::console::sign_in(app, &browser, &global).await;
    assert_eq!(r.status(), 303);
    for path in [
        "/console/webhooks".to_owned(),
        format!("/console/webhooks/{id}"),
    ] {
        let page = browser
            .get(format!("{}{path}", app.base()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            page.contains(&format!("127.0.0.1:{port}")),
            "{path}: {page}"
        );
        shows_none(&path, &page);
    }

    // Deliveries go to the real URL.
    app.user("hooked@x.com").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while got.lock().unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "no delivery");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(got.lock().unwrap()[0], "token=s3cr3t-tok&v=2");
}

/// A row from before URLs were encrypted (plaintext URL, no ciphertext) is sealed when a
/// server starts on the database, and its deliveries still reach the real URL.
async fn plaintext_webhook_urls_are_sealed_at_start(app: &TestApp) {
    let got: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let g = got.clone();
    tokio::spawn(async move {
        let r = axum::Router::new().route(
            "/legacy",
            axum::routing::post(move |uri: axum::http::Uri| {
                let g = g.clone();
                async move {
                    g.lock().unwrap().push(uri.query().unwrap_or("").to_owned());
                    "ok"
                }
            }),
        );
        let _ = axum::serve(listener, r).await;
    });
    let url = format!("http://127.0.0.1:{port}/legacy?key=old-s3cret");
    let global = crate::common::admin_key(&app.db.store, None, false).await;
    let id = api(
        app,
        &global,
        Method::POST,
        "/webhooks",
        Some(&json!({"url": url, "org": "acme", "events": ["user.created"]})),
    )
    .await
    .expect(201)
    .id();
    // Back to how rows were before: the URL in plaintext.
    let pool = crate::lifecycle::raw(&app.db.location()).await;
    sqlx::query("UPDATE webhook_endpoints SET url = $1, url_enc = NULL WHERE id = $2")
        .bind(&url)
        .bind(&id)
        .execute(&pool)
        .await
        .unwrap();
    let server = roster::http::Server::bind(
        "127.0.0.1:0",
        app.db.store.clone(),
        None,
        app.db.master_key(),
    )
    .await
    .unwrap();
    let node = tokio::spawn(async move {
        let _ = server.run(std::future::pending()).await;
    });
    use sqlx::Row;
    let row = sqlx::query("SELECT url, url_enc FROM webhook_endpoints WHERE id = $1")
        .bind(&id)
        .fetch_one(&pool)
        .await
        .unwrap();
    let shown: String = row.get(0);
    let enc: Option<String> = row.get(1);
    assert!(!shown.contains("old-s3cret"), "{shown}");
    assert!(enc.is_some_and(|e| !e.contains("old-s3cret")));
    pool.close().await;
    app.user("legacy@x.com").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while got.lock().unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "no delivery");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(got.lock().unwrap()[0], "key=old-s3cret");
    node.abort();
}

backend_tests!(
    plaintext_webhook_urls_are_sealed_at_start,
    scoped_oidc_issuers_reach_public_addresses_only,
    scoped_saml_metadata_urls_are_refused_unfetched,
    login_parameters_are_bounded,
    login_starts_are_rate_limited_per_address,
    webhook_urls_are_secrets,
);

/// The CLI shows webhook URLs redacted too, in JSON and in text.
#[test]
fn cli_shows_webhook_urls_redacted() {
    use crate::cli::roster;
    let dir = std::env::temp_dir().join(format!("roster-trust-{}", uuid::Uuid::new_v4()));
    roster(&dir, &["org", "create", "hooli", "--json"]);
    let url = "https://hookuser:pa55word@hooks.example/in?token=s3cr3t-tok";
    let created = roster(
        &dir,
        &[
            "webhook", "create", "--org", "hooli", "--url", url, "--json",
        ],
    );
    let listed = roster(&dir, &["webhook", "list", "--json"]);
    let text = std::process::Command::new(env!("CARGO_BIN_EXE_roster"))
        .arg("--data-dir")
        .arg(&dir)
        .args(["webhook", "list"])
        .env_remove("ROSTER_DATABASE_URL")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(text.contains("hooks.example/in"), "{text}");
    for out in [created.to_string(), listed.to_string(), text] {
        for s in ["pa55word", "hookuser", "s3cr3t-tok"] {
            assert!(!out.contains(s), "the CLI shows {s}: {out}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A connection the operator makes with the CLI may reach private networks; the operator can
/// turn that off and on again for an existing connection (the way back for connections
/// stored before the setting existed).
#[test]
fn operators_set_whether_a_connection_reaches_private_networks() {
    use crate::cli::roster;
    let dir = std::env::temp_dir().join(format!("roster-trust-{}", uuid::Uuid::new_v4()));
    roster(&dir, &["org", "create", "initrode", "--json"]);
    let c = roster(
        &dir,
        &[
            "connection",
            "create",
            "--org",
            "initrode",
            "--oidc-issuer",
            "https://idp.internal.example",
            "--client-id",
            "c",
            "--client-secret",
            "s",
            "--json",
        ],
    );
    assert_eq!(c["private_networks"], true, "{c}");
    let id = c["connection_id"].as_str().unwrap().to_owned();
    let listed = |dir: &std::path::Path| {
        roster(dir, &["connection", "list", "--json"])["connections"][0]["private_networks"].clone()
    };
    roster(
        &dir,
        &["connection", "private-networks", &id, "--off", "--json"],
    );
    assert_eq!(listed(&dir), false);
    roster(&dir, &["connection", "private-networks", &id, "--json"]);
    assert_eq!(listed(&dir), true);
    let _ = std::fs::remove_dir_all(&dir);
}
