//! Secrets at rest: the master key that encrypts upstream client secrets and private keys,
//! random bearer values, and hashing of the ones Roster only needs to recognise.
//!
//! Encryption is XChaCha20-Poly1305 (random 192-bit nonce per value), so a stored secret is
//! `v1.<nonce>.<ciphertext>` in URL-safe base64; the associated data names what the value is
//! (`connection:<id>`, `signing-key:<kid>`), so a ciphertext moved to another row fails to open.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

use super::error::{CoreError, CoreResult};

/// 32 random bytes, URL-safe base64 without padding, behind a prefix that says what it is.
pub fn random_token(prefix: &str) -> CoreResult<String> {
    let mut buf = [0u8; 32];
    fill_random(&mut buf)?;
    Ok(format!("{prefix}{}", B64.encode(buf)))
}

pub fn fill_random(buf: &mut [u8]) -> CoreResult<()> {
    getrandom::fill(buf).map_err(|e| CoreError::Internal(format!("no randomness: {e}")))
}

/// SHA-256 of a high-entropy secret, hex. Tokens carry 256 random bits, so a fast hash is
/// enough (no password stretching); lookups by hash need no constant-time comparison.
pub fn hash_secret(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

pub fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

/// Constant-time equality of two secrets (or their hashes).
pub fn secrets_equal(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The key that encrypts secrets stored in the database. Never logged (no `Debug` output of
/// its bytes), never stored in the database: only its check value is.
#[derive(Clone)]
pub struct MasterKey {
    cipher: XChaCha20Poly1305,
    check: String,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", self.check)
    }
}

/// Name of the key file generated in the data directory when no key is configured.
pub const MASTER_KEY_FILE: &str = "master.key";

impl MasterKey {
    /// A key from its base64 text (standard or URL-safe alphabet) holding 32 bytes.
    pub fn from_base64(text: &str) -> CoreResult<Self> {
        let text = text.trim();
        let bytes = B64
            .decode(text.trim_end_matches('='))
            .or_else(|_| base64::engine::general_purpose::STANDARD.decode(text))
            .map_err(|_| CoreError::InvalidValue("the master key is not base64".into()))?;
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            CoreError::InvalidValue(format!(
                "the master key must be 32 bytes of base64, got {} bytes",
                bytes.len()
            ))
        })?;
        Ok(Self::from_bytes(&key))
    }

    fn from_bytes(key: &[u8; 32]) -> Self {
        let mut h = Sha256::new();
        h.update(b"roster master key check v1\0");
        h.update(key);
        MasterKey {
            cipher: XChaCha20Poly1305::new(key.into()),
            check: hex(&h.finalize()[..8]),
        }
    }

    /// The configured key (`ROSTER_MASTER_KEY`), else the key file in `data_dir`, created with
    /// a fresh random key (mode 0600) on first use: the development default.
    pub fn load_or_create(configured: Option<&str>, data_dir: &Path) -> CoreResult<(Self, bool)> {
        if let Some(text) = configured {
            return Ok((Self::from_base64(text)?, false));
        }
        let file = data_dir.join(MASTER_KEY_FILE);
        match std::fs::read_to_string(&file) {
            Ok(text) => return Ok((Self::from_base64(&text)?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(CoreError::Internal(format!(
                    "cannot read {}: {e}",
                    file.display()
                )));
            }
        }
        std::fs::create_dir_all(data_dir).map_err(|e| {
            CoreError::Internal(format!("cannot create {}: {e}", data_dir.display()))
        })?;
        let mut key = [0u8; 32];
        fill_random(&mut key)?;
        write_new_private_file(&file, B64.encode(key).as_bytes())?;
        // Another process may have won the race to create it: use what is on disk.
        let text = std::fs::read_to_string(&file)
            .map_err(|e| CoreError::Internal(format!("cannot read {}: {e}", file.display())))?;
        Ok((Self::from_base64(&text)?, true))
    }

    /// A short value that identifies the key without revealing it; stored in the database so
    /// a node started with another key refuses to run.
    pub fn check_value(&self) -> &str {
        &self.check
    }

    pub fn encrypt(&self, purpose: &str, plaintext: &[u8]) -> CoreResult<String> {
        let mut nonce = [0u8; 24];
        fill_random(&mut nonce)?;
        let ct = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: purpose.as_bytes(),
                },
            )
            .map_err(|_| CoreError::Internal("encryption failed".into()))?;
        Ok(format!("v1.{}.{}", B64.encode(nonce), B64.encode(ct)))
    }

    pub fn decrypt(&self, purpose: &str, stored: &str) -> CoreResult<Vec<u8>> {
        let bad = || {
            CoreError::Internal(format!(
                "a stored secret ({purpose}) cannot be decrypted with this master key"
            ))
        };
        let mut parts = stored.split('.');
        let (Some("v1"), Some(n), Some(c), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let nonce = B64.decode(n).map_err(|_| bad())?;
        let ct = B64.decode(c).map_err(|_| bad())?;
        if nonce.len() != 24 {
            return Err(bad());
        }
        self.cipher
            .decrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &ct,
                    aad: purpose.as_bytes(),
                },
            )
            .map_err(|_| bad())
    }

    pub fn decrypt_string(&self, purpose: &str, stored: &str) -> CoreResult<String> {
        String::from_utf8(self.decrypt(purpose, stored)?)
            .map_err(|_| CoreError::Internal(format!("stored secret ({purpose}) is not text")))
    }
}

/// Creates `path` with owner-only permissions; fails if it exists.
fn write_new_private_file(path: &Path, content: &[u8]) -> CoreResult<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(path) {
        Ok(mut f) => f
            .write_all(content)
            .and_then(|()| f.sync_all())
            .map_err(|e| CoreError::Internal(format!("cannot write {}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(CoreError::Internal(format!(
            "cannot create {}: {e}",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_purpose_binding() {
        let k = MasterKey::from_bytes(&[7u8; 32]);
        let ct = k.encrypt("connection:a", b"s3cret").unwrap();
        assert!(!ct.contains("s3cret"));
        assert_eq!(k.decrypt("connection:a", &ct).unwrap(), b"s3cret");
        assert!(k.decrypt("connection:b", &ct).is_err());
        let other = MasterKey::from_bytes(&[8u8; 32]);
        assert!(other.decrypt("connection:a", &ct).is_err());
        assert_ne!(k.check_value(), other.check_value());
        // Fresh nonce per value.
        assert_ne!(ct, k.encrypt("connection:a", b"s3cret").unwrap());
    }

    #[test]
    fn key_text_must_be_32_bytes() {
        assert!(MasterKey::from_base64("c2hvcnQ").is_err());
        let text = B64.encode([1u8; 32]);
        assert!(MasterKey::from_base64(&text).is_ok());
    }

    #[test]
    fn key_file_is_created_once() {
        let dir = std::env::temp_dir().join(format!("roster-mk-{}", uuid::Uuid::new_v4()));
        let (a, created) = MasterKey::load_or_create(None, &dir).unwrap();
        assert!(created);
        let (b, created) = MasterKey::load_or_create(None, &dir).unwrap();
        assert!(!created);
        assert_eq!(a.check_value(), b.check_value());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(MASTER_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
