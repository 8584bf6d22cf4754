//! Server memory: samples `VmRSS` of `/proc/PID/status` in the background.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;

/// How often the resident set size is read.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// Background sampler of one process's resident set size.
pub struct RssSampler {
    pid: u32,
    /// Peak since the sampler started, in KiB.
    overall_kb: Arc<AtomicU64>,
    /// Peak since the last [`RssSampler::take_segment_peak`], in KiB.
    segment_kb: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl RssSampler {
    /// Starts sampling; fails when the process's status cannot be read.
    pub fn start(pid: u32) -> Result<Self, String> {
        let first = read_status_kb(pid, "VmRSS:")
            .ok_or_else(|| format!("cannot read VmRSS of /proc/{pid}/status"))?;
        let overall_kb = Arc::new(AtomicU64::new(first));
        let segment_kb = Arc::new(AtomicU64::new(first));
        let task = tokio::spawn({
            let overall_kb = Arc::clone(&overall_kb);
            let segment_kb = Arc::clone(&segment_kb);
            async move {
                let mut tick = tokio::time::interval(SAMPLE_EVERY);
                loop {
                    tick.tick().await;
                    if let Some(kb) = read_status_kb(pid, "VmRSS:") {
                        overall_kb.fetch_max(kb, Ordering::Relaxed);
                        segment_kb.fetch_max(kb, Ordering::Relaxed);
                    }
                }
            }
        });
        Ok(RssSampler {
            pid,
            overall_kb,
            segment_kb,
            task,
        })
    }

    /// Peak RSS since the previous call (or the start), in KiB; the next
    /// segment starts from the current RSS.
    pub fn take_segment_peak(&self) -> u64 {
        let now = read_status_kb(self.pid, "VmRSS:").unwrap_or(0);
        self.overall_kb.fetch_max(now, Ordering::Relaxed);
        self.segment_kb.swap(now, Ordering::Relaxed).max(now)
    }

    /// Stops sampling; returns the sampled peak and the kernel's `VmHWM`
    /// (peak RSS over the process's whole life), in KiB.
    pub fn finish(self) -> (u64, Option<u64>) {
        self.task.abort();
        let hwm = read_status_kb(self.pid, "VmHWM:");
        if let Some(now) = read_status_kb(self.pid, "VmRSS:") {
            self.overall_kb.fetch_max(now, Ordering::Relaxed);
        }
        (self.overall_kb.load(Ordering::Relaxed), hwm)
    }
}

/// A `kB` field of `/proc/PID/status`.
fn read_status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_kb(&status, field)
}

fn parse_kb(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

/// CPU time the process has used so far (user and system, every thread), in
/// microseconds: fields 14 and 15 of `/proc/PID/stat`, in USER_HZ (100/s on Linux).
pub fn cpu_time_us(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_us(&stat)
}

fn parse_cpu_us(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses: count after its last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) * 10_000)
}

/// KiB to MiB.
pub fn kb_to_mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_fields() {
        let status = "Name:\tx\nVmHWM:\t   2048 kB\nVmRSS:\t    1024 kB\n";
        assert_eq!(parse_kb(status, "VmRSS:"), Some(1024));
        assert_eq!(parse_kb(status, "VmHWM:"), Some(2048));
        assert_eq!(parse_kb(status, "VmSwap:"), None);
    }

    #[test]
    fn parses_cpu_ticks() {
        let stat = "42 (a b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0";
        assert_eq!(parse_cpu_us(stat), Some(3_250_000));
    }

    #[test]
    fn reads_own_process() {
        assert!(read_status_kb(std::process::id(), "VmRSS:").is_some_and(|kb| kb > 0));
    }
}
