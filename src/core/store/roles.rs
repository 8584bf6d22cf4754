//! Role mappings and the roles users hold.

use crate::core::error::CoreResult;
use crate::core::model::*;

/// A group-to-role mapping of an organization.
#[derive(Debug, Clone)]
pub struct RoleMapping {
    pub id: String,
    pub org_id: OrgId,
    /// `displayName` (compared case-insensitively) or `externalId` (exact).
    pub match_on: String,
    pub group_value: String,
    pub role: String,
    pub created_at: String,
}

/// Role mappings (IdP group or attribute to app role) and the roles users hold.
pub trait RoleStore: Send + Sync + 'static {
    async fn insert_role_mapping(&self, m: &RoleMapping, actor: &Actor) -> CoreResult<()>;
    async fn delete_role_mapping(&self, org: &OrgId, id: &str, actor: &Actor) -> CoreResult<bool>;
    async fn role_mappings(&self, org: &OrgId) -> CoreResult<Vec<RoleMapping>>;
    /// The roles a user holds through mappings.
    async fn user_roles(&self, scope: &Scope, user_id: &str) -> CoreResult<Vec<String>>;
}
