//! The engine: how SQLite and PostgreSQL execute Roster's SQL. Pools and migrations
//! (`open`), the dialect's spelling of JSON access, string functions and row locks
//! ([`Dialect`]), bound arguments ([`Arg`]), write batches (`batch`), the SQLite group
//! commit and PostgreSQL's write transactions and group turns (`write`), coalesced point
//! reads (`point_reads`), connections lent without the pool's pings (`lent`), and event
//! positions (`positions`). The repositories beside it (`store/*.rs`) say *what* to read
//! and write; only this module asks which backend it is on.

pub(super) mod batch;
pub(super) mod combine;
mod exec;
mod hosts;
pub(super) mod lent;
pub(super) mod point_reads;
pub(super) mod positions;
pub(super) mod seal;
pub(super) mod write;

pub(super) use exec::Engine;

use super::SqlStore;

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, ConnectOptions, Connection, Executor};

use sqlx::Any;
use sqlx::any::AnyArguments;
use sqlx::query::Query;

use crate::core::error::StoreError;

/// A bound argument.
#[derive(Debug, Clone)]
pub enum Arg {
    Str(String),
    I64(i64),
    F64(f64),
    /// A NULL (bound as a text NULL).
    Null,
    /// A NULL of an integer column (PostgreSQL refuses a text NULL there).
    NullI64,
}

impl Arg {
    pub fn opt(s: Option<String>) -> Arg {
        s.map_or(Arg::Null, Arg::Str)
    }
    pub fn opt_i64(n: Option<i64>) -> Arg {
        n.map_or(Arg::NullI64, Arg::I64)
    }
}

type Q<'q> = Query<'q, Any, AnyArguments<'q>>;

pub(in crate::store) fn bind_all<'q>(mut q: Q<'q>, args: &'q [Arg]) -> Q<'q> {
    for a in args {
        q = match a {
            Arg::Str(s) => q.bind(s.as_str()),
            Arg::I64(i) => q.bind(*i),
            Arg::F64(f) => q.bind(*f),
            Arg::Null => q.bind(None::<String>),
            Arg::NullI64 => q.bind(None::<i64>),
        };
    }
    q
}

/// What a column of a `Dialect::json_rows` element holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem {
    Text,
    Number,
    Json,
}

/// Which SQL dialect a store speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// Where the data lives.
#[derive(Debug, Clone)]
pub enum StoreLocation {
    /// An embedded SQLite file `roster.db` in this directory.
    SqliteDir(PathBuf),
    /// A PostgreSQL URL, optionally confined to one schema (tests give each run its own).
    Postgres { url: String, schema: Option<String> },
}

const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "sso",
        include_str!("../../../migrations/sqlite/0002_sso.sql"),
    ),
    (
        3,
        "events",
        include_str!("../../../migrations/sqlite/0003_events.sql"),
    ),
    (
        4,
        "console",
        include_str!("../../../migrations/sqlite/0004_console.sql"),
    ),
    (
        5,
        "retention",
        include_str!("../../../migrations/sqlite/0005_retention.sql"),
    ),
    (
        6,
        "trust",
        include_str!("../../../migrations/sqlite/0006_trust.sql"),
    ),
    (
        7,
        "secret_urls",
        include_str!("../../../migrations/sqlite/0007_secret_urls.sql"),
    ),
];
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "sso",
        include_str!("../../../migrations/postgres/0002_sso.sql"),
    ),
    (
        3,
        "events",
        include_str!("../../../migrations/postgres/0003_events.sql"),
    ),
    (
        4,
        "console",
        include_str!("../../../migrations/postgres/0004_console.sql"),
    ),
    (
        5,
        "retention",
        include_str!("../../../migrations/postgres/0005_retention.sql"),
    ),
    (
        6,
        "trust",
        include_str!("../../../migrations/postgres/0006_trust.sql"),
    ),
    (
        7,
        "secret_urls",
        include_str!("../../../migrations/postgres/0007_secret_urls.sql"),
    ),
    (
        8,
        "sealing",
        include_str!("../../../migrations/postgres/0008_sealing.sql"),
    ),
    (
        9,
        "org_first",
        include_str!("../../../migrations/postgres/0009_org_first.sql"),
    ),
];

/// The newest migration this binary has for `dialect`.
pub(crate) fn latest_migration(dialect: Dialect) -> i64 {
    let list = match dialect {
        Dialect::Sqlite => SQLITE_MIGRATIONS,
        Dialect::Postgres => POSTGRES_MIGRATIONS,
    };
    list.iter().map(|(v, _, _)| *v).max().unwrap_or(0)
}

fn migrator(dialect: Dialect) -> Migrator {
    let list = match dialect {
        Dialect::Sqlite => SQLITE_MIGRATIONS,
        Dialect::Postgres => POSTGRES_MIGRATIONS,
    };
    let migrations: Vec<Migration> = list
        .iter()
        .map(|(v, d, sql)| {
            Migration::new(
                *v,
                Cow::Borrowed(*d),
                MigrationType::Simple,
                Cow::Borrowed(*sql),
                false,
            )
        })
        .collect();
    Migrator {
        migrations: Cow::Owned(migrations),
        ..Migrator::DEFAULT
    }
}

pub(crate) fn db_err(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e
        && db.is_unique_violation()
    {
        return StoreError::Unique(db.message().to_owned());
    }
    lent::note(&e);
    if unavailable(&e) {
        return StoreError::Unavailable(e.to_string());
    }
    StoreError::Other(e.to_string())
}

/// Whether `e` says the database cannot be reached, rather than that the statement failed:
/// no connection (refused, reset, closed, timed out in the pool), or PostgreSQL's connection
/// exceptions (SQLSTATE class 08) and shutdown states (57P01-57P03: administrator, crash,
/// starting up), and a server in recovery refusing writes (25006 on a standby).
pub(crate) fn unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| {
            c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03" | "25006")
        }),
        _ => false,
    }
}

/// Opens (creating if needed) the store and runs pending migrations.
pub async fn open(location: &StoreLocation) -> Result<SqlStore, StoreError> {
    sqlx::any::install_default_drivers();
    match location {
        StoreLocation::SqliteDir(dir) => open_sqlite(dir).await,
        StoreLocation::Postgres { url, schema } => open_postgres(url, schema.as_deref()).await,
    }
}

/// How long a PostgreSQL request waits for a connection before it fails with
/// `StoreError::Unavailable` (503 and `Retry-After`): while the database is down or failing
/// over, requests answer within this instead of hanging. Under load a connection frees up in
/// milliseconds.
const PG_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

async fn open_sqlite(dir: &Path) -> Result<SqlStore, StoreError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| StoreError::Other(format!("cannot create {}: {e}", dir.display())))?;
    let file = dir.join("roster.db");
    let url = format!("sqlite://{}?mode=rwc", file.display());
    let opts = AnyConnectOptions::from_str(&url)
        .map_err(db_err)?
        .disable_statement_logging();
    // WAL lets readers run beside the single writer; synchronous=FULL makes every
    // acknowledged commit durable (fsync of the WAL at commit).
    let pragmas = "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=10000; \
                   PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY; PRAGMA cache_size=-8000;";
    // Readers get a larger page cache: the hot set of a 100,000-user organization (users,
    // their indexes, memberships) is ~80 MB. Each connection keeps its own cache (mmap would
    // share pages but counts them once per connection in RSS), so the size is bounded.
    let reader_pragmas = "PRAGMA cache_size=-36000;";
    let write = AnyPoolOptions::new()
        .max_connections(1)
        .test_before_acquire(false)
        .acquire_timeout(Duration::from_secs(30))
        .after_connect(move |c, _| {
            Box::pin(async move {
                c.execute(pragmas).await?;
                Ok(())
            })
        })
        .connect_with(opts.clone())
        .await
        .map_err(db_err)?;
    migrator(Dialect::Sqlite)
        .run(&write)
        .await
        .map_err(|e| StoreError::Other(format!("migration failed: {e}")))?;
    // One reader per core and one more: each is a thread of sqlx-sqlite's that queries hand
    // off to, and each holds its own page cache.
    let readers = std::thread::available_parallelism().map_or(3, |n| n.get() + 1) as u32;
    let mut conns = Vec::new();
    for _ in 0..readers.clamp(3, 16) {
        let mut c = sqlx::AnyConnection::connect_with(&opts)
            .await
            .map_err(db_err)?;
        c.execute(pragmas).await.map_err(db_err)?;
        c.execute(reader_pragmas).await.map_err(db_err)?;
        conns.push(c);
    }
    let read = lent::Conns::fixed(conns);
    let mut writer = write.acquire().await.map_err(db_err)?;
    writer.execute(write::WRITER_SETUP).await.map_err(db_err)?;
    let gc = std::sync::Arc::new(write::GroupCommit::new(writer));
    gc.spawn_sweeper();
    Ok(SqlStore::over(Engine::new(
        Dialect::Sqlite,
        write,
        read,
        Some(gc),
    )))
}

async fn open_postgres(url: &str, schema: Option<&str>) -> Result<SqlStore, StoreError> {
    // One host, or several (libpq's multi-host URL): connect to the first acceptable.
    let ring = std::sync::Arc::new(hosts::Ring::new(&hosts::split(url)?)?);
    let (current, opts) = ring.first_acceptable().await;
    let schema = schema.map(|s| s.replace('"', ""));
    if let Some(s) = &schema {
        let pool: AnyPool = AnyPoolOptions::new()
            .max_connections(1)
            .connect_with(opts.clone())
            .await
            .map_err(db_err)?;
        pool.execute(format!("CREATE SCHEMA IF NOT EXISTS \"{s}\"").as_str())
            .await
            .map_err(db_err)?;
        pool.close().await;
    }
    // Transactions; reads and the quick writes have sets of their own (`lent`): a node
    // opens at most 12 + PG_READERS + PG_WRITERS connections (docs/multi-node.md).
    let pool = AnyPoolOptions::new()
        .max_connections(12)
        .acquire_timeout(PG_ACQUIRE_TIMEOUT)
        // sqlx pings every connection it lends (one more round trip before each statement
        // or transaction) and again as it takes it back. The ping on return stays (it
        // flushes what a cancelled statement or transaction left); a connection lent again
        // soon after is known good, and is pinged first only as `lent` would: idle for over
        // a second, or a lost connection seen since.
        .test_before_acquire(false)
        .before_acquire(|c, meta| {
            Box::pin(async move {
                let since = std::time::Instant::now()
                    .checked_sub(meta.idle_for)
                    .unwrap_or_else(std::time::Instant::now);
                if lent::check_before_lending(since) {
                    c.ping().await?;
                }
                Ok(true)
            })
        })
        .after_connect(move |c, _| {
            let schema = schema.clone();
            Box::pin(async move {
                if let Some(s) = schema {
                    c.execute(format!("SET search_path TO \"{s}\"").as_str())
                        .await?;
                }
                Ok(())
            })
        })
        .connect_with(opts)
        .await
        .map_err(db_err)?;
    ring.watch(pool.clone(), current);
    migrator(Dialect::Postgres)
        .run(&pool)
        .await
        .map_err(|e| StoreError::Other(format!("migration failed: {e}")))?;
    let mut engine = Engine::new(
        Dialect::Postgres,
        pool.clone(),
        lent::Conns::from_pool(pool.clone(), lent::PG_READERS),
        None,
    );
    engine.seal_after_commit(lent::Conns::from_pool(pool, lent::PG_WRITERS));
    Ok(SqlStore::over(engine))
}

impl Dialect {
    /// The text of the `value` of the first element of the JSON array at `path` in the
    /// document column `base` (sorting by a multi-valued attribute).
    pub fn first_value_text(self, base: &str, path: &[&str]) -> String {
        match self {
            Dialect::Sqlite => {
                let path_s = sqlite_path(path);
                format!("json_extract({base}, '{path_s}[0].value')")
            }
            Dialect::Postgres => {
                let mut p: Vec<&str> = path.to_vec();
                p.push("0");
                p.push("value");
                self.json_text(base, &p)
            }
        }
    }

    /// The clause that locks the rows a `SELECT` reads for the writing transaction
    /// (PostgreSQL: `FOR UPDATE`; SQLite's one writer holds the database already).
    /// The column that is an event's cursor: on PostgreSQL the position its seal gave it
    /// (`seal`), on SQLite its row id (one writer: rows commit in id order).
    pub fn event_pos(self) -> &'static str {
        match self {
            Dialect::Sqlite => "id",
            Dialect::Postgres => "pos",
        }
    }

    /// A user's or group's place in creation order, for lists that are not paged by
    /// position: its position, and on PostgreSQL, before its seal gives it one, a place
    /// after every sealed one (in insertion order).
    pub fn list_pos(self, t: &str) -> String {
        match self {
            Dialect::Sqlite => format!("{t}.pos"),
            Dialect::Postgres => format!("COALESCE({t}.pos, 4611686018427387904 + {t}.seq)"),
        }
    }

    pub fn for_update(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE",
        }
    }

    /// `for_update`, skipping rows another transaction holds (leases).
    pub fn for_update_skip_locked(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }

    /// The clause that keeps the rows a `SELECT` reads from changing until commit.
    pub fn for_share(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR SHARE",
        }
    }

    /// SQL for a JSON document column as a parameter value.
    pub fn json_param(self, n: usize) -> String {
        match self {
            Dialect::Sqlite => format!("${n}"),
            Dialect::Postgres => format!("CAST(${n} AS JSONB)"),
        }
    }
    /// SQL reading a JSON column back as text.
    pub fn json_out(self, col: &str) -> String {
        match self {
            Dialect::Sqlite => col.to_owned(),
            Dialect::Postgres => format!("{col}::text"),
        }
    }
    /// The text value at `path` inside JSON expression `base` (NULL when absent).
    pub fn json_text(self, base: &str, path: &[&str]) -> String {
        match self {
            Dialect::Sqlite => format!("json_extract({base}, '{}')", sqlite_path(path)),
            Dialect::Postgres => format!("({base} #>> '{}')", pg_path(path)),
        }
    }
    /// A boolean literal as `json_text` yields it.
    pub fn json_bool(self, b: bool) -> &'static str {
        match (self, b) {
            (Dialect::Sqlite, true) => "1",
            (Dialect::Sqlite, false) => "0",
            (Dialect::Postgres, true) => "'true'",
            (Dialect::Postgres, false) => "'false'",
        }
    }
    /// `EXISTS` over the elements of the JSON array at `path`; the element is named by
    /// the returned alias expression, usable as `base` of `json_text`.
    pub fn json_elements(self, base: &str, path: &[&str], alias: &str) -> (String, String) {
        match self {
            Dialect::Sqlite => (
                format!("json_each({base}, '{}') AS {alias}", sqlite_path(path)),
                format!("{alias}.value"),
            ),
            Dialect::Postgres => (
                format!(
                    "jsonb_array_elements(CASE WHEN jsonb_typeof({base} #> '{p}') = 'array' \
                     THEN {base} #> '{p}' ELSE '[]'::jsonb END) AS {alias}(v)",
                    p = pg_path(path)
                ),
                format!("{alias}.v"),
            ),
        }
    }
    /// A scalar subquery: the groups of user row `t` as JSON text `[[id, displayName], ...]`,
    /// in no particular order (callers sort; a sorter per row costs more than the lookup).
    pub fn user_groups_json(self, t: &str) -> String {
        self.user_groups(t, "::text")
    }

    /// `user_groups_json` as a JSON value, not text, on PostgreSQL (for a JSON aggregate:
    /// it embeds the value without parsing text again); the same text on SQLite.
    pub fn user_groups_value(self, t: &str) -> String {
        self.user_groups(t, "")
    }

    fn user_groups(self, t: &str, cast: &str) -> String {
        match self {
            Dialect::Sqlite => format!(
                "(SELECT json_group_array(json_array(g.id, g.display_name)) \
                 FROM group_members m JOIN org_groups g ON g.org_id = m.org_id AND g.id = m.group_id \
                 WHERE m.org_id = {t}.org_id AND m.member_id = {t}.id)"
            ),
            Dialect::Postgres => format!(
                "(SELECT COALESCE(json_agg(json_build_array(g.id, g.display_name)), '[]'::json){cast} \
                 FROM group_members m JOIN org_groups g ON g.org_id = m.org_id AND g.id = m.group_id \
                 WHERE m.org_id = {t}.org_id AND m.member_id = {t}.id)"
            ),
        }
    }

    /// A scalar subquery: the mapped roles of user row `t` as a JSON array of strings (in
    /// no particular order; callers sort).
    pub fn user_roles_json(self, t: &str) -> String {
        self.user_roles(t, "::text")
    }

    /// `user_roles_json` as a JSON value on PostgreSQL (see `user_groups_value`).
    pub fn user_roles_value(self, t: &str) -> String {
        self.user_roles(t, "")
    }

    fn user_roles(self, t: &str, cast: &str) -> String {
        match self {
            Dialect::Sqlite => format!(
                "(SELECT json_group_array(DISTINCT r.role) FROM role_grants r WHERE r.org_id = {t}.org_id AND r.user_id = {t}.id)"
            ),
            Dialect::Postgres => format!(
                "(SELECT COALESCE(json_agg(DISTINCT r.role), '[]'::json){cast} \
                 FROM role_grants r WHERE r.org_id = {t}.org_id AND r.user_id = {t}.id)"
            ),
        }
    }

    /// ORDER BY for a sort key expression `key` (or creation order) with tie-breaker `pos`:
    /// NULLs last either way, then positions, so pages are stable.
    pub fn order_clause(&self, key: Option<&str>, desc: bool, pos: &str) -> String {
        let dir = if desc { "DESC" } else { "ASC" };
        match key {
            None => pos.to_owned(),
            Some(k) => format!(
                "CASE WHEN {k} IS NULL THEN 1 ELSE 0 END, {} {dir}, {pos} {dir}",
                self.collate(k)
            ),
        }
    }

    /// One text value: the JSON array of arrays of `elems` over the rows, in `order` (in no
    /// particular order without one). Lists come back as one row: on SQLite each row
    /// otherwise crosses a thread boundary. Elements come from `json_elem`. On SQLite the
    /// arrays are concatenated as text: the elements already are JSON text, so nothing is
    /// parsed and serialized again.
    pub fn json_rows(self, elems: &[String], order: Option<&str>) -> String {
        let order = order.map_or_else(String::new, |o| format!(" ORDER BY {o}"));
        match self {
            Dialect::Sqlite => format!(
                "'[' || COALESCE(group_concat({}, ','{order}), '') || ']'",
                self.json_array(elems)
            ),
            Dialect::Postgres => format!(
                "COALESCE(json_agg({}{order}), '[]'::json)::text",
                self.json_array(elems)
            ),
        }
    }

    /// A JSON array of `elems` (from `json_elem`), as JSON text on SQLite.
    pub fn json_array(self, elems: &[String]) -> String {
        match self {
            Dialect::Sqlite => format!("concat('[', {}, ']')", elems.join(", ',', ")),
            Dialect::Postgres => format!("json_build_array({})", elems.join(", ")),
        }
    }

    /// An element of `json_rows`: column `col` holding text, a number or JSON text.
    pub fn json_elem(self, col: &str, kind: Elem) -> String {
        match (self, kind) {
            (Dialect::Sqlite, Elem::Text) => format!("json_quote({col})"),
            // NULL would concatenate as nothing.
            (Dialect::Sqlite, Elem::Number) => format!("COALESCE({col}, 'null')"),
            // Stored or built as JSON text by Roster itself, so valid JSON.
            (Dialect::Sqlite, Elem::Json) => format!("COALESCE({col}, 'null')"),
            // A JSON value (`json`/`jsonb`, see `SqlStore::json_cols`): embedded as it is.
            (Dialect::Postgres, _) => col.to_owned(),
        }
    }

    /// A JSON object built in SQL, as text: `pairs` are (key, SQL expression); keys are
    /// literals from the code.
    pub fn json_object(self, pairs: &[(&str, &str)]) -> String {
        let args: Vec<String> = pairs.iter().map(|(k, v)| format!("'{k}', {v}")).collect();
        match self {
            Dialect::Sqlite => format!("json_object({})", args.join(", ")),
            Dialect::Postgres => format!("json_build_object({})::text", args.join(", ")),
        }
    }

    /// A table of the strings in JSON array parameter `$n`, one row each, column `value`.
    pub fn json_strings(self, n: usize, alias: &str) -> String {
        match self {
            Dialect::Sqlite => format!("json_each(${n}) AS {alias}"),
            Dialect::Postgres => {
                format!("jsonb_array_elements_text(CAST(${n} AS JSONB)) AS {alias}(value)")
            }
        }
    }

    /// `SELECT cols` of the row of `table` (as `alias`) that `cond` finds for each element
    /// of `list` (a `json_strings` table), at most one each: the list drives, one index probe
    /// per element, whatever the statistics say. PostgreSQL otherwise planned a hash join
    /// over every user of the organization when its statistics still described a small
    /// table (a plan cached at 1,000 users, used at 100,000: 50 ms per member added).
    pub fn lookup_each(
        self,
        list: &str,
        table: &str,
        alias: &str,
        cols: &str,
        cond: &str,
    ) -> String {
        match self {
            // CROSS JOIN fixes the join order in SQLite.
            Dialect::Sqlite => {
                format!("SELECT {cols} FROM {list} CROSS JOIN {table} {alias} WHERE {cond}")
            }
            // A LATERAL subquery with LIMIT cannot be flattened into a join: it runs once
            // per element, as an index scan.
            Dialect::Postgres => format!(
                "SELECT l_.* FROM {list} CROSS JOIN LATERAL \
                 (SELECT {cols} FROM {table} {alias} WHERE {cond} LIMIT 1) l_"
            ),
        }
    }

    /// A table of the strings in the JSON array held by text column expression `col`.
    pub fn json_strings_of(self, col: &str, alias: &str) -> String {
        match self {
            Dialect::Sqlite => format!("json_each({col}) AS {alias}"),
            Dialect::Postgres => {
                format!("jsonb_array_elements_text(CAST({col} AS JSONB)) AS {alias}(value)")
            }
        }
    }

    pub fn contains(self, x: &str, v: &str) -> String {
        match self {
            Dialect::Sqlite => format!("instr({x}, {v}) > 0"),
            Dialect::Postgres => format!("strpos({x}, {v}) > 0"),
        }
    }
    /// `v` is a placeholder; numbered placeholders may be referenced more than once.
    pub fn starts_with(self, x: &str, v: &str) -> String {
        format!("substr({x}, 1, length({v})) = {v}")
    }
    pub fn ends_with(self, x: &str, v: &str) -> String {
        match self {
            Dialect::Sqlite => {
                format!(
                    "(length({x}) >= length({v}) AND substr({x}, length({x}) - length({v}) + 1) = {v})"
                )
            }
            Dialect::Postgres => format!("right({x}, length({v})) = {v}"),
        }
    }
    /// Byte-order comparison of text, the same on both stores.
    pub fn collate(self, x: &str) -> String {
        match self {
            Dialect::Sqlite => x.to_owned(),
            Dialect::Postgres => format!("({x} COLLATE \"C\")"),
        }
    }
}

/// `$."a"."b"`: keys come from the schema tables, never from clients.
fn sqlite_path(path: &[&str]) -> String {
    let mut s = String::from("$");
    for p in path {
        s.push_str(".\"");
        s.push_str(p);
        s.push('"');
    }
    s
}

fn pg_path(path: &[&str]) -> String {
    let inner: Vec<String> = path.iter().map(|p| format!("\"{p}\"")).collect();
    format!("{{{}}}", inner.join(","))
}
