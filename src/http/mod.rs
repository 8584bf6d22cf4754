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

use crate::scim::{self, MAX_PAYLOAD, ScimState};
use crate::store::SqlStore;

pub struct Server {
    listener: TcpListener,
    app: Router,
}

/// Builds the application router over a store.
pub fn app(store: SqlStore, public_url: &str) -> Router {
    let scim_state = Arc::new(ScimState {
        store: store.clone(),
        base_url: format!("{}/scim/v2", public_url.trim_end_matches('/')),
        tokens: Default::default(),
    });
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(store)
        .nest("/scim/v2", scim::router(scim_state))
        .layer(DefaultBodyLimit::max(MAX_PAYLOAD))
        .layer(TraceLayer::new_for_http())
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
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let url = public_url.map_or_else(|| format!("http://{local}"), str::to_owned);
        Ok(Server {
            listener,
            app: app(store, &url),
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
