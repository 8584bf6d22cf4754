//! What Roster vouches for, in one place: which users a connection may assert, and when the
//! email Roster signs is `email_verified` (docs/trust.md states the same rules).
//!
//! - A connection **serves** the organization's verified domains, narrowed to its own
//!   `domains` list when it has one ([`serves`]). It may match, link or create only users
//!   whose email is in a domain it serves (`core::jit`).
//! - Roster's `email_verified` is true only when the user's email is in a verified domain of
//!   the user's organization **and** the address came from the organization's directory, or
//!   from a connection that serves that domain whose IdP said it was verified
//!   ([`email_claim`]). Otherwise the email is still stated, with `email_verified: false`.

use super::error::CoreResult;
use super::model::{Scope, User};
use super::sso::{Connection, email_domain, user_email_key};
use super::store::prelude::*;

/// Whether `conn` may assert users of `domain`, given its organization's verified domains.
pub fn serves(conn: &Connection, verified_domains: &[String], domain: &str) -> bool {
    !conn.disabled
        && verified_domains.iter().any(|d| d == domain)
        && (conn.config.domains.is_empty() || conn.config.domains.iter().any(|d| d == domain))
}

/// The email Roster states about a user, and whether it vouches for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailClaim {
    pub email: String,
    pub verified: bool,
}

/// The user's email claim (`None` when the user has no email): see the module's rule.
pub async fn email_claim<S: Store>(
    store: &S,
    scope: &Scope,
    user: &User,
) -> CoreResult<Option<EmailClaim>> {
    let Some(email) = user_email_key(&user.attrs) else {
        return Ok(None);
    };
    let verified = email_is_vouched(store, scope, user, &email).await?;
    Ok(Some(EmailClaim { email, verified }))
}

async fn email_is_vouched<S: Store>(
    store: &S,
    scope: &Scope,
    user: &User,
    email: &str,
) -> CoreResult<bool> {
    let domain = email_domain(email);
    let verified_domains = store.verified_domains(&scope.org).await?;
    if !verified_domains.iter().any(|d| d == domain) {
        return Ok(false);
    }
    // The organization's directory manages the record: its addresses are the
    // organization's word (and logins only ever write addresses a serving connection
    // vouched for).
    if user.last_directory_sync_at.is_some() {
        return Ok(true);
    }
    for identity in store.identities_of(scope, &user.id).await? {
        if identity.verified_email.as_deref() != Some(email) {
            continue;
        }
        if let Some(conn) = store.connection(&identity.connection_id).await?
            && conn.org_id == scope.org
            && serves(&conn, &verified_domains, domain)
        {
            return Ok(true);
        }
    }
    Ok(false)
}
