//! The event feed.

use crate::core::error::CoreResult;
use crate::core::model::*;

/// The event feed: every change, in commit order, per organization.
pub trait EventStore: Send + Sync + 'static {
    /// Events after `after` in cursor order, of one organization or all.
    async fn events_after(
        &self,
        after: i64,
        org: Option<&OrgId>,
        limit: i64,
    ) -> CoreResult<Vec<crate::core::webhooks::EventRecord>>;
    /// The newest event's cursor (0 when there is none).
    async fn last_event_cursor(&self) -> CoreResult<i64>;
    /// A resource's events, newest first, before cursor `before` (when given).
    async fn resource_events(
        &self,
        org: &OrgId,
        resource_id: &str,
        before: Option<i64>,
        limit: i64,
    ) -> CoreResult<Vec<crate::core::webhooks::EventRecord>>;
    /// Deletes up to `batch` of the oldest events created before `before` that every enabled
    /// webhook endpoint has settled; the number deleted.
    async fn prune_events(&self, before: &str, batch: i64) -> CoreResult<u64>;
}
