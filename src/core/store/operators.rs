//! Admin keys, console sign-ins and setup links.

use crate::core::error::CoreResult;
use crate::core::model::*;

/// An admin API key as found by its hash.
#[derive(Debug, Clone)]
pub struct AdminKeyGrant {
    pub key_id: String,
    /// `None`: every organization.
    pub org: Option<OrgId>,
    pub read_only: bool,
}

#[derive(Debug, Clone)]
pub struct AdminKeyInfo {
    pub id: String,
    pub org_id: Option<String>,
    pub name: String,
    pub read_only: bool,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

/// A customer setup link as stored.
#[derive(Debug, Clone)]
pub struct SetupLink {
    pub id: String,
    pub org_id: OrgId,
    pub created_at: String,
    pub expires_at: String,
    pub opened_at: Option<String>,
    pub directory_id: Option<String>,
    /// The id the connection made through the link gets (reserved at creation).
    pub connection_id: String,
}

/// The role that lets an operators' organization user administer Roster in the console,
/// and the one that lets them look.
pub const CONSOLE_ADMIN_ROLE: &str = "roster-admin";

pub const CONSOLE_VIEWER_ROLE: &str = "roster-viewer";

/// The setting naming the operators' organization, whose SSO signs operators in to the
/// console (`roster console-sso`); unset, console SSO is off.
pub const CONSOLE_SSO_ORG_SETTING: &str = "console_sso_org";

/// Who a console session belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleIdentity {
    AdminKey(String),
    /// A user of the operators' organization, signed in through its SSO.
    User(String),
}

/// A live console session's rights.
#[derive(Debug, Clone)]
pub struct ConsoleGrant {
    pub who: ConsoleIdentity,
    /// `None`: every organization.
    pub org: Option<OrgId>,
    pub read_only: bool,
}

/// The people and programs that run Roster: admin API keys.
pub trait OperatorStore: Send + Sync + 'static {
    async fn insert_admin_key(
        &self,
        info: &AdminKeyInfo,
        key_hash: &str,
        actor: &Actor,
    ) -> CoreResult<()>;
    async fn admin_key_grant(&self, key_hash: &str) -> CoreResult<Option<AdminKeyGrant>>;
    async fn list_admin_keys(&self) -> CoreResult<Vec<AdminKeyInfo>>;
    async fn revoke_admin_key(&self, id: &str, actor: &Actor) -> CoreResult<bool>;
}

/// Console sign-ins and the setup links an organization admin opens.
pub trait ConsoleStore: Send + Sync + 'static {
    async fn insert_console_session(
        &self,
        id_hash: &str,
        who: &ConsoleIdentity,
        expires_at: &str,
    ) -> CoreResult<()>;
    /// The grant of a live console session: its admin key unrevoked, or its user active,
    /// holding [`CONSOLE_ADMIN_ROLE`] or [`CONSOLE_VIEWER_ROLE`], and still able to sign in
    /// through console SSO (the user's organization is the one [`CONSOLE_SSO_ORG_SETTING`]
    /// names, with a connection not disabled) — checked at every request.
    async fn console_session(&self, id_hash: &str, now: &str) -> CoreResult<Option<ConsoleGrant>>;
    async fn delete_console_session(&self, id_hash: &str) -> CoreResult<()>;
    async fn insert_setup_link(
        &self,
        link: &SetupLink,
        token_hash: &str,
        actor: &Actor,
    ) -> CoreResult<()>;
    /// Spends an unexpired, unopened link: binds it to the session hash. `None` if the link
    /// is unknown, expired or already used.
    async fn open_setup_link(
        &self,
        token_hash: &str,
        session_hash: &str,
        now: &str,
    ) -> CoreResult<Option<SetupLink>>;
    /// The unexpired link a setup session belongs to.
    async fn setup_session(&self, session_hash: &str, now: &str) -> CoreResult<Option<SetupLink>>;
    async fn set_setup_directory(&self, link_id: &str, directory_id: &str) -> CoreResult<()>;
}
