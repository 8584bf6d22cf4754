//! The request a change comes from. Adapters run each request inside [`with_origin`]; the
//! store reads [`current`] when it writes events and audit entries, so every entry names its
//! request id and source address without each use case passing them along.

use std::future::Future;
use std::time::Instant;

#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub request_id: Option<String>,
    pub source_ip: Option<String>,
    /// When the request arrived (wall clock), for deprovisioning latency; formatted only
    /// when a write records it.
    pub received_at: Option<time::OffsetDateTime>,
    /// The same instant on this node's monotonic clock.
    pub received: Option<Instant>,
}

tokio::task_local! {
    static ORIGIN: Origin;
}

/// Runs `f` with `origin` as the current request.
pub async fn with_origin<F: Future>(origin: Origin, f: F) -> F::Output {
    ORIGIN.scope(origin, f).await
}

/// The current request's origin; empty outside a request (CLI, background tasks).
pub fn current() -> Origin {
    ORIGIN.try_with(Origin::clone).unwrap_or_default()
}
