//! SCIM directories, their tokens, and the traffic their IdPs send.

use crate::core::error::CoreResult;
use crate::core::model::*;

/// SCIM traffic counted by one node since its last flush.
#[derive(Debug, Clone)]
pub struct TrafficCount {
    pub directory_id: String,
    pub minute: String,
    pub user_agent: String,
    pub requests: i64,
    pub errors: i64,
    pub last_request_at: String,
}

/// One SCIM request as the console shows it: never its body or query.
#[derive(Debug, Clone)]
pub struct RecentRequest {
    pub directory_id: String,
    pub at: String,
    pub method: String,
    pub path: String,
    pub status: i64,
    pub latency_us: i64,
    pub user_agent: String,
    pub request_id: Option<String>,
}

/// How long one deprovisioning took: from the request's arrival to its commit (sessions
/// and tokens revoked), and to the first webhook that delivered its event.
#[derive(Debug, Clone)]
pub struct DeprovisionSample {
    pub cursor: i64,
    pub kind: String,
    pub user_id: String,
    pub received_at: String,
    pub committed_at: String,
    pub webhook_delivered_at: Option<String>,
}

/// SCIM directories (one IdP's push channel into an organization) and their bearer tokens.
pub trait DirectoryStore: Send + Sync + 'static {
    async fn create_directory(&self, org: &Org, name: &str, actor: &Actor)
    -> CoreResult<Directory>;
    async fn list_directories(&self, org: Option<&OrgId>) -> CoreResult<Vec<Directory>>;
    async fn directory(&self, id: &str) -> CoreResult<Option<Directory>>;
    async fn org_has_directory(&self, org: &OrgId) -> CoreResult<bool>;
    /// Stores a new token's hash (never the token).
    async fn add_token(
        &self,
        directory: &Directory,
        token_hash: &str,
        read_only: bool,
        actor: &Actor,
    ) -> CoreResult<TokenInfo>;
    async fn revoke_scim_token(
        &self,
        directory: &Directory,
        token_id: &str,
        actor: &Actor,
    ) -> CoreResult<bool>;
    async fn list_tokens(&self, directory_id: &str) -> CoreResult<Vec<TokenInfo>>;
    /// The grant of an unrevoked token, by the hash of the presented token.
    async fn token_grant(&self, token_hash: &str) -> CoreResult<Option<TokenGrant>>;
}

/// What each directory's IdP has sent: request counts, recent requests, drift and deprovisioning reports.
pub trait TrafficStore: Send + Sync + 'static {
    async fn add_traffic(&self, counts: &[TrafficCount]) -> CoreResult<()>;
    /// Adds requests and keeps only the newest `keep` per directory.
    async fn add_recent_requests(&self, reqs: &[RecentRequest], keep: i64) -> CoreResult<()>;
    /// A directory's newest requests, newest first.
    async fn recent_requests(
        &self,
        directory_id: &str,
        limit: i64,
    ) -> CoreResult<Vec<RecentRequest>>;
    /// The newest deactivations and deletions of users, newest first.
    async fn deprovision_samples(
        &self,
        org: Option<&OrgId>,
        limit: i64,
    ) -> CoreResult<Vec<DeprovisionSample>>;
    async fn drift_report(
        &self,
        org: &Org,
        stale_days: i64,
        now: &str,
    ) -> CoreResult<crate::core::report::DriftReport>;
}
