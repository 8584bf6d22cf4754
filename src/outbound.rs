//! Outbound HTTP to URLs that customers supply — webhook endpoints, OIDC issuers and every
//! URL their discovery documents name (JWKS, token, userinfo), SAML metadata URLs: the one
//! place that decides which addresses Roster may connect to.
//!
//! A request is [`Reach::Public`] unless an operator made what it serves (the CLI, an admin
//! key for every organization): only then may it reach loopback, private or link-local
//! networks ([`Reach::Private`]). Public-only requests are judged on the address actually
//! connected to: names resolve through [`PublicOnly`], which drops every non-public address
//! (so a name resolving to 127.0.0.1, or rebinding between a check and the connect, gets
//! nowhere); an IP literal, which no resolver sees, is checked in [`Outbound::request`]; no
//! redirect is followed (a redirect could point anywhere) and no proxy is used (a proxy would
//! resolve the name itself, out of sight).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Which addresses a request may connect to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reach {
    /// Public internet addresses only ([`is_public`]).
    Public,
    /// Any address, private networks included: for what an operator configured.
    Private,
}

impl Reach {
    /// `Private` when `allowed` (an operator's endpoint or connection), else `Public`.
    pub fn private_if(allowed: bool) -> Reach {
        if allowed {
            Reach::Private
        } else {
            Reach::Public
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("\"{0}\" is not an http(s) URL")]
    NotHttp(String),
    /// The URL names a non-public IP address and private networks are not allowed.
    #[error("refused: {0} is not a public address (private networks are not allowed here)")]
    NotPublic(IpAddr),
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// The HTTP clients for customer-supplied URLs: one that reaches only public addresses, one
/// that reaches any. Cheap to clone (reqwest clients share their pools).
#[derive(Clone)]
pub struct Outbound {
    public: reqwest::Client,
    any: reqwest::Client,
}

impl Outbound {
    /// Clients sending `user_agent`, each request limited to `timeout`.
    pub fn new(user_agent: &str, timeout: Duration) -> Result<Self, OutboundError> {
        // TLS through rustls on ring; installing it twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let builder = || {
            reqwest::Client::builder()
                .timeout(timeout)
                .user_agent(user_agent)
                .redirect(reqwest::redirect::Policy::none())
        };
        let build = |b: reqwest::ClientBuilder| {
            b.build()
                .map_err(|e| OutboundError::Client(crate::core::error::error_chain(&e)))
        };
        Ok(Outbound {
            public: build(builder().no_proxy().dns_resolver(Arc::new(PublicOnly)))?,
            any: build(builder())?,
        })
    }

    /// A request to `url` (http or https) through the client `reach` allows; refused at
    /// once when public-only and the URL names a non-public IP address.
    pub fn request(
        &self,
        reach: Reach,
        method: reqwest::Method,
        url: &str,
    ) -> Result<reqwest::RequestBuilder, OutboundError> {
        let parsed = url::Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| OutboundError::NotHttp(url.to_owned()))?;
        let client = match reach {
            Reach::Private => &self.any,
            Reach::Public => {
                let literal = match parsed.host() {
                    Some(url::Host::Ipv4(a)) => Some(IpAddr::V4(a)),
                    Some(url::Host::Ipv6(a)) => Some(IpAddr::V6(a)),
                    Some(url::Host::Domain(_)) => None,
                    None => return Err(OutboundError::NotHttp(url.to_owned())),
                };
                if let Some(ip) = literal.filter(|ip| !is_public(*ip)) {
                    return Err(OutboundError::NotPublic(ip));
                }
                &self.public
            }
        };
        Ok(client.request(method, parsed))
    }
}

/// The body of `resp`, refused beyond `max` bytes (an IdP or endpoint chosen by a customer
/// must not make Roster buffer without bound).
pub async fn read_limited(mut resp: reqwest::Response, max: usize) -> Result<Vec<u8>, String> {
    if resp
        .content_length()
        .is_some_and(|n| n > u64::try_from(max).unwrap_or(u64::MAX))
    {
        return Err(OutboundError::TooLarge(max).to_string());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(error_text)? {
        if body.len() + chunk.len() > max {
            return Err(OutboundError::TooLarge(max).to_string());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A transport error without its URL (a URL may carry a token): its kind and causes.
pub fn error_text(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    format!(
        "{kind}: {}",
        crate::core::error::error_chain(&e.without_url())
    )
}

/// Resolves names to their public addresses only, so the address checked is the address
/// connected to.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!(
                    "refused: {host} has no public address (private networks are not allowed here)"
                )
                .into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// Whether an address is on the public internet. IPv4: not "this network" (0/8), private
/// (RFC 1918), shared (CGNAT, 100.64/10), loopback, link-local (cloud metadata services live
/// there), IETF protocol assignments (192.0.0/24), documentation, the 6to4 relay anycast,
/// benchmarking (198.18/15), multicast or reserved (240/4, with broadcast). IPv6: global
/// unicast (2000::/3) only — which leaves out loopback, unspecified, IPv4-compatible
/// (::/96), discard (100::/64), unique local, link-local, site-local and multicast —
/// and within it not the IETF block (2001::/23: Teredo, benchmarking, ORCHID),
/// documentation (2001:db8::/32) or 6to4 (2002::/16, whose embedded IPv4 address could be
/// anything); an IPv4-mapped (::ffff:0:0/96) or NAT64 (64:ff9b::/96) address is judged by
/// the IPv4 address in it, and local-use NAT64 (64:ff9b:1::/48) is refused.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(v4: Ipv4Addr) -> bool {
    let [a, b, c, _] = v4.octets();
    !(a == 0
        || v4.is_private()
        || (a == 100 && (64..128).contains(&b))
        || v4.is_loopback()
        || v4.is_link_local()
        || (a == 192 && b == 0 && c == 0)
        || v4.is_documentation()
        || (a == 192 && b == 88 && c == 99)
        || (a == 198 && (b & 0xfe) == 18)
        || v4.is_multicast()
        || a >= 240)
}

fn is_public_v6(v6: Ipv6Addr) -> bool {
    let s = v6.segments();
    if let Some(v4) = v6.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [.., w, x, y, z] = v6.octets();
        return is_public_v4(Ipv4Addr::new(w, x, y, z));
    }
    let global_unicast = (s[0] & 0xe000) == 0x2000;
    let ietf = s[0] == 0x2001 && s[1] < 0x0200; // 2001::/23
    let documentation = s[0] == 0x2001 && s[1] == 0x0db8;
    let six_to_four = s[0] == 0x2002;
    global_unicast && !ietf && !documentation && !six_to_four
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(a: &str) -> bool {
        is_public(a.parse().unwrap())
    }

    #[test]
    fn every_non_public_range_is_refused() {
        for a in [
            // IPv4
            "0.0.0.0",
            "0.1.2.3",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "127.255.0.1",
            "169.254.169.254",
            "192.0.0.1",
            "192.0.0.170",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "192.88.99.1",
            "198.18.0.1",
            "198.19.255.255",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "250.1.2.3",
            "255.255.255.255",
            // IPv6
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "::a00:1",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1",
            "64:ff9b:1:ffff::808:808",
            "100::1",
            "100::ffff:ffff:ffff:ffff",
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:2::1",
            "2001:10::1",
            "2001:db8::1",
            "2001:db8:ffff::1",
            "2002::1",
            "2002:7f00:1::1",
            "fc00::1",
            "fd00::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
        ] {
            assert!(!public(a), "{a} must not be public");
        }
    }

    #[test]
    fn public_addresses_are_public() {
        for a in [
            "93.184.216.34",
            "8.8.8.8",
            "1.1.1.1",
            "100.63.255.255",
            "100.128.0.1",
            "172.32.0.1",
            "198.17.255.255",
            "198.20.0.1",
            "192.0.1.1",
            "223.255.255.254",
            "2606:4700::1111",
            "2a00:1450:4001:81c::200e",
            "2001:200::1",
            "2001:4860:4860::8888",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(public(a), "{a} is public");
        }
    }

    #[tokio::test]
    async fn public_only_requests_refuse_private_literals_before_connecting() {
        let out = Outbound::new("test", Duration::from_secs(1)).unwrap();
        for url in [
            "http://127.0.0.1:9/x",
            "http://[::1]/x",
            "http://2130706433/x",
            "http://0x7f.0.0.1/x",
            "http://[::ffff:169.254.169.254]/x",
        ] {
            let refused = out.request(Reach::Public, reqwest::Method::GET, url);
            assert!(matches!(refused, Err(OutboundError::NotPublic(_))), "{url}");
            assert!(
                out.request(Reach::Private, reqwest::Method::GET, url)
                    .is_ok(),
                "{url}"
            );
        }
        assert!(matches!(
            out.request(Reach::Public, reqwest::Method::GET, "file:///etc/passwd"),
            Err(OutboundError::NotHttp(_))
        ));
        // A name that resolves to loopback is refused by the resolver, not connected to.
        let err = out
            .request(Reach::Public, reqwest::Method::GET, "http://localhost:9/x")
            .unwrap()
            .send()
            .await
            .unwrap_err();
        let text = error_text(err);
        assert!(text.contains("no public address"), "{text}");
    }
}
