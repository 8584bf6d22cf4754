//! Users.

use crate::core::audit::AuditDraft;
use crate::core::error::CoreResult;
use crate::core::events::EventDraft;
use crate::core::model::*;
use crate::core::query::{ListQuery, Page};
use serde_json::{Map, Value};

/// A user about to be inserted; the core has validated `attrs` and chosen `id`.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: String,
    pub attrs: Map<String, Value>,
    pub provenance: Provenance,
}

/// The outcome of a read-modify-write on a user, computed by the core from the current state.
#[derive(Debug)]
pub struct UserChange {
    pub attrs: Map<String, Value>,
    /// When set, the write only happens if the stored version still equals it.
    pub expect_version: Option<Expect>,
    pub events: Vec<EventDraft>,
    /// The audit entry, if anything changed.
    pub audit: Option<AuditDraft>,
    /// Revoke every session and token of the user in the same transaction (deprovisioning).
    pub revoke_sessions: bool,
}

/// Which users an admin listing wants: keyset pages in creation order.
#[derive(Debug, Clone, Default)]
pub struct UserListing {
    /// Part of the userName or primary email (case-insensitive).
    pub q: Option<String>,
    pub active: Option<bool>,
    pub provenance: Option<Provenance>,
    /// The position of the last user of the previous page (0 for the first page).
    pub after: i64,
    pub limit: i64,
}

/// Users of one organization, read and written under a [`Scope`].
pub trait UserStore: Send + Sync + 'static {
    async fn insert_user(
        &self,
        scope: &Scope,
        user: NewUser,
        event: EventDraft,
    ) -> CoreResult<User>;
    async fn get_user(&self, scope: &Scope, id: &str) -> CoreResult<Option<User>>;
    /// `get_user`, with the attributes as stored text (see `ListedUser`).
    async fn get_listed_user(&self, scope: &Scope, id: &str) -> CoreResult<Option<ListedUser>>;
    /// The user with this userName (compared case-insensitively).
    async fn user_by_user_name(&self, scope: &Scope, user_name: &str) -> CoreResult<Option<User>>;
    async fn users_by_external_id(&self, scope: &Scope, external_id: &str)
    -> CoreResult<Vec<User>>;
    /// Users whose normalized primary email (`sso::user_email_key`) is `email_norm`.
    async fn users_by_email(&self, scope: &Scope, email_norm: &str) -> CoreResult<Vec<User>>;
    async fn list_users(&self, scope: &Scope, q: &ListQuery) -> CoreResult<Page<User>>;
    /// `list_users`, each user with its attributes as stored text (see `ListedUser`).
    async fn list_listed_users(&self, scope: &Scope, q: &ListQuery)
    -> CoreResult<Page<ListedUser>>;
    /// Users in creation order with their positions.
    async fn user_page(&self, org: &OrgId, l: &UserListing) -> CoreResult<Vec<(i64, User)>>;
    /// Reads the user inside a write transaction, lets `f` decide the change, writes it.
    async fn update_user<F>(&self, scope: &Scope, id: &str, f: F) -> CoreResult<User>
    where
        F: FnOnce(&User) -> CoreResult<UserChange> + Send;
    /// Deletes the user, its memberships and its sessions; `None` if there was no such user.
    async fn delete_user(
        &self,
        scope: &Scope,
        id: &str,
        expect_version: Option<Expect>,
        event: EventDraft,
    ) -> CoreResult<bool>;
}
