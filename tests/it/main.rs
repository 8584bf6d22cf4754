//! Roster's test suite: one binary (fast to build). Each test runs against a real server on
//! port 0, once on SQLite and once on PostgreSQL (`backend_tests!`).

mod admin_api;
mod architecture;
mod browser;
mod cli;
mod common;
mod console;
mod event_order;
mod first_run;
mod guards;
mod lifecycle;
mod metrics;
mod ops;
mod pg_cluster;
mod pg_failure;
mod schema;
mod scim_bulk;
mod scim_core;
mod scim_filter;
mod scim_limits;
mod scim_patch;
mod scim_quirks;
mod sso_oidc;
mod sso_oidc_attacks;
mod sso_saml;
mod store;
mod trust;
