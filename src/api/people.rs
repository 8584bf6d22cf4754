//! Users (with their timeline of events and their roles), groups and members.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::{
    Admin, ApiResult, ApiState, Body, ErrorBody, Errors, Page, PageParams, Q, bad, next_cursor,
    not_found, take_page,
};
use crate::core::model::{Group, Member, Provenance, Scope, User};
use crate::core::store::UserListing;
use crate::core::store::prelude::*;

pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/orgs/{org}/users", get(list_users).post(create_user))
        .route("/orgs/{org}/users/{id}", get(get_user).delete(delete_user))
        .route("/orgs/{org}/users/{id}/events", get(user_events))
        .route("/orgs/{org}/users/{id}/roles", get(user_roles))
        .route("/orgs/{org}/users/{id}/deactivate", post(deactivate))
        .route("/orgs/{org}/users/{id}/reactivate", post(reactivate))
        .route("/orgs/{org}/groups", get(list_groups))
        .route("/orgs/{org}/groups/{id}", get(get_group))
        .route("/orgs/{org}/groups/{id}/members", get(list_members))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GroupRefView {
    pub id: String,
    pub display_name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub user_name: String,
    pub display_name: Option<String>,
    /// The primary (else first) email.
    pub email: Option<String>,
    pub external_id: Option<String>,
    pub active: bool,
    /// How the user came to exist: scim, jit or admin.
    pub provenance: String,
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
    pub last_directory_sync_at: Option<String>,
    pub last_login_at: Option<String>,
    pub groups: Vec<GroupRefView>,
    /// App roles through group-to-role mappings.
    pub roles: Vec<String>,
    /// The whole SCIM attribute document.
    #[schema(value_type = Object)]
    pub attributes: Map<String, Value>,
}

fn str_at<'a>(m: &'a Map<String, Value>, path: &[&str]) -> Option<&'a str> {
    let (last, parents) = path.split_last()?;
    let mut cur = m;
    for p in parents {
        cur = cur.get(*p)?.as_object()?;
    }
    cur.get(*last)?.as_str()
}

/// The primary (else first) email of a SCIM attribute document.
pub fn primary_email(attrs: &Map<String, Value>) -> Option<String> {
    let emails = attrs.get("emails")?.as_array()?;
    emails
        .iter()
        .find(|e| e.get("primary").and_then(Value::as_bool) == Some(true))
        .or_else(|| emails.first())
        .and_then(|e| e.get("value"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

impl UserView {
    pub fn of(u: &User) -> Self {
        UserView {
            id: u.id.clone(),
            user_name: u.user_name().to_owned(),
            display_name: str_at(&u.attrs, &["displayName"])
                .map(str::to_owned)
                .or_else(|| {
                    let given = str_at(&u.attrs, &["name", "givenName"]);
                    let family = str_at(&u.attrs, &["name", "familyName"]);
                    match (given, family) {
                        (Some(g), Some(f)) => Some(format!("{g} {f}")),
                        (g, f) => g.or(f).map(str::to_owned),
                    }
                }),
            email: primary_email(&u.attrs),
            external_id: str_at(&u.attrs, &["externalId"]).map(str::to_owned),
            active: u.active(),
            provenance: u.provenance.as_str().to_owned(),
            version: u.meta.version,
            created_at: u.meta.created.clone(),
            updated_at: u.meta.last_modified.clone(),
            last_directory_sync_at: u.last_directory_sync_at.clone(),
            last_login_at: u.last_login_at.clone(),
            groups: u
                .groups
                .iter()
                .map(|g| GroupRefView {
                    id: g.id.clone(),
                    display_name: g.display.clone(),
                })
                .collect(),
            roles: u.roles.clone(),
            attributes: u.attrs.clone(),
        }
    }
}

/// Which users to list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserParams {
    /// Part of the userName or primary email (case-insensitive).
    pub q: Option<String>,
    /// `active` or `inactive`.
    #[param(pattern = "^(active|inactive)?$")]
    pub state: Option<String>,
    /// scim, jit or admin.
    #[param(pattern = "^(scim|jit|admin)?$")]
    pub provenance: Option<String>,
    pub cursor: Option<String>,
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

impl UserParams {
    pub fn listing(&self) -> ApiResult<UserListing> {
        let page = PageParams {
            cursor: self.cursor.clone(),
            limit: self.limit,
        };
        Ok(UserListing {
            q: self.q.clone(),
            active: match self.state.as_deref() {
                None | Some("") => None,
                Some("active") => Some(true),
                Some("inactive") => Some(false),
                Some(s) => return Err(bad(format!("state \"{s}\": use active or inactive"))),
            },
            provenance: match self.provenance.as_deref() {
                None | Some("") => None,
                Some(p) => {
                    Some(Provenance::parse(p).ok_or_else(|| {
                        bad(format!("provenance \"{p}\": use scim, jit or admin"))
                    })?)
                }
            },
            after: page.after_pos("user")?,
            limit: page.limit()?,
        })
    }
}

/// A page of users of `org` as the API and the console list them.
pub async fn user_page(
    st: &ApiState,
    org: &crate::core::model::OrgId,
    l: &UserListing,
) -> ApiResult<Page<UserView>> {
    let one_more = UserListing {
        limit: l.limit + 1,
        ..l.clone()
    };
    let mut rows = st.store.user_page(org, &one_more).await?;
    let more = take_page(&mut rows, l.limit);
    let next = next_cursor("user", more, rows.last().map(|(pos, _)| pos.to_string()));
    Ok(Page {
        data: rows.iter().map(|(_, u)| UserView::of(u)).collect(),
        next_cursor: next,
    })
}

/// `GET /orgs/{org}/users`: users in creation order, filtered by text, state, provenance.
#[utoipa::path(get, path = "/orgs/{org}/users", tag = "users",
    params(("org" = String, Path, description = "The organization's slug"), UserParams),
    responses((status = 200, body = Page<UserView>), Errors), security(("admin_key" = [])))]
async fn list_users(
    State(st): State<Arc<ApiState>>,
    admin: Admin,
    Path(org): Path<String>,
    Q(p): Q<UserParams>,
) -> ApiResult<axum::Json<Page<UserView>>> {
    let listing = p.listing()?;
    let org = admin.org(&st.store, &org).await?;
    Ok(axum::Json(user_page(&st, &org.id, &listing).await?))
}

/// A user an operator adds by hand (provenance `admin`), e.g. before the organization has a
/// directory. The directory, when there is one, may later adopt it by userName.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewUser {
    /// Unique in the organization (compared case-insensitively); usually the email.
    #[schema(min_length = 1)]
    pub user_name: String,
    pub email: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub display_name: Option<String>,
    pub external_id: Option<String>,
    /// Default true.
    pub active: Option<bool>,
}

impl NewUser {
    /// The SCIM attribute document of the new user.
    fn attributes(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("userName".into(), Value::from(self.user_name.clone()));
        let mut name = Map::new();
        if let Some(g) = &self.given_name {
            name.insert("givenName".into(), Value::from(g.clone()));
        }
        if let Some(f) = &self.family_name {
            name.insert("familyName".into(), Value::from(f.clone()));
        }
        if !name.is_empty() {
            m.insert("name".into(), Value::Object(name));
        }
        if let Some(d) = &self.display_name {
            m.insert("displayName".into(), Value::from(d.clone()));
        }
        if let Some(e) = &self.email {
            m.insert(
                "emails".into(),
                serde_json::json!([{"value": e, "type": "work", "primary": true}]),
            );
        }
        if let Some(x) = &self.external_id {
            m.insert("externalId".into(), Value::from(x.clone()));
        }
        m.insert("active".into(), Value::from(self.active.unwrap_or(true)));
        m
    }
}

/// `POST /orgs/{org}/users`: adds a user by hand (provenance `admin`).
#[utoipa::path(post, path = "/orgs/{org}/users", tag = "users", request_body = NewUser,
    params(("org" = String, Path, description = "The organization's slug")),
    responses((status = 201, body = UserView),
        (status = 409, description = "The userName is taken", body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody), Errors),
    security(("admin_key" = [])))]
async fn create_user(
    State(st): State<Arc<ApiState>>,
    admin: Admin,
    Path(org): Path<String>,
    Body(b): Body<NewUser>,
) -> ApiResult<(StatusCode, axum::Json<UserView>)> {
    admin.check_write()?;
    let org = admin.org(&st.store, &org).await?;
    let scope = Scope {
        org: org.id,
        actor: admin.actor(),
    };
    let u =
        crate::core::resources::create_user(&st.store, &scope, &b.attributes(), Provenance::Admin)
            .await?;
    Ok((StatusCode::CREATED, axum::Json(UserView::of(&u))))
}

/// `DELETE /orgs/{org}/users/{id}`: deletes the user, its memberships, sessions and tokens
/// (at once, as the IdP's deprovisioning does). Its events stay in the timeline.
#[utoipa::path(delete, path = "/orgs/{org}/users/{id}", tag = "users",
    params(("org" = String, Path, description = "The organization's slug"),
        ("id" = String, Path, description = "The user's id")),
    responses((status = 204, description = "Deleted"), Errors), security(("admin_key" = [])))]
async fn delete_user(
    State(st): State<Arc<ApiState>>,
    admin: Admin,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    admin.check_write()?;
    let (scope, u) = user_in(&st, &admin, &org, &id).await?;
    crate::core::resources::delete_user(&st.store, &scope, &u.id, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn user_in(st: &ApiState, admin: &Admin, org: &str, id: &str) -> ApiResult<(Scope, User)> {
    let org = admin.org(&st.store, org).await?;
    let scope = Scope {
        org: org.id,
        actor: admin.actor(),
    };
    let u = st
        .store
        .get_user(&scope, id)
        .await?
        .ok_or_else(|| not_found(format!("user {id}")))?;
    Ok((scope, u))
}

/// `GET /orgs/{org}/users/{id}`.
#[utoipa::path(get, path = "/orgs/{org}/users/{id}", tag = "users",
    params(("org" = String, Path, description = "The organization's slug"),
        ("id" = String, Path, description = "The user's id")),
    responses((status = 200, body = UserView), Errors), security(("admin_key" = [])))]
async fn get_user(
    State(st): State<Arc<ApiState>>,
    admin: Admin,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult<axum::Json<UserView>> {
    let (_, u) = user_in(&st, &admin, &org, &id).await?;
    Ok(axum::Json(UserView::of(&u)))
}

/// An event as the feed, webhooks and timelines show it (`EventRecord::to_json`).
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct EventView(pub Value);

impl utoipa::PartialSchema for EventView {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let s = |t: Type| ObjectBuilder::new().schema_type(t);
        let nullable = || {
            ObjectBuilder::new().schema_type(utoipa::openapi::schema::SchemaType::from_iter([
                Type::String,
                Type::Null,
            ]))
        };
        ObjectBuilder::new()
            .property("id", s(Type::String))
            .property("cursor", s(Type::Integer))
            .property("type", s(Type::String))
            .property("org_id", nullable())
            .property(
                "resource",
                ObjectBuilder::new()
                    .property("type", s(Type::String))
                    .property("id", s(Type::String)),
            )
            .property("actor", s(Type::Object))
            .property("request_id", nullable())
            .property("occurred_at", s(Type::String))
            .property("data", ObjectBuilder::new())
            .required("id")
            .required("cursor")
            .required("type")
            .required("resource")
            .required("actor")
            .required("occurred_at")
            .into()
    }
}

impl utoipa::ToSchema for EventView {}

/// `GET /orgs/{org}/users/{id}/events`: the user's timeline, newest first.
#[utoipa::path(get, path = "/orgs/{org}/users/{id}/events", tag = "users",
    params(("org" = String, Path, description = "The organization's slug"),
        ("id" = String, Path, description = "The user's id"), PageParams),
    responses((status = 200, body = Page<EventView>), Errors), security(("admin_key" = [])))]
async fn user_events(
    State(st): State<Arc<ApiState>>,
    admin: Admin,
    Path((org, id)): Path<(String, String)>,
    Q(p): Q<PageParams>,
) -> ApiResult<axum::Json<Page<EventView>>> {
    let limit = p.limit()?;
    let before = match p.after_pos("event")? {
        0 => None,
        n => Some(n),
    };
    let org = admin.org(&st.store, &org).await?;
    // Also for users that were deleted: their events stay.
    let mut list = st
        .store
        .resource_events(&org.id, &id, before, limit + 1)
        .await?;
    let more = take_page(&mut list, limit);
    let next = next_cursor("event", more, list.last().map(|e| e.cursor.to_string()));
    Ok(axum::Json(Page {
        data: list.iter().map(|e| EventView(e.to_json())).collect(),
        next_cursor: next,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RolesView {
    pub user_id: String,
    pub roles: Vec<String>,
}

/// `GET /orgs/{org}/users/{id}/roles`: the app roles the user holds through mappings.
#[utoipa::path(get, path = "/orgs/{org}/users/{id}/roles", tag = "users",
    params(("org" = String, Path, description = "The organization's slug"),
        ("id" = String, Path, description = "The user's id")),
    responses((status = 200, body = RolesView), Errors), security(("admin_key" = [])))]
async fn user_roles(
    State(st): State<Arc<ApiState>>,
    admin: Admin,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult<axum::Json<RolesView>> {
    let (scope, u) = user_in(&st, &admin, &org, &id).await?;
    let roles = st.store.user_roles(&scope, &u.id).await?;
    Ok(axum::Json(RolesView {
        user_id: u.id,
        roles,
    }))
}

async fn set_active(
    st: &ApiState,
    admin: &Admin,
    org: &str,
    id: &str,
    active: bool,
) -> ApiResult<UserView> {
    admin.check_write()?;
    let (scope, u) = user_in(st, admin, org, id).await?;
    let u = crate::core::resources::set_active(&st.store, &scope, &u.id, active).await?;
    Ok(UserView::of(&u))
}

/// `POST /orgs/{org}/users/{id}/deactivate`: ends every session and token of the user at
/// once (as the IdP's deprovisioning does).
#[utoipa::path(post, path = "/orgs/{org}/users/{id}/deactivate", tag = "users",
    params(("org" = String, Path, description = "The organization's slug"),
        ("id" = String, Path, description = "The user's id")),
    responses((status = 200, body = UserView), Errors), security(("admin_key" = [])))]
async fn deactivate(
    State(st): State<Arc<ApiState>>,
    admin: Admin,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult<axum::Json<UserView>> {
    Ok(axum::Json(set_active(&st, &admin, &org, &id, false).await?))
}

/// `POST /orgs/{org}/users/{id}/reactivate`.
#[utoipa::path(post, path = "/orgs/{org}/users/{id}/reactivate", tag = "users",
    params(("org" = String, Path, description = "The organization's slug"),
        ("id" = String, Path, description = "The user's id")),
    responses((status = 200, body = UserView), Errors), security(("admin_key" = [])))]
async fn reactivate(
    State(st): State<Arc<ApiState>>,
    admin: Admin,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult<axum::Json<UserView>> {
    Ok(axum::Json(set_active(&st, &admin, &org, &id, true).await?))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GroupView {
    pub id: String,
    pub display_name: String,
    pub external_id: Option<String>,
    pub members: i64,
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
}

impl GroupView {
    pub fn of(g: &Group, members: i64) -> Self {
        GroupView {
            id: g.id.clone(),
            display_name: g.display_name().to_owned(),
            external_id: str_at(&g.attrs, &["externalId"]).map(str::to_owned),
            members,
            version: g.meta.version,
            created_at: g.meta.created.clone(),
            updated_at: g.meta.last_modified.clone(),
        }
    }
}

/// Which groups to list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GroupParams {
    /// Part of the displayName (case-insensitive).
    pub q: Option<String>,
    pub cursor: Option<String>,
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

/// `GET /orgs/{org}/groups`: groups in creation order with their member counts.
#[utoipa::path(get, path = "/orgs/{org}/groups", tag = "groups",
    params(("org" = String, Path, description = "The organization's slug"), GroupParams),
    responses((status = 200, body = Page<GroupView>), Errors), security(("admin_key" = [])))]
async fn list_groups(
    State(st): State<Arc<ApiState>>,
    admin: Admin,
    Path(org): Path<String>,
    Q(p): Q<GroupParams>,
) -> ApiResult<axum::Json<Page<GroupView>>> {
    let page = PageParams {
        cursor: p.cursor.clone(),
        limit: p.limit,
    };
    let (limit, after) = (page.limit()?, page.after_pos("group")?);
    let org = admin.org(&st.store, &org).await?;
    let mut rows = st
        .store
        .group_page(&org.id, p.q.as_deref(), after, limit + 1)
        .await?;
    let more = take_page(&mut rows, limit);
    let next = next_cursor("group", more, rows.last().map(|l| l.pos.to_string()));
    Ok(axum::Json(Page {
        data: rows
            .iter()
            .map(|l| GroupView::of(&l.group, l.members))
            .collect(),
        next_cursor: next,
    }))
}

/// `GET /orgs/{org}/groups/{id}`.
#[utoipa::path(get, path = "/orgs/{org}/groups/{id}", tag = "groups",
    params(("org" = String, Path, description = "The organization's slug"),
        ("id" = String, Path, description = "The group's id")),
    responses((status = 200, body = GroupView), Errors), security(("admin_key" = [])))]
async fn get_group(
    State(st): State<Arc<ApiState>>,
    admin: Admin,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult<axum::Json<GroupView>> {
    let org = admin.org(&st.store, &org).await?;
    let scope = Scope {
        org: org.id.clone(),
        actor: admin.actor(),
    };
    let g = st
        .store
        .get_group(&scope, &id)
        .await?
        .ok_or_else(|| not_found(format!("group {id}")))?;
    let members = st.store.member_count(&org.id, &g.id).await?;
    Ok(axum::Json(GroupView::of(&g, members)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberView {
    pub id: String,
    /// `User` or `Group`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The member's userName or displayName.
    pub display: Option<String>,
}

impl MemberView {
    pub fn of(m: &Member) -> Self {
        MemberView {
            id: m.id.clone(),
            kind: m.kind.as_str().to_owned(),
            display: m.display.clone(),
        }
    }
}

/// `GET /orgs/{org}/groups/{id}/members`: members in id order.
#[utoipa::path(get, path = "/orgs/{org}/groups/{id}/members", tag = "groups",
    params(("org" = String, Path, description = "The organization's slug"),
        ("id" = String, Path, description = "The group's id"), PageParams),
    responses((status = 200, body = Page<MemberView>), Errors), security(("admin_key" = [])))]
async fn list_members(
    State(st): State<Arc<ApiState>>,
    admin: Admin,
    Path((org, id)): Path<(String, String)>,
    Q(p): Q<PageParams>,
) -> ApiResult<axum::Json<Page<MemberView>>> {
    let (limit, after) = (p.limit()?, p.after_key("member")?);
    let org = admin.org(&st.store, &org).await?;
    let scope = Scope {
        org: org.id.clone(),
        actor: admin.actor(),
    };
    if st.store.get_group(&scope, &id).await?.is_none() {
        return Err(not_found(format!("group {id}")));
    }
    let mut list = st
        .store
        .member_page(&org.id, &id, after.as_deref(), limit + 1)
        .await?;
    let more = take_page(&mut list, limit);
    let next = next_cursor("member", more, list.last().map(|m| m.id.clone()));
    Ok(axum::Json(Page {
        data: list.iter().map(MemberView::of).collect(),
        next_cursor: next,
    }))
}
