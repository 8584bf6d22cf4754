//! The audit log.

use crate::core::error::CoreResult;

/// The hash-chained audit log of what operators and IdPs did.
pub trait AuditStore: Send + Sync + 'static {
    /// Audit chains, with their anchors (set by retention).
    async fn audit_chains(&self) -> CoreResult<Vec<(String, Option<crate::core::audit::Anchor>)>>;
    /// A chain's entries in order, from `since` (a time) if given.
    async fn audit_entries(
        &self,
        chain: &str,
        since: Option<&str>,
    ) -> CoreResult<Vec<crate::core::audit::StoredEntry>>;
    /// A page of an audit chain in order: entries after `after_seq`, at or after `since`.
    async fn audit_page(
        &self,
        chain: &str,
        since: Option<&str>,
        after_seq: i64,
        limit: i64,
    ) -> CoreResult<Vec<crate::core::audit::StoredEntry>>;
    /// Deletes a chain's entries older than `before`, anchoring the chain at the last one.
    async fn prune_audit(&self, chain: &str, before: &str) -> CoreResult<u64>;
}
