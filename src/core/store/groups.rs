//! Groups and memberships.

use crate::core::audit::AuditDraft;
use crate::core::error::CoreResult;
use crate::core::events::EventDraft;
use crate::core::model::*;
use crate::core::query::{ElemCond, ListQuery, Page};
use serde_json::{Map, Value};

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

#[derive(Debug)]
pub struct GroupChange {
    pub attrs: Map<String, Value>,
    pub member_ops: Vec<MemberOp>,
    pub expect_version: Option<Expect>,
    pub events: Vec<EventDraft>,
    pub audit: Option<AuditDraft>,
}

/// A group as an admin listing shows it.
#[derive(Debug, Clone)]
pub struct GroupLine {
    pub pos: i64,
    pub group: Group,
    pub members: i64,
}

/// Groups of one organization and their members, under a [`Scope`].
pub trait GroupStore: Send + Sync + 'static {
    async fn insert_group(
        &self,
        scope: &Scope,
        group: NewGroup,
        event: EventDraft,
    ) -> CoreResult<Group>;
    async fn get_group(&self, scope: &Scope, id: &str) -> CoreResult<Option<Group>>;
    async fn list_groups(&self, scope: &Scope, q: &ListQuery) -> CoreResult<Page<Group>>;
    /// Groups in creation order whose displayName contains `q` (case-insensitive).
    async fn group_page(
        &self,
        org: &OrgId,
        q: Option<&str>,
        after: i64,
        limit: i64,
    ) -> CoreResult<Vec<GroupLine>>;
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
    async fn member_count(&self, org: &OrgId, group_id: &str) -> CoreResult<i64>;
    /// Members of a group in id order, after `after` (a member id).
    async fn member_page(
        &self,
        org: &OrgId,
        group_id: &str,
        after: Option<&str>,
        limit: i64,
    ) -> CoreResult<Vec<Member>>;
}
