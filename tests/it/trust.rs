//! What Roster vouches for (docs/trust.md): domains verified through a real DNS server
//! (Debian's dnsmasq on a loopback port, asked by Roster's hickory resolver), what a
//! connection may assert, and when the email Roster signs is `email_verified`.

use std::net::SocketAddr;
use std::process::Stdio;

use reqwest::Method;
use roster::core::model::Actor;
use roster::core::orgs::{self, OrgSlug};
use roster::core::store::prelude::*;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::common::{Backend, TestApp, admin_key, install_once, verified_domain};
use crate::sso_oidc::{
    Browser, Client, Idp, Landing, code_of, login, login_url, oidc_connection, oidc_org,
    verify_id_token,
};

/// A real DNS server (dnsmasq) on a loopback port, answering the TXT records it is given;
/// `serve` restarts it with new records on the same port.
///
/// The port comes from below the kernel's ephemeral range, free for both UDP and TCP
/// (dnsmasq binds both): a port handed out by `bind(0)` can be taken by any outgoing
/// connection of a parallel test between two restarts.
struct Dns {
    addr: SocketAddr,
    child: Option<tokio::process::Child>,
}

impl Dns {
    fn new() -> Dns {
        install_once("install-dns-peer.sh", "Debian's dnsmasq-base");
        use rand::Rng;
        let mut rng = rand::thread_rng();
        for _ in 0..200 {
            let port: u16 = rng.gen_range(20_000..32_000);
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            if std::net::UdpSocket::bind(addr).is_ok() && std::net::TcpListener::bind(addr).is_ok()
            {
                return Dns { addr, child: None };
            }
        }
        panic!("no free port for dnsmasq below the ephemeral range");
    }

    async fn serve(&mut self, records: &[(&str, &str)]) {
        // A restart can find the port not yet released by the old process: try again.
        let mut last = String::new();
        for _ in 0..5 {
            match self.try_serve(records).await {
                Ok(()) => return,
                Err(e) => last = e,
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        panic!("dnsmasq did not answer on {}: {last}", self.addr);
    }

    async fn try_serve(&mut self, records: &[(&str, &str)]) -> Result<(), String> {
        if let Some(mut old) = self.child.take() {
            let _ = old.kill().await;
        }
        let mut cmd = tokio::process::Command::new("/usr/sbin/dnsmasq");
        cmd.args([
            "--keep-in-foreground",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--conf-file=/dev/null",
            // Authoritative for .test: an unknown name there is NXDOMAIN, not REFUSED.
            "--local=/test/",
            "--pid-file",
            "--user=root",
            "--group=root",
            "--log-facility=-",
        ])
        .arg(format!("--port={}", self.addr.port()));
        for (name, value) in records {
            // No shell: the value is passed as it is (dnsmasq would keep quotes).
            cmd.arg(format!("--txt-record={name},{value}"));
        }
        // Its log goes to a file: read when it exits early, never a pipe that could fill.
        let log_path =
            std::env::temp_dir().join(format!("roster-dnsmasq-{}.log", self.addr.port()));
        let log = std::fs::File::create(&log_path).map_err(|e| format!("dnsmasq log: {e}"))?;
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("start dnsmasq: {e}"))?;
        // Ready when it answers (NXDOMAIN for an unknown name is an answer; a REFUSED
        // from no server at all is not).
        let resolver = roster::dns::Resolver::new(Some(self.addr));
        for _ in 0..50 {
            if let Ok(Some(status)) = child.try_wait() {
                let err = std::fs::read_to_string(&log_path).unwrap_or_default();
                return Err(format!("dnsmasq exited ({status}): {}", err.trim()));
            }
            use roster::core::domains::TxtResolver;
            if resolver.txt("ready.test").await.is_ok() {
                self.child = Some(child);
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Err("no answer within the wait".into())
    }
}

async fn admin(app: &TestApp, key: &str, method: Method, path: &str, body: &Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .request(method, format!("{}/api/v1{path}", app.base()))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .expect("admin API");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A claimed domain is pending until Roster finds its challenge in DNS; a missing or wrong
/// record leaves it pending with the reason; only an operator may skip DNS; a verified
/// domain routes logins and cannot be claimed by another organization.
async fn domains_are_verified_through_dns(backend: Backend) {
    let mut dns = Dns::new();
    let addr = dns.addr;
    let app = TestApp::start_with(backend, move |s| s.dns_resolver(Some(addr))).await;
    let store = &app.db.store;
    let acme_key = admin_key(store, Some("acme"), false).await;
    let global_key = admin_key(store, None, false).await;

    let (status, d) = admin(
        &app,
        &acme_key,
        Method::POST,
        "/orgs/acme/domains",
        &json!({"domain": "Acme.Test"}),
    )
    .await;
    assert_eq!(status, 201, "{d}");
    assert_eq!(d["state"], "pending");
    let name = d["record_name"].as_str().unwrap().to_owned();
    let value = d["record_value"].as_str().unwrap().to_owned();
    assert_eq!(name, "_roster-challenge.acme.test");
    // A pending claim routes nothing.
    assert!(store.org_by_domain("acme.test").await.unwrap().is_none());

    let verify = |key: String, body: Value| {
        let app = &app;
        async move {
            admin(
                app,
                &key,
                Method::POST,
                "/orgs/acme/domains/acme.test/verify",
                &body,
            )
            .await
        }
    };

    // No record at all.
    dns.serve(&[]).await;
    // (A server that refuses to answer is a failed lookup, not a missing record.)
    {
        use roster::core::domains::TxtResolver;
        let refused = roster::dns::Resolver::new(Some(dns.addr))
            .txt("_roster-challenge.outside.example")
            .await;
        assert!(
            refused.as_ref().is_err_and(|e| e.contains("Refused")),
            "{refused:?}"
        );
    }
    let (status, d) = verify(acme_key.clone(), json!({})).await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["state"], "pending");
    assert!(
        d["check_error"]
            .as_str()
            .is_some_and(|e| e.contains("no TXT record")),
        "{d}"
    );
    assert!(d["checked_at"].is_string(), "{d}");

    // A record with another value (another organization's challenge, say).
    dns.serve(&[(&name, "roster-domain-verification=not-yours")])
        .await;
    let (_, d) = verify(acme_key.clone(), json!({})).await;
    assert_eq!(d["state"], "pending", "{d}");
    assert!(
        d["check_error"]
            .as_str()
            .is_some_and(|e| e.contains("do not include")),
        "{d}"
    );
    assert!(store.org_by_domain("acme.test").await.unwrap().is_none());

    // An organization's own key cannot vouch for its domain.
    let (status, body) = verify(acme_key.clone(), json!({"force": true})).await;
    assert_eq!(status, 403, "{body}");
    assert!(store.org_by_domain("acme.test").await.unwrap().is_none());

    // The right record (among others): verified by DNS.
    dns.serve(&[(&name, "v=spf1 -all"), (&name, &value)]).await;
    let (status, d) = verify(acme_key.clone(), json!({})).await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["state"], "verified", "{d}");
    assert_eq!(d["verified_by"], "dns");
    assert!(d["check_error"].is_null(), "{d}");
    let owner = store.org_by_domain("acme.test").await.unwrap().unwrap();
    assert_eq!(owner.slug, "acme");

    // Another organization cannot claim it now, even with acme's record published.
    let (status, _) = admin(
        &app,
        &global_key,
        Method::POST,
        "/orgs",
        &json!({"slug": "rival"}),
    )
    .await;
    assert_eq!(status, 201);
    let (status, body) = admin(
        &app,
        &global_key,
        Method::POST,
        "/orgs/rival/domains",
        &json!({"domain": "acme.test"}),
    )
    .await;
    assert_eq!(status, 409, "{body}");

    // An operator may vouch without DNS.
    let (status, _) = admin(
        &app,
        &acme_key,
        Method::POST,
        "/orgs/acme/domains",
        &json!({"domain": "acme-corp.test"}),
    )
    .await;
    assert_eq!(status, 201);
    let (status, d) = admin(
        &app,
        &global_key,
        Method::POST,
        "/orgs/acme/domains/acme-corp.test/verify",
        &json!({"force": true}),
    )
    .await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(
        (d["state"].as_str(), d["verified_by"].as_str()),
        (Some("verified"), Some("operator"))
    );
    // The feed tells the app.
    let (_, feed) = admin(
        &app,
        &global_key,
        Method::GET,
        "/events?after=0&limit=100",
        &Value::Null,
    )
    .await;
    let kinds: Vec<&str> = feed["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["type"].as_str())
        .filter(|k| k.starts_with("domain."))
        .collect();
    assert_eq!(
        kinds,
        [
            "domain.added",
            "domain.verified",
            "domain.added",
            "domain.verified"
        ],
        "{feed}"
    );
    app.stop().await;
}

/// The customer's setup page claims a domain, shows the record to publish and checks DNS;
/// the console shows the state and the record too. A setup link cannot vouch without DNS.
async fn setup_page_and_console_show_domains(backend: Backend) {
    let mut dns = Dns::new();
    let addr = dns.addr;
    let app = TestApp::start_with(backend, move |s| s.dns_resolver(Some(addr))).await;
    let store = &app.db.store;
    let org = store.org_by_slug("acme").await.unwrap().unwrap();
    let (_, token) = roster::console::setup_page::create_link(store, &org, 3600, &Actor::Cli)
        .await
        .unwrap();
    let b = Browser::new();
    let base = app.base();
    b.http
        .get(format!("{base}/setup/{token}"))
        .send()
        .await
        .unwrap();
    let page = || async {
        b.http
            .get(format!("{base}/setup"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let home = page().await;
    let csrf = crate::console::csrf(&home);
    let r = b
        .http
        .post(format!("{base}/setup/domains"))
        .form(&[("csrf", csrf.as_str()), ("domain", "Acme-Setup.test")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let d = roster::core::domains::domain_of(store, &org, "acme-setup.test")
        .await
        .unwrap();
    let home = page().await;
    assert!(
        home.contains("acme-setup.test") && home.contains("pending"),
        "{home}"
    );
    assert!(
        home.contains(&d.record_name()) && home.contains(&d.record_value()),
        "{home}"
    );
    // The setup page has no way to skip DNS: a forged force is ignored.
    dns.serve(&[]).await;
    let r = b
        .http
        .post(format!("{base}/setup/domains/verify"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("domain", "acme-setup.test"),
            ("force", "true"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(
        store
            .org_by_domain("acme-setup.test")
            .await
            .unwrap()
            .is_none()
    );
    assert!(page().await.contains("no TXT record"));
    dns.serve(&[(&d.record_name(), &d.record_value())]).await;
    b.http
        .post(format!("{base}/setup/domains/verify"))
        .form(&[("csrf", csrf.as_str()), ("domain", "acme-setup.test")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        store
            .org_by_domain("acme-setup.test")
            .await
            .unwrap()
            .map(|o| o.slug)
            .as_deref(),
        Some("acme")
    );
    assert!(page().await.contains("verified"));

    // The console lists it, verified, with its record; a pending claim shows its record.
    roster::core::domains::claim(store, &org, "acme-later.test", &Actor::Cli)
        .await
        .unwrap();
    let key = admin_key(store, None, false).await;
    let console = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    assert_eq!(
        crate::console::sign_in(&app, &console, &key).await.status(),
        303
    );
    let html = console
        .get(format!("{base}/console/orgs/acme/domains"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("acme-setup.test") && html.contains("verified"),
        "{html}"
    );
    assert!(html.contains("_roster-challenge.acme-later.test"), "{html}");
    assert!(html.contains("Check DNS"), "{html}");
    app.stop().await;
}

#[tokio::test]
async fn setup_page_and_console_show_domains_sqlite() {
    setup_page_and_console_show_domains(Backend::Sqlite).await;
}

#[tokio::test]
async fn setup_page_and_console_show_domains_postgres() {
    setup_page_and_console_show_domains(Backend::Postgres).await;
}

/// The ID token's email claims after a login.
async fn email_claims(app: &TestApp, client: &Client, url: &str, verifier: &str) -> Value {
    let landing = Browser::new().follow(url).await;
    let code = code_of(&landing);
    let (status, tokens) = client.redeem(app, &code, verifier).await;
    assert_eq!(status, 200, "{tokens}");
    let claims = verify_id_token(app, client, tokens["id_token"].as_str().unwrap()).await;
    json!({"sub": claims["sub"], "email": claims["email"], "email_verified": claims["email_verified"]})
}

fn refused(landing: Landing, needle: &str) {
    match landing {
        Landing::Page(status, body) => {
            assert_eq!(status, 403, "{body}");
            assert!(body.contains(needle), "expected {needle:?} in {body}");
        }
        other => panic!("login should have been refused ({needle}): {other:?}"),
    }
}

/// The "nOAuth" class: an IdP that says an address is unverified, or an address in another
/// customer's domain, never replaces the stored email of a `create_and_update` connection,
/// and Roster's `email_verified` says what Roster checked.
async fn unverified_or_foreign_emails_never_replace_or_verify(app: &TestApp) {
    let idp = Idp::for_app(app, &["--claims-in-id-token"]).await;
    idp.account(
        "ann",
        json!({"email": "ann@nimbus.test", "email_verified": true, "given_name": "Ann"}),
    )
    .await;
    let (org, _conn) = oidc_org(app, &idp, "nimbus", |c| {
        c.jit = roster::core::sso::JitMode::CreateAndUpdate;
    })
    .await;
    let client = Client::register(app).await;
    let (url, verifier) = login_url(app, &client, "nimbus", "ann");
    let first = email_claims(app, &client, &url, &verifier).await;
    assert_eq!(first["email"], "ann@nimbus.test");
    assert_eq!(first["email_verified"], true, "{first}");

    // Another customer's domain (verified by that customer), and an unverified address,
    // each asserted by the IdP at a later login: neither is written, the token keeps the
    // stored address, still vouched for.
    let other = orgs::create_org(
        &app.db.store,
        &OrgSlug::parse("other-customer").unwrap(),
        None,
        &Actor::Cli,
    )
    .await
    .unwrap();
    verified_domain(&app.db.store, &other, "other-customer.test").await;
    for claims in [
        json!({"email": "ceo@other-customer.test", "email_verified": true, "given_name": "Ann"}),
        json!({"email": "ceo@nimbus.test", "email_verified": false, "given_name": "Annie"}),
    ] {
        idp.account("ann", claims.clone()).await;
        let (url, verifier) = login_url(app, &client, "nimbus", "ann");
        let later = email_claims(app, &client, &url, &verifier).await;
        assert_eq!(later["sub"], first["sub"], "{claims}");
        assert_eq!(later["email"], "ann@nimbus.test", "{claims}");
        assert_eq!(later["email_verified"], true, "{claims}");
    }
    // Names still refresh (the unverified login said Annie).
    let scope = roster::core::model::Scope {
        org: org.id.clone(),
        actor: Actor::Cli,
    };
    let ann = app
        .db
        .store
        .get_user(&scope, first["sub"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ann.attrs["name"]["givenName"], "Annie");
    assert_eq!(
        ann.attrs["emails"].as_array().unwrap().len(),
        1,
        "{:?}",
        ann.attrs
    );

    // A user added by hand (no directory, no vouching login yet): its address is stated but
    // not vouched for; once a serving connection's IdP vouches for it at login, it is.
    let key = admin_key(&app.db.store, None, false).await;
    let (status, hand) = admin(
        app,
        &key,
        Method::POST,
        "/orgs/nimbus/users",
        &json!({"user_name": "bea@nimbus.test", "email": "bea@nimbus.test"}),
    )
    .await;
    assert_eq!(status, 201, "{hand}");
    idp.account(
        "bea",
        json!({"email": "bea@nimbus.test", "email_verified": false}),
    )
    .await;
    // The IdP does not vouch: no match by email, so no account to link (and JIT refuses).
    refused(
        login(app, &client, "nimbus", "bea").await.0,
        "did not verify",
    );
    idp.account(
        "bea",
        json!({"email": "bea@nimbus.test", "email_verified": true}),
    )
    .await;
    let (url, verifier) = login_url(app, &client, "nimbus", "bea");
    let bea = email_claims(app, &client, &url, &verifier).await;
    assert_eq!(bea["sub"], hand["id"], "linked to the hand-made account");
    assert_eq!(bea["email_verified"], true, "{bea}");
    // Deleting the user deletes its IdP links: what they vouched for passes to no one.
    let bea_id = bea["sub"].as_str().unwrap().to_owned();
    assert_eq!(
        app.db
            .store
            .identities_of(&scope, &bea_id)
            .await
            .unwrap()
            .len(),
        1
    );
    let (status, _) = admin(
        app,
        &key,
        Method::DELETE,
        &format!("/orgs/nimbus/users/{bea_id}"),
        &Value::Null,
    )
    .await;
    assert_eq!(status, 204);
    assert!(
        app.db
            .store
            .identities_of(&scope, &bea_id)
            .await
            .unwrap()
            .is_empty()
    );

    // The directory's word: a SCIM user in a verified domain is vouched for; one whose
    // address is in a domain the organization has not verified is not.
    let token = app.directory_token("nimbus", false).await;
    for (user_name, verified) in [("cy@nimbus.test", true), ("cy@unclaimed.test", false)] {
        let made = app
            .call_with(
                &token,
                Method::POST,
                "/Users",
                Some(&json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": user_name, "externalId": format!("ext-{user_name}"),
                    "emails": [{"value": user_name, "primary": true}]
                })),
                &[],
            )
            .await
            .expect(201);
        let user = app
            .db
            .store
            .get_user(&scope, made.body["id"].as_str().unwrap())
            .await
            .unwrap()
            .unwrap();
        let claim = roster::core::trust::email_claim(&app.db.store, &scope, &user)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (claim.email.as_str(), claim.verified),
            (user_name, verified)
        );
    }
}

/// A connection serves only its domains: it cannot sign in, link, or feed roles to a user
/// of a domain it does not serve, even one the organization verified; and a user linked to
/// one subject is not taken over by another subject of the same connection.
async fn a_connection_asserts_only_its_domains(app: &TestApp) {
    let idp = Idp::for_app(app, &["--claims-in-id-token"]).await;
    let (org, main) = oidc_org(app, &idp, "orbit", |_| {}).await;
    verified_domain(&app.db.store, &org, "partners.test").await;
    let partners = oidc_connection(app, &org, &idp.issuer, |c| {
        c.domains = vec!["partners.test".into()];
    })
    .await;
    {
        use roster::core::store::prelude::*;
        let m =
            roster::core::roles::new_mapping(&org.id, "displayName", "Admins", "admin").unwrap();
        app.db
            .store
            .insert_role_mapping(&m, &Actor::Cli)
            .await
            .unwrap();
    }
    let client = Client::register(app).await;
    let through = |conn: &str, sub: &str| {
        let (url, verifier) = login_url(app, &client, "orbit", sub);
        (format!("{url}&connection={conn}"), verifier)
    };

    idp.account(
        "dee",
        json!({"email": "dee@orbit.test", "email_verified": true}),
    )
    .await;
    let (url, verifier) = through(&main.id, "dee");
    let dee = email_claims(app, &client, &url, &verifier).await;
    assert_eq!(dee["email_verified"], true);

    // The partners connection's IdP asserts Dee's address (verified) with an admin group:
    // refused, and no role is granted.
    idp.account(
        "dee-at-partner",
        json!({"email": "dee@orbit.test", "email_verified": true, "groups": ["Admins"]}),
    )
    .await;
    let (url, _) = through(&partners.id, "dee-at-partner");
    refused(Browser::new().follow(&url).await, "does not serve");
    let scope = roster::core::model::Scope {
        org: org.id.clone(),
        actor: Actor::Cli,
    };
    let user = app
        .db
        .store
        .get_user(&scope, dee["sub"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(user.roles.is_empty(), "{:?}", user.roles);

    // Nor can it create accounts outside its domains…
    idp.account(
        "new-at-partner",
        json!({"email": "new@orbit.test", "email_verified": true}),
    )
    .await;
    let (url, _) = through(&partners.id, "new-at-partner");
    refused(Browser::new().follow(&url).await, "orbit.test");
    // …while its own domain works, and its group claims then count.
    idp.account(
        "pat",
        json!({"email": "pat@partners.test", "email_verified": true, "groups": ["Admins"]}),
    )
    .await;
    let (url, verifier) = through(&partners.id, "pat");
    let pat = email_claims(app, &client, &url, &verifier).await;
    let pat_user = app
        .db
        .store
        .get_user(&scope, pat["sub"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pat_user.roles, ["admin"]);

    // A second subject of the main connection claiming Dee's address does not take over
    // the account Dee's subject is linked to.
    idp.account(
        "mallory",
        json!({"email": "Dee@Orbit.test", "email_verified": true}),
    )
    .await;
    let (url, _) = through(&main.id, "mallory");
    refused(
        Browser::new().follow(&url).await,
        "linked to another identity",
    );

    // An address that only folds (NFKC) into Dee's is not Dee's: nothing matches or is
    // created. Nor does an IdP's email_verified speak for a username claim.
    idp.account(
        "fold",
        json!({"email": "\u{FF24}ee@orbit.test", "email_verified": true}),
    )
    .await;
    let (url, _) = through(&main.id, "fold");
    refused(Browser::new().follow(&url).await, "did not verify");
    let by_username = oidc_connection(app, &org, &idp.issuer, |c| {
        c.attribute_map.email = vec!["preferred_username".into()];
    })
    .await;
    idp.account(
        "chooser",
        json!({"preferred_username": "dee@orbit.test", "email_verified": true}),
    )
    .await;
    let (url, _) = through(&by_username.id, "chooser");
    refused(Browser::new().follow(&url).await, "did not verify");

    // A domain the organization only claimed (pending) neither routes nor creates.
    roster::core::domains::claim(&app.db.store, &org, "pending-orbit.test", &Actor::Cli)
        .await
        .unwrap();
    idp.account(
        "pen",
        json!({"email": "pen@pending-orbit.test", "email_verified": true}),
    )
    .await;
    let (url, _) = through(&main.id, "pen");
    refused(Browser::new().follow(&url).await, "pending-orbit.test");
    let mut routed = url::Url::parse(&format!("{}/oauth/authorize", app.base())).unwrap();
    routed
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client.id)
        .append_pair("redirect_uri", &client.redirect)
        .append_pair("scope", "openid email")
        .append_pair("domain_hint", "pending-orbit.test");
    match Browser::new().follow(routed.as_str()).await {
        Landing::App(url) => {
            let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
            assert_eq!(
                q.get("error").map(String::as_str),
                Some("access_denied"),
                "{url}"
            );
            assert!(!q.contains_key("code"), "{url}");
        }
        other => panic!("expected an error for the app: {other:?}"),
    }
}

/// A claim can be removed, pending or verified, by a key of its organization (not a
/// read-only one, not another organization's): a verified domain then routes nothing, and
/// another organization may claim it.
async fn a_removed_domain_routes_nothing(app: &TestApp) {
    let store = &app.db.store;
    let acme_key = admin_key(store, Some("acme"), false).await;
    let reader = admin_key(store, Some("acme"), true).await;
    let global_key = admin_key(store, None, false).await;
    app.directory_token("globex", false).await;
    let globex_key = admin_key(store, Some("globex"), false).await;
    let path = "/orgs/acme/domains/acme.test";
    let (status, _) = admin(
        app,
        &acme_key,
        Method::POST,
        "/orgs/acme/domains",
        &json!({"domain": "acme.test"}),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = admin(
        app,
        &global_key,
        Method::POST,
        &format!("{path}/verify"),
        &json!({"force": true}),
    )
    .await;
    assert_eq!(status, 200);
    assert!(store.org_by_domain("acme.test").await.unwrap().is_some());

    // Not by a read-only key, not by another organization's (which sees no such org).
    let (status, _) = admin(app, &reader, Method::DELETE, path, &Value::Null).await;
    assert_eq!(status, 403);
    let (status, _) = admin(app, &globex_key, Method::DELETE, path, &Value::Null).await;
    assert_eq!(status, 404);
    assert!(store.org_by_domain("acme.test").await.unwrap().is_some());

    let (status, d) = admin(
        app,
        &acme_key,
        Method::DELETE,
        "/orgs/acme/domains/ACME.test",
        &Value::Null,
    )
    .await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(
        (d["domain"].as_str(), d["state"].as_str()),
        (Some("acme.test"), Some("verified"))
    );
    assert!(store.org_by_domain("acme.test").await.unwrap().is_none());
    assert!(
        store
            .verified_domains(&store.org_by_slug("acme").await.unwrap().unwrap().id)
            .await
            .unwrap()
            .is_empty()
    );
    let (status, _) = admin(app, &acme_key, Method::DELETE, path, &Value::Null).await;
    assert_eq!(status, 404);
    // The domain is free again.
    let (status, _) = admin(
        app,
        &globex_key,
        Method::POST,
        "/orgs/globex/domains",
        &json!({"domain": "acme.test"}),
    )
    .await;
    assert_eq!(status, 201);
    let (_, feed) = admin(
        app,
        &global_key,
        Method::GET,
        "/events?after=0&limit=100",
        &Value::Null,
    )
    .await;
    let removed: Vec<&Value> = feed["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "domain.removed")
        .collect();
    assert_eq!(removed.len(), 1, "{feed}");
    assert_eq!(
        removed[0]["data"],
        json!({"domain": "acme.test", "state": "verified"})
    );
}

#[tokio::test]
async fn domains_are_verified_through_dns_sqlite() {
    domains_are_verified_through_dns(Backend::Sqlite).await;
}

#[tokio::test]
async fn domains_are_verified_through_dns_postgres() {
    domains_are_verified_through_dns(Backend::Postgres).await;
}

backend_tests!(
    a_removed_domain_routes_nothing,
    unverified_or_foreign_emails_never_replace_or_verify,
    a_connection_asserts_only_its_domains,
);
