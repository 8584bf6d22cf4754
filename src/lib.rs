//! Roster: a self-hosted user-provisioning server (SCIM 2.0 today; SSO with JIT next).
//! See ARCHITECTURE.md for the map.

pub mod cli;
pub mod core;
pub mod http;
pub mod scim;
pub mod store;
