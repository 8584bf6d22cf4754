//! Logins, sessions and OAuth tokens.

use crate::core::error::CoreResult;
use crate::core::model::*;
use crate::core::sessions::{Consumed, LoginRequest, NewSession, TokenRow, TokenState};

/// Logins in flight, replay protection, sessions and the OAuth tokens they issue.
pub trait SessionStore: Send + Sync + 'static {
    async fn insert_login(&self, login: &LoginRequest) -> CoreResult<()>;
    /// Consumes a login in flight: returns it once, if unexpired.
    async fn take_login(&self, id: &str) -> CoreResult<Option<LoginRequest>>;
    /// Records a SAML assertion id until it expires; `false` if it was seen before.
    async fn remember_assertion(
        &self,
        connection_id: &str,
        assertion_id: &str,
        expires_at: &str,
    ) -> CoreResult<bool>;
    /// Opens a session with its authorization code if the user is active (checked under the
    /// user's row lock); `false` if not.
    async fn start_session(
        &self,
        scope: &Scope,
        session: &NewSession,
        code: &TokenRow,
    ) -> CoreResult<bool>;
    async fn token_state(&self, hash: &str) -> CoreResult<Option<TokenState>>;
    /// Marks a live token consumed and stores its successors, in one transaction.
    async fn consume_token(
        &self,
        token: &TokenRow,
        now: &str,
        successors: &[&TokenRow],
    ) -> CoreResult<Consumed>;
    async fn revoke_oauth_token(&self, hash: &str) -> CoreResult<()>;
    /// Revokes a session and every token of it, with a `session.revoked` event.
    async fn revoke_session(
        &self,
        org: &OrgId,
        session_id: &str,
        actor: &Actor,
        reason: &str,
    ) -> CoreResult<()>;
    /// Live sessions of a user (the drift report's invariant: zero for inactive users).
    async fn live_sessions(&self, scope: &Scope, user_id: &str) -> CoreResult<u64>;
    /// Deletes up to `batch` rows of each kind that ended before `before`: OIDC tokens
    /// expired whose session ended too (so a replayed code or refresh token of a live
    /// session is still recognized, and its session revoked), sessions expired or revoked
    /// with no token left, setup links expired. The number deleted.
    async fn sweep_ended(&self, before: &str, batch: i64) -> CoreResult<u64>;
}
