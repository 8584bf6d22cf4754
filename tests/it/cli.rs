//! The `roster` binary's administration commands, run while a server uses the same data.

use std::process::Command;

use serde_json::Value;

use crate::common::{Backend, TestStore};

pub(crate) fn roster(dir: &std::path::Path, args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_roster"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("ROSTER_DATABASE_URL")
        .output()
        .expect("run roster");
    assert!(
        out.status.success(),
        "roster {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "roster {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_creates_org_directory_and_tokens_beside_a_running_server() {
    let db = TestStore::new(Backend::Sqlite).await;
    let roster::store::StoreLocation::SqliteDir(dir) = db.location() else {
        unreachable!()
    };
    let server = roster::http::Server::bind("127.0.0.1:0", db.store.clone(), None, db.master_key())
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let h = tokio::spawn(server.run(async {
        let _ = rx.await;
    }));

    let org = roster(
        &dir,
        &["org", "create", "initech", "--name", "Initech", "--json"],
    );
    assert_eq!(org["slug"], "initech");
    let d = roster(&dir, &["directory", "create", "--org", "initech", "--json"]);
    let token = d["token"].as_str().unwrap().to_owned();
    let dir_id = d["directory_id"].as_str().unwrap().to_owned();
    assert!(d["scim_base_url"].as_str().unwrap().ends_with("/scim/v2"));
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/scim/v2/Users");
    let r = client.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);

    // A second token, then revoke the first: it stops working within the token cache's TTL.
    let t2 = roster(
        &dir,
        &["directory", "token", "--directory", &dir_id, "--json"],
    );
    let first_id = d["token_id"].as_str().unwrap();
    roster(
        &dir,
        &[
            "directory",
            "token",
            "--directory",
            &dir_id,
            "--revoke",
            first_id,
            "--json",
        ],
    );
    tokio::time::sleep(roster::scim::auth::TTL + std::time::Duration::from_millis(100)).await;
    assert_eq!(
        client
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        401
    );
    assert_eq!(
        client
            .get(&url)
            .bearer_auth(t2["token"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    // Read-only token
    let ro = roster(
        &dir,
        &[
            "directory",
            "token",
            "--directory",
            &dir_id,
            "--read-only",
            "--json",
        ],
    );
    let r = client
        .post(&url)
        .bearer_auth(ro["token"].as_str().unwrap())
        .header("content-type", "application/scim+json")
        .body(r#"{"userName":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let tokens = roster(
        &dir,
        &[
            "directory",
            "token",
            "--directory",
            &dir_id,
            "--list",
            "--json",
        ],
    );
    assert_eq!(tokens["tokens"].as_array().unwrap().len(), 3);
    assert!(
        !tokens.to_string().contains(&token),
        "secrets are never listed"
    );

    let orgs = roster(&dir, &["org", "list", "--json"]);
    assert_eq!(orgs["organizations"][0]["slug"], "initech");
    let dirs = roster(&dir, &["directory", "list", "--json"]);
    assert_eq!(dirs["directories"][0]["directory_id"], dir_id);
    // Tokens are stored hashed only.
    for f in ["roster.db", "roster.db-wal"] {
        let raw = std::fs::read(dir.join(f)).unwrap_or_default();
        let needle = token.as_bytes();
        assert!(
            !raw.windows(needle.len()).any(|w| w == needle),
            "token stored in clear in {f}"
        );
    }

    let _ = tx.send(());
    let _ = h.await;
    db.cleanup().await;
}

pub(crate) fn roster_fails(dir: &std::path::Path, args: &[&str], envs: &[(&str, &str)]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_roster"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("ROSTER_DATABASE_URL")
        .envs(envs.iter().copied())
        .output()
        .expect("run roster");
    assert!(!out.status.success(), "roster {args:?} should have failed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn cli_sets_up_sso_and_keeps_secrets_encrypted() {
    let dir = std::env::temp_dir().join(format!("roster-cli-sso-{}", uuid::Uuid::new_v4()));
    roster(&dir, &["org", "create", "hooli", "--json"]);
    let d = roster(
        &dir,
        &["domain", "add", "--org", "hooli", "Hooli.TEST", "--json"],
    );
    assert_eq!(d["domain"], "hooli.test", "domains are normalized");
    let err = roster_fails(
        &dir,
        &["domain", "add", "--org", "hooli", "hooli.test"],
        &[],
    );
    assert!(err.contains("already claimed"), "{err}");
    // A claim made by mistake can be removed.
    roster(
        &dir,
        &["domain", "add", "--org", "hooli", "typo.test", "--json"],
    );
    let r = roster(
        &dir,
        &["domain", "remove", "--org", "hooli", "typo.test", "--json"],
    );
    assert_eq!(
        (r["removed"].as_str(), r["state"].as_str()),
        (Some("typo.test"), Some("pending"))
    );
    let err = roster_fails(
        &dir,
        &["domain", "remove", "--org", "hooli", "typo.test"],
        &[],
    );
    assert!(
        err.contains("not found") || err.contains("typo.test"),
        "{err}"
    );
    let list = roster(&dir, &["domain", "list", "--org", "hooli", "--json"]);
    assert_eq!(list["domains"].as_array().unwrap().len(), 1, "{list}");
    // Pending until DNS shows the challenge: a resolver that is not there leaves it pending
    // (and the command fails, saying why); the operator may vouch with --force.
    assert_eq!(d["state"], "pending");
    let err = roster_fails(
        &dir,
        &[
            "domain",
            "verify",
            "--org",
            "hooli",
            "hooli.test",
            "--dns-resolver",
            "127.0.0.1:9",
        ],
        &[],
    );
    assert!(err.contains("not verified"), "{err}");
    let v = roster(
        &dir,
        &[
            "domain",
            "verify",
            "--org",
            "hooli",
            "hooli.test",
            "--force",
            "--json",
        ],
    );
    assert_eq!(
        (v["state"].as_str(), v["verified_by"].as_str()),
        (Some("verified"), Some("operator"))
    );
    let list = roster(&dir, &["domain", "list", "--json"]);
    assert_eq!(list["domains"][0]["state"], "verified");

    let c = roster(
        &dir,
        &[
            "connection",
            "create",
            "--org",
            "hooli",
            "--idp",
            "entra",
            "--oidc-issuer",
            "https://login.example.test/tenant/v2.0",
            "--client-id",
            "cid",
            "--client-secret",
            "very-secret-value",
            "--jit",
            "create_and_update",
            "--directory-authoritative",
            "--domain",
            "Hooli.test",
            "--map",
            "groups=roles_claim",
            "--json",
        ],
    );
    let conn_id = c["connection_id"].as_str().unwrap();
    assert_eq!(c["protocol"], "oidc");
    assert_eq!(c["jit"], "create_and_update");
    assert!(
        c["redirect_uri"]
            .as_str()
            .unwrap()
            .ends_with("/sso/oidc/callback")
    );
    let list = roster(&dir, &["connection", "list", "--org", "hooli", "--json"]);
    assert_eq!(list["connections"][0]["connection_id"], conn_id);

    // SAML from a metadata file, with the default public URL (whose entity ids are longer
    // than an X.509 common name may be).
    let keys: Value =
        serde_json::from_str(&crate::sso_saml::idp(&["keys"], &serde_json::json!({}))).unwrap();
    let md = crate::sso_saml::idp(
        &["metadata", "--sso-url", crate::sso_saml::IDP_SSO],
        &serde_json::json!({"idp_entity_id": crate::sso_saml::IDP_ENTITY,
            "idp_cert_pem": keys["cert_pem"], "sso_url": crate::sso_saml::IDP_SSO}),
    );
    let md_file = dir.join("idp-metadata.xml");
    std::fs::write(&md_file, &md).unwrap();
    // …and from the IdP's metadata URL (served once here, over loopback HTTP).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let md_url = format!("http://{}/metadata", listener.local_addr().unwrap());
    let served = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut sock, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let n = sock.read(&mut buf).unwrap();
        let request = String::from_utf8_lossy(&buf[..n]).into_owned();
        write!(
            sock,
            "HTTP/1.1 200 OK\r\ncontent-type: application/samlmetadata+xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{md}",
            md.len()
        )
        .unwrap();
        request
    });
    let u = roster(
        &dir,
        &[
            "connection",
            "create",
            "--org",
            "hooli",
            "--idp",
            "okta",
            "--saml-metadata",
            &md_url,
            "--json",
        ],
    );
    assert_eq!(u["protocol"], "saml", "{u}");
    assert!(served.join().unwrap().starts_with("GET /metadata "));
    let err = roster_fails(
        &dir,
        &[
            "connection",
            "create",
            "--org",
            "hooli",
            "--saml-metadata",
            "http://idp.example.test/metadata",
        ],
        &[],
    );
    assert!(err.contains("https"), "{err}");
    let s = roster(
        &dir,
        &[
            "connection",
            "create",
            "--org",
            "hooli",
            "--idp",
            "okta",
            "--saml-metadata",
            md_file.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(s["protocol"], "saml", "{s}");
    let acs = s["acs_url"].as_str().unwrap();
    assert!(
        acs.ends_with(&format!(
            "/sso/saml/{}/acs",
            s["connection_id"].as_str().unwrap()
        )),
        "{s}"
    );

    // The client secret is encrypted at rest: not in the database file in clear.
    let db = std::fs::read(dir.join("roster.db")).unwrap();
    let wal = std::fs::read(dir.join("roster.db-wal")).unwrap_or_default();
    let needle = b"very-secret-value";
    for bytes in [&db, &wal] {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "secret stored in clear"
        );
    }

    let app = roster(
        &dir,
        &[
            "app",
            "create",
            "--name",
            "Web",
            "--redirect-uri",
            "https://app.example.test/cb",
            "--json",
        ],
    );
    assert!(app["client_id"].as_str().unwrap().starts_with("app_"));
    assert!(app["client_secret"].as_str().unwrap().starts_with("rsc_"));
    let apps = roster(&dir, &["app", "list", "--json"]);
    assert!(
        !apps
            .to_string()
            .contains(app["client_secret"].as_str().unwrap())
    );
    let err = roster_fails(
        &dir,
        &[
            "app",
            "create",
            "--redirect-uri",
            "http://app.example.test/cb",
        ],
        &[],
    );
    assert!(err.contains("https"), "{err}");

    let k1 = roster(&dir, &["keys", "rotate", "--json"]);
    let k2 = roster(&dir, &["keys", "rotate", "--json"]);
    assert_ne!(k1["kid"], k2["kid"]);
    let keys = roster(&dir, &["keys", "list", "--json"]);
    assert_eq!(keys["keys"][0]["kid"], k2["kid"]);
    assert!(keys["keys"][0]["retired_at"].is_null());
    assert!(keys["keys"][1]["retired_at"].is_string());

    // Another master key cannot use this database's secrets: refused, not garbled.
    let other = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let err = roster_fails(&dir, &["keys", "rotate"], &[("ROSTER_MASTER_KEY", other)]);
    assert!(err.contains("another master key"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--config` (or `ROSTER_CONFIG`) names a TOML file of defaults; flags override it, and an
/// unknown key is an error, not silently ignored.
#[test]
fn config_file_gives_defaults_that_flags_override() {
    let base = std::env::temp_dir().join(format!("roster-cfg-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&base).unwrap();
    let file = base.join("roster.toml");
    let from_file = base.join("from-file");
    std::fs::write(
        &file,
        format!(
            "data_dir = {:?}\nlisten = \"127.0.0.1:0\"\n",
            from_file.display().to_string()
        ),
    )
    .unwrap();
    let run = |args: &[&str], env: Option<&std::path::Path>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_roster"));
        c.args(args)
            .env_remove("ROSTER_DATABASE_URL")
            .env_remove("ROSTER_DATA_DIR");
        if let Some(p) = env {
            c.env("ROSTER_CONFIG", p);
        }
        c.output().expect("run roster")
    };
    let out = run(
        &[
            "--config",
            file.to_str().unwrap(),
            "org",
            "create",
            "filed",
            "--json",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(from_file.join("roster.db").exists());
    // The same file through the environment; the listing sees the organization.
    let out = run(&["org", "list", "--json"], Some(&file));
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["organizations"][0]["slug"], "filed");
    // A flag wins over the file.
    let flagged = base.join("flagged");
    let out = run(
        &[
            "--config",
            file.to_str().unwrap(),
            "--data-dir",
            flagged.to_str().unwrap(),
            "org",
            "list",
            "--json",
        ],
        None,
    );
    assert!(out.status.success());
    assert!(flagged.join("roster.db").exists());
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["organizations"], serde_json::json!([]));
    // Unknown keys are refused.
    std::fs::write(&file, "data_dri = \"x\"\n").unwrap();
    let out = run(&["--config", file.to_str().unwrap(), "org", "list"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field `data_dri`"));
    let _ = std::fs::remove_dir_all(&base);
}
