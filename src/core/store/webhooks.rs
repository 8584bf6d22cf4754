//! Webhook endpoints and deliveries.

use crate::core::error::CoreResult;
use crate::core::model::*;

/// One webhook delivery (an event for an endpoint) and how it went.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub endpoint_id: String,
    pub event_id: i64,
    pub status: String,
    pub attempts: i64,
    pub first_attempt_at: String,
    pub last_attempt_at: String,
    pub next_attempt_at: Option<String>,
    pub response_status: Option<i64>,
    pub last_error: Option<String>,
}

/// The outcome of one delivery attempt, recorded under the endpoint's lease.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub event_id: i64,
    pub org_id: Option<String>,
    pub at: String,
    pub response_status: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
    /// `delivered`, `pending` (retry at `next_attempt_at`) or `failed` (retries exhausted).
    pub status: &'static str,
    pub next_attempt_at: Option<String>,
}

/// One attempt at delivering an event to an endpoint.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub attempt: i64,
    pub at: String,
    pub response_status: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
    pub node: String,
}

/// Webhook endpoints an app registers.
pub trait WebhookStore: Send + Sync + 'static {
    async fn insert_webhook(
        &self,
        ep: &crate::core::webhooks::Endpoint,
        actor: &Actor,
    ) -> CoreResult<()>;
    async fn list_webhooks(
        &self,
        org: Option<&OrgId>,
    ) -> CoreResult<Vec<crate::core::webhooks::Endpoint>>;
    async fn disable_webhook(&self, id: &str, actor: &Actor) -> CoreResult<bool>;
    /// Encrypts the URL of an endpoint stored before URLs were (`url_enc` empty): `shown`
    /// replaces the plaintext. A storage migration: no event, no audit entry.
    async fn seal_webhook_url(&self, id: &str, shown: &str, url_enc: &str) -> CoreResult<()>;
    /// Per enabled endpoint: id, cursor and failed deliveries (for `/metrics`).
    async fn webhook_stats(&self) -> CoreResult<Vec<(String, i64, i64)>>;
}

/// Delivering events to webhook endpoints: leases, attempts, results.
pub trait DeliveryStore: Send + Sync + 'static {
    /// Whether any endpoint is due and unleased with events to deliver (a read: nodes check
    /// this before taking leases, which is a write).
    async fn webhooks_due(&self, now: &str) -> CoreResult<bool>;
    /// Leases up to `limit` enabled endpoints that are due and have events after their
    /// cursor and no live lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL).
    async fn lease_webhooks(
        &self,
        node: &str,
        now: &str,
        until: &str,
        limit: i64,
    ) -> CoreResult<Vec<crate::core::webhooks::Endpoint>>;
    /// Records attempts and moves the endpoint's cursor and next attempt, only while `node`
    /// still holds the lease (extended to `until`); `false` if the lease was lost.
    async fn settle_webhook(
        &self,
        endpoint_id: &str,
        node: &str,
        attempts: &[Attempt],
        cursor: i64,
        next_attempt_at: &str,
        until: &str,
    ) -> CoreResult<bool>;
    async fn release_webhook(&self, endpoint_id: &str, node: &str) -> CoreResult<()>;
    /// Gives up every lease `node` holds.
    async fn release_webhooks(&self, node: &str) -> CoreResult<()>;
    /// Records an operator's resend of one event (outside the endpoint's order and lease).
    async fn record_resend(
        &self,
        endpoint_id: &str,
        attempt: &Attempt,
        actor: &Actor,
    ) -> CoreResult<()>;
    /// How many attempts an endpoint has made at an event so far.
    async fn delivery_attempts(&self, endpoint_id: &str, event_id: i64) -> CoreResult<i64>;
    /// An endpoint's deliveries, newest first.
    async fn deliveries(
        &self,
        endpoint_id: &str,
        status: Option<&str>,
        limit: i64,
    ) -> CoreResult<Vec<Delivery>> {
        self.deliveries_before(endpoint_id, status, None, limit)
            .await
    }
    /// An endpoint's deliveries of events before cursor `before`, newest first.
    async fn deliveries_before(
        &self,
        endpoint_id: &str,
        status: Option<&str>,
        before: Option<i64>,
        limit: i64,
    ) -> CoreResult<Vec<Delivery>>;
    /// Every attempt at delivering event `event_id` to the endpoint, in order.
    async fn delivery_attempt_log(
        &self,
        endpoint_id: &str,
        event_id: i64,
    ) -> CoreResult<Vec<AttemptRecord>>;
}
