//! The admin API at `/api/v1`, authenticated by admin API keys (`roster admin-key create`,
//! stored hashed, scoped to every organization or one, read-only or read-write).
//!
//! `setup.rs`: organizations, domains, connections, directories and their tokens, apps.
//! `people.rs`: users (with their timeline), groups and members.
//! `lifecycle.rs`: the event feed, webhooks and deliveries, the audit log, role mappings and
//! the drift report. `openapi.rs` assembles the OpenAPI 3.1 document from the handlers'
//! annotations; it is served at `/api/v1/openapi.json`.
//!
//! Conventions: lists are `{"data": […], "next_cursor": "…" | null}` (pass `cursor` back for
//! the next page; `limit` 1–200); errors are `{"error": {"code", "message"}}`; bad query
//! strings and bodies are 400 with that body, never a framework's plain text.

pub mod lifecycle;
pub mod openapi;
pub mod people;
pub mod setup;

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::core::error::CoreError;
use crate::core::model::{Actor, Org, OrgId};
use crate::core::secrets::{MasterKey, hash_secret};
use crate::core::store::prelude::*;
use crate::scim::limit::RateLimiter;
use crate::store::SqlStore;

/// Most items per page, and the default.
pub const MAX_LIMIT: i64 = 200;
pub const DEFAULT_LIMIT: i64 = 50;

pub struct ApiState {
    pub store: SqlStore,
    pub master: MasterKey,
    /// This server's base URL as browsers and IdPs reach it (no trailing slash).
    pub public_url: String,
    /// Per admin key, on this node (off when its rate is 0).
    pub limits: Arc<RateLimiter>,
    /// Domain verification's DNS lookups.
    pub dns: crate::dns::Resolver,
    /// Outbound HTTP to customer-supplied URLs (SAML metadata URLs).
    pub outbound: crate::outbound::Outbound,
}

/// The body of every error.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// `invalid`, `unauthorized`, `forbidden`, `not_found`, `conflict`, `rate_limited` or
    /// `internal`.
    pub code: String,
    pub message: String,
}

/// The errors every operation may answer.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum Errors {
    /// The request is malformed (query, body or a value in it).
    #[response(status = 400)]
    Invalid(ErrorBody),
    /// No admin key, or an unknown or revoked one.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The key is read-only, or limited to another organization's scope.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// No such resource (or not visible to this key).
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// Too many requests for this key; see `Retry-After`.
    #[response(status = 429)]
    RateLimited(ErrorBody),
}

/// An error answer: status, code and message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn status(&self) -> StatusCode {
        self.status
    }
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (
            self.status,
            Json(json!({"error": {"code": self.code, "message": self.message}})),
        )
            .into_response();
        if let Some(secs) = self.retry_after
            && let Ok(v) = header::HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, "not_found", m),
            CoreError::Uniqueness(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            CoreError::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", m),
            CoreError::InvalidValue(m)
            | CoreError::InvalidSyntax(m)
            | CoreError::InvalidFilter(m)
            | CoreError::InvalidPath(m)
            | CoreError::NoTarget(m)
            | CoreError::Mutability(m) => bad(m),
            e @ CoreError::VersionMismatch(_) => {
                ApiError::new(StatusCode::PRECONDITION_FAILED, "conflict", e.to_string())
            }
            CoreError::Store(crate::core::error::StoreError::Unique(m)) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", m)
            }
            CoreError::Store(crate::core::error::StoreError::Unavailable(m)) => {
                tracing::warn!(error = %m, "database unavailable");
                ApiError {
                    retry_after: Some(crate::core::error::UNAVAILABLE_RETRY_AFTER_SECS),
                    ..ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "unavailable",
                        "the database is unavailable; retry later",
                    )
                }
            }
            other => {
                tracing::error!(error = %other, "admin API failure");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                )
            }
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

pub fn bad(m: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid", m)
}

pub fn not_found(what: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", what)
}

/// A query string, refused with a JSON 400 when it does not parse.
pub struct Q<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Q<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        if has_nul(q) {
            return Err(bad("query string: NUL characters are not accepted"));
        }
        serde_urlencoded::from_str(q)
            .map(Q)
            .map_err(|e| bad(format!("query string: {e}")))
    }
}

/// A JSON body, refused with a JSON 400 (415 without a JSON content type, 413 over the
/// size limit).
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| {
                let m = m.trim();
                m.eq_ignore_ascii_case("application/json") || m.ends_with("+json")
            });
        if !json_type {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "invalid",
                "send the body as application/json",
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| match e.status() {
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "invalid",
                    format!("body: larger than {} bytes", crate::scim::MAX_PAYLOAD),
                ),
                _ => bad(format!("body: {e}")),
            })?;
        // Objects only: serde would also take a struct from an array of its fields.
        match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(v) if value_has_nul(&v) => Err(bad("body: NUL characters are not accepted")),
            Ok(v @ serde_json::Value::Object(_)) => serde_json::from_value(v)
                .map(Body)
                .map_err(|e| bad(format!("body: {e}"))),
            Ok(_) => Err(bad("body: expected a JSON object")),
            Err(e) => Err(bad(format!("body: {e}"))),
        }
    }
}

/// Whether percent-encoded text holds a NUL (which no stored text may hold).
fn has_nul(s: &str) -> bool {
    s.as_bytes()
        .windows(3)
        .any(|w| w[0] == b'%' && w[1] == b'0' && w[2] == b'0')
}

fn value_has_nul(v: &serde_json::Value) -> bool {
    use serde_json::Value;
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(value_has_nul),
        Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || value_has_nul(v)),
        _ => false,
    }
}

/// Refuses request paths holding an encoded NUL before any handler sees them.
pub async fn refuse_nul(req: Request, next: axum::middleware::Next) -> Response {
    if has_nul(req.uri().path()) {
        return bad("path: NUL characters are not accepted").into_response();
    }
    next.run(req).await
}

/// A page of a list and where the next one starts.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub data: Vec<T>,
    /// Give as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// `cursor` and `limit` of a list request.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Items per page (1–200, default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

impl PageParams {
    pub fn limit(&self) -> ApiResult<i64> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            Some(_) => Err(bad(format!("limit must be 1..{MAX_LIMIT}"))),
        }
    }
    /// The position a cursor of `kind` stands for (0 without a cursor).
    pub fn after_pos(&self, kind: &str) -> ApiResult<i64> {
        match self.cursor.as_deref() {
            None | Some("") => Ok(0),
            Some(c) => decode_cursor(kind, c)?
                .parse::<i64>()
                .map_err(|_| bad("cursor is not one this list gave")),
        }
    }
    /// The key a cursor of `kind` stands for.
    pub fn after_key(&self, kind: &str) -> ApiResult<Option<String>> {
        match self.cursor.as_deref() {
            None | Some("") => Ok(None),
            Some(c) => decode_cursor(kind, c).map(Some),
        }
    }
}

/// An opaque cursor: the list's kind and the last item's key.
pub fn encode_cursor(kind: &str, key: &str) -> String {
    B64.encode(format!("{kind}:{key}"))
}

fn decode_cursor(kind: &str, c: &str) -> ApiResult<String> {
    B64.decode(c)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix(&format!("{kind}:")).map(str::to_owned))
        .ok_or_else(|| bad("cursor is not one this list gave"))
}

/// Cuts a list fetched with one row more than `limit` (to learn whether another page
/// follows) to `limit`; `true` if there was more.
pub fn take_page<T>(rows: &mut Vec<T>, limit: i64) -> bool {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let more = rows.len() > limit;
    rows.truncate(limit);
    more
}

/// The next cursor of a page whose last key is `last`, when more follow.
pub fn next_cursor(kind: &str, more: bool, last: Option<String>) -> Option<String> {
    if more {
        last.map(|k| encode_cursor(kind, &k))
    } else {
        None
    }
}

/// A caller holding an admin key (or a console session made from one).
#[derive(Debug, Clone)]
pub struct Admin {
    pub key_id: String,
    pub org: Option<OrgId>,
    pub read_only: bool,
    /// Set for an operator signed in to the console through SSO (then `key_id` is empty).
    pub user_id: Option<String>,
}

impl Admin {
    pub fn actor(&self) -> Actor {
        match &self.user_id {
            Some(u) => Actor::ConsoleUser { user_id: u.clone() },
            None => Actor::AdminKey {
                key_id: self.key_id.clone(),
            },
        }
    }

    pub fn check_write(&self) -> ApiResult<()> {
        if self.read_only {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this admin key is read-only",
            ))
        } else {
            Ok(())
        }
    }

    /// For what only an all-organizations key may do (create organizations, apps).
    pub fn check_global(&self) -> ApiResult<()> {
        if self.org.is_some() {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this admin key is limited to one organization",
            ))
        } else {
            Ok(())
        }
    }

    /// Whether this key may see a webhook endpoint: its organization's, or any for keys of
    /// every organization (endpoints of every organization only for those).
    pub fn sees_endpoint(&self, w: &crate::core::webhooks::Endpoint) -> bool {
        self.org.is_none() || w.org_id.as_ref().is_some_and(|o| self.sees(o))
    }

    /// Whether this key may see the organization with this id.
    pub fn sees(&self, org: &OrgId) -> bool {
        self.org.as_ref().is_none_or(|mine| mine == org)
    }

    /// The organization named `slug`, if this key may see it (else 404: a scoped key cannot
    /// even learn which other organizations exist).
    pub async fn org(&self, store: &SqlStore, slug: &str) -> ApiResult<Org> {
        store
            .org_by_slug(slug)
            .await?
            .filter(|o| self.sees(&o.id))
            .ok_or_else(|| not_found(format!("organization \"{slug}\"")))
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
}

impl FromRequestParts<Arc<ApiState>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<ApiState>,
    ) -> Result<Self, Self::Rejection> {
        let unauthorized = || {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "an admin API key is required (Authorization: Bearer …)",
            )
        };
        let key = bearer(parts).ok_or_else(unauthorized)?;
        // Looked up by hash: keys are stored only as SHA-256.
        let grant = state
            .store
            .admin_key_grant(&hash_secret(key))
            .await?
            .ok_or_else(unauthorized)?;
        if let Err(wait) = state.limits.check(&grant.key_id) {
            return Err(ApiError {
                retry_after: Some(wait.max(1)),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    "too many requests for this admin key",
                )
            });
        }
        Ok(Admin {
            key_id: grant.key_id,
            org: grant.org,
            read_only: grant.read_only,
            user_id: None,
        })
    }
}

pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .merge(setup::routes())
        .merge(people::routes())
        .merge(lifecycle::routes())
        .route(
            "/openapi.json",
            axum::routing::get(|| async { Json(openapi::document()) }),
        )
        .fallback(|| async { not_found("no such admin API route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid",
                "this route does not take that method",
            )
        })
        .layer(axum::middleware::from_fn(refuse_nul))
        .with_state(state)
}

/// A new admin key's secret: shown once, stored as SHA-256.
pub fn new_key() -> crate::core::error::CoreResult<String> {
    crate::core::secrets::random_token("rak_")
}

/// A fresh id for an admin key.
pub fn new_key_id() -> String {
    crate::core::new_id()
}
