//! SSO connections and the identities they assert.

use crate::core::error::CoreResult;
use crate::core::model::*;
use crate::core::sso::Connection;

/// An IdP identity linked to a user: which connection and subject, and the email that
/// connection vouched for at its latest login (`None`: it vouched for none it serves).
#[derive(Debug, Clone)]
pub struct Identity {
    pub connection_id: String,
    pub subject: String,
    pub verified_email: Option<String>,
}

/// SSO connections (one IdP's SAML or OIDC login into an organization) and the identities they assert.
pub trait ConnectionStore: Send + Sync + 'static {
    async fn insert_connection(&self, c: &Connection, actor: &Actor) -> CoreResult<()>;
    /// Sets whether Roster's requests for connection `id` may reach private networks (an
    /// operator's decision); `false` if there is no such connection.
    async fn set_connection_private_networks(
        &self,
        id: &str,
        allowed: bool,
        actor: &Actor,
    ) -> CoreResult<bool>;
    async fn connection(&self, id: &str) -> CoreResult<Option<Connection>>;
    async fn list_connections(&self, org: Option<&OrgId>) -> CoreResult<Vec<Connection>>;
    /// The user this IdP subject is linked to through this connection.
    async fn identity_user(
        &self,
        scope: &Scope,
        connection_id: &str,
        subject: &str,
    ) -> CoreResult<Option<User>>;
    /// The IdP identities linked to a user.
    async fn identities_of(&self, scope: &Scope, user_id: &str) -> CoreResult<Vec<Identity>>;
    /// Links the subject to the user (or refreshes the link), records the IdP's groups, the
    /// email the connection vouched for, and the user's `last_login_at`. A link never moves
    /// to another user while the user it names exists.
    async fn record_login(
        &self,
        scope: &Scope,
        user_id: &str,
        connection_id: &str,
        subject: &str,
        idp_groups: &[String],
        verified_email: Option<&str>,
    ) -> CoreResult<()>;
    /// The IdP groups of the user's most recent login.
    async fn idp_groups(&self, scope: &Scope, user_id: &str) -> CoreResult<Vec<String>>;
}
