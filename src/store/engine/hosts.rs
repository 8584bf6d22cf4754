//! Several PostgreSQL hosts in one URL, as libpq takes them
//! (`postgres://u@h1:5432,h2:5432/db?target_session_attrs=read-write`): sqlx connects to
//! one host, so the URL is split into one URL per host, the pool connects to the first
//! acceptable one, and a watch moves it to another when that one stops being acceptable (a
//! fail-over: the primary gone, a standby promoted).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::AnyConnectOptions;
use sqlx::{AnyPool, ConnectOptions, Connection, Row};

use crate::core::error::StoreError;

/// Which sessions are acceptable (libpq's `target_session_attrs`: `any` or `read-write`;
/// Roster writes, so `primary` counts as `read-write`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Any,
    ReadWrite,
}

/// A URL split per host, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hosts {
    pub urls: Vec<String>,
    pub target: Target,
}

/// Splits `url` into one URL per host; a single-host URL comes back unchanged. Credentials,
/// the database and the other parameters go to every host; `target_session_attrs` is kept
/// here (sqlx does not know it).
pub fn split(url: &str) -> Result<Hosts, StoreError> {
    let bad = |why: &str| StoreError::Other(format!("the database URL {why}"));
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("has no scheme"))?;
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let (userinfo, hostlist) = match authority.rfind('@') {
        Some(i) => (&authority[..=i], &authority[i + 1..]),
        None => ("", authority),
    };
    let (path, query) = match tail.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (tail, None),
    };
    let mut target = Target::Any;
    let mut params = Vec::new();
    for kv in query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter(|s| !s.is_empty())
    {
        match kv.split_once('=') {
            Some(("target_session_attrs", v)) => {
                target = match v {
                    "any" => Target::Any,
                    "read-write" | "primary" => Target::ReadWrite,
                    other => {
                        return Err(bad(&format!(
                            "sets target_session_attrs={other}: Roster takes any or read-write"
                        )));
                    }
                }
            }
            _ => params.push(kv),
        }
    }
    let query = if params.is_empty() {
        String::new()
    } else {
        format!("?{}", params.join("&"))
    };
    let urls: Vec<String> = hostlist
        .split(',')
        .map(|h| format!("{scheme}://{userinfo}{h}{path}{query}"))
        .collect();
    if hostlist.split(',').any(str::is_empty) {
        return Err(bad("has an empty host"));
    }
    Ok(Hosts { urls, target })
}

/// How often the watch checks that the pool's host is still acceptable.
const WATCH_EVERY: Duration = Duration::from_millis(500);

/// How long one probe of a host may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether the host of `opts` takes a session of `target` now.
async fn acceptable(opts: &AnyConnectOptions, target: Target) -> bool {
    let probe = async {
        let mut c = opts.connect().await.ok()?;
        let ok = match target {
            Target::Any => true,
            Target::ReadWrite => sqlx::query("SHOW transaction_read_only")
                .fetch_one(&mut c)
                .await
                .ok()
                .and_then(|r| r.try_get::<String, _>(0).ok())
                .is_some_and(|v| v == "off"),
        };
        let _ = c.close().await;
        Some(ok)
    };
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, probe).await,
        Ok(Some(true))
    )
}

/// Parsed options per host.
pub struct Ring {
    opts: Vec<AnyConnectOptions>,
    target: Target,
}

impl Ring {
    pub fn new(hosts: &Hosts) -> Result<Ring, StoreError> {
        let opts = hosts
            .urls
            .iter()
            .map(|u| {
                AnyConnectOptions::from_str(u)
                    .map(|o| o.disable_statement_logging())
                    .map_err(super::db_err)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Ring {
            opts,
            target: hosts.target,
        })
    }

    /// The first acceptable host's options (the first host when none is, so that the error
    /// the pool reports is that host's).
    pub async fn first_acceptable(&self) -> (usize, AnyConnectOptions) {
        if self.opts.len() == 1 && self.target == Target::Any {
            return (0, self.opts[0].clone());
        }
        for (i, o) in self.opts.iter().enumerate() {
            if acceptable(o, self.target).await {
                return (i, o.clone());
            }
        }
        (0, self.opts[0].clone())
    }

    /// Watches the pool's host while the pool is open; when it stops being acceptable, points
    /// the pool at the first host that is. Connections to the old host fail and are dropped;
    /// new ones go to the new host.
    pub fn watch(self: Arc<Self>, pool: AnyPool, mut current: usize) {
        if self.opts.len() < 2 {
            return;
        }
        tokio::spawn(async move {
            while !pool.is_closed() {
                tokio::time::sleep(WATCH_EVERY).await;
                if acceptable(&self.opts[current], self.target).await {
                    continue;
                }
                for (i, o) in self.opts.iter().enumerate() {
                    if i != current && acceptable(o, self.target).await {
                        tracing::warn!(from = current, to = i, "database host changed");
                        pool.set_connect_options(o.clone());
                        current = i;
                        break;
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_host_is_left_as_it_is() {
        let h = split("postgres://u:p@db:5432/roster?sslmode=disable").unwrap();
        assert_eq!(h.urls, ["postgres://u:p@db:5432/roster?sslmode=disable"]);
        assert_eq!(h.target, Target::Any);
    }

    #[test]
    fn hosts_are_split_with_everything_else_kept() {
        let h = split(
            "postgres://u:p%40x@h1:5432,h2:5433/roster?sslmode=require&target_session_attrs=read-write",
        )
        .unwrap();
        assert_eq!(
            h.urls,
            [
                "postgres://u:p%40x@h1:5432/roster?sslmode=require",
                "postgres://u:p%40x@h2:5433/roster?sslmode=require"
            ]
        );
        assert_eq!(h.target, Target::ReadWrite);
        assert_eq!(
            split("postgres://h1,h2").unwrap().urls,
            ["postgres://h1", "postgres://h2"]
        );
    }

    #[test]
    fn unknown_targets_and_empty_hosts_are_refused() {
        assert!(split("postgres://h1,h2/db?target_session_attrs=standby").is_err());
        assert!(split("postgres://h1,,h2/db").is_err());
        assert!(split("db:5432").is_err());
    }
}
