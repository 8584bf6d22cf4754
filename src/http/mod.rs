//! The HTTP server: binds first (so tests can use port 0 and read the port back), mounts
//! the protocol adapters, and serves until shutdown.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum_server::tls_rustls::RustlsConfig;
use tokio::net::TcpListener;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use tracing::Instrument;

mod drain;

use crate::core::context::{self, Origin};
use crate::delivery::{self, Dispatcher};
use crate::scim::limit::RateLimiter;
use crate::scim::traffic::Traffic;

use crate::core::error::{CoreError, CoreResult};
use crate::core::secrets::MasterKey;
use crate::core::store::prelude::*;
use crate::scim::{self, MAX_PAYLOAD, ScimState};
use crate::sso::{self, SsoState};
use crate::store::SqlStore;

pub struct Server {
    listener: TcpListener,
    app: Router,
    store: SqlStore,
    master: MasterKey,
    traffic: Arc<Traffic>,
    webhook_schedule_ms: Vec<u64>,
    webhook_lease: Duration,
    audit_retention_days: Option<u32>,
    event_retention_days: Option<u32>,
    limits: Arc<RateLimiter>,
    admin_limits: Arc<RateLimiter>,
    dns: crate::dns::Resolver,
    login_limits: Arc<RateLimiter>,
    metrics_token: Arc<OnceLock<String>>,
    tls: Option<RustlsConfig>,
}

/// Runs each request as an [`Origin`]: its request id (the client's `x-request-id` if it is
/// short and printable, else a new one, echoed back), source address and arrival time, which
/// events and audit entries record.
async fn origin(req: Request, next: Next) -> Response {
    let received = Instant::now();
    let method = req.method().as_str().to_owned();
    // This layer runs after routing (axum applies `Router::layer` to each route and the
    // fallback), so the matched route's template is known: the label, never the path.
    let route = crate::metrics::route_label(
        req.extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str),
        req.uri().path(),
    );
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.chars().all(|c| c.is_ascii_graphic()))
        .map_or_else(new_request_id, str::to_owned);
    let source_ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let o = Origin {
        request_id: Some(request_id.clone()),
        source_ip,
        received_at: Some(time::OffsetDateTime::now_utc()),
        received: Some(received),
    };
    // Log lines written while serving the request carry its id.
    let span = tracing::info_span!("request", request_id = %request_id);
    let mut resp = context::with_origin(o, next.run(req).instrument(span)).await;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    crate::metrics::http_request(&method, route, resp.status().as_u16(), received);
    resp
}

/// A request id unique across nodes and restarts without a random draw per request: a
/// random per-process prefix and a counter.
fn new_request_id() -> String {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static PREFIX: OnceLock<String> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let prefix = PREFIX.get_or_init(|| crate::core::new_id()[..13].replace('-', ""));
    format!("{prefix}-{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// What `/metrics` needs: the store (for gauges) and the token scrapes must present, if one
/// is set (`Server::metrics_token`).
#[derive(Clone)]
struct MetricsState {
    store: SqlStore,
    token: Arc<OnceLock<String>>,
}

/// Whether `headers` carry `Authorization: Bearer <want>`, compared in constant time (as
/// SHA-256 digests, so not even the length is compared early).
fn bearer_matches(headers: &HeaderMap, want: &str) -> bool {
    use crate::core::secrets::{hash_secret, secrets_equal};
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .is_some_and(|(_, given)| secrets_equal(&hash_secret(given.trim()), &hash_secret(want)))
}

/// `/metrics`: the registry, plus webhook gauges read from the database at scrape time
/// (so every node reports the deployment's queue, not only its own share). With a metrics
/// token set, only a scrape bearing it is answered; others get 401.
async fn metrics(State(st): State<MetricsState>, headers: HeaderMap) -> Response {
    use crate::core::store::prelude::*;
    use std::fmt::Write;
    if let Some(want) = st.token.get()
        && !bearer_matches(&headers, want)
    {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "a valid bearer token is required\n",
        )
            .into_response();
    }
    let store = st.store;
    let mut extra = String::new();
    if let (Ok(stats), Ok(last)) = (store.webhook_stats().await, store.last_event_cursor().await) {
        let _ = writeln!(
            extra,
            "# HELP roster_webhook_backlog_events Events after an endpoint's cursor (an upper bound: not all may match its types).\n\
             # TYPE roster_webhook_backlog_events gauge"
        );
        for (id, cursor, _) in &stats {
            let _ = writeln!(
                extra,
                "roster_webhook_backlog_events{{endpoint=\"{id}\"}} {}",
                (last - cursor).max(0)
            );
        }
        let _ = writeln!(
            extra,
            "# HELP roster_webhook_failed_deliveries Deliveries that ran out of retries.\n\
             # TYPE roster_webhook_failed_deliveries gauge"
        );
        for (id, _, failed) in &stats {
            let _ = writeln!(
                extra,
                "roster_webhook_failed_deliveries{{endpoint=\"{id}\"}} {failed}"
            );
        }
    }
    // PostgreSQL seals what writes append after they commit: how far behind that is.
    if let Ok(Some(b)) = store.seal_backlog().await {
        let lag = b
            .oldest
            .as_deref()
            .and_then(crate::core::secs_since)
            .map_or(0.0, |s| s.max(0.0));
        let _ = writeln!(
            extra,
            "# HELP roster_seal_pending_events Events written (committed or not yet) without a feed cursor yet (counted up to {cap}).\n\
             # TYPE roster_seal_pending_events gauge\n\
             roster_seal_pending_events {}\n\
             # HELP roster_seal_pending_audit_entries Audit entries written without a place in their chain yet (counted up to {cap}).\n\
             # TYPE roster_seal_pending_audit_entries gauge\n\
             roster_seal_pending_audit_entries {}\n\
             # HELP roster_seal_lag_seconds Age of the oldest event or audit entry not sealed yet (0 when none waits).\n\
             # TYPE roster_seal_lag_seconds gauge\n\
             roster_seal_lag_seconds {lag:.3}",
            b.events,
            b.audit_entries,
            cap = crate::store::SEAL_BACKLOG_CAP,
        );
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        crate::metrics::render(&extra),
    )
        .into_response()
}

/// The policy of every page that sets none of its own (the SSO adapter's error and refusal
/// pages, 404s, JSON): load nothing, submit nowhere, never be framed. The console and the
/// setup page set their own.
const DEFAULT_CSP: &str =
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// HSTS when Roster serves TLS itself: a year, this host only (Roster often shares its
/// domain with other services, so no `includeSubDomains`).
const HSTS: &str = "max-age=31536000";

/// Builds the application router over a store (plain HTTP, or behind a TLS proxy).
pub fn app(store: SqlStore, public_url: &str, master: MasterKey) -> std::io::Result<Router> {
    app_with(
        store,
        public_url,
        master,
        Arc::default(),
        Arc::default(),
        Arc::default(),
        login_limiter(),
        crate::dns::Resolver::default(),
        false,
        Arc::default(),
    )
}

/// A limiter of login starts per client address at the default rate.
fn login_limiter() -> Arc<RateLimiter> {
    let l = Arc::<RateLimiter>::default();
    l.set_rate(sso::DEFAULT_LOGIN_RATE_LIMIT);
    l
}

/// `tls`: Roster itself serves HTTPS, so its responses carry `Strict-Transport-Security`.
// The shared state each adapter gets; one call site (and `app`).
#[allow(clippy::too_many_arguments)]
fn app_with(
    store: SqlStore,
    public_url: &str,
    master: MasterKey,
    traffic: Arc<Traffic>,
    limits: Arc<RateLimiter>,
    admin_limits: Arc<RateLimiter>,
    login_limits: Arc<RateLimiter>,
    dns: crate::dns::Resolver,
    tls: bool,
    metrics_token: Arc<OnceLock<String>>,
) -> std::io::Result<Router> {
    let metrics_state = MetricsState {
        store: store.clone(),
        token: metrics_token,
    };
    let public_url = public_url.trim_end_matches('/').to_owned();
    let front_url = public_url.clone();
    let scim_state = Arc::new(ScimState {
        store: store.clone(),
        base_url: format!("{public_url}/scim/v2"),
        tokens: Default::default(),
        traffic,
        limits,
    });
    // Every request to an IdP (and SAML metadata URLs) goes through the outbound guard.
    let outbound = crate::outbound::Outbound::new(
        concat!("roster/", env!("CARGO_PKG_VERSION")),
        Duration::from_secs(15),
    )
    .map_err(std::io::Error::other)?;
    let api_state = Arc::new(crate::api::ApiState {
        store: store.clone(),
        master: master.clone(),
        public_url: public_url.clone(),
        limits: admin_limits,
        dns,
        outbound: outbound.clone(),
    });
    let console_router = crate::console::router(api_state.clone());
    let api_state_for_setup = api_state.clone();
    // The logins Roster starts for itself end where they started: in the console.
    let finishers = sso::Finishers {
        console_sign_in: Arc::new(crate::console::SsoSignIn(api_state.clone())),
        setup_test: Arc::new(crate::console::setup_page::TestResult {
            public_url: public_url.clone(),
        }),
    };
    let sso_state = Arc::new(SsoState {
        store: store.clone(),
        master,
        public_url,
        outbound,
        metadata: Default::default(),
        login_limits,
        finishers,
    });
    let setup_state = Arc::new(crate::console::setup_page::SetupState {
        api: api_state_for_setup,
        sso: sso_state.clone(),
    });
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics).with_state(metrics_state))
        .with_state(store)
        .nest("/scim/v2", scim::router(scim_state))
        .nest("/api/v1", crate::api::router(api_state))
        .nest(
            "/console",
            console_router.merge(
                Router::new()
                    .route("/sso", get(crate::console::sso_start))
                    .with_state(setup_state.clone()),
            ),
        )
        .nest("/setup", crate::console::setup_page::router(setup_state))
        .merge(sso::router(sso_state.clone()))
        .merge(crate::oidc::router(sso_state))
        .merge(crate::console::front::router(&front_url))
        .layer(DefaultBodyLimit::max(MAX_PAYLOAD))
        // A body left unread (over the limit, refused before reading) is discarded up to
        // a bound, so the client reads its answer instead of a reset.
        .layer(axum::middleware::from_fn(drain::unread_bodies))
        .layer(axum::middleware::from_fn(origin))
        .layer(TraceLayer::new_for_http())
        // Outermost, so that every response has them, errors and 404s included.
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(DEFAULT_CSP),
        ));
    Ok(if tls {
        app.layer(SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        ))
    } else {
        app
    })
}

/// Refuses a master key other than the one the database's secrets were encrypted with.
pub async fn check_master_key(store: &SqlStore, master: &MasterKey) -> CoreResult<()> {
    let stored = store
        .ensure_setting("master_key_check", master.check_value())
        .await?;
    if stored != master.check_value() {
        return Err(CoreError::Internal(format!(
            "this database's secrets were encrypted with another master key (check value {stored}, \
             this key's is {}): set ROSTER_MASTER_KEY to the key the other nodes use",
            master.check_value()
        )));
    }
    Ok(())
}

/// How long `/readyz` waits for the database before it answers that it is unreachable: a
/// load balancer's probe gets its answer within a second, whatever the database does.
const READYZ_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(750);

/// Ready when the database answers within [`READYZ_TIMEOUT`] and has every migration this
/// binary expects.
async fn readyz(State(store): State<SqlStore>) -> (StatusCode, &'static str) {
    match tokio::time::timeout(READYZ_TIMEOUT, store.migrations_current()).await {
        Ok(Ok(true)) => (StatusCode::OK, "ready"),
        Ok(Ok(false)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "database migrations are not current",
        ),
        Ok(Err(_)) | Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database unreachable"),
    }
}

impl Server {
    /// Binds `addr`; `public_url` defaults to `http://<bound address>`.
    pub async fn bind(
        addr: &str,
        store: SqlStore,
        public_url: Option<&str>,
        master: MasterKey,
    ) -> std::io::Result<Self> {
        Self::bind_tls(addr, store, public_url, master, None).await
    }

    /// Binds `addr`, serving HTTPS with the PEM certificate chain and private key `tls`
    /// (rustls) when given; `public_url` then defaults to `https://<bound address>`.
    pub async fn bind_tls(
        addr: &str,
        store: SqlStore,
        public_url: Option<&str>,
        master: MasterKey,
        tls: Option<(&Path, &Path)>,
    ) -> std::io::Result<Self> {
        check_master_key(&store, &master)
            .await
            .map_err(std::io::Error::other)?;
        let sealed = crate::core::webhooks::seal_plaintext_urls(&store, &master)
            .await
            .map_err(std::io::Error::other)?;
        if sealed > 0 {
            tracing::info!(sealed, "webhook URLs encrypted at rest");
        }
        let tls = match tls {
            Some((cert, key)) => {
                let _ = rustls::crypto::ring::default_provider().install_default();
                Some(RustlsConfig::from_pem_file(cert, key).await.map_err(|e| {
                    std::io::Error::new(
                        e.kind(),
                        format!(
                            "TLS certificate {} / key {}: {e}",
                            cert.display(),
                            key.display()
                        ),
                    )
                })?)
            }
            None => None,
        };
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = public_url.map_or_else(|| format!("{scheme}://{local}"), str::to_owned);
        let traffic = Arc::<Traffic>::default();
        let limits = Arc::<RateLimiter>::default();
        let admin_limits = Arc::<RateLimiter>::default();
        let dns = crate::dns::Resolver::default();
        let login_limits = login_limiter();
        let metrics_token = Arc::<OnceLock<String>>::default();
        Ok(Server {
            listener,
            app: app_with(
                store.clone(),
                &url,
                master.clone(),
                traffic.clone(),
                limits.clone(),
                admin_limits.clone(),
                login_limits.clone(),
                dns.clone(),
                tls.is_some(),
                metrics_token.clone(),
            )?,
            limits,
            admin_limits,
            login_limits,
            dns,
            metrics_token,
            store,
            master,
            traffic,
            webhook_schedule_ms: delivery::default_schedule_ms(),
            webhook_lease: delivery::DEFAULT_LEASE,
            audit_retention_days: None,
            event_retention_days: None,
            tls,
        })
    }

    /// Delays between webhook retries (default: [`delivery::default_schedule_ms`]).
    pub fn webhook_schedule_ms(mut self, schedule: Vec<u64>) -> Self {
        self.webhook_schedule_ms = schedule;
        self
    }

    /// SCIM requests per second each bearer token may make on this node (0: no limit); over
    /// it, 429 with `Retry-After`.
    pub fn scim_rate_limit(self, per_sec: u32) -> Self {
        self.limits.set_rate(per_sec);
        self
    }

    /// Admin API requests per second each admin key may make on this node (0: no limit);
    /// over it, 429 with `Retry-After`.
    pub fn admin_rate_limit(self, per_sec: u32) -> Self {
        self.admin_limits.set_rate(per_sec);
        self
    }

    /// The DNS server domain verification asks (default: the system's resolvers).
    pub fn dns_resolver(self, upstream: Option<SocketAddr>) -> Self {
        self.dns.set_upstream(upstream);
        self
    }

    /// Login starts (`/oauth/authorize`, the console's SSO) per second each client address
    /// may make on this node (default [`sso::DEFAULT_LOGIN_RATE_LIMIT`]; 0: no limit); over
    /// it, 429 with `Retry-After`.
    pub fn login_rate_limit(self, per_sec: u32) -> Self {
        self.login_limits.set_rate(per_sec);
        self
    }

    /// A token `/metrics` requires (`Authorization: Bearer <token>`; 401 otherwise). Set once:
    /// a later call does not change it. `None` or empty: `/metrics` is open.
    pub fn metrics_token(self, token: Option<String>) -> Self {
        if let Some(t) = token.filter(|t| !t.is_empty()) {
            let _ = self.metrics_token.set(t);
        }
        self
    }

    /// How long a node's hold on a webhook endpoint lasts without renewal (default
    /// [`delivery::DEFAULT_LEASE`]): after a crash, its endpoints resume after this long.
    pub fn webhook_lease(mut self, lease: Duration) -> Self {
        self.webhook_lease = lease;
        self
    }

    /// Deletes events older than this many days (hourly), but none an enabled webhook
    /// endpoint has yet to settle.
    pub fn event_retention_days(mut self, days: Option<u32>) -> Self {
        self.event_retention_days = days;
        self
    }

    /// Deletes audit entries older than this many days (hourly; chains stay verifiable).
    pub fn audit_retention_days(mut self, days: Option<u32>) -> Self {
        self.audit_retention_days = days;
        self
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests. Webhook delivery,
    /// traffic counting, retention and the sweep of ended sessions run beside it.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        // Background tasks end with this future, also when it is dropped (a task abort).
        let dispatcher = Dispatcher::new(
            self.store.clone(),
            self.master.clone(),
            self.webhook_schedule_ms.clone(),
            self.webhook_lease,
        )
        .map_err(std::io::Error::other)?;
        let delivering = AbortOnDrop(dispatcher.spawn());
        let _flusher = AbortOnDrop(
            self.traffic
                .spawn_flusher(self.store.clone(), Duration::from_secs(5)),
        );
        let _retention = self
            .audit_retention_days
            .map(|days| AbortOnDrop(spawn_retention(self.store.clone(), days)));
        let _event_retention = self
            .event_retention_days
            .map(|days| AbortOnDrop(spawn_event_retention(self.store.clone(), days)));
        let _sweeper = AbortOnDrop(spawn_sweeper(self.store.clone()));
        let make = self.app.into_make_service_with_connect_info::<SocketAddr>();
        let served = match self.tls {
            None => {
                axum::serve(self.listener, make)
                    .with_graceful_shutdown(shutdown)
                    .await
            }
            Some(config) => {
                let handle = axum_server::Handle::new();
                let stop = handle.clone();
                let _stopper = AbortOnDrop(tokio::spawn(async move {
                    shutdown.await;
                    // Let in-flight requests finish, as the plain listener does.
                    stop.graceful_shutdown(None);
                }));
                axum_server::from_tcp_rustls(self.listener.into_std()?, config)?
                    .handle(handle)
                    .serve(make)
                    .await
            }
        };
        drop(delivering);
        dispatcher.release_all().await;
        self.traffic.flush(&self.store).await;
        served
    }
}

/// Aborts a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Prunes events older than `days` every hour, a batch at a time (short write
/// transactions beside live traffic).
fn spawn_event_retention(store: SqlStore, days: u32) -> tokio::task::JoinHandle<()> {
    use crate::core::store::prelude::*;
    const BATCH: i64 = 5_000;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            let before = crate::core::now_plus_secs(-i64::from(days) * 86_400);
            let mut total = 0;
            loop {
                match store.prune_events(&before, BATCH).await {
                    Ok(n) => {
                        total += n;
                        if n < BATCH as u64 {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "event retention failed");
                        break;
                    }
                }
            }
            if total > 0 {
                tracing::info!(deleted = total, "event retention");
            }
        }
    })
}

/// Deletes sessions, OIDC tokens and setup links that ended more than a day ago, every
/// hour, a batch at a time (see `SessionStore::sweep_ended`).
fn spawn_sweeper(store: SqlStore) -> tokio::task::JoinHandle<()> {
    use crate::core::store::prelude::*;
    const BATCH: i64 = 5_000;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            let before = crate::core::now_plus_secs(-86_400);
            let mut total = 0;
            loop {
                match store.sweep_ended(&before, BATCH).await {
                    Ok(n) => {
                        total += n;
                        if n == 0 {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "sweep of ended sessions failed");
                        break;
                    }
                }
            }
            if total > 0 {
                tracing::info!(
                    deleted = total,
                    "swept ended sessions, tokens and setup links"
                );
            }
        }
    })
}

/// Prunes audit entries older than `days`, hourly, anchoring each chain (see `core::audit`).
fn spawn_retention(store: SqlStore, days: u32) -> tokio::task::JoinHandle<()> {
    use crate::core::store::prelude::*;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            let before = crate::core::now_plus_secs(-i64::from(days) * 86_400);
            match store.audit_chains().await {
                Ok(chains) => {
                    for (chain, _) in chains {
                        if let Err(e) = store.prune_audit(&chain, &before).await {
                            tracing::warn!(error = %e, "audit retention failed");
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "audit retention failed"),
            }
        }
    })
}
