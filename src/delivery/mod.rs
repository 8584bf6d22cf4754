//! Webhook delivery: the outbound adapter that turns outbox events into signed HTTP
//! requests (Standard Webhooks).
//!
//! Each node runs one dispatcher. It leases due endpoints (`lease_webhooks`: a row lease,
//! `FOR UPDATE SKIP LOCKED` on PostgreSQL, so one endpoint is served by one node at a
//! time), sends the endpoint's events after its cursor in cursor order, and records each
//! outcome with the new cursor under the lease (`settle_webhook` checks the lease is still
//! its own). A failed event blocks the endpoint's later events (per-endpoint order) until a
//! retry succeeds or the schedule runs out; then the delivery is marked `failed` and the
//! endpoint moves on. Everything is in the database, so a restart resumes where the last
//! settled cursor left off: an event whose delivery was not settled before a crash is sent
//! again with the same `webhook-id`, never skipped, never reordered.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::core::error::{CoreError, CoreResult};
use crate::core::events::EventKind;
use crate::core::secrets::MasterKey;
use crate::core::store::Attempt;
use crate::core::store::prelude::*;
use crate::core::webhooks::{self, Endpoint, EventRecord};
use crate::core::{new_id, now, now_plus_ms};
use crate::outbound::{self, Outbound, Reach};
use crate::store::SqlStore;

/// How long a lease lasts by default; renewed with every settle (at least every third of
/// it). After a node dies, its endpoints wait this long before another node takes them.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// Outcomes are recorded at least every this many deliveries.
const SETTLE_EVENTS: usize = 50;
/// Events read per round.
const PAGE: i64 = 200;
/// Endpoints one node serves at once.
const PARALLEL: i64 = 8;
/// How often to look for work written by other nodes (local commits wake it at once).
const POLL: Duration = Duration::from_millis(500);
/// After a local commit wakes the dispatcher, it waits this long so a burst of commits
/// costs one look.
const COALESCE: Duration = Duration::from_millis(2);
/// Per-request timeout.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Parses a retry schedule such as `5s,5m,30m,2h,5h,10h,10h,10h` (units ms, s, m, h).
pub fn parse_schedule(s: &str) -> Result<Vec<u64>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (num, mult) = if let Some(n) = p.strip_suffix("ms") {
                (n, 1)
            } else if let Some(n) = p.strip_suffix('s') {
                (n, 1000)
            } else if let Some(n) = p.strip_suffix('m') {
                (n, 60_000)
            } else if let Some(n) = p.strip_suffix('h') {
                (n, 3_600_000)
            } else {
                return Err(format!("\"{p}\": give a unit (ms, s, m or h)"));
            };
            num.parse::<u64>()
                .map(|n| n * mult)
                .map_err(|_| format!("\"{p}\" is not a duration"))
        })
        .collect()
}

pub fn default_schedule_ms() -> Vec<u64> {
    webhooks::DEFAULT_SCHEDULE_SECS
        .iter()
        .map(|s| s * 1000)
        .collect()
}

#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

struct Inner {
    store: SqlStore,
    master: MasterKey,
    /// Endpoints not allowed private networks reach public addresses only.
    http: Outbound,
    node: String,
    schedule_ms: Vec<u64>,
    lease: Duration,
}

pub use crate::core::webhooks::secret_purpose;

impl Dispatcher {
    pub fn new(
        store: SqlStore,
        master: MasterKey,
        schedule_ms: Vec<u64>,
        lease: Duration,
    ) -> CoreResult<Self> {
        let http = Outbound::new("Roster-Webhooks/1", TIMEOUT)
            .map_err(|e| CoreError::Internal(format!("webhook HTTP client: {e}")))?;
        Ok(Dispatcher {
            inner: Arc::new(Inner {
                store,
                master,
                http,
                node: new_id(),
                schedule_ms,
                lease,
            }),
        })
    }

    /// Outcomes are recorded at least this often: it bounds what a crash makes a node
    /// send again, and renews the lease well before it runs out.
    fn settle_every(&self) -> Duration {
        (self.inner.lease / 3).min(Duration::from_secs(1))
    }

    fn lease_until(&self) -> String {
        now_plus_ms(u64::try_from(self.inner.lease.as_millis()).unwrap_or(u64::MAX))
    }

    /// Gives up this node's leases (at shutdown): another node, or this one restarted,
    /// continues at once instead of after the lease runs out.
    pub async fn release_all(&self) {
        let _ = self.inner.store.release_webhooks(&self.inner.node).await;
    }

    /// Runs until the task is dropped or aborted.
    pub fn spawn(&self) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move { me.run().await })
    }

    async fn run(self) {
        let mut signal = self.inner.store.event_signal();
        let mut running: JoinSet<()> = JoinSet::new();
        loop {
            while running.try_join_next().is_some() {}
            let free = PARALLEL - i64::try_from(running.len()).unwrap_or(PARALLEL);
            // A read first: most wake-ups (any commit with events) find nothing to lease.
            let due = free > 0 && self.inner.store.webhooks_due(&now()).await.unwrap_or(true);
            if due {
                let until = self.lease_until();
                match self
                    .inner
                    .store
                    .lease_webhooks(&self.inner.node, &now(), &until, free)
                    .await
                {
                    Ok(eps) => {
                        for ep in eps {
                            let me = self.clone();
                            running.spawn(async move { me.serve(ep).await });
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "webhook lease failed"),
                }
            }
            tokio::select! {
                _ = signal.changed() => {
                    // Commits come in bursts: look at most once per COALESCE.
                    tokio::time::sleep(COALESCE).await;
                }
                _ = tokio::time::sleep(POLL) => {}
                Some(_) = running.join_next(), if !running.is_empty() => {}
            }
        }
    }

    /// Serves one leased endpoint until it is caught up, backing off, or the lease is lost.
    async fn serve(&self, ep: Endpoint) {
        let id = ep.id.clone();
        if let Err(e) = self.serve_inner(ep).await {
            tracing::warn!(endpoint = %id, error = %e, "webhook delivery stopped");
        }
        let _ = self
            .inner
            .store
            .release_webhook(&id, &self.inner.node)
            .await;
    }

    async fn serve_inner(&self, ep: Endpoint) -> CoreResult<()> {
        let st = &self.inner;
        let secret = st
            .master
            .decrypt_string(&secret_purpose(&ep.id), &ep.secret_enc)?;
        let mut cursor = ep.cursor;
        loop {
            let events = st
                .store
                .events_after(cursor, ep.org_id.as_ref(), PAGE)
                .await?;
            if events.is_empty() {
                return Ok(());
            }
            let mut attempts = Vec::new();
            let mut started = Instant::now();
            let mut settled_after = 0usize;
            for ev in events {
                if !webhooks::matches(&ep.event_types, &ev.kind) {
                    cursor = ev.cursor;
                    continue;
                }
                let attempt = self.attempt(&ep, &secret, &ev).await?;
                let status = attempt.status;
                let next = attempt.next_attempt_at.clone();
                attempts.push(attempt);
                if status == "pending" {
                    // Later events wait for this one: per-endpoint order.
                    let next = next.unwrap_or_else(now);
                    self.settle(&ep.id, &attempts, cursor, &next).await?;
                    return Ok(());
                }
                cursor = ev.cursor;
                settled_after += 1;
                if settled_after >= SETTLE_EVENTS || started.elapsed() > self.settle_every() {
                    if !self.settle(&ep.id, &attempts, cursor, &now()).await? {
                        return Ok(());
                    }
                    attempts.clear();
                    started = Instant::now();
                    settled_after = 0;
                }
            }
            if !self.settle(&ep.id, &attempts, cursor, &now()).await? {
                return Ok(());
            }
        }
    }

    /// Records outcomes and the cursor; `false` if the lease was lost meanwhile.
    async fn settle(
        &self,
        endpoint: &str,
        attempts: &[Attempt],
        cursor: i64,
        next_attempt_at: &str,
    ) -> CoreResult<bool> {
        let until = self.lease_until();
        let kept = self
            .inner
            .store
            .settle_webhook(
                endpoint,
                &self.inner.node,
                attempts,
                cursor,
                next_attempt_at,
                &until,
            )
            .await?;
        if !kept {
            tracing::warn!(endpoint, "webhook lease lost; another node continues");
        }
        Ok(kept)
    }

    /// One signed POST of `ev`, and what comes next if it failed (from the attempts so far).
    async fn attempt(&self, ep: &Endpoint, secret: &str, ev: &EventRecord) -> CoreResult<Attempt> {
        let Posted {
            at,
            code,
            error,
            duration_ms,
        } = self.post(ep, secret, ev).await;
        let m = crate::metrics::get();
        let (status, next_attempt_at) = if error.is_none() {
            if ev.event_kind().is_some_and(EventKind::is_deprovisioning)
                && let Some(received) = ev.received_at.as_deref().and_then(seconds_since)
            {
                m.deprovision_webhook.observe(received);
            }
            ("delivered", None)
        } else {
            let prior = self
                .inner
                .store
                .delivery_attempts(&ep.id, ev.cursor)
                .await?;
            let n = usize::try_from(prior)
                .unwrap_or(usize::MAX)
                .saturating_add(1);
            match webhooks::retry_delay_ms(&self.inner.schedule_ms, n, rand::random::<f64>()) {
                Some(delay) => ("pending", Some(now_plus_ms(delay))),
                None => ("failed", None),
            }
        };
        let result = match status {
            "delivered" => "delivered",
            "pending" => "retry",
            _ => "failed",
        };
        m.webhook_attempts
            .get_or_create(&crate::metrics::ResultLabel { result })
            .inc();
        Ok(Attempt {
            event_id: ev.cursor,
            org_id: ev.org_id.clone(),
            at,
            response_status: code.map(i64::from),
            error,
            duration_ms,
            status,
            next_attempt_at,
        })
    }
}

/// What one signed POST came to.
struct Posted {
    at: String,
    code: Option<u16>,
    error: Option<String>,
    duration_ms: i64,
}

impl Dispatcher {
    /// One signed POST of `ev` to the endpoint (the same `webhook-id` on every attempt).
    async fn post(&self, ep: &Endpoint, secret: &str, ev: &EventRecord) -> Posted {
        let body = ev.webhook_body();
        let ts = time::OffsetDateTime::now_utc().unix_timestamp();
        let msg_id = ev.message_id();
        let at = now();
        let started = Instant::now();
        let request = ep
            .target_url(&self.inner.master)
            .map_err(|e| e.to_string())
            .and_then(|url| {
                self.inner
                    .http
                    .request(
                        Reach::private_if(ep.allow_private),
                        reqwest::Method::POST,
                        &url,
                    )
                    .map_err(|e| e.to_string())
            });
        let result = match (request, webhooks::sign(secret, &msg_id, ts, &body)) {
            (Err(refused), _) => Err(refused),
            (Ok(req), Ok(sig)) => req
                .header("content-type", "application/json")
                .header("webhook-id", &msg_id)
                .header("webhook-timestamp", ts.to_string())
                .header("webhook-signature", sig)
                .body(body)
                .send()
                .await
                .map_err(outbound::error_text),
            (Ok(_), Err(e)) => Err(e.to_string()),
        };
        let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let (code, error) = match result {
            Ok(resp) if resp.status().is_success() => (Some(resp.status().as_u16()), None),
            Ok(resp) => (
                Some(resp.status().as_u16()),
                Some(format!("HTTP {}", resp.status())),
            ),
            Err(e) => (None, Some(e)),
        };
        Posted {
            at,
            code,
            error,
            duration_ms,
        }
    }

    /// Sends one event to an endpoint again, now, outside its order (an operator's resend,
    /// e.g. of a delivery that failed for good), and records the attempt: `delivered`, or
    /// `failed` (a resend is not retried).
    pub async fn resend(
        &self,
        endpoint_id: &str,
        cursor: i64,
        actor: &crate::core::model::Actor,
    ) -> CoreResult<Attempt> {
        let st = &self.inner;
        let ep = st
            .store
            .list_webhooks(None)
            .await?
            .into_iter()
            .find(|w| w.id == endpoint_id)
            .ok_or_else(|| CoreError::NotFound(format!("webhook {endpoint_id}")))?;
        let ev = st
            .store
            .events_after(cursor - 1, ep.org_id.as_ref(), 1)
            .await?
            .into_iter()
            .find(|e| e.cursor == cursor)
            .ok_or_else(|| {
                CoreError::NotFound(format!("event {cursor} of this webhook's organization"))
            })?;
        let secret = st
            .master
            .decrypt_string(&secret_purpose(&ep.id), &ep.secret_enc)?;
        let p = self.post(&ep, &secret, &ev).await;
        let attempt = Attempt {
            event_id: ev.cursor,
            org_id: ev.org_id.clone(),
            at: p.at,
            response_status: p.code.map(i64::from),
            status: if p.error.is_none() {
                "delivered"
            } else {
                "failed"
            },
            error: p.error,
            duration_ms: p.duration_ms,
            next_attempt_at: None,
        };
        st.store.record_resend(&ep.id, &attempt, actor).await?;
        Ok(attempt)
    }
}

/// Seconds from a storage-format time until now.
fn seconds_since(t: &str) -> Option<f64> {
    let then =
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()?;
    let d = time::OffsetDateTime::now_utc() - then;
    Some(d.as_seconds_f64().max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_parse_with_units() {
        assert_eq!(
            parse_schedule("200ms, 1s,2m,1h").unwrap(),
            vec![200, 1000, 120_000, 3_600_000]
        );
        assert!(parse_schedule("5").is_err());
        assert!(parse_schedule("xs").is_err());
    }
}
