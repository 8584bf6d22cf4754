//! A minimal SCIM HTTP/1.1 client over hyper, keeping its connection alive.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// Media type of SCIM requests and responses (RFC 7644 §3.1).
pub const SCIM_JSON: &str = "application/scim+json";

/// Longest part of a response body kept in an error message.
const MAX_ERROR_BODY: usize = 600;

/// Why a request did not succeed.
#[derive(Debug, Clone)]
pub enum Failure {
    /// No response: connection, protocol or timeout error.
    Transport(String),
    /// A response whose status is not 2xx.
    Status {
        method: Method,
        path: String,
        status: StatusCode,
        body: String,
    },
    /// A 2xx response whose content is not what the benchmark expected.
    Check(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Transport(msg) => write!(f, "transport error: {msg}"),
            Failure::Status {
                method,
                path,
                status,
                body,
            } => write!(f, "{method} {path} -> HTTP {status}: {body}"),
            Failure::Check(msg) => write!(f, "unexpected response: {msg}"),
        }
    }
}

/// A 2xx response.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Response {
    /// The body parsed as JSON.
    pub fn json(&self) -> Result<Value, Failure> {
        serde_json::from_slice(&self.body)
            .map_err(|e| Failure::Check(format!("response body is not JSON: {e}")))
    }

    /// A string attribute of the JSON body.
    pub fn string_attr(&self, name: &str) -> Result<String, Failure> {
        match self.json()?.get(name) {
            Some(Value::String(s)) => Ok(s.clone()),
            _ => Err(Failure::Check(format!(
                "response has no string `{name}`: {}",
                truncated(&self.body)
            ))),
        }
    }
}

/// A SCIM client bound to one base URL. Each instance owns its own connection
/// pool, so a worker that sends one request at a time holds one connection.
///
/// The service may be several nodes (`--url` lists their base URLs, comma-separated): a
/// client starts at the first, and each [`ScimClient::fork`] goes to the next in turn, so
/// the workers of a phase spread evenly over the nodes.
#[derive(Clone)]
pub struct ScimClient {
    http: Client<HttpConnector, Full<Bytes>>,
    base: String,
    nodes: Arc<[String]>,
    next_node: Arc<AtomicUsize>,
    auth: Option<HeaderValue>,
    timeout: Duration,
}

impl ScimClient {
    /// A client for the SCIM service at `base_urls` (`http://host:port/prefix`, or several
    /// such URLs of the nodes of one service, comma-separated).
    pub fn new(base_urls: &str, token: &str, timeout: Duration) -> Result<Self, String> {
        let mut nodes = Vec::new();
        for base_url in base_urls.split(',') {
            let base = base_url.trim().trim_end_matches('/').to_owned();
            let uri: Uri = base
                .parse()
                .map_err(|e| format!("invalid --url {base_url:?}: {e}"))?;
            if uri.scheme_str() != Some("http") || uri.host().is_none() {
                return Err(format!(
                    "--url must be plain http:// URLs, got {base_url:?}"
                ));
            }
            nodes.push(base);
        }
        let auth = if token.is_empty() {
            None
        } else {
            let value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| "--token holds characters not allowed in a header".to_owned())?;
            Some(value)
        };
        Ok(ScimClient {
            http: new_pool(),
            base: nodes[0].clone(),
            nodes: nodes.into(),
            next_node: Arc::new(AtomicUsize::new(1)),
            auth,
            timeout,
        })
    }

    /// A client to the same service with a connection pool of its own, sending to the
    /// service's next node.
    pub fn fork(&self) -> Self {
        let node = self.next_node.fetch_add(1, Ordering::Relaxed) % self.nodes.len();
        ScimClient {
            http: new_pool(),
            base: self.nodes[node].clone(),
            ..self.clone()
        }
    }

    /// Sends `GET base+path`.
    pub async fn get(&self, path: &str) -> Result<Response, Failure> {
        self.send(Method::GET, path, None).await
    }

    /// Sends `POST base+path` with a SCIM JSON body.
    pub async fn post(&self, path: &str, body: Bytes) -> Result<Response, Failure> {
        self.send(Method::POST, path, Some(body)).await
    }

    /// Sends `PATCH base+path` with a SCIM JSON body.
    pub async fn patch(&self, path: &str, body: Bytes) -> Result<Response, Failure> {
        self.send(Method::PATCH, path, Some(body)).await
    }

    /// Sends one request and reads the whole response; any status but 2xx is
    /// a [`Failure::Status`].
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<Response, Failure> {
        let uri: Uri = format!("{}{path}", self.base)
            .parse()
            .map_err(|e| Failure::Transport(format!("invalid URI for {path:?}: {e}")))?;
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(uri)
            .header(ACCEPT, SCIM_JSON);
        if let Some(auth) = &self.auth {
            builder = builder.header(AUTHORIZATION, auth.clone());
        }
        if body.is_some() {
            builder = builder.header(CONTENT_TYPE, SCIM_JSON);
        }
        let request = builder
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| Failure::Transport(format!("cannot build request: {e}")))?;

        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| Failure::Transport(error_chain(&e)))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| Failure::Transport(format!("reading body: {}", error_chain(&e))))?
                .to_bytes();
            Ok::<_, Failure>(Response { status, body })
        };
        let response = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| Failure::Transport(format!("timed out after {:?}", self.timeout)))??;

        if response.status.is_success() {
            Ok(response)
        } else {
            Err(Failure::Status {
                method,
                path: path.to_owned(),
                status: response.status,
                body: truncated(&response.body),
            })
        }
    }
}

fn new_pool() -> Client<HttpConnector, Full<Bytes>> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .build(connector)
}

/// An error and its sources, joined: hyper's top-level messages alone are vague.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The start of a body as text, for error messages.
fn truncated(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    match text.char_indices().nth(MAX_ERROR_BODY) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.into_owned(),
    }
}
