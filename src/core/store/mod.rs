//! The storage interface the core needs. One implementation (`crate::store::SqlStore`)
//! serves SQLite and PostgreSQL; both run the same contract tests.
//!
//! Every method that touches users or groups takes a [`Scope`], so no query can be written
//! without its organization. Each write method is one database transaction that applies the
//! change *and* appends its events: a change never lands without its event, nor the reverse.
#![allow(async_fn_in_trait)]

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

pub use apps::AppStore;
pub use audit::AuditStore;
pub use connections::{ConnectionStore, Identity};
pub use directories::{
    DeprovisionSample, DirectoryStore, RecentRequest, TrafficCount, TrafficStore,
};
pub use domains::DomainStore;
pub use events::EventStore;
pub use groups::{GroupChange, GroupLine, GroupStore, MemberOp, MemberRef, NewGroup};
pub use operators::{
    AdminKeyGrant, AdminKeyInfo, CONSOLE_ADMIN_ROLE, CONSOLE_SSO_ORG_SETTING, CONSOLE_VIEWER_ROLE,
    ConsoleGrant, ConsoleIdentity, ConsoleStore, OperatorStore, SetupLink,
};
pub use orgs::{OrgStats, OrgStore, SettingStore};
pub use roles::{RoleMapping, RoleStore};
pub use sessions::SessionStore;
pub use users::{NewUser, UserChange, UserListing, UserStore};
pub use webhooks::{Attempt, AttemptRecord, Delivery, DeliveryStore, WebhookStore};

/// Everything the server needs from storage, for bounds: `S: Store`. Each concept's trait
/// stays small; a function that needs only one names only that one.
pub trait Store:
    OrgStore
    + SettingStore
    + DirectoryStore
    + TrafficStore
    + UserStore
    + GroupStore
    + DomainStore
    + ConnectionStore
    + AppStore
    + SessionStore
    + EventStore
    + WebhookStore
    + DeliveryStore
    + AuditStore
    + RoleStore
    + OperatorStore
    + ConsoleStore
{
}

impl<T> Store for T where
    T: OrgStore
        + SettingStore
        + DirectoryStore
        + TrafficStore
        + UserStore
        + GroupStore
        + DomainStore
        + ConnectionStore
        + AppStore
        + SessionStore
        + EventStore
        + WebhookStore
        + DeliveryStore
        + AuditStore
        + RoleStore
        + OperatorStore
        + ConsoleStore
{
}

/// The concept traits, brought into scope for their methods: `use crate::core::store::prelude::*;`.
pub mod prelude {
    pub use super::AppStore as _;
    pub use super::AuditStore as _;
    pub use super::ConnectionStore as _;
    pub use super::ConsoleStore as _;
    pub use super::DeliveryStore as _;
    pub use super::DirectoryStore as _;
    pub use super::DomainStore as _;
    pub use super::EventStore as _;
    pub use super::GroupStore as _;
    pub use super::OperatorStore as _;
    pub use super::OrgStore as _;
    pub use super::RoleStore as _;
    pub use super::SessionStore as _;
    pub use super::SettingStore as _;
    pub use super::Store;
    pub use super::TrafficStore as _;
    pub use super::UserStore as _;
    pub use super::WebhookStore as _;
}
