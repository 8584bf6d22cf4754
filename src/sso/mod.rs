//! The SSO adapter: logins through an organization's IdP connection (OIDC today; SAML beside
//! it), from the app's `/oauth/authorize` to the IdP and back, ending in JIT
//! (`core::jit`), a session and an authorization code for the app (`core::sessions`).
//!
//! Routes: `GET /sso/oidc/callback` (the one redirect URI to register at every OIDC IdP);
//! per SAML connection `GET /sso/saml/{id}/metadata` and `POST /sso/saml/{id}/acs`, and
//! `GET /sso/saml/continue`, where a SAML login comes back to the browser that started it
//! (the IdP's cross-site POST carries no SameSite=Lax cookie; the redirect after it does).

pub mod oidc_rp;
pub mod pages;
pub mod saml_sp;
pub mod setup;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;

use crate::core::error::CoreError;
use crate::core::jit::{self, Outcome};
use crate::core::model::{Actor, Org, Scope};
use crate::core::secrets::{MasterKey, hash_secret, random_token, secrets_equal};
use crate::core::sessions::{
    self, AppRequest, LOGIN_TTL, LoginData, LoginPurpose, LoginRequest, expires_in,
};
use crate::core::sso::{Assertion, Connection, Protocol};
use crate::core::store::prelude::*;
use crate::store::SqlStore;

pub use pages::{LoginFailure, error_page};

/// What the SSO and OpenID provider adapters share.
pub struct SsoState {
    pub store: SqlStore,
    pub master: MasterKey,
    /// Base URL of this server as browsers and IdPs reach it (no trailing slash).
    pub public_url: String,
    /// Outbound HTTP to IdPs (`crate::outbound`): public addresses only unless an
    /// operator made the connection.
    pub outbound: crate::outbound::Outbound,
    pub metadata: oidc_rp::MetadataCache,
    /// Unauthenticated login starts per client address, on this node.
    pub login_limits: Arc<crate::scim::limit::RateLimiter>,
    /// Who finishes the logins Roster starts for itself.
    pub finishers: Finishers,
}

/// A login whose IdP answer Roster verified, as the finisher of its purpose gets it.
pub struct Verified<'a> {
    pub org: &'a Org,
    pub conn: &'a Connection,
    pub assertion: &'a Assertion,
}

/// The answer a [`Finisher`] gives the browser, once it has worked it out.
pub type Finishing<'a> = Pin<Box<dyn Future<Output = Response> + Send + 'a>>;

/// Finishes the verified logins of a purpose Roster starts for itself (a console sign-in,
/// a setup page's test). Their owners implement it and the HTTP layer registers them in
/// [`Finishers`]; this module finishes app logins itself and calls no owner by name.
pub trait Finisher: Send + Sync {
    /// The answer to the browser that brought the verified login.
    fn finish<'a>(&'a self, login: Verified<'a>) -> Finishing<'a>;
    /// Where the browser goes back, with `error=access_denied`, when the IdP refused such a
    /// login (an app's login goes back to the app).
    fn return_uri(&self) -> String;
}

/// The finisher of each [`LoginPurpose`] other than an app's.
#[derive(Clone)]
pub struct Finishers {
    pub console_sign_in: Arc<dyn Finisher>,
    pub setup_test: Arc<dyn Finisher>,
}

/// Who finishes a login: this module for an app's, else a registered [`Finisher`].
enum Owner<'a> {
    App(&'a AppRequest),
    Registered(&'a dyn Finisher),
}

impl Finishers {
    fn owner<'a>(&'a self, purpose: &'a LoginPurpose) -> Owner<'a> {
        match purpose {
            LoginPurpose::App(app) => Owner::App(app),
            LoginPurpose::ConsoleSignIn => Owner::Registered(self.console_sign_in.as_ref()),
            LoginPurpose::SetupTest => Owner::Registered(self.setup_test.as_ref()),
        }
    }
}

impl SsoState {
    pub fn oidc_redirect_uri(&self) -> String {
        format!("{}/sso/oidc/callback", self.public_url)
    }
    /// A SAML connection's entity id; its ACS and metadata URLs are below it.
    pub fn saml_entity_id(&self, connection_id: &str) -> String {
        saml_entity_id(&self.public_url, connection_id)
    }
    fn secure_cookies(&self) -> bool {
        self.public_url.starts_with("https://")
    }
    /// The HTTP client for `conn`'s IdP: private networks only for an operator's connection.
    fn idp_http(&self, conn: &Connection) -> oidc_rp::Http {
        oidc_rp::Http::new(
            self.outbound.clone(),
            crate::outbound::Reach::private_if(conn.config.private_networks),
        )
    }
}

pub(crate) use crate::core::error::error_chain;

/// A SAML connection's entity id at `public_url`.
pub fn saml_entity_id(public_url: &str, connection_id: &str) -> String {
    format!("{public_url}/sso/saml/{connection_id}")
}

pub fn router(state: Arc<SsoState>) -> Router {
    Router::new()
        .route("/sso/oidc/callback", get(oidc_callback))
        .route("/sso/saml/continue", get(saml_continue))
        .route("/sso/saml/{id}/metadata", get(saml_metadata))
        .route("/sso/saml/{id}/acs", axum::routing::post(saml_acs))
        .with_state(state)
}

/// The cookie that binds a login to the browser that started it.
fn login_cookie_name(login_id: &str) -> String {
    format!(
        "roster_login_{}",
        login_id.chars().take(12).collect::<String>()
    )
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Login starts a client address may make at once, per second on this node by default
/// (bursts of twice that): far above one person's, enough for an office behind one NAT
/// address, and a bound on the login rows one address can make Roster store.
pub const DEFAULT_LOGIN_RATE_LIMIT: u32 = 10;

/// The bucket a login start counts against: the client's address (IPv6 by its /64, which a
/// single host is usually given whole).
fn login_limit_key() -> String {
    let Some(ip) = crate::core::context::current()
        .source_ip
        .and_then(|s| s.parse::<std::net::IpAddr>().ok())
    else {
        return "unknown".to_owned();
    };
    match ip {
        std::net::IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        std::net::IpAddr::V6(v6) => v6.to_canonical().to_string(),
        v4 => v4.to_string(),
    }
}

/// Takes one login start from the client address's bucket; when it is empty, the 429 page
/// (with `Retry-After`) to answer instead.
pub fn login_rate_limited(st: &SsoState) -> Option<Response> {
    let wait = st.login_limits.check(&login_limit_key()).err()?;
    let mut r = error_page(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many sign-in attempts from your network. Wait a moment and try again.",
    );
    if let Ok(v) = HeaderValue::from_str(&wait.max(1).to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    Some(r)
}

/// Starts a login through `conn` for `purpose`: records it and answers with the redirect
/// to the IdP (and the browser-binding cookie).
pub async fn begin_login(
    st: &SsoState,
    org: &Org,
    conn: &Connection,
    purpose: LoginPurpose,
    login_hint: Option<&str>,
) -> Result<Response, LoginFailure> {
    let id = random_token("").map_err(LoginFailure::internal)?;
    let browser = random_token("").map_err(LoginFailure::internal)?;
    let mut data = LoginData::new(purpose);
    let location = match conn.protocol {
        Protocol::Oidc => {
            let secret = connection_secret(st, conn)?;
            let cfg = oidc_rp::RpConfig::of(conn, secret, st.oidc_redirect_uri())?;
            let started =
                oidc_rp::start(&st.metadata, &st.idp_http(conn), &cfg, &id, login_hint).await?;
            data.upstream_nonce = Some(started.nonce);
            data.pkce_verifier = Some(started.pkce_verifier);
            started.url
        }
        Protocol::Saml => {
            let mut rid = [0u8; 16];
            crate::core::secrets::fill_random(&mut rid).map_err(LoginFailure::internal)?;
            // An NCName: a letter or underscore first.
            let request_id = format!("_{}", crate::core::secrets::hex(&rid));
            let sp = saml_sp(st, conn).await?;
            let relay = id.clone();
            let rid2 = request_id.clone();
            let url = tokio::task::spawn_blocking(move || sp.authn_redirect(&rid2, &relay))
                .await
                .map_err(|e| LoginFailure::Internal(e.to_string()))?
                .map_err(|e| LoginFailure::Config(e.to_string()))?;
            data.saml_request_id = Some(request_id);
            url
        }
    };
    let login = LoginRequest {
        id: id.clone(),
        org_id: org.id.clone(),
        connection_id: conn.id.clone(),
        browser_hash: hash_secret(&browser),
        data,
        expires_at: expires_in(LOGIN_TTL),
    };
    st.store
        .insert_login(&login)
        .await
        .map_err(LoginFailure::internal)?;
    let cookie = format!(
        "{}={browser}; Path=/sso; Max-Age={}; HttpOnly; SameSite=Lax{}",
        login_cookie_name(&id),
        LOGIN_TTL.whole_seconds(),
        if st.secure_cookies() { "; Secure" } else { "" }
    );
    let mut resp = Redirect::to(&location).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(resp)
}

fn connection_secret(st: &SsoState, conn: &Connection) -> Result<String, LoginFailure> {
    let enc = conn
        .secret_enc
        .as_deref()
        .ok_or_else(|| LoginFailure::Config("the connection has no secret".into()))?;
    st.master
        .decrypt_string(&conn.secret_purpose(), enc)
        .map_err(LoginFailure::internal)
}

#[derive(Deserialize)]
struct CallbackParams {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// The login `id`, consumed, if it came back through the browser that started it (the
/// login cookie hashes to its `browser_hash`); else the page to show.
async fn take_bound_login(
    st: &SsoState,
    headers: &HeaderMap,
    id: Option<&str>,
) -> Result<(LoginRequest, String), Response> {
    let Some(id) = id else {
        return Err(error_page(
            StatusCode::BAD_REQUEST,
            "The sign-in response has no state.",
        ));
    };
    let login = match st.store.take_login(id).await {
        Ok(Some(l)) => l,
        Ok(None) => {
            return Err(error_page(
                StatusCode::BAD_REQUEST,
                "This sign-in has expired or was already used. Start again from the application.",
            ));
        }
        Err(e) => return Err(LoginFailure::internal(e).into_response()),
    };
    let cookie = login
        .data
        .cookie
        .clone()
        .unwrap_or_else(|| login_cookie_name(&login.id));
    let bound = cookie_value(headers, &cookie)
        .is_some_and(|v| secrets_equal(&hash_secret(v), &login.browser_hash));
    if !bound {
        return Err(error_page(
            StatusCode::BAD_REQUEST,
            "This sign-in was started in another browser. Start again from the application.",
        ));
    }
    Ok((login, cookie))
}

/// The answer to a login that failed: the IdP's own refusal goes back where the login came
/// from (the app, or its finisher's page); anything else is a page here.
fn failed(st: &SsoState, purpose: &LoginPurpose, f: LoginFailure) -> Response {
    match st.finishers.owner(purpose) {
        Owner::App(app) => f.respond(app),
        Owner::Registered(finisher) => f.respond_at(&finisher.return_uri()),
    }
}

/// `resp` with the login cookie cleared.
fn clear_cookie(mut resp: Response, cookie: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(&format!("{cookie}=; Path=/sso; Max-Age=0")) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

async fn oidc_callback(
    State(st): State<Arc<SsoState>>,
    headers: HeaderMap,
    Query(p): Query<CallbackParams>,
) -> Response {
    let (login, cookie) = match take_bound_login(&st, &headers, p.state.as_deref()).await {
        Ok(x) => x,
        Err(page) => return page,
    };
    let resp = match oidc_finish(&st, &login, &p).await {
        Ok(r) => r,
        Err(f) => failed(&st, &login.data.purpose, f),
    };
    clear_cookie(resp, &cookie)
}

async fn oidc_finish(
    st: &SsoState,
    login: &LoginRequest,
    p: &CallbackParams,
) -> Result<Response, LoginFailure> {
    if let Some(err) = &p.error {
        return Err(LoginFailure::IdpError(format!(
            "{err}{}",
            p.error_description
                .as_deref()
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        )));
    }
    let code = p
        .code
        .as_deref()
        .ok_or_else(|| LoginFailure::IdpError("the response has no code".into()))?;
    let (org, conn) = load(st, login).await?;
    let secret = connection_secret(st, &conn)?;
    let cfg = oidc_rp::RpConfig::of(&conn, secret, st.oidc_redirect_uri())?;
    let assertion = oidc_rp::finish(
        &st.metadata,
        &st.idp_http(&conn),
        &cfg,
        code,
        login.data.upstream_nonce.as_deref().unwrap_or_default(),
        login.data.pkce_verifier.as_deref().unwrap_or_default(),
    )
    .await?;
    complete_login(st, &org, &conn, &assertion, &login.data.purpose).await
}

async fn load(st: &SsoState, login: &LoginRequest) -> Result<(Org, Connection), LoginFailure> {
    let conn = st
        .store
        .connection(&login.connection_id)
        .await
        .map_err(LoginFailure::internal)?
        .filter(|c| !c.disabled && c.org_id == login.org_id)
        .ok_or_else(|| LoginFailure::Config("the connection no longer exists".into()))?;
    let org = st
        .store
        .org_by_id(login.org_id.as_str())
        .await
        .map_err(LoginFailure::internal)?
        .ok_or_else(|| LoginFailure::Config("the organization no longer exists".into()))?;
    Ok((org, conn))
}

/// After the IdP's answer is verified: the login goes to the owner of its purpose.
pub async fn complete_login(
    st: &SsoState,
    org: &Org,
    conn: &Connection,
    a: &Assertion,
    purpose: &LoginPurpose,
) -> Result<Response, LoginFailure> {
    match st.finishers.owner(purpose) {
        Owner::App(app) => app_login(st, org, conn, a, app).await,
        Owner::Registered(finisher) => Ok(finisher
            .finish(Verified {
                org,
                conn,
                assertion: a,
            })
            .await),
    }
}

/// An app's verified login: JIT, a session, and the code back to the app.
async fn app_login(
    st: &SsoState,
    org: &Org,
    conn: &Connection,
    a: &Assertion,
    app: &AppRequest,
) -> Result<Response, LoginFailure> {
    let outcome = jit::login(&st.store, org, conn, a)
        .await
        .map_err(LoginFailure::internal)?
        .map_err(LoginFailure::Refused)?;
    let user = outcome.user();
    tracing::info!(
        org = %org.slug,
        connection = %conn.id,
        user = %user.id,
        outcome = match &outcome {
            Outcome::Created(_) => "created",
            Outcome::Updated(_) => "updated",
            Outcome::Linked(_) => "linked",
        },
        "login"
    );
    let scope = Scope {
        org: org.id.clone(),
        actor: Actor::Connection {
            connection_id: conn.id.clone(),
        },
    };
    let code = match sessions::start_session(&st.store, &scope, &user.id, &conn.id, app).await {
        Ok(c) => c,
        Err(CoreError::Forbidden(_)) => {
            return Err(LoginFailure::Refused(jit::Refusal::Deactivated));
        }
        Err(e) => return Err(LoginFailure::internal(e)),
    };
    Ok(pages::redirect_to_app(
        app,
        &[("code", code.as_str()), ("iss", st.public_url.as_str())],
    ))
}

/// The SAML service provider of a connection (IdP metadata, our key and certificate).
async fn saml_sp(st: &SsoState, conn: &Connection) -> Result<saml_sp::Sp, LoginFailure> {
    let key = connection_secret(st, conn)?;
    let (Some(md), Some(cert)) = (
        conn.config.saml_idp_metadata.clone(),
        conn.config.saml_sp_cert_pem.clone(),
    ) else {
        return Err(LoginFailure::Config(
            "the connection has no IdP metadata or SP certificate".into(),
        ));
    };
    let entity = st.saml_entity_id(&conn.id);
    let acs = format!("{entity}/acs");
    let skew = conn
        .config
        .saml_clock_skew_secs
        .unwrap_or(saml_sp::DEFAULT_CLOCK_SKEW_SECS);
    tokio::task::spawn_blocking(move || saml_sp::Sp::new(&entity, &acs, &md, &key, &cert, skew))
        .await
        .map_err(|e| LoginFailure::Internal(e.to_string()))?
        .map_err(|e| LoginFailure::Config(e.to_string()))
}

/// The SAML connection `id`, if it is one and enabled.
async fn saml_connection(st: &SsoState, id: &str) -> Result<Connection, Response> {
    match st.store.connection(id).await {
        Ok(Some(c)) if c.protocol == Protocol::Saml && !c.disabled => Ok(c),
        Ok(_) => Err(error_page(
            StatusCode::NOT_FOUND,
            "No such SAML connection.",
        )),
        Err(e) => Err(LoginFailure::internal(e).into_response()),
    }
}

async fn saml_metadata(
    State(st): State<Arc<SsoState>>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    let conn = match saml_connection(&st, &id).await {
        Ok(c) => c,
        Err(page) => return page,
    };
    let sp = match saml_sp(&st, &conn).await {
        Ok(sp) => sp,
        Err(f) => return f.into_response(),
    };
    match sp.metadata_xml() {
        Ok(xml) => (
            [(header::CONTENT_TYPE, "application/samlmetadata+xml")],
            xml,
        )
            .into_response(),
        Err(e) => LoginFailure::Config(e.to_string()).into_response(),
    }
}

#[derive(Deserialize)]
struct AcsForm {
    #[serde(rename = "SAMLResponse")]
    saml_response: Option<String>,
    #[serde(rename = "RelayState")]
    relay_state: Option<String>,
}

/// Verifies `b64` for `conn` off the async threads (libxml is synchronous), then records
/// the assertion id until it expires: a replay is refused.
async fn saml_verify(
    st: &SsoState,
    conn: &Connection,
    b64: String,
    request_id: Option<String>,
) -> Result<Assertion, LoginFailure> {
    let sp = saml_sp(st, conn).await?;
    let verified = tokio::task::spawn_blocking(move || sp.verify(&b64, request_id.as_deref()))
        .await
        .map_err(|e| LoginFailure::Internal(e.to_string()))?
        .map_err(|e| match e {
            saml_sp::SamlError::Config(m) => LoginFailure::Config(m),
            saml_sp::SamlError::Rejected(m) => LoginFailure::Rejected(m),
        })?;
    let fresh = st
        .store
        .remember_assertion(&conn.id, &verified.assertion_id, &verified.expires_at)
        .await
        .map_err(LoginFailure::internal)?;
    if !fresh {
        return Err(LoginFailure::Rejected(
            "this assertion was already used (replay)".into(),
        ));
    }
    Ok(verified.assertion)
}

async fn saml_acs(
    State(st): State<Arc<SsoState>>,
    axum::extract::Path(id): axum::extract::Path<String>,
    axum::Form(form): axum::Form<AcsForm>,
) -> Response {
    let conn = match saml_connection(&st, &id).await {
        Ok(c) => c,
        Err(page) => return page,
    };
    let Some(b64) = form.saml_response else {
        return error_page(StatusCode::BAD_REQUEST, "The request has no SAMLResponse.");
    };
    // SP-initiated: the RelayState names our login, which is consumed here (one response
    // per request).
    let login = match form.relay_state.as_deref() {
        Some(relay) => match st.store.take_login(relay).await {
            Ok(l) => l.filter(|l| l.connection_id == conn.id),
            Err(e) => return LoginFailure::internal(e).into_response(),
        },
        None => None,
    };
    match login {
        Some(login) => {
            let purpose = login.data.purpose.clone();
            match saml_sp_initiated(&st, &conn, login, b64).await {
                Ok(r) => r,
                Err(f) => failed(&st, &purpose, f),
            }
        }
        None => match saml_idp_initiated(&st, &conn, b64).await {
            Ok(r) => r,
            Err(f) => f.into_response(),
        },
    }
}

/// The verified assertion goes into a new login row bound to the same browser; the
/// browser is sent to `/sso/saml/continue`, a same-site GET that carries the login cookie.
async fn saml_sp_initiated(
    st: &SsoState,
    conn: &Connection,
    login: LoginRequest,
    b64: String,
) -> Result<Response, LoginFailure> {
    let assertion = saml_verify(st, conn, b64, login.data.saml_request_id.clone()).await?;
    let next = LoginRequest {
        id: random_token("").map_err(LoginFailure::internal)?,
        org_id: login.org_id.clone(),
        connection_id: conn.id.clone(),
        browser_hash: login.browser_hash.clone(),
        data: LoginData {
            cookie: Some(login_cookie_name(&login.id)),
            verified: Some(assertion),
            ..LoginData::new(login.data.purpose.clone())
        },
        expires_at: expires_in(time::Duration::minutes(2)),
    };
    st.store
        .insert_login(&next)
        .await
        .map_err(LoginFailure::internal)?;
    let mut url = url::Url::parse(&format!("{}/sso/saml/continue", st.public_url))
        .map_err(|e| LoginFailure::Internal(e.to_string()))?;
    url.query_pairs_mut().append_pair("login", &next.id);
    Ok(Redirect::to(url.as_str()).into_response())
}

#[derive(Deserialize)]
struct ContinueParams {
    login: Option<String>,
}

async fn saml_continue(
    State(st): State<Arc<SsoState>>,
    headers: HeaderMap,
    Query(p): Query<ContinueParams>,
) -> Response {
    let (login, cookie) = match take_bound_login(&st, &headers, p.login.as_deref()).await {
        Ok(x) => x,
        Err(page) => return page,
    };
    let result = async {
        let assertion =
            login.data.verified.clone().ok_or_else(|| {
                LoginFailure::Internal("continuation without an assertion".into())
            })?;
        let (org, conn) = load(&st, &login).await?;
        complete_login(&st, &org, &conn, &assertion, &login.data.purpose).await
    }
    .await;
    let resp = match result {
        Ok(r) => r,
        Err(f) => failed(&st, &login.data.purpose, f),
    };
    clear_cookie(resp, &cookie)
}

/// A response the IdP sent unasked: only where the connection allows it, to the app and
/// redirect URI it names (there is no browser binding to check: that is the risk the
/// setting accepts).
async fn saml_idp_initiated(
    st: &SsoState,
    conn: &Connection,
    b64: String,
) -> Result<Response, LoginFailure> {
    if !conn.config.allow_idp_initiated {
        return Err(LoginFailure::Rejected(
            "this sign-in was not started here, and the connection does not accept IdP-initiated sign-in".into(),
        ));
    }
    let (Some(app_id), Some(redirect_uri)) = (
        conn.config.idp_initiated_app.clone(),
        conn.config.idp_initiated_redirect_uri.clone(),
    ) else {
        return Err(LoginFailure::Config(
            "IdP-initiated sign-in has no application to go to".into(),
        ));
    };
    let assertion = saml_verify(st, conn, b64, None).await?;
    let org = st
        .store
        .org_by_id(conn.org_id.as_str())
        .await
        .map_err(LoginFailure::internal)?
        .ok_or_else(|| LoginFailure::Config("the organization no longer exists".into()))?;
    let app = AppRequest {
        app_id,
        redirect_uri,
        scope: "openid email profile".into(),
        ..Default::default()
    };
    complete_login(st, &org, conn, &assertion, &LoginPurpose::App(app)).await
}
