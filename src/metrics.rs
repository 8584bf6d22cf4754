//! Prometheus metrics, process-wide (one registry per process, as Prometheus expects),
//! served at `/metrics`.

use std::sync::OnceLock;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

pub struct Metrics {
    registry: Registry,
    /// SCIM request received → user deactivated/deleted with its sessions revoked (commit).
    pub deprovision_revoke: Histogram,
    /// SCIM request received → the deprovisioning event's webhook acknowledged (2xx).
    pub deprovision_webhook: Histogram,
    /// Webhook delivery attempts by outcome: delivered, retry, failed.
    pub webhook_attempts: Family<ResultLabel, Counter>,
}

fn buckets() -> impl Iterator<Item = f64> {
    [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    ]
    .into_iter()
}

pub fn get() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(|| {
        let mut registry = Registry::default();
        let deprovision_revoke = Histogram::new(buckets());
        let deprovision_webhook = Histogram::new(buckets());
        let webhook_attempts = Family::<ResultLabel, Counter>::default();
        registry.register(
            "roster_deprovision_revoke_seconds",
            "SCIM request received to user deactivated or deleted with every session and token revoked (committed)",
            deprovision_revoke.clone(),
        );
        registry.register(
            "roster_deprovision_webhook_seconds",
            "SCIM request received to the deprovisioning event acknowledged by a webhook endpoint",
            deprovision_webhook.clone(),
        );
        registry.register(
            "roster_webhook_attempts",
            "Webhook delivery attempts by result",
            webhook_attempts.clone(),
        );
        Metrics {
            registry,
            deprovision_revoke,
            deprovision_webhook,
            webhook_attempts,
        }
    })
}

/// Records a committed deprovisioning of a request that arrived at `received`.
pub fn deprovisioned(received: Option<Instant>) {
    if let Some(at) = received {
        get().deprovision_revoke.observe(at.elapsed().as_secs_f64());
    }
}

/// The text exposition format.
pub fn render() -> String {
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &get().registry).is_err() {
        out.clear();
    }
    out
}
