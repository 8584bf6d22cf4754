//! Prometheus metrics, process-wide (one registry per process, as Prometheus expects),
//! served at `/metrics`.
//!
//! Every label value comes from a known set, whatever a client sends: each distinct value is
//! a series kept for the life of the process, so a label taken from a request (an invented
//! method, a path) would let anyone grow memory and scrapes without bound. Methods outside
//! the standard ones, unrouted paths and unusual status codes are `other` (or a status
//! class); routes are the router's templates. The one open-ended label, `directory`, is
//! only ever an authenticated directory's id (as many as an operator creates).

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
    /// [`method_label`].
    pub method: &'static str,
    /// [`route_label`].
    pub route: String,
    /// [`status_label`].
    pub status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub method: &'static str,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScimLabels {
    /// The id of the authenticated directory (never taken from an unauthenticated request).
    pub directory: String,
    pub method: &'static str,
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

/// The method label: a standard method (RFC 9110 §9, and PATCH), else `other`.
pub fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
    ];
    KNOWN.into_iter().find(|m| *m == method).unwrap_or("other")
}

/// The status label: a code Roster answers with, else its class (`1xx`…`5xx`), else
/// `other`.
pub fn status_label(status: u16) -> &'static str {
    const KNOWN: [(u16, &str); 26] = [
        (200, "200"),
        (201, "201"),
        (202, "202"),
        (204, "204"),
        (301, "301"),
        (302, "302"),
        (303, "303"),
        (304, "304"),
        (307, "307"),
        (308, "308"),
        (400, "400"),
        (401, "401"),
        (403, "403"),
        (404, "404"),
        (405, "405"),
        (406, "406"),
        (409, "409"),
        (412, "412"),
        (413, "413"),
        (415, "415"),
        (422, "422"),
        (429, "429"),
        (500, "500"),
        (502, "502"),
        (503, "503"),
        (504, "504"),
    ];
    if let Some((_, l)) = KNOWN.iter().find(|(c, _)| *c == status) {
        return l;
    }
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    }
}

/// The route label of a request: the template of the route it matched (`matched`, axum's
/// `MatchedPath`) with every parameter written `{id}`, except SCIM's resource type, kept
/// when it is one (`/scim/v2/Users/{id}`); `other` for a request that matched no route
/// (or only a catch-all). So the labels are the router's routes, a fixed set.
pub fn route_label(matched: Option<&str>, path: &str) -> String {
    let Some(template) = matched.filter(|t| !t.contains("{*")) else {
        return "other".to_owned();
    };
    let mut out = String::with_capacity(template.len());
    let mut actual = path.split('/').filter(|s| !s.is_empty());
    for seg in template.split('/').filter(|s| !s.is_empty()) {
        let got = actual.next();
        out.push('/');
        match seg {
            "{resource}" => match got {
                Some(r @ ("Users" | "Groups")) => out.push_str(r),
                _ => out.push_str("{id}"),
            },
            p if p.starts_with('{') => out.push_str("{id}"),
            literal => out.push_str(literal),
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// Records one served HTTP request (its labels from [`method_label`], [`route_label`],
/// [`status_label`]).
pub fn http_request(method: &str, route: String, status: u16, started: Instant) {
    let m = get();
    let method = method_label(method);
    m.http_requests
        .get_or_create(&RouteLabels {
            method,
            route: route.clone(),
            status: status_label(status),
        })
        .inc();
    m.http_latency
        .get_or_create(&RouteLabel { method, route })
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
            method: method_label(method),
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
    use super::{method_label, route_label, status_label};

    #[test]
    fn route_labels_are_route_templates() {
        let users = Some("/scim/v2/{resource}/{id}");
        assert_eq!(
            route_label(users, "/scim/v2/Users/3f1c0e5e-1111-2222-3333-444455556666"),
            "/scim/v2/Users/{id}"
        );
        assert_eq!(
            route_label(users, "/scim/v2/Groups/x"),
            "/scim/v2/Groups/{id}"
        );
        assert_eq!(route_label(users, "/scim/v2/oauth/x"), "/scim/v2/{id}/{id}");
        assert_eq!(
            route_label(
                Some("/api/v1/orgs/{org}/report/drift"),
                "/api/v1/orgs/acme/report/drift"
            ),
            "/api/v1/orgs/{id}/report/drift"
        );
        assert_eq!(route_label(Some("/"), "/"), "/");
        assert_eq!(route_label(None, "/scim/scim/oauth/token"), "other");
        assert_eq!(
            route_label(Some("/scim/v2/{*rest}"), "/scim/v2/a/b/c"),
            "other"
        );
    }

    #[test]
    fn methods_and_statuses_come_from_known_sets() {
        assert_eq!(method_label("PATCH"), "PATCH");
        assert_eq!(method_label("FOOBAR"), "other");
        assert_eq!(method_label("get"), "other");
        assert_eq!(status_label(404), "404");
        assert_eq!(status_label(418), "4xx");
        assert_eq!(status_label(999), "other");
    }
}
