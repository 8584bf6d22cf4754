//! `SqlStore`: the `Store` contract on SQLite and PostgreSQL.

use serde_json::{Map, Value};
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Row};

use super::engine::Engine;
use super::engine::batch::Batch;
use super::engine::point_reads::Key;
use super::engine::positions;
use super::engine::readers::ReadConn;
use super::engine::write::WriteTx;
use super::engine::{Arg, bind_all};
use super::filter_sql::{ResourceKind, SqlBuilder};
use super::roles;
use super::{Dialect, Elem, db_err};
use crate::core::audit::AuditDraft;
use crate::core::error::{CoreError, CoreResult, StoreError};
use crate::core::events::{EventDraft, EventKind};
use crate::core::model::*;
use crate::core::query::{Cond, Field, ListQuery, Op, Page, Val};
use crate::core::sso::user_email_key;
use crate::core::store::*;
use crate::core::{new_id, now};

/// The one store implementation: the repositories' SQL over one [`Engine`] (how the
/// backend executes it).
#[derive(Clone)]
pub struct SqlStore {
    pub(super) engine: Engine,
    /// The engine's dialect, which the repositories spell their SQL in.
    pub(super) d: Dialect,
}

pub(super) fn e(err: sqlx::Error) -> CoreError {
    CoreError::Store(db_err(err))
}

pub(super) fn get<T>(row: &AnyRow, col: &str) -> CoreResult<T>
where
    T: for<'r> sqlx::Decode<'r, Any> + sqlx::Type<Any>,
{
    row.try_get(col).map_err(e)
}

fn parse_attrs(s: &str) -> CoreResult<Map<String, Value>> {
    match serde_json::from_str(s) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(CoreError::Store(StoreError::Other(
            "stored attribute document is not a JSON object".into(),
        ))),
    }
}

/// What a list page is made of: each item from one element of the JSON array `fetch_page`
/// reads (the columns of `json_elems`, in order).
trait PageItem: Sized {
    type Row: serde::de::DeserializeOwned;
    fn from_row(row: Self::Row) -> Self;
    /// The item from a row of `user_cols` or `group_cols` read on its own.
    fn from_db_row(row: &AnyRow) -> CoreResult<Self>;
}

/// The column and value of a filter that is one equality on a key unique in an
/// organization (`id`; a user's `userName`, compared in its folded form), if it is one.
fn unique_match(kind: ResourceKind, filter: Option<&Cond>) -> Option<(Key, &str)> {
    match (kind, filter?) {
        (_, Cond::Cmp(Field::Id, Op::Eq, Val::Str(id))) => Some((Key::Id, id)),
        // Filter values of case-insensitive attributes arrive folded (see `Val`).
        (ResourceKind::User, Cond::Cmp(Field::UserName, Op::Eq, Val::Str(name))) => {
            Some((Key::UserName, name))
        }
        _ => None,
    }
}

/// `ids` as a JSON array parameter, each once.
fn id_list<'a>(ids: impl Iterator<Item = &'a str>) -> String {
    let mut seen = std::collections::HashSet::new();
    Value::from(ids.filter(|id| seen.insert(*id)).collect::<Vec<_>>()).to_string()
}

fn page_err(err: serde_json::Error) -> CoreError {
    CoreError::Store(StoreError::Other(format!("bad page from store: {err}")))
}

/// One user of a page: the columns of `user_cols`, in order.
type UserTuple = (
    String,
    Map<String, Value>,
    i64,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Vec<(String, String)>,
    Vec<String>,
);

/// One group of a page: the columns of `group_cols`, in order.
type GroupTuple = (String, Map<String, Value>, i64, String, String);

fn meta_of(version: i64, created: String, last_modified: String) -> Meta {
    Meta {
        version,
        created,
        last_modified,
    }
}

/// A user from its columns, however they were read (one row, or one element of a page).
fn user_of(t: UserTuple) -> User {
    let (id, attrs, version, created, last_modified, prov, sync, login, groups, roles) = t;
    User {
        id,
        attrs,
        meta: meta_of(version, created, last_modified),
        provenance: Provenance::parse(&prov).unwrap_or(Provenance::Admin),
        last_directory_sync_at: sync,
        last_login_at: login,
        groups: group_refs(groups),
        roles: sorted(roles),
    }
}

fn group_of(t: GroupTuple) -> Group {
    let (id, attrs, version, created, last_modified) = t;
    Group {
        id,
        attrs,
        meta: meta_of(version, created, last_modified),
    }
}

impl PageItem for User {
    type Row = UserTuple;
    fn from_row(row: UserTuple) -> Self {
        user_of(row)
    }
    fn from_db_row(row: &AnyRow) -> CoreResult<Self> {
        SqlStore::user_from_row(row)
    }
}

/// One user of a page as `ListedUser` reads it: `UserTuple` with the attributes split at
/// the top level only, and the columns it does not show skipped.
type ListedTuple = (
    String,
    std::collections::BTreeMap<String, Box<serde_json::value::RawValue>>,
    i64,
    String,
    String,
    serde::de::IgnoredAny,
    serde::de::IgnoredAny,
    serde::de::IgnoredAny,
    Vec<(String, String)>,
    Vec<String>,
);

impl PageItem for ListedUser {
    type Row = ListedTuple;
    fn from_row(t: ListedTuple) -> Self {
        let (id, attrs, version, created, last_modified, _, _, _, groups, roles) = t;
        ListedUser {
            id,
            attrs,
            meta: meta_of(version, created, last_modified),
            groups: group_refs(groups),
            roles: sorted(roles),
        }
    }
    fn from_db_row(row: &AnyRow) -> CoreResult<Self> {
        let json = |col: &str| get::<String>(row, col);
        let ignored = serde::de::IgnoredAny;
        Ok(ListedUser::from_row((
            get(row, "id")?,
            serde_json::from_str(&json("attrs")?).map_err(page_err)?,
            get(row, "version")?,
            get(row, "created_at")?,
            get(row, "updated_at")?,
            ignored,
            ignored,
            ignored,
            serde_json::from_str(&json("groups_json")?).map_err(page_err)?,
            serde_json::from_str(&json("roles_json")?).map_err(page_err)?,
        )))
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

impl PageItem for Group {
    type Row = GroupTuple;
    fn from_row(row: GroupTuple) -> Self {
        group_of(row)
    }
    fn from_db_row(row: &AnyRow) -> CoreResult<Self> {
        SqlStore::group_from_row(row)
    }
}

/// Group references, ordered by name (then id) so representations are stable.
fn group_refs(pairs: Vec<(String, String)>) -> Vec<GroupRef> {
    let mut refs: Vec<GroupRef> = pairs
        .into_iter()
        .map(|(id, display)| GroupRef { id, display })
        .collect();
    if refs.len() > 1 {
        refs.sort_by_cached_key(|g| (g.display.to_lowercase(), g.id.clone()));
    }
    refs
}

/// In a batch: revokes every live session of a user (deprovisioning, same transaction).
/// Every token of those sessions goes with them (a token is also checked against its session
/// and user whenever it is used; revoking the rows makes the state plain to see).
fn revoke_sessions_in(b: &mut Batch, d: Dialect, scope: &Scope, user_id: &str, reason: &str) {
    // One `session.revoked` per live session, before the sessions change.
    b.events_select(
        &scope.org,
        &scope.actor,
        EventKind::SessionRevoked,
        "s.id",
        &d.json_object(&[("user_id", "s.user_id"), ("reason", "CAST($3 AS TEXT)")]),
        "FROM sessions s WHERE s.org_id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL",
        vec![
            Arg::Str(scope.org.as_str().to_owned()),
            Arg::Str(user_id.to_owned()),
            Arg::Str(reason.to_owned()),
        ],
    );
    let args = || {
        vec![
            Arg::Str(now()),
            Arg::Str(scope.org.as_str().to_owned()),
            Arg::Str(user_id.to_owned()),
        ]
    };
    b.push(
        "UPDATE sessions SET revoked_at = $1 WHERE org_id = $2 AND user_id = $3 AND revoked_at IS NULL",
        args(),
    );
    b.push(
        "UPDATE oauth_tokens SET revoked_at = $1 WHERE org_id = $2 AND user_id = $3 AND revoked_at IS NULL",
        args(),
    );
}

/// In a batch: deletes a user or group row with its memberships (as member, and for a
/// group as container) and gives its position back (see `positions`).
/// The resource's memberships *as a member* end with it: one `group.member_removed` each.
/// A deleted group's own members get no per-member event (`group.deleted` says it).
fn delete_row_in(b: &mut Batch, d: Dialect, scope: &Scope, kind: ResourceKind, id: &str) {
    b.events_select(
        &scope.org,
        &scope.actor,
        EventKind::GroupMemberRemoved,
        "gm.group_id",
        &d.json_object(&[
            ("group_id", "gm.group_id"),
            ("member_id", "gm.member_id"),
            ("member_type", "gm.member_type"),
        ]),
        "FROM group_members gm WHERE gm.org_id = $1 AND gm.member_id = $2",
        vec![
            Arg::Str(scope.org.as_str().to_owned()),
            Arg::Str(id.to_owned()),
        ],
    );
    let (table, kind_s, memberships) = match kind {
        ResourceKind::User => ("users", "User", "member_id = $2"),
        ResourceKind::Group => ("org_groups", "Group", "(group_id = $2 OR member_id = $2)"),
    };
    let args = || {
        vec![
            Arg::Str(scope.org.as_str().to_owned()),
            Arg::Str(id.to_owned()),
            Arg::Str(kind_s.to_owned()),
        ]
    };
    b.push(
        format!("DELETE FROM group_members WHERE org_id = $1 AND {memberships} AND $3 = $3"),
        args(),
    );
    b.push(
        format!(
            "INSERT INTO deleted_positions (org_id, kind, pos) \
             SELECT org_id, $3, pos FROM {table} WHERE org_id = $1 AND id = $2"
        ),
        args(),
    );
    b.push(
        "UPDATE org_counters SET live = live - 1, deleted = deleted + 1 \
         WHERE org_id = $1 AND kind = $3 AND $2 = $2",
        args(),
    );
    b.push(
        format!("DELETE FROM {table} WHERE org_id = $1 AND id = $2 AND $3 = $3"),
        args(),
    );
}

/// The caller's precondition (`If-Match`) against the stored version.
fn check_version(expected: Option<Expect>, current: i64) -> CoreResult<()> {
    expected.map_or(Ok(()), |e| e.check(current))
}

async fn count_rows(conn: &mut AnyConnection, sql: &str, args: &[Arg]) -> CoreResult<u64> {
    let n: i64 = bind_all(sqlx::query(sql), args)
        .fetch_one(&mut *conn)
        .await
        .map_err(e)?
        .try_get("n")
        .map_err(e)?;
    Ok(n.max(0) as u64)
}

fn attrs_text(m: &Map<String, Value>) -> String {
    Value::Object(m.clone()).to_string()
}

fn str_attr<'a>(m: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    m.get(k).and_then(Value::as_str)
}

/// Lower-cased (Unicode) form used for case-insensitive uniqueness and lookups.
pub fn fold(s: &str) -> String {
    s.to_lowercase()
}

impl SqlStore {
    /// The store over an opened engine; reads of one user by a unique key are coalesced
    /// where the engine does that (`Engine::coalesce_point_reads`).
    pub(super) fn over(engine: Engine) -> Self {
        let d = engine.d;
        let mut store = SqlStore { engine, d };
        let cols = store.user_cols();
        let page = d.json_rows(
            &[
                d.json_elem("x.k_", Elem::Number),
                d.json_array(&store.json_elems(ResourceKind::User)),
            ],
            None,
        );
        // CROSS JOIN keeps the keys the outer loop: one index lookup per key.
        store.engine.coalesce_point_reads(|key_col: &str| {
            format!(
                "SELECT {page} AS page FROM (SELECT j.key AS k_, {cols} FROM json_each($1) j \
                 CROSS JOIN users t WHERE t.org_id = json_extract(j.value, '$[0]') \
                 AND {key_col} = json_extract(j.value, '$[1]')) x"
            )
        });
        store
    }

    /// The user of `scope` whose `key` is `value`: coalesced on SQLite, else one statement.
    async fn user_by_key<T: PageItem>(
        &self,
        scope: &Scope,
        key: Key,
        value: &str,
    ) -> CoreResult<Option<T>> {
        if let Some(found) = self.engine.point_read(key, scope.org.as_str(), value).await {
            return found?
                .map(|raw| {
                    serde_json::from_str::<T::Row>(raw.get())
                        .map(T::from_row)
                        .map_err(page_err)
                })
                .transpose();
        }
        let col = match key {
            Key::Id => "t.id",
            Key::UserName => "t.user_name_norm",
        };
        self.read_one("users", &self.user_cols(), col, scope, value)
            .await
    }

    /// The row of `table` (columns `cols`, alias `t`) in `scope` whose `col` is `value`, a
    /// key unique in the organization, read on its own.
    async fn read_one<T: PageItem>(
        &self,
        table: &str,
        cols: &str,
        col: &str,
        scope: &Scope,
        value: &str,
    ) -> CoreResult<Option<T>> {
        let sql = format!("SELECT {cols} FROM {table} t WHERE t.org_id = $1 AND {col} = $2");
        sqlx::query(&sql)
            .bind(scope.org.as_str())
            .bind(value)
            .fetch_optional(&mut *self.read_conn().await?)
            .await
            .map_err(e)?
            .as_ref()
            .map(T::from_db_row)
            .transpose()
    }

    async fn group_turn(&self, id: &str) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        self.engine.group_turn(id).await
    }

    /// A receiver that changes after every local commit that appended events.
    pub fn event_signal(&self) -> tokio::sync::watch::Receiver<u64> {
        self.engine.event_signal()
    }

    /// A connection for reads (see `readers`).
    pub(super) async fn read_conn(&self) -> CoreResult<ReadConn> {
        self.engine.read_conn().await
    }

    pub fn dialect(&self) -> Dialect {
        self.d
    }

    /// Whether the database has every migration this binary knows, and no failed one.
    pub async fn migrations_current(&self) -> CoreResult<bool> {
        let row = sqlx::query(
            "SELECT COALESCE(MAX(version), 0) AS v, \
             CAST(SUM(CASE WHEN success THEN 0 ELSE 1 END) AS BIGINT) AS failed FROM _sqlx_migrations",
        )
        .fetch_one(&mut *self.read_conn().await?)
        .await
        .map_err(e)?;
        let applied: i64 = get(&row, "v")?;
        let failed: Option<i64> = get(&row, "failed")?;
        Ok(applied >= super::engine::latest_migration(self.d) && failed.unwrap_or(0) == 0)
    }

    pub async fn close(&self) {
        self.engine.close().await
    }

    pub(super) fn user_cols(&self) -> String {
        format!(
            "t.id, {} AS attrs, t.version, t.created_at, t.updated_at, t.provenance, \
             t.last_directory_sync_at, t.last_login_at, {} AS groups_json, {} AS roles_json",
            self.d.json_out("t.attrs"),
            self.d.user_groups_json("t"),
            self.d.user_roles_json("t")
        )
    }

    fn group_cols(&self) -> String {
        format!(
            "t.id, {} AS attrs, t.version, t.created_at, t.updated_at",
            self.d.json_out("t.attrs")
        )
    }

    /// In PostgreSQL, reads inside a write transaction lock the row.
    pub(super) fn for_update(&self) -> &'static str {
        self.d.for_update()
    }

    /// A write that reads nothing first (see `Engine::write_unread`).
    pub(super) async fn write_unread(
        &self,
        b: Batch,
        map: impl FnOnce(sqlx::Error) -> CoreError,
    ) -> CoreResult<()> {
        self.engine.write_unread(b, map).await
    }

    pub(super) async fn begin(&self) -> CoreResult<WriteTx> {
        self.engine.begin().await
    }

    /// A write whose statements all go in its final `WriteTx::finish` batch (reads before
    /// it are fine): on SQLite its savepoint travels with that batch.
    pub(super) async fn begin_fresh(&self) -> CoreResult<WriteTx> {
        self.engine.begin_fresh().await
    }

    pub(super) fn org_from_row(row: &AnyRow) -> CoreResult<Org> {
        Ok(Org {
            id: OrgId::from_store(get(row, "id")?),
            slug: get(row, "slug")?,
            name: get(row, "name")?,
            created_at: get(row, "created_at")?,
        })
    }

    fn dir_from_row(row: &AnyRow) -> CoreResult<Directory> {
        Ok(Directory {
            id: get(row, "id")?,
            org_id: OrgId::from_store(get(row, "org_id")?),
            org_slug: get(row, "slug")?,
            name: get(row, "name")?,
            created_at: get(row, "created_at")?,
        })
    }

    fn token_from_row(row: &AnyRow) -> CoreResult<TokenInfo> {
        Ok(TokenInfo {
            id: get(row, "id")?,
            directory_id: get(row, "directory_id")?,
            read_only: get::<i64>(row, "read_only")? != 0,
            created_at: get(row, "created_at")?,
            revoked_at: get(row, "revoked_at")?,
        })
    }

    pub(super) fn user_from_row(row: &AnyRow) -> CoreResult<User> {
        Ok(user_of((
            get(row, "id")?,
            parse_attrs(&get::<String>(row, "attrs")?)?,
            get(row, "version")?,
            get(row, "created_at")?,
            get(row, "updated_at")?,
            get(row, "provenance")?,
            get(row, "last_directory_sync_at")?,
            get(row, "last_login_at")?,
            serde_json::from_str(&get::<String>(row, "groups_json")?).map_err(page_err)?,
            serde_json::from_str(&get::<String>(row, "roles_json")?).map_err(page_err)?,
        )))
    }

    pub(super) fn group_from_row(row: &AnyRow) -> CoreResult<Group> {
        Ok(group_of((
            get(row, "id")?,
            parse_attrs(&get::<String>(row, "attrs")?)?,
            get(row, "version")?,
            get(row, "created_at")?,
            get(row, "updated_at")?,
        )))
    }

    async fn fetch_user(
        &self,
        c: &mut AnyConnection,
        scope: &Scope,
        id: &str,
        lock: bool,
    ) -> CoreResult<Option<User>> {
        let row = self.fetch_user_row(c, scope, id, lock).await?;
        row.as_ref().map(Self::user_from_row).transpose()
    }

    /// The row of user `id` (the columns of `user_cols`), locked on PostgreSQL with `lock`.
    async fn fetch_user_row(
        &self,
        c: &mut AnyConnection,
        scope: &Scope,
        id: &str,
        lock: bool,
    ) -> CoreResult<Option<AnyRow>> {
        let sql = format!(
            "SELECT {} FROM users t WHERE t.org_id = $1 AND t.id = $2{}",
            self.user_cols(),
            if lock { self.for_update() } else { "" }
        );
        sqlx::query(&sql)
            .bind(scope.org.as_str())
            .bind(id)
            .fetch_optional(&mut *c)
            .await
            .map_err(e)
    }

    async fn fetch_group(
        &self,
        c: &mut AnyConnection,
        scope: &Scope,
        id: &str,
        lock: bool,
    ) -> CoreResult<Option<Group>> {
        let sql = format!(
            "SELECT {} FROM org_groups t WHERE t.org_id = $1 AND t.id = $2{}",
            self.group_cols(),
            if lock { self.for_update() } else { "" }
        );
        let row = sqlx::query(&sql)
            .bind(scope.org.as_str())
            .bind(id)
            .fetch_optional(&mut *c)
            .await
            .map_err(e)?;
        row.as_ref().map(Self::group_from_row).transpose()
    }

    /// The group for a write (locked on PostgreSQL), and whether any role mapping matches it
    /// now: membership changes of a group no mapping matches move no roles, so their role
    /// statements are left out.
    async fn fetch_group_for_write(
        &self,
        c: &mut AnyConnection,
        scope: &Scope,
        id: &str,
    ) -> CoreResult<Option<(Group, bool)>> {
        let sql = format!(
            "SELECT {}, CAST(CASE WHEN {GROUP_MAPS} THEN 1 ELSE 0 END AS BIGINT) AS maps \
             FROM org_groups t WHERE t.org_id = $1 AND t.id = $2{}",
            self.group_cols(),
            self.for_update()
        );
        let row = sqlx::query(&sql)
            .bind(scope.org.as_str())
            .bind(id)
            .fetch_optional(&mut *c)
            .await
            .map_err(e)?;
        row.as_ref()
            .map(|r| Ok((Self::group_from_row(r)?, get::<i64>(r, "maps")? != 0)))
            .transpose()
    }

    /// The JSON elements a list row is aggregated into (see `Dialect::json_rows`), over the
    /// columns of `user_cols`/`group_cols` aliased `x`.
    fn json_elems(&self, kind: ResourceKind) -> Vec<String> {
        let d = self.d;
        let mut cols = vec![
            ("x.id", Elem::Text),
            ("x.attrs", Elem::Json),
            ("x.version", Elem::Number),
            ("x.created_at", Elem::Text),
            ("x.updated_at", Elem::Text),
        ];
        if kind == ResourceKind::User {
            cols.extend([
                ("x.provenance", Elem::Text),
                ("x.last_directory_sync_at", Elem::Text),
                ("x.last_login_at", Elem::Text),
                ("x.groups_json", Elem::Json),
                ("x.roles_json", Elem::Json),
            ]);
        }
        cols.into_iter().map(|(c, k)| d.json_elem(c, k)).collect()
    }

    /// Runs a page query (`inner` selects `cols`, `pos_` and `sk_`) as one aggregated row.
    /// `extra` are integer SQL expressions computed in the same statement (so over the same
    /// snapshot); their values come back beside the page (None for NULL).
    async fn fetch_page<T: PageItem, const N: usize>(
        &self,
        conn: &mut AnyConnection,
        kind: ResourceKind,
        inner: &str,
        args: &[Arg],
        sorted: Option<bool>,
        extra: [&str; N],
    ) -> CoreResult<(Vec<T>, [Option<i64>; N])> {
        // `sorted`: Some(descending) when `inner` selects a sort key `sk_`. Pages in position
        // order carry each item's position and are put in order here: ordering the
        // aggregate in SQL copies every element into a temporary B-tree first, which cost
        // more than the rest of the page's SQL at 100,000 users.
        let elems = self.json_elems(kind);
        let page = match sorted {
            Some(desc) => {
                let order = self.d.order_clause(Some("x.sk_"), desc, "x.pos_");
                self.d.json_rows(&elems, Some(&order))
            }
            None => self.d.json_rows(
                &[
                    self.d.json_elem("x.pos_", Elem::Number),
                    self.d.json_array(&elems),
                ],
                None,
            ),
        };
        let extra_cols: String = extra
            .iter()
            .enumerate()
            .map(|(i, x)| format!(", {x} AS e{i}_"))
            .collect();
        let sql = format!("SELECT {page} AS page{extra_cols} FROM ({inner}) x");
        let row = bind_all(sqlx::query(&sql), args)
            .fetch_one(&mut *conn)
            .await
            .map_err(e)?;
        let text: String = row.try_get(0).map_err(e)?;
        let mut values = [None; N];
        for (i, v) in values.iter_mut().enumerate() {
            *v = row.try_get(i + 1).map_err(e)?;
        }
        let items = match sorted {
            Some(_) => serde_json::from_str::<Vec<T::Row>>(&text)
                .map_err(page_err)?
                .into_iter()
                .map(T::from_row)
                .collect(),
            None => {
                let mut rows: Vec<(i64, T::Row)> = serde_json::from_str(&text).map_err(page_err)?;
                rows.sort_by_key(|(pos, _)| *pos);
                rows.into_iter().map(|(_, r)| T::from_row(r)).collect()
            }
        };
        Ok((items, values))
    }

    async fn list<T: PageItem>(
        &self,
        scope: &Scope,
        q: &ListQuery,
        kind: ResourceKind,
    ) -> CoreResult<Page<T>> {
        if let Some((key, value)) = unique_match(kind, q.filter.as_ref()) {
            return self.list_by_unique_key(scope, q, kind, key, value).await;
        }
        let (table, cols) = match kind {
            ResourceKind::User => ("users", self.user_cols()),
            ResourceKind::Group => ("org_groups", self.group_cols()),
        };
        if q.filter.is_none() && q.sort.is_none() {
            return self.list_by_position(scope, q, kind, table, &cols).await;
        }
        let mut b = SqlBuilder::new(self.d, kind, vec![Arg::Str(scope.org.as_str().to_owned())]);
        let where_sql = match &q.filter {
            Some(f) => format!("t.org_id = $1 AND {}", b.cond(f)),
            None => "t.org_id = $1".to_owned(),
        };
        let count_sql = format!("SELECT COUNT(*) AS n FROM {table} t WHERE {where_sql}");
        let filter_args = b.args.clone();
        let mut conn = self.read_conn().await?;
        if q.count == 0 {
            let total = count_rows(&mut conn, &count_sql, &filter_args).await?;
            return Ok(Page {
                total,
                items: vec![],
            });
        }
        // One round trip in the usual case: the page carries the match count (a window over
        // the filtered rows, computed before LIMIT); only an empty page past the first needs
        // a separate COUNT.
        let (key, desc) = b.sort_key(&q.sort);
        let order = self.d.order_clause(key.as_deref(), desc, "t.pos");
        let limit = b.push(Arg::I64(q.count as i64));
        let offset = b.push(Arg::I64(q.start_index.saturating_sub(1) as i64));
        let sorted = key.as_ref().map(|_| desc);
        let sk = key.map_or_else(String::new, |k| format!(", {k} AS sk_"));
        let inner = format!(
            "SELECT {cols}, t.pos AS pos_, COUNT(*) OVER () AS total_{sk} FROM {table} t WHERE {where_sql} \
             ORDER BY {order} LIMIT {limit} OFFSET {offset}"
        );
        let args = b.args.clone();
        let (items, [total]) = self
            .fetch_page(&mut conn, kind, &inner, &args, sorted, ["MAX(x.total_)"])
            .await?;
        let total = match total {
            Some(n) => n.max(0) as u64,
            None if q.start_index <= 1 => 0,
            None => count_rows(&mut conn, &count_sql, &filter_args).await?,
        };
        Ok(Page { total, items })
    }

    /// A list filtered on a key unique in the organization: at most one match, read like a
    /// resource by id (no window, no aggregate, nothing to sort). IdPs look users up by
    /// `userName eq` before every create, so this is the most frequent filter there is.
    async fn list_by_unique_key<T: PageItem>(
        &self,
        scope: &Scope,
        q: &ListQuery,
        kind: ResourceKind,
        key: Key,
        value: &str,
    ) -> CoreResult<Page<T>> {
        let found: Option<T> = match kind {
            ResourceKind::User => self.user_by_key(scope, key, value).await?,
            // Only `id` is unique among groups.
            ResourceKind::Group => {
                self.read_one("org_groups", &self.group_cols(), "t.id", scope, value)
                    .await?
            }
        };
        let total = u64::from(found.is_some());
        let items = found
            .filter(|_| q.start_index <= 1 && q.count > 0)
            .into_iter()
            .collect();
        Ok(Page { total, items })
    }

    /// An unfiltered list in creation order: the total from the counter, the page by seeking
    /// to the position of its first item (see `positions`).
    async fn list_by_position<T: PageItem>(
        &self,
        scope: &Scope,
        q: &ListQuery,
        kind: ResourceKind,
        table: &str,
        cols: &str,
    ) -> CoreResult<Page<T>> {
        let org = scope.org.as_str();
        let kind_s = match kind {
            ResourceKind::User => "User",
            ResourceKind::Group => "Group",
        };
        let mut conn = self.read_conn().await?;
        let start = i64::try_from(q.start_index).unwrap_or(i64::MAX);
        let count = i64::try_from(q.count).unwrap_or(i64::MAX);
        let page_at = |pos: usize| {
            format!(
                "SELECT {cols}, t.pos AS pos_ FROM {table} t WHERE t.org_id = $1 AND t.pos >= ${pos} ORDER BY t.pos LIMIT $3"
            )
        };
        // Optimistically one round trip: with no deletion in the organization, the K-th
        // live resource is at position K. The counters come from the same statement, so
        // they say whether that held.
        let counter =
            |col: &str| format!("(SELECT {col} FROM org_counters WHERE org_id = $1 AND kind = $4)");
        if q.count > 0 {
            let args = vec![
                Arg::Str(org.to_owned()),
                Arg::I64(start),
                Arg::I64(count),
                Arg::Str(kind_s.to_owned()),
            ];
            let (items, [live, deleted]) = self
                .fetch_page(
                    &mut conn,
                    kind,
                    &page_at(2),
                    &args,
                    None,
                    [&counter("live"), &counter("deleted")],
                )
                .await?;
            if deleted.unwrap_or(0) == 0 {
                let total = live.unwrap_or(0).max(0) as u64;
                return Ok(Page { total, items });
            }
        }
        let (live, deleted) = positions::counts(&mut conn, org, kind_s).await?;
        let total = live.max(0) as u64;
        if q.count == 0 || q.start_index > total {
            return Ok(Page {
                total,
                items: vec![],
            });
        }
        let (inner, args) = match positions::nth(&mut conn, org, kind_s, start, deleted).await? {
            Some(pos) => (
                page_at(2),
                vec![Arg::Str(org.to_owned()), Arg::I64(pos), Arg::I64(count)],
            ),
            None => (
                format!(
                    "SELECT {cols}, t.pos AS pos_ FROM {table} t WHERE t.org_id = $1 ORDER BY t.pos LIMIT $2 OFFSET $3"
                ),
                vec![
                    Arg::Str(org.to_owned()),
                    Arg::I64(count),
                    Arg::I64(start - 1),
                ],
            ),
        };
        let (items, []) = self
            .fetch_page(&mut conn, kind, &inner, &args, None, [])
            .await?;
        Ok(Page { total, items })
    }

    /// Checks that every member to add is a User or Group of the organization (of the type
    /// the client named, if it named one): one query for all of them.
    async fn check_members(
        &self,
        c: &mut AnyConnection,
        scope: &Scope,
        group_id: &str,
        ops: &[MemberOp],
    ) -> CoreResult<()> {
        let refs: Vec<&MemberRef> = added_refs(ops).collect();
        if refs.is_empty() {
            return Ok(());
        }
        // One statement of constant text for any number of members, driven by their list:
        // a lookup by id each (`Dialect::lookup_each`). As an IN list, PostgreSQL sometimes
        // ran a plan cached for a smaller table (20-65 ms per 1,000-member batch).
        let sql = self.member_candidates();
        let args = [
            Arg::Str(scope.org.as_str().to_owned()),
            Arg::Str(group_id.to_owned()),
            Arg::Str(id_list(refs.iter().map(|r| r.id.as_str()))),
        ];
        let mut found: std::collections::HashMap<String, MemberType> = Default::default();
        for row in bind_all(sqlx::query(&sql), &args)
            .fetch_all(&mut *c)
            .await
            .map_err(e)?
        {
            let kind: String = get(&row, "kind")?;
            let kind = if kind == "Group" {
                MemberType::Group
            } else {
                MemberType::User
            };
            found.insert(get(&row, "id")?, kind);
        }
        for r in refs {
            match found.get(&r.id) {
                Some(k) if r.kind.is_none_or(|want| want == *k) => {}
                _ => {
                    return Err(CoreError::InvalidValue(format!(
                        "member \"{}\" is not a {} of this organization",
                        r.id,
                        r.kind.map_or("User or Group", MemberType::as_str)
                    )));
                }
            }
        }
        Ok(())
    }

    /// In a batch: one membership change, as a set operation (members checked beforehand
    /// by `check_members`; the type of each comes from where its id is found). Each
    /// membership that actually changes gets its event and moves its roles; nothing else of
    /// the group is read or written.
    fn member_op_in(
        &self,
        b: &mut Batch,
        scope: &Scope,
        group_id: &str,
        op: &MemberOp,
        roles: bool,
    ) {
        match op {
            MemberOp::Add(refs) => {
                let ids: Vec<&str> = refs.iter().map(|m| m.id.as_str()).collect();
                self.add_members_in(b, scope, group_id, &ids, roles);
            }
            MemberOp::Remove(ids) => {
                for id in ids {
                    self.remove_members_in(
                        b,
                        scope,
                        group_id,
                        "gm.member_id = $3",
                        vec![Arg::Str(id.clone())],
                        roles,
                    );
                }
            }
            MemberOp::RemoveAll => {
                self.remove_members_in(b, scope, group_id, "1 = 1", Vec::new(), roles)
            }
            MemberOp::RemoveWhere(cond) => {
                let mut sb = SqlBuilder::new(
                    self.d,
                    ResourceKind::Group,
                    vec![
                        Arg::Str(scope.org.as_str().to_owned()),
                        Arg::Str(group_id.to_owned()),
                    ],
                );
                let w = sb.related(cond, "gm");
                let extra = sb.args.split_off(2);
                self.remove_members_in(b, scope, group_id, &w, extra, roles);
            }
            MemberOp::Replace(refs) => {
                let ids: Vec<&str> = refs.iter().map(|m| m.id.as_str()).collect();
                let list = Value::from(ids.clone()).to_string();
                let keep = self.d.json_strings(3, "keep");
                self.remove_members_in(
                    b,
                    scope,
                    group_id,
                    &format!("gm.member_id NOT IN (SELECT keep.value FROM {keep})"),
                    vec![Arg::Str(list)],
                    roles,
                );
                self.add_members_in(b, scope, group_id, &ids, roles);
            }
        }
    }

    /// The users and groups of organization `$1` (group `$2` itself excepted) whose ids are
    /// in the JSON array `$3`, as `org_id, id, kind`: driven by the list, one lookup by id
    /// per listed id, never a scan of the organization (`Dialect::lookup_each`). Its text is
    /// the same for any number of ids.
    fn member_candidates(&self) -> String {
        format!(
            "{} UNION ALL {}",
            self.d.lookup_each(
                &self.d.json_strings(3, "k"),
                "users",
                "u",
                "u.org_id, u.id, 'User' AS kind",
                "u.id = k.value AND u.org_id = $1"
            ),
            self.d.lookup_each(
                &self.d.json_strings(3, "j"),
                "org_groups",
                "g",
                "g.org_id, g.id, 'Group' AS kind",
                "g.id = j.value AND g.org_id = $1 AND g.id <> $2"
            )
        )
    }

    /// Adds members unless present, as one set operation over the id list (a JSON array
    /// parameter): an event per new member, their roles, their rows.
    fn add_members_in(
        &self,
        b: &mut Batch,
        scope: &Scope,
        group_id: &str,
        members: &[&str],
        roles: bool,
    ) {
        if members.is_empty() {
            return;
        }
        // Each id once: a repeated id would otherwise be two candidates (two events).
        let list = id_list(members.iter().copied());
        let args = || {
            vec![
                Arg::Str(scope.org.as_str().to_owned()),
                Arg::Str(group_id.to_owned()),
                Arg::Str(list.clone()),
            ]
        };
        let candidate = self.member_candidates();
        // "Not a member yet" as a scalar subquery, one probe per candidate: as NOT EXISTS,
        // PostgreSQL may plan an anti-join that hashes every member of the group (23 ms
        // per added member at 100,000 members, with statistics from a smaller group).
        let new_member = format!(
            "FROM ({candidate}) x WHERE (SELECT 1 FROM group_members gm \
             WHERE gm.group_id = $2 AND gm.member_id = x.id LIMIT 1) IS NULL"
        );
        b.events_select(
            &scope.org,
            &scope.actor,
            EventKind::GroupMemberAdded,
            "CAST($2 AS TEXT)",
            &self.d.json_object(&[
                ("group_id", "CAST($2 AS TEXT)"),
                ("member_id", "x.id"),
                ("member_type", "x.kind"),
            ]),
            &new_member,
            args(),
        );
        if roles {
            roles::grant_group_roles(
                b,
                self.d,
                &scope.org,
                &scope.actor,
                group_id,
                &format!("SELECT x.id AS user_id {new_member} AND x.kind = 'User'"),
                vec![Arg::Str(list.clone())],
            );
        }
        b.push(
            format!(
                "INSERT INTO group_members (org_id, group_id, member_id, member_type) \
                 SELECT org_id, $2, id, kind FROM ({candidate}) x WHERE 1 = 1 \
                 ON CONFLICT (group_id, member_id) DO NOTHING"
            ),
            args(),
        );
    }

    /// Removes the members `gm` of the group matching `cond` (over `$1` org, `$2` group,
    /// `$3…` = `extra`): their events, their roles through this group, their rows.
    fn remove_members_in(
        &self,
        b: &mut Batch,
        scope: &Scope,
        group_id: &str,
        cond: &str,
        extra: Vec<Arg>,
        roles: bool,
    ) {
        let args = || roles::keyed_args(&scope.org, group_id, &extra);
        let from =
            format!("FROM group_members gm WHERE gm.group_id = $2 AND gm.org_id = $1 AND {cond}");
        b.events_select(
            &scope.org,
            &scope.actor,
            EventKind::GroupMemberRemoved,
            "gm.group_id",
            &self.d.json_object(&[
                ("group_id", "gm.group_id"),
                ("member_id", "gm.member_id"),
                ("member_type", "gm.member_type"),
            ]),
            &from,
            args(),
        );
        if roles {
            roles::revoke_group_roles(
                b,
                self.d,
                &scope.org,
                &scope.actor,
                group_id,
                &format!("SELECT gm.member_id {from} AND gm.member_type = 'User'"),
                extra.clone(),
            );
        }
        b.push(
            format!(
                "DELETE FROM group_members AS gm WHERE gm.group_id = $2 AND gm.org_id = $1 AND {cond}"
            ),
            args(),
        );
    }
}

/// The members that membership operations add (or keep, for a replace).
fn added_refs(ops: &[MemberOp]) -> impl Iterator<Item = &MemberRef> {
    ops.iter()
        .filter_map(|op| match op {
            MemberOp::Add(refs) | MemberOp::Replace(refs) => Some(refs.iter()),
            _ => None,
        })
        .flatten()
}

/// Whether any role mapping matches group `t` now.
const GROUP_MAPS: &str = "EXISTS (SELECT 1 FROM role_mappings rm WHERE rm.org_id = t.org_id AND \
     ((rm.match_on = 'displayName' AND rm.group_value_norm = t.display_name_norm) OR \
     (rm.match_on = 'externalId' AND rm.group_value = t.external_id)))";

fn user_name_conflict(err: CoreError, user_name: &str) -> CoreError {
    match err {
        CoreError::Store(StoreError::Unique(_)) => CoreError::Uniqueness(format!(
            "userName \"{user_name}\" is already taken in this organization"
        )),
        other => other,
    }
}

impl Store for SqlStore {
    async fn create_org(&self, slug: &str, name: &str, actor: &Actor) -> CoreResult<Org> {
        let org = Org {
            id: OrgId::from_store(new_id()),
            slug: slug.to_owned(),
            name: name.to_owned(),
            created_at: now(),
        };
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO orgs (id, slug, name, created_at) VALUES ($1, $2, $3, $4)")
            .bind(org.id.as_str())
            .bind(slug)
            .bind(name)
            .bind(org.created_at.as_str())
            .execute(&mut *tx)
            .await
            .map_err(|err| match db_err(err) {
                StoreError::Unique(_) => {
                    CoreError::Uniqueness(format!("organization \"{slug}\" already exists"))
                }
                other => CoreError::Store(other),
            })?;
        let ev = EventDraft::new(
            EventKind::OrganizationCreated,
            org.id.as_str(),
            serde_json::json!({"slug": slug, "name": name}),
        );
        let mut b = Batch::default();
        b.event(Some(&org.id), actor, &ev);
        tx.finish(self.d, b).await.map_err(e)?;
        tx.commit().await?;
        Ok(org)
    }

    async fn list_orgs(&self) -> CoreResult<Vec<Org>> {
        let rows = sqlx::query("SELECT id, slug, name, created_at FROM orgs ORDER BY slug")
            .fetch_all(&mut *self.read_conn().await?)
            .await
            .map_err(e)?;
        rows.iter().map(Self::org_from_row).collect()
    }

    async fn org_by_slug(&self, slug: &str) -> CoreResult<Option<Org>> {
        let row = sqlx::query("SELECT id, slug, name, created_at FROM orgs WHERE slug = $1")
            .bind(slug)
            .fetch_optional(&mut *self.read_conn().await?)
            .await
            .map_err(e)?;
        row.as_ref().map(Self::org_from_row).transpose()
    }

    async fn create_directory(
        &self,
        org: &Org,
        name: &str,
        actor: &Actor,
    ) -> CoreResult<Directory> {
        let dir = Directory {
            id: new_id(),
            org_id: org.id.clone(),
            org_slug: org.slug.clone(),
            name: name.to_owned(),
            created_at: now(),
        };
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO directories (id, org_id, name, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(dir.id.as_str())
        .bind(org.id.as_str())
        .bind(name)
        .bind(dir.created_at.as_str())
        .execute(&mut *tx)
        .await
        .map_err(e)?;
        let ev = EventDraft::new(
            EventKind::DirectoryCreated,
            &dir.id,
            serde_json::json!({"name": name}),
        );
        let mut b = Batch::default();
        b.event(Some(&org.id), actor, &ev);
        tx.finish(self.d, b).await.map_err(e)?;
        tx.commit().await?;
        Ok(dir)
    }

    async fn list_directories(&self, org: Option<&OrgId>) -> CoreResult<Vec<Directory>> {
        let base = "SELECT d.id, d.org_id, o.slug, d.name, d.created_at FROM directories d \
                    JOIN orgs o ON o.id = d.org_id";
        let rows = match org {
            Some(o) => {
                sqlx::query(&format!("{base} WHERE d.org_id = $1 ORDER BY d.created_at"))
                    .bind(o.as_str())
                    .fetch_all(&mut *self.read_conn().await?)
                    .await
            }
            None => {
                sqlx::query(&format!("{base} ORDER BY o.slug, d.created_at"))
                    .fetch_all(&mut *self.read_conn().await?)
                    .await
            }
        }
        .map_err(e)?;
        rows.iter().map(Self::dir_from_row).collect()
    }

    async fn directory(&self, id: &str) -> CoreResult<Option<Directory>> {
        let row = sqlx::query(
            "SELECT d.id, d.org_id, o.slug, d.name, d.created_at FROM directories d \
             JOIN orgs o ON o.id = d.org_id WHERE d.id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *self.read_conn().await?)
        .await
        .map_err(e)?;
        row.as_ref().map(Self::dir_from_row).transpose()
    }

    async fn add_token(
        &self,
        directory: &Directory,
        token_hash: &str,
        read_only: bool,
        actor: &Actor,
    ) -> CoreResult<TokenInfo> {
        let info = TokenInfo {
            id: new_id(),
            directory_id: directory.id.clone(),
            read_only,
            created_at: now(),
            revoked_at: None,
        };
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO directory_tokens (id, directory_id, org_id, token_hash, read_only, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(info.id.as_str())
        .bind(directory.id.as_str())
        .bind(directory.org_id.as_str())
        .bind(token_hash)
        .bind(i64::from(read_only))
        .bind(info.created_at.as_str())
        .execute(&mut *tx)
        .await
        .map_err(e)?;
        let ev = EventDraft::new(
            EventKind::DirectoryTokenCreated,
            &directory.id,
            serde_json::json!({"token_id": info.id, "read_only": read_only}),
        );
        let mut b = Batch::default();
        b.event(Some(&directory.org_id), actor, &ev);
        tx.finish(self.d, b).await.map_err(e)?;
        tx.commit().await?;
        Ok(info)
    }

    async fn revoke_token(
        &self,
        directory: &Directory,
        token_id: &str,
        actor: &Actor,
    ) -> CoreResult<bool> {
        let mut tx = self.begin().await?;
        let r = sqlx::query(
            "UPDATE directory_tokens SET revoked_at = $1 WHERE id = $2 AND directory_id = $3 AND revoked_at IS NULL",
        )
        .bind(now())
        .bind(token_id)
        .bind(directory.id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(e)?;
        if r.rows_affected() == 0 {
            return Ok(false);
        }
        let ev = EventDraft::new(
            EventKind::DirectoryTokenRevoked,
            &directory.id,
            serde_json::json!({"token_id": token_id}),
        );
        let mut b = Batch::default();
        b.event(Some(&directory.org_id), actor, &ev);
        tx.finish(self.d, b).await.map_err(e)?;
        tx.commit().await?;
        Ok(true)
    }

    async fn list_tokens(&self, directory_id: &str) -> CoreResult<Vec<TokenInfo>> {
        let rows = sqlx::query(
            "SELECT id, directory_id, read_only, created_at, revoked_at FROM directory_tokens \
             WHERE directory_id = $1 ORDER BY created_at",
        )
        .bind(directory_id)
        .fetch_all(&mut *self.read_conn().await?)
        .await
        .map_err(e)?;
        rows.iter().map(Self::token_from_row).collect()
    }

    async fn token_grant(&self, token_hash: &str) -> CoreResult<Option<TokenGrant>> {
        let row = sqlx::query(
            "SELECT id, directory_id, org_id, read_only FROM directory_tokens \
             WHERE token_hash = $1 AND revoked_at IS NULL",
        )
        .bind(token_hash)
        .fetch_optional(&mut *self.read_conn().await?)
        .await
        .map_err(e)?;
        match row {
            None => Ok(None),
            Some(r) => Ok(Some(TokenGrant {
                token_id: get(&r, "id")?,
                directory_id: get(&r, "directory_id")?,
                org: OrgId::from_store(get(&r, "org_id")?),
                read_only: get::<i64>(&r, "read_only")? != 0,
            })),
        }
    }

    async fn insert_user(&self, scope: &Scope, u: NewUser, event: EventDraft) -> CoreResult<User> {
        let ts = now();
        let user_name = str_attr(&u.attrs, "userName")
            .unwrap_or_default()
            .to_owned();
        let active = u
            .attrs
            .get("active")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let sync = scope.directory_id().map(|_| ts.clone());
        let org = scope.org.as_str();
        let mut b = Batch::default();
        positions::take_in(&mut b, org, "User");
        b.push(
            format!(
                "INSERT INTO users (id, org_id, user_name, user_name_norm, external_id, active, attrs, version, \
                 created_at, updated_at, provenance, directory_id, last_directory_sync_at, pos, email_norm) \
                 VALUES ($1, $2, $3, $4, $5, $6, {}, 1, $8, $8, $9, $10, $11, {}, $13)",
                self.d.json_param(7),
                positions::taken(2, 12)
            ),
            vec![
                Arg::Str(u.id.clone()),
                Arg::Str(org.to_owned()),
                Arg::Str(user_name.clone()),
                Arg::Str(fold(&user_name)),
                Arg::opt(str_attr(&u.attrs, "externalId").map(str::to_owned)),
                Arg::I64(i64::from(active)),
                Arg::Str(attrs_text(&u.attrs)),
                Arg::Str(ts.clone()),
                Arg::Str(u.provenance.as_str().to_owned()),
                Arg::opt(scope.directory_id().map(str::to_owned)),
                Arg::opt(sync.clone()),
                Arg::Str("User".to_owned()),
                Arg::opt(user_email_key(&u.attrs)),
            ],
        );
        b.event(Some(&scope.org), &scope.actor, &event);
        self.write_unread(b, |err| user_name_conflict(e(err), &user_name))
            .await?;
        Ok(User {
            id: u.id,
            attrs: u.attrs,
            meta: Meta {
                version: 1,
                created: ts.clone(),
                last_modified: ts,
            },
            provenance: u.provenance,
            last_directory_sync_at: sync,
            last_login_at: None,
            groups: Vec::new(),
            roles: Vec::new(),
        })
    }

    async fn get_user(&self, scope: &Scope, id: &str) -> CoreResult<Option<User>> {
        let mut c = self.read_conn().await?;
        self.fetch_user(&mut c, scope, id, false).await
    }

    async fn get_listed_user(&self, scope: &Scope, id: &str) -> CoreResult<Option<ListedUser>> {
        self.user_by_key(scope, Key::Id, id).await
    }

    async fn user_by_user_name(&self, scope: &Scope, user_name: &str) -> CoreResult<Option<User>> {
        let folded = fold(user_name);
        self.read_one(
            "users",
            &self.user_cols(),
            "t.user_name_norm",
            scope,
            &folded,
        )
        .await
    }

    async fn list_listed_users(
        &self,
        scope: &Scope,
        q: &ListQuery,
    ) -> CoreResult<Page<ListedUser>> {
        self.list(scope, q, ResourceKind::User).await
    }

    async fn list_users(&self, scope: &Scope, q: &ListQuery) -> CoreResult<Page<User>> {
        self.list(scope, q, ResourceKind::User).await
    }

    async fn update_user<F>(&self, scope: &Scope, id: &str, f: F) -> CoreResult<User>
    where
        F: FnOnce(&User) -> CoreResult<UserChange> + Send,
    {
        let mut tx = self.begin_fresh().await?;
        let current = self
            .fetch_user(&mut tx, scope, id, true)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("User {id}")))?;
        let change = f(&current)?;
        check_version(change.expect_version, current.meta.version)?;
        let ts = now();
        let user_name = str_attr(&change.attrs, "userName")
            .unwrap_or_default()
            .to_owned();
        let active = change
            .attrs
            .get("active")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let sync = match scope.directory_id() {
            Some(_) => Some(ts.clone()),
            None => current.last_directory_sync_at.clone(),
        };
        let mut b = Batch::default();
        b.push(
            format!(
                "UPDATE users SET user_name = $1, user_name_norm = $2, external_id = $3, active = $4, attrs = {}, \
                 version = version + 1, updated_at = $6, last_directory_sync_at = $7, email_norm = $10 \
                 WHERE org_id = $8 AND id = $9",
                self.d.json_param(5)
            ),
            vec![
                Arg::Str(user_name.clone()),
                Arg::Str(fold(&user_name)),
                Arg::opt(str_attr(&change.attrs, "externalId").map(str::to_owned)),
                Arg::I64(i64::from(active)),
                Arg::Str(attrs_text(&change.attrs)),
                Arg::Str(ts.clone()),
                Arg::opt(sync.clone()),
                Arg::Str(scope.org.as_str().to_owned()),
                Arg::Str(id.to_owned()),
                Arg::opt(user_email_key(&change.attrs)),
            ],
        );
        if change.revoke_sessions {
            revoke_sessions_in(&mut b, self.d, scope, id, "user_deactivated");
        }
        for ev in &change.events {
            b.event(Some(&scope.org), &scope.actor, ev);
        }
        if let Some(a) = change.audit {
            b.audit(Some(&scope.org), &scope.actor, a);
        }
        tx.finish(self.d, b)
            .await
            .map_err(|err| user_name_conflict(e(err), &user_name))?;
        tx.commit().await?;
        if change.revoke_sessions {
            crate::metrics::deprovisioned(crate::core::context::current().received);
        }
        Ok(User {
            id: current.id,
            attrs: change.attrs,
            meta: Meta {
                version: current.meta.version + 1,
                created: current.meta.created,
                last_modified: ts,
            },
            provenance: current.provenance,
            last_directory_sync_at: sync,
            last_login_at: current.last_login_at,
            groups: current.groups,
            roles: current.roles,
        })
    }

    async fn delete_user(
        &self,
        scope: &Scope,
        id: &str,
        expect_version: Option<Expect>,
        event: EventDraft,
    ) -> CoreResult<bool> {
        let mut tx = self.begin_fresh().await?;
        let Some(current) = self.fetch_user(&mut tx, scope, id, true).await? else {
            return Ok(false);
        };
        check_version(expect_version, current.meta.version)?;
        let mut b = Batch::default();
        // The user's event first: it is also the action's audit entry.
        b.event(Some(&scope.org), &scope.actor, &event);
        revoke_sessions_in(&mut b, self.d, scope, id, "user_deleted");
        roles::drop_user_roles(&mut b, self.d, &scope.org, &scope.actor, id);
        // Its IdP links go too: nothing they vouched for passes to a later user.
        b.push(
            "DELETE FROM user_identities WHERE org_id = $1 AND user_id = $2",
            vec![
                Arg::Str(scope.org.as_str().to_owned()),
                Arg::Str(id.to_owned()),
            ],
        );
        delete_row_in(&mut b, self.d, scope, ResourceKind::User, id);
        tx.finish(self.d, b).await.map_err(e)?;
        tx.commit().await?;
        crate::metrics::deprovisioned(crate::core::context::current().received);
        Ok(true)
    }

    async fn insert_group(
        &self,
        scope: &Scope,
        g: NewGroup,
        event: EventDraft,
    ) -> CoreResult<Group> {
        let ts = now();
        let name = str_attr(&g.attrs, "displayName")
            .unwrap_or_default()
            .to_owned();
        let org = scope.org.as_str();
        let mut b = Batch::default();
        positions::take_in(&mut b, org, "Group");
        b.push(
            format!(
                "INSERT INTO org_groups (id, org_id, display_name, display_name_norm, external_id, attrs, version, \
                 created_at, updated_at, directory_id, pos) VALUES ($1, $2, $3, $4, $5, {}, 1, $7, $7, $8, {})",
                self.d.json_param(6),
                positions::taken(2, 9)
            ),
            vec![
                Arg::Str(g.id.clone()),
                Arg::Str(org.to_owned()),
                Arg::Str(name.clone()),
                Arg::Str(fold(&name)),
                Arg::opt(str_attr(&g.attrs, "externalId").map(str::to_owned)),
                Arg::Str(attrs_text(&g.attrs)),
                Arg::Str(ts.clone()),
                Arg::opt(scope.directory_id().map(str::to_owned)),
                Arg::Str("Group".to_owned()),
            ],
        );
        let add = [MemberOp::Add(g.members.clone())];
        if !g.members.is_empty() {
            self.member_op_in(&mut b, scope, &g.id, &add[0], true);
        }
        b.event(Some(&scope.org), &scope.actor, &event);
        let mut tx = self.begin_fresh().await?;
        // The group does not exist yet, so no member can be the group itself.
        self.check_members(&mut tx, scope, &g.id, &add).await?;
        tx.finish(self.d, b).await.map_err(e)?;
        tx.commit().await?;
        Ok(Group {
            id: g.id,
            attrs: g.attrs,
            meta: Meta {
                version: 1,
                created: ts.clone(),
                last_modified: ts,
            },
        })
    }

    async fn get_group(&self, scope: &Scope, id: &str) -> CoreResult<Option<Group>> {
        let mut c = self.read_conn().await?;
        self.fetch_group(&mut c, scope, id, false).await
    }

    async fn list_groups(&self, scope: &Scope, q: &ListQuery) -> CoreResult<Page<Group>> {
        self.list(scope, q, ResourceKind::Group).await
    }

    async fn update_group<F>(&self, scope: &Scope, id: &str, f: F) -> CoreResult<Group>
    where
        F: FnOnce(&Group) -> CoreResult<GroupChange> + Send,
    {
        let _turn = self.group_turn(id).await;
        let mut tx = self.begin_fresh().await?;
        let (current, maps) = self
            .fetch_group_for_write(&mut tx, scope, id)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("Group {id}")))?;
        let change = f(&current)?;
        check_version(change.expect_version, current.meta.version)?;
        let ts = now();
        let name = str_attr(&change.attrs, "displayName")
            .unwrap_or_default()
            .to_owned();
        self.check_members(&mut tx, scope, id, &change.member_ops)
            .await?;
        let mut b = Batch::default();
        b.push(
            format!(
                "UPDATE org_groups SET display_name = $1, display_name_norm = $2, external_id = $3, attrs = {}, \
                 version = version + 1, updated_at = $5 WHERE org_id = $6 AND id = $7",
                self.d.json_param(4)
            ),
            vec![
                Arg::Str(name.clone()),
                Arg::Str(fold(&name)),
                Arg::opt(str_attr(&change.attrs, "externalId").map(str::to_owned)),
                Arg::Str(attrs_text(&change.attrs)),
                Arg::Str(ts.clone()),
                Arg::Str(scope.org.as_str().to_owned()),
                Arg::Str(id.to_owned()),
            ],
        );
        for ev in &change.events {
            b.event(Some(&scope.org), &scope.actor, ev);
        }
        if let Some(a) = change.audit {
            b.audit(Some(&scope.org), &scope.actor, a);
        }
        // A new name or externalId can change what the group maps to.
        let renamed = str_attr(&current.attrs, "displayName")
            != str_attr(&change.attrs, "displayName")
            || str_attr(&current.attrs, "externalId") != str_attr(&change.attrs, "externalId");
        if renamed {
            roles::refresh_group_roles(&mut b, self.d, &scope.org, &scope.actor, id);
        }
        for op in &change.member_ops {
            self.member_op_in(&mut b, scope, id, op, maps || renamed);
        }
        tx.finish(self.d, b).await.map_err(e)?;
        tx.commit().await?;
        Ok(Group {
            id: current.id,
            attrs: change.attrs,
            meta: Meta {
                version: current.meta.version + 1,
                created: current.meta.created,
                last_modified: ts,
            },
        })
    }

    async fn try_change_members(
        &self,
        scope: &Scope,
        id: &str,
        ops: &[MemberOp],
        expect_version: Option<Expect>,
        audit: AuditDraft,
    ) -> CoreResult<Option<i64>> {
        // Only queued writes read preconditions back; elsewhere the caller reads first.
        if !self.engine.queues_checked_writes() {
            return Ok(None);
        }
        let mut seen = std::collections::HashSet::new();
        let mut added = Vec::new();
        for r in added_refs(ops) {
            if r.kind == Some(MemberType::Group) {
                return Ok(None);
            }
            if seen.insert(r.id.as_str()) {
                added.push(r.id.as_str());
            }
        }
        let mut b = Batch::default();
        // The group as `update_group` would find it: there, of this version, mapping to no
        // role (so no role moves), and every added member a user of the organization.
        let mut args = vec![
            Arg::Str(scope.org.as_str().to_owned()),
            Arg::Str(id.to_owned()),
            Arg::Str(Value::from(added.clone()).to_string()),
            Arg::I64(added.len() as i64),
        ];
        let version = match expect_version {
            Some(Expect::Version(v)) => {
                args.push(Arg::I64(v));
                " AND t.version = $5"
            }
            // Holds for no version: `update_group` reads the group and answers.
            Some(Expect::Unissued) => return Ok(None),
            None => "",
        };
        b.check(
            format!(
                "SELECT (SELECT t.version + 1 FROM org_groups t WHERE t.org_id = $1 AND t.id = $2{version} \
                 AND NOT {GROUP_MAPS} AND (SELECT count(*) FROM {} CROSS JOIN users u \
                 WHERE u.id = k.value AND u.org_id = $1) = $4) AS v",
                self.d.json_strings(3, "k")
            ),
            args,
        );
        b.push(
            "UPDATE org_groups SET version = version + 1, updated_at = $3 WHERE org_id = $1 AND id = $2",
            vec![
                Arg::Str(scope.org.as_str().to_owned()),
                Arg::Str(id.to_owned()),
                Arg::Str(now()),
            ],
        );
        for op in ops {
            self.member_op_in(&mut b, scope, id, op, false);
        }
        b.audit(Some(&scope.org), &scope.actor, audit);
        match self.engine.submit_checked(b).await? {
            Ok(Some(v)) => Ok(Some(v)),
            Ok(None) => Err(CoreError::Store(StoreError::Other(
                "membership change without its precondition".into(),
            ))),
            Err(_) => {
                tracing::debug!(
                    group = id,
                    "membership change declined; reading the group first"
                );
                Ok(None)
            }
        }
    }

    async fn delete_group(
        &self,
        scope: &Scope,
        id: &str,
        expect_version: Option<Expect>,
        event: EventDraft,
    ) -> CoreResult<bool> {
        let mut tx = self.begin_fresh().await?;
        let Some(current) = self.fetch_group(&mut tx, scope, id, true).await? else {
            return Ok(false);
        };
        check_version(expect_version, current.meta.version)?;
        let mut b = Batch::default();
        b.event(Some(&scope.org), &scope.actor, &event);
        roles::drop_group_roles(&mut b, self.d, &scope.org, &scope.actor, id);
        delete_row_in(&mut b, self.d, scope, ResourceKind::Group, id);
        tx.finish(self.d, b).await.map_err(e)?;
        tx.commit().await?;
        Ok(true)
    }

    async fn group_members(&self, scope: &Scope, group_id: &str) -> CoreResult<Vec<Member>> {
        let rows = sqlx::query(
            "SELECT m.member_id, m.member_type, COALESCE(u.user_name, g.display_name) AS display \
             FROM group_members m \
             LEFT JOIN users u ON m.member_type = 'User' AND u.id = m.member_id \
             LEFT JOIN org_groups g ON m.member_type = 'Group' AND g.id = m.member_id \
             WHERE m.org_id = $1 AND m.group_id = $2 ORDER BY m.member_id",
        )
        .bind(scope.org.as_str())
        .bind(group_id)
        .fetch_all(&mut *self.read_conn().await?)
        .await
        .map_err(e)?;
        rows.iter().map(super::admin_store::member_of).collect()
    }
}
