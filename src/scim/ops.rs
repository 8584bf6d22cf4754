//! SCIM operations shared by the HTTP handlers and `/Bulk`: each takes parsed input,
//! calls the core, and renders the response.

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::error::{ScimError, ScimResult};
use super::resolve::{self, attr_list};
use super::wire::{NoneMatch, Projection, etag, group_json, user_json, write_listed_user};
use super::{MAX_RESULTS, ScimState};
use crate::core::error::{CoreError, StoreError};
use crate::core::model::{Expect, ListedUser, Provenance, Scope};
use crate::core::patch::PatchKind;
use crate::core::query::{ListQuery, Page};
use crate::core::resources;
use crate::core::schema::{GROUP_TYPE, ResourceTypeDef, USER_TYPE};
use crate::core::store::prelude::*;

pub const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    User,
    Group,
}

impl Kind {
    pub fn rt(self) -> &'static ResourceTypeDef {
        match self {
            Kind::User => &USER_TYPE,
            Kind::Group => &GROUP_TYPE,
        }
    }
    pub fn from_endpoint(segment: &str) -> Option<Kind> {
        match segment {
            "Users" => Some(Kind::User),
            "Groups" => Some(Kind::Group),
            _ => None,
        }
    }
}

/// A rendered response.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub body: Option<RespBody>,
    pub etag: Option<String>,
    pub location: Option<String>,
}

/// A response body: a document, or JSON text already written (list pages).
#[derive(Debug)]
pub enum RespBody {
    Json(Value),
    Text(Vec<u8>),
}

impl RespBody {
    /// The document, if the body is one.
    pub fn json(&self) -> Option<&Value> {
        match self {
            RespBody::Json(v) => Some(v),
            RespBody::Text(_) => None,
        }
    }
}

impl Resp {
    fn json(status: StatusCode, body: Value) -> Self {
        Resp {
            status,
            body: Some(RespBody::Json(body)),
            etag: None,
            location: None,
        }
    }
}

/// Query parameters of a list or search request.
#[derive(Debug, Default)]
pub struct ListParams {
    pub filter: Option<String>,
    pub sort_by: Option<String>,
    pub sort_desc: bool,
    pub start_index: Option<i64>,
    pub count: Option<i64>,
    pub attributes: Option<String>,
    pub excluded: Option<String>,
}

fn int_param(name: &str, v: &str) -> ScimResult<i64> {
    v.trim()
        .parse()
        .map_err(|_| ScimError::bad("invalidValue", format!("{name} must be an integer")))
}

fn sort_order(v: &str) -> ScimResult<bool> {
    match v.to_ascii_lowercase().as_str() {
        "ascending" => Ok(false),
        "descending" => Ok(true),
        _ => Err(ScimError::bad(
            "invalidValue",
            "sortOrder must be ascending or descending",
        )),
    }
}

impl ListParams {
    pub fn from_query(q: &[(String, String)]) -> ScimResult<Self> {
        let mut p = ListParams::default();
        for (k, v) in q {
            match k.as_str() {
                "filter" => p.filter = Some(v.clone()),
                "sortBy" => p.sort_by = Some(v.clone()),
                "sortOrder" => p.sort_desc = sort_order(v)?,
                "startIndex" => p.start_index = Some(int_param(k, v)?),
                "count" => p.count = Some(int_param(k, v)?),
                "attributes" => p.attributes = Some(v.clone()),
                "excludedAttributes" => p.excluded = Some(v.clone()),
                _ => {}
            }
        }
        Ok(p)
    }

    /// From a `SearchRequest` body (RFC 7644 §3.4.3).
    pub fn from_search(b: &Map<String, Value>) -> ScimResult<Self> {
        let mut p = ListParams::default();
        let list = |v: &Value| -> Option<String> {
            match v {
                Value::String(s) => Some(s.clone()),
                Value::Array(a) => Some(
                    a.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(","),
                ),
                _ => None,
            }
        };
        let int = |k: &str, v: &Value| -> ScimResult<i64> {
            match v {
                Value::Number(n) => n.as_i64().ok_or_else(|| {
                    ScimError::bad("invalidValue", format!("{k} must be an integer"))
                }),
                Value::String(s) => int_param(k, s),
                _ => Err(ScimError::bad(
                    "invalidValue",
                    format!("{k} must be an integer"),
                )),
            }
        };
        for (k, v) in b {
            match k.as_str() {
                "filter" => p.filter = v.as_str().map(str::to_owned),
                "sortBy" => p.sort_by = v.as_str().map(str::to_owned),
                "sortOrder" => p.sort_desc = sort_order(v.as_str().unwrap_or_default())?,
                "startIndex" => p.start_index = Some(int(k, v)?),
                "count" => p.count = Some(int(k, v)?),
                "attributes" => p.attributes = list(v),
                "excludedAttributes" => p.excluded = list(v),
                _ => {}
            }
        }
        Ok(p)
    }

    fn projection(&self, kind: Kind) -> Projection {
        make_projection(kind, self.attributes.as_deref(), self.excluded.as_deref())
    }

    fn query(&self, kind: Kind) -> ScimResult<ListQuery> {
        let rt = kind.rt();
        let filter = match self.filter.as_deref().map(str::trim) {
            Some(f) if !f.is_empty() => Some(resolve::parse_filter(rt, f)?),
            _ => None,
        };
        let sort = match self.sort_by.as_deref().map(str::trim) {
            Some(s) if !s.is_empty() => Some((resolve::sort_key(rt, s)?, self.sort_desc)),
            _ => None,
        };
        // RFC 7644 §3.4.2.4: startIndex < 1 is 1; negative count is 0; count is capped.
        let start_index = self.start_index.unwrap_or(1).max(1) as u64;
        let count = self
            .count
            .map_or(MAX_RESULTS, |c| c.clamp(0, MAX_RESULTS as i64) as u64);
        Ok(ListQuery {
            filter,
            sort,
            start_index,
            count,
        })
    }
}

fn make_projection(kind: Kind, attributes: Option<&str>, excluded: Option<&str>) -> Projection {
    let rt = kind.rt();
    Projection {
        include: attributes
            .map(|a| attr_list(rt, a))
            .filter(|l| !l.is_empty()),
        exclude: excluded.map(|a| attr_list(rt, a)).unwrap_or_default(),
    }
}

pub fn projection(kind: Kind, q: &[(String, String)]) -> Projection {
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    make_projection(kind, get("attributes"), get("excludedAttributes"))
}

fn render_users(
    s: &ScimState,
    users: Vec<crate::core::model::User>,
    proj: &Projection,
) -> Vec<Value> {
    users
        .into_iter()
        .map(|u| Value::Object(proj.apply(&USER_TYPE, user_json(&USER_TYPE, &s.base_url, u))))
        .collect()
}

async fn render_groups(
    s: &ScimState,
    scope: &Scope,
    groups: &[crate::core::model::Group],
    proj: &Projection,
) -> ScimResult<Vec<Value>> {
    let mut out = Vec::with_capacity(groups.len());
    for g in groups {
        let members = if proj.wants("members") {
            Some(s.store.group_members(scope, &g.id).await?)
        } else {
            None
        };
        out.push(Value::Object(proj.apply(
            &GROUP_TYPE,
            group_json(
                &GROUP_TYPE,
                &s.base_url,
                g,
                members.as_deref(),
                proj.requests_sub("members", "display"),
            ),
        )));
    }
    Ok(out)
}

fn one(status: StatusCode, mut items: Vec<Value>, version: i64, location: String) -> Resp {
    Resp {
        status,
        body: items.pop().map(RespBody::Json),
        etag: Some(etag(version)),
        location: Some(location),
    }
}

pub async fn get(
    s: &ScimState,
    scope: &Scope,
    kind: Kind,
    id: &str,
    proj: &Projection,
    if_none_match: Option<&NoneMatch>,
) -> ScimResult<Resp> {
    let (version, items) = match kind {
        Kind::User if proj.keeps_all(&USER_TYPE) => {
            let u = s
                .store
                .get_listed_user(scope, id)
                .await?
                .ok_or_else(|| ScimError::not_found(format!("User {id} not found")))?;
            if if_none_match.is_some_and(|m| m.matches(u.meta.version)) {
                return Ok(not_modified(u.meta.version));
            }
            let mut out = Vec::with_capacity(1024);
            write_listed_user(&mut out, &USER_TYPE, &s.base_url, &u).map_err(not_rendered)?;
            return Ok(Resp {
                status: StatusCode::OK,
                body: Some(RespBody::Text(out)),
                etag: Some(etag(u.meta.version)),
                location: None,
            });
        }
        Kind::User => {
            let u = s
                .store
                .get_user(scope, id)
                .await?
                .ok_or_else(|| ScimError::not_found(format!("User {id} not found")))?;
            if if_none_match.is_some_and(|m| m.matches(u.meta.version)) {
                return Ok(not_modified(u.meta.version));
            }
            (u.meta.version, render_users(s, vec![u], proj))
        }
        Kind::Group => {
            let g = s
                .store
                .get_group(scope, id)
                .await?
                .ok_or_else(|| ScimError::not_found(format!("Group {id} not found")))?;
            if if_none_match.is_some_and(|m| m.matches(g.meta.version)) {
                return Ok(not_modified(g.meta.version));
            }
            (
                g.meta.version,
                render_groups(s, scope, std::slice::from_ref(&g), proj).await?,
            )
        }
    };
    let mut r = one(StatusCode::OK, items, version, location(s, kind, id));
    r.location = None;
    Ok(r)
}

fn not_modified(version: i64) -> Resp {
    Resp {
        status: StatusCode::NOT_MODIFIED,
        body: None,
        etag: Some(etag(version)),
        location: None,
    }
}

fn location(s: &ScimState, kind: Kind, id: &str) -> String {
    let seg = match kind {
        Kind::User => "Users",
        Kind::Group => "Groups",
    };
    format!("{}/{seg}/{id}", s.base_url)
}

pub async fn list(s: &ScimState, scope: &Scope, kind: Kind, p: &ListParams) -> ScimResult<Resp> {
    let q = p.query(kind)?;
    let proj = p.projection(kind);
    let (total, resources) = match kind {
        Kind::User if proj.keeps_all(&USER_TYPE) => {
            let page = s.store.list_listed_users(scope, &q).await?;
            return listed_users_response(s, page, q.start_index);
        }
        Kind::User => {
            let page = s.store.list_users(scope, &q).await?;
            (page.total, render_users(s, page.items, &proj))
        }
        Kind::Group => {
            let page = s.store.list_groups(scope, &q).await?;
            (
                page.total,
                render_groups(s, scope, &page.items, &proj).await?,
            )
        }
    };
    Ok(Resp::json(
        StatusCode::OK,
        list_response(total, q.start_index, resources),
    ))
}

fn not_rendered(e: serde_json::Error) -> ScimError {
    ScimError::from(CoreError::Store(StoreError::Other(format!(
        "a stored user could not be rendered: {e}"
    ))))
}

/// `list_response` of users listed without projection, written as text: each user's stored
/// attributes are copied, not rebuilt (`wire::write_listed_user`).
fn listed_users_response(
    s: &ScimState,
    page: Page<ListedUser>,
    start_index: u64,
) -> ScimResult<Resp> {
    let mut out = Vec::with_capacity(256 + page.items.len() * 1024);
    // The members of `list_response` in its order (a `Map` sorts them).
    if !page.items.is_empty() || page.total > 0 {
        out.extend_from_slice(b"{\"Resources\":[");
        for (i, u) in page.items.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_listed_user(&mut out, &USER_TYPE, &s.base_url, u).map_err(not_rendered)?;
        }
        out.extend_from_slice(b"],");
    } else {
        out.push(b'{');
    }
    let tail = format!(
        "\"itemsPerPage\":{},\"schemas\":[\"{LIST_SCHEMA}\"],\"startIndex\":{start_index},\"totalResults\":{}}}",
        page.items.len(),
        page.total
    );
    out.extend_from_slice(tail.as_bytes());
    Ok(Resp {
        status: StatusCode::OK,
        body: Some(RespBody::Text(out)),
        etag: None,
        location: None,
    })
}

fn list_response(total: u64, start_index: u64, resources: Vec<Value>) -> Value {
    let mut body = json!({
        "schemas": [LIST_SCHEMA],
        "totalResults": total,
        "itemsPerPage": resources.len(),
        "startIndex": start_index,
    });
    if !resources.is_empty() || total > 0 {
        body["Resources"] = Value::Array(resources);
    }
    body
}

/// `POST /.search` at the root: users then groups, as one result set.
pub async fn search_root(s: &ScimState, scope: &Scope, p: &ListParams) -> ScimResult<Resp> {
    let mut total = 0u64;
    let mut resources = Vec::new();
    let mut resolved_any = false;
    let mut last_err = None;
    let start = p.start_index.unwrap_or(1).max(1) as u64;
    let mut want = p
        .count
        .map_or(MAX_RESULTS, |c| c.clamp(0, MAX_RESULTS as i64) as u64);
    let mut skip = start - 1;
    for kind in [Kind::User, Kind::Group] {
        let mut q = match p.query(kind) {
            Ok(q) => q,
            Err(e) => {
                last_err = Some(e);
                continue;
            }
        };
        resolved_any = true;
        q.start_index = 1;
        q.count = 0;
        let n = match kind {
            Kind::User => s.store.list_users(scope, &q).await?.total,
            Kind::Group => s.store.list_groups(scope, &q).await?.total,
        };
        total += n;
        if want > 0 && skip < n {
            q.start_index = skip + 1;
            q.count = want;
            let proj = p.projection(kind);
            let items = match kind {
                Kind::User => {
                    let page = s.store.list_users(scope, &q).await?;
                    render_users(s, page.items, &proj)
                }
                Kind::Group => {
                    let page = s.store.list_groups(scope, &q).await?;
                    render_groups(s, scope, &page.items, &proj).await?
                }
            };
            want -= items.len() as u64;
            resources.extend(items);
            skip = 0;
        } else {
            skip = skip.saturating_sub(n);
        }
    }
    if !resolved_any && let Some(e) = last_err {
        return Err(e);
    }
    Ok(Resp::json(
        StatusCode::OK,
        list_response(total, start, resources),
    ))
}

pub async fn create(
    s: &ScimState,
    scope: &Scope,
    kind: Kind,
    body: &Map<String, Value>,
    proj: &Projection,
) -> ScimResult<Resp> {
    match kind {
        Kind::User => {
            let u = resources::create_user(&s.store, scope, body, Provenance::Scim).await?;
            let (version, uid) = (u.meta.version, u.id.clone());
            let items = render_users(s, vec![u], proj);
            Ok(one(
                StatusCode::CREATED,
                items,
                version,
                location(s, kind, &uid),
            ))
        }
        Kind::Group => {
            let g = resources::create_group(&s.store, scope, body).await?;
            let items = render_groups(s, scope, std::slice::from_ref(&g), proj).await?;
            Ok(one(
                StatusCode::CREATED,
                items,
                g.meta.version,
                location(s, kind, &g.id),
            ))
        }
    }
}

pub async fn replace(
    s: &ScimState,
    scope: &Scope,
    kind: Kind,
    id: &str,
    body: &Map<String, Value>,
    if_match: Option<Expect>,
    proj: &Projection,
) -> ScimResult<Resp> {
    match kind {
        Kind::User => {
            let u = resources::replace_user(&s.store, scope, id, body, if_match).await?;
            let version = u.meta.version;
            let items = render_users(s, vec![u], proj);
            Ok(one(StatusCode::OK, items, version, location(s, kind, id)))
        }
        Kind::Group => {
            let g = resources::replace_group(&s.store, scope, id, body, if_match).await?;
            let items = render_groups(s, scope, std::slice::from_ref(&g), proj).await?;
            Ok(one(
                StatusCode::OK,
                items,
                g.meta.version,
                location(s, kind, id),
            ))
        }
    }
}

/// Parses a PatchOp body into core operations.
fn patch_ops(
    kind: Kind,
    body: &Map<String, Value>,
) -> ScimResult<Vec<crate::core::patch::PatchOp>> {
    let ops = body
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Operations"))
        .map(|(_, v)| v)
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::bad("invalidSyntax", "a PatchOp needs an Operations array"))?;
    if ops.is_empty() {
        return Err(ScimError::bad("invalidSyntax", "Operations is empty"));
    }
    let mut out = Vec::new();
    for op in ops {
        let o = op
            .as_object()
            .ok_or_else(|| ScimError::bad("invalidSyntax", "each operation must be an object"))?;
        let field = |name: &str| {
            o.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        };
        // Entra ID capitalises: "Add", "Replace", "Remove".
        let kind_s = field("op").and_then(Value::as_str).unwrap_or_default();
        let pk = match kind_s.to_ascii_lowercase().as_str() {
            "add" => PatchKind::Add,
            "replace" => PatchKind::Replace,
            "remove" => PatchKind::Remove,
            _ => {
                return Err(ScimError::bad(
                    "invalidSyntax",
                    format!("unknown PATCH op \"{kind_s}\""),
                ));
            }
        };
        let path = match field("path") {
            None | Some(Value::Null) => None,
            Some(Value::String(p)) => Some(p.as_str()),
            Some(_) => return Err(ScimError::bad("invalidPath", "path must be a string")),
        };
        out.extend(resolve::patch_ops(kind.rt(), pk, path, field("value"))?);
    }
    Ok(out)
}

pub async fn patch(
    s: &ScimState,
    scope: &Scope,
    kind: Kind,
    id: &str,
    body: &Map<String, Value>,
    if_match: Option<Expect>,
    q: &[(String, String)],
) -> ScimResult<Resp> {
    let ops = crate::core::cpu_bound(crate::core::attrs::weight(body), || patch_ops(kind, body))?;
    let proj = projection(kind, q);
    let asked = q
        .iter()
        .any(|(k, _)| k == "attributes" || k == "excludedAttributes");
    match kind {
        Kind::User => {
            let u = resources::patch_user(&s.store, scope, id, &ops, if_match).await?;
            let version = u.meta.version;
            let items = render_users(s, vec![u], &proj);
            let mut r = one(StatusCode::OK, items, version, location(s, kind, id));
            r.location = None;
            Ok(r)
        }
        Kind::Group => {
            if !asked {
                // 204 without a body: rendering a large group's members would be the
                // expensive part of a one-member change (RFC 7644 §3.5.2 allows it).
                let version =
                    resources::patch_group_version(&s.store, scope, id, &ops, if_match).await?;
                return Ok(Resp {
                    status: StatusCode::NO_CONTENT,
                    body: None,
                    etag: Some(etag(version)),
                    location: None,
                });
            }
            let g = resources::patch_group(&s.store, scope, id, &ops, if_match).await?;
            let items = render_groups(s, scope, std::slice::from_ref(&g), &proj).await?;
            let mut r = one(StatusCode::OK, items, g.meta.version, location(s, kind, id));
            r.location = None;
            Ok(r)
        }
    }
}

pub async fn delete(
    s: &ScimState,
    scope: &Scope,
    kind: Kind,
    id: &str,
    if_match: Option<Expect>,
) -> ScimResult<Resp> {
    match kind {
        Kind::User => resources::delete_user(&s.store, scope, id, if_match).await?,
        Kind::Group => resources::delete_group(&s.store, scope, id, if_match).await?,
    }
    Ok(Resp {
        status: StatusCode::NO_CONTENT,
        body: None,
        etag: None,
        location: None,
    })
}
