//! Events: the outbox rows every change appends in its own transaction, and their kinds.
//!
//! [`EventKind`] is the one list of event types. Its string (`as_str`, `FromStr`, serde) is
//! what event rows store, the feed and webhooks send as `type`, and webhook patterns
//! (`user.*`) match; docs/events.md documents each (a test holds the two together).

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

/// Defines [`EventKind`] from one list: each variant with its string, so `as_str`,
/// `FromStr` and [`EventKind::ALL`] cannot disagree.
macro_rules! event_kinds {
    ($($(#[$doc:meta])* $variant:ident = $s:literal => $resource:literal,)*) => {
        /// The type of an event. Each variant's doc names what its `data` holds.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventKind {
            $($(#[$doc])* $variant,)*
        }

        impl EventKind {
            /// Every kind, in the order docs/events.md lists them.
            pub const ALL: &'static [EventKind] = &[$(EventKind::$variant,)*];

            /// The stored and wire string, e.g. `user.created`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(EventKind::$variant => $s,)*
                }
            }

            /// The type of the resource the event is about (the event's `resource.type`).
            pub const fn resource_type(self) -> &'static str {
                match self {
                    $(EventKind::$variant => $resource,)*
                }
            }
        }
    };
}

event_kinds! {
    /// `userName`, `active`, `provenance` (`scim`/`jit`/`admin`), `attributes`.
    UserCreated = "user.created" => "User",
    /// `userName`, `changes`: `{attribute: {before, after}}`.
    UserUpdated = "user.updated" => "User",
    /// `userName`.
    UserDeactivated = "user.deactivated" => "User",
    /// `userName`.
    UserReactivated = "user.reactivated" => "User",
    /// `userName`, `from` (`jit`): a directory took over a JIT-created account.
    UserAdopted = "user.adopted" => "User",
    /// Nothing (`{}`).
    UserDeleted = "user.deleted" => "User",
    /// `displayName`, `attributes`, `members` (a count).
    GroupCreated = "group.created" => "Group",
    /// `displayName`, `changes`: `{attribute: {before, after}}`.
    GroupUpdated = "group.updated" => "Group",
    /// Nothing (`{}`); no per-member events for its own members.
    GroupDeleted = "group.deleted" => "Group",
    /// `group_id`, `member_id`, `member_type` (`User`/`Group`).
    GroupMemberAdded = "group.member_added" => "Group",
    /// `group_id`, `member_id`, `member_type` (`User`/`Group`).
    GroupMemberRemoved = "group.member_removed" => "Group",
    /// `user_id`, `role`.
    RoleAssigned = "role.assigned" => "User",
    /// `user_id`, `role`.
    RoleUnassigned = "role.unassigned" => "User",
    /// `user_id`, `app_id`, `connection_id`.
    SessionCreated = "session.created" => "Session",
    /// `user_id`, `reason`.
    SessionRevoked = "session.revoked" => "Session",
    /// `slug`, `name`.
    OrganizationCreated = "organization.created" => "Organization",
    /// `name`.
    DirectoryCreated = "directory.created" => "Directory",
    /// `token_id`, `read_only`.
    DirectoryTokenCreated = "directory.token_created" => "Directory",
    /// `token_id`.
    DirectoryTokenRevoked = "directory.token_revoked" => "Directory",
    /// `domain`, `state` (`pending`).
    DomainAdded = "domain.added" => "Domain",
    /// `domain`, `verified_by` (`dns`/`operator`).
    DomainVerified = "domain.verified" => "Domain",
    /// `domain`, `state` (what it was: `pending` or `verified`).
    DomainRemoved = "domain.removed" => "Domain",
    /// `protocol`, `idp`, `name`.
    ConnectionCreated = "connection.created" => "Connection",
    /// The settings that changed (`private_networks`).
    ConnectionUpdated = "connection.updated" => "Connection",
    /// `name`, `redirect_uris`.
    AppCreated = "app.created" => "App",
    /// `kid`, `alg`.
    SigningKeyRotated = "signing_key.rotated" => "SigningKey",
    /// `url` (redacted), `event_types`.
    WebhookCreated = "webhook.created" => "Webhook",
    /// `url` (redacted).
    WebhookDisabled = "webhook.disabled" => "Webhook",
    /// `name`, `read_only`.
    AdminKeyCreated = "admin_key.created" => "AdminKey",
    /// `name`.
    AdminKeyRevoked = "admin_key.revoked" => "AdminKey",
    /// `match_on`, `group`, `role`.
    RoleMappingCreated = "role_mapping.created" => "RoleMapping",
    /// `match_on`, `group`, `role`.
    RoleMappingDeleted = "role_mapping.deleted" => "RoleMapping",
}

impl EventKind {
    /// The kinds that end a user's access: deprovisioning latency is measured to them.
    pub const DEPROVISIONING: [EventKind; 2] = [EventKind::UserDeactivated, EventKind::UserDeleted];

    /// Whether this kind ends a user's access ([`EventKind::DEPROVISIONING`]).
    pub fn is_deprovisioning(self) -> bool {
        Self::DEPROVISIONING.contains(&self)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no [`EventKind`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("\"{0}\" is not an event type")]
pub struct UnknownEventKind(pub String);

impl FromStr for EventKind {
    type Err = UnknownEventKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventKind::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownEventKind(s.to_owned()))
    }
}

impl serde::Serialize for EventKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for EventKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An event the core wants recorded with a change. The store adds org, actor, cursor and time.
#[derive(Debug, Clone)]
pub struct EventDraft {
    pub kind: EventKind,
    pub resource_id: String,
    pub data: Value,
}

impl EventDraft {
    pub fn new(kind: EventKind, id: &str, data: Value) -> Self {
        EventDraft {
            kind,
            resource_id: id.to_owned(),
            data,
        }
    }

    /// The type of the resource the event is about.
    pub fn resource_type(&self) -> &'static str {
        self.kind.resource_type()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for k in EventKind::ALL {
            assert!(seen.insert(k.as_str()), "{k} twice");
            assert_eq!(k.as_str().parse::<EventKind>(), Ok(*k));
            let json = serde_json::to_string(k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
            assert_eq!(serde_json::from_str::<EventKind>(&json).unwrap(), *k);
        }
        assert_eq!(
            "user.nope".parse::<EventKind>(),
            Err(UnknownEventKind("user.nope".into()))
        );
        assert!(serde_json::from_str::<EventKind>("\"User.Created\"").is_err());
    }

    #[test]
    fn kinds_are_family_dot_name() {
        for k in EventKind::ALL {
            let (family, name) = k.as_str().split_once('.').unwrap();
            let ok =
                |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c == '_');
            assert!(ok(family) && ok(name), "{k}");
            // So that every kind is one a webhook pattern can name.
            assert!(
                crate::core::webhooks::parse_patterns(k.as_str()).is_ok(),
                "{k}"
            );
        }
    }
}
