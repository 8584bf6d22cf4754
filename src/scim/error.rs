//! The SCIM Error response (RFC 7644 §3.12): the one place core errors become HTTP.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::core::error::{CoreError, StoreError, UNAVAILABLE_RETRY_AFTER_SECS};

pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub const SCIM_CONTENT_TYPE: &str = "application/scim+json";

#[derive(Debug, thiserror::Error)]
#[error("{detail}")]
pub struct ScimError {
    pub status: StatusCode,
    pub scim_type: Option<&'static str>,
    pub detail: String,
    /// Seconds for `Retry-After` (429).
    pub retry_after: Option<u64>,
}

impl ScimError {
    pub fn new(
        status: StatusCode,
        scim_type: Option<&'static str>,
        detail: impl Into<String>,
    ) -> Self {
        ScimError {
            status,
            scim_type,
            detail: detail.into(),
            retry_after: None,
        }
    }
    /// 429: the token's request rate is over its limit.
    pub fn too_many(retry_after: u64) -> Self {
        ScimError {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                None,
                "too many requests for this token; retry later",
            )
        }
    }
    pub fn bad(scim_type: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some(scim_type), detail)
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, None, detail)
    }
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            None,
            "a valid bearer token is required",
        )
    }
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, None, detail)
    }
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = json!({
            "schemas": [ERROR_SCHEMA],
            "status": self.status.as_u16().to_string(),
            "detail": self.detail,
        });
        if let Some(t) = self.scim_type {
            v["scimType"] = json!(t);
        }
        v
    }
}

impl From<CoreError> for ScimError {
    fn from(e: CoreError) -> Self {
        use StatusCode as S;
        match e {
            CoreError::NotFound(what) => ScimError::not_found(format!("{what} not found")),
            CoreError::Uniqueness(m) => ScimError::new(S::CONFLICT, Some("uniqueness"), m),
            CoreError::InvalidValue(m) => ScimError::bad("invalidValue", m),
            CoreError::InvalidFilter(m) => ScimError::bad("invalidFilter", m),
            CoreError::InvalidPath(m) => ScimError::bad("invalidPath", m),
            CoreError::NoTarget(m) => ScimError::bad("noTarget", m),
            CoreError::Mutability(m) => ScimError::bad("mutability", m),
            CoreError::InvalidSyntax(m) => ScimError::bad("invalidSyntax", m),
            CoreError::VersionMismatch(_) => {
                ScimError::new(S::PRECONDITION_FAILED, None, e.to_string())
            }
            CoreError::Forbidden(m) => ScimError::forbidden(m),
            CoreError::Internal(m) => {
                tracing::error!(error = %m, "internal failure");
                ScimError::new(S::INTERNAL_SERVER_ERROR, None, "internal error")
            }
            CoreError::Store(StoreError::Unavailable(err)) => {
                tracing::warn!(error = %err, "database unavailable");
                ScimError {
                    retry_after: Some(UNAVAILABLE_RETRY_AFTER_SECS),
                    ..ScimError::new(
                        S::SERVICE_UNAVAILABLE,
                        None,
                        "the database is unavailable; retry later",
                    )
                }
            }
            CoreError::Store(err) => {
                tracing::error!(error = %err, "storage failure");
                ScimError::new(S::INTERNAL_SERVER_ERROR, None, "internal storage error")
            }
        }
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            serde_json::to_vec(&self.to_json()).unwrap_or_default(),
        )
            .into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(SCIM_CONTENT_TYPE),
        );
        if let Some(secs) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

pub type ScimResult<T> = Result<T, ScimError>;
