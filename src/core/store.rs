//! The storage interface the core needs. One implementation (`crate::store::SqlStore`)
//! serves SQLite and PostgreSQL; both run the same contract tests.
//!
//! Every method that touches users or groups takes a [`Scope`], so no query can be written
//! without its organization. Each write method is one database transaction that applies the
//! change *and* appends its events: a change never lands without its event, nor the reverse.
#![allow(async_fn_in_trait)]

use serde_json::{Map, Value};

use super::audit::AuditDraft;
use super::error::CoreResult;
use super::events::EventDraft;
use super::keys::SigningKeyRecord;
use super::model::*;
use super::query::{ElemCond, ListQuery, Page};
use super::sessions::{App, Consumed, LoginRequest, NewSession, TokenRow, TokenState};
use super::sso::Connection;

/// A user about to be inserted; the core has validated `attrs` and chosen `id`.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: String,
    pub attrs: Map<String, Value>,
    pub provenance: Provenance,
}

/// A group about to be inserted, with its initial members.
#[derive(Debug, Clone)]
pub struct NewGroup {
    pub id: String,
    pub attrs: Map<String, Value>,
    pub members: Vec<MemberRef>,
}

/// A reference to a prospective member: its id, and its type if the client said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRef {
    pub id: String,
    pub kind: Option<MemberType>,
}

/// A membership change, applied as a set operation in SQL (never by rewriting the list).
#[derive(Debug, Clone)]
pub enum MemberOp {
    /// Adds members; existing ones are left alone. Unknown ids are an error.
    Add(Vec<MemberRef>),
    /// Removes the members matching the condition (sub-attributes `value`, `type`).
    RemoveWhere(ElemCond),
    /// Removes these member ids.
    Remove(Vec<String>),
    RemoveAll,
    /// Makes these the members: removes the others, adds the missing (PUT).
    Replace(Vec<MemberRef>),
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

#[derive(Debug)]
pub struct GroupChange {
    pub attrs: Map<String, Value>,
    pub member_ops: Vec<MemberOp>,
    pub expect_version: Option<Expect>,
    pub events: Vec<EventDraft>,
    pub audit: Option<AuditDraft>,
}

pub trait Store: Send + Sync + 'static {
    async fn create_org(&self, slug: &str, name: &str, actor: &Actor) -> CoreResult<Org>;
    async fn list_orgs(&self) -> CoreResult<Vec<Org>>;
    async fn org_by_slug(&self, slug: &str) -> CoreResult<Option<Org>>;

    async fn create_directory(&self, org: &Org, name: &str, actor: &Actor)
    -> CoreResult<Directory>;
    async fn list_directories(&self, org: Option<&OrgId>) -> CoreResult<Vec<Directory>>;
    async fn directory(&self, id: &str) -> CoreResult<Option<Directory>>;
    /// Stores a new token's hash (never the token).
    async fn add_token(
        &self,
        directory: &Directory,
        token_hash: &str,
        read_only: bool,
        actor: &Actor,
    ) -> CoreResult<TokenInfo>;
    async fn revoke_token(
        &self,
        directory: &Directory,
        token_id: &str,
        actor: &Actor,
    ) -> CoreResult<bool>;
    async fn list_tokens(&self, directory_id: &str) -> CoreResult<Vec<TokenInfo>>;
    /// The grant of an unrevoked token, by the hash of the presented token.
    async fn token_grant(&self, token_hash: &str) -> CoreResult<Option<TokenGrant>>;

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
    async fn list_users(&self, scope: &Scope, q: &ListQuery) -> CoreResult<Page<User>>;
    /// `list_users`, each user with its attributes as stored text (see `ListedUser`).
    async fn list_listed_users(&self, scope: &Scope, q: &ListQuery)
    -> CoreResult<Page<ListedUser>>;
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

    async fn insert_group(
        &self,
        scope: &Scope,
        group: NewGroup,
        event: EventDraft,
    ) -> CoreResult<Group>;
    async fn get_group(&self, scope: &Scope, id: &str) -> CoreResult<Option<Group>>;
    async fn list_groups(&self, scope: &Scope, q: &ListQuery) -> CoreResult<Page<Group>>;
    async fn update_group<F>(&self, scope: &Scope, id: &str, f: F) -> CoreResult<Group>
    where
        F: FnOnce(&Group) -> CoreResult<GroupChange> + Send;
    /// A membership-only change of group `id` made without reading the group first, when
    /// the store can make one: `Ok(Some(version))`, the group's new version, once durable.
    /// `Ok(None)` when it cannot (another backend, an added member that is not a user of
    /// the organization, a group that maps to roles, no such group, another version): then
    /// nothing changed, and the caller makes the change with `update_group`, which gives
    /// it its answer. Its effects are `update_group`'s for the same operations, with
    /// `audit` as the audit entry.
    async fn try_change_members(
        &self,
        scope: &Scope,
        id: &str,
        ops: &[MemberOp],
        expect_version: Option<Expect>,
        audit: AuditDraft,
    ) -> CoreResult<Option<i64>>;
    async fn delete_group(
        &self,
        scope: &Scope,
        id: &str,
        expect_version: Option<Expect>,
        event: EventDraft,
    ) -> CoreResult<bool>;
    async fn group_members(&self, scope: &Scope, group_id: &str) -> CoreResult<Vec<Member>>;
}

pub use super::domains::Domain;

/// An IdP identity linked to a user: which connection and subject, and the email that
/// connection vouched for at its latest login (`None`: it vouched for none it serves).
#[derive(Debug, Clone)]
pub struct Identity {
    pub connection_id: String,
    pub subject: String,
    pub verified_email: Option<String>,
}

/// Storage for SSO: domains, connections, identities, apps, signing keys, logins in flight,
/// sessions and tokens.
pub trait SsoStore: Send + Sync + 'static {
    /// The stored value of a setting, storing `value` first if there was none.
    async fn ensure_setting(&self, name: &str, value: &str) -> CoreResult<String>;

    async fn org_by_id(&self, id: &str) -> CoreResult<Option<Org>>;
    /// Adds a pending claim of `domain` (normalized) with its challenge; `Uniqueness` when
    /// this organization claimed it already.
    async fn add_domain(
        &self,
        org: &Org,
        domain: &str,
        challenge: &str,
        actor: &Actor,
    ) -> CoreResult<()>;
    /// Claimed domains (every state), of one organization or all.
    async fn list_domains(&self, org: Option<&OrgId>) -> CoreResult<Vec<Domain>>;
    /// The organization holding `domain` verified.
    async fn org_by_domain(&self, domain: &str) -> CoreResult<Option<Org>>;
    /// The organization's verified domains.
    async fn verified_domains(&self, org: &OrgId) -> CoreResult<Vec<String>>;
    /// Marks a pending claim verified (`by`: dns or operator) with its event; `Uniqueness`
    /// when another organization holds the domain verified.
    async fn mark_domain_verified(
        &self,
        org: &Org,
        domain: &str,
        by: &str,
        actor: &Actor,
        event: EventDraft,
    ) -> CoreResult<()>;
    /// Records a DNS check of a pending claim and why it failed.
    /// Deletes the organization's claim of `domain` (pending or verified) with `event`;
    /// false when it had none.
    async fn remove_domain(
        &self,
        org: &Org,
        domain: &str,
        actor: &Actor,
        event: EventDraft,
    ) -> CoreResult<bool>;
    async fn record_domain_check(
        &self,
        org: &Org,
        domain: &str,
        error: Option<&str>,
    ) -> CoreResult<()>;
    async fn org_has_directory(&self, org: &OrgId) -> CoreResult<bool>;

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
    async fn users_by_external_id(&self, scope: &Scope, external_id: &str)
    -> CoreResult<Vec<User>>;
    /// Users whose normalized primary email (`sso::user_email_key`) is `email_norm`.
    async fn users_by_email(&self, scope: &Scope, email_norm: &str) -> CoreResult<Vec<User>>;
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

    async fn insert_app(&self, app: &App, actor: &Actor) -> CoreResult<()>;
    async fn app(&self, id: &str) -> CoreResult<Option<App>>;
    async fn list_apps(&self) -> CoreResult<Vec<App>>;

    /// Stores a new signing key and retires the others, in one transaction.
    async fn insert_signing_key(&self, key: &SigningKeyRecord) -> CoreResult<()>;
    /// All signing keys, newest first.
    async fn signing_keys(&self) -> CoreResult<Vec<SigningKeyRecord>>;

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
    async fn revoke_token(&self, hash: &str) -> CoreResult<()>;
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
}

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

/// One webhook delivery (an event for an endpoint) and how it went.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub endpoint_id: String,
    pub event_id: i64,
    pub status: String,
    pub attempts: i64,
    pub first_attempt_at: String,
    pub last_attempt_at: String,
    pub next_attempt_at: Option<String>,
    pub response_status: Option<i64>,
    pub last_error: Option<String>,
}

/// The outcome of one delivery attempt, recorded under the endpoint's lease.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub event_id: i64,
    pub org_id: Option<String>,
    pub at: String,
    pub response_status: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
    /// `delivered`, `pending` (retry at `next_attempt_at`) or `failed` (retries exhausted).
    pub status: &'static str,
    pub next_attempt_at: Option<String>,
}

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

/// Storage for lifecycle events: the feed, webhooks, the audit log, role mappings, admin
/// keys and what the drift report reads.
pub trait LifecycleStore: Send + Sync + 'static {
    /// Events after `after` in cursor order, of one organization or all.
    async fn events_after(
        &self,
        after: i64,
        org: Option<&OrgId>,
        limit: i64,
    ) -> CoreResult<Vec<crate::core::webhooks::EventRecord>>;
    /// The newest event's cursor (0 when there is none).
    async fn last_event_cursor(&self) -> CoreResult<i64>;

    async fn insert_webhook(
        &self,
        ep: &crate::core::webhooks::Endpoint,
        actor: &Actor,
    ) -> CoreResult<()>;
    async fn list_webhooks(
        &self,
        org: Option<&OrgId>,
    ) -> CoreResult<Vec<crate::core::webhooks::Endpoint>>;
    async fn disable_webhook(&self, id: &str, actor: &Actor) -> CoreResult<bool>;
    /// Encrypts the URL of an endpoint stored before URLs were (`url_enc` empty): `shown`
    /// replaces the plaintext. A storage migration: no event, no audit entry.
    async fn seal_webhook_url(&self, id: &str, shown: &str, url_enc: &str) -> CoreResult<()>;
    /// Whether any endpoint is due and unleased with events to deliver (a read: nodes check
    /// this before taking leases, which is a write).
    async fn webhooks_due(&self, now: &str) -> CoreResult<bool>;
    /// Leases up to `limit` enabled endpoints that are due and have events after their
    /// cursor and no live lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL).
    async fn lease_webhooks(
        &self,
        node: &str,
        now: &str,
        until: &str,
        limit: i64,
    ) -> CoreResult<Vec<crate::core::webhooks::Endpoint>>;
    /// Records attempts and moves the endpoint's cursor and next attempt, only while `node`
    /// still holds the lease (extended to `until`); `false` if the lease was lost.
    async fn settle_webhook(
        &self,
        endpoint_id: &str,
        node: &str,
        attempts: &[Attempt],
        cursor: i64,
        next_attempt_at: &str,
        until: &str,
    ) -> CoreResult<bool>;
    async fn release_webhook(&self, endpoint_id: &str, node: &str) -> CoreResult<()>;
    /// Gives up every lease `node` holds.
    async fn release_webhooks(&self, node: &str) -> CoreResult<()>;
    /// Records an operator's resend of one event (outside the endpoint's order and lease).
    async fn record_resend(
        &self,
        endpoint_id: &str,
        attempt: &Attempt,
        actor: &Actor,
    ) -> CoreResult<()>;
    /// How many attempts an endpoint has made at an event so far.
    async fn delivery_attempts(&self, endpoint_id: &str, event_id: i64) -> CoreResult<i64>;
    /// Per enabled endpoint: id, cursor and failed deliveries (for `/metrics`).
    async fn webhook_stats(&self) -> CoreResult<Vec<(String, i64, i64)>>;
    /// An endpoint's deliveries, newest first.
    async fn deliveries(
        &self,
        endpoint_id: &str,
        status: Option<&str>,
        limit: i64,
    ) -> CoreResult<Vec<Delivery>> {
        self.deliveries_before(endpoint_id, status, None, limit)
            .await
    }
    /// An endpoint's deliveries of events before cursor `before`, newest first.
    async fn deliveries_before(
        &self,
        endpoint_id: &str,
        status: Option<&str>,
        before: Option<i64>,
        limit: i64,
    ) -> CoreResult<Vec<Delivery>>;

    /// Audit chains, with their anchors (set by retention).
    async fn audit_chains(&self) -> CoreResult<Vec<(String, Option<crate::core::audit::Anchor>)>>;
    /// A chain's entries in order, from `since` (a time) if given.
    async fn audit_entries(
        &self,
        chain: &str,
        since: Option<&str>,
    ) -> CoreResult<Vec<crate::core::audit::StoredEntry>>;
    /// Deletes a chain's entries older than `before`, anchoring the chain at the last one.
    async fn prune_audit(&self, chain: &str, before: &str) -> CoreResult<u64>;

    async fn insert_role_mapping(&self, m: &RoleMapping, actor: &Actor) -> CoreResult<()>;
    async fn delete_role_mapping(&self, org: &OrgId, id: &str, actor: &Actor) -> CoreResult<bool>;
    async fn role_mappings(&self, org: &OrgId) -> CoreResult<Vec<RoleMapping>>;
    /// The roles a user holds through mappings.
    async fn user_roles(&self, scope: &Scope, user_id: &str) -> CoreResult<Vec<String>>;

    async fn insert_admin_key(
        &self,
        info: &AdminKeyInfo,
        key_hash: &str,
        actor: &Actor,
    ) -> CoreResult<()>;
    async fn admin_key_grant(&self, key_hash: &str) -> CoreResult<Option<AdminKeyGrant>>;
    async fn list_admin_keys(&self) -> CoreResult<Vec<AdminKeyInfo>>;
    async fn revoke_admin_key(&self, id: &str, actor: &Actor) -> CoreResult<bool>;

    async fn add_traffic(&self, counts: &[TrafficCount]) -> CoreResult<()>;
    async fn drift_report(
        &self,
        org: &Org,
        stale_days: i64,
        now: &str,
    ) -> CoreResult<crate::core::report::DriftReport>;
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

/// A group as an admin listing shows it.
#[derive(Debug, Clone)]
pub struct GroupLine {
    pub pos: i64,
    pub group: Group,
    pub members: i64,
}

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

/// One attempt at delivering an event to an endpoint.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub attempt: i64,
    pub at: String,
    pub response_status: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
    pub node: String,
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

/// What the admin API, the console and the setup page read and write beyond the other
/// traits: keyset listings, timelines, recent SCIM traffic, console sessions, setup links.
pub trait AdminStore: Send + Sync + 'static {
    /// Organizations in slug order, after `after` (a slug).
    async fn org_page(&self, after: Option<&str>, limit: i64) -> CoreResult<Vec<Org>>;
    async fn org_stats(&self, org: &OrgId) -> CoreResult<OrgStats>;
    /// Users in creation order with their positions.
    async fn user_page(&self, org: &OrgId, l: &UserListing) -> CoreResult<Vec<(i64, User)>>;
    /// Groups in creation order whose displayName contains `q` (case-insensitive).
    async fn group_page(
        &self,
        org: &OrgId,
        q: Option<&str>,
        after: i64,
        limit: i64,
    ) -> CoreResult<Vec<GroupLine>>;
    async fn member_count(&self, org: &OrgId, group_id: &str) -> CoreResult<i64>;
    /// Members of a group in id order, after `after` (a member id).
    async fn member_page(
        &self,
        org: &OrgId,
        group_id: &str,
        after: Option<&str>,
        limit: i64,
    ) -> CoreResult<Vec<Member>>;
    /// A resource's events, newest first, before cursor `before` (when given).
    async fn resource_events(
        &self,
        org: &OrgId,
        resource_id: &str,
        before: Option<i64>,
        limit: i64,
    ) -> CoreResult<Vec<crate::core::webhooks::EventRecord>>;
    /// Every attempt at delivering event `event_id` to the endpoint, in order.
    async fn delivery_attempt_log(
        &self,
        endpoint_id: &str,
        event_id: i64,
    ) -> CoreResult<Vec<AttemptRecord>>;
    /// A page of an audit chain in order: entries after `after_seq`, at or after `since`.
    async fn audit_page(
        &self,
        chain: &str,
        since: Option<&str>,
        after_seq: i64,
        limit: i64,
    ) -> CoreResult<Vec<crate::core::audit::StoredEntry>>;
    /// Deletes up to `batch` of the oldest events created before `before` that every enabled
    /// webhook endpoint has settled; the number deleted.
    async fn prune_events(&self, before: &str, batch: i64) -> CoreResult<u64>;
    /// Deletes up to `batch` rows of each kind that ended before `before`: OIDC tokens
    /// expired whose session ended too (so a replayed code or refresh token of a live
    /// session is still recognized, and its session revoked), sessions expired or revoked
    /// with no token left, setup links expired. The number deleted.
    async fn sweep_ended(&self, before: &str, batch: i64) -> CoreResult<u64>;
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
    /// A deployment setting (`settings` table), if set.
    async fn setting(&self, name: &str) -> CoreResult<Option<String>>;
    /// Sets (or with `None` removes) a deployment setting.
    async fn set_setting(&self, name: &str, value: Option<&str>, actor: &Actor) -> CoreResult<()>;
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
