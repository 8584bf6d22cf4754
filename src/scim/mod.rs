//! The SCIM 2.0 adapter (RFC 7643/7644) at `/scim/v2`: wire ⇄ core, nothing else.
//! The bearer token selects the directory and so the organization; every call below is
//! scoped by it.

pub mod auth;
mod bulk;
mod discovery;
pub mod error;
pub mod filter;
pub mod limit;
mod ops;
pub mod resolve;
pub mod traffic;
pub mod wire;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;

use crate::core::model::{Actor, Expect, Scope};
use crate::store::SqlStore;
use error::{SCIM_CONTENT_TYPE, ScimError, ScimResult};
pub use ops::Kind;
use ops::{ListParams, Resp};

/// Limits advertised in `/ServiceProviderConfig` and enforced.
pub const MAX_RESULTS: u64 = 1000;
pub const MAX_PAYLOAD: usize = 1_048_576;
pub const MAX_BULK_OPS: usize = 1000;

/// What every SCIM handler needs.
pub struct ScimState {
    pub store: SqlStore,
    /// Absolute base URL of the SCIM endpoint (`https://host/scim/v2`), for `location`s.
    pub base_url: String,
    pub tokens: auth::TokenCache,
    pub traffic: Arc<traffic::Traffic>,
    pub limits: Arc<limit::RateLimiter>,
}

/// An authenticated caller: its organization scope and whether it may write.
pub struct Caller {
    pub scope: Scope,
    pub read_only: bool,
}

impl Caller {
    fn check_write(&self) -> ScimResult<()> {
        if self.read_only {
            Err(ScimError::forbidden("this token is read-only"))
        } else {
            Ok(())
        }
    }
}

impl FromRequestParts<Arc<ScimState>> for Caller {
    type Rejection = ScimError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<ScimState>,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .ok_or_else(ScimError::unauthorized)?;
        // Looked up by hash: the token itself is never stored or compared.
        let grant = state
            .tokens
            .grant(&state.store, token)
            .await?
            .ok_or_else(ScimError::unauthorized)?;
        state
            .limits
            .check(&grant.token_id)
            .map_err(ScimError::too_many)?;
        if let Some(slot) = parts.extensions.get::<traffic::DirectorySlot>() {
            let _ = slot.0.set(grant.directory_id.clone());
        }
        Ok(Caller {
            scope: Scope {
                org: grant.org,
                actor: Actor::Directory {
                    directory_id: grant.directory_id,
                    token_id: grant.token_id,
                },
            },
            read_only: grant.read_only,
        })
    }
}

pub fn router(state: Arc<ScimState>) -> Router {
    Router::new()
        .route("/{resource}", get(list).post(create))
        .route("/{resource}/.search", post(search))
        .route(
            "/{resource}/{id}",
            get(get_one).put(put).patch(patch).delete(delete),
        )
        .route("/.search", post(search_root))
        .route("/Bulk", post(bulk::bulk))
        .route(
            "/ServiceProviderConfig",
            get(discovery::service_provider_config),
        )
        .route("/ResourceTypes", get(discovery::resource_types))
        .route("/ResourceTypes/{name}", get(discovery::resource_type))
        .route("/Schemas", get(discovery::schemas))
        .route("/Schemas/{id}", get(discovery::schema))
        .fallback(|| async { ScimError::not_found("no such SCIM endpoint") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            traffic::count,
        ))
        .with_state(state)
}

/// A request body, with extractor failures reported as SCIM errors (over-size → 413).
pub struct Body(pub Bytes);

impl<S: Send + Sync> axum::extract::FromRequest<S> for Body {
    type Rejection = ScimError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        match Bytes::from_request(req, state).await {
            Ok(b) => Ok(Body(b)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ScimError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                None,
                format!("the request body exceeds {MAX_PAYLOAD} bytes"),
            )),
            Err(e) => Err(ScimError::bad("invalidSyntax", e.body_text())),
        }
    }
}

/// A resource id from the URL. Ids are UUIDs; anything with a NUL cannot name a resource
/// (and is not text to PostgreSQL), so it is answered 404 before reaching the store.
fn resource_id(id: &str) -> ScimResult<&str> {
    if id.contains('\0') {
        Err(ScimError::not_found("no such resource"))
    } else {
        Ok(id)
    }
}

/// Parses a request body as a JSON object: unparseable → 400 `invalidSyntax`. A large body
/// is parsed off the async workers (`core::cpu_bound`; about 256 bytes of JSON weigh one).
pub fn json_body(bytes: &Bytes) -> ScimResult<serde_json::Map<String, Value>> {
    let parsed =
        crate::core::cpu_bound(bytes.len() / 256, || serde_json::from_slice::<Value>(bytes));
    match parsed {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err(ScimError::bad(
            "invalidSyntax",
            "the request body must be a JSON object",
        )),
        Err(e) => Err(ScimError::bad(
            "invalidSyntax",
            format!("the request body is not valid JSON: {e}"),
        )),
    }
}

/// Every field line of header `name` as one list (RFC 7230 §3.2.2); bytes that are not
/// text are replaced, so they name no entity tag.
fn header_list(h: &HeaderMap, name: header::HeaderName) -> Option<String> {
    let mut lines = h.get_all(name).into_iter();
    let mut out = String::from_utf8_lossy(lines.next()?.as_bytes()).into_owned();
    for line in lines {
        out.push(',');
        out.push_str(&String::from_utf8_lossy(line.as_bytes()));
    }
    Some(out)
}

/// `If-Match`: the write's precondition (RFC 7644 §3.14). A tag Roster never issued fails
/// it (412), as a stale one does.
fn if_match(h: &HeaderMap) -> ScimResult<Option<Expect>> {
    match header_list(h, header::IF_MATCH) {
        None => Ok(None),
        Some(v) => wire::if_match(&v).map_err(|m| ScimError::bad("invalidValue", m)),
    }
}

impl IntoResponse for Resp {
    fn into_response(self) -> Response {
        let mut r = match self.body {
            // `to_vec` writes straight into the buffer; `to_string` would go through
            // `fmt::Display`, one formatter call per token.
            Some(ops::RespBody::Json(b)) => match serde_json::to_vec(&b) {
                Ok(bytes) => (self.status, bytes).into_response(),
                Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            },
            Some(ops::RespBody::Text(bytes)) => (self.status, bytes).into_response(),
            None => self.status.into_response(),
        };
        let h = r.headers_mut();
        if self.status != StatusCode::NO_CONTENT && self.status != StatusCode::NOT_MODIFIED {
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(SCIM_CONTENT_TYPE),
            );
        }
        if let Some(v) = self.etag.and_then(|e| HeaderValue::from_str(&e).ok()) {
            h.insert(header::ETAG, v);
        }
        if let Some(v) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            h.insert(header::LOCATION, v);
        }
        r
    }
}

type St = State<Arc<ScimState>>;
type Q = Query<Vec<(String, String)>>;

/// `/{resource}`: the resource type an endpoint names (`Users`, `Groups`).
fn kind(resource: &str) -> ScimResult<Kind> {
    Kind::from_endpoint(resource).ok_or_else(|| ScimError::not_found("no such SCIM endpoint"))
}

async fn list(State(s): St, Path(res): Path<String>, c: Caller, Query(q): Q) -> ScimResult<Resp> {
    ops::list(&s, &c.scope, kind(&res)?, &ListParams::from_query(&q)?).await
}

async fn search(
    State(s): St,
    Path(res): Path<String>,
    c: Caller,
    Body(body): Body,
) -> ScimResult<Resp> {
    let k = kind(&res)?;
    ops::list(
        &s,
        &c.scope,
        k,
        &ListParams::from_search(&json_body(&body)?)?,
    )
    .await
}

async fn search_root(State(s): St, c: Caller, Body(body): Body) -> ScimResult<Resp> {
    ops::search_root(&s, &c.scope, &ListParams::from_search(&json_body(&body)?)?).await
}

async fn create(
    State(s): St,
    Path(res): Path<String>,
    c: Caller,
    Query(q): Q,
    Body(body): Body,
) -> ScimResult<Resp> {
    let k = kind(&res)?;
    c.check_write()?;
    ops::create(&s, &c.scope, k, &json_body(&body)?, &ops::projection(k, &q)).await
}

async fn get_one(
    State(s): St,
    Path((res, id)): Path<(String, String)>,
    c: Caller,
    h: HeaderMap,
    Query(q): Q,
) -> ScimResult<Resp> {
    let k = kind(&res)?;
    let inm = header_list(&h, header::IF_NONE_MATCH).map(wire::NoneMatch::new);
    ops::get(
        &s,
        &c.scope,
        k,
        resource_id(&id)?,
        &ops::projection(k, &q),
        inm.as_ref(),
    )
    .await
}

async fn put(
    State(s): St,
    Path((res, id)): Path<(String, String)>,
    c: Caller,
    h: HeaderMap,
    Query(q): Q,
    Body(body): Body,
) -> ScimResult<Resp> {
    let k = kind(&res)?;
    c.check_write()?;
    let v = if_match(&h)?;
    let proj = ops::projection(k, &q);
    ops::replace(
        &s,
        &c.scope,
        k,
        resource_id(&id)?,
        &json_body(&body)?,
        v,
        &proj,
    )
    .await
}

async fn patch(
    State(s): St,
    Path((res, id)): Path<(String, String)>,
    c: Caller,
    h: HeaderMap,
    Query(q): Q,
    Body(body): Body,
) -> ScimResult<Resp> {
    let k = kind(&res)?;
    c.check_write()?;
    let v = if_match(&h)?;
    ops::patch(
        &s,
        &c.scope,
        k,
        resource_id(&id)?,
        &json_body(&body)?,
        v,
        &q,
    )
    .await
}

async fn delete(
    State(s): St,
    Path((res, id)): Path<(String, String)>,
    c: Caller,
    h: HeaderMap,
) -> ScimResult<Resp> {
    let k = kind(&res)?;
    c.check_write()?;
    let v = if_match(&h)?;
    ops::delete(&s, &c.scope, k, resource_id(&id)?, v).await
}
