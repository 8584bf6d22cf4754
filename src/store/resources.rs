//! What users and groups share: decoding their rows, the JSON page read behind every list,
//! point reads by id or unique key, position paging, and deleting a resource with its events.

use super::engine::batch::Batch;
use super::engine::point_reads::Key;
use super::engine::{Arg, bind_all, positions};
use super::filter_sql::{ResourceKind, SqlBuilder};
use super::sql_store::{SqlStore, count_rows, e, get};
use super::{Dialect, Elem};
use crate::core::error::{CoreError, CoreResult, StoreError};
use crate::core::events::EventKind;
use crate::core::model::*;
use crate::core::query::{Cond, Field, ListQuery, Op, Page, Val};
use serde_json::{Map, Value};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

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
pub(super) trait PageItem: Sized {
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

/// In a batch: deletes a user or group row with its memberships (as member, and for a
/// group as container) and gives its position back (see `positions`).
/// The resource's memberships *as a member* end with it: one `group.member_removed` each.
/// A deleted group's own members get no per-member event (`group.deleted` says it).
pub(super) fn delete_row_in(
    b: &mut Batch,
    d: Dialect,
    scope: &Scope,
    kind: ResourceKind,
    id: &str,
) {
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
    if d == Dialect::Postgres {
        // The position as the row had it when deleted (a seal round may have given it one
        // meanwhile: DELETE waits for it and returns what it wrote). The counts leave the
        // counter row to the seal, so deletions never wait on each other. Unsealed, the row
        // was never counted, and leaves no position behind.
        b.push(
            format!(
                "WITH gone AS (DELETE FROM {table} WHERE org_id = $1 AND id = $2 RETURNING org_id, pos) \
                 INSERT INTO deleted_positions (org_id, kind, pos) \
                 SELECT org_id, $3, pos FROM gone WHERE pos IS NOT NULL"
            ),
            args(),
        );
        return;
    }
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

pub(super) fn attrs_text(m: &Map<String, Value>) -> String {
    Value::Object(m.clone()).to_string()
}

pub(super) fn str_attr<'a>(m: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    m.get(k).and_then(Value::as_str)
}

impl SqlStore {
    /// The user of `scope` whose `key` is `value`: coalesced on SQLite, else one statement.
    pub(super) async fn user_by_key<T: PageItem>(
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
    pub(super) async fn read_one<T: PageItem>(
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

    pub(super) fn user_cols(&self) -> String {
        format!(
            "t.id, {} AS attrs, t.version, t.created_at, t.updated_at, t.provenance, \
             t.last_directory_sync_at, t.last_login_at, {} AS groups_json, {} AS roles_json",
            self.d.json_out("t.attrs"),
            self.d.user_groups_json("t"),
            self.d.user_roles_json("t")
        )
    }

    /// The columns of `user_cols`/`group_cols` for a JSON aggregate (`json_elems`): on
    /// PostgreSQL the JSON ones as JSON values (`attrs` as stored, groups and roles as built),
    /// not as text the aggregate would parse again (a page of 100 users: a fifth of its cost
    /// in the database); the same columns on SQLite.
    pub(super) fn json_cols(&self, kind: ResourceKind) -> String {
        match (self.d, kind) {
            (Dialect::Sqlite, ResourceKind::User) => self.user_cols(),
            (Dialect::Sqlite, ResourceKind::Group) => self.group_cols(),
            (Dialect::Postgres, ResourceKind::User) => format!(
                "t.id, t.attrs AS attrs, t.version, t.created_at, t.updated_at, t.provenance, \
                 t.last_directory_sync_at, t.last_login_at, {} AS groups_json, {} AS roles_json",
                self.d.user_groups_value("t"),
                self.d.user_roles_value("t")
            ),
            (Dialect::Postgres, ResourceKind::Group) => {
                "t.id, t.attrs AS attrs, t.version, t.created_at, t.updated_at".to_owned()
            }
        }
    }

    pub(super) fn group_cols(&self) -> String {
        format!(
            "t.id, {} AS attrs, t.version, t.created_at, t.updated_at",
            self.d.json_out("t.attrs")
        )
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

    /// The JSON elements a list row is aggregated into (see `Dialect::json_rows`), over the
    /// columns of `user_cols`/`group_cols` aliased `x`.
    pub(super) fn json_elems(&self, kind: ResourceKind) -> Vec<String> {
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

    pub(super) async fn list<T: PageItem>(
        &self,
        scope: &Scope,
        q: &ListQuery,
        kind: ResourceKind,
    ) -> CoreResult<Page<T>> {
        if let Some((key, value)) = unique_match(kind, q.filter.as_ref()) {
            return self.list_by_unique_key(scope, q, kind, key, value).await;
        }
        let table = match kind {
            ResourceKind::User => "users",
            ResourceKind::Group => "org_groups",
        };
        let cols = self.json_cols(kind);
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
        let pos = self.d.list_pos("t");
        let order = self.d.order_clause(key.as_deref(), desc, &pos);
        let limit = b.push(Arg::I64(q.count as i64));
        let offset = b.push(Arg::I64(q.start_index.saturating_sub(1) as i64));
        let sorted = key.as_ref().map(|_| desc);
        let sk = key.map_or_else(String::new, |k| format!(", {k} AS sk_"));
        let inner = format!(
            "SELECT {cols}, {pos} AS pos_, COUNT(*) OVER () AS total_{sk} FROM {table} t WHERE {where_sql} \
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
        // Positions and counts of this node's writes are given after commit (PostgreSQL).
        self.sealed().await;
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
}
