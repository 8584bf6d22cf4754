//! Just-in-time provisioning: what a verified login does to the roster.
//!
//! The user is found by the IdP subject already linked to the connection, then by
//! `externalId`, then by normalized email; then created, updated or refused per the
//! connection's policy. Every successful login links the IdP subject (so the next login finds
//! the user directly) and records `last_login_at`.
//!
//! What a connection may assert is decided in `core::trust`: it matches, links, creates and
//! updates only users whose email is in a domain it serves; an email the IdP does not vouch
//! for (or outside those domains) never matches, links, creates or replaces a stored one;
//! a user linked to one subject of a connection is not linked to another of the same.

use serde_json::{Map, Value, json};

use super::error::{CoreError, CoreResult};
use super::model::{Actor, Org, Provenance, Scope, User};
use super::resources;
use super::sso::{
    Assertion, Connection, JitMode, Profile, Protocol, email_domain, normalize_email,
    user_email_key,
};
use super::store::prelude::*;
use super::trust;

/// Why a verified login may not proceed; each is shown to the user as a clear page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("this account is deactivated")]
    Deactivated,
    #[error(
        "your organization provisions accounts through its directory, and this account was not provisioned"
    )]
    NotProvisioned,
    #[error("there is no account for you, and this organization does not create accounts at login")]
    JitDisabled,
    #[error("the identity provider sent no email address")]
    NoEmail,
    #[error("the identity provider did not verify the email address {0}")]
    EmailUnverified(String),
    #[error("more than one account matches this login; an administrator must link it")]
    Ambiguous,
    #[error("this sign-in connection does not serve accounts of the domain {0}")]
    NotServed(String),
    #[error(
        "this account is linked to another identity at your identity provider; an administrator must unlink it"
    )]
    BoundElsewhere,
}

/// The outcome of a login.
#[derive(Debug, Clone)]
pub enum Outcome {
    Created(User),
    Updated(User),
    Linked(User),
}

impl Outcome {
    pub fn user(&self) -> &User {
        match self {
            Outcome::Created(u) | Outcome::Updated(u) | Outcome::Linked(u) => u,
        }
    }
}

/// How the user was found.
enum Found {
    Identity(User),
    Matched(User),
    Nobody,
}

fn one(mut users: Vec<User>) -> Result<Option<User>, Refusal> {
    match users.len() {
        0 => Ok(None),
        1 => Ok(users.pop()),
        _ => Err(Refusal::Ambiguous),
    }
}

/// What a connection may do in its organization: the domains it serves (`core::trust`).
struct Reach<'a> {
    conn: &'a Connection,
    verified_domains: Vec<String>,
}

impl Reach<'_> {
    fn serves(&self, domain: &str) -> bool {
        trust::serves(self.conn, &self.verified_domains, domain)
    }

    /// Whether this connection may sign in as `user`: the user's email is in a domain it
    /// serves.
    fn may_assert(&self, user: &User) -> Result<(), Refusal> {
        match user_email_key(&user.attrs) {
            Some(e) if self.serves(email_domain(&e)) => Ok(()),
            Some(e) => Err(Refusal::NotServed(email_domain(&e).to_owned())),
            None => Err(Refusal::NotServed("(no email)".to_owned())),
        }
    }
}

/// A user found by externalId or email may be linked to this login only if the connection
/// serves the user's domain and the user is not linked to another subject of the same
/// connection (an identity stays bound to the subject it was linked to).
async fn matched<S: Store>(
    store: &S,
    scope: &Scope,
    reach: &Reach<'_>,
    subject: &str,
    user: User,
) -> CoreResult<Result<Found, Refusal>> {
    if let Err(r) = reach.may_assert(&user) {
        return Ok(Err(r));
    }
    let bound_elsewhere = store
        .identities_of(scope, &user.id)
        .await?
        .iter()
        .any(|i| i.connection_id == reach.conn.id && i.subject != subject);
    if bound_elsewhere {
        return Ok(Err(Refusal::BoundElsewhere));
    }
    Ok(Ok(Found::Matched(user)))
}

async fn find<S: Store>(
    store: &S,
    scope: &Scope,
    reach: &Reach<'_>,
    a: &Assertion,
    p: &Profile,
    email: Option<&str>,
) -> CoreResult<Result<Found, Refusal>> {
    if let Some(u) = store
        .identity_user(scope, &reach.conn.id, &a.subject)
        .await?
    {
        return Ok(reach.may_assert(&u).map(|()| Found::Identity(u)));
    }
    if let Some(ext) = &p.external_id {
        match one(store.users_by_external_id(scope, ext).await?) {
            Ok(Some(u)) => return matched(store, scope, reach, &a.subject, u).await,
            Ok(None) => {}
            Err(r) => return Ok(Err(r)),
        }
    }
    if let Some(email) = email {
        match one(store.users_by_email(scope, email).await?) {
            Ok(Some(u)) => return matched(store, scope, reach, &a.subject, u).await,
            Ok(None) => {}
            Err(r) => return Ok(Err(r)),
        }
    }
    Ok(Ok(Found::Nobody))
}

/// The SCIM attributes a login's profile sets.
fn profile_attrs(p: &Profile, email: &str) -> Map<String, Value> {
    let mut name = Map::new();
    if let Some(g) = &p.given_name {
        name.insert("givenName".into(), json!(g));
    }
    if let Some(f) = &p.family_name {
        name.insert("familyName".into(), json!(f));
    }
    let display = p.display_name.clone().or_else(|| {
        let parts: Vec<&str> = [p.given_name.as_deref(), p.family_name.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    });
    if let Some(d) = &display {
        name.insert("formatted".into(), json!(d));
    }
    let mut m = Map::new();
    m.insert("userName".into(), json!(email));
    if !name.is_empty() {
        m.insert("name".into(), Value::Object(name));
    }
    if let Some(d) = display {
        m.insert("displayName".into(), json!(d));
    }
    m.insert(
        "emails".into(),
        json!([{"value": email, "type": "work", "primary": true}]),
    );
    m
}

/// `current` with the login's profile attributes laid over it (userName is kept: it may be
/// what a directory or admin chose). `email` is the address the login may write (vouched
/// for by the IdP, in a domain the connection serves); without one the stored addresses
/// stay as they are.
fn refreshed(current: &Map<String, Value>, p: &Profile, email: Option<&str>) -> Map<String, Value> {
    let mut next = current.clone();
    for (k, v) in profile_attrs(p, email.unwrap_or_default()) {
        match (k.as_str(), v) {
            ("userName" | "emails", _) => {}
            ("name", Value::Object(n)) => {
                let mut name = current
                    .get("name")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                name.extend(n);
                next.insert(k, Value::Object(name));
            }
            (_, v) => {
                next.insert(k, v);
            }
        }
    }
    if let Some(email) = email {
        // Keep the user's other addresses; make the login's address primary.
        let key = normalize_email(email);
        let mut list: Vec<Value> = current
            .get("emails")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|e| {
                e.get("value")
                    .and_then(Value::as_str)
                    .and_then(normalize_email)
                    != key
            })
            .map(|mut e| {
                if let Some(o) = e.as_object_mut() {
                    o.remove("primary");
                }
                e
            })
            .collect();
        list.insert(0, json!({"value": email, "type": "work", "primary": true}));
        next.insert("emails".into(), Value::Array(list));
    }
    next
}

/// Runs JIT for a verified login through `conn` into `org`.
pub async fn login<S: Store>(
    store: &S,
    org: &Org,
    conn: &Connection,
    a: &Assertion,
) -> CoreResult<Result<Outcome, Refusal>> {
    let scope = Scope {
        org: org.id.clone(),
        actor: Actor::Connection {
            connection_id: conn.id.clone(),
        },
    };
    let p = Profile::map(a, &conn.attribute_map());
    let email = p.email.as_deref().and_then(normalize_email);
    let reach = Reach {
        conn,
        verified_domains: store.verified_domains(&org.id).await?,
    };
    // The address this login may use to match, create or write: one the IdP vouches for
    // (or the operator trusts it for), in a domain the connection serves. Any other address
    // could be anyone's, and never replaces, matches or links an account.
    // An OIDC `email_verified` speaks for the `email` claim, not for a UPN or another
    // claim the address was taken from; SAML assertions are the IdP's signed word.
    let vouched = conn.config.trust_unverified_email
        || (a.email_verified
            && (conn.protocol == Protocol::Saml || p.email_from.as_deref() == Some("email")));
    // What the IdP vouched for is the string it sent: an address that only folds (NFKC)
    // into another one is not that other one.
    let exact = p
        .email
        .as_deref()
        .map(|raw| raw.trim().to_lowercase())
        .filter(|raw| email.as_deref() == Some(raw.as_str()));
    let vouched = vouched && exact.is_some();
    let trusted_email = exact.filter(|e| vouched && reach.serves(email_domain(e)));
    // As the IdP wrote it (the stored address keeps its case), when trusted.
    let written_email = trusted_email
        .as_ref()
        .map(|e| p.email.clone().unwrap_or_else(|| e.clone()));
    let policy = &conn.config;
    let directory_rules =
        policy.directory_authoritative && store.org_has_directory(&org.id).await?;

    // Two rounds: a concurrent first login (or SCIM create) can win the race to create.
    for attempt in 0..2 {
        let found = match find(store, &scope, &reach, a, &p, trusted_email.as_deref()).await? {
            Ok(f) => f,
            Err(r) => return Ok(Err(r)),
        };
        let user = match found {
            Found::Identity(u) | Found::Matched(u) => u,
            Found::Nobody => {
                if directory_rules {
                    return Ok(Err(Refusal::NotProvisioned));
                }
                if policy.jit == JitMode::Off {
                    return Ok(Err(Refusal::JitDisabled));
                }
                let Some(email) = email.clone() else {
                    return Ok(Err(Refusal::NoEmail));
                };
                if !vouched {
                    return Ok(Err(Refusal::EmailUnverified(email)));
                }
                let Some(written) = written_email.as_deref() else {
                    return Ok(Err(Refusal::NotServed(email_domain(&email).to_owned())));
                };
                let attrs = profile_attrs(&p, written);
                match resources::create_user(store, &scope, &attrs, Provenance::Jit).await {
                    Ok(u) => {
                        store
                            .record_login(
                                &scope,
                                &u.id,
                                &conn.id,
                                &a.subject,
                                &p.groups,
                                trusted_email.as_deref(),
                            )
                            .await?;
                        return Ok(Ok(Outcome::Created(u)));
                    }
                    Err(CoreError::Uniqueness(_)) if attempt == 0 => continue,
                    Err(e) => return Err(e),
                }
            }
        };
        if !user.active() {
            return Ok(Err(Refusal::Deactivated));
        }
        if directory_rules && user.last_directory_sync_at.is_none() {
            return Ok(Err(Refusal::NotProvisioned));
        }
        let may_update = policy.jit == JitMode::CreateAndUpdate && !directory_rules;
        let outcome = if may_update {
            let next = refreshed(&user.attrs, &p, written_email.as_deref());
            if next == user.attrs {
                Outcome::Linked(user)
            } else {
                match resources::replace_user_attrs(store, &scope, &user.id, next).await {
                    Ok(u) => Outcome::Updated(u),
                    Err(CoreError::Forbidden(_)) => return Ok(Err(Refusal::Deactivated)),
                    Err(e) => return Err(e),
                }
            }
        } else {
            Outcome::Linked(user)
        };
        store
            .record_login(
                &scope,
                &outcome.user().id,
                &conn.id,
                &a.subject,
                &p.groups,
                trusted_email.as_deref(),
            )
            .await?;
        return Ok(Ok(outcome));
    }
    Err(CoreError::Internal(
        "JIT could not settle a concurrent account creation".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_keeps_other_emails_and_user_name() {
        let cur = json!({"userName": "chosen", "name": {"middleName": "Q"},
            "emails": [{"value": "old@x.com", "primary": true}, {"value": "A@x.com"}]});
        let p = Profile {
            given_name: Some("Ann".into()),
            ..Default::default()
        };
        let next = refreshed(cur.as_object().unwrap(), &p, Some("a@x.com"));
        assert_eq!(next["userName"], "chosen");
        assert_eq!(next["name"]["middleName"], "Q");
        assert_eq!(next["name"]["givenName"], "Ann");
        let emails = next["emails"].as_array().unwrap();
        assert_eq!(emails.len(), 2);
        assert_eq!(emails[0]["value"], "a@x.com");
        assert_eq!(emails[0]["primary"], true);
        assert_eq!(emails[1]["value"], "old@x.com");
        assert!(emails[1].get("primary").is_none());
    }
}
