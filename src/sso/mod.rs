//! The SSO adapter: logins through an organization's IdP connection (OIDC today; SAML beside
//! it), from the app's `/oauth/authorize` to the IdP and back, ending in JIT
//! (`core::jit`), a session and an authorization code for the app (`core::sessions`).
//!
//! Routes: `GET /sso/oidc/callback` (the one redirect URI to register at every OIDC IdP).

pub mod oidc_rp;
pub mod pages;

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
use crate::core::sessions::{self, AppRequest, LOGIN_TTL, LoginData, LoginRequest, expires_in};
use crate::core::sso::{Assertion, Connection, Protocol};
use crate::core::store::SsoStore;
use crate::store::SqlStore;

pub use pages::{LoginFailure, error_page};

/// What the SSO and OpenID provider adapters share.
pub struct SsoState {
    pub store: SqlStore,
    pub master: MasterKey,
    /// Base URL of this server as browsers and IdPs reach it (no trailing slash).
    pub public_url: String,
    pub http: oidc_rp::Http,
    pub metadata: oidc_rp::MetadataCache,
}

impl SsoState {
    pub fn oidc_redirect_uri(&self) -> String {
        format!("{}/sso/oidc/callback", self.public_url)
    }
    fn secure_cookies(&self) -> bool {
        self.public_url.starts_with("https://")
    }
}

pub fn router(state: Arc<SsoState>) -> Router {
    Router::new()
        .route("/sso/oidc/callback", get(oidc_callback))
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

/// Starts a login through `conn` for the app's request: records it and answers with the
/// redirect to the IdP (and the browser-binding cookie).
pub async fn begin_login(
    st: &SsoState,
    org: &Org,
    conn: &Connection,
    app: AppRequest,
    login_hint: Option<&str>,
) -> Result<Response, LoginFailure> {
    let id = random_token("").map_err(LoginFailure::internal)?;
    let browser = random_token("").map_err(LoginFailure::internal)?;
    let mut data = LoginData {
        app,
        ..Default::default()
    };
    let location = match conn.protocol {
        Protocol::Oidc => {
            let secret = connection_secret(st, conn)?;
            let cfg = oidc_rp::RpConfig::of(conn, secret, st.oidc_redirect_uri())
                .map_err(|e| LoginFailure::Config(e.to_string()))?;
            let started = oidc_rp::start(&st.metadata, &st.http, &cfg, &id, login_hint)
                .await
                .map_err(|e| LoginFailure::Upstream(e.to_string()))?;
            data.upstream_nonce = Some(started.nonce);
            data.pkce_verifier = Some(started.pkce_verifier);
            started.url
        }
        Protocol::Saml => {
            return Err(LoginFailure::Config(
                "SAML connections are not yet supported by this server".into(),
            ));
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
        .ok_or_else(|| LoginFailure::Config("the connection has no client secret".into()))?;
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

async fn oidc_callback(
    State(st): State<Arc<SsoState>>,
    headers: HeaderMap,
    Query(p): Query<CallbackParams>,
) -> Response {
    let Some(state) = p.state.as_deref() else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "The sign-in response has no state.",
        );
    };
    let login = match st.store.take_login(state).await {
        Ok(Some(l)) => l,
        Ok(None) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "This sign-in has expired or was already used. Start again from the application.",
            );
        }
        Err(e) => return LoginFailure::internal(e).into_response(),
    };
    let cookie = login_cookie_name(&login.id);
    let bound = cookie_value(&headers, &cookie)
        .is_some_and(|v| secrets_equal(&hash_secret(v), &login.browser_hash));
    if !bound {
        return error_page(
            StatusCode::BAD_REQUEST,
            "This sign-in was started in another browser. Start again from the application.",
        );
    }
    let mut resp = match oidc_finish(&st, &login, &p).await {
        Ok(r) => r,
        Err(f) => f.respond(&login.data.app),
    };
    if let Ok(v) = HeaderValue::from_str(&format!("{cookie}=; Path=/sso; Max-Age=0")) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
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
    let cfg = oidc_rp::RpConfig::of(&conn, secret, st.oidc_redirect_uri())
        .map_err(|e| LoginFailure::Config(e.to_string()))?;
    let assertion = oidc_rp::finish(
        &st.metadata,
        &st.http,
        &cfg,
        code,
        login.data.upstream_nonce.as_deref().unwrap_or_default(),
        login.data.pkce_verifier.as_deref().unwrap_or_default(),
    )
    .await
    .map_err(|e| LoginFailure::Rejected(e.to_string()))?;
    complete_login(st, &org, &conn, &assertion, &login.data.app).await
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

/// After the IdP's answer is verified: JIT, a session, and the code back to the app.
pub async fn complete_login(
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
