//! The event feed (with long-poll), webhooks and their deliveries, the audit log, role
//! mappings and the drift report.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::people::EventView;
use super::{
    Admin, ApiResult, ApiState, Body, ErrorBody, Errors, Page, PageParams, Q, bad, next_cursor,
    not_found, take_page,
};
use crate::core::model::OrgId;
use crate::core::now;
use crate::core::report::DriftReport;
use crate::core::store::prelude::*;
use crate::core::store::{Delivery, RoleMapping};
use crate::core::webhooks::{self, Endpoint};

/// Most events per feed page, and the longest long-poll.
pub const MAX_EVENTS: i64 = 1000;
pub const MAX_WAIT: Duration = Duration::from_secs(30);

pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/events", get(events))
        .route("/orgs/{org}/report/drift", get(drift))
        .route(
            "/orgs/{org}/role-mappings",
            get(list_mappings).post(create_mapping),
        )
        .route("/orgs/{org}/role-mappings/{id}", delete(delete_mapping))
        .route("/orgs/{org}/audit", get(audit_log))
        .route("/webhooks", get(list_webhooks).post(create_webhook))
        .route("/webhooks/{id}", get(get_webhook))
        .route("/webhooks/{id}/disable", post(disable_webhook))
        .route("/webhooks/{id}/deliveries", get(list_deliveries))
        .route(
            "/webhooks/{id}/deliveries/{event}/attempts",
            get(list_attempts),
        )
        .route("/webhooks/{id}/resend", post(resend))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedParams {
    /// The `next_cursor` of the previous page (events after it).
    #[param(pattern = "^((evt_)?[0-9]{1,18})?$")]
    after: Option<String>,
    /// Events per page (1–1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// One organization's events (keys limited to one organization see only theirs).
    org: Option<String>,
    /// Hold an empty page open until an event arrives: `30s`, `30` or `500ms` (at most 30 s).
    #[param(pattern = "^[0-9]{1,9}(ms|s)?$")]
    wait: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Feed {
    pub events: Vec<EventView>,
    /// Pass as `after` for the next page (the same cursor when the page is empty).
    pub next_cursor: String,
    pub has_more: bool,
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

/// `GET /events`: events after the cursor, in cursor order; with `wait`, an empty page is
/// held open until an event arrives.
#[utoipa::path(get, path = "/events", tag = "events", params(FeedParams),
    responses((status = 200, body = Feed), Errors), security(("admin_key" = [])))]
async fn events(
    State(st): State<Arc<ApiState>>,
    admin: Admin,
    Q(q): Q<FeedParams>,
) -> ApiResult<axum::Json<Feed>> {
    let after = match q.after.as_deref() {
        None | Some("") => 0,
        Some(a) => a
            .trim_start_matches("evt_")
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| bad("after must be a cursor from an earlier page"))?,
    };
    let limit = match q.limit {
        None => 100,
        Some(l) if (1..=MAX_EVENTS).contains(&l) => l,
        Some(_) => return Err(bad(format!("limit must be 1..{MAX_EVENTS}"))),
    };
    let wait = q.wait.as_deref().map(parse_wait).transpose()?;
    let org = match (&q.org, &admin.org) {
        (Some(slug), _) => Some(admin.org(&st.store, slug).await?.id),
        (None, Some(mine)) => Some(mine.clone()),
        (None, None) => None,
    };
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
    Ok(axum::Json(Feed {
        events: page.iter().map(|e| EventView(e.to_json())).collect(),
        next_cursor: next.to_string(),
        has_more,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DriftParams {
    /// Users the directory has not touched for this many days are stale (1–3650, default 30).
    #[param(minimum = 1, maximum = 3650)]
    stale_days: Option<i64>,
}

/// `GET /orgs/{org}/report/drift`: orphan risks, stale users, deactivated users with live
/// access (always none), directory health.
#[utoipa::path(get, path = "/orgs/{org}/report/drift", tag = "reports",
    params(("org" = String, Path, description = "The organization's slug"), DriftParams),
    responses((status = 200, body = DriftReport), Errors), security(("admin_key" = [])))]
async fn drift(
    State(st): State<Arc<ApiState>>,
    admin: Admin,
    Path(org): Path<String>,
    Q(q): Q<DriftParams>,
) -> ApiResult<axum::Json<DriftReport>> {
    let days = match q.stale_days {
        None => 30,
        Some(d) if (1..=3650).contains(&d) => d,
        Some(_) => return Err(bad("stale_days must be 1..3650")),
    };
    let org = admin.org(&st.store, &org).await?;
    Ok(axum::Json(st.store.drift_report(&org, days, &now()).await?))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MappingView {
    pub id: String,
    /// `displayName` or `externalId`.
    pub match_on: String,
    pub group: String,
    pub role: String,
    pub created_at: String,
}

impl MappingView {
    fn of(m: &RoleMapping) -> Self {
        MappingView {
            id: m.id.clone(),
            match_on: m.match_on.clone(),
            group: m.group_value.clone(),
            role: m.role.clone(),
            created_at: m.created_at.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Mappings {
    pub role_mappings: Vec<MappingView>,
}

/// `GET /orgs/{org}/role-mappings`.
#[utoipa::path(get, path = "/orgs/{org}/role-mappings", tag = "roles",
    params(("org" = String, Path, description = "The organization's slug")),
    responses((status = 200, body = Mappings), Errors), security(("admin_key" = [])))]
async fn list_mappings(
    State(st): State<Arc<ApiState>>,
    admin: Admin,
    Path(org): Path<String>,
) -> ApiResult<axum::Json<Mappings>> {
    let org = admin.org(&st.store, &org).await?;
    let list = st.store.role_mappings(&org.id).await?;
    Ok(axum::Json(Mappings {
        role_mappings: list.iter().map(MappingView::of).collect(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewMapping {
    /// `displayName` (default; compared case-insensitively) or `externalId`.
    #[schema(pattern = "^(displayName|externalId)$")]
    match_on: Option<String>,
    group: String,
    role: String,
}

/// `POST /orgs/{org}/role-mappings`: maps an IdP group to an app role.
#[utoipa::path(post, path = "/orgs/{org}/role-mappings", tag = "roles", request_body = NewMapping,
    params(("org" = String, Path, description = "The organization's slug")),
    responses((status = 201, body = MappingView),
        (status = 409, description = "The mapping exists", body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody), Errors),
    security(("admin_key" = [])))]
async fn create_mapping(
    State(st): State<Arc<ApiState>>,
    admin: Admin,
    Path(org): Path<String>,
    Body(m): Body<NewMapping>,
) -> ApiResult<(StatusCode, axum::Json<MappingView>)> {
    admin.check_write()?;
    let org = admin.org(&st.store, &org).await?;
    let mapping = crate::core::roles::new_mapping(
        &org.id,
        m.match_on.as_deref().unwrap_or("displayName"),
        &m.group,
        &m.role,
    )?;
    st.store
        .insert_role_mapping(&mapping, &admin.actor())
        .await?;
    Ok((StatusCode::CREATED, axum::Json(MappingView::of(&mapping))))
}

/// `DELETE /orgs/{org}/role-mappings/{id}`: the roles it granted go with it.
#[utoipa::path(delete, path = "/orgs/{org}/role-mappings/{id}", tag = "roles",
    params(("org" = String, Path, description = "The organization's slug"),
        ("id" = String, Path, description = "The mapping's id")),
    responses((status = 204, description = "Removed"), Errors), security(("admin_key" = [])))]
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
        Err(not_found(format!("role mapping {id}")))
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Only entries at or after this time: a date (`2026-11-01`, the start of that day in
    /// UTC) or an RFC 3339 date-time.
    since: Option<String>,
    cursor: Option<String>,
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
}

/// One audit entry: its text (what `hash` covers) and its place in the chain.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntryView {
    pub seq: i64,
    pub at: String,
    /// The entry: actor, action, target, before/after, request id, source address.
    #[schema(value_type = Object)]
    pub entry: Value,
    pub prev_hash: String,
    pub hash: String,
}

/// `GET /orgs/{org}/audit`: the organization's audit log in order, hash-chained
/// (`roster audit verify` checks the chain).
#[utoipa::path(get, path = "/orgs/{org}/audit", tag = "audit",
    params(("org" = String, Path, description = "The organization's slug"), AuditParams),
    responses((status = 200, body = Page<AuditEntryView>), Errors), security(("admin_key" = [])))]
async fn audit_log(
    State(st): State<Arc<ApiState>>,
    admin: Admin,
    Path(org): Path<String>,
    Q(q): Q<AuditParams>,
) -> ApiResult<axum::Json<Page<AuditEntryView>>> {
    let page = PageParams {
        cursor: q.cursor,
        limit: q.limit,
    };
    let (limit, after) = (page.limit()?, page.after_pos("audit")?);
    let since = match q.since.as_deref() {
        None | Some("") => None,
        Some(s) => Some(
            crate::core::parse_time_or_date(s)
                .ok_or_else(|| bad(format!("since must be {}", crate::core::TIME_OR_DATE)))?,
        ),
    };
    let org = admin.org(&st.store, &org).await?;
    let mut list = st
        .store
        .audit_page(org.id.as_str(), since.as_deref(), after, limit + 1)
        .await?;
    let more = take_page(&mut list, limit);
    let next = next_cursor("audit", more, list.last().map(|e| e.seq.to_string()));
    Ok(axum::Json(Page {
        data: list
            .into_iter()
            .map(|e| AuditEntryView {
                seq: e.seq,
                at: e.at,
                entry: serde_json::from_str(&e.body).unwrap_or(Value::String(e.body)),
                prev_hash: e.prev_hash,
                hash: e.hash,
            })
            .collect(),
        next_cursor: next,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    pub id: String,
    /// The organization whose events it takes; null for every organization's.
    pub org_id: Option<String>,
    /// Its URL, redacted: userinfo and query values replaced by `redacted` (the URL itself
    /// is stored encrypted).
    pub url: String,
    pub events: Vec<String>,
    pub created_at: String,
    pub disabled_at: Option<String>,
    /// The last event it has settled.
    pub cursor: i64,
    pub next_attempt_at: String,
    /// Whether deliveries may go to loopback, private or link-local addresses (endpoints
    /// made by the CLI or a key for every organization).
    pub private_networks: bool,
}

impl WebhookView {
    pub fn of(w: &Endpoint) -> Self {
        WebhookView {
            id: w.id.clone(),
            org_id: w.org_id.as_ref().map(|o| o.as_str().to_owned()),
            url: webhooks::display_url(&w.url),
            events: w.event_types.clone(),
            created_at: w.created_at.clone(),
            disabled_at: w.disabled_at.clone(),
            cursor: w.cursor,
            next_attempt_at: w.next_attempt_at.clone(),
            private_networks: w.allow_private,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewWebhook {
    /// http(s) URL receiving the events.
    pub url: String,
    /// The organization (slug) whose events it takes; omit for every organization's
    /// (keys for every organization only).
    pub org: Option<String>,
    /// Event types or families (`user.*`); default every event.
    #[serde(default)]
    pub events: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NewWebhookView {
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// The Standard Webhooks signing secret (`whsec_…`), shown once.
    pub secret: String,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WebhookParams {
    /// One organization's endpoints (slug).
    org: Option<String>,
}

/// The endpoints a key may see: its organization's, or every one for global keys.
pub async fn visible_webhooks(
    st: &ApiState,
    admin: &Admin,
    org: Option<&OrgId>,
) -> ApiResult<Vec<Endpoint>> {
    let list = st.store.list_webhooks(org.or(admin.org.as_ref())).await?;
    Ok(list
        .into_iter()
        .filter(|w| admin.sees_endpoint(w))
        .collect())
}

pub async fn webhook_of(st: &ApiState, admin: &Admin, id: &str) -> ApiResult<Endpoint> {
    visible_webhooks(st, admin, None)
        .await?
        .into_iter()
        .find(|w| w.id == id)
        .ok_or_else(|| not_found(format!("webhook {id}")))
}

/// `GET /webhooks`: endpoints with their cursors.
#[utoipa::path(get, path = "/webhooks", tag = "webhooks", params(WebhookParams),
    responses((status = 200, body = Page<WebhookView>), Errors), security(("admin_key" = [])))]
async fn list_webhooks(
    State(st): State<Arc<ApiState>>,
    admin: Admin,
    Q(q): Q<WebhookParams>,
) -> ApiResult<axum::Json<Page<WebhookView>>> {
    let org = match q.org.as_deref() {
        Some(slug) => Some(admin.org(&st.store, slug).await?.id),
        None => None,
    };
    let list = visible_webhooks(&st, &admin, org.as_ref()).await?;
    Ok(axum::Json(Page {
        data: list.iter().map(WebhookView::of).collect(),
        next_cursor: None,
    }))
}

/// `POST /webhooks`: a new endpoint; its signing secret is in this answer only.
#[utoipa::path(post, path = "/webhooks", tag = "webhooks", request_body = NewWebhook,
    responses((status = 201, body = NewWebhookView),
        (status = 415, description = "The body is not JSON", body = ErrorBody), Errors),
    security(("admin_key" = [])))]
async fn create_webhook(
    State(st): State<Arc<ApiState>>,
    admin: Admin,
    Body(b): Body<NewWebhook>,
) -> ApiResult<(StatusCode, axum::Json<NewWebhookView>)> {
    admin.check_write()?;
    let org = match b.org.as_deref() {
        Some(slug) => Some(admin.org(&st.store, slug).await?),
        None => {
            admin.check_global()?;
            None
        }
    };
    // A key limited to one organization may not point Roster at internal addresses.
    let (ep, secret) = webhooks::new_endpoint(
        &st.master,
        org.as_ref().map(|o| &o.id),
        &b.url,
        &b.events.join(","),
        admin.org.is_none(),
    )?;
    st.store.insert_webhook(&ep, &admin.actor()).await?;
    // As stored: the store starts its cursor at the newest event.
    let stored = webhook_of(&st, &admin, &ep.id).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(NewWebhookView {
            webhook: WebhookView::of(&stored),
            secret,
        }),
    ))
}

/// `GET /webhooks/{id}`.
#[utoipa::path(get, path = "/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id")),
    responses((status = 200, body = WebhookView), Errors), security(("admin_key" = [])))]
async fn get_webhook(
    State(st): State<Arc<ApiState>>,
    admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<WebhookView>> {
    Ok(axum::Json(WebhookView::of(
        &webhook_of(&st, &admin, &id).await?,
    )))
}

/// `POST /webhooks/{id}/disable`: stops delivering to the endpoint.
#[utoipa::path(post, path = "/webhooks/{id}/disable", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id")),
    responses((status = 200, body = WebhookView), Errors), security(("admin_key" = [])))]
async fn disable_webhook(
    State(st): State<Arc<ApiState>>,
    admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<WebhookView>> {
    admin.check_write()?;
    let w = webhook_of(&st, &admin, &id).await?;
    st.store.disable_webhook(&w.id, &admin.actor()).await?;
    Ok(axum::Json(WebhookView::of(
        &webhook_of(&st, &admin, &id).await?,
    )))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    pub event_cursor: i64,
    /// `delivered`, `pending` (retried at `next_attempt_at`) or `failed` (retries ran out).
    pub status: String,
    pub attempts: i64,
    pub first_attempt_at: String,
    pub last_attempt_at: String,
    pub next_attempt_at: Option<String>,
    pub response_status: Option<i64>,
    pub last_error: Option<String>,
}

impl DeliveryView {
    pub fn of(d: &Delivery) -> Self {
        DeliveryView {
            event_cursor: d.event_id,
            status: d.status.clone(),
            attempts: d.attempts,
            first_attempt_at: d.first_attempt_at.clone(),
            last_attempt_at: d.last_attempt_at.clone(),
            next_attempt_at: d.next_attempt_at.clone(),
            response_status: d.response_status,
            last_error: d.last_error.clone(),
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryParams {
    /// delivered, pending or failed.
    #[param(pattern = "^(delivered|pending|failed)?$")]
    status: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
}

/// `GET /webhooks/{id}/deliveries`: the endpoint's deliveries, newest first, by cursor.
#[utoipa::path(get, path = "/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id"), DeliveryParams),
    responses((status = 200, body = Page<DeliveryView>), Errors), security(("admin_key" = [])))]
async fn list_deliveries(
    State(st): State<Arc<ApiState>>,
    admin: Admin,
    Path(id): Path<String>,
    Q(q): Q<DeliveryParams>,
) -> ApiResult<axum::Json<Page<DeliveryView>>> {
    let page = PageParams {
        cursor: q.cursor.clone(),
        limit: q.limit,
    };
    let (limit, before) = (page.limit()?, page.after_pos("delivery")?);
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s @ ("delivered" | "pending" | "failed")) => Some(s),
        Some(s) => {
            return Err(bad(format!(
                "status \"{s}\": use delivered, pending or failed"
            )));
        }
    };
    let w = webhook_of(&st, &admin, &id).await?;
    let mut list = st
        .store
        .deliveries_before(&w.id, status, (before > 0).then_some(before), limit + 1)
        .await?;
    let more = take_page(&mut list, limit);
    let next = next_cursor(
        "delivery",
        more,
        list.last().map(|d| d.event_id.to_string()),
    );
    Ok(axum::Json(Page {
        data: list.iter().map(DeliveryView::of).collect(),
        next_cursor: next,
    }))
}

/// One attempt at a delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    pub attempt: i64,
    pub at: String,
    /// The receiver's HTTP status; null when no response came (refused, timed out).
    pub response_status: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
    /// The node that made it.
    pub node: String,
}

impl AttemptView {
    pub fn of(a: &crate::core::store::AttemptRecord) -> Self {
        AttemptView {
            attempt: a.attempt,
            at: a.at.clone(),
            response_status: a.response_status,
            error: a.error.clone(),
            duration_ms: a.duration_ms,
            node: a.node.clone(),
        }
    }
}

/// `GET /webhooks/{id}/deliveries/{event}/attempts`: every attempt at delivering one event
/// (retries and resends), in order.
#[utoipa::path(get, path = "/webhooks/{id}/deliveries/{event}/attempts", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id"),
        ("event" = i64, Path, description = "The event's cursor")),
    responses((status = 200, body = Page<AttemptView>), Errors), security(("admin_key" = [])))]
async fn list_attempts(
    State(st): State<Arc<ApiState>>,
    admin: Admin,
    Path((id, event)): Path<(String, String)>,
) -> ApiResult<axum::Json<Page<AttemptView>>> {
    let event = event
        .parse::<i64>()
        .map_err(|_| bad("the event is a cursor (an integer)"))?;
    let w = webhook_of(&st, &admin, &id).await?;
    let list = st.store.delivery_attempt_log(&w.id, event).await?;
    Ok(axum::Json(Page {
        data: list.iter().map(AttemptView::of).collect(),
        next_cursor: None,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ResendRequest {
    /// The event's cursor.
    #[schema(minimum = 1)]
    pub event: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResendResult {
    pub event_cursor: i64,
    /// `delivered` or `failed`.
    pub status: String,
    pub response_status: Option<i64>,
    pub error: Option<String>,
}

/// `POST /webhooks/{id}/resend`: sends one event to the endpoint again, now (same
/// `webhook-id`), outside its order; recorded as an attempt and audited.
#[utoipa::path(post, path = "/webhooks/{id}/resend", tag = "webhooks", request_body = ResendRequest,
    params(("id" = String, Path, description = "The endpoint's id")),
    responses((status = 200, body = ResendResult),
        (status = 415, description = "The body is not JSON", body = ErrorBody), Errors),
    security(("admin_key" = [])))]
async fn resend(
    State(st): State<Arc<ApiState>>,
    admin: Admin,
    Path(id): Path<String>,
    Body(b): Body<ResendRequest>,
) -> ApiResult<axum::Json<ResendResult>> {
    admin.check_write()?;
    let w = webhook_of(&st, &admin, &id).await?;
    Ok(axum::Json(resend_event(&st, &admin, &w, b.event).await?))
}

/// Resends one event through a dispatcher of this node (the console's button too).
pub async fn resend_event(
    st: &ApiState,
    admin: &Admin,
    w: &Endpoint,
    event: i64,
) -> ApiResult<ResendResult> {
    let d = crate::delivery::Dispatcher::new(
        st.store.clone(),
        st.master.clone(),
        crate::delivery::default_schedule_ms(),
        crate::delivery::DEFAULT_LEASE,
    )?;
    let a = d.resend(&w.id, event, &admin.actor()).await?;
    Ok(ResendResult {
        event_cursor: a.event_id,
        status: a.status.to_owned(),
        response_status: a.response_status,
        error: a.error,
    })
}
