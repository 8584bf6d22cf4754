//! Timed phases: `connections` closed-loop workers, each sending its requests
//! back to back until the phase's time is up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::client::{Failure, Response, ScimClient};
use crate::load::User;
use crate::payload;
use crate::rng::Rng;
use crate::stats::{Recorder, Summary};

/// Every `FILTER_CHECK_EVERY`-th filter response of a worker (its first
/// included) is checked to hold exactly the user searched for.
const FILTER_CHECK_EVERY: u64 = 32;

/// One kind of timed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// `GET /Users/{id}` of a random user.
    GetUser,
    /// `GET /Users?filter=userName eq "…"` of a random user.
    FilterUserName,
    /// Remove a random member from the big group, then add it back.
    GroupPatch,
    /// `GET /Users?startIndex=K&count=page_size` at a random K.
    ListPage,
}

impl Phase {
    /// Every phase, in the order they run.
    pub const ALL: [Phase; 4] = [
        Phase::GetUser,
        Phase::FilterUserName,
        Phase::GroupPatch,
        Phase::ListPage,
    ];

    /// Name used in the table and as JSON key.
    pub fn name(self) -> &'static str {
        match self {
            Phase::GetUser => "get_user",
            Phase::FilterUserName => "filter_username",
            Phase::GroupPatch => "group_patch",
            Phase::ListPage => "list_page",
        }
    }
}

/// What the timed phases act on.
#[derive(Clone)]
pub struct Target {
    pub client: ScimClient,
    /// Every user created, all members of the group.
    pub users: Arc<Vec<User>>,
    pub group_id: Arc<str>,
    pub page_size: u64,
}

/// Runs one phase for `duration` with `connections` workers.
pub async fn run(
    phase: Phase,
    target: &Target,
    connections: usize,
    duration: Duration,
    seed: u64,
    server_pid: Option<u32>,
) -> Summary {
    let cpu_before = server_pid.and_then(crate::memory::cpu_time_us);
    // Group PATCH workers own disjoint sets of users: never more workers than users.
    let workers = match phase {
        Phase::GroupPatch => connections.min(target.users.len()),
        _ => connections,
    };
    let deadline = Instant::now() + duration;
    let handles: Vec<_> = (0..workers)
        .map(|w| {
            let worker = Worker {
                client: target.client.fork(),
                target: target.clone(),
                rng: Rng::new(seed, (phase as u64) << 32 | w as u64),
                recorder: Recorder::with_deadline(deadline),
            };
            tokio::spawn(worker.run(phase, w, workers, deadline))
        })
        .collect();

    let mut recorder = Recorder::default();
    let mut handles = handles.into_iter();
    // The first worker ends at the deadline: read the CPU time there, not after the
    // stragglers' last requests.
    let mut cpu_after = None;
    if let Some(first) = handles.next() {
        match first.await {
            Ok(rec) => recorder.merge(rec),
            Err(e) => recorder.error(Duration::ZERO, &Failure::Transport(e.to_string())),
        }
        cpu_after = server_pid.and_then(crate::memory::cpu_time_us);
    }
    for handle in handles {
        match handle.await {
            Ok(rec) => recorder.merge(rec),
            Err(e) => recorder.error(Duration::ZERO, &Failure::Transport(e.to_string())),
        }
    }
    let mut summary = recorder.summarize(duration);
    if let (Some(before), Some(after)) = (cpu_before, cpu_after)
        && summary.rate > 0.0
    {
        summary.server_cpu_us =
            Some(after.saturating_sub(before) as f64 / (summary.rate * summary.secs));
    }
    summary
}

/// One closed-loop worker with its own connection.
struct Worker {
    client: ScimClient,
    target: Target,
    rng: Rng,
    recorder: Recorder,
}

impl Worker {
    /// Sends requests until `deadline`; `slot` of `slots` selects the users a
    /// group PATCH worker owns.
    async fn run(mut self, phase: Phase, slot: usize, slots: usize, deadline: Instant) -> Recorder {
        let mut sent: u64 = 0;
        while Instant::now() < deadline && !self.target.users.is_empty() {
            match phase {
                Phase::GetUser => self.get_user().await,
                Phase::FilterUserName => {
                    self.filter_user_name(sent.is_multiple_of(FILTER_CHECK_EVERY))
                        .await
                }
                Phase::GroupPatch => self.group_patch(slot, slots).await,
                Phase::ListPage => self.list_page().await,
            }
            sent += 1;
        }
        self.recorder
    }

    fn random_user(&mut self) -> User {
        let users = &self.target.users;
        users[self.rng.below(users.len())].clone()
    }

    async fn get_user(&mut self) {
        let user = self.random_user();
        let started = Instant::now();
        let outcome = self.client.get(&payload::user_path(&user.id)).await;
        self.record(started, outcome.map(drop));
    }

    async fn filter_user_name(&mut self, check: bool) {
        let user = self.random_user();
        let started = Instant::now();
        let outcome = self
            .client
            .get(&payload::user_name_filter_path(user.index))
            .await
            .and_then(|response| {
                if check {
                    check_single_match(&response, &user)
                } else {
                    Ok(())
                }
            });
        self.record(started, outcome);
    }

    /// Removes one of this worker's users from the group, then adds it back:
    /// both requests are timed, and the pair always completes so the group
    /// ends the phase with all its members.
    async fn group_patch(&mut self, slot: usize, slots: usize) {
        // The users at positions slot, slot + slots, slot + 2*slots, ...
        let owned = (self.target.users.len() - slot).div_ceil(slots);
        let user = self.target.users[slot + self.rng.below(owned) * slots].clone();
        let path = payload::group_path(&self.target.group_id);

        let started = Instant::now();
        let outcome = self
            .client
            .patch(&path, payload::remove_member(&user.id))
            .await;
        self.record(started, outcome.map(drop));

        let started = Instant::now();
        let outcome = self
            .client
            .patch(&path, payload::add_members([user.id.as_str()]))
            .await;
        self.record(started, outcome.map(drop));
    }

    async fn list_page(&mut self) {
        // Start indexes that give full pages, so every request does the same work.
        let last_full_start = self
            .target
            .users
            .len()
            .saturating_sub(self.page_size_usize())
            + 1;
        let start_index = 1 + self.rng.below(last_full_start) as u64;
        let started = Instant::now();
        let outcome = self
            .client
            .get(&payload::list_page_path(start_index, self.target.page_size))
            .await;
        self.record(started, outcome.map(drop));
    }

    fn page_size_usize(&self) -> usize {
        usize::try_from(self.target.page_size).unwrap_or(usize::MAX)
    }

    fn record(&mut self, started: Instant, outcome: Result<(), Failure>) {
        let latency = started.elapsed();
        match outcome {
            Ok(()) => self.recorder.ok(latency),
            Err(failure) => self.recorder.error(latency, &failure),
        }
    }
}

/// Checks that a filter response lists exactly `user`.
fn check_single_match(response: &Response, user: &User) -> Result<(), Failure> {
    let body = response.json()?;
    let total = body.get("totalResults").and_then(Value::as_u64);
    if total != Some(1) {
        return Err(Failure::Check(format!(
            "filter on {} gave totalResults {:?}, expected 1",
            payload::user_name(user.index),
            body.get("totalResults")
        )));
    }
    let id = body
        .get("Resources")
        .and_then(|r| r.get(0))
        .and_then(|r| r.get("id"))
        .and_then(Value::as_str);
    if id != Some(user.id.as_str()) {
        return Err(Failure::Check(format!(
            "filter on {} returned id {id:?}, expected {:?}",
            payload::user_name(user.index),
            user.id
        )));
    }
    Ok(())
}
