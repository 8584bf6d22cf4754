//! Request counting and latency percentiles.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::client::Failure;

/// What one worker observed: every latency, and the errors.
///
/// With a deadline, only the requests completed by it count towards the rate
/// (a closed-loop phase ends with requests still in flight); their latencies
/// and errors are recorded all the same.
#[derive(Debug, Default)]
pub struct Recorder {
    latencies_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
    deadline: Option<Instant>,
    in_window: u64,
}

impl Recorder {
    /// A recorder whose rate counts the requests completed by `deadline`.
    pub fn with_deadline(deadline: Instant) -> Self {
        Recorder {
            deadline: Some(deadline),
            ..Recorder::default()
        }
    }

    /// Records a request that succeeded.
    pub fn ok(&mut self, latency: Duration) {
        self.count(latency);
    }

    /// Records a request that failed.
    pub fn error(&mut self, latency: Duration, failure: &Failure) {
        self.count(latency);
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(failure.to_string());
        }
    }

    fn count(&mut self, latency: Duration) {
        self.latencies_us.push(micros(latency));
        if self.deadline.is_none_or(|d| Instant::now() <= d) {
            self.in_window += 1;
        }
    }

    /// Folds another worker's observations into this one.
    pub fn merge(&mut self, other: Recorder) {
        self.latencies_us.extend(other.latencies_us);
        self.errors += other.errors;
        self.in_window += other.in_window;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    /// The figures of a run whose rate is taken over `window`: its whole
    /// length, or the time up to the deadline.
    pub fn summarize(mut self, window: Duration) -> Summary {
        self.latencies_us.sort_unstable();
        let requests = self.latencies_us.len() as u64;
        let secs = window.as_secs_f64();
        Summary {
            requests,
            errors: self.errors,
            secs,
            rate: if secs > 0.0 {
                self.in_window as f64 / secs
            } else {
                0.0
            },
            p50_ms: percentile_ms(&self.latencies_us, 0.50),
            p99_ms: percentile_ms(&self.latencies_us, 0.99),
            max_ms: percentile_ms(&self.latencies_us, 1.0),
            first_error: self.first_error,
            server_cpu_us: None,
        }
    }
}

/// The figures of one timed run of requests.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Requests completed, errors included (in a timed phase, also those
    /// that completed after its deadline).
    pub requests: u64,
    /// Requests that failed (non-2xx, transport error or failed check).
    pub errors: u64,
    /// Length of the window the rate is taken over.
    pub secs: f64,
    /// Requests completed in the window, per second.
    pub rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// The slowest request.
    pub max_ms: f64,
    /// Description of the first error, with its response body.
    pub first_error: Option<String>,
    /// With `--server-pid`: the server's CPU time over the phase per request
    /// completed in it, in microseconds. Steadier than the rate on a machine
    /// whose speed varies, and it does not count the load generator.
    pub server_cpu_us: Option<f64>,
}

impl Summary {
    /// The summary as JSON, the rate under the key `rate_key`.
    pub fn to_json(&self, rate_key: &str) -> Value {
        let mut value = json!({
            "requests": self.requests,
            "errors": self.errors,
            "secs": round3(self.secs),
            "p50_ms": round3(self.p50_ms),
            "p99_ms": round3(self.p99_ms),
            "first_error": self.first_error,
            "server_cpu_us_per_req": self.server_cpu_us.map(round3),
        });
        value[rate_key] = json!(round3(self.rate));
        value
    }
}

/// Rounds to three decimals, for readable JSON.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// Nearest-rank percentile of sorted microsecond latencies, in milliseconds.
fn percentile_ms(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted_us.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted_us.len()) - 1;
    f64::from(sorted_us[index]) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut rec = Recorder::default();
        for ms in 1..=100 {
            rec.ok(Duration::from_millis(ms));
        }
        let s = rec.summarize(Duration::from_secs(2));
        assert_eq!(s.requests, 100);
        assert_eq!(s.rate, 50.0);
        assert_eq!(s.p50_ms, 50.0);
        assert_eq!(s.p99_ms, 99.0);
        assert_eq!(s.max_ms, 100.0);
    }

    #[test]
    fn errors_keep_the_first_message() {
        let mut a = Recorder::default();
        a.error(Duration::ZERO, &Failure::Check("first".into()));
        let mut b = Recorder::default();
        b.error(Duration::ZERO, &Failure::Check("second".into()));
        a.merge(b);
        let s = a.summarize(Duration::from_secs(1));
        assert_eq!(s.errors, 2);
        assert!(s.first_error.unwrap_or_default().contains("first"));
    }

    #[test]
    fn rate_counts_only_requests_completed_by_the_deadline() {
        let mut rec = Recorder::with_deadline(Instant::now() - Duration::from_secs(1));
        rec.ok(Duration::from_millis(5));
        let mut early = Recorder::with_deadline(Instant::now() + Duration::from_secs(60));
        early.ok(Duration::from_millis(5));
        rec.merge(early);
        let s = rec.summarize(Duration::from_secs(1));
        assert_eq!(s.requests, 2);
        assert_eq!(s.rate, 1.0);
    }
}
