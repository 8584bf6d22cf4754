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

/// With `--scim-rate-limit`, a token over its rate gets 429 with `Retry-After` and a SCIM
/// error body; other tokens are not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim_tokens_are_rate_limited() {
    use roster::core::model::Actor;
    use roster::core::orgs::{self, OrgSlug};
    let db = crate::common::TestStore::new(crate::common::Backend::Sqlite).await;
    let org = orgs::create_org(
        &db.store,
        &OrgSlug::parse("acme").unwrap(),
        None,
        &Actor::Cli,
    )
    .await
    .unwrap();
    let (_, _, busy) = orgs::create_directory(&db.store, &org, None, false, &Actor::Cli)
        .await
        .unwrap();
    let (_, _, calm) = orgs::create_directory(&db.store, &org, None, false, &Actor::Cli)
        .await
        .unwrap();
    let server = roster::http::Server::bind("127.0.0.1:0", db.store.clone(), None, db.master_key())
        .await
        .unwrap()
        .scim_rate_limit(5);
    let url = format!("http://{}/scim/v2/Users", server.local_addr().unwrap());
    let h = tokio::spawn(server.run(std::future::pending()));
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..15 {
        let r = client.get(&url).bearer_auth(&busy).send().await.unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == StatusCode::TOO_MANY_REQUESTS && limited.is_none() {
            let retry = r.headers()["retry-after"].to_str().unwrap().to_owned();
            let body: serde_json::Value = r.json().await.unwrap();
            limited = Some((retry, body));
        }
    }
    // A burst of two seconds' worth passes; then the token waits.
    // (One more may pass if the requests took over 200 ms: the bucket refills at 5/s.)
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert!((10..=11).contains(&ok), "{statuses:?}");
    let (retry, body) = limited.expect("a 429");
    assert_eq!(retry, "1");
    assert_eq!(body["status"], "429");
    assert_eq!(
        body["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
    let other = client.get(&url).bearer_auth(&calm).send().await.unwrap();
    assert_eq!(other.status(), StatusCode::OK);
    h.abort();
    db.cleanup().await;
}

/// A self-signed certificate for 127.0.0.1 (PEM certificate, PEM PKCS#8 key).
fn localhost_cert() -> (Vec<u8>, Vec<u8>) {
    use openssl::asn1::Asn1Time;
    use openssl::bn::{BigNum, MsbOption};
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::x509::extension::{ExtendedKeyUsage, SubjectAlternativeName};
    use openssl::x509::{X509Builder, X509NameBuilder};
    let key = PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "roster test").unwrap();
    let name = name.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    let mut serial = BigNum::new().unwrap();
    serial.rand(64, MsbOption::MAYBE_ZERO, false).unwrap();
    b.set_serial_number(&serial.to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(1).unwrap())
        .unwrap();
    let san = SubjectAlternativeName::new()
        .ip("127.0.0.1")
        .build(&b.x509v3_context(None, None))
        .unwrap();
    b.append_extension(san).unwrap();
    b.append_extension(ExtendedKeyUsage::new().server_auth().build().unwrap())
        .unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    (
        b.build().to_pem().unwrap(),
        key.private_key_to_pem_pkcs8().unwrap(),
    )
}

/// Every response says `X-Content-Type-Options: nosniff` (SCIM, admin API, OpenID provider,
/// console, SSO, errors, 404s); pages without a policy of their own, among them the SSO
/// error pages, get a strict Content-Security-Policy that forbids framing; HSTS is for TLS
/// only (see `serves_https_with_a_pem_certificate`).
async fn security_headers_on_every_response(app: &TestApp) {
    let base = app.base();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let sso_pages = [
        "/sso/oidc/callback",
        "/sso/oidc/callback?state=unknown&code=x",
        "/sso/saml/no-such-connection/metadata",
        "/sso/saml/continue",
    ];
    let mut paths = vec![
        ("GET", "/healthz"),
        ("GET", "/metrics"),
        ("GET", "/scim/v2/Users"),
        ("GET", "/scim/v2/ServiceProviderConfig"),
        ("GET", "/scim/v2/NoSuchResource"),
        ("GET", "/api/v1/orgs"),
        ("GET", "/api/v1/openapi.json"),
        ("GET", "/.well-known/openid-configuration"),
        ("GET", "/oauth/jwks"),
        ("GET", "/oauth/authorize"),
        ("POST", "/oauth/token"),
        ("GET", "/console"),
        ("GET", "/console/login"),
        ("GET", "/console/assets/console.css"),
        ("GET", "/setup"),
        ("GET", "/no/such/page"),
        ("DELETE", "/healthz"),
    ];
    paths.extend(sso_pages.iter().map(|p| ("GET", *p)));
    for (method, path) in paths {
        let r = client
            .request(method.parse().unwrap(), format!("{base}{path}"))
            .send()
            .await
            .unwrap();
        let h = r.headers();
        assert_eq!(
            h.get("x-content-type-options").map(|v| v.to_str().unwrap()),
            Some("nosniff"),
            "{method} {path} ({})",
            r.status()
        );
        assert!(
            h.get("strict-transport-security").is_none(),
            "{method} {path}: no HSTS over plain HTTP"
        );
    }
    for path in sso_pages {
        let r = client.get(format!("{base}{path}")).send().await.unwrap();
        assert!(r.status().is_client_error(), "{path}: {}", r.status());
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{path}"
        );
        let csp = r
            .headers()
            .get("content-security-policy")
            .unwrap_or_else(|| panic!("{path}: no CSP"))
            .to_str()
            .unwrap()
            .to_owned();
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
    }
    // The console keeps its own policy.
    let r = client
        .get(format!("{base}/console/login"))
        .send()
        .await
        .unwrap();
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("style-src 'self'"), "{csp}");
}

backend_tests!(security_headers_on_every_response);

/// `--tls-cert/--tls-key`: the server speaks HTTPS (rustls) and still shuts down cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_https_with_a_pem_certificate() {
    let db = crate::common::TestStore::new(crate::common::Backend::Sqlite).await;
    let dir = std::env::temp_dir().join(format!("roster-tls-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = localhost_cert();
    std::fs::write(dir.join("cert.pem"), &cert).unwrap();
    std::fs::write(dir.join("key.pem"), &key).unwrap();
    let server = roster::http::Server::bind_tls(
        "127.0.0.1:0",
        db.store.clone(),
        None,
        db.master_key(),
        Some((&dir.join("cert.pem"), &dir.join("key.pem"))),
    )
    .await
    .unwrap();
    let addr = server.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let h = tokio::spawn(server.run(async {
        let _ = rx.await;
    }));
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&cert).unwrap())
        .build()
        .unwrap();
    let r = client
        .get(format!("https://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Served over TLS by Roster itself: browsers are told to keep to HTTPS.
    let hsts = r.headers()["strict-transport-security"].to_str().unwrap();
    assert!(hsts.starts_with("max-age="), "{hsts}");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.text().await.unwrap(), "ok");
    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = reqwest::get(format!("http://{addr}/healthz")).await;
    assert!(plain.map_or(true, |r| !r.status().is_success()));
    // A clean shutdown finishes.
    tx.send(()).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), h)
        .await
        .expect("shut down")
        .unwrap()
        .unwrap();
    // A missing key file is a clear start-up error.
    let err = roster::http::Server::bind_tls(
        "127.0.0.1:0",
        db.store.clone(),
        None,
        db.master_key(),
        Some((&dir.join("cert.pem"), &dir.join("missing.pem"))),
    )
    .await
    .err()
    .expect("refused");
    assert!(err.to_string().contains("missing.pem"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
    db.cleanup().await;
}
