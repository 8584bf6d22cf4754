//! The web console and the customer setup page, end to end in headless Chromium (Debian's,
//! driven by playwright-core: `tests/peers/browser/console.mjs`): sign-in (and refusing one
//! that another site's page posts), organizations,
//! users (search, state filter, timeline, deactivation), groups, directories with their
//! recent SCIM traffic, webhook deliveries and a resend, the drift report, the
//! deprovisioning chart; then a setup link: the steps per IdP, an OIDC connection, a SCIM
//! token, live status, a real test login through `oidc-provider`, and the link refusing a
//! second use. Screenshots of every page go to `target/screenshots/console/` (a CI
//! artifact).

use serde_json::{Value, json};

use roster::core::model::Actor;
use roster::core::store::prelude::*;

use crate::common::{Backend, TestApp};
use crate::sso_oidc::Idp;

async fn scim_post(app: &TestApp, path: &str, body: Value) -> Value {
    let r = reqwest::Client::new()
        .post(format!("{}{path}", app.scim))
        .bearer_auth(&app.token)
        .header("user-agent", "Okta SCIM Client 1.0")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{path}");
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_and_the_setup_page_in_chromium() {
    let root = env!("CARGO_MANIFEST_DIR");
    crate::common::install_once("install-browser.sh", "root and Debian's chromium package");
    let app = TestApp::start(Backend::Sqlite).await;
    let store = &app.db.store;
    let org = store.org_by_slug("acme").await.unwrap().unwrap();
    let user = |name: &str, active: bool| {
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": format!("{name}@acme.test"),
               "active": active, "emails": [{"value": format!("{name}@acme.test"), "primary": true}]})
    };
    let ada = scim_post(&app, "/Users", user("ada", true)).await["id"].clone();
    let bob = scim_post(&app, "/Users", user("bob", false)).await["id"].clone();
    scim_post(
        &app,
        "/Groups",
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Engineering",
               "members": [{"value": ada}, {"value": bob}]}),
    )
    .await;
    // A webhook receiver that takes everything.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let r = axum::Router::new().route("/hook", axum::routing::post(|| async { "ok" }));
        let _ = axum::serve(listener, r).await;
    });
    let (ep, _) =
        roster::core::webhooks::new_endpoint(&app.db.master_key(), Some(&org.id), &hook, "*", true)
            .unwrap();
    store.insert_webhook(&ep, &Actor::Cli).await.unwrap();
    let mut delivered = false;
    for _ in 0..100 {
        if !store
            .deliveries(&ep.id, Some("delivered"), 1)
            .await
            .unwrap()
            .is_empty()
        {
            delivered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(delivered, "the dispatcher delivered an event");

    let key = crate::common::admin_key(store, None, false).await;
    let idp = Idp::for_app(&app, &[]).await;
    idp.account(
        "grace",
        json!({"email": "grace@acme.test", "email_verified": true, "name": "Grace"}),
    )
    .await;
    let r = reqwest::Client::new()
        .post(format!("{}/__test/next-login", idp.issuer))
        .json(&json!({"sub": "grace"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let (link, token) = roster::console::setup_page::create_link(store, &org, 3600, &Actor::Cli)
        .await
        .unwrap();
    let setup = format!("{}/setup/{token}", app.base());
    // Another site (localhost is not the site 127.0.0.1) whose page posts an admin key to
    // the console's sign-in as soon as it loads.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let attack = format!(
        "http://localhost:{}/attack",
        listener.local_addr().unwrap().port()
    );
    let attack_page = format!(
        "<!doctype html><title>Win a prize</title><form method=\"post\" action=\"{}/console/login\">\
         <input name=\"key\" value=\"{key}\"></form><script>document.forms[0].submit()</script>",
        app.base()
    );
    tokio::spawn(async move {
        let r = axum::Router::new().route(
            "/attack",
            axum::routing::get(move || async move { axum::response::Html(attack_page) }),
        );
        let _ = axum::serve(listener, r).await;
    });

    let shots = format!("{root}/target/screenshots/console");
    std::fs::create_dir_all(&shots).unwrap();
    let out = tokio::process::Command::new("node")
        .arg(format!("{root}/tests/peers/browser/console.mjs"))
        .args(["--base", &app.base(), "--key", &key, "--org", "acme"])
        .args([
            "--setup",
            &setup,
            "--issuer",
            &idp.issuer,
            "--shots",
            &shots,
            "--attack",
            &attack,
        ])
        .output()
        .await
        .expect("run the browser");
    assert!(
        out.status.success(),
        "the console tour failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).expect("JSON from console.mjs");
    assert!(result["checks"].as_array().unwrap().len() >= 25, "{result}");

    // The token the setup page showed works for SCIM, for this organization.
    let r = reqwest::Client::new()
        .get(format!("{}/Users?count=1", app.scim))
        .bearer_auth(result["scim_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["totalResults"], 2, "{body}");
    // The test login provisioned nobody; the connection is the link's, made by the link.
    let scope = roster::core::model::Scope {
        org: org.id.clone(),
        actor: Actor::Cli,
    };
    assert!(
        store
            .user_by_user_name(&scope, "grace@acme.test")
            .await
            .unwrap()
            .is_none()
    );
    let conn = roster::core::store::ConnectionStore::connection(store, &link.connection_id)
        .await
        .unwrap()
        .expect("the setup page made the connection");
    assert_eq!(conn.org_id, org.id);
    assert!(
        !conn.config.private_networks,
        "a setup link's connection reaches public addresses only"
    );
    let events = store.events_after(0, Some(&org.id), 1000).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.actor["type"] == "setup_link" && e.kind == "connection.created"),
        "the connection's event names the setup link"
    );
    // Ada was deactivated through the console, by the admin key.
    assert!(events.iter().any(|e| e.kind == "user.deactivated"
        && e.resource_id == ada.as_str().unwrap()
        && e.actor["type"] == "admin_key"));
    for name in [
        "01-organizations",
        "07-directories",
        "10-deprovisioning",
        "13-setup-test-login",
    ] {
        assert!(
            std::path::Path::new(&format!("{shots}/{name}.png")).exists(),
            "{name}"
        );
    }
    app.stop().await;
}

crate::backend_tests!(
    operators_sign_in_through_their_sso_while_they_hold_the_role,
    console_sso_sessions_end_when_console_sso_is_turned_off,
    the_sign_in_form_refuses_other_sites
);

/// The operators' organization `ops`, connected over OIDC to a real `oidc-provider` with
/// the accounts olga (group "Roster Admins", mapped to `roster-admin`) and pat ("Sales").
/// Console SSO is not turned on yet.
async fn operators(app: &TestApp) -> (Idp, roster::core::model::Org) {
    use crate::sso_oidc::oidc_org;
    let store = &app.db.store;
    let idp = Idp::for_app(app, &[]).await;
    idp.account(
        "olga",
        json!({"email": "olga@ops.test", "email_verified": true, "groups": ["Roster Admins"]}),
    )
    .await;
    idp.account(
        "pat",
        json!({"email": "pat@ops.test", "email_verified": true, "groups": ["Sales"]}),
    )
    .await;
    let (ops, _) = oidc_org(app, &idp, "ops", |_| {}).await;
    let m =
        roster::core::roles::new_mapping(&ops.id, "displayName", "roster admins", "roster-admin")
            .unwrap();
    store.insert_role_mapping(&m, &Actor::Cli).await.unwrap();
    (idp, ops)
}

/// The IdP's next login will be as `sub`.
async fn next_login(idp: &Idp, sub: &str) {
    let r = reqwest::Client::new()
        .post(format!("{}/__test/next-login", idp.issuer))
        .json(&json!({"sub": sub}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
}

/// Signs in through console SSO as a browser does: loads the sign-in page, follows its
/// "Sign in with SSO" link through the IdP and back.
async fn console_sso(app: &TestApp, b: &crate::sso_oidc::Browser) -> crate::sso_oidc::Landing {
    let r = b
        .http
        .get(format!("{}/console/login", app.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    let link = page
        .split("href=\"/console/sso")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no SSO link on the sign-in page: {page}"));
    b.follow(&format!(
        "{}/console/sso{}",
        app.base(),
        link.replace("&amp;", "&")
    ))
    .await
}

/// The status and `Location` of `GET /console` in browser `b`.
async fn console_home(app: &TestApp, b: &crate::sso_oidc::Browser) -> (u16, String) {
    let r = b
        .http
        .get(format!("{}/console", app.base()))
        .send()
        .await
        .unwrap();
    let loc = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (r.status().as_u16(), loc)
}

/// `roster console-sso --org ops`: users of the operators' organization sign in to the
/// console through its SSO (a real OIDC login at `oidc-provider`) when an IdP group maps to
/// `roster-admin`; the session ends the moment the user is deactivated; a user without the
/// role is refused. The SSO entrance only starts a login for the sign-in page's own link.
async fn operators_sign_in_through_their_sso_while_they_hold_the_role(app: &TestApp) {
    use crate::sso_oidc::{Browser, Landing};
    use roster::core::store::prelude::*;
    let store = &app.db.store;
    let (idp, ops) = operators(app).await;
    let sso = format!("{}/console/sso", app.base());

    // Not set up: the SSO entrance leads back to the key sign-in.
    let b = Browser::new();
    match b.follow(&sso).await {
        Landing::Page(status, body) => {
            assert_eq!(status, 200);
            assert!(body.contains("Admin API key") && !body.contains("Sign in with SSO"));
        }
        other => panic!("{other:?}"),
    }
    store
        .set_setting(roster::console::SSO_ORG_SETTING, Some("ops"), &Actor::Cli)
        .await
        .unwrap();

    // A link to the entrance from elsewhere (no sign-in page's token) starts no login: it
    // leads to the sign-in page.
    let r = Browser::new().http.get(&sso).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/console/login");

    next_login(&idp, "olga").await;
    let b = Browser::new();
    match console_sso(app, &b).await {
        Landing::Page(status, body) => {
            assert_eq!(status, 200, "{body}");
            assert!(body.contains("<h1>Organizations</h1>"), "{body}");
            assert!(body.contains("/console/orgs/acme") && body.contains("/console/orgs/ops"));
        }
        other => panic!("{other:?}"),
    }
    // Read-write: the deactivate button is there.
    let scope = roster::core::model::Scope {
        org: ops.id.clone(),
        actor: Actor::Cli,
    };
    let olga = store
        .user_by_user_name(&scope, "olga@ops.test")
        .await
        .unwrap()
        .expect("olga was provisioned by her login");
    let page = b
        .http
        .get(format!("{}/console/orgs/ops/users/{}", app.base(), olga.id))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("button class=\"danger\"")
    );

    // Deprovisioned at the IdP (here: deactivated): the console session ends at once.
    roster::core::resources::set_active(store, &scope, &olga.id, false)
        .await
        .unwrap();
    assert_eq!(
        console_home(app, &b).await,
        (303, "/console/login".to_owned())
    );

    // Without the role: refused, no session.
    next_login(&idp, "pat").await;
    let b = Browser::new();
    match console_sso(app, &b).await {
        Landing::Page(status, body) => {
            assert_eq!(status, 403, "{body}");
            assert!(body.contains("roster-admin"), "{body}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(console_home(app, &b).await.0, 303);
}

/// `roster console-sso --off` (or pointing it at another organization) ends the console
/// sessions opened through the operators' SSO at their next request, as deprovisioning does;
/// admin-key sessions are not affected.
async fn console_sso_sessions_end_when_console_sso_is_turned_off(app: &TestApp) {
    use crate::sso_oidc::{Browser, Landing};
    use roster::core::store::prelude::*;
    let store = &app.db.store;
    let (idp, _ops) = operators(app).await;
    let set = |org: Option<&'static str>| async move {
        store
            .set_setting(roster::console::SSO_ORG_SETTING, org, &Actor::Cli)
            .await
            .unwrap();
    };
    let sign_in = || async {
        next_login(&idp, "olga").await;
        let b = Browser::new();
        match console_sso(app, &b).await {
            Landing::Page(status, body) => assert_eq!(status, 200, "{body}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(console_home(app, &b).await.0, 200);
        b
    };
    set(Some("ops")).await;
    let b = sign_in().await;
    set(None).await;
    assert_eq!(
        console_home(app, &b).await,
        (303, "/console/login".to_owned()),
        "console SSO is off: its sessions end"
    );

    // Console SSO moved to another organization: the old operators' sessions end too.
    set(Some("ops")).await;
    let b = sign_in().await;
    set(Some("acme")).await;
    assert_eq!(
        console_home(app, &b).await,
        (303, "/console/login".to_owned()),
        "console SSO now belongs to another organization"
    );
}

/// Login CSRF: another site must not sign an operator's browser in (to its own key's
/// session). A post from another origin is refused without a session, as is one without
/// the token of the sign-in page this browser loaded; the sign-in page's own post works.
async fn the_sign_in_form_refuses_other_sites(app: &TestApp) {
    use crate::sso_oidc::Browser;
    let key = crate::common::admin_key(&app.db.store, None, false).await;
    let login = format!("{}/console/login", app.base());
    let no_session = |r: &reqwest::Response| {
        !r.headers()
            .get_all("set-cookie")
            .iter()
            .any(|c| c.to_str().unwrap_or("").starts_with("roster_console="))
    };
    let b = Browser::new();
    let r = b.http.get(&login).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let form = r.text().await.unwrap();
    let token = csrf(&form);

    // From another site, even with a token (say, from the attacker's own visit).
    for (name, value) in [
        ("origin", "https://evil.example"),
        ("origin", "null"),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
    ] {
        let r = b
            .http
            .post(&login)
            .header(name, value)
            .form(&[("key", key.as_str()), ("csrf", token.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{name}: {value}");
        assert!(no_session(&r), "{name}: {value}: no session cookie");
        assert_eq!(console_home(app, &b).await.0, 303, "{name}: {value}");
    }
    // Without the sign-in page's token, or with one of another browser's page.
    for given in [None, Some(token.as_str())] {
        let mut form = vec![("key", key.as_str())];
        if let Some(t) = given {
            form.push(("csrf", t));
        }
        let r = Browser::new()
            .http
            .post(&login)
            .header("origin", app.base())
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "token {given:?}");
        assert!(no_session(&r));
    }

    // The sign-in page's own post, as a browser sends it.
    let r = b
        .http
        .post(&login)
        .header("origin", app.base())
        .header("sec-fetch-site", "same-origin")
        .form(&[("key", key.as_str()), ("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/console");
    assert!(!no_session(&r), "a session cookie");
    assert_eq!(console_home(app, &b).await.0, 200);
}

crate::backend_tests!(
    a_setup_link_connects_saml_and_tests_a_real_login,
    hostile_names_are_shown_as_text
);

/// Markup that an operator's console or a customer's setup page would run or load.
const SCRIPT: &str = "<script>alert(1)</script>";
const IMG: &str = "\"><img src=x onerror=alert(2)>";

/// `page` shows `SCRIPT` and `IMG` as text only: escaped, never as markup.
#[track_caller]
fn shown_as_text(page: &str, what: &str) {
    for raw in ["<script>alert", "<img src=x"] {
        assert!(
            !page.contains(raw),
            "{what} renders {raw} as markup: {page}"
        );
    }
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;")
            || page.contains("&quot;&gt;&lt;img src=x onerror=alert(2)&gt;"),
        "{what} shows neither hostile value: {page}"
    );
}

/// An organization named with markup (through the admin API) and a user and group named
/// with markup (through SCIM) are shown as text on the console's organization, users and
/// user pages and on the setup page, and a search for markup stays in its form field.
async fn hostile_names_are_shown_as_text(app: &TestApp) {
    use crate::sso_oidc::Browser;
    let store = &app.db.store;
    let key = crate::common::admin_key(store, None, false).await;
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/orgs", app.base()))
        .bearer_auth(&key)
        .json(&json!({"slug": "hostile", "name": SCRIPT}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let token = app.directory_token("hostile", false).await;
    let user = app
        .call_with(
            &token,
            reqwest::Method::POST,
            "/Users",
            Some(&json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": format!("{IMG}@hostile.test"),
                "displayName": SCRIPT,
                "externalId": IMG,
            })),
            &[],
        )
        .await
        .expect(201)
        .id();
    app.call_with(
        &token,
        reqwest::Method::POST,
        "/Groups",
        Some(&json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": SCRIPT,
            "members": [{"value": user}],
        })),
        &[],
    )
    .await
    .expect(201);

    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    assert_eq!(sign_in(app, &http, &key).await.status(), 303);
    let base = format!("{}/console/orgs/hostile", app.base());
    let search = url::form_urlencoded::byte_serialize(IMG.as_bytes()).collect::<String>();
    for (what, url) in [
        ("the organization page", base.clone()),
        ("the users page", format!("{base}/users")),
        ("the user page", format!("{base}/users/{user}")),
        ("the groups page", format!("{base}/groups")),
        ("a search for markup", format!("{base}/users?q={search}")),
    ] {
        let r = http.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200, "{what}");
        shown_as_text(&r.text().await.unwrap(), what);
    }

    let org = store.org_by_slug("hostile").await.unwrap().unwrap();
    let (_, link) = roster::console::setup_page::create_link(store, &org, 3600, &Actor::Cli)
        .await
        .unwrap();
    let b = Browser::new();
    let r = b
        .http
        .get(format!("{}/setup/{link}", app.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = b
        .http
        .get(format!("{}/setup", app.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    shown_as_text(&r.text().await.unwrap(), "the setup page");
}

/// The value of the first hidden `csrf` field of a page.
/// Signs `http` (a client with a cookie store) in to the console with an admin key, as the
/// sign-in page's own form does; the answer to the post.
pub async fn sign_in(app: &TestApp, http: &reqwest::Client, key: &str) -> reqwest::Response {
    let login = format!("{}/console/login", app.base());
    let page = http.get(&login).send().await.unwrap().text().await.unwrap();
    http.post(&login)
        .header("origin", app.base())
        .form(&[("key", key), ("csrf", csrf(&page).as_str())])
        .send()
        .await
        .unwrap()
}

pub fn csrf(page: &str) -> String {
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a csrf field")
        .to_owned()
}

/// A customer's IT admin, through a setup link, without a browser: the SAML values to paste
/// exist before the IdP's metadata, the metadata makes the connection (with the reserved id),
/// the SP metadata is served, and "test connection" runs a real SAML login (a response signed
/// by `signxml`) that ends on the result page and provisions nobody. The link is spent and
/// the session sees only its organization.
async fn a_setup_link_connects_saml_and_tests_a_real_login(app: &TestApp) {
    use crate::sso_oidc::Browser;
    use crate::sso_saml::{IDP_ENTITY, IDP_SSO, Saml, idp};
    use base64::Engine;
    use roster::core::store::prelude::*;
    let store = &app.db.store;
    let org = store.org_by_slug("acme").await.unwrap().unwrap();
    let (link, token) = roster::console::setup_page::create_link(store, &org, 3600, &Actor::Cli)
        .await
        .unwrap();
    let b = Browser::new();
    let r = b
        .http
        .get(format!("{}/setup/{token}", app.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/setup");
    let page = |b: &Browser| {
        let url = format!("{}/setup", app.base());
        let http = b.http.clone();
        async move {
            let r = http.get(url).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.text().await.unwrap()
        }
    };
    let home = page(&b).await;
    let entity = roster::sso::saml_entity_id(&app.base(), &link.connection_id);
    assert!(
        home.contains(&format!("{entity}/acs")),
        "the ACS URL is shown"
    );
    assert!(home.contains(&format!("{}/scim/v2", app.base())));
    // The link is spent: another browser is refused.
    let again = Browser::new()
        .http
        .get(format!("{}/setup/{token}", app.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 410);

    // A form without the session's CSRF token is refused.
    let keys: Value = serde_json::from_str(&idp(&["keys"], &json!({}))).unwrap();
    let metadata = idp(
        &["metadata", "--sso-url", IDP_SSO],
        &json!({"idp_entity_id": IDP_ENTITY, "idp_cert_pem": keys["cert_pem"], "sso_url": IDP_SSO}),
    );
    let post = |path: &str, form: Vec<(&'static str, String)>| {
        let http = b.http.clone();
        let url = format!("{}{path}", app.base());
        async move { http.post(url).form(&form).send().await.unwrap() }
    };
    let r = post(
        "/setup/saml",
        vec![
            ("csrf", "forged".into()),
            ("idp", "okta".into()),
            ("metadata", metadata.clone()),
        ],
    )
    .await;
    assert_eq!(r.status(), 403);
    let r = post(
        "/setup/saml",
        vec![
            ("csrf", csrf(&home)),
            ("idp", "okta".into()),
            ("metadata", metadata),
        ],
    )
    .await;
    assert_eq!(r.status(), 303, "{:?}", r.text().await);
    let conn = store
        .connection(&link.connection_id)
        .await
        .unwrap()
        .expect("the connection has the reserved id");
    assert_eq!(conn.org_id, org.id);
    let home = page(&b).await;
    assert!(home.contains("Connected:"), "{home}");
    let md = reqwest::get(format!("{entity}/metadata")).await.unwrap();
    assert_eq!(md.status(), 200);
    assert!(md.text().await.unwrap().contains(&format!("{entity}/acs")));

    // Test connection: a real SAML round trip.
    let r = post("/setup/test", vec![("csrf", csrf(&home))]).await;
    assert_eq!(r.status(), 303);
    let loc = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    assert!(loc.as_str().starts_with(IDP_SSO), "{loc}");
    let q: std::collections::HashMap<_, _> = loc.query_pairs().into_owned().collect();
    let deflated = base64::engine::general_purpose::STANDARD
        .decode(&q["SAMLRequest"])
        .unwrap();
    let mut xml = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::DeflateDecoder::new(&deflated[..]),
        &mut xml,
    )
    .unwrap();
    let request_id = xml
        .split(" ID=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let saml = Saml {
        org: org.clone(),
        sp_cert: conn.config.saml_sp_cert_pem.clone().unwrap(),
        conn,
        idp_key: keys["key_pem"].as_str().unwrap().to_owned(),
        idp_cert: keys["cert_pem"].as_str().unwrap().to_owned(),
    };
    let responses = saml.responses(app, Some(&request_id), &["valid_signed_both"]);
    let b64 = responses["valid_signed_both"].as_str().unwrap();
    let landed = crate::sso_saml::post(app, &saml, &b, b64, Some(&q["RelayState"])).await;
    let Err((200, result)) = landed else {
        panic!("the test login should end on the result page: {landed:?}")
    };
    assert!(
        result.contains("worked") && result.contains("erin@saml.test"),
        "{result}"
    );
    let scope = roster::core::model::Scope {
        org: org.id.clone(),
        actor: Actor::Cli,
    };
    assert!(
        store
            .user_by_user_name(&scope, "erin@saml.test")
            .await
            .unwrap()
            .is_none(),
        "a test login provisions nobody"
    );
    // The session's status shows only its organization's counts.
    let status: Value = b
        .http
        .get(format!("{}/setup/status.json", app.base()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["connection"], "okta (saml)", "{status}");
    assert!(status["users"].is_i64());
}
