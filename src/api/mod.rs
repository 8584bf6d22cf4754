//! The admin API at `/api/v1`, authenticated by admin API keys (`roster admin-key create`):
//! the event feed (with long-poll), role mappings, a user's roles and the drift report.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::core::error::CoreError;
use crate::core::model::{Actor, Org, OrgId, Scope};
use crate::core::secrets::hash_secret;
use crate::core::store::{LifecycleStore, RoleMapping, Store};
use crate::core::{new_id, now};
use crate::store::SqlStore;

/// Most events per feed page, and the longest long-poll.
pub const MAX_EVENTS: i64 = 1000;
pub const MAX_WAIT: Duration = Duration::from_secs(30);

pub struct ApiState {
    pub store: SqlStore,
}

/// A JSON error: `{"error": {"code", "message"}}`.
pub struct ApiError(StatusCode, &'static str, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.0,
            Json(json!({"error": {"code": self.1, "message": self.2}})),
        )
            .into_response()
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::NotFound(m) => ApiError(StatusCode::NOT_FOUND, "not_found", m),
            CoreError::Uniqueness(m) => ApiError(StatusCode::CONFLICT, "conflict", m),
            CoreError::Forbidden(m) => ApiError(StatusCode::FORBIDDEN, "forbidden", m),
            CoreError::InvalidValue(m) | CoreError::InvalidSyntax(m) => {
                ApiError(StatusCode::BAD_REQUEST, "invalid", m)
            }
            other => {
                tracing::error!(error = %other, "admin API failure");
                ApiError(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error".into(),
                )
            }
        }
    }
}

type ApiResult<T> = Result<T, ApiError>;

fn bad(m: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, "invalid", m.into())
}

/// A caller holding an admin key.
pub struct Admin {
    key_id: String,
    org: Option<OrgId>,
    read_only: bool,
}

impl Admin {
    fn actor(&self) -> Actor {
        Actor::AdminKey {
            key_id: self.key_id.clone(),
        }
    }

    fn check_write(&self) -> ApiResult<()> {
        if self.read_only {
            Err(ApiError(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this admin key is read-only".into(),
            ))
        } else {
            Ok(())
        }
    }

    /// The organization named `slug`, if this key may see it (else 404: a scoped key cannot
    /// even learn which other organizations exist).
    async fn org(&self, store: &SqlStore, slug: &str) -> ApiResult<Org> {
        let org = store
            .org_by_slug(slug)
            .await?
            .filter(|o| self.org.as_ref().is_none_or(|mine| *mine == o.id));
        org.ok_or_else(|| {
            ApiError(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("organization \"{slug}\""),
            )
        })
    }
}

impl FromRequestParts<Arc<ApiState>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<ApiState>,
    ) -> Result<Self, Self::Rejection> {
        let unauthorized = || {
            ApiError(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "an admin API key is required (Authorization: Bearer …)".into(),
            )
        };
        let key = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .ok_or_else(unauthorized)?;
        // Looked up by hash: keys are stored only as SHA-256.
        let grant = state
            .store
            .admin_key_grant(&hash_secret(key))
            .await?
            .ok_or_else(unauthorized)?;
        Ok(Admin {
            key_id: grant.key_id,
            org: grant.org,
            read_only: grant.read_only,
        })
    }
}

pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/events", get(events))
        .route("/orgs/{org}/report/drift", get(drift))
        .route(
            "/orgs/{org}/role-mappings",
            get(list_mappings).post(create_mapping),
        )
        .route("/orgs/{org}/role-mappings/{id}", delete(delete_mapping))
        .route("/orgs/{org}/users/{id}/roles", get(user_roles))
        .with_state(state)
}

#[derive(Deserialize)]
struct FeedQuery {
    after: Option<String>,
    limit: Option<String>,
    org: Option<String>,
    wait: Option<String>,
}

/// `30s`, `30` (seconds) or `500ms`, at most [`MAX_WAIT`].
fn parse_wait(s: &str) -> ApiResult<Duration> {
    let d = if let Some(ms) = s.strip_suffix("ms") {
        ms.parse::<u64>().map(Duration::from_millis)
    } else {
        s.strip_suffix('s')
            .unwrap_or(s)
            .parse::<u64>()
            .map(Duration::from_secs)
    }
    .map_err(|_| bad(format!("wait=\"{s}\" is not a duration such as 30s")))?;
    Ok(d.min(MAX_WAIT))
}

/// `GET /api/v1/events?after=<cursor>&limit=…&org=…&wait=30s`: events after the cursor, in
/// cursor order; with `wait`, an empty page is held open until an event arrives.
async fn events(
    State(st): State<Arc<ApiState>>,
    admin: Admin,
    Query(q): Query<FeedQuery>,
) -> ApiResult<Json<Value>> {
    let after = match q.after.as_deref() {
        None | Some("") => 0,
        Some(a) => a
            .trim_start_matches("evt_")
            .parse::<i64>()
            .map_err(|_| bad("after must be a cursor from an earlier page"))?,
    };
    let limit = match q.limit.as_deref() {
        None => 100,
        Some(l) => l
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_EVENTS).contains(n))
            .ok_or_else(|| bad(format!("limit must be 1..{MAX_EVENTS}")))?,
    };
    let org = match (&q.org, &admin.org) {
        (Some(slug), _) => Some(admin.org(&st.store, slug).await?.id),
        (None, Some(mine)) => Some(mine.clone()),
        (None, None) => None,
    };
    let wait = q.wait.as_deref().map(parse_wait).transpose()?;
    let deadline = Instant::now() + wait.unwrap_or_default();
    let mut signal = st.store.event_signal();
    let page = loop {
        signal.borrow_and_update();
        let page = st.store.events_after(after, org.as_ref(), limit).await?;
        let left = deadline.saturating_duration_since(Instant::now());
        if !page.is_empty() || left.is_zero() {
            break page;
        }
        // Woken by a local commit, or after a short poll for other nodes' events.
        tokio::select! {
            _ = signal.changed() => {}
            _ = tokio::time::sleep(left.min(Duration::from_millis(250))) => {}
        }
    };
    let next = page.last().map_or(after, |e| e.cursor);
    let has_more = i64::try_from(page.len()).unwrap_or(0) == limit;
    Ok(Json(json!({
        "events": page.iter().map(|e| e.to_json()).collect::<Vec<_>>(),
        "next_cursor": next.to_string(),
        "has_more": has_more,
    })))
}

#[derive(Deserialize)]
struct DriftQuery {
    stale_days: Option<i64>,
}

async fn drift(
    State(st): State<Arc<ApiState>>,
    admin: Admin,
    Path(org): Path<String>,
    Query(q): Query<DriftQuery>,
) -> ApiResult<Json<Value>> {
    let org = admin.org(&st.store, &org).await?;
    let days = q.stale_days.unwrap_or(30).clamp(1, 3650);
    let report = st.store.drift_report(&org, days, &now()).await?;
    Ok(Json(serde_json::to_value(report).unwrap_or(Value::Null)))
}

fn mapping_json(m: &RoleMapping) -> Value {
    json!({"id": m.id, "match_on": m.match_on, "group": m.group_value, "role": m.role, "created_at": m.created_at})
}

async fn list_mappings(
    State(st): State<Arc<ApiState>>,
    admin: Admin,
    Path(org): Path<String>,
) -> ApiResult<Json<Value>> {
    let org = admin.org(&st.store, &org).await?;
    let list = st.store.role_mappings(&org.id).await?;
    Ok(Json(
        json!({"role_mappings": list.iter().map(mapping_json).collect::<Vec<_>>()}),
    ))
}

#[derive(Deserialize)]
struct NewMapping {
    match_on: Option<String>,
    group: String,
    role: String,
}

async fn create_mapping(
    State(st): State<Arc<ApiState>>,
    admin: Admin,
    Path(org): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    admin.check_write()?;
    let org = admin.org(&st.store, &org).await?;
    let m: NewMapping = serde_json::from_slice(&body).map_err(|e| {
        bad(format!(
            "expected {{\"group\", \"role\", \"match_on\"}}: {e}"
        ))
    })?;
    let mapping = crate::core::roles::new_mapping(
        &org.id,
        m.match_on.as_deref().unwrap_or("displayName"),
        &m.group,
        &m.role,
    )?;
    st.store
        .insert_role_mapping(&mapping, &admin.actor())
        .await?;
    Ok((StatusCode::CREATED, Json(mapping_json(&mapping))))
}

async fn delete_mapping(
    State(st): State<Arc<ApiState>>,
    admin: Admin,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    admin.check_write()?;
    let org = admin.org(&st.store, &org).await?;
    if st
        .store
        .delete_role_mapping(&org.id, &id, &admin.actor())
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(CoreError::NotFound(format!("role mapping {id}")).into())
    }
}

async fn user_roles(
    State(st): State<Arc<ApiState>>,
    admin: Admin,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let org = admin.org(&st.store, &org).await?;
    let scope = Scope {
        org: org.id,
        actor: admin.actor(),
    };
    if st.store.get_user(&scope, &id).await?.is_none() {
        return Err(CoreError::NotFound(format!("User {id}")).into());
    }
    let roles = st.store.user_roles(&scope, &id).await?;
    Ok(Json(json!({"user_id": id, "roles": roles})))
}

/// A new admin key's secret: shown once, stored as SHA-256.
pub fn new_key() -> crate::core::error::CoreResult<String> {
    crate::core::secrets::random_token("rak_")
}

/// A fresh id for an admin key.
pub fn new_key_id() -> String {
    new_id()
}
