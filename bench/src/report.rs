//! Output: a human-readable table, or one JSON object.

use std::fmt::Write as _;

use serde_json::{Map, Value, json};

use crate::memory::kb_to_mb;
use crate::scim::RunReport;
use crate::stats::{Summary, round3};

/// The report as one JSON object.
pub fn to_json(report: &RunReport) -> Value {
    let sizes: Vec<Value> = report
        .sizes
        .iter()
        .map(|size| {
            let phases: Map<String, Value> = size
                .phases
                .iter()
                .map(|(phase, s)| (phase.name().to_owned(), s.to_json("rps")))
                .collect();
            json!({
                "users": size.target,
                "population": size.population,
                "creates_per_sec": round3(size.creates.rate),
                "creates": size.creates.to_json("per_sec"),
                "group_fill": size.group_fill.to_json(),
                "phases": phases,
                "peak_rss_mb": size.peak_rss_kb.map(|kb| round3(kb_to_mb(kb))),
            })
        })
        .collect();
    json!({
        "url": report.url,
        "connections": report.connections,
        "duration_secs": report.duration_secs,
        "group_id": report.group_id,
        "sizes": sizes,
        "peak_rss_mb": report.peak_rss_kb.map(|kb| round3(kb_to_mb(kb))),
        "vm_hwm_mb": report.vm_hwm_kb.map(|kb| round3(kb_to_mb(kb))),
        "total_errors": report.total_errors(),
        "spread": report.spread.as_ref().map(|s| json!({
            "orgs": s.orgs,
            "one_org": s.one_org.to_json("per_sec"),
            "across_orgs": s.across_orgs.to_json("per_sec"),
        })),
    })
}

/// The report as a table, with the first error of each row that had any.
pub fn to_table(report: &RunReport) -> String {
    let mut out = String::new();
    let mut errors = Vec::new();
    let _ = writeln!(
        out,
        "SCIM benchmark of {}: {} connections, {} s per phase",
        report.url, report.connections, report.duration_secs
    );
    let _ = writeln!(
        out,
        "{:>8} {:<16} {:>12} {:<10} {:>9} {:>9} {:>9} {:>7} {:>9}",
        "users", "phase", "rate", "unit", "p50 ms", "p99 ms", "requests", "errors", "cpu µs/r"
    );
    for size in &report.sizes {
        let mut row = |name: &str, rate: f64, unit: &str, s: &Summary| {
            let _ = writeln!(
                out,
                "{:>8} {:<16} {:>12.1} {:<10} {:>9.3} {:>9.3} {:>9} {:>7} {:>9}",
                size.target,
                name,
                rate,
                unit,
                s.p50_ms,
                s.p99_ms,
                s.requests,
                s.errors,
                s.server_cpu_us
                    .map_or_else(|| "-".to_owned(), |us| format!("{us:.0}"))
            );
            if let Some(e) = &s.first_error {
                errors.push(format!("users={} {name}: {e}", size.target));
            }
        };
        row("create", size.creates.rate, "creates/s", &size.creates);
        let fill = &size.group_fill;
        row(
            "group_fill",
            fill.members_per_sec(),
            "members/s",
            &fill.patches,
        );
        for (phase, s) in &size.phases {
            row(phase.name(), s.rate, "req/s", s);
        }
        if let Some(kb) = size.peak_rss_kb {
            let _ = writeln!(
                out,
                "{:>8} server peak RSS while at this size: {:.1} MiB",
                size.target,
                kb_to_mb(kb)
            );
        }
    }
    if let Some(sp) = &report.spread {
        let _ = writeln!(
            out,
            "creates in one organization: {:.1}/s; spread over {}: {:.1}/s (ratio {:.2})",
            sp.one_org.rate,
            sp.orgs,
            sp.across_orgs.rate,
            if sp.one_org.rate > 0.0 {
                sp.across_orgs.rate / sp.one_org.rate
            } else {
                0.0
            }
        );
    }
    if let Some(kb) = report.peak_rss_kb {
        let _ = write!(out, "server peak RSS (sampled): {:.1} MiB", kb_to_mb(kb));
        if let Some(hwm) = report.vm_hwm_kb {
            let _ = write!(out, ", VmHWM: {:.1} MiB", kb_to_mb(hwm));
        }
        out.push('\n');
    }
    let _ = writeln!(out, "total errors: {}", report.total_errors());
    for e in errors {
        let _ = writeln!(out, "first error of {e}");
    }
    out
}
