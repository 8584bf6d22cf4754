//! Roster as an OpenID Connect relying party of a customer's IdP (the `openidconnect` crate):
//! discovery (cached, refetched when the IdP's keys rotate), authorization code with PKCE,
//! state and nonce, ID token verification (issuer, audience, azp, expiry, signature against
//! the IdP's JWKS with asymmetric algorithms only: `none` and HMAC are refused), and userinfo
//! when the ID token lacks the claims.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreGenderClaim, CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AdditionalClaims, AsyncHttpClient, AuthorizationCode, ClaimsVerificationError, ClientId,
    ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet, HttpRequest,
    HttpResponse, IdToken, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, SignatureVerificationError, TokenResponse,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error_chain;
use crate::core::sso::{Assertion, Connection};
use crate::outbound::{self, Outbound, Reach};

/// Every claim of an ID token or userinfo response, standard or not (`groups`, `roles`, ...).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AllClaims {
    #[serde(flatten)]
    pub all: HashMap<String, Value>,
}
impl AdditionalClaims for AllClaims {}

type RawIdToken =
    IdToken<AllClaims, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm>;

/// Signature algorithms accepted on ID tokens: asymmetric only.
const ALLOWED_ALGS: [CoreJwsSigningAlgorithm; 9] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EdDsa,
];

/// How long discovery documents (with their JWKS) are reused.
const METADATA_TTL: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum RpError {
    #[error("the connection is not configured for OIDC: {0}")]
    Config(String),
    #[error("the identity provider could not be reached or answered badly: {0}")]
    Upstream(String),
    #[error("the identity provider's ID token was rejected: {0}")]
    Token(String),
}

/// The HTTP client the `openidconnect` crate calls for one connection: discovery, JWKS,
/// token and userinfo all go through the outbound guard with the connection's reach (the
/// URLs after discovery come from the IdP's document, so they are as untrusted as the
/// issuer). No redirects are followed; answers are bounded.
#[derive(Clone)]
pub struct Http {
    out: Outbound,
    reach: Reach,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

/// The largest answer taken from an IdP (discovery documents and JWKS are a few KiB).
const MAX_ANSWER: usize = 1 << 20;

impl Http {
    pub fn new(out: Outbound, reach: Reach) -> Self {
        Http { out, reach }
    }

    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let (parts, body) = req.into_parts();
        let url = parts.uri.to_string();
        let resp = self
            .out
            .request(self.reach, parts.method, &url)
            .map_err(|e| HttpError(format!("{url}: {e}")))?
            .headers(parts.headers)
            .body(body)
            .send()
            .await
            .map_err(|e| HttpError(format!("{url}: {}", outbound::error_text(e))))?;
        let mut out = axum::http::Response::builder().status(resp.status());
        for (k, v) in resp.headers() {
            out = out.header(k, v);
        }
        let bytes = outbound::read_limited(resp, MAX_ANSWER)
            .await
            .map_err(|e| HttpError(format!("{url}: {e}")))?;
        out.body(bytes)
            .map_err(|e| HttpError(format!("{url}: {e}")))
    }
}

impl<'c> AsyncHttpClient<'c> for Http {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'c>>;
    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}

/// Discovery documents by issuer and reach (a document fetched for an operator's connection
/// is never reused for a customer's), with when they were fetched.
#[derive(Default)]
pub struct MetadataCache(Mutex<HashMap<(String, Reach), (Instant, CoreProviderMetadata)>>);

impl MetadataCache {
    async fn get(
        &self,
        http: &Http,
        issuer: &str,
        fresh: bool,
    ) -> Result<CoreProviderMetadata, RpError> {
        let key = (issuer.to_owned(), http.reach);
        if !fresh
            && let Ok(map) = self.0.lock()
            && let Some((at, md)) = map.get(&key)
            && at.elapsed() < METADATA_TTL
        {
            return Ok(md.clone());
        }
        let url = IssuerUrl::new(issuer.to_owned()).map_err(|e| RpError::Config(e.to_string()))?;
        let md = CoreProviderMetadata::discover_async(url, http)
            .await
            .map_err(|e| RpError::Upstream(error_chain(&e)))?;
        if let Ok(mut map) = self.0.lock() {
            map.insert(key, (Instant::now(), md.clone()));
        }
        Ok(md)
    }
}

/// What the connection needs for a login.
pub struct RpConfig<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub client_secret: String,
    pub redirect_uri: String,
    pub scopes: &'a [String],
}

impl<'a> RpConfig<'a> {
    pub fn of(
        conn: &'a Connection,
        client_secret: String,
        redirect_uri: String,
    ) -> Result<Self, RpError> {
        Ok(RpConfig {
            issuer: conn
                .config
                .oidc_issuer
                .as_deref()
                .ok_or_else(|| RpError::Config("no issuer".into()))?,
            client_id: conn
                .config
                .oidc_client_id
                .as_deref()
                .ok_or_else(|| RpError::Config("no client id".into()))?,
            client_secret,
            redirect_uri,
            scopes: &conn.config.oidc_scopes,
        })
    }
}

/// The client `CoreClient::from_provider_metadata` makes: authorization endpoint set, token
/// and userinfo endpoints as discovered.
type RpClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

impl RpConfig<'_> {
    /// A client from the (cached, or `fresh`) discovery document, with our redirect URI.
    async fn client(
        &self,
        cache: &MetadataCache,
        http: &Http,
        fresh: bool,
    ) -> Result<RpClient, RpError> {
        let md = cache.get(http, self.issuer, fresh).await?;
        let redirect = RedirectUrl::new(self.redirect_uri.clone())
            .map_err(|e| RpError::Config(e.to_string()))?;
        Ok(CoreClient::from_provider_metadata(
            md,
            ClientId::new(self.client_id.to_owned()),
            Some(ClientSecret::new(self.client_secret.clone())),
        )
        .set_redirect_uri(redirect))
    }
}

/// Where to send the browser, and what to keep for the callback.
pub struct Started {
    pub url: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

pub async fn start(
    cache: &MetadataCache,
    http: &Http,
    cfg: &RpConfig<'_>,
    state: &str,
    login_hint: Option<&str>,
) -> Result<Started, RpError> {
    let client = cfg.client(cache, http, false).await?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let state = state.to_owned();
    let mut req = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            move || CsrfToken::new(state),
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge);
    for s in cfg.scopes {
        req = req.add_scope(Scope::new(s.clone()));
    }
    if let Some(h) = login_hint {
        req = req.add_extra_param("login_hint", h.to_owned());
    }
    let (url, _, nonce) = req.url();
    Ok(Started {
        url: url.to_string(),
        nonce: nonce.secret().clone(),
        pkce_verifier: verifier.secret().clone(),
    })
}

/// Exchanges the code, verifies the ID token and returns what the IdP asserts.
pub async fn finish(
    cache: &MetadataCache,
    http: &Http,
    cfg: &RpConfig<'_>,
    code: &str,
    nonce: &str,
    pkce_verifier: &str,
) -> Result<Assertion, RpError> {
    let client = cfg.client(cache, http, false).await?;
    let resp = client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .map_err(|e| RpError::Config(e.to_string()))?
        .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
        .request_async(http)
        .await
        .map_err(|e| RpError::Upstream(format!("token request failed: {}", error_chain(&e))))?;
    let raw = resp
        .id_token()
        .ok_or_else(|| RpError::Token("the token response has no id_token".into()))?
        .to_string();
    let id_token: RawIdToken = raw
        .parse()
        .map_err(|e: serde_json::Error| RpError::Token(format!("malformed ID token: {e}")))?;
    let nonce = Nonce::new(nonce.to_owned());
    let verify = |client: &RpClient| {
        let verifier = client.id_token_verifier().set_allowed_algs(ALLOWED_ALGS);
        id_token
            .claims(&verifier, &nonce)
            .map(|c| serde_json::to_value(c).unwrap_or(Value::Null))
    };
    let claims = match verify(&client) {
        Ok(c) => c,
        // The IdP rotated its keys since its JWKS was cached: refetch once, then judge.
        Err(ClaimsVerificationError::SignatureVerification(
            SignatureVerificationError::NoMatchingKey,
        )) => {
            let fresh = cfg.client(cache, http, true).await?;
            verify(&fresh).map_err(|e| RpError::Token(error_chain(&e)))?
        }
        Err(e) => return Err(RpError::Token(error_chain(&e))),
    };
    let mut claims: Map<String, Value> = match claims {
        Value::Object(m) => m,
        _ => return Err(RpError::Token("ID token claims are not an object".into())),
    };
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .ok_or_else(|| RpError::Token("ID token has no sub".into()))?
        .to_owned();
    // Claims only in userinfo (the default of many IdPs for the code flow).
    if !claims.contains_key("email")
        && let Ok(req) = client.user_info(resp.access_token().clone(), None)
    {
        let info: Result<openidconnect::UserInfoClaims<AllClaims, CoreGenderClaim>, _> =
            req.request_async(http).await;
        match info {
            Ok(info) => {
                if info.subject().as_str() != subject {
                    return Err(RpError::Token("userinfo is about another subject".into()));
                }
                if let Ok(Value::Object(extra)) = serde_json::to_value(&info) {
                    for (k, v) in extra {
                        claims.entry(k).or_insert(v);
                    }
                }
            }
            Err(e) => {
                return Err(RpError::Upstream(format!(
                    "userinfo request failed: {}",
                    error_chain(&e)
                )));
            }
        }
    }
    let email_verified = match claims.get("email_verified") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    };
    Ok(Assertion {
        subject,
        claims,
        email_verified,
    })
}
