//! Command-line interface.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Load generator for SCIM 2.0 servers.
#[derive(Debug, Parser)]
#[command(name = "roster-bench", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The benchmarks the tool can run.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load users and a group into a SCIM 2.0 server, then time reads, filters,
    /// group PATCHes and list pages against it.
    Scim(ScimArgs),
    /// Receive a SCIM server's signed webhooks (Standard Webhooks) and time
    /// event delivery: throughput under concurrent creates, then the latency
    /// from a deactivation PATCH to its `user.deactivated` webhook.
    Events(EventsArgs),
}

/// Options of the `scim` benchmark.
#[derive(Debug, Args)]
pub struct ScimArgs {
    /// Base URL of the SCIM service, e.g. http://127.0.0.1:8080/scim/v2
    /// (plain HTTP only); the URLs of several nodes of one service, comma-separated, to
    /// spread the connections of every phase over them.
    #[arg(long)]
    pub url: String,

    /// Bearer token sent in the Authorization header.
    #[arg(long, default_value = "")]
    pub token: String,

    /// Number of users to load when --sizes is not given.
    #[arg(long, default_value_t = 100_000)]
    pub users: u64,

    /// Comma-separated, increasing population sizes: load up to each size in
    /// turn and run every timed phase at it (e.g. 1000,100000).
    #[arg(long, value_delimiter = ',')]
    pub sizes: Option<Vec<u64>>,

    /// Concurrent connections (one closed-loop worker each).
    #[arg(long, default_value_t = 16)]
    pub connections: usize,

    /// Length of each timed phase, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration_secs: f64,

    /// Members added per PATCH while filling the group.
    #[arg(long, default_value_t = 1000)]
    pub patch_batch: usize,

    /// Page size of the list phase (the `count` parameter).
    #[arg(long, default_value_t = 100)]
    pub page_size: u64,

    /// Per-request timeout, in seconds; a request that takes longer is an error.
    #[arg(long, default_value_t = 30.0)]
    pub timeout_secs: f64,

    /// PID of the server process: sample its VmRSS and report the peak.
    #[arg(long)]
    pub server_pid: Option<u32>,

    /// Seed of the random choices, for repeatable request sequences.
    #[arg(long, default_value_t = 0x5c1d)]
    pub seed: u64,

    /// Worker threads of the client runtime (default: one per core).
    #[arg(long)]
    pub client_threads: Option<usize>,

    /// Comma-separated timed phases to run (default: all of get_user,
    /// filter_username, group_patch, list_page).
    #[arg(long, value_delimiter = ',')]
    pub phases: Option<Vec<String>>,

    /// Print one JSON object with every figure instead of the table.
    #[arg(long)]
    pub json: bool,

    /// Bearer tokens of directories in other organizations (comma-separated). After the
    /// sizes, creates --spread-users users in the organization of --token, then as many
    /// spread over it and these, to compare write throughput across organizations with
    /// that in one.
    #[arg(long, value_delimiter = ',')]
    pub org_tokens: Vec<String>,

    /// Users created in each of the two --org-tokens measurements.
    #[arg(long, default_value_t = 5000)]
    pub spread_users: u64,

    /// A shell command run after each size is loaded and before its timed phases (e.g. the
    /// `VACUUM ANALYZE` that a production PostgreSQL's autovacuum would have run by then);
    /// the benchmark stops if it fails.
    #[arg(long)]
    pub after_load: Option<String>,
}

impl ScimArgs {
    /// The timed phases to run, in their usual order.
    pub fn phases(&self) -> Result<Vec<crate::phases::Phase>, String> {
        use crate::phases::Phase;
        let Some(names) = &self.phases else {
            return Ok(Phase::ALL.to_vec());
        };
        for name in names {
            if !Phase::ALL.iter().any(|p| p.name() == name) {
                return Err(format!("--phases: unknown phase {name:?}"));
            }
        }
        Ok(Phase::ALL
            .into_iter()
            .filter(|p| names.iter().any(|n| n == p.name()))
            .collect())
    }

    /// The population sizes to measure at, checked to be positive and increasing.
    pub fn sizes(&self) -> Result<Vec<u64>, String> {
        let sizes = self.sizes.clone().unwrap_or_else(|| vec![self.users]);
        if sizes.is_empty() || sizes[0] == 0 {
            return Err("sizes must be positive".into());
        }
        if sizes.windows(2).any(|w| w[0] >= w[1]) {
            return Err("--sizes must be strictly increasing".into());
        }
        Ok(sizes)
    }

    /// Checks the options that clap cannot check by itself.
    pub fn validate(&self) -> Result<(), String> {
        self.sizes()?;
        self.phases()?;
        if self.connections == 0 {
            return Err("--connections must be at least 1".into());
        }
        if !(self.duration_secs > 0.0 && self.duration_secs.is_finite()) {
            return Err("--duration-secs must be positive".into());
        }
        if !(self.timeout_secs > 0.0 && self.timeout_secs.is_finite()) {
            return Err("--timeout-secs must be positive".into());
        }
        if self.patch_batch == 0 || self.page_size == 0 {
            return Err("--patch-batch and --page-size must be at least 1".into());
        }
        Ok(())
    }

    /// Length of each timed phase.
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.duration_secs)
    }

    /// Per-request timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout_secs)
    }
}

/// Options of the `events` benchmark.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Base URL of the SCIM service, e.g. http://127.0.0.1:8080/scim/v2
    /// (plain HTTP only).
    #[arg(long)]
    pub url: String,

    /// Bearer token sent in the Authorization header.
    #[arg(long, default_value = "")]
    pub token: String,

    /// Address the webhook receiver listens on; the server's webhook endpoint
    /// must point at it (any path).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,

    /// The endpoint's signing secret (`whsec_<base64>`); every delivery's
    /// `webhook-signature` is checked against it.
    #[arg(long)]
    pub webhook_secret: String,

    /// Users created in the throughput phase (one `user.created` event each).
    #[arg(long, default_value_t = 5000)]
    pub users: u64,

    /// Concurrent SCIM connections of the throughput phase.
    #[arg(long, default_value_t = 16)]
    pub connections: usize,

    /// Users deactivated one at a time in the deprovisioning phase (at most
    /// --users).
    #[arg(long, default_value_t = 500)]
    pub deprovision: u64,

    /// First userName index, so that runs against one server do not collide.
    #[arg(long, default_value_t = 0)]
    pub first_index: u64,

    /// Per-request timeout, in seconds; a request that takes longer is an error.
    #[arg(long, default_value_t = 30.0)]
    pub timeout_secs: f64,

    /// How long to wait for a webhook still missing (no new delivery for this
    /// long ends the wait), in seconds.
    #[arg(long, default_value_t = 30.0)]
    pub webhook_timeout_secs: f64,

    /// Worker threads of the client runtime (default: one per core).
    #[arg(long)]
    pub client_threads: Option<usize>,

    /// Print one JSON object with every figure instead of the table.
    #[arg(long)]
    pub json: bool,
}

impl EventsArgs {
    /// Checks the options that clap cannot check by itself.
    pub fn validate(&self) -> Result<(), String> {
        if self.users == 0 || self.connections == 0 {
            return Err("--users and --connections must be at least 1".into());
        }
        if self.deprovision > self.users {
            return Err("--deprovision cannot exceed --users".into());
        }
        for (name, v) in [
            ("--timeout-secs", self.timeout_secs),
            ("--webhook-timeout-secs", self.webhook_timeout_secs),
        ] {
            if !(v > 0.0 && v.is_finite()) {
                return Err(format!("{name} must be positive"));
            }
        }
        if !self.webhook_secret.starts_with("whsec_") {
            return Err("--webhook-secret must be a whsec_<base64> secret".into());
        }
        Ok(())
    }

    /// Per-request timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout_secs)
    }

    /// Longest wait for a webhook without any delivery arriving.
    pub fn webhook_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.webhook_timeout_secs)
    }
}
