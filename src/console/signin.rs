//! Signing in before there is a session, guarded against login CSRF: another site must not
//! sign an operator's browser in to the attacker's admin key (whose console the operator
//! would then use, and type into), nor start a console SSO sign-in there.
//!
//! Two checks, each enough on its own against a current browser:
//! - the request comes from Roster's own origin: `Sec-Fetch-Site`, which current browsers
//!   send and no page can forge, is `same-origin` (or `none`: the user's own navigation);
//!   without it, `Origin`, when sent, is the public URL's (the sign-in page's
//!   Referrer-Policy is `same-origin`, as under `no-referrer` a browser sends `Origin:
//!   null` even to its own origin);
//! - it carries the token of this browser's sign-in cookie (a double submit): the sign-in
//!   page sets a random cookie (HttpOnly, SameSite=Strict) and puts a token derived from
//!   it in its form and its SSO link. Another site can neither read that cookie nor have
//!   it sent, and clients that send neither header are covered too.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;

use crate::core::error::CoreResult;
use crate::core::secrets::{hash_secret, random_token, secrets_equal};

const COOKIE: &str = "roster_console_signin";
/// How long a loaded sign-in page stays usable.
const COOKIE_SECS: i64 = 3600;

/// Why a sign-in request was refused.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("the request came from another site ({0})")]
    CrossSite(String),
    #[error("the sign-in page expired or was not loaded in this browser")]
    Token,
}

/// The sign-in page's token for this browser, with the cookie it derives from.
pub struct Token {
    pub value: String,
    cookie: Option<HeaderValue>,
}

impl Token {
    /// The browser's sign-in cookie (or a new one), set again for another [`COOKIE_SECS`].
    pub fn issue(headers: &HeaderMap, public_url: &str) -> CoreResult<Token> {
        let secret = match super::cookie(headers, COOKIE).filter(|c| !c.is_empty()) {
            Some(c) => c.to_owned(),
            None => random_token("rci_")?,
        };
        let cookie = format!(
            "{COOKIE}={secret}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={COOKIE_SECS}{}",
            if public_url.starts_with("https://") {
                "; Secure"
            } else {
                ""
            }
        );
        Ok(Token {
            value: token_of(&secret),
            cookie: HeaderValue::from_str(&cookie).ok(),
        })
    }

    /// `resp` with the sign-in cookie set.
    pub fn set_on(self, mut resp: Response) -> Response {
        if let Some(c) = self.cookie {
            resp.headers_mut().append(header::SET_COOKIE, c);
        }
        resp
    }
}

/// The token of a sign-in cookie: derived, so nothing is stored.
fn token_of(secret: &str) -> String {
    hash_secret(&format!("console-signin:{secret}"))
}

/// Checks a sign-in request: from this origin, and `given` is the token of its cookie.
pub fn check(headers: &HeaderMap, public_url: &str, given: Option<&str>) -> Result<(), Refusal> {
    same_origin(headers, public_url)?;
    let secret = super::cookie(headers, COOKIE)
        .filter(|c| !c.is_empty())
        .ok_or(Refusal::Token)?;
    match given {
        Some(g) if secrets_equal(g, &token_of(secret)) => Ok(()),
        _ => Err(Refusal::Token),
    }
}

/// Refuses what the browser says came from another origin: by `Sec-Fetch-Site` if it sent
/// one, else by `Origin`.
fn same_origin(headers: &HeaderMap, public_url: &str) -> Result<(), Refusal> {
    let shown = |v: &HeaderValue| {
        v.to_str()
            .unwrap_or("not text")
            .chars()
            .take(80)
            .collect::<String>()
    };
    if let Some(site) = headers.get("sec-fetch-site") {
        return match site.as_bytes() {
            b"same-origin" | b"none" => Ok(()),
            _ => Err(Refusal::CrossSite(format!(
                "Sec-Fetch-Site {}",
                shown(site)
            ))),
        };
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let own = own_origin(public_url);
        let same = own
            .as_deref()
            .zip(origin.to_str().ok())
            .is_some_and(|(own, given)| own.eq_ignore_ascii_case(given));
        if !same {
            return Err(Refusal::CrossSite(format!(
                "Origin {}, while this server is {}; if that is this server, set --public-url to it",
                shown(origin),
                own.as_deref().unwrap_or(public_url)
            )));
        }
    }
    Ok(())
}

/// The origin browsers reach Roster at, `scheme://host[:port]`.
fn own_origin(public_url: &str) -> Option<String> {
    let origin = url::Url::parse(public_url).ok()?.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    const URL: &str = "https://roster.example.com";

    #[test]
    fn same_origin_or_no_claim_passes() {
        for h in [
            headers(&[]),
            headers(&[("origin", "https://roster.example.com")]),
            headers(&[("origin", "HTTPS://Roster.Example.com")]),
            headers(&[
                ("origin", "https://roster.example.com"),
                ("sec-fetch-site", "same-origin"),
            ]),
            headers(&[("sec-fetch-site", "none")]),
            // A page under Referrer-Policy: no-referrer posts to its own origin so.
            headers(&[("origin", "null"), ("sec-fetch-site", "same-origin")]),
        ] {
            assert!(same_origin(&h, URL).is_ok(), "{h:?}");
        }
        // The default port is no part of an origin.
        let h = headers(&[("origin", "https://roster.example.com")]);
        assert!(same_origin(&h, "https://roster.example.com:443/").is_ok());
    }

    #[test]
    fn other_origins_are_refused() {
        for h in [
            headers(&[("origin", "https://evil.example")]),
            headers(&[("origin", "null")]),
            headers(&[("origin", "http://roster.example.com")]),
            headers(&[("origin", "https://roster.example.com:8443")]),
            headers(&[("sec-fetch-site", "cross-site")]),
            headers(&[("sec-fetch-site", "same-site")]),
            headers(&[
                ("origin", "https://roster.example.com"),
                ("sec-fetch-site", "cross-site"),
            ]),
        ] {
            assert!(
                matches!(same_origin(&h, URL), Err(Refusal::CrossSite(_))),
                "{h:?}"
            );
        }
    }

    #[test]
    fn the_token_must_be_the_cookies() {
        let issued = Token::issue(&HeaderMap::new(), URL).unwrap();
        let cookie = issued.cookie.clone().unwrap();
        let cookie = cookie.to_str().unwrap();
        assert!(cookie.contains("HttpOnly; SameSite=Strict") && cookie.ends_with("; Secure"));
        let pair = cookie.split(';').next().unwrap().to_owned();
        let h = headers(&[("cookie", &pair)]);
        assert!(check(&h, URL, Some(&issued.value)).is_ok());
        assert!(matches!(check(&h, URL, None), Err(Refusal::Token)));
        assert!(matches!(
            check(&h, URL, Some("forged")),
            Err(Refusal::Token)
        ));
        assert!(matches!(
            check(&HeaderMap::new(), URL, Some(&issued.value)),
            Err(Refusal::Token)
        ));
        // Loading the page again keeps the browser's cookie, so other tabs stay usable.
        assert_eq!(Token::issue(&h, URL).unwrap().value, issued.value);
    }
}
