//! Hostile ID tokens from an IdP connection: a scripted OpenID provider (here, in the test,
//! so it can sign anything) answers Roster's login with a forged or broken ID token per case,
//! and the login must stop at Roster's "rejected" page. A well-signed control case proves
//! the harness logs in when nothing is wrong.

use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use openidconnect::core::{CoreHmacKey, CoreJwsSigningAlgorithm, CoreRsaPrivateSigningKey};
use openidconnect::{JsonWebKeyId, PrivateSigningKey};
use rsa::pkcs1::{EncodeRsaPrivateKey, LineEnding};
use rsa::pkcs8::EncodePublicKey;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::common::TestApp;
use crate::sso_oidc::{Browser, Client, Landing, login_url, oidc_org_with_issuer};

const KID: &str = "k1";
const CLIENT_SECRET: &str = "roster-secret";

struct Fake {
    issuer: String,
    case: Mutex<String>,
    nonce: Mutex<Option<String>>,
    signer: CoreRsaPrivateSigningKey,
    /// Another key, published nowhere, under the same kid.
    impostor: CoreRsaPrivateSigningKey,
    public_pem: String,
}

fn rsa_signer() -> (CoreRsaPrivateSigningKey, String) {
    let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
    let pem = key.to_pkcs1_pem(LineEnding::LF).unwrap().to_string();
    let public_pem = key
        .to_public_key()
        .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
        .unwrap();
    (
        CoreRsaPrivateSigningKey::from_pem(&pem, Some(JsonWebKeyId::new(KID.into()))).unwrap(),
        public_pem,
    )
}

fn rs256_sign(k: &CoreRsaPrivateSigningKey, m: &[u8]) -> Vec<u8> {
    k.sign(&CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256, m)
        .unwrap()
}

fn jwt(header: &Value, claims: &Value, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> String {
    let input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let sig = sign(input.as_bytes());
    format!("{input}.{}", B64.encode(sig))
}

impl Fake {
    fn id_token(&self, client_id: &str) -> String {
        let case = self.case.lock().unwrap().clone();
        let nonce = self.nonce.lock().unwrap().clone().unwrap_or_default();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut claims = json!({
            "iss": self.issuer, "sub": "subject-1", "aud": [client_id],
            "exp": now + 300, "iat": now, "nonce": nonce,
            "email": "victim@forge.test", "email_verified": true,
        });
        match case.as_str() {
            "wrong_aud" => claims["aud"] = json!(["another-client"]),
            "extra_aud_without_azp" => claims["aud"] = json!([client_id, "another-client"]),
            "wrong_iss" => claims["iss"] = json!("https://evil.example"),
            "expired" => {
                claims["exp"] = json!(now - 600);
                claims["iat"] = json!(now - 900);
            }
            "wrong_nonce" => claims["nonce"] = json!("not-the-nonce"),
            _ => {}
        }
        let rs256 = json!({"alg": "RS256", "kid": KID, "typ": "JWT"});
        let hmac = |secret: Vec<u8>| {
            move |m: &[u8]| {
                CoreHmacKey::new(secret)
                    .sign(&CoreJwsSigningAlgorithm::HmacSha256, m)
                    .unwrap()
            }
        };
        match case.as_str() {
            "alg_none" => jwt(&json!({"alg": "none", "typ": "JWT"}), &claims, |_| {
                Vec::new()
            }),
            "hs256_with_public_key" => jwt(
                &json!({"alg": "HS256", "kid": KID, "typ": "JWT"}),
                &claims,
                hmac(self.public_pem.clone().into_bytes()),
            ),
            "hs256_with_client_secret" => jwt(
                &json!({"alg": "HS256", "typ": "JWT"}),
                &claims,
                hmac(CLIENT_SECRET.as_bytes().to_vec()),
            ),
            "signed_by_another_key" => jwt(&rs256, &claims, |m| rs256_sign(&self.impostor, m)),
            "tampered" => {
                let good = jwt(&rs256, &claims, |m| rs256_sign(&self.signer, m));
                let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
                let mut c = claims.clone();
                c["email"] = json!("admin@forge.test");
                parts[1] = B64.encode(c.to_string());
                parts.join(".")
            }
            _ => jwt(&rs256, &claims, |m| rs256_sign(&self.signer, m)),
        }
    }
}

async fn discovery(State(f): State<Arc<Fake>>) -> impl IntoResponse {
    let i = &f.issuer;
    axum::Json(json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/auth"),
        "token_endpoint": format!("{i}/token"),
        "jwks_uri": format!("{i}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
}

async fn authorize(
    State(f): State<Arc<Fake>>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> impl IntoResponse {
    *f.nonce.lock().unwrap() = q.get("nonce").cloned();
    let mut url = url::Url::parse(&q["redirect_uri"]).unwrap();
    url.query_pairs_mut()
        .append_pair("code", "fake-code")
        .append_pair("state", &q["state"]);
    Redirect::to(url.as_str())
}

async fn token(State(f): State<Arc<Fake>>) -> impl IntoResponse {
    axum::Json(json!({
        "access_token": "fake-access-token",
        "token_type": "Bearer",
        "expires_in": 300,
        "id_token": f.id_token("roster"),
    }))
}

async fn jwks(State(f): State<Arc<Fake>>) -> impl IntoResponse {
    axum::Json(json!({"keys": [f.signer.as_verification_key()]}))
}

async fn start_fake() -> Arc<Fake> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let (signer, public_pem) = rsa_signer();
    let (impostor, _) = rsa_signer();
    let fake = Arc::new(Fake {
        issuer,
        case: Mutex::new("valid".into()),
        nonce: Mutex::new(None),
        signer,
        impostor,
        public_pem,
    });
    let router = axum::Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/auth", get(authorize))
        .route("/token", post(token))
        .route("/jwks", get(jwks))
        .with_state(fake.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    fake
}

async fn forged_id_tokens_are_rejected(app: &TestApp) {
    let fake = start_fake().await;
    oidc_org_with_issuer(app, &fake.issuer, "forge", |_| {}).await;
    let client = Client::register(app).await;
    let attempt = |case: &'static str| {
        let fake = fake.clone();
        let client = &client;
        async move {
            *fake.case.lock().unwrap() = case.to_owned();
            let (url, _) = login_url(app, client, "forge", "victim");
            Browser::new().follow(&url).await
        }
    };
    // Control: a well-formed token logs in.
    match attempt("valid").await {
        Landing::App(url) => assert!(url.query().unwrap_or_default().contains("code=")),
        other => panic!("a valid ID token was refused: {other:?}"),
    }
    for case in [
        "alg_none",
        "hs256_with_public_key",
        "hs256_with_client_secret",
        "signed_by_another_key",
        "tampered",
        "wrong_aud",
        "extra_aud_without_azp",
        "wrong_iss",
        "expired",
        "wrong_nonce",
    ] {
        match attempt(case).await {
            Landing::Page(status, body) => {
                assert_eq!(status, 400, "{case}: {body}");
                assert!(body.contains("ID token was rejected"), "{case}: {body}");
            }
            Landing::App(url) => panic!("{case}: a forged ID token logged in: {url}"),
        }
    }
}

backend_tests!(forged_id_tokens_are_rejected);
