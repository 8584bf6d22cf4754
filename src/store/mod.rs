//! The storage layer: one implementation of [`crate::core::store::Store`] over sqlx's `Any`
//! driver, serving SQLite (embedded, the default) and PostgreSQL. The SQL is shared; how
//! each backend executes it (pools, migrations, group commit, point reads, the places
//! where the dialects differ) is the `engine`'s, and only the engine asks which backend
//! it is on. The other files are repositories: what to read and write, by concept.

mod apps;
mod audit;
mod connections;
mod directories;
mod domains;
mod engine;
mod events;
mod filter_sql;
mod groups;
mod operators;
mod orgs;
mod resources;
mod roles;
mod sessions;
mod sql_store;
mod users;
mod webhooks;

pub use engine::seal::{BACKLOG_CAP as SEAL_BACKLOG_CAP, Backlog as SealBacklog};
pub use engine::{StoreLocation, open};
pub use sql_store::SqlStore;

use engine::{Dialect, Elem, db_err};
