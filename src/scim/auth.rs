//! Bearer-token authentication for SCIM, with a short-lived cache of verified tokens.
//!
//! Every SCIM request presents its directory's token; looking it up is a database round trip
//! that would otherwise double the cost of a `GET /Users/{id}`. Verified grants are kept for
//! [`TTL`], so a token revoked with `roster directory token --revoke` stops working within
//! that time on every node. Only tokens that verified are cached (unknown tokens cannot fill
//! the cache), keyed by their SHA-256, never by the token itself.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::core::error::CoreResult;
use crate::core::model::TokenGrant;
use crate::core::orgs::hash_token;
use crate::core::store::prelude::*;

pub const TTL: Duration = Duration::from_secs(1);
const MAX_ENTRIES: usize = 10_000;

#[derive(Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<String, (TokenGrant, Instant)>>,
}

impl TokenCache {
    /// The grant of a presented token, from the cache or the store.
    pub async fn grant<S: Store>(&self, store: &S, token: &str) -> CoreResult<Option<TokenGrant>> {
        let hash = hash_token(token);
        let now = Instant::now();
        if let Ok(map) = self.entries.lock()
            && let Some((g, at)) = map.get(&hash)
            && now.duration_since(*at) < TTL
        {
            return Ok(Some(g.clone()));
        }
        let grant = store.token_grant(&hash).await?;
        if let Ok(mut map) = self.entries.lock() {
            match &grant {
                Some(g) => {
                    if map.len() >= MAX_ENTRIES {
                        map.retain(|_, (_, at)| now.duration_since(*at) < TTL);
                        if map.len() >= MAX_ENTRIES {
                            map.clear();
                        }
                    }
                    map.insert(hash, (g.clone(), now));
                }
                None => {
                    map.remove(&hash);
                }
            }
        }
        Ok(grant)
    }
}
