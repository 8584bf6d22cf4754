//! The `scim` benchmark: for each population size, load users up to it, fill
//! the group, then run every timed phase.

use std::sync::Arc;

use crate::cli::ScimArgs;
use crate::client::ScimClient;
use crate::load::{self, GroupFill, User};
use crate::memory::RssSampler;
use crate::phases::{self, Phase, Target};
use crate::stats::Summary;

/// Figures measured at one population size.
pub struct SizeReport {
    /// The size asked for.
    pub target: u64,
    /// Users actually created so far (less than `target` if creates failed).
    pub population: usize,
    /// Creation of the users added for this size.
    pub creates: Summary,
    /// Adding those users to the group.
    pub group_fill: GroupFill,
    /// The timed phases, in order.
    pub phases: Vec<(Phase, Summary)>,
    /// Peak server RSS while loading and measuring this size, in KiB.
    pub peak_rss_kb: Option<u64>,
}

/// Figures of a whole run.
pub struct RunReport {
    pub url: String,
    pub connections: usize,
    pub duration_secs: f64,
    pub group_id: String,
    pub sizes: Vec<SizeReport>,
    /// Peak server RSS sampled over the run, in KiB.
    pub peak_rss_kb: Option<u64>,
    /// The server's `VmHWM` at the end, in KiB.
    pub vm_hwm_kb: Option<u64>,
    /// Creates in one organization, then spread over several (`--org-tokens`).
    pub spread: Option<Spread>,
}

/// Write throughput in one organization against the same writes spread over several.
pub struct Spread {
    pub orgs: usize,
    pub one_org: Summary,
    pub across_orgs: Summary,
}

/// Indexes of the users the spread measurement creates (above any population size).
const SPREAD_ONE_ORG_FROM: u64 = crate::payload::SCATTERED_FROM;
const SPREAD_ACROSS_FROM: u64 = 2_000_000_000;

/// Creates `n` users in the organization of `client`, then `n` spread over it and `others`.
async fn spread(args: &ScimArgs, client: &ScimClient) -> Result<Spread, String> {
    let n = args.spread_users;
    let mut clients = vec![client.clone()];
    for t in &args.org_tokens {
        clients.push(ScimClient::new(&args.url, t, args.timeout())?);
    }
    eprintln!("[spread] creating {n} users in one organization");
    let (_, one_org) = load::create_users(
        client,
        SPREAD_ONE_ORG_FROM,
        SPREAD_ONE_ORG_FROM + n,
        args.connections,
    )
    .await;
    eprintln!(
        "[spread] one organization: {:.0}/s, {} errors",
        one_org.rate, one_org.errors
    );
    eprintln!(
        "[spread] creating {n} users over {} organizations",
        clients.len()
    );
    let (_, across_orgs) = load::create_users_over(
        &clients,
        SPREAD_ACROSS_FROM,
        SPREAD_ACROSS_FROM + n,
        args.connections,
    )
    .await;
    eprintln!(
        "[spread] {} organizations: {:.0}/s, {} errors",
        clients.len(),
        across_orgs.rate,
        across_orgs.errors
    );
    Ok(Spread {
        orgs: clients.len(),
        one_org,
        across_orgs,
    })
}

impl RunReport {
    /// Requests that failed, over every phase and size.
    pub fn total_errors(&self) -> u64 {
        self.sizes
            .iter()
            .map(|s| {
                s.creates.errors
                    + s.group_fill.patches.errors
                    + s.phases.iter().map(|(_, p)| p.errors).sum::<u64>()
            })
            .sum::<u64>()
            + self
                .spread
                .as_ref()
                .map_or(0, |s| s.one_org.errors + s.across_orgs.errors)
    }
}

/// Runs the benchmark; progress goes to stderr.
pub async fn run(args: &ScimArgs) -> Result<RunReport, String> {
    let sizes = args.sizes()?;
    let client = ScimClient::new(&args.url, &args.token, args.timeout())?;
    let sampler = args.server_pid.map(RssSampler::start).transpose()?;

    let mut users: Arc<Vec<User>> = Arc::new(Vec::new());
    let mut group_id: Option<Arc<str>> = None;
    let mut loaded_up_to = 0;
    let mut reports = Vec::new();

    for size in sizes {
        eprintln!(
            "[size {size}] creating users {loaded_up_to}..{size} over {} connections",
            args.connections
        );
        let cpu_before = args.server_pid.and_then(crate::memory::cpu_time_us);
        let (created, mut creates) =
            load::create_users(&client, loaded_up_to, size, args.connections).await;
        let cpu_after = args.server_pid.and_then(crate::memory::cpu_time_us);
        if let (Some(b), Some(a)) = (cpu_before, cpu_after)
            && !created.is_empty()
        {
            creates.server_cpu_us = Some(a.saturating_sub(b) as f64 / created.len() as f64);
        }
        loaded_up_to = size;
        eprintln!(
            "[size {size}] {} created in {:.1} s ({:.0}/s), {} errors",
            created.len(),
            creates.secs,
            creates.rate,
            creates.errors
        );
        if let Some(err) = &creates.first_error {
            eprintln!("[size {size}] first create error: {err}");
        }
        if created.is_empty() && users.is_empty() {
            return Err("no user could be created; nothing to measure".into());
        }

        let gid = match &group_id {
            Some(gid) => Arc::clone(gid),
            None => {
                let gid: Arc<str> = load::create_group(&client)
                    .await
                    .map_err(|e| format!("cannot create the group: {e}"))?
                    .into();
                group_id = Some(Arc::clone(&gid));
                gid
            }
        };
        let group_fill = load::add_members(&client, &gid, &created, args.patch_batch).await;
        eprintln!(
            "[size {size}] group {gid}: {} members added in {:.1} s, {} PATCH errors",
            group_fill.members_added, group_fill.patches.secs, group_fill.patches.errors
        );
        if let Some(err) = &group_fill.patches.first_error {
            eprintln!("[size {size}] first group PATCH error: {err}");
        }
        if let Some(cmd) = &args.after_load {
            eprintln!("[size {size}] after load: {cmd}");
            let status = std::process::Command::new("sh")
                .arg("-c")
                .arg(cmd)
                .status()
                .map_err(|e| format!("cannot run --after-load: {e}"))?;
            if !status.success() {
                return Err(format!("--after-load failed: {status}"));
            }
        }
        // No phase holds a clone of `users` between sizes, so this does not copy.
        Arc::make_mut(&mut users).extend(created);

        let target = Target {
            client: client.clone(),
            users: Arc::clone(&users),
            group_id: gid,
            page_size: args.page_size,
        };
        let mut phase_results = Vec::new();
        for phase in args.phases()? {
            eprintln!(
                "[size {size}] phase {} for {} s",
                phase.name(),
                args.duration_secs
            );
            let summary = phases::run(
                phase,
                &target,
                args.connections,
                args.duration(),
                args.seed,
                args.server_pid,
            )
            .await;
            eprintln!(
                "[size {size}] phase {}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} errors{}",
                phase.name(),
                summary.rate,
                summary.p50_ms,
                summary.p99_ms,
                summary.errors,
                summary
                    .server_cpu_us
                    .map_or_else(String::new, |us| format!(", server CPU {us:.0} µs/req"))
            );
            phase_results.push((phase, summary));
        }
        drop(target);

        reports.push(SizeReport {
            target: size,
            population: users.len(),
            creates,
            group_fill,
            phases: phase_results,
            peak_rss_kb: sampler.as_ref().map(RssSampler::take_segment_peak),
        });
    }

    let spread = if args.org_tokens.is_empty() {
        None
    } else {
        Some(spread(args, &client).await?)
    };
    let (peak_rss_kb, vm_hwm_kb) = match sampler {
        Some(s) => {
            let (peak, hwm) = s.finish();
            (Some(peak), hwm)
        }
        None => (None, None),
    };
    Ok(RunReport {
        url: args.url.clone(),
        connections: args.connections,
        duration_secs: args.duration_secs,
        group_id: group_id.map(|g| g.to_string()).unwrap_or_default(),
        sizes: reports,
        peak_rss_kb,
        vm_hwm_kb,
        spread,
    })
}
