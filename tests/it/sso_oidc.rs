//! End to end through a real OpenID provider (npm `oidc-provider`, `tests/peers/oidc-provider`):
//! app → Roster `/oauth/authorize` → the IdP → Roster's callback (JIT, session) → the app's
//! redirect URI with a code → `/oauth/token` → ID token verified by an independent OIDC
//! client → userinfo, introspection, refresh rotation → SCIM deactivation ends it all.

use std::process::Stdio;

use base64::Engine;
use reqwest::StatusCode;
use roster::core::model::{Actor, Org};
use roster::core::orgs::{self, OrgSlug};
use roster::core::sessions;
use roster::core::sso::{Connection, ConnectionConfig, IdpKind, JitMode, Protocol};
use roster::core::store::prelude::*;
use serde_json::{Value, json};
use sha2::Digest;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::backend_tests;
use crate::common::{Node, TestApp};

/// The test app's redirect URI: never contacted, the tests stop where Roster sends it.
pub const APP_REDIRECT: &str = "http://127.0.0.1:9/app/callback";

/// A running `oidc-provider`; it exits when `_stdin` drops.
pub struct Idp {
    pub issuer: String,
    _child: tokio::process::Child,
    _stdin: tokio::process::ChildStdin,
}

impl Idp {
    pub async fn start(client_id: &str, secret: &str, redirect: &str, extra: &[&str]) -> Idp {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/oidc-provider");
        crate::common::install_once("install-node-peers.sh", "Node.js >= 20.19 and npm");
        let mut child = tokio::process::Command::new("node")
            .arg(format!("{dir}/server.mjs"))
            .args(["--port", "0", "--client"])
            .arg(format!("{client_id}:{secret}:{redirect}"))
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start node");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .await
            .expect("ready line");
        let ready: Value = serde_json::from_str(&line).expect("ready JSON");
        Idp {
            issuer: ready["issuer"].as_str().expect("issuer").to_owned(),
            _child: child,
            _stdin: stdin,
        }
    }

    /// A provider whose client `roster` (secret `roster-secret`) redirects to `app`'s callback.
    pub async fn for_app(app: &TestApp, extra: &[&str]) -> Idp {
        let callback = format!("{}/sso/oidc/callback", app.base());
        Idp::start("roster", "roster-secret", &callback, extra).await
    }

    pub async fn account(&self, sub: &str, claims: Value) {
        let r = reqwest::Client::new()
            .post(format!("{}/__test/accounts", self.issuer))
            .json(&json!({"sub": sub, "claims": claims}))
            .send()
            .await
            .expect("register account");
        assert!(r.status().is_success(), "{:?}", r.text().await);
    }
}

/// An organization with a verified domain and an OIDC connection to `idp`.
pub async fn oidc_org(
    app: &TestApp,
    idp: &Idp,
    slug: &str,
    policy: impl FnOnce(&mut ConnectionConfig),
) -> (Org, Connection) {
    oidc_org_with_issuer(app, &idp.issuer, slug, policy).await
}

/// An organization with the verified domain `<slug>.test` and an OIDC connection to the
/// provider at `issuer` (client `roster`, secret `roster-secret`).
pub async fn oidc_org_with_issuer(
    app: &TestApp,
    issuer: &str,
    slug: &str,
    policy: impl FnOnce(&mut ConnectionConfig),
) -> (Org, Connection) {
    let s = &app.db.store;
    let org = orgs::create_org(s, &OrgSlug::parse(slug).unwrap(), None, &Actor::Cli)
        .await
        .unwrap();
    crate::common::verified_domain(s, &org, &format!("{slug}.test")).await;
    let conn = oidc_connection(app, &org, issuer, policy).await;
    (org, conn)
}

/// A further OIDC connection of `org` to the provider at `issuer` (client `roster`, secret
/// `roster-secret`).
pub async fn oidc_connection(
    app: &TestApp,
    org: &Org,
    issuer: &str,
    policy: impl FnOnce(&mut ConnectionConfig),
) -> Connection {
    let s = &app.db.store;
    let id = roster::core::new_id();
    let mut config = ConnectionConfig {
        oidc_issuer: Some(issuer.to_owned()),
        oidc_client_id: Some("roster".into()),
        oidc_scopes: vec!["groups".into()],
        // Made by the operator (as the CLI does): the IdP peer runs on 127.0.0.1.
        private_networks: true,
        ..Default::default()
    };
    policy(&mut config);
    let conn = Connection {
        secret_enc: Some(
            app.db
                .master_key()
                .encrypt(&format!("connection:{id}"), b"roster-secret")
                .unwrap(),
        ),
        id,
        org_id: org.id.clone(),
        protocol: Protocol::Oidc,
        name: "test idp".into(),
        idp: IdpKind::Generic,
        config,
        created_at: roster::core::now(),
        disabled: false,
    };
    s.insert_connection(&conn, &Actor::Cli).await.unwrap();
    conn
}

pub struct Browser {
    pub http: reqwest::Client,
}

/// Where a login ended: at the app with a code, or on a page of Roster's.
#[derive(Debug)]
pub enum Landing {
    App(url::Url),
    Page(StatusCode, String),
}

impl Browser {
    pub fn new() -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    /// Follows redirects from `url` until the app's redirect URI or a non-redirect page.
    pub async fn follow(&self, url: &str) -> Landing {
        let mut url = url::Url::parse(url).unwrap();
        for _ in 0..20 {
            if url.as_str().starts_with(APP_REDIRECT) {
                return Landing::App(url);
            }
            let r = self.http.get(url.clone()).send().await.expect("GET");
            let status = r.status();
            if status.is_redirection() {
                let loc = r.headers()["location"].to_str().unwrap().to_owned();
                url = url.join(&loc).unwrap();
                continue;
            }
            return Landing::Page(status, r.text().await.unwrap_or_default());
        }
        panic!("too many redirects");
    }
}

fn pkce() -> (String, String) {
    let verifier = format!("v-{}-{}", uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

pub struct Client {
    pub id: String,
    secret: String,
    pub redirect: String,
}

impl Client {
    pub async fn register(app: &TestApp) -> Client {
        Self::register_with(app, APP_REDIRECT).await
    }

    pub async fn register_with(app: &TestApp, redirect: &str) -> Client {
        let (a, secret) = sessions::create_app(
            &app.db.store,
            "test app",
            &[redirect.to_owned()],
            &Actor::Cli,
        )
        .await
        .unwrap();
        Client {
            id: a.id,
            secret,
            redirect: redirect.to_owned(),
        }
    }

    /// Redeems an authorization code at `/oauth/token` with its PKCE verifier.
    pub async fn redeem(&self, app: &TestApp, code: &str, verifier: &str) -> (StatusCode, Value) {
        self.redeem_at(&app.base(), code, verifier).await
    }

    /// `redeem` at the node whose base URL is `base`.
    pub async fn redeem_at(&self, base: &str, code: &str, verifier: &str) -> (StatusCode, Value) {
        self.post_at(
            base,
            "/oauth/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &self.redirect),
                ("code_verifier", verifier),
            ],
        )
        .await
    }

    async fn post(&self, app: &TestApp, path: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
        self.post_at(&app.base(), path, form).await
    }

    /// POSTs `form` with the client's credentials to the node whose base URL is `base`.
    pub async fn post_at(
        &self,
        base: &str,
        path: &str,
        form: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let r = reqwest::Client::new()
            .post(format!("{base}{path}"))
            .basic_auth(&self.id, Some(&self.secret))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

/// The app's `/oauth/authorize` URL for `org` with `login_hint`, and its PKCE verifier.
pub fn login_url(app: &TestApp, client: &Client, org: &str, hint: &str) -> (String, String) {
    let (verifier, challenge) = pkce();
    let mut url = url::Url::parse(&format!("{}/oauth/authorize", app.base())).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client.id)
        .append_pair("redirect_uri", &client.redirect)
        .append_pair("scope", "openid email profile offline_access")
        .append_pair("state", "app-state-1")
        .append_pair("nonce", "app-nonce-1")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("organization", org)
        .append_pair("login_hint", hint);
    (url.to_string(), verifier)
}

/// Runs a login for `org` with `login_hint`; returns where it landed and the PKCE verifier.
pub async fn login(app: &TestApp, client: &Client, org: &str, hint: &str) -> (Landing, String) {
    let (url, verifier) = login_url(app, client, org, hint);
    (Browser::new().follow(&url).await, verifier)
}

pub fn code_of(landing: &Landing) -> String {
    let Landing::App(url) = landing else {
        panic!("login did not reach the app: {landing:?}");
    };
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(q.get("state").map(String::as_str), Some("app-state-1"));
    q.get("code")
        .cloned()
        .unwrap_or_else(|| panic!("no code in {url}"))
}

/// The ID token's claims, verified by an independent OpenID client against Roster's
/// discovery document and JWKS.
pub async fn verify_id_token(app: &TestApp, client: &Client, raw: &str) -> Value {
    use openidconnect::core::{
        CoreClient, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
        CoreProviderMetadata,
    };
    use openidconnect::{ClientId, ClientSecret, IdToken, IssuerUrl, Nonce};
    let http = reqwest::Client::new();
    let fetch = |req: openidconnect::HttpRequest| {
        let http = http.clone();
        async move {
            let (parts, body) = req.into_parts();
            let r = http
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await?;
            let mut out = axum::http::Response::builder().status(r.status());
            for (k, v) in r.headers() {
                out = out.header(k, v);
            }
            Ok::<_, reqwest::Error>(out.body(r.bytes().await?.to_vec()).unwrap())
        }
    };
    let md = CoreProviderMetadata::discover_async(IssuerUrl::new(app.base()).unwrap(), &fetch)
        .await
        .expect("Roster's discovery document and JWKS are valid for an OIDC client");
    let rp = CoreClient::from_provider_metadata(
        md,
        ClientId::new(client.id.clone()),
        Some(ClientSecret::new(client.secret.clone())),
    );
    let token: IdToken<
        roster::sso::oidc_rp::AllClaims,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    > = raw.parse().expect("JWT");
    let claims = token
        .claims(&rp.id_token_verifier(), &Nonce::new("app-nonce-1".into()))
        .expect("ID token verifies");
    serde_json::to_value(claims).unwrap()
}

async fn oidc_login_then_scim_deactivation_ends_every_token(app: &TestApp) {
    let idp = Idp::for_app(app, &[]).await;
    idp.account(
        "alice-sub",
        json!({"email": "Alice@Globex.test", "email_verified": true, "given_name": "Alice",
               "family_name": "Liddell", "groups": ["eng", "admins"]}),
    )
    .await;
    let (_org, _conn) = oidc_org(app, &idp, "globex", |_| {}).await;
    let client = Client::register(app).await;

    let (landing, verifier) = login(app, &client, "globex", "alice-sub").await;
    let code = code_of(&landing);
    let (status, tokens) = client.redeem(app, &code, &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    let claims = verify_id_token(app, &client, tokens["id_token"].as_str().unwrap()).await;
    assert_eq!(claims["org"], "globex");
    assert_eq!(claims["email"], "alice@globex.test");
    assert_eq!(claims["given_name"], "Alice");
    assert_eq!(claims["groups"], json!(["eng", "admins"]));
    let user_id = claims["sub"].as_str().unwrap().to_owned();

    // The user was JIT-created with provenance jit and a login time.
    let globex = app.directory_token("globex", false).await;
    let u = app
        .call_with(
            &globex,
            reqwest::Method::GET,
            &format!("/Users/{user_id}"),
            None,
            &[],
        )
        .await
        .expect(200);
    assert_eq!(u.body["userName"], "Alice@Globex.test");

    // A code is good once; a second redemption fails.
    let (status, again) = client.redeem(app, &code, &verifier).await;
    assert_eq!(
        (status.as_u16(), again["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    // A second login of the same person links to the same user (no duplicate).
    let (landing, verifier) = login(app, &client, "globex", "alice-sub").await;
    let code = code_of(&landing);
    let (status, tokens) = client.redeem(app, &code, &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let (_, intro) = client
        .post(app, "/oauth/introspect", &[("token", &access)])
        .await;
    assert_eq!(intro["active"], true);
    assert_eq!(intro["sub"], user_id.as_str());
    let info: Value = reqwest::Client::new()
        .get(format!("{}/oauth/userinfo", app.base()))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["email"], "alice@globex.test");

    // Refresh rotation: the new pair works, the old refresh token is spent.
    let (status, rotated) = client
        .post(
            app,
            "/oauth/token",
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let refresh2 = rotated["refresh_token"].as_str().unwrap().to_owned();
    let access2 = rotated["access_token"].as_str().unwrap().to_owned();
    assert_ne!(refresh2, refresh);

    // Deprovisioning over SCIM: the very next introspection says inactive, refresh fails.
    app.call_with(
        &globex,
        reqwest::Method::PATCH,
        &format!("/Users/{user_id}"),
        Some(
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                     "Operations": [{"op": "replace", "value": {"active": false}}]}),
        ),
        &[],
    )
    .await
    .expect(200);
    for t in [&access, &access2, &refresh2] {
        let (_, intro) = client.post(app, "/oauth/introspect", &[("token", t)]).await;
        assert_eq!(intro, json!({"active": false}));
    }
    let (status, denied) = client
        .post(
            app,
            "/oauth/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh2),
            ],
        )
        .await;
    assert_eq!(
        (status.as_u16(), denied["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let r = reqwest::Client::new()
        .get(format!("{}/oauth/userinfo", app.base()))
        .bearer_auth(&access2)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let scope = roster::core::model::Scope {
        org: _org.id.clone(),
        actor: Actor::Cli,
    };
    assert_eq!(
        app.db.store.live_sessions(&scope, &user_id).await.unwrap(),
        0
    );

    // And a deactivated user cannot log in again.
    let (landing, _) = login(app, &client, "globex", "alice-sub").await;
    match landing {
        Landing::Page(status, body) => {
            assert_eq!(status, 403);
            assert!(body.contains("deactivated"), "{body}");
        }
        other => panic!("a deactivated user logged in: {other:?}"),
    }
}

async fn jit_policy_refusals_and_scim_linking(app: &TestApp) {
    let idp = Idp::for_app(app, &["--claims-in-id-token"]).await;
    idp.account(
        "bob",
        json!({"email": "bob@initech.test", "email_verified": true}),
    )
    .await;
    idp.account(
        "eve",
        json!({"email": "eve@elsewhere.test", "email_verified": true}),
    )
    .await;
    idp.account(
        "mal",
        json!({"email": "mal@initech.test", "email_verified": false}),
    )
    .await;
    idp.account(
        "carol",
        json!({"email": "carol@initech.test", "email_verified": true}),
    )
    .await;
    let (_org, _) = oidc_org(app, &idp, "initech", |c| c.directory_authoritative = true).await;
    let client = Client::register(app).await;
    let refused = |landing: Landing, needle: &str| match landing {
        Landing::Page(status, body) => {
            assert_eq!(status, 403, "{body}");
            assert!(body.contains(needle), "expected {needle:?} in {body}");
        }
        other => panic!("login should have been refused ({needle}): {other:?}"),
    };

    // No directory yet: JIT creates within verified domains only, from verified emails only.
    refused(
        login(app, &client, "initech", "eve").await.0,
        "elsewhere.test",
    );
    refused(
        login(app, &client, "initech", "mal").await.0,
        "did not verify",
    );
    let bob = code_of(&login(app, &client, "initech", "bob").await.0);
    assert!(!bob.is_empty());

    // Now the organization has a directory, and it is authoritative: Carol (never
    // provisioned) is refused, even though JIT would create her.
    let token = app.directory_token("initech", false).await;
    refused(
        login(app, &client, "initech", "carol").await.0,
        "provisions accounts through its directory",
    );

    // The directory provisions Carol; her first login links to that account.
    let created = app
        .call_with(
            &token,
            reqwest::Method::POST,
            "/Users",
            Some(&json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "carol@initech.test",
                "emails": [{"value": "Carol@Initech.test", "primary": true}]
            })),
            &[],
        )
        .await
        .expect(201);
    let carol_id = created.body["id"].as_str().unwrap().to_owned();
    let (landing, verifier) = login(app, &client, "initech", "carol").await;
    let code = code_of(&landing);
    let (_, tokens) = client.redeem(app, &code, &verifier).await;
    let claims = verify_id_token(app, &client, tokens["id_token"].as_str().unwrap()).await;
    assert_eq!(claims["sub"], carol_id.as_str(), "linked, not duplicated");

    // Bob was created by JIT before the directory existed: a SCIM POST for him adopts that
    // account (same id) instead of a conflict.
    let bob_user = app
        .call_with(
            &token,
            reqwest::Method::GET,
            "/Users?filter=userName%20eq%20%22bob@initech.test%22",
            None,
            &[],
        )
        .await
        .expect(200);
    let bob_id = bob_user.body["Resources"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let adopted = app
        .call_with(
            &token,
            reqwest::Method::POST,
            "/Users",
            Some(&json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "bob@initech.test",
                "displayName": "Bob from the directory"
            })),
            &[],
        )
        .await
        .expect(201);
    assert_eq!(adopted.body["id"], bob_id.as_str());
    assert_eq!(adopted.body["displayName"], "Bob from the directory");
    // Adopted once: a second POST is a real conflict.
    app.call_with(
        &token,
        reqwest::Method::POST,
        "/Users",
        Some(&json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "bob@initech.test"
        })),
        &[],
    )
    .await
    .expect(409);
}

/// Both sides rotate keys: the IdP (Roster must refetch its JWKS, not fail logins) and Roster
/// (`keys rotate`: new tokens use the new key, the old key stays published).
async fn key_rotation_on_both_sides(app: &TestApp) {
    let idp = Idp::for_app(app, &["--claims-in-id-token"]).await;
    idp.account(
        "dana",
        json!({"email": "dana@umbrella.test", "email_verified": true}),
    )
    .await;
    oidc_org(app, &idp, "umbrella", |_| {}).await;
    let client = Client::register(app).await;
    let redeem = |code: String, verifier: String| {
        let client = &client;
        async move {
            let (status, tokens) = client.redeem(app, &code, &verifier).await;
            assert_eq!(status, 200, "{tokens}");
            tokens["id_token"].as_str().unwrap().to_owned()
        }
    };
    let header_kid = |jwt: &str| -> String {
        let head = jwt.split('.').next().unwrap();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(head)
            .unwrap();
        serde_json::from_slice::<Value>(&bytes).unwrap()["kid"]
            .as_str()
            .unwrap()
            .to_owned()
    };

    let (landing, verifier) = login(app, &client, "umbrella", "dana").await;
    let first = redeem(code_of(&landing), verifier).await;
    let r = reqwest::Client::new()
        .post(format!("{}/__test/rotate-keys", idp.issuer))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    // Roster cached the IdP's old JWKS; the login still succeeds.
    let (landing, verifier) = login(app, &client, "umbrella", "dana").await;
    let second = redeem(code_of(&landing), verifier).await;
    assert_eq!(header_kid(&first), header_kid(&second));

    let rotated = roster::core::keys::rotate(&app.db.store, &app.db.master_key())
        .await
        .unwrap();
    let (landing, verifier) = login(app, &client, "umbrella", "dana").await;
    let third = redeem(code_of(&landing), verifier).await;
    assert_eq!(header_kid(&third), rotated.kid);
    // Tokens signed before and after the rotation both verify against the published JWKS.
    verify_id_token(app, &client, &third).await;
    let jwks: Value = reqwest::get(format!("{}/oauth/jwks", app.base()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(kids.contains(&header_kid(&first).as_str()), "{kids:?}");
    assert!(kids.contains(&rotated.kid.as_str()), "{kids:?}");
}

/// `jit: create_and_update` refreshes a known user's profile at each login (`create` does
/// not); `domain_hint` picks the organization by its verified domain.
async fn jit_refresh_and_domain_hint(app: &TestApp) {
    let idp = Idp::for_app(app, &["--claims-in-id-token"]).await;
    let client = Client::register(app).await;
    for (slug, mode, refreshed) in [
        ("refresher", JitMode::CreateAndUpdate, true),
        ("keeper", JitMode::Create, false),
    ] {
        oidc_org(app, &idp, slug, |c| c.jit = mode).await;
        let sub = format!("hank-{slug}");
        let email = format!("hank@{slug}.test");
        let name =
            |given: &str| json!({"email": email, "email_verified": true, "given_name": given});
        idp.account(&sub, name("Hank")).await;
        let (url, verifier) = login_url(app, &client, slug, &sub);
        // Choose the organization by domain instead of slug.
        let url = url.replace(
            &format!("organization={slug}"),
            &format!("domain_hint={slug}.test"),
        );
        let code = code_of(&Browser::new().follow(&url).await);
        let (status, tokens) = client.redeem(app, &code, &verifier).await;
        assert_eq!(status, 200, "{tokens}");
        let claims = verify_id_token(app, &client, tokens["id_token"].as_str().unwrap()).await;
        assert_eq!(claims["org"], slug);
        assert_eq!(claims["given_name"], "Hank");

        idp.account(&sub, name("Henry")).await;
        let (landing, verifier) = login(app, &client, slug, &sub).await;
        let (_, tokens) = client.redeem(app, &code_of(&landing), &verifier).await;
        let claims = verify_id_token(app, &client, tokens["id_token"].as_str().unwrap()).await;
        let want = if refreshed { "Henry" } else { "Hank" };
        assert_eq!(claims["given_name"], want, "{slug}");
    }
}

/// Runs the `roster` binary on the test's database (as an administrator would, beside the
/// running server).
fn roster_cli(app: &TestApp, args: &[&str]) -> Value {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_roster"));
    match app.db.location() {
        roster::store::StoreLocation::SqliteDir(dir) => {
            cmd.arg("--data-dir")
                .arg(dir)
                .env_remove("ROSTER_DATABASE_URL");
        }
        roster::store::StoreLocation::Postgres { url, schema } => {
            cmd.env("ROSTER_DATABASE_URL", url)
                .env("ROSTER_DATABASE_SCHEMA", schema.unwrap_or_default());
        }
    }
    let out = cmd.args(args).output().expect("run roster");
    assert!(
        out.status.success(),
        "roster {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// Deprovisioning by SCIM PUT (`active: false`), by SCIM DELETE, and by an administrator
/// (`roster user deactivate`) ends every token too.
async fn scim_put_and_delete_end_tokens(app: &TestApp) {
    let idp = Idp::for_app(app, &["--claims-in-id-token"]).await;
    for sub in ["put", "delete", "admin"] {
        idp.account(
            sub,
            json!({"email": format!("{sub}@wayne.test"), "email_verified": true}),
        )
        .await;
    }
    oidc_org(app, &idp, "wayne", |_| {}).await;
    let client = Client::register(app).await;
    let scim = app.directory_token("wayne", false).await;
    for sub in ["put", "delete", "admin"] {
        let (landing, verifier) = login(app, &client, "wayne", sub).await;
        let (status, tokens) = client.redeem(app, &code_of(&landing), &verifier).await;
        assert_eq!(status, 200, "{tokens}");
        let access = tokens["access_token"].as_str().unwrap().to_owned();
        let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
        let (_, intro) = client
            .post(app, "/oauth/introspect", &[("token", &access)])
            .await;
        let user_id = intro["sub"].as_str().unwrap().to_owned();
        let path = format!("/Users/{user_id}");
        if sub == "put" {
            let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                              "userName": "put@wayne.test", "active": false});
            app.call_with(&scim, reqwest::Method::PUT, &path, Some(&body), &[])
                .await
                .expect(200);
        } else if sub == "delete" {
            app.call_with(&scim, reqwest::Method::DELETE, &path, None, &[])
                .await
                .expect(204);
        } else {
            let out = roster_cli(
                app,
                &[
                    "user",
                    "deactivate",
                    "--org",
                    "wayne",
                    "admin@wayne.test",
                    "--json",
                ],
            );
            assert_eq!(out["active"], false);
            assert_eq!(out["id"], user_id.as_str());
        }
        for t in [&access, &refresh] {
            let (_, intro) = client.post(app, "/oauth/introspect", &[("token", t)]).await;
            assert_eq!(intro, json!({"active": false}), "{sub}");
        }
        let (status, _) = client
            .post(
                app,
                "/oauth/token",
                &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
            )
            .await;
        assert_eq!(status, 400, "{sub}: refresh after deprovisioning");
    }
}

/// The token endpoints' errors (RFC 6749 §5.2) and RFC 7009 revocation.
async fn token_endpoint_errors_and_revocation(app: &TestApp) {
    let idp = Idp::for_app(app, &["--claims-in-id-token"]).await;
    idp.account(
        "gus",
        json!({"email": "gus@stark.test", "email_verified": true}),
    )
    .await;
    oidc_org(app, &idp, "stark", |_| {}).await;
    let client = Client::register(app).await;

    let r = reqwest::Client::new()
        .post(format!("{}/oauth/token", app.base()))
        .basic_auth(&client.id, Some("wrong-secret"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    let (status, body) = client
        .post(app, "/oauth/token", &[("grant_type", "authorization_code")])
        .await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let (status, body) = client
        .post(app, "/oauth/token", &[("grant_type", "password")])
        .await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
    let (status, body) = client.post(app, "/oauth/introspect", &[]).await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (400, Some("invalid_request"))
    );

    let (landing, verifier) = login(app, &client, "stark", "gus").await;
    let code = code_of(&landing);
    let (status, tokens) = client.redeem(app, &code, &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    // Revoking the refresh token ends its session: the access token dies with it.
    let (status, _) = client
        .post(app, "/oauth/revoke", &[("token", refresh)])
        .await;
    assert_eq!(status, 200);
    let (_, intro) = client
        .post(app, "/oauth/introspect", &[("token", access)])
        .await;
    assert_eq!(intro, json!({"active": false}));
    // Unknown tokens are revoked "successfully" (RFC 7009 §2.2).
    let (status, _) = client
        .post(app, "/oauth/revoke", &[("token", "nope")])
        .await;
    assert_eq!(status, 200);
}

/// The payload of a JWT (already verified elsewhere in this file; here only its claims).
fn jwt_payload(raw: &str) -> Value {
    use base64::Engine;
    let part = raw.split('.').nth(1).expect("JWT payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// Group claims of a login and directory group memberships both drive role mappings; a
/// role change shows in the very next token (a refresh), with `role.*` events.
async fn login_groups_and_directory_groups_drive_roles(app: &TestApp) {
    use roster::core::store::prelude::*;
    let idp = Idp::for_app(app, &[]).await;
    idp.account(
        "rita-sub",
        json!({"email": "rita@initech.test", "email_verified": true, "groups": ["Admins", "eng"]}),
    )
    .await;
    oidc_org(app, &idp, "initech", |_| {}).await;
    let store = &app.db.store;
    let org = roster::core::store::OrgStore::org_by_slug(store, "initech")
        .await
        .unwrap()
        .unwrap();
    for (group, role) in [("admins", "admin"), ("Payroll", "payroll-approver")] {
        let m = roster::core::roles::new_mapping(&org.id, "displayName", group, role).unwrap();
        store.insert_role_mapping(&m, &Actor::Cli).await.unwrap();
    }
    let client = Client::register(app).await;
    let (landing, verifier) = login(app, &client, "initech", "rita-sub").await;
    let (status, tokens) = client.redeem(app, &code_of(&landing), &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    let claims = verify_id_token(app, &client, tokens["id_token"].as_str().unwrap()).await;
    assert_eq!(claims["roles"], json!(["admin"]));
    let user_id = claims["sub"].as_str().unwrap().to_owned();

    // The directory puts the user in Payroll: the next token carries the new role.
    let initech = app.directory_token("initech", false).await;
    let group = app
        .call_with(
            &initech,
            reqwest::Method::POST,
            "/Groups",
            Some(
                &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                         "displayName": "Payroll", "members": [{"value": user_id}]}),
            ),
            &[],
        )
        .await
        .expect(201)
        .id();
    let (status, refreshed) = client
        .post(
            app,
            "/oauth/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ],
        )
        .await;
    assert_eq!(status, 200, "{refreshed}");
    let mut roles: Vec<String> = serde_json::from_value(
        jwt_payload(refreshed["id_token"].as_str().unwrap())["roles"].clone(),
    )
    .unwrap();
    roles.sort();
    assert_eq!(roles, ["admin", "payroll-approver"]);

    // The IdP drops the Admins group: the next login takes the role away.
    idp.account(
        "rita-sub",
        json!({"email": "rita@initech.test", "email_verified": true, "groups": ["eng"]}),
    )
    .await;
    let (landing, verifier) = login(app, &client, "initech", "rita-sub").await;
    let (status, tokens) = client.redeem(app, &code_of(&landing), &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    let claims = jwt_payload(tokens["id_token"].as_str().unwrap());
    assert_eq!(claims["roles"], json!(["payroll-approver"]));
    app.call_with(
        &initech,
        reqwest::Method::DELETE,
        &format!("/Groups/{group}"),
        None,
        &[],
    )
    .await
    .expect(204);
    let events = store.events_after(0, Some(&org.id), 1000).await.unwrap();
    let roles: Vec<(String, String)> = events
        .iter()
        .filter(|e| e.kind.starts_with("role."))
        .map(|e| (e.kind.clone(), e.data["role"].as_str().unwrap().to_owned()))
        .collect();
    let want: Vec<(String, String)> = [
        ("role.assigned", "admin"),
        ("role.assigned", "payroll-approver"),
        ("role.unassigned", "admin"),
        ("role.unassigned", "payroll-approver"),
    ]
    .iter()
    .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
    .collect();
    assert_eq!(roles, want);
}

/// A login started at the node `start` (its `/oauth/authorize`); the IdP sends the browser
/// back to the public URL's callback, which is the first node's.
async fn login_via(
    app: &TestApp,
    start: &str,
    client: &Client,
    org: &str,
    hint: &str,
) -> (String, String) {
    let (url, verifier) = login_url(app, client, org, hint);
    let url = url.replacen(&app.base(), start, 1);
    (code_of(&Browser::new().follow(&url).await), verifier)
}

async fn active_at(client: &Client, base: &str, token: &str) -> bool {
    let (status, intro) = client
        .post_at(base, "/oauth/introspect", &[("token", token)])
        .await;
    assert_eq!(status, 200, "{intro}");
    intro["active"] == true
}

/// Three nodes on one PostgreSQL share what a login leaves: a login started on one node
/// finishes on another; a code sent to all three at once is redeemed by one only (and the
/// replays revoke what it issued); a refresh token rotated on one node is spent on the
/// others (its reuse revokes the session everywhere); a SCIM deactivation on one node ends
/// the tokens on every node at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_share_logins_codes_and_tokens() {
    let app = TestApp::start(crate::common::Backend::Postgres).await;
    let idp = Idp::for_app(&app, &[]).await;
    idp.account(
        "nina-sub",
        json!({"email": "nina@initech.test", "email_verified": true}),
    )
    .await;
    let (org, _) = oidc_org(&app, &idp, "initech", |_| {}).await;
    let client = Client::register(&app).await;
    let public = app.base();
    let b = Node::start(&app, true, Some(&public), |s| s).await;
    let c = Node::start(&app, true, Some(&public), |s| s).await;
    let nodes = [app.base(), b.base.clone(), c.base.clone()];

    // Started on B, finished on A; the code sent to all three nodes at once.
    let (code, verifier) = login_via(&app, &nodes[1], &client, "initech", "nina-sub").await;
    let client = std::sync::Arc::new(client);
    let mut tries = Vec::new();
    for base in &nodes {
        let (client, base, code, verifier) =
            (client.clone(), base.clone(), code.clone(), verifier.clone());
        tries.push(tokio::spawn(async move {
            client.redeem_at(&base, &code, &verifier).await
        }));
    }
    let mut granted = Vec::new();
    for t in tries {
        let (status, body) = t.await.unwrap();
        match status.as_u16() {
            200 => granted.push(body),
            400 => assert_eq!(body["error"], "invalid_grant", "{body}"),
            other => panic!("redeeming a code: {other} {body}"),
        }
    }
    assert_eq!(
        granted.len(),
        1,
        "one code redeemed {} times",
        granted.len()
    );
    // The replays revoked the session the code began: its tokens are dead on every node.
    let access = granted[0]["access_token"].as_str().unwrap();
    for base in &nodes {
        assert!(!active_at(&client, base, access).await, "live on {base}");
    }

    // Started on C, redeemed on B, rotated on C; the spent refresh token reused on A.
    let (code, verifier) = login_via(&app, &nodes[2], &client, "initech", "nina-sub").await;
    let (status, tokens) = client.redeem_at(&nodes[1], &code, &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (status, rotated) = client
        .post_at(
            &nodes[2],
            "/oauth/token",
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let access = rotated["access_token"].as_str().unwrap();
    assert!(active_at(&client, &nodes[0], access).await);
    let (status, reused) = client
        .post_at(
            &nodes[0],
            "/oauth/token",
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        )
        .await;
    assert_eq!(
        (status.as_u16(), reused["error"].as_str()),
        (400, Some("invalid_grant")),
        "{reused}"
    );
    for base in &nodes {
        assert!(!active_at(&client, base, access).await, "live on {base}");
    }

    // Deactivated by SCIM on B: the tokens are dead on A and C at once.
    let (code, verifier) = login_via(&app, &nodes[0], &client, "initech", "nina-sub").await;
    let (status, tokens) = client.redeem_at(&nodes[2], &code, &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    let user = jwt_payload(tokens["id_token"].as_str().unwrap())["sub"]
        .as_str()
        .unwrap()
        .to_owned();
    let directory = app.directory_token("initech", false).await;
    let r = reqwest::Client::new()
        .patch(format!("{}/scim/v2/Users/{user}", nodes[1]))
        .bearer_auth(&directory)
        .header("content-type", "application/scim+json")
        .body(
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                   "Operations": [{"op": "replace", "value": {"active": false}}]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for base in [&nodes[0], &nodes[2]] {
        assert!(!active_at(&client, base, access).await, "live on {base}");
    }
    let scope = roster::core::model::Scope {
        org: org.id.clone(),
        actor: Actor::Cli,
    };
    assert_eq!(app.db.store.live_sessions(&scope, &user).await.unwrap(), 0);
    b.stop().await;
    c.stop().await;
    app.stop().await;
}

backend_tests!(
    login_groups_and_directory_groups_drive_roles,
    jit_refresh_and_domain_hint,
    scim_put_and_delete_end_tokens,
    token_endpoint_errors_and_revocation,
    oidc_login_then_scim_deactivation_ends_every_token,
    jit_policy_refusals_and_scim_linking,
    key_rotation_on_both_sides
);
