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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub method: String,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScimLabels {
    pub directory: String,
    pub method: String,
    /// `2xx`, `4xx`, `5xx`.
    pub status: &'static str,
}

pub struct Metrics {
    registry: Registry,
    /// SCIM request received → user deactivated/deleted with its sessions revoked (commit).
    pub deprovision_revoke: Histogram,
    /// SCIM request received → the deprovisioning event's webhook acknowledged (2xx).
    pub deprovision_webhook: Histogram,
    /// Webhook delivery attempts by outcome: delivered, retry, failed.
    pub webhook_attempts: Family<ResultLabel, Counter>,
    /// HTTP requests by method, route (ids replaced by `{id}`) and status.
    pub http_requests: Family<RouteLabels, Counter>,
    /// HTTP request latency by method and route.
    pub http_latency: Family<RouteLabel, Histogram>,
    /// SCIM operations by directory, method and status class.
    pub scim_ops: Family<ScimLabels, Counter>,
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
        let http_requests = Family::<RouteLabels, Counter>::default();
        let http_latency =
            Family::<RouteLabel, Histogram>::new_with_constructor(|| Histogram::new(buckets()));
        let scim_ops = Family::<ScimLabels, Counter>::default();
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
        registry.register(
            "roster_http_requests",
            "HTTP requests by method, route and status",
            http_requests.clone(),
        );
        registry.register(
            "roster_http_request_duration_seconds",
            "HTTP request latency by method and route",
            http_latency.clone(),
        );
        registry.register(
            "roster_scim_operations",
            "SCIM requests by directory, method and status class",
            scim_ops.clone(),
        );
        Metrics {
            registry,
            deprovision_revoke,
            deprovision_webhook,
            webhook_attempts,
            http_requests,
            http_latency,
            scim_ops,
        }
    })
}

/// Records a committed deprovisioning of a request that arrived at `received`.
pub fn deprovisioned(received: Option<Instant>) {
    if let Some(at) = received {
        get().deprovision_revoke.observe(at.elapsed().as_secs_f64());
    }
}

/// Path segments that name routes; any other segment is an id (or a client's typo) and
/// becomes `{id}`, so the route label has a bounded set of values.
const ROUTE_WORDS: &[&str] = &[
    "scim",
    "v2",
    "Users",
    "Groups",
    ".search",
    "Bulk",
    "ServiceProviderConfig",
    "ResourceTypes",
    "Schemas",
    "oauth",
    "authorize",
    "token",
    "userinfo",
    "jwks",
    "introspect",
    "revoke",
    "sso",
    "oidc",
    "callback",
    "saml",
    "continue",
    "metadata",
    "acs",
    "api",
    "v1",
    "events",
    "orgs",
    "report",
    "drift",
    "role-mappings",
    "users",
    "roles",
    "healthz",
    "readyz",
    "metrics",
    ".well-known",
    "openid-configuration",
];

/// The route label of a request path: known words kept, every other segment `{id}`, at
/// most six segments.
pub fn route_label(path: &str) -> String {
    let mut out = String::new();
    for seg in path.split('/').filter(|s| !s.is_empty()).take(6) {
        out.push('/');
        match ROUTE_WORDS.iter().find(|w| w.eq_ignore_ascii_case(seg)) {
            Some(w) => out.push_str(w),
            None => out.push_str("{id}"),
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// Records one served HTTP request.
pub fn http_request(method: &str, path: &str, status: u16, started: Instant) {
    let m = get();
    let route = route_label(path);
    m.http_requests
        .get_or_create(&RouteLabels {
            method: method.to_owned(),
            route: route.clone(),
            status,
        })
        .inc();
    m.http_latency
        .get_or_create(&RouteLabel {
            method: method.to_owned(),
            route,
        })
        .observe(started.elapsed().as_secs_f64());
}

/// Records one authenticated SCIM request of `directory`.
pub fn scim_op(directory: &str, method: &str, status: u16) {
    let class = match status {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    get()
        .scim_ops
        .get_or_create(&ScimLabels {
            directory: directory.to_owned(),
            method: method.to_owned(),
            status: class,
        })
        .inc();
}

/// The text exposition format, with `extra` (gauges computed at scrape time) before the end.
pub fn render(extra: &str) -> String {
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &get().registry).is_err() {
        out.clear();
    }
    match out.strip_suffix("# EOF\n") {
        Some(body) => format!("{body}{extra}# EOF\n"),
        None => out,
    }
}

#[cfg(test)]
mod tests {
    use super::route_label;

    #[test]
    fn route_labels_hide_ids_and_stay_bounded() {
        assert_eq!(
            route_label("/scim/v2/Users/3f1c0e5e-1111-2222-3333-444455556666"),
            "/scim/v2/Users/{id}"
        );
        assert_eq!(route_label("/scim/v2/users"), "/scim/v2/Users");
        assert_eq!(
            route_label("/api/v1/orgs/acme/report/drift"),
            "/api/v1/orgs/{id}/report/drift"
        );
        assert_eq!(route_label("/"), "/");
        assert_eq!(
            route_label("/a/b/c/d/e/f/g/h"),
            "/{id}/{id}/{id}/{id}/{id}/{id}"
        );
    }
}
