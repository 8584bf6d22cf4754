//! Domain records: organizations, directories, tokens, users, groups.

use serde_json::{Map, Value};

use super::error::{CoreError, CoreResult};

/// An organization's id. Only the store makes one (from a row it read), so an
/// organization-scoped query can only be asked for an organization that exists.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrgId(String);

impl OrgId {
    /// For the storage layer only: wraps an id read from the database.
    pub fn from_store(id: String) -> Self {
        OrgId(id)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Who is acting; recorded on every event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A SCIM client authenticated by one of a directory's tokens.
    Directory {
        directory_id: String,
        token_id: String,
    },
    /// The `roster` command line on the server's machine.
    Cli,
    /// A login through an IdP connection (JIT provisioning).
    Connection { connection_id: String },
    /// An application using Roster as its OpenID provider (token revocation).
    App { app_id: String },
    /// A caller of the admin API, by its key.
    AdminKey { key_id: String },
    /// An operator signed in to the console through the operators' organization's SSO.
    ConsoleUser { user_id: String },
    /// A customer's IT admin through a setup link (`roster org setup-link`).
    SetupLink { link_id: String },
    /// Roster itself (webhook delivery bookkeeping, retention).
    System,
}

impl Actor {
    pub fn kind(&self) -> &'static str {
        match self {
            Actor::Directory { .. } => "directory",
            Actor::Cli => "cli",
            Actor::Connection { .. } => "connection",
            Actor::App { .. } => "app",
            Actor::AdminKey { .. } => "admin_key",
            Actor::ConsoleUser { .. } => "console_user",
            Actor::SetupLink { .. } => "setup_link",
            Actor::System => "system",
        }
    }

    /// The actor in full, as events and audit entries record it.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Actor::Directory {
                directory_id,
                token_id,
            } => json!({"type": "directory", "directory_id": directory_id, "token_id": token_id}),
            Actor::Cli => json!({"type": "cli"}),
            Actor::Connection { connection_id } => {
                json!({"type": "connection", "connection_id": connection_id})
            }
            Actor::App { app_id } => json!({"type": "app", "app_id": app_id}),
            Actor::AdminKey { key_id } => json!({"type": "admin_key", "admin_key_id": key_id}),
            Actor::ConsoleUser { user_id } => json!({"type": "console_user", "user_id": user_id}),
            Actor::SetupLink { link_id } => json!({"type": "setup_link", "setup_link_id": link_id}),
            Actor::System => json!({"type": "system"}),
        }
    }
    pub fn id(&self) -> String {
        match self {
            Actor::Directory { token_id, .. } => token_id.clone(),
            Actor::Cli => String::new(),
            Actor::Connection { connection_id } => connection_id.clone(),
            Actor::App { app_id } => app_id.clone(),
            Actor::AdminKey { key_id } => key_id.clone(),
            Actor::ConsoleUser { user_id } => user_id.clone(),
            Actor::SetupLink { link_id } => link_id.clone(),
            Actor::System => String::new(),
        }
    }
}

/// Every organization-scoped operation carries one: the organization and the actor.
#[derive(Debug, Clone)]
pub struct Scope {
    pub org: OrgId,
    pub actor: Actor,
}

impl Scope {
    pub fn directory_id(&self) -> Option<&str> {
        match &self.actor {
            Actor::Directory { directory_id, .. } => Some(directory_id),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Org {
    pub id: OrgId,
    pub slug: String,
    pub name: String,
    pub created_at: String,
}

#[derive(Debug, Clone)]
pub struct Directory {
    pub id: String,
    pub org_id: OrgId,
    pub org_slug: String,
    pub name: String,
    pub created_at: String,
}

/// A bearer token as found by its hash.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    pub token_id: String,
    pub directory_id: String,
    pub org: OrgId,
    pub read_only: bool,
}

#[derive(Debug, Clone)]
pub struct TokenInfo {
    pub id: String,
    pub directory_id: String,
    pub read_only: bool,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

/// How a user came to exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provenance {
    Scim,
    Jit,
    Admin,
}

impl Provenance {
    pub fn as_str(self) -> &'static str {
        match self {
            Provenance::Scim => "scim",
            Provenance::Jit => "jit",
            Provenance::Admin => "admin",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "scim" => Some(Provenance::Scim),
            "jit" => Some(Provenance::Jit),
            "admin" => Some(Provenance::Admin),
            _ => None,
        }
    }
}

/// Server-maintained facts about a resource (`meta`).
#[derive(Debug, Clone)]
pub struct Meta {
    pub version: i64,
    pub created: String,
    pub last_modified: String,
}

/// A write's precondition on the version of the resource it changes (SCIM's `If-Match`, a
/// `/Bulk` operation's `version`, as the adapter read them; no precondition is `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The write applies only while the resource is at this version.
    Version(i64),
    /// The client named no version this server issued (a stale or foreign entity tag):
    /// the precondition holds for no version.
    Unissued,
}

impl Expect {
    /// Whether the precondition holds for a resource at version `current`.
    pub fn check(self, current: i64) -> CoreResult<()> {
        match self {
            Expect::Version(v) if v == current => Ok(()),
            Expect::Version(v) => Err(CoreError::VersionMismatch(format!(
                "the resource was changed since version {v}"
            ))),
            Expect::Unissued => Err(CoreError::VersionMismatch(
                "the entity tag names no version of this resource".into(),
            )),
        }
    }
}

/// A stored user. `attrs` is the schema-normalized attribute document (see `core::attrs`).
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub attrs: Map<String, Value>,
    pub meta: Meta,
    pub provenance: Provenance,
    pub last_directory_sync_at: Option<String>,
    pub last_login_at: Option<String>,
    /// The groups the user is a direct member of (read with the user, in one query).
    pub groups: Vec<GroupRef>,
    /// The app roles the user holds through group-to-role mappings (read with the user).
    pub roles: Vec<String>,
}

/// A user as lists show it without projection: its stored attributes still as JSON text per
/// top-level attribute, so a page is rendered by copying them instead of rebuilding every
/// document (`scim::wire::write_listed_user`).
#[derive(Debug)]
pub struct ListedUser {
    pub id: String,
    pub attrs: std::collections::BTreeMap<String, Box<serde_json::value::RawValue>>,
    pub meta: Meta,
    pub groups: Vec<GroupRef>,
    pub roles: Vec<String>,
}

/// A group as seen from one of its members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRef {
    pub id: String,
    pub display: String,
}

impl User {
    pub fn user_name(&self) -> &str {
        self.attrs
            .get("userName")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
    pub fn active(&self) -> bool {
        self.attrs
            .get("active")
            .and_then(Value::as_bool)
            .unwrap_or(true)
    }
}

/// A stored group, without its members (those live in their own table).
#[derive(Debug, Clone)]
pub struct Group {
    pub id: String,
    pub attrs: Map<String, Value>,
    pub meta: Meta,
}

impl Group {
    pub fn display_name(&self) -> &str {
        self.attrs
            .get("displayName")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberType {
    User,
    Group,
}

impl MemberType {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberType::User => "User",
            MemberType::Group => "Group",
        }
    }
}

/// One member of a group as read back.
#[derive(Debug, Clone)]
pub struct Member {
    pub id: String,
    pub kind: MemberType,
    pub display: Option<String>,
}
