//! The drift and health report of an organization: where the roster and the IdP may have
//! drifted apart, and whether deprovisioning held.

use serde::Serialize;

/// Most users listed per section (counts are always complete).
pub const LIST_LIMIT: i64 = 1000;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserLine {
    pub id: String,
    pub user_name: String,
    pub provenance: String,
    pub active: bool,
    pub created_at: String,
    pub last_login_at: Option<String>,
    pub last_directory_sync_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Section {
    pub count: i64,
    pub users: Vec<UserLine>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ClientTraffic {
    pub user_agent: String,
    pub requests: i64,
    pub errors: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DirectoryHealth {
    pub directory_id: String,
    pub name: String,
    pub last_request_at: Option<String>,
    pub requests: i64,
    pub errors: i64,
    /// errors / requests (0 when there were none).
    pub error_rate: f64,
    pub by_client: Vec<ClientTraffic>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DriftReport {
    pub org: String,
    pub generated_at: String,
    pub stale_days: i64,
    pub has_directory: bool,
    /// Created by a JIT login in an organization with a directory, never seen over SCIM:
    /// the directory cannot deprovision them (orphan risk).
    pub jit_never_synced: Section,
    /// Synced by the directory once, but not touched by it for `stale_days`.
    pub stale_directory_users: Section,
    /// Deactivated users holding a live session or token. Always zero: this is the
    /// invariant the product exists for; anything else is a bug to report.
    pub deactivated_with_live_access: Section,
    pub directories: Vec<DirectoryHealth>,
}
