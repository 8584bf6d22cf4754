//! The store contract, concept by concept, without HTTP: each test opens a fresh store on
//! SQLite and on PostgreSQL (`store_tests!`) and calls the concept's trait directly.
//!
//! What every concept must hold:
//! - **round trip**: what a write stores is what the reads return;
//! - **isolation**: nothing of one organization is read, changed or counted through another;
//! - **one event per change, in its transaction**: a write that returns has appended exactly
//!   its events, visible to the feed at once;
//! - **a failed write appends nothing**: no row, no event, no audit entry.

mod apps;
mod audit;
mod connections;
mod directories;
mod domains;
mod events;
mod groups;
mod operators;
mod orgs;
mod roles;
mod sessions;
mod users;
mod webhooks;

use std::future::Future;

use roster::core::audit::AuditDraft;
use roster::core::error::CoreError;
use roster::core::events::EventKind;
use roster::core::model::{Actor, Expect, Group, Org, OrgId, Provenance, Scope};
use roster::core::resources;
use roster::core::store::prelude::*;
use roster::core::store::{GroupChange, MemberOp, MemberRef};
use roster::core::webhooks::EventRecord;
use roster::store::SqlStore;
use serde_json::{Value, json};

use crate::common::{Backend, TestStore};

/// Declares each test once per backend, on a fresh store: `name::sqlite`, `name::postgres`.
#[macro_export]
macro_rules! store_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let fx = $crate::store::Fx::new($crate::common::Backend::Sqlite).await;
                    super::$name(&fx).await;
                    fx.db.cleanup().await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let fx = $crate::store::Fx::new($crate::common::Backend::Postgres).await;
                    super::$name(&fx).await;
                    fx.db.cleanup().await;
                }
            }
        )*
    };
}

/// A fresh store and the means to watch what its writes append.
pub struct Fx {
    pub db: TestStore,
}

impl Fx {
    pub async fn new(backend: Backend) -> Fx {
        Fx {
            db: TestStore::new(backend).await,
        }
    }

    pub fn store(&self) -> &SqlStore {
        &self.db.store
    }

    /// A new organization.
    pub async fn org(&self, slug: &str) -> Org {
        self.store()
            .create_org(slug, &format!("{slug} Inc."), &Actor::Cli)
            .await
            .expect("create org")
    }

    /// A new organization and the CLI's scope in it.
    pub async fn scope(&self, slug: &str) -> (Org, Scope) {
        let org = self.org(slug).await;
        let scope = Scope {
            org: org.id.clone(),
            actor: Actor::Cli,
        };
        (org, scope)
    }

    /// Every event in the feed, in cursor order.
    pub async fn events(&self) -> Vec<EventRecord> {
        self.store()
            .events_after(0, None, 10_000)
            .await
            .expect("events")
    }

    /// How many audit entries every chain holds together.
    pub async fn audit_len(&self) -> usize {
        let mut n = 0;
        for (chain, _) in self.store().audit_chains().await.expect("chains") {
            n += self
                .store()
                .audit_entries(&chain, None)
                .await
                .expect("entries")
                .len();
        }
        n
    }

    /// Runs a write that must succeed and append exactly `kinds`, in that order, all of
    /// organization `org` (`None`: instance-wide events), plus at least one audit entry.
    pub async fn changes<T, E: std::fmt::Debug>(
        &self,
        org: Option<&OrgId>,
        kinds: &[EventKind],
        write: impl Future<Output = Result<T, E>>,
    ) -> T {
        let before = self.events().await.len();
        let audit = self.audit_len().await;
        let out = write.await.expect("the write succeeds");
        let events = self.events().await;
        let new = &events[before..];
        let got: Vec<&str> = new.iter().map(|e| e.kind.as_str()).collect();
        let want: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        assert_eq!(got, want, "the write's events, visible once it returned");
        for e in new {
            assert_eq!(
                e.org_id.as_deref(),
                org.map(OrgId::as_str),
                "event {} of the write's organization",
                e.kind
            );
            let kind: EventKind = e.kind.parse().expect("a known kind");
            assert_eq!(e.resource_type, kind.resource_type());
        }
        assert!(
            self.audit_len().await > audit,
            "a change leaves an audit entry"
        );
        out
    }

    /// Runs a write that must fail (or change nothing): no event, no audit entry.
    pub async fn appends_nothing<T>(&self, write: impl Future<Output = T>) -> T {
        let before = self.events().await.len();
        let audit = self.audit_len().await;
        let out = write.await;
        assert_eq!(
            self.events().await.len(),
            before,
            "a write that changed nothing appended an event"
        );
        assert_eq!(
            self.audit_len().await,
            audit,
            "a write that changed nothing left an audit entry"
        );
        out
    }

    /// A user created through the core (validated attributes, its event drafted).
    pub async fn user(&self, scope: &Scope, user_name: &str) -> String {
        resources::create_user(
            self.store(),
            scope,
            json!({"userName": user_name}).as_object().expect("object"),
            Provenance::Admin,
        )
        .await
        .expect("create user")
        .id
    }

    /// A group created through the core with these members.
    pub async fn group(&self, scope: &Scope, name: &str, members: &[&str]) -> String {
        let members: Vec<Value> = members.iter().map(|id| json!({"value": id})).collect();
        resources::create_group(
            self.store(),
            scope,
            json!({"displayName": name, "members": members})
                .as_object()
                .expect("object"),
        )
        .await
        .expect("create group")
        .id
    }
}

/// Member references to these ids.
pub fn refs(ids: &[&str]) -> Vec<MemberRef> {
    ids.iter()
        .map(|id| MemberRef {
            id: (*id).to_owned(),
            kind: None,
        })
        .collect()
}

/// A membership change made the way the core makes it: attributes untouched.
pub async fn change_members(
    s: &SqlStore,
    scope: &Scope,
    group: &str,
    op: MemberOp,
    expect: Option<Expect>,
) -> Result<Group, CoreError> {
    s.update_group(scope, group, move |cur| {
        Ok(GroupChange {
            attrs: cur.attrs.clone(),
            member_ops: vec![op],
            expect_version: expect,
            events: Vec::new(),
            audit: Some(AuditDraft::new(
                "group.updated",
                "Group",
                &cur.id,
                json!({}),
            )),
        })
    })
    .await
}

/// The error must be this kind.
pub fn is_uniqueness<T: std::fmt::Debug>(r: Result<T, CoreError>) {
    match r {
        Err(CoreError::Uniqueness(_)) => {}
        other => panic!("expected a uniqueness error, got {other:?}"),
    }
}
