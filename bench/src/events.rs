//! The `events` benchmark: with a webhook endpoint pointing at this process's
//! receiver, create users concurrently and time how fast their `user.created`
//! webhooks arrive, then deactivate users one at a time and time each
//! `user.deactivated` webhook from the PATCH being sent.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cli::EventsArgs;
use crate::client::ScimClient;
use crate::stats::{Recorder, Summary, round3};
use crate::webhook::{EventKey, Receiver, Tally};
use crate::{load, payload};

/// How often the wait for outstanding webhooks looks again.
const POLL: Duration = Duration::from_millis(5);
/// Pause at the end for late duplicates.
const GRACE: Duration = Duration::from_millis(500);

/// A user created in the throughput phase.
struct Created {
    id: String,
    /// When its `POST /Users` was sent.
    sent: Instant,
}

/// Figures of the throughput phase.
pub struct Throughput {
    /// The SCIM creates (one `user.created` event written each).
    pub creates: Summary,
    /// From the first create sent to the last `user.created` webhook; its
    /// `rate` is events delivered per second over that window and its
    /// latencies run from each create sent to its webhook.
    pub delivered: Summary,
    /// Created users whose `user.created` webhook never came.
    pub missing: u64,
    pub first_missing: Option<String>,
}

/// Figures of the deprovisioning phase.
pub struct Deprovisioning {
    /// The deactivation PATCHes.
    pub patches: Summary,
    /// From each PATCH sent to its `user.deactivated` webhook.
    pub webhook: Summary,
    pub missing: u64,
    pub first_missing: Option<String>,
}

/// Figures of a whole run.
pub struct EventsReport {
    pub url: String,
    pub receiver: String,
    pub connections: usize,
    pub users: u64,
    pub throughput: Throughput,
    pub deprovisioning: Deprovisioning,
    pub deliveries: Tally,
}

impl EventsReport {
    /// Failed requests, missing or rejected webhooks, and reordered events.
    pub fn total_errors(&self) -> u64 {
        let t = &self.throughput;
        let d = &self.deprovisioning;
        t.creates.errors
            + t.missing
            + d.patches.errors
            + d.missing
            + self.deliveries.rejected
            + self.deliveries.out_of_order
    }
}

/// Runs the benchmark; progress goes to stderr.
pub async fn run(args: &EventsArgs) -> Result<EventsReport, String> {
    let client = ScimClient::new(&args.url, &args.token, args.timeout())?;
    let receiver = Receiver::start(&args.listen, &args.webhook_secret).await?;
    eprintln!("[events] receiving webhooks on http://{}", receiver.addr());

    eprintln!(
        "[events] creating {} users over {} connections",
        args.users, args.connections
    );
    let (created, creates) = create_users(&client, args).await;
    eprintln!(
        "[events] {} created in {:.1} s ({:.0}/s), {} errors",
        created.len(),
        creates.secs,
        creates.rate,
        creates.errors
    );
    if let Some(err) = &creates.first_error {
        eprintln!("[events] first create error: {err}");
    }
    if created.is_empty() {
        return Err("no user could be created; nothing to measure".into());
    }
    let throughput = await_created(&receiver, &created, args.webhook_timeout(), creates).await;
    eprintln!(
        "[events] {} user.created webhooks in {:.1} s ({:.0}/s), {} missing",
        throughput.delivered.requests,
        throughput.delivered.secs,
        throughput.delivered.rate,
        throughput.missing
    );

    let count = usize::try_from(args.deprovision)
        .unwrap_or(usize::MAX)
        .min(created.len());
    eprintln!("[events] deactivating {count} users one at a time");
    let deprovisioning = deprovision(&client, &receiver, &created[..count], args).await;
    eprintln!(
        "[events] PATCH→webhook p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {} missing",
        deprovisioning.webhook.p50_ms,
        deprovisioning.webhook.p99_ms,
        deprovisioning.webhook.max_ms,
        deprovisioning.missing
    );

    tokio::time::sleep(GRACE).await;
    Ok(EventsReport {
        url: args.url.clone(),
        receiver: format!("http://{}", receiver.addr()),
        connections: args.connections,
        users: args.users,
        throughput,
        deprovisioning,
        deliveries: receiver.tally(),
    })
}

/// Creates the users over `--connections` connections, in the order they were sent.
async fn create_users(client: &ScimClient, args: &EventsArgs) -> (Vec<Created>, Summary) {
    let end = args.first_index + args.users;
    let (mut users, summary) =
        load::create_users(client, args.first_index, end, args.connections).await;
    users.sort_unstable_by_key(|u| u.sent);
    let created = users
        .into_iter()
        .map(|u| Created {
            id: u.id,
            sent: u.sent,
        })
        .collect();
    (created, summary)
}

fn created_key(id: &str) -> EventKey {
    ("user.created".to_owned(), id.to_owned())
}

/// Waits until every created user's `user.created` webhook arrived, or none
/// arrived for `timeout`.
async fn await_created(
    receiver: &Receiver,
    created: &[Created],
    timeout: Duration,
    creates: Summary,
) -> Throughput {
    let keys: Vec<EventKey> = created.iter().map(|c| created_key(&c.id)).collect();
    let creates_done = Instant::now();
    let arrivals = loop {
        let arrivals = receiver.arrivals(&keys);
        if arrivals.iter().all(Option::is_some) {
            break arrivals;
        }
        let quiet_since = receiver
            .last_arrival()
            .map_or(creates_done, |t| t.max(creates_done));
        if quiet_since.elapsed() > timeout {
            break arrivals;
        }
        tokio::time::sleep(POLL).await;
    };

    let first_sent = created.iter().map(|c| c.sent).min();
    let last_arrival = arrivals.iter().flatten().max().copied();
    let window = match (first_sent, last_arrival) {
        (Some(from), Some(to)) => to.saturating_duration_since(from),
        _ => Duration::ZERO,
    };
    let mut recorder = Recorder::default();
    let mut missing = 0;
    let mut first_missing = None;
    for (c, arrival) in created.iter().zip(&arrivals) {
        match arrival {
            Some(at) => recorder.ok(at.saturating_duration_since(c.sent)),
            None => {
                missing += 1;
                first_missing.get_or_insert_with(|| format!("user.created of user {}", c.id));
            }
        }
    }
    Throughput {
        creates,
        delivered: recorder.summarize(window),
        missing,
        first_missing,
    }
}

/// Deactivates these users one at a time, each PATCH waiting for the previous
/// user's `user.deactivated` webhook.
async fn deprovision(
    client: &ScimClient,
    receiver: &Receiver,
    users: &[Created],
    args: &EventsArgs,
) -> Deprovisioning {
    let mut patches = Recorder::default();
    let mut webhook = Recorder::default();
    let mut missing = 0;
    let mut first_missing = None;
    let started = Instant::now();
    for user in users {
        let key: EventKey = ("user.deactivated".to_owned(), user.id.clone());
        let arrival = receiver.wait_for(key.clone());
        let sent = Instant::now();
        match client
            .patch(&payload::user_path(&user.id), payload::deactivate())
            .await
        {
            Ok(_) => patches.ok(sent.elapsed()),
            Err(failure) => {
                patches.error(sent.elapsed(), &failure);
                receiver.cancel_wait(&key);
                continue;
            }
        }
        match wait_quietly(receiver, arrival, args.webhook_timeout()).await {
            Some(at) => webhook.ok(at.saturating_duration_since(sent)),
            None => {
                receiver.cancel_wait(&key);
                missing += 1;
                first_missing
                    .get_or_insert_with(|| format!("user.deactivated of user {}", user.id));
            }
        }
    }
    let elapsed = started.elapsed();
    Deprovisioning {
        patches: patches.summarize(elapsed),
        webhook: webhook.summarize(elapsed),
        missing,
        first_missing,
    }
}

/// The event's arrival, unless no delivery at all arrives for `timeout`.
async fn wait_quietly(
    receiver: &Receiver,
    mut arrival: tokio::sync::oneshot::Receiver<Instant>,
    timeout: Duration,
) -> Option<Instant> {
    let since = Instant::now();
    loop {
        match tokio::time::timeout(timeout / 10, &mut arrival).await {
            Ok(at) => return at.ok(),
            Err(_) => {
                let quiet_since = receiver.last_arrival().map_or(since, |t| t.max(since));
                if quiet_since.elapsed() > timeout {
                    return None;
                }
            }
        }
    }
}

/// The report as one JSON object.
pub fn to_json(report: &EventsReport) -> Value {
    let t = &report.throughput;
    let d = &report.deprovisioning;
    let tally = &report.deliveries;
    let latencies = |s: &Summary| {
        json!({
            "p50_ms": round3(s.p50_ms),
            "p99_ms": round3(s.p99_ms),
            "max_ms": round3(s.max_ms),
        })
    };
    let mut patches = d.patches.to_json("per_sec");
    patches["max_ms"] = json!(round3(d.patches.max_ms));
    json!({
        "url": report.url,
        "receiver": report.receiver,
        "connections": report.connections,
        "users": report.users,
        "throughput": {
            "events_written": t.creates.requests - t.creates.errors,
            "events_written_per_sec": round3(t.creates.rate),
            "creates": t.creates.to_json("per_sec"),
            "events_delivered": t.delivered.requests,
            "events_delivered_per_sec": round3(t.delivered.rate),
            "delivery_secs": round3(t.delivered.secs),
            "create_to_webhook": latencies(&t.delivered),
            "missing": t.missing,
            "first_missing": t.first_missing,
        },
        "deprovisioning": {
            "users": d.patches.requests,
            "webhook": latencies(&d.webhook),
            "webhooks_received": d.webhook.requests,
            "missing": d.missing,
            "first_missing": d.first_missing,
            "scim_patch": patches,
        },
        "deliveries": {
            "received": tally.received,
            "unique": tally.unique,
            "duplicates": tally.duplicates,
            "out_of_order": tally.out_of_order,
            "first_out_of_order": tally.first_out_of_order,
            "rejected": tally.rejected,
            "first_rejected": tally.first_rejected,
            "by_type": tally.by_type,
        },
        "total_errors": report.total_errors(),
    })
}

/// The report as a table, followed by the delivery counts and first errors.
pub fn to_table(report: &EventsReport) -> String {
    let t = &report.throughput;
    let d = &report.deprovisioning;
    let tally = &report.deliveries;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Event benchmark of {}: webhooks received at {}, {} connections, {} users",
        report.url, report.receiver, report.connections, report.users
    );
    let _ = writeln!(
        out,
        "{:<22} {:>10} {:<9} {:>9} {:>9} {:>9} {:>7} {:>7}",
        "measure", "rate", "unit", "p50 ms", "p99 ms", "max ms", "count", "errors"
    );
    let mut row = |name: &str, rate: f64, unit: &str, s: &Summary, errors: u64| {
        let _ = writeln!(
            out,
            "{:<22} {:>10.1} {:<9} {:>9.3} {:>9.3} {:>9.3} {:>7} {:>7}",
            name, rate, unit, s.p50_ms, s.p99_ms, s.max_ms, s.requests, errors
        );
    };
    row(
        "events_written",
        t.creates.rate,
        "events/s",
        &t.creates,
        t.creates.errors,
    );
    row(
        "events_delivered",
        t.delivered.rate,
        "events/s",
        &t.delivered,
        t.missing,
    );
    row(
        "deprovision_scim",
        d.patches.rate,
        "req/s",
        &d.patches,
        d.patches.errors,
    );
    row(
        "deprovision_webhook",
        d.webhook.rate,
        "events/s",
        &d.webhook,
        d.missing,
    );
    let _ = writeln!(
        out,
        "events_written: SCIM POST /Users latency; events_delivered: first create sent → last \
         user.created webhook ({:.2} s), latency create sent → its webhook; deprovision_webhook: \
         PATCH sent → user.deactivated webhook",
        t.delivered.secs
    );
    let by_type: Vec<String> = tally
        .by_type
        .iter()
        .map(|(k, n)| format!("{k}={n}"))
        .collect();
    let _ = writeln!(
        out,
        "deliveries: {} received, {} unique, {} duplicates, {} out of order, {} rejected; {}",
        tally.received,
        tally.unique,
        tally.duplicates,
        tally.out_of_order,
        tally.rejected,
        by_type.join(" ")
    );
    let _ = writeln!(out, "total errors: {}", report.total_errors());
    let firsts = [
        ("create", &t.creates.first_error),
        ("missing webhook", &t.first_missing),
        ("deprovision PATCH", &d.patches.first_error),
        ("missing webhook", &d.first_missing),
        ("out-of-order delivery", &tally.first_out_of_order),
        ("rejected delivery", &tally.first_rejected),
    ];
    for (what, first) in firsts {
        if let Some(e) = first {
            let _ = writeln!(out, "first {what}: {e}");
        }
    }
    out
}
