//! Email domains of an organization: claimed, then verified through DNS (or by an operator).
//!
//! A claim is `pending` with a random challenge; the organization publishes the TXT record
//! [`record_name`] = [`record_value`] and Roster looks it up through a real resolver
//! ([`TxtResolver`], in `crate::dns`). Only a `verified` domain routes logins
//! (`domain_hint`, `login_hint`), lets a connection create, match or link users, and counts
//! for `email_verified` (`core::trust`). Several organizations may claim one domain; the
//! store lets at most one hold it verified, and a domain verified by one organization cannot
//! be claimed by another.

use serde::Serialize;

use super::error::{CoreError, CoreResult};
use super::events::{EventDraft, EventKind};
use super::model::{Actor, Org};
use super::secrets::{fill_random, hex};
use super::sso::normalize_domain;
use super::store::prelude::*;

/// Claims of one organization, whatever their state: a setup link cannot grow the table
/// without bound.
pub const MAX_DOMAINS_PER_ORG: usize = 200;

/// Where a claim stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DomainState {
    Pending,
    Verified,
}

impl DomainState {
    pub fn as_str(self) -> &'static str {
        match self {
            DomainState::Pending => "pending",
            DomainState::Verified => "verified",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(DomainState::Pending),
            "verified" => Some(DomainState::Verified),
            _ => None,
        }
    }
}

/// How a domain came to be verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifiedBy {
    /// Roster found the challenge in DNS.
    Dns,
    /// An operator (CLI, an all-organizations admin key) forced it.
    Operator,
}

impl VerifiedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            VerifiedBy::Dns => "dns",
            VerifiedBy::Operator => "operator",
        }
    }
}

/// A claimed domain of an organization.
#[derive(Debug, Clone)]
pub struct Domain {
    pub domain: String,
    pub org_id: super::model::OrgId,
    pub org_slug: String,
    pub created_at: String,
    pub state: DomainState,
    /// The random value the TXT record must carry (not a secret: it is published).
    pub challenge: String,
    pub verified_at: Option<String>,
    /// `dns`, `operator`, or `legacy` (added before domains were verified).
    pub verified_by: Option<String>,
    /// The latest DNS check and, if it failed, why.
    pub checked_at: Option<String>,
    pub check_error: Option<String>,
}

impl Domain {
    pub fn verified(&self) -> bool {
        self.state == DomainState::Verified
    }
    /// The TXT record's name.
    pub fn record_name(&self) -> String {
        record_name(&self.domain)
    }
    /// The TXT record's value.
    pub fn record_value(&self) -> String {
        record_value(&self.challenge)
    }
}

/// The name of the TXT record that proves control of `domain`.
pub fn record_name(domain: &str) -> String {
    format!("_roster-challenge.{domain}")
}

/// The TXT record's value for a challenge.
pub fn record_value(challenge: &str) -> String {
    format!("roster-domain-verification={challenge}")
}

/// Looks up TXT records. The one implementation is `crate::dns::Resolver` (hickory); its
/// upstream is configurable so tests can run a real DNS server on loopback.
pub trait TxtResolver: Send + Sync {
    /// The TXT strings at `name` (each record's character strings joined); an empty list
    /// when the name has no TXT record; `Err` with a reason when the lookup failed.
    fn txt(
        &self,
        name: &str,
    ) -> impl std::future::Future<Output = Result<Vec<String>, String>> + Send;
}

/// Claims `domain` for `org`: a pending claim with a fresh challenge. Refused when another
/// organization holds it verified, or this one already claimed it.
pub async fn claim<S: Store>(
    store: &S,
    org: &Org,
    domain: &str,
    actor: &Actor,
) -> CoreResult<Domain> {
    let d = normalize_domain(domain)?;
    if let Some(owner) = store.org_by_domain(&d).await? {
        return Err(CoreError::Uniqueness(if owner.id == org.id {
            format!("the domain {d} is already verified for this organization")
        } else {
            format!("the domain {d} is verified by another organization")
        }));
    }
    let claimed = store.list_domains(Some(&org.id)).await?;
    if claimed.len() >= MAX_DOMAINS_PER_ORG {
        return Err(CoreError::InvalidValue(format!(
            "an organization has at most {MAX_DOMAINS_PER_ORG} domains"
        )));
    }
    let mut raw = [0u8; 16];
    fill_random(&mut raw)?;
    let challenge = hex(&raw);
    store.add_domain(org, &d, &challenge, actor).await?;
    domain_of(store, org, &d).await
}

/// The organization's claim of `domain`.
pub async fn domain_of<S: Store>(store: &S, org: &Org, domain: &str) -> CoreResult<Domain> {
    let d = normalize_domain(domain)?;
    store
        .list_domains(Some(&org.id))
        .await?
        .into_iter()
        .find(|x| x.domain == d)
        .ok_or_else(|| CoreError::NotFound(format!("domain {d} of this organization")))
}

/// Removes the organization's claim of `domain`, pending or verified: a verified one stops
/// routing logins, letting connections create or link users, and counting for
/// `email_verified` at once; its users stay.
pub async fn remove<S: Store>(
    store: &S,
    org: &Org,
    domain: &str,
    actor: &Actor,
) -> CoreResult<Domain> {
    let d = domain_of(store, org, domain).await?;
    let event = EventDraft::new(
        EventKind::DomainRemoved,
        &d.domain,
        serde_json::json!({"domain": d.domain, "state": d.state.as_str()}),
    );
    if !store.remove_domain(org, &d.domain, actor, event).await? {
        return Err(CoreError::NotFound(format!(
            "domain {} of this organization",
            d.domain
        )));
    }
    Ok(d)
}

/// What a check came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckOutcome {
    /// Verified now (or already).
    Verified,
    /// Still pending: why (no record, wrong value, lookup failed).
    Pending(String),
}

/// Checks a claim against DNS, or (`force`, operators only: the caller checks who may)
/// verifies it without looking. A verified domain stays verified; a pending one becomes
/// verified when one TXT string at [`record_name`] equals [`record_value`] exactly.
pub async fn verify<S: Store, R: TxtResolver>(
    store: &S,
    resolver: &R,
    org: &Org,
    domain: &str,
    force: bool,
    actor: &Actor,
) -> CoreResult<(Domain, CheckOutcome)> {
    let d = domain_of(store, org, domain).await?;
    if d.verified() {
        return Ok((d, CheckOutcome::Verified));
    }
    let by = if force {
        Some(VerifiedBy::Operator)
    } else {
        let expected = d.record_value();
        match resolver.txt(&d.record_name()).await {
            // DNS consoles sometimes store the quotes people type: tolerate one pair.
            Ok(found)
                if found
                    .iter()
                    .any(|t| t.trim().trim_matches('"').trim() == expected) =>
            {
                Some(VerifiedBy::Dns)
            }
            Ok(found) if found.is_empty() => {
                let why = format!("no TXT record at {}", d.record_name());
                store
                    .record_domain_check(org, &d.domain, Some(&why))
                    .await?;
                None
            }
            Ok(_) => {
                let why = format!(
                    "the TXT records at {} do not include {expected}",
                    d.record_name()
                );
                store
                    .record_domain_check(org, &d.domain, Some(&why))
                    .await?;
                None
            }
            Err(e) => {
                let why = format!("DNS lookup of {} failed: {e}", d.record_name());
                store
                    .record_domain_check(org, &d.domain, Some(&why))
                    .await?;
                None
            }
        }
    };
    match by {
        Some(by) => {
            store
                .mark_domain_verified(
                    org,
                    &d.domain,
                    by.as_str(),
                    actor,
                    EventDraft::new(
                        EventKind::DomainVerified,
                        &d.domain,
                        serde_json::json!({"domain": d.domain, "verified_by": by.as_str()}),
                    ),
                )
                .await?;
            Ok((
                domain_of(store, org, &d.domain).await?,
                CheckOutcome::Verified,
            ))
        }
        None => {
            let d = domain_of(store, org, &d.domain).await?;
            let why = d
                .check_error
                .clone()
                .unwrap_or_else(|| "not verified".to_owned());
            Ok((d, CheckOutcome::Pending(why)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_names_and_values() {
        assert_eq!(record_name("acme.test"), "_roster-challenge.acme.test");
        assert_eq!(record_value("ab12"), "roster-domain-verification=ab12");
    }
}
