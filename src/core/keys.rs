//! The keys Roster signs ID tokens with: RSA-2048 (RS256, the algorithm every OpenID
//! relying party supports), private halves encrypted with the master key, stored in the
//! database so every node signs with the same key and `roster keys rotate` reaches them all.
//! The newest unretired key signs; retired keys stay published for a grace period so tokens
//! they signed still verify.

use openidconnect::core::{CoreJsonWebKey, CoreRsaPrivateSigningKey};
use openidconnect::{JsonWebKeyId, PrivateSigningKey};
use rsa::pkcs1::{EncodeRsaPrivateKey, LineEnding};
use time::{Duration, OffsetDateTime};

use super::error::{CoreError, CoreResult};
use super::format_time;
use super::secrets::{MasterKey, random_token};
use super::store::prelude::*;

/// How long a retired key stays in the JWKS (longer than any ID token lives).
pub const RETIRED_GRACE: Duration = Duration::days(2);

#[derive(Debug, Clone)]
pub struct SigningKeyRecord {
    pub kid: String,
    pub alg: String,
    pub private_enc: String,
    pub public_jwk: serde_json::Value,
    pub created_at: String,
    pub retired_at: Option<String>,
}

fn purpose(kid: &str) -> String {
    format!("signing-key:{kid}")
}

/// Generates a key, stores it as the signing key and retires the previous one.
pub async fn rotate<S: Store>(store: &S, master: &MasterKey) -> CoreResult<SigningKeyRecord> {
    let kid = random_token("k")?.chars().take(17).collect::<String>();
    let pem = tokio::task::spawn_blocking(|| {
        let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048)
            .map_err(|e| CoreError::Internal(format!("RSA key generation failed: {e}")))?;
        key.to_pkcs1_pem(LineEnding::LF)
            .map(|p| p.to_string())
            .map_err(|e| CoreError::Internal(format!("RSA key encoding failed: {e}")))
    })
    .await
    .map_err(|e| CoreError::Internal(format!("key generation task failed: {e}")))??;
    let signer = CoreRsaPrivateSigningKey::from_pem(&pem, Some(JsonWebKeyId::new(kid.clone())))
        .map_err(CoreError::Internal)?;
    let jwk: CoreJsonWebKey = signer.as_verification_key();
    let public_jwk = serde_json::to_value(&jwk)
        .map_err(|e| CoreError::Internal(format!("cannot encode JWK: {e}")))?;
    let rec = SigningKeyRecord {
        private_enc: master.encrypt(&purpose(&kid), pem.as_bytes())?,
        kid,
        alg: "RS256".into(),
        public_jwk,
        created_at: super::now(),
        retired_at: None,
    };
    store.insert_signing_key(&rec).await?;
    Ok(rec)
}

/// The keys to publish: the current one and those retired within the grace period.
pub fn published(keys: &[SigningKeyRecord]) -> Vec<&SigningKeyRecord> {
    let cutoff = format_time(OffsetDateTime::now_utc() - RETIRED_GRACE);
    keys.iter()
        .filter(|k| k.retired_at.as_deref().is_none_or(|r| r > cutoff.as_str()))
        .collect()
}

/// Every signing key, newest first, after creating the first one if there is no current key.
pub async fn ensure_current<S: Store>(
    store: &S,
    master: &MasterKey,
) -> CoreResult<Vec<SigningKeyRecord>> {
    let keys = store.signing_keys().await?;
    if keys.iter().any(|k| k.retired_at.is_none()) {
        return Ok(keys);
    }
    rotate(store, master).await?;
    store.signing_keys().await
}

/// The signing key: the newest unretired one (created on first use).
pub async fn current<S: Store>(
    store: &S,
    master: &MasterKey,
) -> CoreResult<(SigningKeyRecord, CoreRsaPrivateSigningKey)> {
    let rec = ensure_current(store, master)
        .await?
        .into_iter()
        .find(|k| k.retired_at.is_none())
        .ok_or_else(|| CoreError::Internal("no current signing key".into()))?;
    let pem = master.decrypt_string(&purpose(&rec.kid), &rec.private_enc)?;
    let signer = CoreRsaPrivateSigningKey::from_pem(&pem, Some(JsonWebKeyId::new(rec.kid.clone())))
        .map_err(CoreError::Internal)?;
    Ok((rec, signer))
}
