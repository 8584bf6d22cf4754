//! The customer setup page at `/setup`: what a customer's IT admin opens from a one-time
//! link (`roster org setup-link`). The link's token is spent at first use and exchanged for
//! a session cookie; the session sees its organization's name and sync counts, the values
//! to paste into the IdP, a SCIM token it mints, and the connection it creates — nothing
//! else of the organization.

// Handlers answer a `Response` either way; boxing the error side would buy nothing.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, Render, html};
use serde::Deserialize;
use serde_json::json;

use super::html::{badge, page, table};
use super::{cookie, csrf_of};
use crate::api::ApiState;
use crate::core::domains::{self, Domain};
use crate::core::error::{CoreError, CoreResult};
use crate::core::model::{Actor, Org};
use crate::core::orgs;
use crate::core::secrets::{hash_secret, random_token, secrets_equal};
use crate::core::sessions::LoginPurpose;
use crate::core::sso::{Assertion, Connection, IdpKind, Profile, Protocol};
use crate::core::store::SetupLink;
use crate::core::store::prelude::*;
use crate::sso::SsoState;
use crate::sso::setup::{ConnectionSpec, ConnectionView, Upstream, create_connection};

const COOKIE: &str = "roster_setup";
const MAX_METADATA: usize = 256 * 1024;

pub struct SetupState {
    pub api: Arc<ApiState>,
    pub sso: Arc<SsoState>,
}

pub fn router(state: Arc<SetupState>) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/status.json", get(status))
        .route("/setup.js", get(script))
        .route("/scim-token", post(scim_token))
        .route("/domains", post(claim_domain))
        .route("/domains/verify", post(verify_domain))
        .route("/saml", post(saml))
        .route("/oidc", post(oidc))
        .route("/test", post(test_login))
        .route("/{token}", get(open))
        .with_state(state)
}

/// `7d`, `12h`, `30m` or seconds, as seconds (1 minute to 90 days).
pub fn parse_expiry(s: &str) -> CoreResult<i64> {
    let s = s.trim();
    let (n, unit) = match s.char_indices().last() {
        Some((i, 'd')) => (&s[..i], 86_400),
        Some((i, 'h')) => (&s[..i], 3_600),
        Some((i, 'm')) => (&s[..i], 60),
        Some((i, 's')) => (&s[..i], 1),
        _ => (s, 1),
    };
    n.parse::<i64>()
        .ok()
        .map(|n| n.saturating_mul(unit))
        .filter(|secs| (60..=90 * 86_400).contains(secs))
        .ok_or_else(|| {
            CoreError::InvalidValue(format!(
                "expiry \"{s}\": use e.g. 7d, 12h or 30m (1 minute to 90 days)"
            ))
        })
}

/// A new link for `org`, valid `secs`: the link record and its token (shown once).
pub async fn create_link<S: Store>(
    store: &S,
    org: &Org,
    secs: i64,
    actor: &Actor,
) -> CoreResult<(SetupLink, String)> {
    let token = random_token("rsl_")?;
    let link = SetupLink {
        id: crate::core::new_id(),
        org_id: org.id.clone(),
        created_at: crate::core::now(),
        expires_at: crate::core::now_plus_secs(secs),
        opened_at: None,
        directory_id: None,
        connection_id: crate::core::new_id(),
    };
    store
        .insert_setup_link(&link, &hash_secret(&token), actor)
        .await?;
    Ok((link, token))
}

/// The setup page's own script (live status) and its forms, which may lead to the IdP (the
/// test login's redirect).
const SETUP_CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; \
                         form-action 'self' https: http:; frame-ancestors 'none'; base-uri 'none'";

fn setup_headers() -> [(header::HeaderName, &'static str); 4] {
    super::page_headers(SETUP_CSP)
}

fn respond(status: StatusCode, title: &str, body: Markup) -> Response {
    (status, setup_headers(), Html(page(title, None, body))).into_response()
}

/// A 400 page saying what to fix, with the way back to the setup steps.
fn go_back(title: &str, message: &str) -> Response {
    respond(
        StatusCode::BAD_REQUEST,
        title,
        html! {
            p class="error" { (message) }
            p { a href="/setup" { "Back" } }
        },
    )
}

fn gone() -> Response {
    respond(
        StatusCode::GONE,
        "Setup link used or expired",
        html! {
            p class="error" {
                "This setup link was already used or has expired. Ask your provider for a new one."
            }
        },
    )
}

fn failed(e: impl std::fmt::Display) -> Response {
    respond(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        html! { p class="error" { (e) } },
    )
}

/// `GET /setup/{token}`: spends the link and opens its session.
async fn open(State(st): State<Arc<SetupState>>, Path(token): Path<String>) -> Response {
    let session = match random_token("rss_") {
        Ok(s) => s,
        Err(e) => return failed(e),
    };
    let opened = st
        .api
        .store
        .open_setup_link(
            &hash_secret(&token),
            &hash_secret(&session),
            &crate::core::now(),
        )
        .await;
    match opened {
        Ok(Some(link)) => {
            let max_age = time::OffsetDateTime::parse(
                &link.expires_at,
                &time::format_description::well_known::Rfc3339,
            )
            .map(|t| (t - time::OffsetDateTime::now_utc()).whole_seconds().max(0))
            .unwrap_or(0);
            let c = format!(
                "{COOKIE}={session}; Path=/setup; HttpOnly; SameSite=Lax; Max-Age={max_age}{}",
                if st.api.public_url.starts_with("https://") {
                    "; Secure"
                } else {
                    ""
                }
            );
            // Off the URL at once: the token is spent, and the address bar holds no secret.
            ([(header::SET_COOKIE, c)], Redirect::to("/setup")).into_response()
        }
        Ok(None) => gone(),
        Err(e) => failed(e),
    }
}

/// The link, organization and CSRF token of a setup session.
struct Session {
    link: SetupLink,
    org: Org,
    csrf: String,
}

async fn session(st: &SetupState, headers: &HeaderMap) -> Result<Session, Response> {
    let token = cookie(headers, COOKIE).ok_or_else(gone)?;
    let link = st
        .api
        .store
        .setup_session(&hash_secret(token), &crate::core::now())
        .await
        .map_err(failed)?
        .ok_or_else(gone)?;
    let org = st
        .api
        .store
        .org_by_id(link.org_id.as_str())
        .await
        .map_err(failed)?
        .ok_or_else(gone)?;
    Ok(Session {
        link,
        org,
        csrf: csrf_of(token),
    })
}

/// The session of a form post, if its CSRF token is the session's.
async fn form_session(
    st: &SetupState,
    headers: &HeaderMap,
    csrf: &str,
) -> Result<Session, Response> {
    let s = session(st, headers).await?;
    s.check(csrf)?;
    Ok(s)
}

impl Session {
    fn check(&self, csrf: &str) -> Result<(), Response> {
        if secrets_equal(csrf, &self.csrf) {
            Ok(())
        } else {
            Err(respond(
                StatusCode::FORBIDDEN,
                "Form expired",
                html! { p class="error" { "The form expired; go back, reload and try again." } },
            ))
        }
    }
    fn csrf_field(&self) -> Markup {
        html! { input type="hidden" name="csrf" value=(self.csrf); }
    }
    fn actor(&self) -> Actor {
        Actor::SetupLink {
            link_id: self.link.id.clone(),
        }
    }
}

#[derive(Deserialize)]
struct HomeQuery {
    idp: Option<String>,
}

struct Steps {
    name: &'static str,
    sso: &'static [&'static str],
    scim: &'static [&'static str],
}

/// Step-by-step instructions per IdP; `{…}` names a value shown beside them.
fn steps(idp: IdpKind) -> Steps {
    match idp {
        IdpKind::Okta => Steps {
            name: "Okta",
            sso: &[
                "Admin Console → Applications → Create App Integration → SAML 2.0.",
                "Single sign-on URL: paste the ACS URL. Audience URI (SP Entity ID): paste the Entity ID. Name ID format: EmailAddress.",
                "Attribute statements: email → user.email, firstName → user.firstName, lastName → user.lastName; a group attribute statement named groups if you want roles from groups.",
                "Finish, open Sign On → SAML 2.0 → Metadata details, copy the metadata and paste it below.",
            ],
            scim: &[
                "In the same app: General → App Settings → Provisioning: SCIM.",
                "Provisioning → Integration: SCIM connector base URL: paste the SCIM base URL; Unique identifier field: userName; Push New Users, Push Profile Updates, Push Groups; Authentication mode: HTTP Header, and paste the SCIM token as the Bearer token.",
                "Test Connector Configuration, Save; then To App: enable Create Users, Update User Attributes, Deactivate Users. Assign people and push groups.",
            ],
        },
        IdpKind::Entra => Steps {
            name: "Microsoft Entra ID",
            sso: &[
                "Enterprise applications → New application → Create your own application (non-gallery).",
                "Single sign-on → SAML. Identifier (Entity ID): paste the Entity ID. Reply URL (Assertion Consumer Service URL): paste the ACS URL.",
                "SAML Certificates → Federation Metadata XML: download it and paste its content below.",
            ],
            scim: &[
                "The same enterprise application → Provisioning → Get started; mode Automatic.",
                "Tenant URL: paste the SCIM base URL. Secret Token: paste the SCIM token. Test Connection.",
                "Keep userPrincipalName → userName; assign users and groups; Start provisioning.",
            ],
        },
        IdpKind::Google => Steps {
            name: "Google Workspace",
            sso: &[
                "Admin console → Apps → Web and mobile apps → Add app → Add custom SAML app.",
                "Download the IdP metadata on the Google Identity Provider details step and paste it below.",
                "Service provider details: ACS URL: paste the ACS URL. Entity ID: paste the Entity ID. Name ID format EMAIL, Name ID Basic Information > Primary email.",
                "Attribute mapping: First name → firstName, Last name → lastName; turn the app ON for everyone (or the groups that should sign in).",
            ],
            scim: &[
                "Google Workspace offers SCIM provisioning only for its catalogue apps, not for custom SAML apps.",
                "Users are created at their first sign-in (just-in-time). Your provider sees users who have not signed in for a long time in its drift report; remove departed people in Google and they can no longer sign in.",
            ],
        },
        IdpKind::Onelogin => Steps {
            name: "OneLogin",
            sso: &[
                "Applications → Add App → SAML Custom Connector (Advanced) (it includes SCIM: pick \"SCIM Provisioner with SAML (SCIM v2 Enterprise)\" to do both).",
                "Configuration: Audience (EntityID): paste the Entity ID. ACS (Consumer) URL and ACS URL Validator: paste the ACS URL. SAML signature element: Both.",
                "More Actions → SAML Metadata: download and paste it below.",
            ],
            scim: &[
                "Configuration: SCIM Base URL: paste the SCIM base URL; SCIM Bearer Token: paste the SCIM token; Enable the API connection.",
                "Provisioning: Enable provisioning, and choose what happens on user deletion (Delete) and suspension (Suspend).",
            ],
        },
        IdpKind::Jumpcloud => Steps {
            name: "JumpCloud",
            sso: &[
                "SSO Applications → Add New Application → Custom Application → Manage Single Sign-On (SSO) with SAML.",
                "SP Entity ID: paste the Entity ID. ACS URL: paste the ACS URL. SAMLSubject NameID: email.",
                "Export Metadata and paste it below.",
            ],
            scim: &[
                "Identity Management tab → SCIM 2.0: Base URL: paste the SCIM base URL; Token Key: paste the SCIM token; Test Connection, Activate.",
                "Bind user groups to the application: their members are provisioned.",
            ],
        },
        IdpKind::Generic => Steps {
            name: "Another SAML IdP",
            sso: &[
                "Create a SAML 2.0 application with the Entity ID and ACS URL below; send email (as NameID or an email attribute), firstName and lastName.",
                "Paste the IdP's metadata below.",
            ],
            scim: &[
                "Give your IdP the SCIM base URL and the SCIM token (as an HTTP Bearer token).",
            ],
        },
    }
}

fn value(label: &str, v: &str) -> Markup {
    html! { div class="value" { span { (label) } code data-copy { (v) } } }
}

/// `GET /setup`: the steps for the chosen IdP, the values to paste, the forms.
async fn home(
    State(st): State<Arc<SetupState>>,
    headers: HeaderMap,
    Query(q): Query<HomeQuery>,
) -> Response {
    let s = match session(&st, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let idp = q
        .idp
        .as_deref()
        .and_then(|i| IdpKind::parse(i).ok())
        .unwrap_or(IdpKind::Okta);
    let conn = match st.api.store.connection(&s.link.connection_id).await {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    let base = &st.api.public_url;
    let entity = crate::sso::saml_entity_id(base, &s.link.connection_id);
    let steps = steps(idp);
    let domains = match st.api.store.list_domains(Some(&s.org.id)).await {
        Ok(list) => domains_section(&s, &list),
        Err(e) => return failed(e),
    };
    let body = html! {
        p {
            "Connect " b { (s.org.name) } "'s identity provider: single sign-on, then user \
             provisioning. This page shows nothing else of the organization."
        }
        div class="tabs" {
            @for k in IdpKind::ALL {
                a href={ "/setup?idp=" (k.as_str()) } class=[(k == idp).then_some("on")] {
                    (self::steps(k).name)
                }
            }
        }
        (domains)
        h2 { "1. Single sign-on (SAML)" }
        (value("Entity ID (Audience)", &entity))
        (value("ACS URL (Reply / Single sign-on URL)", &format!("{entity}/acs")))
        (value("SP metadata URL (after step 1 is saved)", &format!("{entity}/metadata")))
        ol class="steps" { @for step in steps.sso { li { (step) } } }
        @if let Some(c) = &conn {
            @let v = ConnectionView::of(c, base);
            p class="notice" {
                "Connected: " (v.name) " (" (v.idp) " " (v.protocol) "). "
                form class="inline" method="post" action="/setup/test" {
                    (s.csrf_field())
                    button { "Test connection" }
                }
            }
        } @else {
            form method="post" action="/setup/saml" {
                (s.csrf_field())
                input type="hidden" name="idp" value=(idp.as_str());
                label {
                    "IdP metadata file"
                    input type="file" id="metadata-file"
                        accept=".xml,application/xml,text/xml,application/samlmetadata+xml";
                }
                label {
                    "or paste the IdP metadata (XML)"
                    textarea id="metadata" name="metadata" required
                        placeholder="<EntityDescriptor …" {}
                }
                p { button { "Save SAML connection" } }
            }
            details {
                summary { "Use OpenID Connect instead" }
                p {
                    "Register a web app at your IdP with the redirect URI below, then enter its \
                     details."
                }
                (value("Redirect URI", &format!("{base}/sso/oidc/callback")))
                form method="post" action="/setup/oidc" {
                    (s.csrf_field())
                    input type="hidden" name="idp" value=(idp.as_str());
                    label { "Issuer URL" input name="issuer" required placeholder="https://…"; }
                    label { "Client ID" input name="client_id" required; }
                    label { "Client secret" input name="client_secret" type="password" required; }
                    p { button { "Save OIDC connection" } }
                }
            }
        }
        h2 { "2. User provisioning (SCIM 2.0)" }
        (value("SCIM base URL (Tenant URL)", &format!("{base}/scim/v2")))
        ol class="steps" { @for step in steps.scim { li { (step) } } }
        form method="post" action="/setup/scim-token" {
            (s.csrf_field())
            button class="secondary" { "Create a SCIM token" }
        }
        p class="empty" { "A token is shown once. Creating another does not revoke the first." }
        h2 { "3. Status" }
        div id="status" class="cards" {
            div class="card" { b data-k="users" { "…" } span { "users synced" } }
            div class="card" { b data-k="groups" { "…" } span { "groups synced" } }
            div class="card" {
                b data-k="last_scim_request_at" { "…" } span { "last SCIM request" }
            }
            div class="card" { b data-k="connection" { "…" } span { "SSO" } }
        }
        script src="/setup/setup.js" {}
    };
    (
        setup_headers(),
        Html(page(&format!("Set up {}", s.org.name), None, body)),
    )
        .into_response()
}

/// The organization's email domains: each with its state and the TXT record to publish; a
/// form to claim another. Only verified domains let people of the domain sign in.
fn domains_section(s: &Session, list: &[Domain]) -> Markup {
    html! {
        h2 { "Your email domains" }
        p {
            "People sign in only with addresses in verified domains. Claim each domain, publish \
             its DNS record, then check it."
        }
        @for d in list {
            @if d.verified() {
                p class="notice" { b { (d.domain) } " " (badge("verified", "ok")) }
            } @else {
                p {
                    b { (d.domain) } " " (badge("pending", "warn"))
                    " — add this TXT record at your DNS provider:"
                }
                (value("Name", &d.record_name()))
                (value("Value", &d.record_value()))
                @if let Some(e) = &d.check_error {
                    p class="error" { "Last check: " (e) }
                }
                form method="post" action="/setup/domains/verify" {
                    (s.csrf_field())
                    input type="hidden" name="domain" value=(d.domain);
                    button class="secondary" { "Check DNS" }
                }
            }
        }
        form method="post" action="/setup/domains" {
            (s.csrf_field())
            label {
                "Domain"
                input name="domain" required placeholder="example.com" maxlength="253";
            }
            p { button class="secondary" { "Claim domain" } }
        }
    }
}

#[derive(Deserialize)]
struct DomainForm {
    csrf: String,
    domain: String,
}

/// `POST /setup/domains`: claims a domain for the link's organization (pending).
async fn claim_domain(
    State(st): State<Arc<SetupState>>,
    headers: HeaderMap,
    Form(f): Form<DomainForm>,
) -> Response {
    let s = match form_session(&st, &headers, &f.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match domains::claim(&st.api.store, &s.org, &f.domain, &s.actor()).await {
        Ok(_) => Redirect::to("/setup").into_response(),
        Err(CoreError::InvalidValue(m) | CoreError::Uniqueness(m)) => {
            go_back("Check the domain", &m)
        }
        Err(e) => failed(e),
    }
}

/// `POST /setup/domains/verify`: looks up a claimed domain's TXT record now.
async fn verify_domain(
    State(st): State<Arc<SetupState>>,
    headers: HeaderMap,
    Form(f): Form<DomainForm>,
) -> Response {
    let s = match form_session(&st, &headers, &f.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match domains::verify(
        &st.api.store,
        &st.api.dns,
        &s.org,
        &f.domain,
        false,
        &s.actor(),
    )
    .await
    {
        Ok(_) => Redirect::to("/setup").into_response(),
        Err(CoreError::NotFound(m) | CoreError::Uniqueness(m)) => go_back("Check the domain", &m),
        Err(e) => failed(e),
    }
}

/// Polls `/setup/status.json` every few seconds into the status cards.
async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        r#"async function poll() {
  try {
    const r = await fetch("/setup/status.json", {credentials: "same-origin"});
    if (r.ok) {
      const s = await r.json();
      for (const el of document.querySelectorAll("[data-k]")) {
        const v = s[el.dataset.k];
        el.textContent = v === null || v === undefined ? "—"
          : el.dataset.k.endsWith("_at") ? new Date(v).toLocaleTimeString() : String(v);
      }
    }
  } catch (e) {}
  setTimeout(poll, 3000);
}
poll();
// A metadata file chosen is read into the form (nothing leaves the page until it is sent).
const file = document.getElementById("metadata-file");
if (file) file.addEventListener("change", async () => {
  const f = file.files[0];
  if (f) document.getElementById("metadata").value = await f.text();
});
"#,
    )
}

/// `GET /setup/status.json`: the live status the page shows.
async fn status(State(st): State<Arc<SetupState>>, headers: HeaderMap) -> Response {
    let s = match session(&st, &headers).await {
        Ok(s) => s,
        Err(_) => {
            return (StatusCode::GONE, axum::Json(json!({"error": "expired"}))).into_response();
        }
    };
    let stats = match st.api.store.org_stats(&s.org.id).await {
        Ok(x) => x,
        Err(e) => return failed(e),
    };
    let conn = st
        .api
        .store
        .connection(&s.link.connection_id)
        .await
        .ok()
        .flatten();
    axum::Json(json!({
        "users": stats.users,
        "active_users": stats.active_users,
        "groups": stats.groups,
        "last_scim_request_at": stats.last_scim_request_at,
        "connection": conn.map_or("not connected".to_owned(), |c| format!("{} ({})", c.idp.as_str(), c.protocol.as_str())),
    }))
    .into_response()
}

#[derive(Deserialize)]
struct CsrfOnly {
    csrf: String,
}

/// `POST /setup/scim-token`: the link's directory (made at the first call) and a new token.
async fn scim_token(
    State(st): State<Arc<SetupState>>,
    headers: HeaderMap,
    Form(f): Form<CsrfOnly>,
) -> Response {
    let s = match form_session(&st, &headers, &f.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let store = &st.api.store;
    let made = async {
        let dir = match &s.link.directory_id {
            Some(id) => orgs::directory(store, id).await?,
            None => {
                let d = store
                    .create_directory(&s.org, "SCIM directory (setup link)", &s.actor())
                    .await?;
                store.set_setup_directory(&s.link.id, &d.id).await?;
                d
            }
        };
        orgs::issue_token(store, &dir, false, &s.actor()).await
    }
    .await;
    match made {
        Ok((_, token)) => respond(
            StatusCode::OK,
            "Your SCIM token",
            html! {
                p { "Paste this into your IdP as the SCIM bearer token. It is shown only now." }
                (value("SCIM base URL", &format!("{}/scim/v2", st.api.public_url)))
                (value("SCIM token", &token))
                p { a href="/setup" { "Back to the setup steps" } }
            },
        ),
        Err(e) => failed(e),
    }
}

#[derive(Deserialize)]
struct SamlForm {
    csrf: String,
    idp: String,
    metadata: String,
}

#[derive(Deserialize)]
struct OidcForm {
    csrf: String,
    idp: String,
    issuer: String,
    client_id: String,
    client_secret: String,
}

async fn connect(st: &SetupState, s: &Session, idp: &str, upstream: Upstream) -> Response {
    let idp = IdpKind::parse(idp).unwrap_or(IdpKind::Generic);
    let spec = ConnectionSpec {
        id: Some(s.link.connection_id.clone()),
        ..ConnectionSpec::new(idp, upstream)
    };
    match create_connection(&st.api.store, &st.api.master, &s.org, spec, &s.actor()).await {
        Ok(_) => Redirect::to(&format!("/setup?idp={}", idp.as_str())).into_response(),
        Err(CoreError::InvalidValue(m)) => go_back("Check the IdP details", &m),
        Err(CoreError::Uniqueness(_) | CoreError::Store(_)) => respond(
            StatusCode::CONFLICT,
            "Already connected",
            html! {
                p class="error" { "This setup link already made its connection." }
                p { a href="/setup" { "Back" } }
            },
        ),
        Err(e) => failed(e),
    }
}

/// `POST /setup/saml`: a SAML connection from the IdP's metadata.
async fn saml(
    State(st): State<Arc<SetupState>>,
    headers: HeaderMap,
    Form(f): Form<SamlForm>,
) -> Response {
    let s = match form_session(&st, &headers, &f.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if f.metadata.len() > MAX_METADATA {
        return respond(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Metadata too large",
            html! { p class="error" { "IdP metadata is at most 256 KiB." } },
        );
    }
    connect(
        &st,
        &s,
        &f.idp,
        Upstream::Saml {
            metadata_xml: f.metadata,
        },
    )
    .await
}

/// `POST /setup/oidc`: an OIDC connection.
async fn oidc(
    State(st): State<Arc<SetupState>>,
    headers: HeaderMap,
    Form(f): Form<OidcForm>,
) -> Response {
    let s = match form_session(&st, &headers, &f.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    connect(
        &st,
        &s,
        &f.idp,
        Upstream::Oidc {
            issuer: f.issuer.trim().to_owned(),
            client_id: f.client_id.trim().to_owned(),
            client_secret: f.client_secret,
        },
    )
    .await
}

/// `POST /setup/test`: a real login through the link's connection; it ends on
/// [`test_result`] instead of at an app.
async fn test_login(
    State(st): State<Arc<SetupState>>,
    headers: HeaderMap,
    Form(f): Form<CsrfOnly>,
) -> Response {
    let s = match form_session(&st, &headers, &f.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let conn = match st.api.store.connection(&s.link.connection_id).await {
        Ok(Some(c)) => c,
        Ok(None) => return Redirect::to("/setup").into_response(),
        Err(e) => return failed(e),
    };
    match crate::sso::begin_login(&st.sso, &s.org, &conn, LoginPurpose::SetupTest, None).await {
        Ok(r) => r,
        Err(f) => f.into_response(),
    }
}

/// Finishes setup test logins (`LoginPurpose::SetupTest`): [`test_result`].
pub struct TestResult {
    /// This server's base URL: the IdP's refusal of a test goes back to `/setup`.
    pub public_url: String,
}

impl crate::sso::Finisher for TestResult {
    fn finish<'a>(&'a self, v: crate::sso::Verified<'a>) -> crate::sso::Finishing<'a> {
        Box::pin(std::future::ready(test_result(v.org, v.conn, v.assertion)))
    }

    fn return_uri(&self) -> String {
        format!("{}/setup", self.public_url)
    }
}

/// The end of a setup test login: what the IdP sent and how Roster maps it. Nothing is
/// provisioned and no session is opened.
fn test_result(org: &Org, conn: &Connection, a: &Assertion) -> Response {
    let p = Profile::map(a, &conn.attribute_map());
    let row = |k: &str, v: Option<&str>| {
        vec![
            k.render(),
            v.map_or_else(
                || html! { span class="badge bad" { "missing" } },
                |v| v.render(),
            ),
        ]
    };
    let checked = if conn.protocol == Protocol::Saml {
        "assertion's signature, audience and conditions"
    } else {
        "ID token's signature, issuer, audience and nonce"
    };
    let body = html! {
        p class="notice" {
            "The " (conn.protocol.as_str()) " login through " b { (conn.name) }
            " worked: the " (checked) " verified."
        }
        (table(
            &["Field", "Value"],
            &[
                row("subject", Some(&a.subject)),
                row("email", p.email.as_deref()),
                row("given name", p.given_name.as_deref()),
                row("family name", p.family_name.as_deref()),
                row("display name", p.display_name.as_deref()),
                vec!["groups".render(), p.groups.join(", ").render()],
            ],
        ))
        p class="empty" { "No user was created in " (org.name) " by this test." }
        p { a href="/setup" { "Back to the setup steps" } }
    };
    respond(StatusCode::OK, "Test connection", body)
}
