//! Organizations, directories and directory tokens.

use super::error::{CoreError, CoreResult};
use super::model::{Actor, Directory, Org, TokenInfo};
use super::secrets;
use super::store::prelude::*;

/// An organization slug: 1–63 of `a-z 0-9 -`, not starting or ending with `-`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgSlug(String);

impl OrgSlug {
    pub fn parse(s: &str) -> CoreResult<Self> {
        let ok = !s.is_empty()
            && s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-');
        if ok {
            Ok(OrgSlug(s.to_owned()))
        } else {
            Err(CoreError::InvalidValue(format!(
                "invalid organization slug \"{s}\": use 1-63 of a-z, 0-9 and '-'"
            )))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The SHA-256 of a bearer token, hex: what the store keeps and looks tokens up by.
pub fn hash_token(token: &str) -> String {
    secrets::hash_secret(token)
}

fn new_token() -> CoreResult<String> {
    secrets::random_token("rst_")
}

pub async fn create_org<S: Store>(
    store: &S,
    slug: &OrgSlug,
    name: Option<&str>,
    actor: &Actor,
) -> CoreResult<Org> {
    store
        .create_org(slug.as_str(), name.unwrap_or(slug.as_str()), actor)
        .await
}

pub async fn org<S: Store>(store: &S, slug: &str) -> CoreResult<Org> {
    store
        .org_by_slug(slug)
        .await?
        .ok_or_else(|| CoreError::NotFound(format!("organization \"{slug}\"")))
}

/// Creates a directory with its first token; the token is returned once and stored hashed.
pub async fn create_directory<S: Store>(
    store: &S,
    org: &Org,
    name: Option<&str>,
    read_only: bool,
    actor: &Actor,
) -> CoreResult<(Directory, TokenInfo, String)> {
    let dir = store
        .create_directory(org, name.unwrap_or("SCIM directory"), actor)
        .await?;
    let (info, token) = issue_token(store, &dir, read_only, actor).await?;
    Ok((dir, info, token))
}

pub async fn issue_token<S: Store>(
    store: &S,
    dir: &Directory,
    read_only: bool,
    actor: &Actor,
) -> CoreResult<(TokenInfo, String)> {
    let token = new_token()?;
    let info = store
        .add_token(dir, &hash_token(&token), read_only, actor)
        .await?;
    Ok((info, token))
}

pub async fn directory<S: Store>(store: &S, id: &str) -> CoreResult<Directory> {
    store
        .directory(id)
        .await?
        .ok_or_else(|| CoreError::NotFound(format!("directory \"{id}\"")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn token_hash_is_hex_sha256() {
        assert_eq!(
            super::hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
