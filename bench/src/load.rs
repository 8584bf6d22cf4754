//! Load phase: create users concurrently, then make them all members of one
//! group with batched PATCHes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::client::{Failure, ScimClient};
use crate::payload;
use crate::stats::{Recorder, Summary, round3};

/// A user the benchmark created.
#[derive(Debug, Clone)]
pub struct User {
    /// The index in its `userName` (`user{index}@bench.example`).
    pub index: u64,
    /// The `id` the server assigned.
    pub id: String,
    /// When its `POST /Users` was sent.
    pub sent: Instant,
}

/// Creates the users with indexes `from..to` over `connections` concurrent
/// connections. Returns the users created, sorted by index, and the figures.
pub async fn create_users(
    client: &ScimClient,
    from: u64,
    to: u64,
    connections: usize,
) -> (Vec<User>, Summary) {
    create_users_over(std::slice::from_ref(client), from, to, connections).await
}

/// `create_users`, connection `i` sending to `clients[i % clients.len()]` (directories of
/// several organizations).
pub async fn create_users_over(
    clients: &[ScimClient],
    from: u64,
    to: u64,
    connections: usize,
) -> (Vec<User>, Summary) {
    let next = Arc::new(AtomicU64::new(from));
    let started = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|i| {
            let client = clients[i % clients.len()].fork();
            let next = Arc::clone(&next);
            tokio::spawn(async move { create_worker(client, next, to).await })
        })
        .collect();

    let mut users = Vec::with_capacity(usize::try_from(to - from).unwrap_or(0));
    let mut recorder = Recorder::default();
    for worker in workers {
        match worker.await {
            Ok((created, rec)) => {
                users.extend(created);
                recorder.merge(rec);
            }
            Err(e) => recorder.error(Duration::ZERO, &Failure::Transport(e.to_string())),
        }
    }
    let summary = recorder.summarize(started.elapsed());
    users.sort_unstable_by_key(|u| u.index);
    (users, summary)
}

/// One connection's share of the creates: takes indexes until none is left.
async fn create_worker(client: ScimClient, next: Arc<AtomicU64>, to: u64) -> (Vec<User>, Recorder) {
    let mut users = Vec::new();
    let mut recorder = Recorder::default();
    loop {
        let index = next.fetch_add(1, Ordering::Relaxed);
        if index >= to {
            break;
        }
        let started = Instant::now();
        let outcome = client
            .post("/Users", payload::user(index))
            .await
            .and_then(|r| r.string_attr("id"));
        match outcome {
            Ok(id) => {
                recorder.ok(started.elapsed());
                users.push(User {
                    index,
                    id,
                    sent: started,
                });
            }
            Err(failure) => recorder.error(started.elapsed(), &failure),
        }
    }
    (users, recorder)
}

/// Creates the benchmark group; returns its id.
pub async fn create_group(client: &ScimClient) -> Result<String, Failure> {
    client
        .post("/Groups", payload::group())
        .await?
        .string_attr("id")
}

/// Figures of adding members to the group.
#[derive(Debug, Clone)]
pub struct GroupFill {
    /// Members sent in PATCHes that succeeded.
    pub members_added: u64,
    /// PATCH requests, with their latencies and errors.
    pub patches: Summary,
}

impl GroupFill {
    /// Members added per second.
    pub fn members_per_sec(&self) -> f64 {
        if self.patches.secs > 0.0 {
            self.members_added as f64 / self.patches.secs
        } else {
            0.0
        }
    }

    /// The figures as JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "members_added": self.members_added,
            "members_per_sec": round3(self.members_per_sec()),
            "patches": self.patches.to_json("patches_per_sec"),
        })
    }
}

/// Adds these users to the group, `batch` members per PATCH, one PATCH at a
/// time (concurrent PATCHes of one group would only contend).
pub async fn add_members(
    client: &ScimClient,
    group_id: &str,
    users: &[User],
    batch: usize,
) -> GroupFill {
    let path = payload::group_path(group_id);
    let mut recorder = Recorder::default();
    let mut members_added = 0;
    let started = Instant::now();
    for chunk in users.chunks(batch) {
        let body = payload::add_members(chunk.iter().map(|u| u.id.as_str()));
        let sent = Instant::now();
        match client.patch(&path, body).await {
            Ok(_) => {
                recorder.ok(sent.elapsed());
                members_added += chunk.len() as u64;
            }
            Err(failure) => recorder.error(sent.elapsed(), &failure),
        }
    }
    GroupFill {
        members_added,
        patches: recorder.summarize(started.elapsed()),
    }
}
