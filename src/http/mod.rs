//! The HTTP server: binds first (so tests can use port 0 and read the port back), mounts
//! the protocol adapters, and serves until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::get;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

use crate::core::error::{CoreError, CoreResult};
use crate::core::secrets::MasterKey;
use crate::core::store::SsoStore;
use crate::scim::{self, MAX_PAYLOAD, ScimState};
use crate::sso::{self, SsoState, oidc_rp};
use crate::store::SqlStore;

pub struct Server {
    listener: TcpListener,
    app: Router,
}

/// Builds the application router over a store.
pub fn app(store: SqlStore, public_url: &str, master: MasterKey) -> std::io::Result<Router> {
    let public_url = public_url.trim_end_matches('/').to_owned();
    let scim_state = Arc::new(ScimState {
        store: store.clone(),
        base_url: format!("{public_url}/scim/v2"),
        tokens: Default::default(),
    });
    let sso_state = Arc::new(SsoState {
        store: store.clone(),
        master,
        public_url,
        http: oidc_rp::Http::new().map_err(std::io::Error::other)?,
        metadata: Default::default(),
    });
    Ok(Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(store)
        .nest("/scim/v2", scim::router(scim_state))
        .merge(sso::router(sso_state.clone()))
        .merge(crate::oidc::router(sso_state))
        .layer(DefaultBodyLimit::max(MAX_PAYLOAD))
        .layer(TraceLayer::new_for_http()))
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

async fn readyz(State(store): State<SqlStore>) -> (StatusCode, &'static str) {
    match store.ping().await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database unreachable"),
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
        check_master_key(&store, &master)
            .await
            .map_err(std::io::Error::other)?;
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let url = public_url.map_or_else(|| format!("http://{local}"), str::to_owned);
        Ok(Server {
            listener,
            app: app(store, &url, master)?,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(self.listener, self.app)
            .with_graceful_shutdown(shutdown)
            .await
    }
}
