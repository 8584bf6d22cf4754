//! DNS lookups Roster makes itself: the TXT records that prove an organization controls a
//! domain (`core::domains`), through hickory-resolver.
//!
//! The upstream is the system's (`/etc/resolv.conf`) unless `--dns-resolver` names one (tests
//! run a real DNS server on loopback). Nothing is cached: a re-check sees what DNS says now.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::ProtoErrorKind;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::{ResolveError, TokioResolver};

use crate::core::domains::TxtResolver;

/// How long one lookup may take, all attempts included (it runs inside a request).
const TIMEOUT: Duration = Duration::from_secs(5);

/// The resolver domain checks use. Cheap to clone: clones share the upstream setting.
#[derive(Debug, Clone)]
pub struct Resolver {
    upstream: Arc<RwLock<Option<SocketAddr>>>,
    /// Lookups in flight on this node are bounded: each check is one outbound query.
    in_flight: Arc<tokio::sync::Semaphore>,
}

/// Lookups one node makes at once; more wait their turn.
const MAX_IN_FLIGHT: usize = 8;

impl Default for Resolver {
    fn default() -> Self {
        Resolver::new(None)
    }
}

/// Parses a `--dns-resolver` value: `IP` (port 53) or `IP:PORT` (`[v6]:PORT`).
pub fn parse_upstream(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    s.parse::<SocketAddr>()
        .or_else(|_| {
            s.parse::<std::net::IpAddr>()
                .map(|ip| SocketAddr::new(ip, 53))
        })
        .map_err(|_| format!("\"{s}\" is not a DNS server address (IP or IP:PORT)"))
}

impl Resolver {
    /// A resolver asking `upstream`, or the system's resolvers when `None`.
    pub fn new(upstream: Option<SocketAddr>) -> Self {
        Resolver {
            upstream: Arc::new(RwLock::new(upstream)),
            in_flight: Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)),
        }
    }

    /// Makes every clone ask `upstream` (the system's resolvers when `None`).
    pub fn set_upstream(&self, upstream: Option<SocketAddr>) {
        *self.upstream.write().unwrap_or_else(|p| p.into_inner()) = upstream;
    }

    fn build(&self) -> Result<TokioResolver, ResolveError> {
        let upstream = *self.upstream.read().unwrap_or_else(|p| p.into_inner());
        let mut b = match upstream {
            Some(addr) => TokioResolver::builder_with_config(
                ResolverConfig::from_parts(
                    None,
                    Vec::new(),
                    NameServerConfigGroup::from_ips_clear(&[addr.ip()], addr.port(), true),
                ),
                TokioConnectionProvider::default(),
            ),
            None => TokioResolver::builder_tokio()?,
        };
        let o = b.options_mut();
        o.cache_size = 0;
        o.timeout = TIMEOUT / 2;
        o.attempts = 2;
        o.ndots = 0;
        Ok(b.build())
    }
}

/// The response code of an answer without records, if the error is one.
fn answered(e: &ResolveError) -> Option<ResponseCode> {
    match e.proto()?.kind() {
        ProtoErrorKind::NoRecordsFound { response_code, .. } => Some(*response_code),
        _ => None,
    }
}

impl TxtResolver for Resolver {
    async fn txt(&self, name: &str) -> Result<Vec<String>, String> {
        // A busy node answers "busy" instead of queueing: one organization's slow zone
        // cannot hold every other organization's checks behind it.
        let Ok(_turn) = self.in_flight.try_acquire() else {
            return Err("too many DNS checks in progress; try again shortly".to_owned());
        };
        let resolver = self.build().map_err(|e| e.to_string())?;
        // Fully qualified: no search domains appended.
        let fqdn = format!("{}.", name.trim_end_matches('.'));
        let lookup = tokio::time::timeout(TIMEOUT, resolver.txt_lookup(fqdn)).await;
        match lookup {
            Err(_) => Err("timed out".to_owned()),
            Ok(Ok(found)) => Ok(found
                .iter()
                .map(|txt| {
                    txt.iter()
                        .map(|part| String::from_utf8_lossy(part).into_owned())
                        .collect::<String>()
                })
                .collect()),
            Ok(Err(e)) => match answered(&e) {
                // The name exists without TXT records, or does not exist: no record.
                Some(ResponseCode::NoError | ResponseCode::NXDomain) => Ok(Vec::new()),
                // REFUSED, SERVFAIL…: the lookup failed, which says nothing of the record.
                Some(code) => Err(format!("the DNS server answered {code}")),
                None => Err(e.to_string()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_parse() {
        assert_eq!(
            parse_upstream("127.0.0.1:5353").unwrap(),
            "127.0.0.1:5353".parse().unwrap()
        );
        assert_eq!(
            parse_upstream("10.0.0.2").unwrap(),
            "10.0.0.2:53".parse().unwrap()
        );
        assert_eq!(
            parse_upstream("[::1]:53").unwrap(),
            "[::1]:53".parse().unwrap()
        );
        assert!(parse_upstream("dns.example").is_err());
    }
}
