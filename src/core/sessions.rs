//! Apps (the OAuth clients Roster is the OpenID provider for), login transactions, sessions
//! and their tokens. Every token is a row found by the SHA-256 of its value; it is good only
//! while it is unexpired and unconsumed, its session is live and its user is active — so
//! deprovisioning (which revokes sessions in the deactivating transaction) ends every token
//! at once, whatever was issued before.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::{Duration, OffsetDateTime};

use super::error::{CoreError, CoreResult};
use super::format_time;
use super::model::{Actor, OrgId, Scope};
use super::secrets::{hash_secret, random_token, secrets_equal};
use super::store::prelude::*;

/// How long each kind of credential lives.
pub const CODE_TTL: Duration = Duration::seconds(60);
pub const ACCESS_TTL: Duration = Duration::minutes(5);
pub const REFRESH_TTL: Duration = Duration::days(30);
pub const SESSION_TTL: Duration = Duration::days(30);
pub const LOGIN_TTL: Duration = Duration::minutes(10);

pub fn expires_in(ttl: Duration) -> String {
    format_time(OffsetDateTime::now_utc() + ttl)
}

/// An application that signs its users in through Roster (an OAuth 2.0 confidential client).
#[derive(Debug, Clone)]
pub struct App {
    pub id: String,
    pub name: String,
    pub secret_hash: String,
    pub redirect_uris: Vec<String>,
    pub created_at: String,
    pub revoked: bool,
}

impl App {
    /// Exact string match, as OAuth 2.0 Security BCP requires.
    pub fn allows_redirect(&self, uri: &str) -> bool {
        self.redirect_uris.iter().any(|u| u == uri)
    }
}

/// Registers an app; returns it with its client secret (shown once, stored hashed).
pub async fn create_app<S: Store>(
    store: &S,
    name: &str,
    redirect_uris: &[String],
    actor: &Actor,
) -> CoreResult<(App, String)> {
    if redirect_uris.is_empty() {
        return Err(CoreError::InvalidValue(
            "an app needs at least one --redirect-uri".into(),
        ));
    }
    for u in redirect_uris {
        let parsed = url::Url::parse(u)
            .map_err(|_| CoreError::InvalidValue(format!("redirect URI \"{u}\" is not a URL")))?;
        if parsed.fragment().is_some() {
            return Err(CoreError::InvalidValue(format!(
                "redirect URI \"{u}\" must not have a fragment"
            )));
        }
        let loopback = matches!(parsed.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
        if parsed.scheme() != "https" && !(parsed.scheme() == "http" && loopback) {
            return Err(CoreError::InvalidValue(format!(
                "redirect URI \"{u}\" must be https (http only on loopback)"
            )));
        }
    }
    let secret = random_token("rsc_")?;
    let app = App {
        id: random_token("app_")?.chars().take(28).collect(),
        name: name.to_owned(),
        secret_hash: hash_secret(&secret),
        redirect_uris: redirect_uris.to_vec(),
        created_at: super::now(),
        revoked: false,
    };
    store.insert_app(&app, actor).await?;
    Ok((app, secret))
}

/// The app these client credentials belong to, if they are right (constant-time check).
pub async fn authenticate_app<S: Store>(
    store: &S,
    client_id: &str,
    secret: &str,
) -> CoreResult<Option<App>> {
    let Some(app) = store.app(client_id).await? else {
        return Ok(None);
    };
    if app.revoked || !secrets_equal(&hash_secret(secret), &app.secret_hash) {
        return Ok(None);
    }
    Ok(Some(app))
}

/// What the app asked for at `/oauth/authorize`, carried through the IdP round trip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct AppRequest {
    pub app_id: String,
    pub redirect_uri: String,
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// PKCE (S256 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_challenge: Option<String>,
}

/// What a login is for, stored with it: it decides who finishes the login once the IdP's
/// answer is verified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "StoredPurpose", into = "StoredPurpose")]
pub enum LoginPurpose {
    /// An app's sign-in (`/oauth/authorize`, or an IdP-initiated SAML response): JIT, a
    /// session, and a code back to the app.
    App(AppRequest),
    /// An operator signing in to the console through the operators' organization: JIT,
    /// then a console session if the user holds a console role.
    ConsoleSignIn,
    /// A setup page's test of its connection: the verified answer is shown; no user is
    /// created or changed and no session opened.
    SetupTest,
}

/// The app ids that stood for a purpose on login rows written before purposes were stored
/// (a login started by an older node during an upgrade, at most `LOGIN_TTL` old).
const LEGACY_CONSOLE_APP: &str = "roster-console";
const LEGACY_SETUP_TEST_APP: &str = "roster-setup-test";

/// A purpose as a login row's `data` holds it: `purpose`, and for an app's login its
/// request in `app`, where older versions read it (they fail on a row without `app`, so
/// a login Roster started for itself never finishes there as an app's).
#[derive(Serialize, Deserialize)]
struct StoredPurpose {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    purpose: Option<PurposeTag>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    app: Option<AppRequest>,
}

#[derive(Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum PurposeTag {
    App,
    ConsoleSignIn,
    SetupTest,
}

/// A stored login whose purpose cannot be told.
#[derive(Debug, thiserror::Error)]
#[error("a login without its purpose or its app's request")]
pub struct UnknownPurpose;

impl TryFrom<StoredPurpose> for LoginPurpose {
    type Error = UnknownPurpose;

    fn try_from(s: StoredPurpose) -> Result<Self, UnknownPurpose> {
        match (s.purpose, s.app) {
            (Some(PurposeTag::App), Some(app)) => Ok(LoginPurpose::App(app)),
            (Some(PurposeTag::ConsoleSignIn), _) => Ok(LoginPurpose::ConsoleSignIn),
            (Some(PurposeTag::SetupTest), _) => Ok(LoginPurpose::SetupTest),
            // A row from before purposes were stored.
            (None, Some(app)) => Ok(match app.app_id.as_str() {
                LEGACY_CONSOLE_APP => LoginPurpose::ConsoleSignIn,
                LEGACY_SETUP_TEST_APP => LoginPurpose::SetupTest,
                _ => LoginPurpose::App(app),
            }),
            (_, None) => Err(UnknownPurpose),
        }
    }
}

impl From<LoginPurpose> for StoredPurpose {
    fn from(p: LoginPurpose) -> Self {
        let (tag, app) = match p {
            LoginPurpose::App(app) => (PurposeTag::App, Some(app)),
            LoginPurpose::ConsoleSignIn => (PurposeTag::ConsoleSignIn, None),
            LoginPurpose::SetupTest => (PurposeTag::SetupTest, None),
        };
        StoredPurpose {
            purpose: Some(tag),
            app,
        }
    }
}

/// A login in flight, between Roster's redirect to the IdP and the IdP's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginData {
    #[serde(flatten)]
    pub purpose: LoginPurpose,
    /// OIDC upstream: the nonce and PKCE verifier Roster sent to the IdP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_nonce: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkce_verifier: Option<String>,
    /// SAML: the AuthnRequest ID the response must answer (`InResponseTo`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saml_request_id: Option<String>,
    /// The name of the browser-binding cookie, when it is not derived from this login's id
    /// (the second half of a SAML login, after the IdP's cross-site POST).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie: Option<String>,
    /// SAML: the verified assertion, carried from the ACS to the browser-bound
    /// continuation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<crate::core::sso::Assertion>,
}

impl LoginData {
    /// A login for `purpose`, with nothing of the protocol recorded yet.
    pub fn new(purpose: LoginPurpose) -> Self {
        LoginData {
            purpose,
            upstream_nonce: None,
            pkce_verifier: None,
            saml_request_id: None,
            cookie: None,
            verified: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct LoginRequest {
    /// Random; sent to the IdP as `state` (OIDC) or `RelayState` (SAML).
    pub id: String,
    pub org_id: OrgId,
    pub connection_id: String,
    /// SHA-256 of the random value in the browser's login cookie: the answer must come back
    /// through the browser that started the login.
    pub browser_hash: String,
    pub data: LoginData,
    pub expires_at: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Code,
    Access,
    Refresh,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Code => "code",
            TokenKind::Access => "access",
            TokenKind::Refresh => "refresh",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "code" => Some(TokenKind::Code),
            "access" => Some(TokenKind::Access),
            "refresh" => Some(TokenKind::Refresh),
            _ => None,
        }
    }
    fn prefix(self) -> &'static str {
        match self {
            TokenKind::Code => "rsn_c_",
            TokenKind::Access => "rsn_a_",
            TokenKind::Refresh => "rsn_r_",
        }
    }
}

/// A token row. `data` holds what the token was issued for (scope, nonce, redirect URI, PKCE
/// challenge, auth time).
#[derive(Debug, Clone)]
pub struct TokenRow {
    pub hash: String,
    pub kind: TokenKind,
    pub session_id: String,
    pub app_id: String,
    pub org_id: OrgId,
    pub user_id: String,
    pub data: Value,
    pub created_at: String,
    pub expires_at: String,
    pub consumed_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// A token with the state of what it depends on, read in one query.
#[derive(Debug, Clone)]
pub struct TokenState {
    pub row: TokenRow,
    pub session_live: bool,
    pub user_active: bool,
}

impl TokenState {
    /// Good now: unexpired, not consumed or revoked, live session, active user.
    pub fn is_live(&self, now: &str) -> bool {
        self.row.revoked_at.is_none()
            && self.row.consumed_at.is_none()
            && self.row.expires_at.as_str() > now
            && self.session_live
            && self.user_active
    }
}

/// A token value and the row to store for it.
pub struct Minted {
    pub value: String,
    pub row: TokenRow,
}

pub fn mint(
    kind: TokenKind,
    session_id: &str,
    app_id: &str,
    org: &OrgId,
    user_id: &str,
    data: Value,
    ttl: Duration,
) -> CoreResult<Minted> {
    let value = random_token(kind.prefix())?;
    Ok(Minted {
        row: TokenRow {
            hash: hash_secret(&value),
            kind,
            session_id: session_id.to_owned(),
            app_id: app_id.to_owned(),
            org_id: org.clone(),
            user_id: user_id.to_owned(),
            data,
            created_at: super::now(),
            expires_at: expires_in(ttl),
            consumed_at: None,
            revoked_at: None,
        },
        value,
    })
}

/// A new session for an active user, with the authorization code the app will redeem.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: String,
    pub user_id: String,
    pub connection_id: String,
    pub app_id: String,
    pub expires_at: String,
}

/// Starts a session and mints its authorization code. Fails with `Forbidden` when the user
/// is (by now) inactive: the store checks it in the same transaction, under the user's row
/// lock, so a concurrent deactivation either sees this session or refuses it.
pub async fn start_session<S: Store>(
    store: &S,
    scope: &Scope,
    user_id: &str,
    connection_id: &str,
    req: &AppRequest,
) -> CoreResult<String> {
    let session = NewSession {
        id: super::new_id(),
        user_id: user_id.to_owned(),
        connection_id: connection_id.to_owned(),
        app_id: req.app_id.clone(),
        expires_at: expires_in(SESSION_TTL),
    };
    let code = mint(
        TokenKind::Code,
        &session.id,
        &req.app_id,
        &scope.org,
        user_id,
        serde_json::json!({
            "redirect_uri": req.redirect_uri,
            "scope": req.scope,
            "nonce": req.nonce,
            "code_challenge": req.code_challenge,
            "auth_time": OffsetDateTime::now_utc().unix_timestamp(),
        }),
        CODE_TTL,
    )?;
    if !store.start_session(scope, &session, &code.row).await? {
        return Err(CoreError::Forbidden("the user is deactivated".into()));
    }
    Ok(code.value)
}

/// Why a token request was refused (RFC 6749 §5.2 error codes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantError {
    /// `invalid_grant`: unknown, expired, used or revoked code/refresh token, wrong
    /// redirect URI or PKCE verifier, or a deprovisioned user.
    InvalidGrant(String),
}

/// The tokens a successful grant returns; the adapter adds the signed ID token.
pub struct Grant {
    pub access: Minted,
    pub refresh: Minted,
    /// The code's or refresh token's row it was granted for.
    pub basis: TokenRow,
}

fn s256(verifier: &str) -> String {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn tokens_for(basis: &TokenRow) -> CoreResult<(Minted, Minted)> {
    let data = serde_json::json!({
        "scope": basis.data.get("scope"),
        "auth_time": basis.data.get("auth_time"),
    });
    let access = mint(
        TokenKind::Access,
        &basis.session_id,
        &basis.app_id,
        &basis.org_id,
        &basis.user_id,
        data.clone(),
        ACCESS_TTL,
    )?;
    let refresh = mint(
        TokenKind::Refresh,
        &basis.session_id,
        &basis.app_id,
        &basis.org_id,
        &basis.user_id,
        data,
        REFRESH_TTL,
    )?;
    Ok((access, refresh))
}

/// Redeems an authorization code (once). A second redemption revokes the session it opened
/// (RFC 6749 §4.1.2).
pub async fn exchange_code<S: Store>(
    store: &S,
    app: &App,
    code: &str,
    redirect_uri: Option<&str>,
    code_verifier: Option<&str>,
) -> CoreResult<Result<Grant, GrantError>> {
    let bad = |m: &str| Ok(Err(GrantError::InvalidGrant(m.to_owned())));
    let Some(state) = store.token_state(&hash_secret(code)).await? else {
        return bad("unknown authorization code");
    };
    let row = &state.row;
    if row.kind != TokenKind::Code || row.app_id != app.id {
        return bad("unknown authorization code");
    }
    let want_redirect = row.data.get("redirect_uri").and_then(Value::as_str);
    if redirect_uri != want_redirect {
        return bad("redirect_uri does not match the authorization request");
    }
    match (
        row.data.get("code_challenge").and_then(Value::as_str),
        code_verifier,
    ) {
        (Some(challenge), Some(v)) if secrets_equal(&s256(v), challenge) => {}
        (Some(_), _) => return bad("PKCE code_verifier does not match"),
        (None, Some(_)) => return bad("no PKCE challenge was sent for this code"),
        (None, None) => {}
    }
    redeem(store, app, state.row, "authorization code").await
}

/// Consumes a code or refresh token and issues its successors. A token consumed before is a
/// replay: its whole session is revoked.
async fn redeem<S: Store>(
    store: &S,
    app: &App,
    basis: TokenRow,
    what: &str,
) -> CoreResult<Result<Grant, GrantError>> {
    let (access, refresh) = tokens_for(&basis)?;
    match store
        .consume_token(&basis, &super::now(), &[&access.row, &refresh.row])
        .await?
    {
        Consumed::Done => Ok(Ok(Grant {
            access,
            refresh,
            basis,
        })),
        Consumed::AlreadyUsed => {
            let actor = Actor::App {
                app_id: app.id.clone(),
            };
            let reason = format!("{what} reused");
            store
                .revoke_session(&basis.org_id, &basis.session_id, &actor, &reason)
                .await?;
            Ok(Err(GrantError::InvalidGrant(format!(
                "{what} was already used; its session is revoked"
            ))))
        }
        Consumed::NotLive => Ok(Err(GrantError::InvalidGrant(format!(
            "{what} expired, was revoked, or its user is deprovisioned"
        )))),
    }
}

/// What `SessionStore::consume_token` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consumed {
    /// Consumed now, and the replacement tokens were stored.
    Done,
    /// It had been consumed before (a replay).
    AlreadyUsed,
    /// Expired, revoked, or its session or user is no longer live.
    NotLive,
}

/// Rotates a refresh token: the old one is consumed, a new pair issued. A consumed refresh
/// token presented again means it leaked: the whole session is revoked.
pub async fn refresh<S: Store>(
    store: &S,
    app: &App,
    token: &str,
) -> CoreResult<Result<Grant, GrantError>> {
    let bad = |m: &str| Ok(Err(GrantError::InvalidGrant(m.to_owned())));
    let Some(state) = store.token_state(&hash_secret(token)).await? else {
        return bad("unknown refresh token");
    };
    let row = &state.row;
    if row.kind != TokenKind::Refresh || row.app_id != app.id {
        return bad("unknown refresh token");
    }
    redeem(store, app, state.row, "refresh token").await
}

/// The live access or refresh token with this value (RFC 7662: anything else is inactive).
pub async fn introspect<S: Store>(store: &S, token: &str) -> CoreResult<Option<TokenState>> {
    let Some(state) = store.token_state(&hash_secret(token)).await? else {
        return Ok(None);
    };
    let usable = matches!(state.row.kind, TokenKind::Access | TokenKind::Refresh);
    Ok((usable && state.is_live(&super::now())).then_some(state))
}

/// RFC 7009: revoking a refresh token ends its session (and every token of it); revoking an
/// access token ends that token. Unknown tokens and other apps' tokens are ignored.
pub async fn revoke<S: Store>(store: &S, app: &App, token: &str) -> CoreResult<()> {
    let Some(state) = store.token_state(&hash_secret(token)).await? else {
        return Ok(());
    };
    if state.row.app_id != app.id {
        return Ok(());
    }
    let actor = Actor::App {
        app_id: app.id.clone(),
    };
    match state.row.kind {
        TokenKind::Refresh => {
            store
                .revoke_session(
                    &state.row.org_id,
                    &state.row.session_id,
                    &actor,
                    "revoked by the app",
                )
                .await
        }
        TokenKind::Access => store.revoke_oauth_token(&state.row.hash).await,
        TokenKind::Code => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> AppRequest {
        AppRequest {
            app_id: "app_1".into(),
            redirect_uri: "https://app.example/cb".into(),
            scope: "openid".into(),
            state: Some("st".into()),
            ..Default::default()
        }
    }

    #[test]
    fn purposes_round_trip_through_the_stored_form() {
        for purpose in [
            LoginPurpose::App(app()),
            LoginPurpose::ConsoleSignIn,
            LoginPurpose::SetupTest,
        ] {
            let mut data = LoginData::new(purpose.clone());
            data.upstream_nonce = Some("n".into());
            let text = serde_json::to_string(&data).unwrap();
            let back: LoginData = serde_json::from_str(&text).unwrap();
            assert_eq!(back.purpose, purpose, "{text}");
            assert_eq!(back.upstream_nonce.as_deref(), Some("n"));
        }
        // An app's request stays where older versions read it; a login Roster started for
        // itself has none, so an older version cannot finish it as an app's.
        let v = serde_json::to_value(LoginData::new(LoginPurpose::App(app()))).unwrap();
        assert_eq!(v["app"]["app_id"], "app_1");
        assert_eq!(v["purpose"], "app");
        let v = serde_json::to_value(LoginData::new(LoginPurpose::SetupTest)).unwrap();
        assert_eq!(v["purpose"], "setup_test");
        assert!(v.get("app").is_none());
    }

    #[test]
    fn rows_from_before_purposes_still_read() {
        let old = |app_id: &str| {
            serde_json::json!({
                "app": {"app_id": app_id, "redirect_uri": "https://x.example/", "scope": "openid"},
                "pkce_verifier": "v"
            })
            .to_string()
        };
        let read = |t: String| serde_json::from_str::<LoginData>(&t).unwrap();
        assert_eq!(
            read(old("roster-console")).purpose,
            LoginPurpose::ConsoleSignIn
        );
        assert_eq!(
            read(old("roster-setup-test")).purpose,
            LoginPurpose::SetupTest
        );
        let d = read(old("app_1"));
        assert!(matches!(&d.purpose, LoginPurpose::App(a) if a.app_id == "app_1"));
        assert_eq!(d.pkce_verifier.as_deref(), Some("v"));
        assert!(serde_json::from_str::<LoginData>(r#"{"purpose": "app"}"#).is_err());
        assert!(serde_json::from_str::<LoginData>("{}").is_err());
    }

    #[test]
    fn s256_matches_rfc7636_appendix_b() {
        assert_eq!(
            super::s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
