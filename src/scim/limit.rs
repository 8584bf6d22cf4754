//! Request rate limits: a token bucket per key — a SCIM bearer token, an admin key, a client
//! address starting logins — kept by each node (so with N nodes a key may reach N times the
//! rate). A limited request gets 429 with `Retry-After`. SCIM and admin limits are off
//! unless `serve --scim-rate-limit` / `--admin-rate-limit` set a rate; login starts are
//! limited by default (`--login-rate-limit`).
//!
//! A token bucket is a few lines; the crates that offer one bring more machinery (lock-free
//! maps, clocks) than this needs.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

/// Most keys tracked: beyond, idle full buckets are forgotten, then the longest-idle one
/// (so many addresses cannot grow the map without bound; a forgotten key starts full).
const MAX_KEYS: usize = 10_000;

#[derive(Default)]
pub struct RateLimiter {
    /// Requests per second per token; 0: no limit.
    per_sec: AtomicU32,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    pub fn set_rate(&self, per_sec: u32) {
        self.per_sec.store(per_sec, Ordering::Relaxed);
    }

    /// Takes one request from `key`'s bucket (capacity: two seconds' worth); `Err` holds
    /// the whole seconds until one would be allowed.
    pub fn check(&self, key: &str) -> Result<(), u64> {
        let rate = f64::from(self.per_sec.load(Ordering::Relaxed));
        if rate <= 0.0 {
            return Ok(());
        }
        let burst = (rate * 2.0).max(1.0);
        let now = Instant::now();
        let Ok(mut map) = self.buckets.lock() else {
            return Ok(());
        };
        if map.len() >= MAX_KEYS && !map.contains_key(key) {
            map.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < burst
            });
            if map.len() >= MAX_KEYS
                && let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, (_, at))| *at)
                    .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        let (tokens, at) = map.entry(key.to_owned()).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / rate).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RateLimiter;

    #[test]
    fn a_burst_then_limited_per_token() {
        let l = RateLimiter::default();
        assert!((0..100).all(|_| l.check("a").is_ok()), "off by default");
        l.set_rate(5);
        let allowed = (0..100).filter(|_| l.check("b").is_ok()).count();
        assert_eq!(allowed, 10, "two seconds' worth");
        assert_eq!(l.check("b"), Err(1));
        assert!(l.check("c").is_ok(), "tokens are limited separately");
    }

    #[test]
    fn the_map_stays_bounded_when_every_bucket_is_in_use() {
        let l = RateLimiter::default();
        l.set_rate(1);
        for i in 0..super::MAX_KEYS + 500 {
            let _ = l.check(&format!("k{i}"));
        }
        assert!(l.buckets.lock().unwrap().len() <= super::MAX_KEYS);
    }
}
