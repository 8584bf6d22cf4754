//! The webhook receiver of the `events` benchmark: an HTTP/1.1 server on hyper
//! that checks every delivery's Standard Webhooks signature, answers 204, and
//! records when each event first arrived, duplicates and cursor order.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::HeaderMap;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Largest clock difference accepted in `webhook-timestamp` (Standard Webhooks
/// recommends five minutes).
const TOLERANCE_SECS: i64 = 300;

/// An event, named by its type and the id of the resource it is about.
pub type EventKey = (String, String);

/// What the receiver has seen so far.
#[derive(Debug, Default)]
pub struct Tally {
    /// Deliveries with a valid signature and body, duplicates included.
    pub received: u64,
    /// Distinct events (by cursor).
    pub unique: u64,
    /// Deliveries of an event already received.
    pub duplicates: u64,
    /// New events whose cursor is below one already received.
    pub out_of_order: u64,
    pub first_out_of_order: Option<String>,
    /// Deliveries rejected: bad or missing signature, stale timestamp, or a
    /// body that is not a well-formed event.
    pub rejected: u64,
    pub first_rejected: Option<String>,
    /// Distinct events by type.
    pub by_type: BTreeMap<String, u64>,
    /// When any delivery last arrived.
    pub last_arrival: Option<Instant>,
}

#[derive(Default)]
struct State {
    tally: Tally,
    max_cursor: i64,
    seen: HashSet<i64>,
    /// First arrival of each event.
    arrivals: HashMap<EventKey, Instant>,
    /// Callers waiting for one event.
    waiters: HashMap<EventKey, oneshot::Sender<Instant>>,
}

struct Shared {
    key: Vec<u8>,
    state: Mutex<State>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock would be a bug of this file; the
        // figures are still the best there are.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running receiver; stops when dropped.
pub struct Receiver {
    shared: Arc<Shared>,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    /// Binds `listen` and serves deliveries signed with `secret` (`whsec_…`).
    pub async fn start(listen: &str, secret: &str) -> Result<Self, String> {
        let key = secret_key(secret)?;
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("cannot read the receiver's address: {e}"))?;
        let shared = Arc::new(Shared {
            key,
            state: Mutex::new(State::default()),
        });
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Ok(Receiver { shared, addr, task })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The arrivals of these events (`None` for those not arrived yet).
    pub fn arrivals<'a>(
        &self,
        keys: impl IntoIterator<Item = &'a EventKey>,
    ) -> Vec<Option<Instant>> {
        let state = self.shared.state();
        keys.into_iter()
            .map(|k| state.arrivals.get(k).copied())
            .collect()
    }

    /// A channel that yields the first arrival of this event (at once if it
    /// already arrived).
    pub fn wait_for(&self, key: EventKey) -> oneshot::Receiver<Instant> {
        let (tx, rx) = oneshot::channel();
        let mut state = self.shared.state();
        match state.arrivals.get(&key) {
            Some(at) => {
                let _ = tx.send(*at);
            }
            None => {
                state.waiters.insert(key, tx);
            }
        }
        rx
    }

    /// Forgets a wait that is no longer wanted.
    pub fn cancel_wait(&self, key: &EventKey) {
        self.shared.state().waiters.remove(key);
    }

    /// When any delivery last arrived.
    pub fn last_arrival(&self) -> Option<Instant> {
        self.shared.state().tally.last_arrival
    }

    /// The counts so far.
    pub fn tally(&self) -> Tally {
        let state = self.shared.state();
        let t = &state.tally;
        Tally {
            received: t.received,
            unique: t.unique,
            duplicates: t.duplicates,
            out_of_order: t.out_of_order,
            first_out_of_order: t.first_out_of_order.clone(),
            rejected: t.rejected,
            first_rejected: t.first_rejected.clone(),
            by_type: t.by_type.clone(),
            last_arrival: t.last_arrival,
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of descriptors, most likely: let connections close.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(req, Arc::clone(&shared)));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// One delivery: 204 if it is signed and well formed, 401/400 otherwise (the
/// sender then retries it).
async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let arrived = Instant::now();
    let headers = req.headers().clone();
    let outcome = match req.into_body().collect().await {
        Ok(body) => accept(&shared.key, &headers, &body.to_bytes(), unix_now()),
        Err(e) => Err((StatusCode::BAD_REQUEST, format!("reading the body: {e}"))),
    };
    let status = match outcome {
        Ok(event) => {
            record(&mut shared.state(), event, arrived);
            StatusCode::NO_CONTENT
        }
        Err((status, why)) => {
            let mut state = shared.state();
            state.tally.rejected += 1;
            state.tally.first_rejected.get_or_insert(why);
            status
        }
    };
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    Ok(response)
}

/// The parts of a delivered event the benchmark uses.
#[derive(Debug, PartialEq)]
struct Event {
    cursor: i64,
    kind: String,
    resource_id: String,
}

/// Checks a delivery's signature and body.
fn accept(
    key: &[u8],
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<Event, (StatusCode, String)> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| (StatusCode::BAD_REQUEST, format!("no {name} header")))
    };
    let id = header("webhook-id")?;
    let timestamp = header("webhook-timestamp")?;
    let signature = header("webhook-signature")?;
    verify(key, id, timestamp, signature, body, now)
        .map_err(|why| (StatusCode::UNAUTHORIZED, format!("{id}: {why}")))?;
    let event =
        parse_event(body).map_err(|why| (StatusCode::BAD_REQUEST, format!("{id}: {why}")))?;
    if id != format!("evt_{}", event.cursor) {
        return Err((
            StatusCode::BAD_REQUEST,
            format!(
                "webhook-id {id} does not name event cursor {}",
                event.cursor
            ),
        ));
    }
    Ok(event)
}

fn record(state: &mut State, event: Event, arrived: Instant) {
    let tally = &mut state.tally;
    tally.received += 1;
    tally.last_arrival = Some(arrived);
    if !state.seen.insert(event.cursor) {
        tally.duplicates += 1;
        return;
    }
    tally.unique += 1;
    if event.cursor < state.max_cursor {
        tally.out_of_order += 1;
        tally.first_out_of_order.get_or_insert_with(|| {
            format!(
                "evt_{} ({} of {}) arrived after evt_{}",
                event.cursor, event.kind, event.resource_id, state.max_cursor
            )
        });
    }
    state.max_cursor = state.max_cursor.max(event.cursor);
    *tally.by_type.entry(event.kind.clone()).or_default() += 1;
    let key = (event.kind, event.resource_id);
    if let Some(waiter) = state.waiters.remove(&key) {
        let _ = waiter.send(arrived);
    }
    state.arrivals.entry(key).or_insert(arrived);
}

/// The HMAC key of a `whsec_<base64>` secret.
pub fn secret_key(secret: &str) -> Result<Vec<u8>, String> {
    let encoded = secret
        .strip_prefix("whsec_")
        .ok_or("the webhook secret must start with whsec_")?;
    B64.decode(encoded)
        .map_err(|e| format!("the webhook secret is not base64: {e}"))
}

/// Standard Webhooks verification: one of the space-separated `v1,<base64>`
/// signatures is the HMAC-SHA256 of `{id}.{timestamp}.{body}`, and the
/// timestamp is within [`TOLERANCE_SECS`] of `now`.
fn verify(
    key: &[u8],
    id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now: i64,
) -> Result<(), String> {
    let ts: i64 = timestamp
        .parse()
        .map_err(|_| format!("webhook-timestamp {timestamp:?} is not a number"))?;
    if (now - ts).abs() > TOLERANCE_SECS {
        return Err(format!("webhook-timestamp {ts} is {} s from now", now - ts));
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(key).map_err(|e| format!("unusable key: {e}"))?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let valid = signatures.split(' ').any(|candidate| {
        candidate
            .strip_prefix("v1,")
            .and_then(|b64| B64.decode(b64).ok())
            .is_some_and(|sig| mac.clone().verify_slice(&sig).is_ok())
    });
    if valid {
        Ok(())
    } else {
        Err(format!("no valid v1 signature in {signatures:?}"))
    }
}

/// Reads `{"type", "data": {"id", "cursor", "type", "resource": {"id"}}}`.
fn parse_event(body: &[u8]) -> Result<Event, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    let data = &v["data"];
    let kind = v["type"].as_str().ok_or("no string `type`")?;
    let cursor = data["cursor"].as_i64().ok_or("no integer `data.cursor`")?;
    if data["type"].as_str() != Some(kind) {
        return Err(format!("`type` {kind} differs from `data.type`"));
    }
    if data["id"].as_str() != Some(format!("evt_{cursor}").as_str()) {
        return Err(format!("`data.id` is not evt_{cursor}"));
    }
    let resource_id = data["resource"]["id"]
        .as_str()
        .ok_or("no string `data.resource.id`")?;
    Ok(Event {
        cursor,
        kind: kind.to_owned(),
        resource_id: resource_id.to_owned(),
    })
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The Standard Webhooks specification's test vector.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: &str = "1614265330";
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn verifies_the_specification_vector() {
        let key = secret_key(SECRET).unwrap();
        let now = 1_614_265_330;
        assert!(verify(&key, ID, TS, SIG, BODY, now).is_ok());
        assert!(verify(&key, ID, TS, &format!("v1,AAAA {SIG}"), BODY, now).is_ok());
        assert!(verify(&key, ID, TS, SIG, br#"{"test": 1}"#, now).is_err());
        assert!(verify(&key, "msg_other", TS, SIG, BODY, now).is_err());
        assert!(verify(&key, ID, TS, SIG, BODY, now + 301).is_err());
        assert!(verify(&key, ID, TS, "v2,whatever", BODY, now).is_err());
    }

    #[test]
    fn parses_an_event_and_checks_its_ids() {
        let body = br#"{"type":"user.created","timestamp":"t","data":{"id":"evt_7","cursor":7,
            "type":"user.created","resource":{"type":"User","id":"u1"},"data":{}}}"#;
        assert_eq!(
            parse_event(body).unwrap(),
            Event {
                cursor: 7,
                kind: "user.created".into(),
                resource_id: "u1".into()
            }
        );
        let wrong = br#"{"type":"user.created","data":{"id":"evt_8","cursor":7,
            "type":"user.created","resource":{"id":"u1"}}}"#;
        assert!(parse_event(wrong).is_err());
    }

    #[test]
    fn counts_duplicates_and_reordering() {
        let mut state = State::default();
        let ev = |cursor, id: &str| Event {
            cursor,
            kind: "user.created".into(),
            resource_id: id.into(),
        };
        let now = Instant::now();
        record(&mut state, ev(2, "a"), now);
        record(&mut state, ev(2, "a"), now);
        record(&mut state, ev(5, "b"), now);
        record(&mut state, ev(3, "c"), now);
        let t = &state.tally;
        assert_eq!(
            (t.received, t.unique, t.duplicates, t.out_of_order),
            (4, 3, 1, 1)
        );
        assert_eq!(t.by_type["user.created"], 3);
    }
}
