//! SAML logins against responses signed by a real XML-DSig library (`tests/peers/saml`,
//! signxml): every valid form logs in (signed assertion, signed response, both, encrypted
//! with AES-128/256 in GCM and CBC); every hostile form (XSW1–8, unsigned, SHA-1, wrong
//! certificate, tampered, comment in NameID, expired, wrong audience/recipient/destination/
//! InResponseTo/issuer, DOCTYPE, XXE, entity expansion, two assertions, XSLT, external
//! references, RSA 1.5) stops at Roster's "rejected" page. Also: a replayed assertion, a
//! response finished in another browser, IdP metadata without a signing certificate.

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use base64::Engine;
use roster::core::model::{Actor, Org};
use roster::core::orgs::{self, OrgSlug};
use roster::core::sso::{Connection, ConnectionConfig, IdpKind, Protocol};
use roster::core::store::prelude::*;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::common::{Backend, TestApp};
use crate::sso_oidc::{APP_REDIRECT, Browser, Client, login_url};

pub const IDP_ENTITY: &str = "https://idp.example.test/metadata";
pub const IDP_SSO: &str = "https://idp.example.test/sso";

fn python() -> String {
    crate::common::install_once("install-saml-peer.sh", "python3 and PyPI");
    format!("{}/.ci/.venv-saml/bin/python", env!("CARGO_MANIFEST_DIR"))
}

/// Runs `idp.py <args>` with `input` on stdin; returns stdout.
pub fn idp(args: &[&str], input: &Value) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/saml/idp.py");
    let mut child = Command::new(python())
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start idp.py");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(child.wait().unwrap().success(), "idp.py {args:?} failed");
    out
}

pub struct Saml {
    pub org: Org,
    pub conn: Connection,
    pub idp_key: String,
    pub idp_cert: String,
    pub sp_cert: String,
}

impl Saml {
    fn entity(&self, app: &TestApp) -> String {
        roster::sso::saml_entity_id(&app.base(), &self.conn.id)
    }

    /// Base64 SAMLResponses for `cases`, answering `in_response_to`.
    pub fn responses(&self, app: &TestApp, in_response_to: Option<&str>, cases: &[&str]) -> Value {
        self.responses_at(app, in_response_to, cases, None)
    }

    /// The same, made as if the IdP's clock read `now` (RFC 3339).
    fn responses_at(
        &self,
        app: &TestApp,
        in_response_to: Option<&str>,
        cases: &[&str],
        now: Option<&str>,
    ) -> Value {
        let entity = self.entity(app);
        let mut req = json!({
            "idp_entity_id": IDP_ENTITY,
            "idp_key_pem": self.idp_key, "idp_cert_pem": self.idp_cert,
            "sp_entity_id": entity, "acs_url": format!("{entity}/acs"),
            "name_id": "erin@saml.test",
            "name_id_format": "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
            "attributes": {"email": ["erin@saml.test"], "firstName": ["Erin"], "groups": ["ops"]},
            "session_index": "_s1",
            "sp_cert_pem": self.sp_cert,
            "cases": cases,
        });
        if let Some(id) = in_response_to {
            req["in_response_to"] = json!(id);
        }
        if let Some(now) = now {
            req["now"] = json!(now);
        }
        let out: Value = serde_json::from_str(&idp(&["responses"], &req)).unwrap();
        out["responses"].clone()
    }
}

async fn saml_org(
    app: &TestApp,
    slug: &str,
    with_signing_cert: bool,
    policy: impl FnOnce(&mut ConnectionConfig),
) -> Result<Saml, String> {
    let s = &app.db.store;
    let org = orgs::create_org(s, &OrgSlug::parse(slug).unwrap(), None, &Actor::Cli)
        .await
        .unwrap();
    crate::common::verified_domain(s, &org, "saml.test").await;
    let keys: Value = serde_json::from_str(&idp(&["keys"], &json!({}))).unwrap();
    let mut md_args = vec!["metadata", "--sso-url", IDP_SSO];
    if !with_signing_cert {
        md_args.push("--omit-signing-cert");
    }
    let metadata = idp(
        &md_args,
        &json!({"idp_entity_id": IDP_ENTITY, "idp_cert_pem": keys["cert_pem"], "sso_url": IDP_SSO}),
    );
    roster::sso::saml_sp::check_idp_metadata(&metadata).map_err(|e| e.to_string())?;
    let id = roster::core::new_id();
    let (sp_key, sp_cert) =
        roster::sso::saml_sp::new_sp_keypair("test sp").map_err(|e| e.to_string())?;
    let mut config = ConnectionConfig {
        saml_idp_metadata: Some(metadata),
        saml_sp_cert_pem: Some(sp_cert.clone()),
        // Made by the operator (as the CLI does): the IdP peer runs on 127.0.0.1.
        private_networks: true,
        ..Default::default()
    };
    policy(&mut config);
    let conn = Connection {
        secret_enc: Some(
            app.db
                .master_key()
                .encrypt(&format!("connection:{id}"), sp_key.as_bytes())
                .unwrap(),
        ),
        id,
        org_id: org.id.clone(),
        protocol: Protocol::Saml,
        name: "saml idp".into(),
        idp: IdpKind::Okta,
        config,
        created_at: roster::core::now(),
        disabled: false,
    };
    s.insert_connection(&conn, &Actor::Cli).await.unwrap();
    Ok(Saml {
        org,
        conn,
        idp_key: keys["key_pem"].as_str().unwrap().to_owned(),
        idp_cert: keys["cert_pem"].as_str().unwrap().to_owned(),
        sp_cert,
    })
}

/// Starts a login in `browser`: returns the AuthnRequest ID and the RelayState Roster sent.
async fn start(app: &TestApp, browser: &Browser, client: &Client, org: &str) -> (String, String) {
    let (url, _) = login_url(app, client, org, "erin@saml.test");
    let r = browser.http.get(url).send().await.unwrap();
    assert!(r.status().is_redirection(), "authorize: {}", r.status());
    let loc = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    assert!(loc.as_str().starts_with(IDP_SSO), "{loc}");
    let q: std::collections::HashMap<_, _> = loc.query_pairs().into_owned().collect();
    let deflated = base64::engine::general_purpose::STANDARD
        .decode(&q["SAMLRequest"])
        .unwrap();
    let mut xml = String::new();
    flate2::read::DeflateDecoder::new(&deflated[..])
        .read_to_string(&mut xml)
        .unwrap();
    let id = xml
        .split(" ID=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("AuthnRequest ID")
        .to_owned();
    assert!(id.len() >= 33, "request ids carry 128 random bits: {id}");
    (id, q["RelayState"].clone())
}

/// Posts a response to the ACS from `browser` and follows Roster's redirects: `Ok(code)`
/// at the app, `Err((status, page))` on a page.
pub async fn post(
    app: &TestApp,
    saml: &Saml,
    browser: &Browser,
    b64: &str,
    relay: Option<&str>,
) -> Result<String, (u16, String)> {
    let mut form = vec![("SAMLResponse", b64)];
    if let Some(r) = relay {
        form.push(("RelayState", r));
    }
    let r = browser
        .http
        .post(format!("{}/acs", saml.entity(app)))
        .form(&form)
        .send()
        .await
        .unwrap();
    let status = r.status();
    if !status.is_redirection() {
        return Err((status.as_u16(), r.text().await.unwrap_or_default()));
    }
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    match browser.follow(&loc).await {
        crate::sso_oidc::Landing::App(url) => Ok(url
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()),
        crate::sso_oidc::Landing::Page(status, body) => Err((status.as_u16(), body)),
    }
}

const VALID: [&str; 9] = [
    "valid_signed_assertion",
    "valid_within_skew",
    "valid_signed_response",
    "valid_signed_both",
    "valid_encrypted",
    "valid_encrypted_cbc",
    "valid_encrypted_signed_response",
    "valid_encrypted_aes256_gcm",
    "valid_encrypted_aes256_cbc",
];

const HOSTILE: [&str; 29] = [
    "encrypted_rsa1_5",
    "unsigned",
    "sha1_signature",
    "wrong_cert",
    "tampered",
    "xsw1",
    "xsw2",
    "xsw3",
    "xsw4",
    "xsw5",
    "xsw6",
    "xsw7",
    "xsw8",
    "comment_in_nameid",
    "expired",
    "not_yet_valid",
    "wrong_audience",
    "wrong_destination",
    "wrong_recipient",
    "wrong_in_response_to",
    "wrong_issuer",
    "no_audience_restriction",
    "doctype",
    "xxe",
    "billion_laughs",
    "two_assertions",
    "two_signed_assertions",
    "xslt_transform",
    "external_reference",
];

/// Every case of the peer, each answering its own login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saml_valid_logins_and_every_attack() {
    let app = TestApp::start(Backend::Sqlite).await;
    let saml = saml_org(&app, "samlco", true, |_| {}).await.unwrap();
    let client = Client::register(&app).await;
    for case in VALID.iter().chain(HOSTILE.iter()) {
        let browser = Browser::new();
        let (request_id, relay) = start(&app, &browser, &client, "samlco").await;
        let responses = saml.responses(&app, Some(&request_id), &[case]);
        let b64 = responses[*case].as_str().unwrap();
        let outcome = post(&app, &saml, &browser, b64, Some(&relay)).await;
        if VALID.contains(case) {
            let code = outcome.unwrap_or_else(|e| panic!("{case} was refused: {e:?}"));
            assert!(code.starts_with("rsn_c_"), "{case}: no code");
        } else {
            match outcome {
                Err((400, body)) => assert!(body.contains("rejected"), "{case}: {body}"),
                other => panic!("{case}: a hostile response was not rejected: {other:?}"),
            }
        }
    }
    // JIT made one user for all the valid logins (same NameID, linked after the first).
    let token = app.directory_token("samlco", true).await;
    let users = app
        .call_with(&token, reqwest::Method::GET, "/Users", None, &[])
        .await
        .expect(200);
    assert_eq!(users.body["totalResults"], 1, "{}", users.body);
    assert_eq!(users.body["Resources"][0]["userName"], "erin@saml.test");
    app.stop().await;
}

/// The happy path on both stores, a replay, another browser, IdP-initiated logins.
async fn saml_login_replay_and_binding(app: &TestApp) {
    let client = Client::register(app).await;
    let saml = saml_org(app, "samlbind", true, |c| {
        c.allow_idp_initiated = true;
        c.idp_initiated_app = Some(client.id.clone());
        c.idp_initiated_redirect_uri = Some(APP_REDIRECT.to_owned());
    })
    .await
    .unwrap();

    // Our SP metadata, for the IdP: entity id, ACS, signing and encryption certificates.
    let md = reqwest::get(format!("{}/metadata", saml.entity(app)))
        .await
        .unwrap();
    let status = md.status();
    let md = md.text().await.unwrap();
    assert_eq!(status, 200, "{md}");
    assert!(md.contains(&format!("{}/acs", saml.entity(app))), "{md}");
    assert!(md.contains("use=\"encryption\""), "{md}");
    assert!(
        !md.contains("localhost"),
        "no default endpoints leak in: {md}"
    );

    // A full SP-initiated login.
    let browser = Browser::new();
    let (request_id, relay) = start(app, &browser, &client, "samlbind").await;
    let b64 = saml.responses(app, Some(&request_id), &["valid_signed_both"])["valid_signed_both"]
        .as_str()
        .unwrap()
        .to_owned();
    let code = post(app, &saml, &browser, &b64, Some(&relay))
        .await
        .expect("login");
    assert!(code.starts_with("rsn_c_"));

    // The same response again (its login is spent): refused.
    let again = post(app, &saml, &browser, &b64, Some(&relay)).await;
    assert!(matches!(again, Err((400, _))), "{again:?}");

    // A response finished in another browser than the one that started the login.
    let (request_id, relay) = start(app, &browser, &client, "samlbind").await;
    let b64 = saml.responses(app, Some(&request_id), &["valid_signed_assertion"])
        ["valid_signed_assertion"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = Browser::new();
    match post(app, &saml, &other, &b64, Some(&relay)).await {
        Err((400, body)) => assert!(body.contains("another browser"), "{body}"),
        x => panic!("a login finished in another browser: {x:?}"),
    }

    // IdP-initiated (allowed on this connection): once per assertion (the replay cache,
    // shared through the database), and never for a response that answers a request.
    let unasked = saml.responses(app, None, &["valid_signed_assertion"])["valid_signed_assertion"]
        .as_str()
        .unwrap()
        .to_owned();
    let code = post(app, &saml, &Browser::new(), &unasked, None)
        .await
        .expect("IdP-initiated login");
    assert!(code.starts_with("rsn_c_"));
    match post(app, &saml, &Browser::new(), &unasked, None).await {
        Err((400, body)) => assert!(body.contains("already used"), "{body}"),
        x => panic!("a replayed assertion logged in: {x:?}"),
    }
    // Expired by the IdP's clock but within the clock skew: accepted once, and the replay
    // cache keeps it as long as it is accepted (not only until its NotOnOrAfter).
    let late = saml.responses(app, None, &["valid_within_skew"])["valid_within_skew"]
        .as_str()
        .unwrap()
        .to_owned();
    let code = post(app, &saml, &Browser::new(), &late, None)
        .await
        .expect("an assertion within the clock skew logs in");
    assert!(code.starts_with("rsn_c_"));
    match post(app, &saml, &Browser::new(), &late, None).await {
        Err((400, body)) => assert!(body.contains("already used"), "{body}"),
        x => panic!("a replayed assertion within the clock skew logged in: {x:?}"),
    }
    // The replay cache holds across nodes: a second server with its own connection pool to
    // the same database (behind the same public URL) refuses it too.
    let public = app.base();
    let node_b = crate::common::Node::start(app, true, Some(&public), |s| s).await;
    let acs_b = format!("{}/sso/saml/{}/acs", node_b.base, saml.conn.id);
    let r = reqwest::Client::new()
        .post(&acs_b)
        .form(&[("SAMLResponse", unasked.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body = r.text().await.unwrap();
    assert!(body.contains("already used"), "node B: {body}");
    node_b.stop().await;
    let answering = saml.responses(app, Some("_some-request"), &["valid_signed_assertion"])
        ["valid_signed_assertion"]
        .as_str()
        .unwrap()
        .to_owned();
    match post(app, &saml, &Browser::new(), &answering, None).await {
        Err((400, body)) => assert!(body.contains("rejected"), "{body}"),
        x => panic!("an unsolicited response answering a request logged in: {x:?}"),
    }
    // Everyone here is one JIT user of the org.
    let scope = roster::core::model::Scope {
        org: saml.org.id.clone(),
        actor: Actor::Cli,
    };
    let users = app
        .db
        .store
        .users_by_email(&scope, "erin@saml.test")
        .await
        .unwrap();
    assert_eq!(users.len(), 1);
}

/// An IdP whose clock runs 150 s ahead: refused with the default 60 s allowance, accepted
/// by a connection that allows 300 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saml_clock_skew_is_configurable() {
    let ahead = (time::OffsetDateTime::now_utc() + time::Duration::seconds(150))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    for (slug, skew, accepted) in [("skewstrict", None, false), ("skewlax", Some(300), true)] {
        let app = TestApp::start(Backend::Sqlite).await;
        let client = Client::register(&app).await;
        let saml = saml_org(&app, slug, true, |c| c.saml_clock_skew_secs = skew)
            .await
            .unwrap();
        let browser = Browser::new();
        let (request_id, relay) = start(&app, &browser, &client, slug).await;
        let b64 = saml.responses_at(
            &app,
            Some(&request_id),
            &["valid_signed_assertion"],
            Some(&ahead),
        )["valid_signed_assertion"]
            .as_str()
            .unwrap()
            .to_owned();
        let outcome = post(&app, &saml, &browser, &b64, Some(&relay)).await;
        assert_eq!(outcome.is_ok(), accepted, "{slug}: {outcome:?}");
        app.stop().await;
    }
}

/// The replay cache keeps an assertion's id for as long as the assertion would be accepted:
/// until the latest of its Conditions and SubjectConfirmationData NotOnOrAfter, plus the
/// connection's clock skew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saml_replay_entries_outlive_the_clock_skew() {
    use time::format_description::well_known::Rfc3339;
    let app = TestApp::start(Backend::Sqlite).await;
    let saml = saml_org(&app, "skewreplay", true, |c| {
        c.saml_clock_skew_secs = Some(120)
    })
    .await
    .unwrap();
    let sp_key = app
        .db
        .master_key()
        .decrypt_string(
            &saml.conn.secret_purpose(),
            saml.conn.secret_enc.as_deref().unwrap(),
        )
        .unwrap();
    let entity = saml.entity(&app);
    let sp = roster::sso::saml_sp::Sp::new(
        &entity,
        &format!("{entity}/acs"),
        saml.conn.config.saml_idp_metadata.as_deref().unwrap(),
        &sp_key,
        &saml.sp_cert,
        120,
    )
    .unwrap();
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap();
    // Conditions NotOnOrAfter now - 20 s, SubjectConfirmationData NotOnOrAfter now - 10 s.
    let b64 = saml.responses_at(
        &app,
        None,
        &["valid_within_skew"],
        Some(&now.format(&Rfc3339).unwrap()),
    )["valid_within_skew"]
        .as_str()
        .unwrap()
        .to_owned();
    let verified = sp.verify(&b64, None).expect("accepted within the skew");
    let kept_until = time::OffsetDateTime::parse(&verified.expires_at, &Rfc3339).unwrap();
    assert_eq!(
        kept_until,
        now - time::Duration::seconds(10) + time::Duration::seconds(120),
        "{}",
        verified.expires_at
    );
    app.stop().await;
}

/// A connection to IdP metadata without a signing certificate is refused up front.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saml_metadata_without_signing_cert_is_refused() {
    let app = TestApp::start(Backend::Sqlite).await;
    let err = saml_org(&app, "nocert", false, |_| {})
        .await
        .err()
        .expect("refused");
    assert!(err.contains("signing certificate"), "{err}");
    app.stop().await;
}

backend_tests!(saml_login_replay_and_binding);
