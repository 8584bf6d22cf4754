//! Organizations, domains, connections, directories and their tokens, apps.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    Admin, ApiResult, ApiState, Body, ErrorBody, Errors, Page, PageParams, Q, bad, next_cursor,
    not_found, take_page,
};
use crate::core::domains::{self, Domain};
use crate::core::model::{Directory, Org, TokenInfo};
use crate::core::orgs::{self, OrgSlug};
use crate::core::sessions::{self, App};
use crate::core::sso::{IdpKind, JitMode};
use crate::core::store::prelude::*;
use crate::core::store::{OrgStats, RecentRequest};
use crate::outbound::{Outbound, Reach};
use crate::sso::setup::{
    ConnectionSpec, ConnectionView, Upstream, create_connection, fetch_idp_metadata,
};

pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/orgs", get(list_orgs).post(create_org))
        .route("/orgs/{org}", get(get_org))
        .route("/orgs/{org}/domains", get(list_domains).post(add_domain))
        .route("/orgs/{org}/domains/{domain}", delete(remove_domain))
        .route(
            "/orgs/{org}/domains/{domain}/verify",
            axum::routing::post(verify_domain),
        )
        .route(
            "/orgs/{org}/connections",
            get(list_connections).post(create_conn),
        )
        .route("/orgs/{org}/connections/{id}", get(get_connection))
        .route(
            "/orgs/{org}/directories",
            get(list_directories).post(create_directory),
        )
        .route("/orgs/{org}/directories/{id}", get(get_directory))
        .route(
            "/orgs/{org}/directories/{id}/tokens",
            get(list_tokens).post(create_token),
        )
        .route(
            "/orgs/{org}/directories/{id}/tokens/{token_id}",
            delete(revoke_token),
        )
        .route(
            "/orgs/{org}/directories/{id}/requests",
            get(recent_requests),
        )
        .route("/apps", get(list_apps).post(create_app))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrgView {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub created_at: String,
}

impl OrgView {
    pub fn of(o: &Org) -> Self {
        OrgView {
            id: o.id.as_str().to_owned(),
            slug: o.slug.clone(),
            name: o.name.clone(),
            created_at: o.created_at.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrgDetail {
    #[serde(flatten)]
    pub org: OrgView,
    pub users: i64,
    pub active_users: i64,
    pub groups: i64,
    pub directories: i64,
    pub connections: i64,
    /// When any of its directories last made a SCIM request.
    pub last_scim_request_at: Option<String>,
}

impl OrgDetail {
    pub fn of(o: &Org, s: OrgStats) -> Self {
        OrgDetail {
            org: OrgView::of(o),
            users: s.users,
            active_users: s.active_users,
            groups: s.groups,
            directories: s.directories,
            connections: s.connections,
            last_scim_request_at: s.last_scim_request_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewOrg {
    /// 1–63 of a-z, 0-9 and '-', not starting or ending with '-'.
    #[schema(pattern = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
    pub slug: String,
    pub name: Option<String>,
}

/// `GET /orgs`: the organizations this key sees, in slug order.
#[utoipa::path(get, path = "/orgs", tag = "orgs", params(PageParams),
    responses((status = 200, body = Page<OrgView>), Errors), security(("admin_key" = [])))]
async fn list_orgs(
    State(st): State<Arc<ApiState>>,
    admin: Admin,
    Q(p): Q<PageParams>,
) -> ApiResult<axum::Json<Page<OrgView>>> {
    let limit = p.limit()?;
    let after = p.after_key("org")?;
    if let Some(mine) = &admin.org {
        // A key for one organization: that one, on one page.
        let org = st.store.org_by_id(mine.as_str()).await?;
        return Ok(axum::Json(Page {
            data: org
                .iter()
                .filter(|o| after.is_none() || after.as_deref() < Some(o.slug.as_str()))
                .map(OrgView::of)
                .collect(),
            next_cursor: None,
        }));
    }
    let mut list = st.store.org_page(after.as_deref(), limit + 1).await?;
    let more = take_page(&mut list, limit);
    let data: Vec<OrgView> = list.iter().map(OrgView::of).collect();
    let next = next_cursor("org", more, list.last().map(|o| o.slug.clone()));
    Ok(axum::Json(Page {
        data,
        next_cursor: next,
    }))
}

/// `POST /orgs`: a new organization (keys for every organization only).
#[utoipa::path(post, path = "/orgs", tag = "orgs", request_body = NewOrg,
    responses((status = 201, body = OrgView),
        (status = 409, description = "The slug is taken", body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody), Errors),
    security(("admin_key" = [])))]
async fn create_org(
    State(st): State<Arc<ApiState>>,
    admin: Admin,
    Body(b): Body<NewOrg>,
) -> ApiResult<(StatusCode, axum::Json<OrgView>)> {
    admin.check_write()?;
    admin.check_global()?;
    let slug = OrgSlug::parse(&b.slug)?;
    let org = orgs::create_org(&st.store, &slug, b.name.as_deref(), &admin.actor()).await?;
    Ok((StatusCode::CREATED, axum::Json(OrgView::of(&org))))
}

/// `GET /orgs/{org}`: an organization with its counts.
#[utoipa::path(get, path = "/orgs/{org}", tag = "orgs",
    params(("org" = String, Path, description = "The organization's slug")),
    responses((status = 200, body = OrgDetail), Errors), security(("admin_key" = [])))]
async fn get_org(
    State(st): State<Arc<ApiState>>,
    admin: Admin,
    Path(org): Path<String>,
) -> ApiResult<axum::Json<OrgDetail>> {
    let org = admin.org(&st.store, &org).await?;
    let stats = st.store.org_stats(&org.id).await?;
    Ok(axum::Json(OrgDetail::of(&org, stats)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DomainView {
    pub domain: String,
    /// `pending` until Roster finds the TXT record (or an operator forces it), then
    /// `verified`. Only verified domains route logins, allow JIT creation or count for
    /// `email_verified`.
    #[schema(pattern = "^(pending|verified)$")]
    pub state: String,
    /// The TXT record to publish: its name and its exact value.
    pub record_name: String,
    pub record_value: String,
    pub created_at: String,
    pub verified_at: Option<String>,
    /// dns, operator or legacy (added before domains were verified).
    pub verified_by: Option<String>,
    /// The latest DNS check, and why it failed.
    pub checked_at: Option<String>,
    pub check_error: Option<String>,
}

impl DomainView {
    pub fn of(d: &Domain) -> Self {
        DomainView {
            domain: d.domain.clone(),
            state: d.state.as_str().to_owned(),
            record_name: d.record_name(),
            record_value: d.record_value(),
            created_at: d.created_at.clone(),
            verified_at: d.verified_at.clone(),
            verified_by: d.verified_by.clone(),
            checked_at: d.checked_at.clone(),
            check_error: d.check_error.clone(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewDomain {
    pub domain: String,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct VerifyDomain {
    /// Verify without the DNS check: only keys of every organization may.
    #[serde(default)]
    pub force: bool,
}

/// `GET /orgs/{org}/domains`: the organization's claimed domains and their state (one page).
#[utoipa::path(get, path = "/orgs/{org}/domains", tag = "orgs",
    params(("org" = String, Path, description = "The organization's slug")),
    responses((status = 200, body = Page<DomainView>), Errors), security(("admin_key" = [])))]
async fn list_domains(
    State(st): State<Arc<ApiState>>,
    admin: Admin,
    Path(org): Path<String>,
) -> ApiResult<axum::Json<Page<DomainView>>> {
    let org = admin.org(&st.store, &org).await?;
    let list = st.store.list_domains(Some(&org.id)).await?;
    Ok(axum::Json(Page {
        data: list.iter().map(DomainView::of).collect(),
        next_cursor: None,
    }))
}

/// `POST /orgs/{org}/domains`: claims a domain. It is `pending` until verified through DNS
/// (`POST …/domains/{domain}/verify`); a domain verified by one organization cannot be
/// claimed by another.
#[utoipa::path(post, path = "/orgs/{org}/domains", tag = "orgs", request_body = NewDomain,
    params(("org" = String, Path, description = "The organization's slug")),
    responses((status = 201, body = DomainView),
        (status = 409, description = "The domain is verified by an organization, or already claimed by this one", body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody), Errors),
    security(("admin_key" = [])))]
async fn add_domain(
    State(st): State<Arc<ApiState>>,
    admin: Admin,
    Path(org): Path<String>,
    Body(b): Body<NewDomain>,
) -> ApiResult<(StatusCode, axum::Json<DomainView>)> {
    admin.check_write()?;
    let org = admin.org(&st.store, &org).await?;
    let d = domains::claim(&st.store, &org, &b.domain, &admin.actor()).await?;
    Ok((StatusCode::CREATED, axum::Json(DomainView::of(&d))))
}

/// `POST /orgs/{org}/domains/{domain}/verify`: looks up the domain's TXT record and verifies
/// the claim when it carries the challenge; `force` (keys of every organization only)
/// verifies without looking. Answers the domain's state either way.
#[utoipa::path(post, path = "/orgs/{org}/domains/{domain}/verify", tag = "orgs",
    request_body(content = VerifyDomain, description = "Optional; `{}` checks DNS"),
    params(("org" = String, Path, description = "The organization's slug"),
        ("domain" = String, Path, description = "The claimed domain")),
    responses((status = 200, body = DomainView),
        (status = 409, description = "Another organization holds the domain verified", body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody), Errors),
    security(("admin_key" = [])))]
async fn verify_domain(
    State(st): State<Arc<ApiState>>,
    admin: Admin,
    Path((org, domain)): Path<(String, String)>,
    Body(b): Body<VerifyDomain>,
) -> ApiResult<axum::Json<DomainView>> {
    admin.check_write()?;
    if b.force {
        admin.check_global()?;
    }
    let org = admin.org(&st.store, &org).await?;
    let (d, _) =
        domains::verify(&st.store, &st.dns, &org, &domain, b.force, &admin.actor()).await?;
    Ok(axum::Json(DomainView::of(&d)))
}

/// `DELETE /orgs/{org}/domains/{domain}`: removes the claim, pending or verified. A verified
/// domain stops routing logins, allowing JIT creation and counting for `email_verified` at
/// once; users keep their accounts. Answers the claim as it was.
#[utoipa::path(delete, path = "/orgs/{org}/domains/{domain}", tag = "orgs",
    params(("org" = String, Path, description = "The organization's slug"),
        ("domain" = String, Path, description = "The claimed domain")),
    responses((status = 200, body = DomainView), Errors),
    security(("admin_key" = [])))]
async fn remove_domain(
    State(st): State<Arc<ApiState>>,
    admin: Admin,
    Path((org, domain)): Path<(String, String)>,
) -> ApiResult<axum::Json<DomainView>> {
    admin.check_write()?;
    let org = admin.org(&st.store, &org).await?;
    let d = domains::remove(&st.store, &org, &domain, &admin.actor()).await?;
    Ok(axum::Json(DomainView::of(&d)))
}

/// A new connection: OIDC (`issuer`, `client_id`, `client_secret`) or SAML (`metadata_xml`,
/// or `metadata_url` to fetch it from).
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewConnection {
    /// `oidc` or `saml`.
    #[schema(pattern = "^(oidc|saml)$")]
    pub protocol: String,
    /// okta, entra, google, onelogin, jumpcloud or generic (default).
    #[schema(pattern = "^(okta|entra|google|onelogin|jumpcloud|generic)$")]
    pub idp: Option<String>,
    pub name: Option<String>,
    pub issuer: Option<String>,
    pub client_id: Option<String>,
    /// Stored encrypted; never shown again.
    pub client_secret: Option<String>,
    /// The IdP's SAML metadata document.
    pub metadata_xml: Option<String>,
    /// Where to fetch the IdP's SAML metadata (https), instead of `metadata_xml`. With a key
    /// for one organization, only public addresses are fetched.
    pub metadata_url: Option<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// off, create (default) or create_and_update.
    #[schema(pattern = "^(off|create|create_and_update)$")]
    pub jit: Option<String>,
    /// The domains the connection serves (claimed by the organization), narrowing its
    /// verified domains; empty: all of them.
    #[serde(default, alias = "jit_allowed_domains")]
    pub domains: Vec<String>,
    #[serde(default)]
    pub directory_authoritative: bool,
    /// Claim-name overrides, `field=claim[,claim…]`.
    #[serde(default)]
    pub mappings: Vec<String>,
}

impl NewConnection {
    /// The spec, with SAML metadata fetched from `metadata_url` when given (through
    /// `out`, reaching private networks only if `reach` says so).
    pub async fn into_spec(self, out: &Outbound, reach: Reach) -> ApiResult<ConnectionSpec> {
        let idp = IdpKind::parse(self.idp.as_deref().unwrap_or("generic"))?;
        let upstream = match self.protocol.as_str() {
            "oidc" => Upstream::Oidc {
                issuer: self
                    .issuer
                    .ok_or_else(|| bad("an OIDC connection needs issuer"))?,
                client_id: self
                    .client_id
                    .ok_or_else(|| bad("an OIDC connection needs client_id"))?,
                client_secret: self
                    .client_secret
                    .ok_or_else(|| bad("an OIDC connection needs client_secret"))?,
            },
            "saml" => Upstream::Saml {
                metadata_xml: match (self.metadata_xml, self.metadata_url.as_deref()) {
                    (Some(xml), None) => xml,
                    (None, Some(url)) => fetch_idp_metadata(out, reach, url).await?,
                    (Some(_), Some(_)) => {
                        return Err(bad("give metadata_xml or metadata_url, not both"));
                    }
                    (None, None) => {
                        return Err(bad("a SAML connection needs metadata_xml or metadata_url"));
                    }
                },
            },
            other => return Err(bad(format!("protocol \"{other}\": use oidc or saml"))),
        };
        Ok(ConnectionSpec {
            name: self.name,
            scopes: self.scopes,
            jit: JitMode::parse(self.jit.as_deref().unwrap_or("create"))?,
            domains: self.domains,
            directory_authoritative: self.directory_authoritative,
            mappings: self.mappings,
            private_networks: reach == Reach::Private,
            ..ConnectionSpec::new(idp, upstream)
        })
    }
}

/// `GET /orgs/{org}/connections`: the organization's IdP connections (one page).
#[utoipa::path(get, path = "/orgs/{org}/connections", tag = "connections",
    params(("org" = String, Path, description = "The organization's slug")),
    responses((status = 200, body = Page<ConnectionView>), Errors), security(("admin_key" = [])))]
async fn list_connections(
    State(st): State<Arc<ApiState>>,
    admin: Admin,
    Path(org): Path<String>,
) -> ApiResult<axum::Json<Page<ConnectionView>>> {
    let org = admin.org(&st.store, &org).await?;
    let list = st.store.list_connections(Some(&org.id)).await?;
    Ok(axum::Json(Page {
        data: list
            .iter()
            .map(|c| ConnectionView::of(c, &st.public_url))
            .collect(),
        next_cursor: None,
    }))
}

/// `POST /orgs/{org}/connections`: connects the organization to its IdP.
#[utoipa::path(post, path = "/orgs/{org}/connections", tag = "connections",
    request_body = NewConnection,
    params(("org" = String, Path, description = "The organization's slug")),
    responses((status = 201, body = ConnectionView),
        (status = 415, description = "The body is not JSON", body = ErrorBody), Errors),
    security(("admin_key" = [])))]
async fn create_conn(
    State(st): State<Arc<ApiState>>,
    admin: Admin,
    Path(org): Path<String>,
    Body(b): Body<NewConnection>,
) -> ApiResult<(StatusCode, axum::Json<ConnectionView>)> {
    admin.check_write()?;
    let org = admin.org(&st.store, &org).await?;
    // A key limited to one organization may not point Roster at internal addresses.
    let reach = Reach::private_if(admin.org.is_none());
    let spec = b.into_spec(&st.outbound, reach).await?;
    let conn = create_connection(&st.store, &st.master, &org, spec, &admin.actor()).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(ConnectionView::of(&conn, &st.public_url)),
    ))
}

/// `GET /orgs/{org}/connections/{id}`.
#[utoipa::path(get, path = "/orgs/{org}/connections/{id}", tag = "connections",
    params(("org" = String, Path, description = "The organization's slug"),
        ("id" = String, Path, description = "The connection's id")),
    responses((status = 200, body = ConnectionView), Errors), security(("admin_key" = [])))]
async fn get_connection(
    State(st): State<Arc<ApiState>>,
    admin: Admin,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult<axum::Json<ConnectionView>> {
    let org = admin.org(&st.store, &org).await?;
    let c = st
        .store
        .connection(&id)
        .await?
        .filter(|c| c.org_id == org.id)
        .ok_or_else(|| not_found(format!("connection {id}")))?;
    Ok(axum::Json(ConnectionView::of(&c, &st.public_url)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DirectoryView {
    pub id: String,
    pub org: String,
    pub name: String,
    pub created_at: String,
    /// What to give the IdP as the SCIM base URL (tenant URL).
    pub scim_base_url: String,
}

impl DirectoryView {
    pub fn of(d: &Directory, public_url: &str) -> Self {
        DirectoryView {
            id: d.id.clone(),
            org: d.org_slug.clone(),
            name: d.name.clone(),
            created_at: d.created_at.clone(),
            scim_base_url: format!("{public_url}/scim/v2"),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewDirectory {
    pub name: Option<String>,
    /// Make its first token read-only (for governance tools).
    #[serde(default)]
    pub read_only: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    pub id: String,
    pub directory_id: String,
    pub read_only: bool,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

impl TokenView {
    fn of(t: &TokenInfo) -> Self {
        TokenView {
            id: t.id.clone(),
            directory_id: t.directory_id.clone(),
            read_only: t.read_only,
            created_at: t.created_at.clone(),
            revoked_at: t.revoked_at.clone(),
        }
    }
}

/// A new token: its secret is in this answer only.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewTokenView {
    #[serde(flatten)]
    pub info: TokenView,
    /// The bearer token for the IdP (shown once; stored as SHA-256).
    pub token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NewDirectoryView {
    pub directory: DirectoryView,
    pub token: NewTokenView,
}

/// `GET /orgs/{org}/directories`: the organization's SCIM directories (one page).
#[utoipa::path(get, path = "/orgs/{org}/directories", tag = "directories",
    params(("org" = String, Path, description = "The organization's slug")),
    responses((status = 200, body = Page<DirectoryView>), Errors), security(("admin_key" = [])))]
async fn list_directories(
    State(st): State<Arc<ApiState>>,
    admin: Admin,
    Path(org): Path<String>,
) -> ApiResult<axum::Json<Page<DirectoryView>>> {
    let org = admin.org(&st.store, &org).await?;
    let list = st.store.list_directories(Some(&org.id)).await?;
    Ok(axum::Json(Page {
        data: list
            .iter()
            .map(|d| DirectoryView::of(d, &st.public_url))
            .collect(),
        next_cursor: None,
    }))
}

/// `POST /orgs/{org}/directories`: a SCIM directory with its first bearer token.
#[utoipa::path(post, path = "/orgs/{org}/directories", tag = "directories",
    request_body = NewDirectory,
    params(("org" = String, Path, description = "The organization's slug")),
    responses((status = 201, body = NewDirectoryView),
        (status = 415, description = "The body is not JSON", body = ErrorBody), Errors),
    security(("admin_key" = [])))]
async fn create_directory(
    State(st): State<Arc<ApiState>>,
    admin: Admin,
    Path(org): Path<String>,
    Body(b): Body<NewDirectory>,
) -> ApiResult<(StatusCode, axum::Json<NewDirectoryView>)> {
    admin.check_write()?;
    let org = admin.org(&st.store, &org).await?;
    let (dir, info, token) = orgs::create_directory(
        &st.store,
        &org,
        b.name.as_deref().filter(|n| !n.trim().is_empty()),
        b.read_only,
        &admin.actor(),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(NewDirectoryView {
            directory: DirectoryView::of(&dir, &st.public_url),
            token: NewTokenView {
                info: TokenView::of(&info),
                token,
            },
        }),
    ))
}

async fn directory_of(
    st: &ApiState,
    admin: &Admin,
    org: &str,
    id: &str,
) -> ApiResult<(Org, Directory)> {
    let org = admin.org(&st.store, org).await?;
    let dir = st
        .store
        .directory(id)
        .await?
        .filter(|d| d.org_id == org.id)
        .ok_or_else(|| not_found(format!("directory {id}")))?;
    Ok((org, dir))
}

/// `GET /orgs/{org}/directories/{id}`.
#[utoipa::path(get, path = "/orgs/{org}/directories/{id}", tag = "directories",
    params(("org" = String, Path, description = "The organization's slug"),
        ("id" = String, Path, description = "The directory's id")),
    responses((status = 200, body = DirectoryView), Errors), security(("admin_key" = [])))]
async fn get_directory(
    State(st): State<Arc<ApiState>>,
    admin: Admin,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult<axum::Json<DirectoryView>> {
    let (_, dir) = directory_of(&st, &admin, &org, &id).await?;
    Ok(axum::Json(DirectoryView::of(&dir, &st.public_url)))
}

/// `GET /orgs/{org}/directories/{id}/tokens`: its tokens (never their secrets).
#[utoipa::path(get, path = "/orgs/{org}/directories/{id}/tokens", tag = "directories",
    params(("org" = String, Path, description = "The organization's slug"),
        ("id" = String, Path, description = "The directory's id")),
    responses((status = 200, body = Page<TokenView>), Errors), security(("admin_key" = [])))]
async fn list_tokens(
    State(st): State<Arc<ApiState>>,
    admin: Admin,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult<axum::Json<Page<TokenView>>> {
    let (_, dir) = directory_of(&st, &admin, &org, &id).await?;
    let list = st.store.list_tokens(&dir.id).await?;
    Ok(axum::Json(Page {
        data: list.iter().map(TokenView::of).collect(),
        next_cursor: None,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewToken {
    /// GET and search only; writes get 403.
    #[serde(default)]
    pub read_only: bool,
}

/// `POST /orgs/{org}/directories/{id}/tokens`: a new bearer token (the old ones stay valid
/// until revoked).
#[utoipa::path(post, path = "/orgs/{org}/directories/{id}/tokens", tag = "directories",
    request_body = NewToken,
    params(("org" = String, Path, description = "The organization's slug"),
        ("id" = String, Path, description = "The directory's id")),
    responses((status = 201, body = NewTokenView),
        (status = 415, description = "The body is not JSON", body = ErrorBody), Errors),
    security(("admin_key" = [])))]
async fn create_token(
    State(st): State<Arc<ApiState>>,
    admin: Admin,
    Path((org, id)): Path<(String, String)>,
    Body(b): Body<NewToken>,
) -> ApiResult<(StatusCode, axum::Json<NewTokenView>)> {
    admin.check_write()?;
    let (_, dir) = directory_of(&st, &admin, &org, &id).await?;
    let (info, token) = orgs::issue_token(&st.store, &dir, b.read_only, &admin.actor()).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(NewTokenView {
            info: TokenView::of(&info),
            token,
        }),
    ))
}

/// `DELETE /orgs/{org}/directories/{id}/tokens/{token_id}`: revokes a token at once.
#[utoipa::path(delete, path = "/orgs/{org}/directories/{id}/tokens/{token_id}",
    tag = "directories",
    params(("org" = String, Path, description = "The organization's slug"),
        ("id" = String, Path, description = "The directory's id"),
        ("token_id" = String, Path, description = "The token's id")),
    responses((status = 204, description = "Revoked"), Errors), security(("admin_key" = [])))]
async fn revoke_token(
    State(st): State<Arc<ApiState>>,
    admin: Admin,
    Path((org, id, token_id)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    admin.check_write()?;
    let (_, dir) = directory_of(&st, &admin, &org, &id).await?;
    if st
        .store
        .revoke_scim_token(&dir, &token_id, &admin.actor())
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(format!("unrevoked token {token_id}")))
    }
}

/// One recent SCIM request (no body, no query string).
#[derive(Debug, Serialize, ToSchema)]
pub struct RequestView {
    pub at: String,
    pub method: String,
    pub path: String,
    pub status: i64,
    pub latency_ms: f64,
    /// The IdP's client (User-Agent).
    pub user_agent: String,
    pub request_id: Option<String>,
}

impl RequestView {
    pub fn of(r: &RecentRequest) -> Self {
        RequestView {
            at: r.at.clone(),
            method: r.method.clone(),
            path: r.path.clone(),
            status: r.status,
            latency_ms: r.latency_us as f64 / 1000.0,
            user_agent: r.user_agent.clone(),
            request_id: r.request_id.clone(),
        }
    }
}

/// `GET /orgs/{org}/directories/{id}/requests`: its most recent SCIM requests, newest
/// first (recorded every few seconds; the newest 200 are kept).
#[utoipa::path(get, path = "/orgs/{org}/directories/{id}/requests", tag = "directories",
    params(("org" = String, Path, description = "The organization's slug"),
        ("id" = String, Path, description = "The directory's id"), PageParams),
    responses((status = 200, body = Page<RequestView>), Errors), security(("admin_key" = [])))]
async fn recent_requests(
    State(st): State<Arc<ApiState>>,
    admin: Admin,
    Path((org, id)): Path<(String, String)>,
    Q(p): Q<PageParams>,
) -> ApiResult<axum::Json<Page<RequestView>>> {
    let limit = p.limit()?;
    let (_, dir) = directory_of(&st, &admin, &org, &id).await?;
    let list = st.store.recent_requests(&dir.id, limit).await?;
    Ok(axum::Json(Page {
        data: list.iter().map(RequestView::of).collect(),
        next_cursor: None,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AppView {
    pub client_id: String,
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub created_at: String,
}

impl AppView {
    fn of(a: &App) -> Self {
        AppView {
            client_id: a.id.clone(),
            name: a.name.clone(),
            redirect_uris: a.redirect_uris.clone(),
            created_at: a.created_at.clone(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewApp {
    pub name: Option<String>,
    /// Where Roster may send users back with a code (exact match; https, or http on
    /// loopback).
    #[schema(min_items = 1)]
    pub redirect_uris: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NewAppView {
    #[serde(flatten)]
    pub app: AppView,
    /// Shown once; stored as SHA-256.
    pub client_secret: String,
}

/// `GET /apps`: the apps (OIDC clients) using Roster as their OpenID provider.
#[utoipa::path(get, path = "/apps", tag = "apps",
    responses((status = 200, body = Page<AppView>), Errors), security(("admin_key" = [])))]
async fn list_apps(
    State(st): State<Arc<ApiState>>,
    admin: Admin,
) -> ApiResult<axum::Json<Page<AppView>>> {
    admin.check_global()?;
    let list = st.store.list_apps().await?;
    Ok(axum::Json(Page {
        data: list.iter().map(AppView::of).collect(),
        next_cursor: None,
    }))
}

/// `POST /apps`: registers an app; its client secret is in this answer only.
#[utoipa::path(post, path = "/apps", tag = "apps", request_body = NewApp,
    responses((status = 201, body = NewAppView),
        (status = 415, description = "The body is not JSON", body = ErrorBody), Errors),
    security(("admin_key" = [])))]
async fn create_app(
    State(st): State<Arc<ApiState>>,
    admin: Admin,
    Body(b): Body<NewApp>,
) -> ApiResult<(StatusCode, axum::Json<NewAppView>)> {
    admin.check_write()?;
    admin.check_global()?;
    let (app, secret) = sessions::create_app(
        &st.store,
        b.name.as_deref().unwrap_or("app"),
        &b.redirect_uris,
        &admin.actor(),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(NewAppView {
            app: AppView::of(&app),
            client_secret: secret,
        }),
    ))
}
