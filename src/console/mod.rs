//! The web console at `/console`: server-rendered HTML over the same store calls as the
//! admin API, signed in with an admin key (exchanged for an HttpOnly, SameSite=Lax
//! session cookie whose hash is stored; revoking the key ends the session). Forms carry a
//! CSRF token derived from the session; signing in, before there is one, is guarded by
//! `signin.rs`. No script; the one chart is inline SVG.
//!
//! `front.rs` is the front door at `/` and the icon. `html.rs` holds the layout, tables and
//! the chart; every page is built with maud's `html!`, which escapes what it splices in.
//! `setup_page.rs` is the customer setup page (`/setup`), which shares the layout but
//! nothing else.

pub mod front;
pub mod html;
pub mod setup_page;
pub mod signin;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, FromRequestParts, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, Render, html};
use serde::Deserialize;

use crate::api::lifecycle::{DeliveryView, WebhookView, resend_event};
use crate::api::people::{UserParams, UserView, user_page};
use crate::api::setup::{DirectoryView, OrgDetail, RequestView};
use crate::api::{Admin, ApiError, ApiState, PageParams, next_cursor, not_found};
use crate::core::model::{Org, Scope};
use crate::core::secrets::{hash_secret, random_token, secrets_equal};
use crate::core::store::ConsoleIdentity;
use crate::core::store::prelude::*;
use crate::sso::setup::ConnectionView;
use html::{LatencyPoint, badge, enc, opt, page, table};

const COOKIE: &str = "roster_console";
const SESSION_HOURS: i64 = 12;
/// The setting naming the operators' organization, whose SSO signs operators in.
pub const SSO_ORG_SETTING: &str = crate::core::store::CONSOLE_SSO_ORG_SETTING;

pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/assets/console.css", get(css))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/orgs/{org}", get(org_page))
        .route("/orgs/{org}/users", get(users))
        .route("/orgs/{org}/users/{id}", get(user))
        .route("/orgs/{org}/users/{id}/active", post(set_active))
        .route("/orgs/{org}/groups", get(groups))
        .route("/orgs/{org}/groups/{id}", get(group))
        .route("/orgs/{org}/connections", get(connections))
        .route("/orgs/{org}/domains", get(domains))
        .route("/orgs/{org}/domains/verify", post(verify_domain))
        .route("/orgs/{org}/directories", get(directories))
        .route("/orgs/{org}/drift", get(drift))
        .route("/orgs/{org}/deprovisioning", get(deprovisioning))
        .route("/webhooks", get(webhooks))
        .route("/webhooks/{id}", get(webhook))
        .route("/webhooks/{id}/events/{event}", get(delivery))
        .route("/webhooks/{id}/resend", post(resend))
        .with_state(state)
}

async fn css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        html::CSS,
    )
}

/// What a console handler answers when it cannot render its page.
pub enum ConsoleError {
    SignIn,
    Api(ApiError),
}

impl From<ApiError> for ConsoleError {
    fn from(e: ApiError) -> Self {
        ConsoleError::Api(e)
    }
}

impl From<crate::core::error::CoreError> for ConsoleError {
    fn from(e: crate::core::error::CoreError) -> Self {
        ConsoleError::Api(e.into())
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        match self {
            ConsoleError::SignIn => Redirect::to("/console/login").into_response(),
            ConsoleError::Api(e) => {
                let status = e.status();
                let body = page(
                    status.canonical_reason().unwrap_or("Error"),
                    None,
                    html! {
                        p class="error" { (e.message()) }
                        p { a href="/console" { "Back to the console" } }
                    },
                );
                (status, secure_headers(), Html(body)).into_response()
            }
        }
    }
}

type Out = Result<Response, ConsoleError>;

/// The console's pages: no script at all, forms only to itself.
const CONSOLE_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
                           form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Pages are never cached, never framed, and load nothing from elsewhere (`csp`).
pub(crate) fn page_headers(csp: &'static str) -> [(header::HeaderName, &'static str); 4] {
    [
        (header::CACHE_CONTROL, "no-store"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CONTENT_SECURITY_POLICY, csp),
        (header::REFERRER_POLICY, "no-referrer"),
    ]
}

fn secure_headers() -> [(header::HeaderName, &'static str); 4] {
    page_headers(CONSOLE_CSP)
}

fn html(body: String) -> Out {
    Ok((secure_headers(), Html(body)).into_response())
}

/// A signed-in console user: the admin key's grant and the session's CSRF token.
pub struct Console {
    admin: Admin,
    csrf: String,
}

/// The value of cookie `name` in the request's headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The CSRF token of a session: derived from the cookie, so nothing more is stored.
pub fn csrf_of(session_token: &str) -> String {
    hash_secret(&format!("csrf:{session_token}"))
}

impl FromRequestParts<Arc<ApiState>> for Console {
    type Rejection = ConsoleError;

    async fn from_request_parts(
        parts: &mut Parts,
        st: &Arc<ApiState>,
    ) -> Result<Self, Self::Rejection> {
        let token = cookie(&parts.headers, COOKIE).ok_or(ConsoleError::SignIn)?;
        // Checked at every request: a revoked key, a deactivated operator, a lost role or
        // console SSO turned off (or moved to another organization) ends the session at once.
        let grant = st
            .store
            .console_session(&hash_secret(token), &crate::core::now())
            .await?
            .ok_or(ConsoleError::SignIn)?;
        let (key_id, user_id) = match grant.who {
            ConsoleIdentity::AdminKey(k) => (k, None),
            ConsoleIdentity::User(u) => (String::new(), Some(u)),
        };
        Ok(Console {
            admin: Admin {
                key_id,
                org: grant.org,
                read_only: grant.read_only,
                user_id,
            },
            csrf: csrf_of(token),
        })
    }
}

impl Console {
    fn check_csrf(&self, given: &str) -> Result<(), ConsoleError> {
        if secrets_equal(given, &self.csrf) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "the form expired; reload the page and try again",
            )
            .into())
        }
    }

    fn csrf_field(&self) -> Markup {
        html! { input type="hidden" name="csrf" value=(self.csrf); }
    }

    fn nav(&self, org: Option<&Org>) -> Markup {
        html! {
            nav {
                a href="/console" { "Organizations" }
                @if let Some(o) = org {
                    @let base = format!("/console/orgs/{}", enc(&o.slug));
                    a href=(base) { (o.name) }
                    a href={ (base) "/users" } { "Users" }
                    a href={ (base) "/groups" } { "Groups" }
                    a href={ (base) "/domains" } { "Domains" }
                    a href={ (base) "/connections" } { "Connections" }
                    a href={ (base) "/directories" } { "Directories" }
                    a href={ (base) "/drift" } { "Drift" }
                    a href={ (base) "/deprovisioning" } { "Deprovisioning" }
                }
                a href="/console/webhooks" { "Webhooks" }
            }
            form method="post" action="/console/logout" {
                (self.csrf_field())
                button class="secondary" { "Sign out" }
            }
        }
    }

    fn page(&self, title: &str, org: Option<&Org>, body: Markup) -> Out {
        html(page(title, Some(self.nav(org)), body))
    }
}

async fn login_form(State(st): State<Arc<ApiState>>, headers: HeaderMap) -> Out {
    let sso = st.store.setting(SSO_ORG_SETTING).await?;
    let token = signin::Token::issue(&headers, &st.public_url)?;
    let body = login_page(None, sso.is_some(), &token.value);
    Ok(token.set_on(sign_in_page(StatusCode::OK, body)))
}

/// The sign-in page. Its Referrer-Policy is `same-origin`, not `no-referrer`: under
/// `no-referrer` a browser sends `Origin: null` with the form, which [`signin`] refuses
/// when the browser sends no `Sec-Fetch-Site` either. Nothing leaves for other sites.
fn sign_in_page(status: StatusCode, body: String) -> Response {
    let mut resp = (status, secure_headers(), Html(body)).into_response();
    resp.headers_mut().insert(
        header::REFERRER_POLICY,
        axum::http::HeaderValue::from_static("same-origin"),
    );
    resp
}

/// The sign-in page; `token` is this browser's sign-in token ([`signin`]).
fn login_page(error: Option<&str>, sso: bool, token: &str) -> String {
    page(
        "Sign in",
        None,
        html! {
            form class="login" method="post" action="/console/login" {
                @if let Some(e) = error { p class="error" { (e) } }
                @if sso {
                    p {
                        a href={ "/console/sso?csrf=" (token) } { "Sign in with SSO" }
                        " (operators with the roster-admin or roster-viewer role)"
                    }
                    hr;
                }
                input type="hidden" name="csrf" value=(token);
                label for="key" { "Admin API key" }
                input id="key" name="key" type="password" autocomplete="off" placeholder="rak_…"
                    required;
                button type="submit" { "Sign in" }
                p class="empty" {
                    "Create one with " code { "roster admin-key create" } ". A key limited to \
                     one organization shows only that organization; a read-only key cannot \
                     change anything."
                }
            }
        },
    )
}

#[derive(Deserialize)]
struct LoginForm {
    key: String,
    /// The sign-in page's token.
    #[serde(default)]
    csrf: Option<String>,
}

fn session_cookie(public_url: &str, value: &str, max_age: i64) -> String {
    // Lax: an SSO sign-in arrives by a redirect chain that started at the IdP.
    format!(
        "{COOKIE}={value}; Path=/console; HttpOnly; SameSite=Lax; Max-Age={max_age}{}",
        if public_url.starts_with("https://") {
            "; Secure"
        } else {
            ""
        }
    )
}

/// A sign-in refused before any key is looked at: sent from another site, or without the
/// sign-in page this browser loaded. No session, no cookie.
fn sign_in_refused(r: signin::Refusal) -> Response {
    tracing::warn!(reason = %r, "console sign-in refused");
    (
        StatusCode::FORBIDDEN,
        secure_headers(),
        Html(page(
            "Sign-in refused",
            None,
            html! {
                p class="error" { "Sign-in refused: " (r) "." }
                p { a href="/console/login" { "Sign in again" } }
            },
        )),
    )
        .into_response()
}

async fn login(
    State(st): State<Arc<ApiState>>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Out {
    if let Err(r) = signin::check(&headers, &st.public_url, f.csrf.as_deref()) {
        return Ok(sign_in_refused(r));
    }
    let Some(grant) = st.store.admin_key_grant(&hash_secret(f.key.trim())).await? else {
        let token = signin::Token::issue(&headers, &st.public_url)?;
        let body = login_page(Some("That key is unknown or revoked."), false, &token.value);
        return Ok(token.set_on(sign_in_page(StatusCode::UNAUTHORIZED, body)));
    };
    Ok(open_session(
        &st.store,
        &st.public_url,
        ConsoleIdentity::AdminKey(grant.key_id),
    )
    .await?)
}

/// Stores a new console session and answers with its cookie and the way in.
async fn open_session(
    store: &crate::store::SqlStore,
    public_url: &str,
    who: ConsoleIdentity,
) -> Result<Response, crate::core::error::CoreError> {
    let token = random_token("rcs_")?;
    store
        .insert_console_session(
            &hash_secret(&token),
            &who,
            &crate::core::now_plus_secs(SESSION_HOURS * 3600),
        )
        .await?;
    Ok((
        [(
            header::SET_COOKIE,
            session_cookie(public_url, &token, SESSION_HOURS * 3600),
        )],
        Redirect::to("/console"),
    )
        .into_response())
}

/// `GET /console/sso?csrf=`: a login through the operators' organization's connection.
/// Only the sign-in page's own link starts one ([`signin`]); any other (a link from another
/// site, a bookmark) leads to the sign-in page, where the link is.
pub async fn sso_start(
    State(st): State<Arc<setup_page::SetupState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ConsoleError> {
    if let Some(limited) = crate::sso::login_rate_limited(&st.sso) {
        return Ok(limited);
    }
    let Some(slug) = st.api.store.setting(SSO_ORG_SETTING).await? else {
        return Ok(Redirect::to("/console/login").into_response());
    };
    let token = url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.into_owned());
    if let Err(r) = signin::check(&headers, &st.api.public_url, token.as_deref()) {
        tracing::info!(reason = %r, "console SSO not started");
        return Ok(Redirect::to("/console/login").into_response());
    }
    let org = crate::core::orgs::org(&st.api.store, &slug).await?;
    let conn = st
        .api
        .store
        .list_connections(Some(&org.id))
        .await?
        .into_iter()
        .find(|c| !c.disabled)
        .ok_or_else(|| not_found(format!("an SSO connection of {slug}")))?;
    let purpose = crate::core::sessions::LoginPurpose::ConsoleSignIn;
    Ok(
        match crate::sso::begin_login(&st.sso, &org, &conn, purpose, None).await {
            Ok(r) => r,
            Err(f) => f.into_response(),
        },
    )
}

/// Finishes console SSO sign-ins (`LoginPurpose::ConsoleSignIn`): [`sso_sign_in`].
pub struct SsoSignIn(pub Arc<ApiState>);

impl crate::sso::Finisher for SsoSignIn {
    fn finish<'a>(&'a self, v: crate::sso::Verified<'a>) -> crate::sso::Finishing<'a> {
        Box::pin(sso_sign_in(&self.0, v.org, v.conn, v.assertion))
    }

    fn return_uri(&self) -> String {
        format!("{}/console", self.0.public_url)
    }
}

/// The end of a console SSO login, its assertion verified: the user is found or provisioned
/// under the operators' organization's JIT policy like any login, and signed in to the
/// console if active with the `roster-admin` or `roster-viewer` role.
async fn sso_sign_in(
    st: &ApiState,
    org: &Org,
    conn: &crate::core::sso::Connection,
    a: &crate::core::sso::Assertion,
) -> Response {
    let refuse = |status: StatusCode, msg: &str| {
        (
            status,
            secure_headers(),
            Html(page(
                "Sign-in refused",
                None,
                html! {
                    p class="error" { (msg) }
                    p { a href="/console/login" { "Back" } }
                },
            )),
        )
            .into_response()
    };
    match st.store.setting(SSO_ORG_SETTING).await {
        Ok(Some(slug)) if slug == org.slug => {}
        Ok(_) => {
            return refuse(
                StatusCode::FORBIDDEN,
                "Console SSO is not set up for this organization.",
            );
        }
        Err(e) => return ConsoleError::from(e).into_response(),
    }
    let user = match crate::core::jit::login(&st.store, org, conn, a).await {
        Ok(Ok(outcome)) => outcome.user().clone(),
        Ok(Err(refusal)) => return refuse(StatusCode::FORBIDDEN, &refusal.to_string()),
        Err(e) => return ConsoleError::from(e).into_response(),
    };
    let scope = Scope {
        org: org.id.clone(),
        actor: crate::core::model::Actor::Connection {
            connection_id: conn.id.clone(),
        },
    };
    let roles = match st.store.user_roles(&scope, &user.id).await {
        Ok(r) => r,
        Err(e) => return ConsoleError::from(e).into_response(),
    };
    let operator = roles.iter().any(|r| {
        r == crate::core::store::CONSOLE_ADMIN_ROLE || r == crate::core::store::CONSOLE_VIEWER_ROLE
    });
    if !user.active() || !operator {
        return refuse(
            StatusCode::FORBIDDEN,
            "You are signed in at your identity provider, but you do not hold the roster-admin or \
             roster-viewer role (map an IdP group to it with roster role-mapping add).",
        );
    }
    match open_session(
        &st.store,
        &st.public_url,
        ConsoleIdentity::User(user.id.clone()),
    )
    .await
    {
        Ok(r) => r,
        Err(e) => ConsoleError::from(e).into_response(),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(
    State(st): State<Arc<ApiState>>,
    c: Console,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Out {
    c.check_csrf(&f.csrf)?;
    if let Some(token) = cookie(&headers, COOKIE) {
        st.store.delete_console_session(&hash_secret(token)).await?;
    }
    Ok((
        [(header::SET_COOKIE, session_cookie(&st.public_url, "", 0))],
        Redirect::to("/console/login"),
    )
        .into_response())
}

/// The organizations this key sees, with their counts, and the deprovisioning chart.
async fn home(State(st): State<Arc<ApiState>>, c: Console) -> Out {
    let mut rows = Vec::new();
    let mut after: Option<String> = None;
    // Every organization the key sees, a page at a time.
    loop {
        let list = st.store.org_page(after.as_deref(), 200).await?;
        for o in list.iter().filter(|o| c.admin.sees(&o.id)) {
            let s = OrgDetail::of(o, st.store.org_stats(&o.id).await?);
            rows.push(vec![
                html! { a href={ "/console/orgs/" (enc(&o.slug)) } { (o.name) } },
                o.slug.render(),
                s.users.render(),
                s.active_users.render(),
                s.groups.render(),
                s.directories.render(),
                s.connections.render(),
                opt(s.last_scim_request_at.as_deref()),
            ]);
        }
        if list.len() < 200 {
            break;
        }
        after = list.last().map(|o| o.slug.clone());
    }
    let body = table(
        &[
            "Organization",
            "Slug",
            "Users",
            "Active",
            "Groups",
            "Directories",
            "Connections",
            "Last SCIM request",
        ],
        &rows,
    );
    c.page("Organizations", None, body)
}

async fn org_of(st: &ApiState, c: &Console, slug: &str) -> Result<Org, ConsoleError> {
    Ok(c.admin.org(&st.store, slug).await?)
}

async fn org_page(State(st): State<Arc<ApiState>>, c: Console, Path(slug): Path<String>) -> Out {
    let org = org_of(&st, &c, &slug).await?;
    let s = OrgDetail::of(&org, st.store.org_stats(&org.id).await?);
    let base = format!("/console/orgs/{}", enc(&org.slug));
    let card = |n: i64, label: &str, href: &str| {
        html! { a class="card" href={ (base) (href) } { b { (n) } span { (label) } } }
    };
    let body = html! {
        div class="cards" {
            (card(s.users, "users", "/users"))
            (card(s.active_users, "active users", "/users?state=active"))
            (card(s.groups, "groups", "/groups"))
            (card(s.directories, "SCIM directories", "/directories"))
            (card(s.connections, "SSO connections", "/connections"))
        }
        p { "Last SCIM request: " (opt(s.last_scim_request_at.as_deref())) }
    };
    c.page(&org.name, Some(&org), body)
}

fn state_badge(active: bool) -> Markup {
    if active {
        badge("active", "ok")
    } else {
        badge("inactive", "bad")
    }
}

async fn users(
    State(st): State<Arc<ApiState>>,
    c: Console,
    Path(slug): Path<String>,
    crate::api::Q(p): crate::api::Q<UserParams>,
) -> Out {
    let org = org_of(&st, &c, &slug).await?;
    let listing = p.listing()?;
    let page_ = user_page(&st, &org.id, &listing).await?;
    let base = format!("/console/orgs/{}/users", enc(&org.slug));
    let sel = |cur: Option<&str>, v: &str, label: &str| {
        html! { option value=(v) selected[cur == Some(v)] { (label) } }
    };
    let q = p.q.as_deref().unwrap_or("");
    let state = p.state.as_deref();
    let prov = p.provenance.as_deref();
    let rows: Vec<Vec<Markup>> = page_.data.iter().map(|u| user_row(&base, u)).collect();
    let body = html! {
        form class="filters" method="get" action=(base) {
            label { "Search" input name="q" value=(q) placeholder="userName or email"; }
            label {
                "State"
                select name="state" {
                    (sel(state, "", "any"))
                    (sel(state, "active", "active"))
                    (sel(state, "inactive", "inactive"))
                }
            }
            label {
                "Provenance"
                select name="provenance" {
                    (sel(prov, "", "any"))
                    (sel(prov, "scim", "SCIM"))
                    (sel(prov, "jit", "JIT"))
                    (sel(prov, "admin", "admin"))
                }
            }
            button type="submit" { "Filter" }
        }
        (table(
            &[
                "userName",
                "Name",
                "Email",
                "State",
                "Provenance",
                "Last directory sync",
                "Last login",
            ],
            &rows,
        ))
        @if let Some(next) = &page_.next_cursor {
            p class="pager" {
                a href={
                    (base) "?q=" (enc(q)) "&state=" (enc(state.unwrap_or("")))
                    "&provenance=" (enc(prov.unwrap_or(""))) "&cursor=" (enc(next))
                } { "Next page →" }
            }
        }
    };
    c.page("Users", Some(&org), body)
}

fn user_row(base: &str, u: &UserView) -> Vec<Markup> {
    vec![
        html! { a href={ (base) "/" (enc(&u.id)) } { (u.user_name) } },
        opt(u.display_name.as_deref()),
        opt(u.email.as_deref()),
        state_badge(u.active),
        u.provenance.render(),
        opt(u.last_directory_sync_at.as_deref()),
        opt(u.last_login_at.as_deref()),
    ]
}

fn pretty(v: &serde_json::Value) -> Markup {
    html! { pre { (serde_json::to_string_pretty(v).unwrap_or_default()) } }
}

async fn user(
    State(st): State<Arc<ApiState>>,
    c: Console,
    Path((slug, id)): Path<(String, String)>,
) -> Out {
    let org = org_of(&st, &c, &slug).await?;
    let scope = Scope {
        org: org.id.clone(),
        actor: c.admin.actor(),
    };
    let u = st
        .store
        .get_user(&scope, &id)
        .await?
        .ok_or_else(|| not_found(format!("user {id}")))?;
    let v = UserView::of(&u);
    let base = format!("/console/orgs/{}/users/{}", enc(&org.slug), enc(&u.id));
    let sessions = st.store.live_sessions(&scope, &u.id).await?;
    let groups = v
        .groups
        .iter()
        .map(|g| g.display_name.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let details = table(
        &["", ""],
        &[
            vec!["id".render(), html! { code { (v.id) } }],
            vec!["State".render(), state_badge(v.active)],
            vec!["Provenance".render(), v.provenance.render()],
            vec!["Email".render(), opt(v.email.as_deref())],
            vec!["externalId".render(), opt(v.external_id.as_deref())],
            vec!["Live sessions".render(), sessions.render()],
            vec!["Groups".render(), groups.render()],
            vec!["Roles".render(), v.roles.join(", ").render()],
            vec![
                "Last directory sync".render(),
                opt(v.last_directory_sync_at.as_deref()),
            ],
            vec!["Last login".render(), opt(v.last_login_at.as_deref())],
        ],
    );
    let (label, class, to) = if v.active {
        ("Deactivate (ends every session now)", "danger", "false")
    } else {
        ("Reactivate", "secondary", "true")
    };
    let events = st.store.resource_events(&org.id, &u.id, None, 100).await?;
    let rows: Vec<Vec<Markup>> = events
        .iter()
        .map(|e| {
            vec![
                e.created_at.render(),
                html! { code { (e.kind) } },
                e.actor
                    .get("type")
                    .and_then(|t| t.as_str())
                    .unwrap_or("")
                    .render(),
                opt(e.request_id.as_deref()),
                pretty(&e.data),
            ]
        })
        .collect();
    let body = html! {
        (details)
        @if !c.admin.read_only {
            p {
                form class="inline" method="post" action={ (base) "/active" } {
                    (c.csrf_field())
                    input type="hidden" name="active" value=(to);
                    button class=(class) { (label) }
                }
            }
        }
        h2 { "Timeline" }
        (table(&["When", "Event", "By", "Request", "Data"], &rows))
        h2 { "SCIM attributes" }
        (pretty(&serde_json::Value::Object(v.attributes.clone())))
    };
    c.page(&v.user_name, Some(&org), body)
}

#[derive(Deserialize)]
struct ActiveForm {
    csrf: String,
    active: String,
}

async fn set_active(
    State(st): State<Arc<ApiState>>,
    c: Console,
    Path((slug, id)): Path<(String, String)>,
    Form(f): Form<ActiveForm>,
) -> Out {
    c.check_csrf(&f.csrf)?;
    c.admin.check_write()?;
    let org = org_of(&st, &c, &slug).await?;
    let scope = Scope {
        org: org.id.clone(),
        actor: c.admin.actor(),
    };
    crate::core::resources::set_active(&st.store, &scope, &id, f.active == "true").await?;
    Ok(Redirect::to(&format!(
        "/console/orgs/{}/users/{}",
        enc(&org.slug),
        enc(&id)
    ))
    .into_response())
}

#[derive(Deserialize)]
struct ListQuery {
    q: Option<String>,
    cursor: Option<String>,
}

async fn groups(
    State(st): State<Arc<ApiState>>,
    c: Console,
    Path(slug): Path<String>,
    crate::api::Q(q): crate::api::Q<ListQuery>,
) -> Out {
    let org = org_of(&st, &c, &slug).await?;
    let p = PageParams {
        cursor: q.cursor.clone(),
        limit: Some(50),
    };
    let mut rows = st
        .store
        .group_page(&org.id, q.q.as_deref(), p.after_pos("group")?, 51)
        .await?;
    let more = crate::api::take_page(&mut rows, 50);
    let base = format!("/console/orgs/{}/groups", enc(&org.slug));
    let search = q.q.as_deref().unwrap_or("");
    let cells: Vec<Vec<Markup>> = rows
        .iter()
        .map(|l| {
            vec![
                html! { a href={ (base) "/" (enc(&l.group.id)) } { (l.group.display_name()) } },
                l.members.render(),
                l.group.meta.last_modified.render(),
            ]
        })
        .collect();
    let next = next_cursor("group", more, rows.last().map(|l| l.pos.to_string()));
    let body = html! {
        form class="filters" method="get" action=(base) {
            label { "Search" input name="q" value=(search); }
            button type="submit" { "Filter" }
        }
        (table(&["Group", "Members", "Updated"], &cells))
        @if let Some(next) = next {
            p class="pager" {
                a href={ (base) "?q=" (enc(search)) "&cursor=" (enc(&next)) } { "Next page →" }
            }
        }
    };
    c.page("Groups", Some(&org), body)
}

async fn group(
    State(st): State<Arc<ApiState>>,
    c: Console,
    Path((slug, id)): Path<(String, String)>,
    crate::api::Q(q): crate::api::Q<ListQuery>,
) -> Out {
    let org = org_of(&st, &c, &slug).await?;
    let scope = Scope {
        org: org.id.clone(),
        actor: c.admin.actor(),
    };
    let g = st
        .store
        .get_group(&scope, &id)
        .await?
        .ok_or_else(|| not_found(format!("group {id}")))?;
    let p = PageParams {
        cursor: q.cursor.clone(),
        limit: Some(100),
    };
    let after = p.after_key("member")?;
    let mut members = st
        .store
        .member_page(&org.id, &g.id, after.as_deref(), 101)
        .await?;
    let more = crate::api::take_page(&mut members, 100);
    let count = st.store.member_count(&org.id, &g.id).await?;
    let users = format!("/console/orgs/{}/users", enc(&org.slug));
    let rows: Vec<Vec<Markup>> = members
        .iter()
        .map(|m| {
            let name = opt(m.display.as_deref());
            vec![
                if m.kind == crate::core::model::MemberType::User {
                    html! { a href={ (users) "/" (enc(&m.id)) } { (name) } }
                } else {
                    name
                },
                m.kind.as_str().render(),
            ]
        })
        .collect();
    let next = next_cursor("member", more, members.last().map(|m| m.id.clone()));
    let body = html! {
        p { (count) " members" }
        (table(&["Member", "Type"], &rows))
        @if let Some(next) = next {
            p class="pager" { a href={ "?cursor=" (enc(&next)) } { "Next page →" } }
        }
    };
    c.page(g.display_name(), Some(&org), body)
}

async fn connections(State(st): State<Arc<ApiState>>, c: Console, Path(slug): Path<String>) -> Out {
    let org = org_of(&st, &c, &slug).await?;
    let list = st.store.list_connections(Some(&org.id)).await?;
    let rows: Vec<Vec<Markup>> = list
        .iter()
        .map(|conn| {
            let v = ConnectionView::of(conn, &st.public_url);
            let details = match v.protocol.as_str() {
                "oidc" => html! {
                    "issuer " (opt(v.issuer.as_deref())) br;
                    "client " (opt(v.client_id.as_deref())) br;
                    "redirect URI " code { (opt(v.redirect_uri.as_deref())) }
                },
                _ => {
                    let m = v.metadata_url.as_deref().unwrap_or("");
                    html! {
                        "entity id " code { (opt(v.sp_entity_id.as_deref())) } br;
                        "ACS " code { (opt(v.acs_url.as_deref())) } br;
                        "metadata " a href=(m) { (m) }
                    }
                }
            };
            vec![
                v.name.render(),
                v.protocol.render(),
                v.idp.render(),
                v.jit.render(),
                details,
                v.created_at.render(),
            ]
        })
        .collect();
    c.page(
        "Connections",
        Some(&org),
        table(
            &["Name", "Protocol", "IdP", "JIT", "Details", "Created"],
            &rows,
        ),
    )
}

/// The organization's domains: state, the TXT record to publish, the latest check; a
/// button checks DNS now (and, for sessions of every organization, one verifies without).
async fn domains(State(st): State<Arc<ApiState>>, c: Console, Path(slug): Path<String>) -> Out {
    let org = org_of(&st, &c, &slug).await?;
    let list = st.store.list_domains(Some(&org.id)).await?;
    let action = format!("/console/orgs/{}/domains/verify", enc(&org.slug));
    let rows: Vec<Vec<Markup>> = list
        .iter()
        .map(|d| {
            let state = if d.verified() {
                badge("verified", "ok")
            } else {
                badge("pending", "warn")
            };
            let check = match (&d.checked_at, &d.check_error) {
                (Some(at), Some(err)) => html! { (at) br; (err) },
                (Some(at), None) => at.render(),
                _ => "—".render(),
            };
            let button = |label: &str, force: bool| {
                html! {
                    form method="post" action=(action) {
                        (c.csrf_field())
                        input type="hidden" name="domain" value=(d.domain);
                        input type="hidden" name="force" value=(force);
                        button class="secondary" { (label) }
                    }
                }
            };
            let actions = if d.verified() || c.admin.read_only {
                Markup::default()
            } else if c.admin.org.is_none() {
                html! { (button("Check DNS", false)) (button("Verify without DNS", true)) }
            } else {
                button("Check DNS", false)
            };
            vec![
                d.domain.render(),
                state,
                html! { code { (d.record_name()) } " TXT " code { (d.record_value()) } },
                check,
                d.verified_by.as_deref().unwrap_or("—").render(),
                actions,
            ]
        })
        .collect();
    c.page(
        "Domains",
        Some(&org),
        html! {
            p {
                "Only verified domains route logins, allow JIT creation and make emails "
                code { "email_verified" } ". Publish the TXT record, then check."
            }
            (table(
                &[
                    "Domain",
                    "State",
                    "DNS record",
                    "Last check",
                    "Verified by",
                    "",
                ],
                &rows,
            ))
        },
    )
}

#[derive(Deserialize)]
struct VerifyForm {
    csrf: String,
    domain: String,
    #[serde(default)]
    force: String,
}

async fn verify_domain(
    State(st): State<Arc<ApiState>>,
    c: Console,
    Path(slug): Path<String>,
    Form(f): Form<VerifyForm>,
) -> Out {
    c.check_csrf(&f.csrf)?;
    c.admin.check_write()?;
    let force = f.force == "true";
    if force {
        c.admin.check_global()?;
    }
    let org = org_of(&st, &c, &slug).await?;
    crate::core::domains::verify(&st.store, &st.dns, &org, &f.domain, force, &c.admin.actor())
        .await?;
    Ok(Redirect::to(&format!("/console/orgs/{}/domains", enc(&org.slug))).into_response())
}

async fn directories(State(st): State<Arc<ApiState>>, c: Console, Path(slug): Path<String>) -> Out {
    let org = org_of(&st, &c, &slug).await?;
    let list = st.store.list_directories(Some(&org.id)).await?;
    let mut sections = Vec::new();
    for d in &list {
        let v = DirectoryView::of(d, &st.public_url);
        let tokens = st.store.list_tokens(&d.id).await?;
        let live = tokens.iter().filter(|t| t.revoked_at.is_none()).count();
        let recent = st.store.recent_requests(&d.id, 50).await?;
        let rows: Vec<Vec<Markup>> = recent
            .iter()
            .map(|r| {
                let r = RequestView::of(r);
                let kind = if r.status >= 500 {
                    "bad"
                } else if r.status >= 400 {
                    "warn"
                } else {
                    "ok"
                };
                vec![
                    r.at.render(),
                    r.method.render(),
                    html! { code { (r.path) } },
                    badge(&r.status.to_string(), kind),
                    format!("{:.1} ms", r.latency_ms).render(),
                    r.user_agent.render(),
                ]
            })
            .collect();
        sections.push(html! {
            h2 { (v.name) }
            p {
                "SCIM base URL " code { (v.scim_base_url) } " · " (live)
                " live token(s) · id " code { (v.id) }
            }
            (table(
                &["When", "Method", "Path", "Status", "Latency", "Client"],
                &rows,
            ))
        });
    }
    let body = html! {
        @if list.is_empty() {
            p class="empty" {
                "No SCIM directory yet: " code { "roster directory create" } " or a setup link."
            }
        }
        @for s in &sections { (s) }
        p class="empty" { "Request bodies and query strings are never recorded." }
    };
    c.page("Directories", Some(&org), body)
}

async fn drift(State(st): State<Arc<ApiState>>, c: Console, Path(slug): Path<String>) -> Out {
    let org = org_of(&st, &c, &slug).await?;
    let r = st.store.drift_report(&org, 30, &crate::core::now()).await?;
    let users = format!("/console/orgs/{}/users", enc(&org.slug));
    let section = |title: &str, s: &crate::core::report::Section, bad: bool| {
        let rows: Vec<Vec<Markup>> = s
            .users
            .iter()
            .map(|u| {
                vec![
                    html! { a href={ (users) "/" (enc(&u.id)) } { (u.user_name) } },
                    u.provenance.render(),
                    state_badge(u.active),
                    opt(u.last_directory_sync_at.as_deref()),
                    opt(u.last_login_at.as_deref()),
                ]
            })
            .collect();
        let kind = if s.count == 0 {
            "ok"
        } else if bad {
            "bad"
        } else {
            "warn"
        };
        html! {
            h2 { (title) " " (badge(&s.count.to_string(), kind)) }
            (table(
                &[
                    "User",
                    "Provenance",
                    "State",
                    "Last directory sync",
                    "Last login",
                ],
                &rows,
            ))
        }
    };
    let rows: Vec<Vec<Markup>> = r
        .directories
        .iter()
        .map(|d| {
            vec![
                d.name.render(),
                opt(d.last_request_at.as_deref()),
                d.requests.render(),
                format!("{:.1}%", d.error_rate * 100.0).render(),
                d.by_client
                    .iter()
                    .map(|c| format!("{} ({})", c.user_agent, c.requests))
                    .collect::<Vec<_>>()
                    .join(", ")
                    .render(),
            ]
        })
        .collect();
    let body = html! {
        (section(
            "Deactivated users with live access (must be 0)",
            &r.deactivated_with_live_access,
            true,
        ))
        (section(
            "JIT users the directory never synced (orphan risk)",
            &r.jit_never_synced,
            false,
        ))
        (section(
            &format!("Directory users untouched for {} days", r.stale_days),
            &r.stale_directory_users,
            false,
        ))
        h2 { "Directories" }
        (table(
            &["Directory", "Last request", "Requests", "Errors", "Clients"],
            &rows,
        ))
    };
    c.page("Drift report", Some(&org), body)
}

fn ms_between(from: &str, to: &str) -> Option<f64> {
    use time::format_description::well_known::Rfc3339;
    let a = time::OffsetDateTime::parse(from, &Rfc3339).ok()?;
    let b = time::OffsetDateTime::parse(to, &Rfc3339).ok()?;
    Some(((b - a).as_seconds_f64() * 1000.0).max(0.0))
}

async fn deprovisioning(
    State(st): State<Arc<ApiState>>,
    c: Console,
    Path(slug): Path<String>,
) -> Out {
    let org = org_of(&st, &c, &slug).await?;
    let mut samples = st.store.deprovision_samples(Some(&org.id), 60).await?;
    samples.reverse();
    let points: Vec<LatencyPoint> = samples
        .iter()
        .filter_map(|s| {
            Some(LatencyPoint {
                label: format!("{} {} at {}", s.kind, s.user_id, s.received_at),
                committed_ms: ms_between(&s.received_at, &s.committed_at)?,
                webhook_ms: s
                    .webhook_delivered_at
                    .as_deref()
                    .and_then(|w| ms_between(&s.received_at, w)),
            })
        })
        .collect();
    let revoke: Vec<f64> = points.iter().map(|p| p.committed_ms).collect();
    let hooks: Vec<f64> = points.iter().filter_map(|p| p.webhook_ms).collect();
    let summary = |name: &str, xs: &[f64]| match html::percentiles(xs) {
        Some((p50, p99)) => html! {
            div class="card" {
                b { (format!("{p50:.1} ms")) }
                span { (name) " p50 (p99 " (format!("{p99:.1} ms")) ", n=" (xs.len()) ")" }
            }
        },
        None => html! { div class="card" { b { "—" } span { (name) } } },
    };
    let body = html! {
        div class="cards" {
            (summary("request → access revoked", &revoke))
            (summary("request → webhook delivered", &hooks))
        }
        (html::latency_chart(&points))
        p class="empty" {
            "The newest 60 deactivations and deletions. Times run from the request's arrival; \
             the server-wide histograms are on " code { "/metrics" } "."
        }
    };
    c.page("Deprovisioning latency", Some(&org), body)
}

async fn webhooks(State(st): State<Arc<ApiState>>, c: Console) -> Out {
    let list = crate::api::lifecycle::visible_webhooks(&st, &c.admin, None).await?;
    let mut rows = Vec::new();
    for w in &list {
        let v = WebhookView::of(w);
        let failed = st
            .store
            .deliveries(&w.id, Some("failed"), 1000)
            .await?
            .len();
        rows.push(vec![
            html! { a href={ "/console/webhooks/" (enc(&v.id)) } { (v.url) } },
            v.events.join(", ").render(),
            v.cursor.render(),
            if failed == 0 {
                badge("0", "ok")
            } else {
                badge(&failed.to_string(), "bad")
            },
            if v.disabled_at.is_some() {
                badge("disabled", "warn")
            } else {
                badge("enabled", "ok")
            },
        ]);
    }
    c.page(
        "Webhooks",
        None,
        table(&["Endpoint", "Events", "Cursor", "Failed", "State"], &rows),
    )
}

async fn webhook_of(
    st: &ApiState,
    c: &Console,
    id: &str,
) -> Result<crate::core::webhooks::Endpoint, ConsoleError> {
    Ok(crate::api::lifecycle::webhook_of(st, &c.admin, id).await?)
}

#[derive(Deserialize)]
struct DeliveriesQuery {
    status: Option<String>,
    notice: Option<String>,
}

async fn webhook(
    State(st): State<Arc<ApiState>>,
    c: Console,
    Path(id): Path<String>,
    crate::api::Q(q): crate::api::Q<DeliveriesQuery>,
) -> Out {
    let w = webhook_of(&st, &c, &id).await?;
    let status = q
        .status
        .as_deref()
        .filter(|s| matches!(*s, "delivered" | "pending" | "failed"));
    let list = st.store.deliveries(&w.id, status, 100).await?;
    let v = WebhookView::of(&w);
    let tabs = [
        (None, "all"),
        (Some("failed"), "failed"),
        (Some("pending"), "pending"),
        (Some("delivered"), "delivered"),
    ];
    let rows: Vec<Vec<Markup>> = list
        .iter()
        .map(|d| {
            let d = DeliveryView::of(d);
            let kind = match d.status.as_str() {
                "delivered" => "ok",
                "failed" => "bad",
                _ => "warn",
            };
            let button = html! {
                @if !c.admin.read_only {
                    form class="inline" method="post"
                        action={ "/console/webhooks/" (enc(&w.id)) "/resend" } {
                        (c.csrf_field())
                        input type="hidden" name="event" value=(d.event_cursor);
                        button class="secondary" { "Resend" }
                    }
                }
            };
            vec![
                html! {
                    a href={ "/console/webhooks/" (enc(&w.id)) "/events/" (d.event_cursor) } {
                        (d.event_cursor)
                    }
                },
                badge(&d.status, kind),
                d.attempts.render(),
                d.last_attempt_at.render(),
                opt(d.next_attempt_at.as_deref()),
                d.response_status
                    .map_or_else(|| "—".into(), |s| s.to_string())
                    .render(),
                opt(d.last_error.as_deref()),
                button,
            ]
        })
        .collect();
    let body = html! {
        @if let Some(n) = &q.notice { p class="notice" { (n) } }
        p { code { (v.url) } " · events " (v.events.join(", ")) " · cursor " (v.cursor) }
        div class="tabs" {
            @for (s, label) in tabs {
                a href={ "?status=" (s.unwrap_or("")) } class=[(s == status).then_some("on")] {
                    (label)
                }
            }
        }
        (table(
            &[
                "Event",
                "Status",
                "Attempts",
                "Last attempt",
                "Next attempt",
                "HTTP",
                "Last error",
                "",
            ],
            &rows,
        ))
    };
    c.page("Webhook deliveries", None, body)
}

/// One event's delivery to an endpoint: every attempt, the event, a resend button.
async fn delivery(
    State(st): State<Arc<ApiState>>,
    c: Console,
    Path((id, event)): Path<(String, i64)>,
) -> Out {
    let w = webhook_of(&st, &c, &id).await?;
    let attempts = st.store.delivery_attempt_log(&w.id, event).await?;
    let rows: Vec<Vec<Markup>> = attempts
        .iter()
        .map(|a| {
            vec![
                a.attempt.render(),
                a.at.render(),
                a.response_status.map_or_else(
                    || badge("no response", "bad"),
                    |s| {
                        badge(
                            &s.to_string(),
                            if (200..300).contains(&s) { "ok" } else { "bad" },
                        )
                    },
                ),
                format!("{} ms", a.duration_ms).render(),
                opt(a.error.as_deref()),
                a.node.render(),
            ]
        })
        .collect();
    let shown = st
        .store
        .events_after(event - 1, w.org_id.as_ref(), 1)
        .await?
        .into_iter()
        .find(|e| e.cursor == event);
    let body = html! {
        p { "Endpoint " code { (crate::core::webhooks::display_url(&w.url)) } }
        (table(
            &["Attempt", "When", "Response", "Took", "Error", "Node"],
            &rows,
        ))
        @if !c.admin.read_only {
            p {
                form class="inline" method="post"
                    action={ "/console/webhooks/" (enc(&w.id)) "/resend" } {
                    (c.csrf_field())
                    input type="hidden" name="event" value=(event);
                    button class="secondary" { "Resend now" }
                }
            }
        }
        @if let Some(e) = &shown {
            h2 { "Event" }
            (pretty(&e.to_json()))
        }
    };
    c.page(&format!("Event {event}: delivery attempts"), None, body)
}

#[derive(Deserialize)]
struct ResendForm {
    csrf: String,
    event: i64,
}

async fn resend(
    State(st): State<Arc<ApiState>>,
    c: Console,
    Path(id): Path<String>,
    Form(f): Form<ResendForm>,
) -> Out {
    c.check_csrf(&f.csrf)?;
    c.admin.check_write()?;
    let w = webhook_of(&st, &c, &id).await?;
    let r = resend_event(&st, &c.admin, &w, f.event).await?;
    let notice = format!(
        "Event {} resent: {}{}",
        r.event_cursor,
        r.status,
        r.error.map(|e| format!(" ({e})")).unwrap_or_default()
    );
    Ok(Redirect::to(&format!(
        "/console/webhooks/{}?notice={}",
        enc(&w.id),
        enc(&notice)
    ))
    .into_response())
}
