//! [`GroupStore`]: group rows, membership changes as set operations, and member listings.

use super::engine::batch::{Batch, EventfulWrite, GATE};
use super::engine::combine::RowLock;
use super::engine::{Arg, Dialect, bind_all, positions};
use super::filter_sql::{ResourceKind, SqlBuilder};
use super::resources::{attrs_text, delete_row_in, str_attr};
use super::roles;
use super::sql_store::{SqlStore, check_version, e, fold, get, id_list};
use super::users::GROUP_MAPS;
use crate::core::audit::AuditDraft;
use crate::core::error::{CoreError, CoreResult, StoreError};
use crate::core::events::{EventDraft, EventKind};
use crate::core::model::*;
use crate::core::now;
use crate::core::query::{ListQuery, Page};
use crate::core::store::*;
use serde_json::Value;
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

/// The members that membership operations add (or keep, for a replace).
fn added_refs(ops: &[MemberOp]) -> impl Iterator<Item = &MemberRef> {
    ops.iter()
        .filter_map(|op| match op {
            MemberOp::Add(refs) | MemberOp::Replace(refs) => Some(refs.iter()),
            _ => None,
        })
        .flatten()
}

/// A member row (`member_id`, `member_type`, `display`).
fn member_of(r: &AnyRow) -> CoreResult<Member> {
    let kind: String = get(r, "member_type")?;
    Ok(Member {
        id: get(r, "member_id")?,
        kind: if kind == "Group" {
            MemberType::Group
        } else {
            MemberType::User
        },
        display: get(r, "display")?,
    })
}

impl SqlStore {
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
             WHERE gm.org_id = $1 AND gm.group_id = $2 AND gm.member_id = x.id LIMIT 1) IS NULL"
        );
        let insert = format!(
            "INSERT INTO group_members (org_id, group_id, member_id, member_type) \
             SELECT org_id, $2, id, kind FROM ({candidate}) x WHERE {GATE} \
             ON CONFLICT DO NOTHING"
        );
        let data = self.d.json_object(&[
            ("group_id", "CAST($2 AS TEXT)"),
            ("member_id", "x.id"),
            ("member_type", "x.kind"),
        ]);
        if !roles {
            // The rows inserted are the new members: on PostgreSQL the insert returns them.
            let returning = format!(
                "RETURNING group_id AS rid, {} AS data",
                self.d.json_object(&[
                    ("group_id", "group_id"),
                    ("member_id", "member_id"),
                    ("member_type", "member_type"),
                ])
            );
            b.write_with_events(
                &scope.org,
                &scope.actor,
                EventfulWrite {
                    kind: EventKind::GroupMemberAdded,
                    resource_id: "CAST($2 AS TEXT)",
                    data: &data,
                    from: &new_member,
                    write: &insert,
                    returning: &returning,
                    args: args(),
                },
            );
            return;
        }
        b.events_select(
            &scope.org,
            &scope.actor,
            EventKind::GroupMemberAdded,
            "CAST($2 AS TEXT)",
            &data,
            &new_member,
            args(),
        );
        roles::grant_group_roles(
            b,
            self.d,
            &scope.org,
            &scope.actor,
            group_id,
            &format!("SELECT x.id AS user_id {new_member} AND x.kind = 'User'"),
            vec![Arg::Str(list.clone())],
        );
        b.push(insert, args());
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
        let data = self.d.json_object(&[
            ("group_id", "gm.group_id"),
            ("member_id", "gm.member_id"),
            ("member_type", "gm.member_type"),
        ]);
        let delete = format!(
            "DELETE FROM group_members AS gm WHERE (gm.group_id = $2 AND gm.org_id = $1 AND {cond}) \
             AND {GATE}"
        );
        if !roles {
            // On PostgreSQL the delete returns the members it removed.
            b.write_with_events(
                &scope.org,
                &scope.actor,
                EventfulWrite {
                    kind: EventKind::GroupMemberRemoved,
                    resource_id: "gm.group_id",
                    data: &data,
                    from: &from,
                    write: &delete,
                    returning: &format!("RETURNING gm.group_id AS rid, {data} AS data"),
                    args: args(),
                },
            );
            return;
        }
        b.events_select(
            &scope.org,
            &scope.actor,
            EventKind::GroupMemberRemoved,
            "gm.group_id",
            &data,
            &from,
            args(),
        );
        roles::revoke_group_roles(
            b,
            self.d,
            &scope.org,
            &scope.actor,
            group_id,
            &format!("SELECT gm.member_id {from} AND gm.member_type = 'User'"),
            extra.clone(),
        );
        b.push(delete, args());
    }
}

impl GroupStore for SqlStore {
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
        positions::take_in(&mut b, self.d, org, "Group");
        b.push(
            format!(
                "INSERT INTO org_groups (id, org_id, display_name, display_name_norm, external_id, attrs, version, \
                 created_at, updated_at, directory_id, pos) VALUES ($1, $2, $3, $4, $5, {}, 1, $7, $7, $8, {})",
                self.d.json_param(6),
                positions::taken(self.d, 2, 9)
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
        // The group's own event first, then its members' (a change's events: the resource's,
        // then what follows from it).
        b.event(Some(&scope.org), &scope.actor, &event);
        let add = [MemberOp::Add(g.members.clone())];
        if !g.members.is_empty() {
            self.member_op_in(&mut b, scope, &g.id, &add[0], true);
        }
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

    async fn group_page(
        &self,
        org: &OrgId,
        q: Option<&str>,
        after: i64,
        limit: i64,
    ) -> CoreResult<Vec<GroupLine>> {
        self.sealed().await;
        let mut args = vec![Arg::Str(org.as_str().to_owned()), Arg::I64(after)];
        let mut cond = String::new();
        if let Some(q) = q.map(str::trim).filter(|q| !q.is_empty()) {
            args.push(Arg::Str(fold(q)));
            cond = format!(
                " AND {}",
                self.d
                    .contains("t.display_name_norm", &format!("${}", args.len()))
            );
        }
        args.push(Arg::I64(limit));
        let sql = format!(
            "SELECT t.id, {} AS attrs, t.version, t.created_at, t.updated_at, t.pos AS pos_, \
               (SELECT COUNT(*) FROM group_members m WHERE m.org_id = t.org_id AND m.group_id = t.id) AS members_n \
             FROM org_groups t WHERE t.org_id = $1 AND t.pos > $2{cond} ORDER BY t.pos LIMIT ${}",
            self.d.json_out("t.attrs"),
            args.len()
        );
        let rows = bind_all(sqlx::query(&sql), &args)
            .fetch_all(&mut *self.read_conn().await?)
            .await
            .map_err(e)?;
        rows.iter()
            .map(|r| {
                Ok(GroupLine {
                    pos: get(r, "pos_")?,
                    group: Self::group_from_row(r)?,
                    members: get(r, "members_n")?,
                })
            })
            .collect()
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
        // Every added member probed by id, as a scalar subquery: as a join, PostgreSQL
        // kept a plan made while the organization was small and hashed all its users
        // (90 ms per change at 100,000 users).
        let holds = format!(
            "t.org_id = $1 AND t.id = $2{version} AND NOT {GROUP_MAPS} AND (SELECT count(*) FROM {} \
             WHERE (SELECT 1 FROM users u WHERE u.id = k.value AND u.org_id = $1 LIMIT 1) \
             IS NOT NULL) = $4",
            self.d.json_strings(3, "k")
        );
        match self.d {
            // The precondition and the version's step as one statement: the update returns
            // the new version where the precondition holds, and no row (changing nothing)
            // where it does not.
            Dialect::Postgres => {
                let at = args.len() + 1;
                args.push(Arg::Str(now()));
                b.check(
                    format!(
                        "UPDATE org_groups t SET version = t.version + 1, updated_at = ${at} \
                         WHERE {holds} RETURNING t.version AS v"
                    ),
                    args,
                );
            }
            Dialect::Sqlite => {
                b.check(
                    format!("SELECT (SELECT t.version + 1 FROM org_groups t WHERE {holds}) AS v"),
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
            }
        }
        for op in ops {
            self.member_op_in(&mut b, scope, id, op, false);
        }
        b.audit(Some(&scope.org), &scope.actor, audit);
        // Changes of one group queue together (PostgreSQL: sharing transactions that take
        // the group's row lock first, `combine`).
        let lock = RowLock {
            key: format!("{}/{id}", scope.org.as_str()),
            sql: format!(
                "SELECT 1 FROM org_groups t WHERE t.org_id = $1 AND t.id = $2{}",
                self.for_update()
            ),
            args: vec![
                Arg::Str(scope.org.as_str().to_owned()),
                Arg::Str(id.to_owned()),
            ],
        };
        match self.engine.submit_checked(lock, b).await? {
            Ok(Some(v)) => Ok(Some(v)),
            Ok(None) => Err(CoreError::Store(StoreError::Other(
                "membership change without its precondition".into(),
            ))),
            Err(err) => match super::db_err(err) {
                // Out of reach: the reading way would only wait for it again.
                StoreError::Unavailable(m) => Err(CoreError::Store(StoreError::Unavailable(m))),
                _ => {
                    tracing::debug!(
                        group = id,
                        "membership change declined; reading the group first"
                    );
                    Ok(None)
                }
            },
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
             LEFT JOIN users u ON m.member_type = 'User' AND u.org_id = m.org_id AND u.id = m.member_id \
             LEFT JOIN org_groups g ON m.member_type = 'Group' AND g.org_id = m.org_id AND g.id = m.member_id \
             WHERE m.org_id = $1 AND m.group_id = $2 ORDER BY m.member_id",
        )
        .bind(scope.org.as_str())
        .bind(group_id)
        .fetch_all(&mut *self.read_conn().await?)
        .await
        .map_err(e)?;
        rows.iter().map(member_of).collect()
    }

    async fn member_count(&self, org: &OrgId, group_id: &str) -> CoreResult<i64> {
        let r = sqlx::query(
            "SELECT COUNT(*) AS n FROM group_members WHERE group_id = $1 AND org_id = $2",
        )
        .bind(group_id)
        .bind(org.as_str())
        .fetch_one(&mut *self.read_conn().await?)
        .await
        .map_err(e)?;
        get(&r, "n")
    }

    async fn member_page(
        &self,
        org: &OrgId,
        group_id: &str,
        after: Option<&str>,
        limit: i64,
    ) -> CoreResult<Vec<Member>> {
        let rows = sqlx::query(&format!(
            "SELECT m.member_id, m.member_type, COALESCE(u.user_name, g.display_name) AS display \
             FROM group_members m \
             LEFT JOIN users u ON m.member_type = 'User' AND u.org_id = m.org_id AND u.id = m.member_id \
             LEFT JOIN org_groups g ON m.member_type = 'Group' AND g.org_id = m.org_id AND g.id = m.member_id \
             WHERE m.org_id = $1 AND m.group_id = $2 AND {} > $3 ORDER BY {} LIMIT $4",
            self.d.collate("m.member_id"),
            self.d.collate("m.member_id")
        ))
        .bind(org.as_str())
        .bind(group_id)
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(&mut *self.read_conn().await?)
        .await
        .map_err(e)?;
        rows.iter().map(member_of).collect()
    }
}
