//! Organizations and instance settings.

use crate::core::error::CoreResult;
use crate::core::model::*;

/// How many users and groups an organization has, and when its directories last spoke.
#[derive(Debug, Clone, Default)]
pub struct OrgStats {
    pub users: i64,
    pub active_users: i64,
    pub groups: i64,
    pub directories: i64,
    pub connections: i64,
    pub last_scim_request_at: Option<String>,
}

/// Organizations: the tenants everything else belongs to.
pub trait OrgStore: Send + Sync + 'static {
    async fn create_org(&self, slug: &str, name: &str, actor: &Actor) -> CoreResult<Org>;
    async fn list_orgs(&self) -> CoreResult<Vec<Org>>;
    async fn org_by_slug(&self, slug: &str) -> CoreResult<Option<Org>>;
    async fn org_by_id(&self, id: &str) -> CoreResult<Option<Org>>;
    /// Organizations in slug order, after `after` (a slug).
    async fn org_page(&self, after: Option<&str>, limit: i64) -> CoreResult<Vec<Org>>;
    async fn org_stats(&self, org: &OrgId) -> CoreResult<OrgStats>;
}

/// Instance settings: named values the server keeps across restarts.
pub trait SettingStore: Send + Sync + 'static {
    /// A deployment setting (`settings` table), if set.
    async fn setting(&self, name: &str) -> CoreResult<Option<String>>;
    /// Sets (or with `None` removes) a deployment setting.
    async fn set_setting(&self, name: &str, value: Option<&str>, actor: &Actor) -> CoreResult<()>;
    /// The stored value of a setting, storing `value` first if there was none.
    async fn ensure_setting(&self, name: &str, value: &str) -> CoreResult<String>;
}
