//! Roster as the app's OpenID provider: discovery, `/oauth/authorize` (choosing the
//! organization's IdP connection and handing over to `sso`), `/oauth/token` (code + PKCE,
//! refresh with rotation), `/oauth/userinfo`, `/oauth/jwks`, `/oauth/introspect` (RFC 7662)
//! and `/oauth/revoke` (RFC 7009). Tokens are opaque and live in the database
//! (`core::sessions`), so revocation and deprovisioning take effect on the next call.

mod claims;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::core::keys;
use crate::core::sessions::{
    self, ACCESS_TTL, App, AppRequest, GrantError, LoginPurpose, TokenKind,
};
use crate::core::sso::{Protocol, normalize_domain, normalize_email};
use crate::core::store::prelude::*;
use crate::sso::{self, LoginFailure, SsoState, error_page, pages::redirect_to_app};

pub fn router(state: Arc<SsoState>) -> Router {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/oauth/authorize", get(authorize))
        .route("/oauth/token", axum::routing::post(token))
        .route("/oauth/userinfo", get(userinfo).post(userinfo))
        .route("/oauth/jwks", get(jwks))
        .route("/oauth/introspect", axum::routing::post(introspect))
        .route("/oauth/revoke", axum::routing::post(revoke))
        .with_state(state)
}

async fn discovery(State(st): State<Arc<SsoState>>) -> Response {
    let base = &st.public_url;
    no_store(json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/oauth/authorize"),
        "token_endpoint": format!("{base}/oauth/token"),
        "userinfo_endpoint": format!("{base}/oauth/userinfo"),
        "jwks_uri": format!("{base}/oauth/jwks"),
        "introspection_endpoint": format!("{base}/oauth/introspect"),
        "revocation_endpoint": format!("{base}/oauth/revoke"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["openid", "email", "profile", "offline_access"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "email",
            "email_verified", "name", "given_name", "family_name", "preferred_username", "org",
            "org_id", "roles", "groups", "sid"],
        "authorization_response_iss_parameter_supported": true,
    }))
}

fn no_store(v: Value) -> Response {
    let mut r = axum::Json(v).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

/// An OAuth error response (RFC 6749 §5.2).
struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            status,
            error,
            description: description.into(),
        }
    }
    fn bad(error: &'static str, description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error, description)
    }
    fn internal(what: &str, e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "{what} failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "internal error",
        )
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            no_store(json!({"error": self.error, "error_description": self.description})),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"roster\""),
            );
        }
        r
    }
}

#[derive(Deserialize)]
struct AuthorizeParams {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    /// The organization's slug.
    organization: Option<String>,
    /// An email domain of the organization.
    domain_hint: Option<String>,
    login_hint: Option<String>,
    /// A connection id of the organization, when it has several.
    connection: Option<String>,
}

/// The most bytes of `state` in `/oauth/authorize`. Most OIDC libraries send 22–64
/// characters (mod_auth_openidc: 43), but a few frameworks pack their own data into it
/// (ASP.NET Core's protected properties run to 1–2 KB), hence the margin.
pub const MAX_STATE: usize = 4096;
/// The most bytes of `nonce`: libraries send 22–64 characters; ASP.NET Core's, among the
/// longest, ~110.
pub const MAX_NONCE: usize = 512;
/// The most bytes of `scope` and of `login_hint` (an email, or an IdP's opaque hint).
pub const MAX_SCOPE: usize = 1024;
pub const MAX_LOGIN_HINT: usize = 1024;
/// The most bytes of the other parameters that name things (ids, slugs, domains).
const MAX_NAME: usize = 255;

impl AuthorizeParams {
    /// The first parameter longer than its limit, with the limit: what a login in flight
    /// stores, or passes on to the IdP, stays small.
    fn oversized(&self) -> Option<(&'static str, usize)> {
        [
            ("state", &self.state, MAX_STATE),
            ("nonce", &self.nonce, MAX_NONCE),
            ("scope", &self.scope, MAX_SCOPE),
            ("login_hint", &self.login_hint, MAX_LOGIN_HINT),
            // Checked against the app's registered URIs, so bounded by them in effect.
            ("redirect_uri", &self.redirect_uri, 2048),
            ("code_challenge", &self.code_challenge, 128),
            ("client_id", &self.client_id, MAX_NAME),
            ("organization", &self.organization, MAX_NAME),
            ("domain_hint", &self.domain_hint, MAX_NAME),
            ("connection", &self.connection, MAX_NAME),
            ("response_type", &self.response_type, MAX_NAME),
            (
                "code_challenge_method",
                &self.code_challenge_method,
                MAX_NAME,
            ),
        ]
        .into_iter()
        .find(|(_, v, max)| v.as_ref().is_some_and(|v| v.len() > *max))
        .map(|(name, _, max)| (name, max))
    }
}

async fn authorize(State(st): State<Arc<SsoState>>, Query(p): Query<AuthorizeParams>) -> Response {
    // Unauthenticated and each one stores a login: limited per client address first.
    if let Some(limited) = sso::login_rate_limited(&st) {
        return limited;
    }
    // Shown here, not redirected: a redirect would carry the oversized state back.
    if let Some((name, max)) = p.oversized() {
        return error_page(
            StatusCode::BAD_REQUEST,
            &format!("The request's {name} is longer than {max} bytes."),
        );
    }
    // Until the client and redirect URI are known good, errors are shown here (never
    // redirected: that would make Roster an open redirector).
    let Some(client_id) = p.client_id.as_deref() else {
        return error_page(StatusCode::BAD_REQUEST, "The request has no client_id.");
    };
    let app = match st.store.app(client_id).await {
        Ok(Some(a)) if !a.revoked => a,
        Ok(_) => return error_page(StatusCode::BAD_REQUEST, "Unknown application (client_id)."),
        Err(e) => return LoginFailure::internal(e).into_response(),
    };
    let redirect_uri = match p.redirect_uri.as_deref() {
        Some(u) if app.allows_redirect(u) => u.to_owned(),
        Some(_) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "The redirect_uri is not registered for this application.",
            );
        }
        None if app.redirect_uris.len() == 1 => app.redirect_uris[0].clone(),
        None => return error_page(StatusCode::BAD_REQUEST, "The request has no redirect_uri."),
    };
    let req = AppRequest {
        app_id: app.id.clone(),
        redirect_uri,
        scope: p.scope.clone().unwrap_or_default(),
        state: p.state.clone(),
        nonce: p.nonce.clone(),
        code_challenge: p.code_challenge.clone(),
    };
    let fail = |error: &str, description: &str| {
        redirect_to_app(
            &req,
            &[
                ("error", error),
                ("error_description", description),
                ("iss", st.public_url.as_str()),
            ],
        )
    };
    if p.response_type.as_deref() != Some("code") {
        return fail(
            "unsupported_response_type",
            "only response_type=code is supported",
        );
    }
    if !req.scope.split(' ').any(|s| s == "openid") {
        return fail("invalid_scope", "the scope must include openid");
    }
    match (
        p.code_challenge.as_deref(),
        p.code_challenge_method.as_deref(),
    ) {
        (Some(c), Some("S256")) if (43..=128).contains(&c.len()) => {}
        (Some(_), Some("S256")) => return fail("invalid_request", "malformed code_challenge"),
        (Some(_), _) => return fail("invalid_request", "code_challenge_method must be S256"),
        (None, Some(_)) => return fail("invalid_request", "code_challenge is missing"),
        (None, None) => {}
    }
    // The organization: by slug, else by the (verified) domain of the hint.
    let hint_domain = p
        .domain_hint
        .as_deref()
        .and_then(|d| normalize_domain(d).ok())
        .or_else(|| {
            p.login_hint
                .as_deref()
                .and_then(normalize_email)
                .map(|e| crate::core::sso::email_domain(&e).to_owned())
        });
    let org = if let Some(slug) = p.organization.as_deref() {
        st.store.org_by_slug(slug).await
    } else {
        match hint_domain.as_deref() {
            Some(d) => st.store.org_by_domain(d).await,
            None => {
                return fail(
                    "invalid_request",
                    "say which organization signs in: organization=<slug>, domain_hint or login_hint",
                );
            }
        }
    };
    let org = match org {
        Ok(Some(o)) => o,
        Ok(None) => return fail("access_denied", "no organization matches the request"),
        Err(e) => return LoginFailure::internal(e).into_response(),
    };
    let conns = match st.store.list_connections(Some(&org.id)).await {
        Ok(c) => c,
        Err(e) => return LoginFailure::internal(e).into_response(),
    };
    let mut usable: Vec<_> = conns
        .into_iter()
        .filter(|c| !c.disabled)
        .filter(|c| c.protocol == Protocol::Oidc || c.protocol == Protocol::Saml)
        .filter(|c| p.connection.as_deref().is_none_or(|id| id == c.id))
        .collect();
    // Of several, the first that serves the hint's domain (else the first).
    if usable.len() > 1
        && let Some(d) = hint_domain.as_deref()
    {
        match st.store.verified_domains(&org.id).await {
            Ok(verified) => {
                if let Some(i) = usable
                    .iter()
                    .position(|c| crate::core::trust::serves(c, &verified, d))
                {
                    usable.swap(0, i);
                }
            }
            Err(e) => return LoginFailure::internal(e).into_response(),
        }
    }
    let conn = usable.into_iter().next();
    let Some(conn) = conn else {
        return fail(
            "access_denied",
            "the organization has no such SSO connection",
        );
    };
    let purpose = LoginPurpose::App(req.clone());
    match sso::begin_login(&st, &org, &conn, purpose, p.login_hint.as_deref()).await {
        Ok(r) => r,
        Err(f) => f.respond(&req),
    }
}

#[derive(Deserialize, Default)]
struct TokenParams {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    token: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// Client authentication: HTTP Basic (RFC 6749 §2.3.1, form-encoded parts) or the
/// `client_id`/`client_secret` form fields.
async fn client_auth(
    st: &SsoState,
    headers: &HeaderMap,
    p: &TokenParams,
) -> Result<App, OAuthError> {
    let unauthorized = || {
        OAuthError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        )
    };
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .map(|b64| {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok());
            raw.and_then(|s| {
                let (id, secret) = s.split_once(':')?;
                let dec = |x: &str| {
                    url::form_urlencoded::parse(format!("v={x}").as_bytes())
                        .next()
                        .map(|(_, v)| v.into_owned())
                };
                Some((dec(id)?, dec(secret)?))
            })
        });
    let (id, secret) = match (basic, &p.client_id, &p.client_secret) {
        (Some(Some(pair)), None, None) => pair,
        (None, Some(id), Some(secret)) => (id.clone(), secret.clone()),
        _ => return Err(unauthorized()),
    };
    match sessions::authenticate_app(&st.store, &id, &secret).await {
        Ok(Some(app)) => Ok(app),
        Ok(None) => Err(unauthorized()),
        Err(e) => Err(OAuthError::internal("client authentication", e)),
    }
}

fn form(body: &[u8]) -> Result<TokenParams, OAuthError> {
    serde_urlencoded::from_bytes(body).map_err(|_| {
        OAuthError::bad(
            "invalid_request",
            "the body must be application/x-www-form-urlencoded with single-valued fields",
        )
    })
}

/// The form of a request an app authenticates (token, introspection, revocation).
async fn app_form(
    st: &SsoState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(App, TokenParams), OAuthError> {
    let p = form(body)?;
    let app = client_auth(st, headers, &p).await?;
    Ok((app, p))
}

fn required<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str, OAuthError> {
    value
        .as_deref()
        .ok_or_else(|| OAuthError::bad("invalid_request", format!("{name} is missing")))
}

async fn token(
    State(st): State<Arc<SsoState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, OAuthError> {
    let (app, p) = app_form(&st, &headers, &body).await?;
    let result = match p.grant_type.as_deref() {
        Some("authorization_code") => {
            sessions::exchange_code(
                &st.store,
                &app,
                required(&p.code, "code")?,
                p.redirect_uri.as_deref(),
                p.code_verifier.as_deref(),
            )
            .await
        }
        Some("refresh_token") => {
            sessions::refresh(
                &st.store,
                &app,
                required(&p.refresh_token, "refresh_token")?,
            )
            .await
        }
        _ => {
            return Err(OAuthError::bad(
                "unsupported_grant_type",
                "use authorization_code or refresh_token",
            ));
        }
    };
    let grant = match result.map_err(|e| OAuthError::internal("token request", e))? {
        Ok(g) => g,
        Err(GrantError::InvalidGrant(m)) => return Err(OAuthError::bad("invalid_grant", m)),
    };
    let id_token = claims::id_token(&st, &app, &grant)
        .await
        .map_err(|e| OAuthError::internal("ID token issuance", e))?;
    Ok(no_store(json!({
        "access_token": grant.access.value,
        "token_type": "Bearer",
        "expires_in": ACCESS_TTL.whole_seconds(),
        "refresh_token": grant.refresh.value,
        "id_token": id_token,
        "scope": grant.basis.data.get("scope"),
    })))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

async fn userinfo(
    State(st): State<Arc<SsoState>>,
    headers: HeaderMap,
) -> Result<Response, OAuthError> {
    let invalid = || {
        let mut r = (
            StatusCode::UNAUTHORIZED,
            no_store(json!({"error": "invalid_token"})),
        )
            .into_response();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
        Ok(r)
    };
    let Some(tok) = bearer(&headers) else {
        return invalid();
    };
    let internal = |e| OAuthError::internal("userinfo", e);
    let state = match sessions::introspect(&st.store, tok)
        .await
        .map_err(internal)?
    {
        Some(s) if s.row.kind == TokenKind::Access => s,
        _ => return invalid(),
    };
    match claims::user_claims(&st, &state.row)
        .await
        .map_err(internal)?
    {
        Some(c) => Ok(no_store(Value::Object(c))),
        None => invalid(),
    }
}

async fn jwks(State(st): State<Arc<SsoState>>) -> Result<Response, OAuthError> {
    // There is a key to publish before any token is signed with it.
    let all = keys::ensure_current(&st.store, &st.master)
        .await
        .map_err(|e| OAuthError::internal("jwks", e))?;
    let keys: Vec<&Value> = keys::published(&all)
        .into_iter()
        .map(|k| &k.public_jwk)
        .collect();
    let mut r = axum::Json(json!({"keys": keys})).into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    Ok(r)
}

async fn introspect(
    State(st): State<Arc<SsoState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, OAuthError> {
    let (app, p) = app_form(&st, &headers, &body).await?;
    let tok = required(&p.token, "token")?;
    let internal = |e| OAuthError::internal("introspection", e);
    let state = match sessions::introspect(&st.store, tok)
        .await
        .map_err(internal)?
    {
        // Another app's token is none of this app's business: inactive.
        Some(s) if s.row.app_id == app.id => s,
        _ => return Ok(no_store(json!({"active": false}))),
    };
    let org = st
        .store
        .org_by_id(state.row.org_id.as_str())
        .await
        .map_err(internal)?;
    Ok(no_store(json!({
        "active": true,
        "client_id": state.row.app_id,
        "sub": state.row.user_id,
        "iss": st.public_url,
        "exp": claims::unix_time(&state.row.expires_at),
        "iat": claims::unix_time(&state.row.created_at),
        "token_type": match state.row.kind {
            TokenKind::Refresh => "refresh_token",
            _ => "access_token",
        },
        "scope": state.row.data.get("scope"),
        "sid": state.row.session_id,
        "org": org.map(|o| o.slug),
        "org_id": state.row.org_id.as_str(),
    })))
}

async fn revoke(
    State(st): State<Arc<SsoState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, OAuthError> {
    let (app, p) = app_form(&st, &headers, &body).await?;
    sessions::revoke(&st.store, &app, required(&p.token, "token")?)
        .await
        .map_err(|e| OAuthError::internal("revocation", e))?;
    Ok(StatusCode::OK.into_response())
}
