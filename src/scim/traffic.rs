//! SCIM traffic per directory and client (User-Agent), for the drift report: counted in
//! memory per minute and added to the store every few seconds (a write per request would
//! cost more than the request).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;

use super::ScimState;
use crate::core::format_time;
use crate::core::store::prelude::*;
use crate::core::store::{RecentRequest, TrafficCount};
use crate::store::SqlStore;

/// Set by the authenticated `Caller`: which directory a request spoke for.
#[derive(Clone, Default)]
pub struct DirectorySlot(pub Arc<OnceLock<String>>);

/// (directory, minute since the Unix epoch, User-Agent).
type Key = (String, i64, String);

#[derive(Default)]
pub struct Traffic {
    /// Requests, errors and the last request's time per key.
    counts: Mutex<HashMap<Key, (i64, i64, time::OffsetDateTime)>>,
    /// The newest requests per directory since the last flush (at most [`RECENT_PER_FLUSH`]).
    recent: Mutex<HashMap<String, VecDeque<Seen>>>,
}

/// One request as remembered between flushes (its time is formatted at the flush, for the
/// few that are kept, not on every request).
struct Seen {
    at: time::OffsetDateTime,
    method: String,
    path: String,
    status: u16,
    latency_us: i64,
    user_agent: String,
    request_id: Option<String>,
}

/// Requests per directory kept between flushes, and in the store.
pub const RECENT_PER_FLUSH: usize = 50;
pub const RECENT_KEPT: i64 = 200;

/// Longest User-Agent kept (the rest is cut).
const MAX_AGENT: usize = 120;

impl Traffic {
    /// Counts a request under its directory, minute and client (status ≥ 400 is an error)
    /// and remembers it among the directory's newest.
    fn record(&self, directory: &str, seen: Seen) {
        let minute = seen.at.unix_timestamp().div_euclid(60);
        if let Ok(mut m) = self.counts.lock() {
            let e = m
                .entry((directory.to_owned(), minute, seen.user_agent.clone()))
                .or_insert((0, 0, seen.at));
            e.0 += 1;
            e.1 += i64::from(seen.status >= 400);
            e.2 = seen.at;
        }
        if let Ok(mut m) = self.recent.lock() {
            let q = m.entry(directory.to_owned()).or_default();
            if q.len() == RECENT_PER_FLUSH {
                q.pop_front();
            }
            q.push_back(seen);
        }
    }

    /// Adds what was counted since the last flush to the store.
    pub async fn flush(&self, store: &SqlStore) {
        let recent: Vec<RecentRequest> = match self.recent.lock() {
            Ok(mut m) => m
                .drain()
                .flat_map(|(directory_id, q)| {
                    q.into_iter().map(move |r| RecentRequest {
                        directory_id: directory_id.clone(),
                        at: format_time(r.at),
                        method: r.method,
                        path: r.path,
                        status: i64::from(r.status),
                        latency_us: r.latency_us,
                        user_agent: r.user_agent,
                        request_id: r.request_id,
                    })
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        if let Err(e) = store.add_recent_requests(&recent, RECENT_KEPT).await {
            tracing::warn!(error = %e, "could not record recent SCIM requests");
        }
        let taken: Vec<TrafficCount> = match self.counts.lock() {
            Ok(mut m) => m
                .drain()
                .map(
                    |((directory_id, minute, user_agent), (requests, errors, last))| {
                        let start =
                            time::OffsetDateTime::from_unix_timestamp(minute * 60).unwrap_or(last);
                        let minute = format_time(start);
                        TrafficCount {
                            directory_id,
                            minute: minute.get(..16).unwrap_or(&minute).to_owned(),
                            user_agent,
                            requests,
                            errors,
                            last_request_at: format_time(last),
                        }
                    },
                )
                .collect(),
            Err(_) => return,
        };
        if let Err(e) = store.add_traffic(&taken).await {
            tracing::warn!(error = %e, "could not record SCIM traffic");
        }
    }

    /// Flushes every `every` until the task is aborted.
    pub fn spawn_flusher(
        self: &Arc<Self>,
        store: SqlStore,
        every: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                me.flush(&store).await;
            }
        })
    }
}

/// Counts each authenticated SCIM request under its directory and client; responses with
/// status ≥ 400 count as errors.
pub async fn count(State(st): State<Arc<ScimState>>, mut req: Request, next: Next) -> Response {
    let slot = DirectorySlot::default();
    req.extensions_mut().insert(slot.clone());
    let agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .take(MAX_AGENT)
        .collect::<String>();
    let method = req.method().as_str().to_owned();
    // The path only: queries carry filter values (names, emails) and are not kept.
    let path: String = req
        .extensions()
        .get::<axum::extract::OriginalUri>()
        .map_or_else(|| req.uri().path(), |u| u.0.path())
        .chars()
        .take(200)
        .collect();
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    if let Some(dir) = slot.0.get() {
        let status = resp.status().as_u16();
        crate::metrics::scim_op(dir, &method, status);
        st.traffic.record(
            dir,
            Seen {
                at: time::OffsetDateTime::now_utc(),
                method,
                path,
                status,
                latency_us: i64::try_from(started.elapsed().as_micros()).unwrap_or(i64::MAX),
                user_agent: agent,
                request_id: crate::core::context::current().request_id,
            },
        );
    }
    resp
}
