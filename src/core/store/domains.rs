//! Email domains and their verification.

use crate::core::domains::Domain;
use crate::core::error::CoreResult;
use crate::core::events::EventDraft;
use crate::core::model::*;

/// Email domains an organization claims, and the DNS proof that makes a claim verified.
pub trait DomainStore: Send + Sync + 'static {
    /// Adds a pending claim of `domain` (normalized) with its challenge; `Uniqueness` when
    /// this organization claimed it already.
    async fn add_domain(
        &self,
        org: &Org,
        domain: &str,
        challenge: &str,
        actor: &Actor,
    ) -> CoreResult<()>;
    /// Claimed domains (every state), of one organization or all.
    async fn list_domains(&self, org: Option<&OrgId>) -> CoreResult<Vec<Domain>>;
    /// The organization holding `domain` verified.
    async fn org_by_domain(&self, domain: &str) -> CoreResult<Option<Org>>;
    /// The organization's verified domains.
    async fn verified_domains(&self, org: &OrgId) -> CoreResult<Vec<String>>;
    /// Marks a pending claim verified (`by`: dns or operator) with its event; `Uniqueness`
    /// when another organization holds the domain verified.
    async fn mark_domain_verified(
        &self,
        org: &Org,
        domain: &str,
        by: &str,
        actor: &Actor,
        event: EventDraft,
    ) -> CoreResult<()>;
    /// Records a DNS check of a pending claim and why it failed.
    /// Deletes the organization's claim of `domain` (pending or verified) with `event`;
    /// false when it had none.
    async fn remove_domain(
        &self,
        org: &Org,
        domain: &str,
        actor: &Actor,
        event: EventDraft,
    ) -> CoreResult<bool>;
    async fn record_domain_check(
        &self,
        org: &Org,
        domain: &str,
        error: Option<&str>,
    ) -> CoreResult<()>;
}
