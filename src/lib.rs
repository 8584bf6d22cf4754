//! Roster: a self-hosted user-provisioning server: SCIM 2.0, SSO with JIT, and an OpenID
//! provider for the app.
//! See ARCHITECTURE.md for the map.

pub mod api;
pub mod cli;
pub mod console;
pub mod core;
pub mod delivery;
pub mod dns;
pub mod http;
pub mod metrics;
pub mod oidc;
pub mod outbound;
pub mod scim;
pub mod sso;
pub mod store;
