//! [`UserStore`]: user rows and their SCIM reads and writes; a deactivation or delete revokes
//! the user's sessions in the same transaction.

use super::engine::batch::Batch;
use super::engine::point_reads::Key;
use super::engine::{Arg, bind_all, positions};
use super::filter_sql::ResourceKind;
use super::resources::{attrs_text, delete_row_in, str_attr};
use super::roles;
use super::sessions::revoke_sessions_in;
use super::sql_store::{SqlStore, check_version, e, fold, get};
use crate::core::error::{CoreError, CoreResult, StoreError};
use crate::core::events::EventDraft;
use crate::core::model::*;
use crate::core::now;
use crate::core::query::{ListQuery, Page};
use crate::core::sso::user_email_key;
use crate::core::store::*;
use serde_json::Value;
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

fn user_name_conflict(err: CoreError, user_name: &str) -> CoreError {
    match err {
        CoreError::Store(StoreError::Unique(_)) => CoreError::Uniqueness(format!(
            "userName \"{user_name}\" is already taken in this organization"
        )),
        other => other,
    }
}

/// Whether any role mapping matches group `t` now.
pub(super) const GROUP_MAPS: &str = "EXISTS (SELECT 1 FROM role_mappings rm WHERE rm.org_id = t.org_id AND \
     ((rm.match_on = 'displayName' AND rm.group_value_norm = t.display_name_norm) OR \
     (rm.match_on = 'externalId' AND rm.group_value = t.external_id)))";

impl SqlStore {
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

    async fn users_where(&self, scope: &Scope, cond: &str, value: &str) -> CoreResult<Vec<User>> {
        let sql = format!(
            "SELECT {} FROM users t WHERE t.org_id = $1 AND {cond} LIMIT 2",
            self.user_cols()
        );
        let rows = sqlx::query(&sql)
            .bind(scope.org.as_str())
            .bind(value)
            .fetch_all(&mut *self.read_conn().await?)
            .await
            .map_err(e)?;
        rows.iter().map(Self::user_from_row).collect()
    }
}

impl UserStore for SqlStore {
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
        positions::take_in(&mut b, self.d, org, "User");
        b.push(
            format!(
                "INSERT INTO users (id, org_id, user_name, user_name_norm, external_id, active, attrs, version, \
                 created_at, updated_at, provenance, directory_id, last_directory_sync_at, pos, email_norm) \
                 VALUES ($1, $2, $3, $4, $5, $6, {}, 1, $8, $8, $9, $10, $11, {}, $13)",
                self.d.json_param(7),
                positions::taken(self.d, 2, 12)
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
        // The user's row, its event and its audit entry: three new rows (on SQLite the
        // counter row first, read by the insert: SQLite never runs a batch as one statement).
        b.independent();
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

    async fn users_by_external_id(
        &self,
        scope: &Scope,
        external_id: &str,
    ) -> CoreResult<Vec<User>> {
        self.users_where(scope, "t.external_id = $2", external_id)
            .await
    }

    async fn users_by_email(&self, scope: &Scope, email_norm: &str) -> CoreResult<Vec<User>> {
        self.users_where(scope, "t.email_norm = $2", email_norm)
            .await
    }

    async fn list_users(&self, scope: &Scope, q: &ListQuery) -> CoreResult<Page<User>> {
        self.list(scope, q, ResourceKind::User).await
    }

    async fn list_listed_users(
        &self,
        scope: &Scope,
        q: &ListQuery,
    ) -> CoreResult<Page<ListedUser>> {
        self.list(scope, q, ResourceKind::User).await
    }

    async fn user_page(&self, org: &OrgId, l: &UserListing) -> CoreResult<Vec<(i64, User)>> {
        self.sealed().await;
        let mut args = vec![Arg::Str(org.as_str().to_owned()), Arg::I64(l.after)];
        let mut conds = vec!["t.org_id = $1".to_owned(), "t.pos > $2".to_owned()];
        if let Some(q) = l.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
            args.push(Arg::Str(fold(q)));
            let p = format!("${}", args.len());
            conds.push(format!(
                "({} OR {})",
                self.d.contains("t.user_name_norm", &p),
                self.d.contains("COALESCE(t.email_norm, '')", &p)
            ));
        }
        if let Some(active) = l.active {
            args.push(Arg::I64(i64::from(active)));
            conds.push(format!("t.active = ${}", args.len()));
        }
        if let Some(p) = l.provenance {
            args.push(Arg::Str(p.as_str().to_owned()));
            conds.push(format!("t.provenance = ${}", args.len()));
        }
        args.push(Arg::I64(l.limit));
        let sql = format!(
            "SELECT {}, t.pos AS pos_ FROM users t WHERE {} ORDER BY t.pos LIMIT ${}",
            self.user_cols(),
            conds.join(" AND "),
            args.len()
        );
        let rows = bind_all(sqlx::query(&sql), &args)
            .fetch_all(&mut *self.read_conn().await?)
            .await
            .map_err(e)?;
        rows.iter()
            .map(|r| Ok((get(r, "pos_")?, Self::user_from_row(r)?)))
            .collect()
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
        // The user's events first, then the sessions its deactivation ends.
        for ev in &change.events {
            b.event(Some(&scope.org), &scope.actor, ev);
        }
        if change.revoke_sessions {
            revoke_sessions_in(&mut b, self.d, scope, id, "user_deactivated");
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
}
