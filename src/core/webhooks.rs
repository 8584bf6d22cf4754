//! Webhooks: endpoints, the events they take, Standard Webhooks signatures and the retry
//! schedule. Delivery itself (leases, HTTP, bookkeeping) is `crate::delivery`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::error::{CoreError, CoreResult};
use super::events::EventKind;
use super::model::OrgId;
use super::secrets::fill_random;

/// A webhook endpoint as stored (its secret and URL still encrypted).
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: String,
    /// `None`: every organization's events.
    pub org_id: Option<OrgId>,
    /// The URL as views show it ([`display_url`]); on a row from before URLs were
    /// encrypted and not yet sealed (`url_enc` empty), the URL itself.
    pub url: String,
    /// The URL, encrypted under [`url_purpose`]: URLs carry credentials (userinfo, query
    /// tokens).
    pub url_enc: Option<String>,
    pub event_types: Vec<String>,
    pub secret_enc: String,
    pub created_at: String,
    pub disabled_at: Option<String>,
    /// The last event this endpoint has settled.
    pub cursor: i64,
    pub next_attempt_at: String,
    /// Whether deliveries may go to loopback, private or link-local addresses.
    pub allow_private: bool,
}

/// One event of the outbox, as the feed and webhooks show it.
#[derive(Debug, Clone)]
pub struct EventRecord {
    pub cursor: i64,
    pub org_id: Option<String>,
    /// The type as stored: an [`EventKind`]'s string. Kept as text, so that a row of a kind
    /// this version does not know (written by a newer node) is still fed and delivered.
    pub kind: String,
    pub resource_type: String,
    pub resource_id: String,
    pub actor: Value,
    pub request_id: Option<String>,
    pub received_at: Option<String>,
    pub data: Value,
    pub created_at: String,
}

impl EventRecord {
    /// The event's kind, if this version knows it.
    pub fn event_kind(&self) -> Option<EventKind> {
        self.kind.parse().ok()
    }

    /// The public JSON form of an event (feed items and webhook `data`).
    pub fn to_json(&self) -> Value {
        json!({
            "id": format!("evt_{}", self.cursor),
            "cursor": self.cursor,
            "type": self.kind,
            "org_id": self.org_id,
            "resource": {"type": self.resource_type, "id": self.resource_id},
            "actor": self.actor,
            "request_id": self.request_id,
            "occurred_at": self.created_at,
            "data": self.data,
        })
    }

    /// A Standard Webhooks payload: `type`, `timestamp`, `data`.
    pub fn webhook_body(&self) -> String {
        json!({
            "type": self.kind,
            "timestamp": self.created_at,
            "data": self.to_json(),
        })
        .to_string()
    }

    /// The message id: the same on every retry, so receivers can drop duplicates.
    pub fn message_id(&self) -> String {
        format!("evt_{}", self.cursor)
    }
}

/// An endpoint URL as views, events and audit entries may show it: scheme, host, port and
/// path, with userinfo and every query value replaced by `redacted` (query names stay,
/// unless a part has no value: then it may be the token itself) and no fragment.
pub fn display_url(url: &str) -> String {
    let Ok(mut u) = url::Url::parse(url) else {
        return "(invalid URL)".to_owned();
    };
    if !u.username().is_empty() {
        let _ = u.set_username("redacted");
    }
    if u.password().is_some() {
        let _ = u.set_password(Some("redacted"));
    }
    if u.query().is_some() {
        let parts: Vec<String> = u
            .query_pairs()
            .map(|(k, v)| {
                if v.is_empty() {
                    "redacted".to_owned()
                } else {
                    let k: String = url::form_urlencoded::byte_serialize(k.as_bytes()).collect();
                    format!("{k}=redacted")
                }
            })
            .collect();
        u.set_query(Some(&parts.join("&")));
    }
    u.set_fragment(None);
    u.to_string()
}

/// The purpose (associated data) an endpoint's URL is encrypted under.
pub fn url_purpose(endpoint_id: &str) -> String {
    format!("webhook-url:{endpoint_id}")
}

impl Endpoint {
    /// The URL deliveries go to: decrypted, or as stored on a row not yet sealed.
    pub fn target_url(&self, master: &super::secrets::MasterKey) -> CoreResult<String> {
        match &self.url_enc {
            Some(enc) => master.decrypt_string(&url_purpose(&self.id), enc),
            None => Ok(self.url.clone()),
        }
    }
}

/// Whether `kind` matches one of `patterns`: `*` (all), `user.*` (a family) or an exact type.
pub fn matches(patterns: &[String], kind: &str) -> bool {
    patterns.iter().any(|p| {
        p == "*"
            || p == kind
            || p.strip_suffix(".*")
                .is_some_and(|fam| kind.strip_prefix(fam).is_some_and(|r| r.starts_with('.')))
    })
}

/// Parses `user.*,group.member_added` into patterns; rejects anything else.
pub fn parse_patterns(s: &str) -> CoreResult<Vec<String>> {
    let mut out = Vec::new();
    for p in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let ok = p == "*"
            || p.split('.').all(|seg| {
                !seg.is_empty()
                    && (seg == "*" || seg.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            }) && (!p.contains('*') || p.ends_with(".*") && p.matches('*').count() == 1);
        if !ok {
            return Err(CoreError::InvalidValue(format!(
                "\"{p}\" is not an event type pattern (e.g. user.*, group.member_added, *)"
            )));
        }
        out.push(p.to_owned());
    }
    if out.is_empty() {
        out.push("*".to_owned());
    }
    Ok(out)
}

/// The purpose (associated data) an endpoint's secret is encrypted under.
pub fn secret_purpose(endpoint_id: &str) -> String {
    format!("webhook-secret:{endpoint_id}")
}

/// A new endpoint for `url` (http or https) taking the events `patterns` names, with a fresh
/// signing secret: the endpoint (secret encrypted) and the secret, to show once.
pub fn new_endpoint(
    master: &super::secrets::MasterKey,
    org: Option<&OrgId>,
    url: &str,
    patterns: &str,
    allow_private: bool,
) -> CoreResult<(Endpoint, String)> {
    let parsed = url::Url::parse(url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| CoreError::InvalidValue(format!("\"{url}\" is not an http(s) URL")))?;
    let event_types = parse_patterns(patterns)?;
    let secret = new_secret()?;
    let id = super::new_id();
    let ep = Endpoint {
        secret_enc: master.encrypt(&secret_purpose(&id), secret.as_bytes())?,
        url_enc: Some(master.encrypt(&url_purpose(&id), parsed.as_str().as_bytes())?),
        id,
        org_id: org.cloned(),
        url: display_url(parsed.as_str()),
        event_types,
        created_at: super::now(),
        disabled_at: None,
        cursor: 0,
        next_attempt_at: super::now(),
        allow_private,
    };
    Ok((ep, secret))
}

/// Encrypts the URLs of endpoints stored before URLs were encrypted (at server start: SQL
/// migrations never see the master key); the number sealed.
pub async fn seal_plaintext_urls(
    store: &impl super::store::Store,
    master: &super::secrets::MasterKey,
) -> CoreResult<usize> {
    let mut sealed = 0;
    for ep in store.list_webhooks(None).await? {
        if ep.url_enc.is_none() {
            let enc = master.encrypt(&url_purpose(&ep.id), ep.url.as_bytes())?;
            store
                .seal_webhook_url(&ep.id, &display_url(&ep.url), &enc)
                .await?;
            sealed += 1;
        }
    }
    Ok(sealed)
}

/// A new endpoint secret in the Standard Webhooks form `whsec_<base64 of 32 bytes>`.
pub fn new_secret() -> CoreResult<String> {
    let mut key = [0u8; 32];
    fill_random(&mut key)?;
    Ok(format!("whsec_{}", B64.encode(key)))
}

/// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` with the secret's key bytes.
pub fn sign(secret: &str, msg_id: &str, timestamp: i64, body: &str) -> CoreResult<String> {
    let key = B64
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .map_err(|_| CoreError::Internal("webhook secret is not base64".into()))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key)
        .map_err(|_| CoreError::Internal("webhook secret has no key".into()))?;
    mac.update(format!("{msg_id}.{timestamp}.").as_bytes());
    mac.update(body.as_bytes());
    Ok(format!("v1,{}", B64.encode(mac.finalize().into_bytes())))
}

/// Delays before each retry after a failed attempt: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h,
/// 10 h, 10 h — the last retry comes about 37.5 h after the first attempt, so an endpoint
/// is retried for more than 24 hours before the delivery is marked failed.
pub const DEFAULT_SCHEDULE_SECS: &[u64] = &[5, 300, 1800, 7200, 18000, 36000, 36000, 36000];

/// The delay before retry number `attempt` (1-based: after the first failure), with ±20%
/// jitter from `jitter` in [0, 1); `None` when the schedule is exhausted.
pub fn retry_delay_ms(schedule_ms: &[u64], attempt: usize, jitter: f64) -> Option<u64> {
    let base = *schedule_ms.get(attempt.checked_sub(1)?)?;
    let factor = 0.8 + 0.4 * jitter.clamp(0.0, 1.0);
    Some((base as f64 * factor) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_families_and_types() {
        let p = parse_patterns("user.*, group.member_added").unwrap();
        assert!(matches(&p, "user.created"));
        assert!(matches(&p, "group.member_added"));
        assert!(!matches(&p, "group.member_removed"));
        assert!(!matches(&p, "userx.created"));
        assert!(matches(&parse_patterns("").unwrap(), "anything.at_all"));
        assert!(parse_patterns("user.*.x").is_err());
        assert!(parse_patterns("User.Created").is_err());
    }

    #[test]
    fn urls_lose_their_credentials_in_views() {
        assert_eq!(
            display_url("https://hook:s3cret@app.example/in?x=1&token=abc#frag"),
            "https://redacted:redacted@app.example/in?x=redacted&token=redacted"
        );
        assert_eq!(
            display_url("https://only-a-token@app.example/in?s3cr3t"),
            "https://redacted@app.example/in?redacted"
        );
        assert_eq!(
            display_url("https://app.example/in"),
            "https://app.example/in"
        );
        let once = display_url("https://u:p@app.example/in?a=b");
        assert_eq!(display_url(&once), once, "redacting twice changes nothing");
    }

    #[test]
    fn new_endpoints_keep_their_url_encrypted() {
        let master = crate::core::secrets::MasterKey::from_base64(&B64.encode([7u8; 32])).unwrap();
        let url = "https://u:p@app.example/in?token=abc";
        let (ep, _) = new_endpoint(&master, None, url, "*", false).unwrap();
        assert_eq!(
            ep.url,
            "https://redacted:redacted@app.example/in?token=redacted"
        );
        let enc = ep.url_enc.as_deref().unwrap();
        assert!(!enc.contains("abc"));
        assert_eq!(ep.target_url(&master).unwrap(), url);
        // Bound to its endpoint: another id cannot decrypt it.
        let other = Endpoint {
            id: "other".into(),
            ..ep.clone()
        };
        assert!(other.target_url(&master).is_err());
    }

    #[test]
    fn the_schedule_retries_for_more_than_a_day() {
        let total: u64 = DEFAULT_SCHEDULE_SECS.iter().sum();
        // With the least jitter (×0.8) the last retry still comes after 24 h.
        assert!(total as f64 * 0.8 > 24.0 * 3600.0, "{total}");
        let ms: Vec<u64> = DEFAULT_SCHEDULE_SECS.iter().map(|s| s * 1000).collect();
        assert_eq!(retry_delay_ms(&ms, 1, 0.5), Some(5000));
        assert_eq!(retry_delay_ms(&ms, 1, 0.0), Some(4000));
        assert_eq!(retry_delay_ms(&ms, ms.len() + 1, 0.5), None);
        assert_eq!(retry_delay_ms(&ms, 0, 0.5), None);
    }

    #[test]
    fn signatures_follow_standard_webhooks() {
        // The Standard Webhooks specification's test vector.
        let sig = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        )
        .unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
