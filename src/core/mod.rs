//! The domain core: organizations, directories, users, groups and the write pipeline.
//! It knows no HTTP and no SQL: adapters at the edge call it, the store sits behind
//! [`store::Store`].

pub mod attrs;
pub mod audit;
pub mod context;
pub mod domains;
pub mod error;
pub mod events;
pub mod jit;
pub mod keys;
pub mod model;
pub mod orgs;
pub mod patch;
pub mod query;
pub mod report;
pub mod resources;
pub mod roles;
pub mod schema;
pub mod secrets;
pub mod sessions;
pub mod sso;
pub mod store;
pub mod trust;
pub mod webhooks;

/// Work above this weight (values to normalize, operations to apply: see `attrs::weight`,
/// `patch::weight`) runs off the async workers. Measured in a debug build: normalizing a
/// typical create (weight 12) takes 24 µs, `block_in_place` costs 11 µs and
/// `spawn_blocking` 28 µs, so small requests, nearly all of them, stay inline; 256 emails
/// take 1.6 ms, against which the hand-off is noise.
pub const HEAVY: usize = 256;

/// Runs CPU-bound work `f` of `weight` inline, or, when heavy, with the runtime told that
/// this worker blocks (`block_in_place`): the worker's other tasks move to another thread
/// meanwhile, so a large request never stalls the small ones queued behind it. It borrows
/// (no copy of a megabyte body), and works inside a store transaction's closure. On a
/// single-threaded runtime (some tests) it runs inline.
pub fn cpu_bound<T>(weight: usize, f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    let multi =
        Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread);
    if weight > HEAVY && multi {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A new opaque, unguessable id (UUID v4: 122 random bits).
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A new user or group id: a UUID v7 (RFC 9562), milliseconds since the epoch then 74
/// random bits. Ids made one after another sort together, so the indexes keyed by them
/// (users, groups, each resource's events) grow at one end instead of at a random page:
/// a burst of creates dirties a few index pages, not one per create. (The creation time it
/// shows is in `meta.created` anyway; ids are never secrets.)
pub fn new_resource_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Now, in the storage format: UTC with microseconds, `2024-01-02T03:04:05.123456Z`. Fixed
/// width, so text order is time order in both stores.
pub fn now() -> String {
    format_time(OffsetDateTime::now_utc())
}

pub fn format_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// Parses an RFC 3339 date-time (any offset) into the storage format.
pub fn parse_time(s: &str) -> Option<String> {
    OffsetDateTime::parse(s, &Rfc3339).ok().map(format_time)
}

/// Seconds from a stored time (`now`'s format, or any RFC 3339) to now; negative when it is
/// in the future, `None` when it is not a time.
pub fn secs_since(stored: &str) -> Option<f64> {
    let t = OffsetDateTime::parse(stored, &Rfc3339).ok()?;
    Some((OffsetDateTime::now_utc() - t).as_seconds_f64())
}

/// What people type where a time is asked for (`--since`, `?since=`): a date
/// (`2026-11-01`, the start of that day in UTC) or a full RFC 3339 date-time (also with a
/// space for the `T`, as `date --rfc-3339` prints it), into the storage format.
pub fn parse_time_or_date(s: &str) -> Option<String> {
    let s = s.trim();
    if let Some(t) = parse_time(s) {
        return Some(t);
    }
    if s.len() > 10 && s.as_bytes()[10] == b' ' {
        return parse_time(&format!("{}T{}", &s[..10], &s[11..]));
    }
    let date = time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"));
    date.ok().map(|d| format_time(d.midnight().assume_utc()))
}

/// How `parse_time_or_date` input is described in errors and help.
pub const TIME_OR_DATE: &str =
    "a date (2026-11-01, UTC) or an RFC 3339 time (2026-11-01T09:30:00Z)";

/// The storage-format time `secs` seconds from now (negative: in the past).
pub fn now_plus_secs(secs: i64) -> String {
    format_time(OffsetDateTime::now_utc() + time::Duration::seconds(secs))
}

/// The storage-format time `ms` milliseconds from now.
pub fn now_plus_ms(ms: u64) -> String {
    format_time(
        OffsetDateTime::now_utc()
            + time::Duration::milliseconds(i64::try_from(ms).unwrap_or(i64::MAX)),
    )
}

#[cfg(test)]
mod tests {
    use super::parse_time_or_date;

    #[test]
    fn dates_and_times_where_people_type_them() {
        let day = Some("2026-11-01T00:00:00.000000Z".to_owned());
        assert_eq!(parse_time_or_date("2026-11-01"), day);
        assert_eq!(parse_time_or_date(" 2026-11-01 "), day);
        assert_eq!(parse_time_or_date("2026-11-01T00:00:00Z"), day);
        assert_eq!(
            parse_time_or_date("2026-11-01T09:30:00+01:00").as_deref(),
            Some("2026-11-01T08:30:00.000000Z")
        );
        assert_eq!(
            parse_time_or_date("2026-11-01 09:30:00Z").as_deref(),
            Some("2026-11-01T09:30:00.000000Z")
        );
        for bad in [
            "",
            "2026-13-01",
            "2026-02-30",
            "yesterday",
            "2026-11-01T09:30",
            "1 day",
        ] {
            assert_eq!(parse_time_or_date(bad), None, "{bad:?}");
        }
    }
}
