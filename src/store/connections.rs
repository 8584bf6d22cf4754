//! [`ConnectionStore`]: SSO connections, the identities they assert, and login records.

use super::engine::Arg;
use super::engine::batch::Batch;
use super::roles;
use super::sql_store::{SqlStore, bad_row, e, fold, get, json_col, to_json};
use crate::core::error::CoreResult;
use crate::core::events::{EventDraft, EventKind};
use crate::core::model::*;
use crate::core::now;
use crate::core::sso::{Connection, ConnectionConfig, IdpKind, Protocol};
use crate::core::store::*;
use sqlx::any::AnyRow;

fn connection_from_row(row: &AnyRow) -> CoreResult<Connection> {
    let protocol: String = get(row, "protocol")?;
    let idp: String = get(row, "idp")?;
    let disabled: Option<String> = get(row, "disabled_at")?;
    Ok(Connection {
        id: get(row, "id")?,
        org_id: OrgId::from_store(get(row, "org_id")?),
        protocol: Protocol::parse(&protocol).ok_or_else(|| bad_row("connection"))?,
        name: get(row, "name")?,
        idp: IdpKind::parse(&idp).map_err(|_| bad_row("connection"))?,
        config: json_col::<ConnectionConfig>(row, "config", "connection")?,
        secret_enc: get(row, "secret_enc")?,
        created_at: get(row, "created_at")?,
        disabled: disabled.is_some(),
    })
}

impl ConnectionStore for SqlStore {
    async fn insert_connection(&self, c: &Connection, actor: &Actor) -> CoreResult<()> {
        let mut b = Batch::default();
        b.push(
            "INSERT INTO connections (id, org_id, protocol, name, idp, config, secret_enc, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
            vec![
                Arg::Str(c.id.clone()),
                Arg::Str(c.org_id.as_str().to_owned()),
                Arg::Str(c.protocol.as_str().to_owned()),
                Arg::Str(c.name.clone()),
                Arg::Str(c.idp.as_str().to_owned()),
                Arg::Str(to_json(&c.config)?),
                Arg::opt(c.secret_enc.clone()),
                Arg::Str(c.created_at.clone()),
            ],
        );
        b.event(
            Some(&c.org_id),
            actor,
            &EventDraft::new(
                EventKind::ConnectionCreated,
                &c.id,
                serde_json::json!({"protocol": c.protocol.as_str(), "idp": c.idp.as_str(), "name": c.name}),
            ),
        );
        self.write_batch(b).await
    }

    async fn set_connection_private_networks(
        &self,
        id: &str,
        allowed: bool,
        actor: &Actor,
    ) -> CoreResult<bool> {
        let Some(mut c) = self.connection(id).await? else {
            return Ok(false);
        };
        c.config.private_networks = allowed;
        let mut b = Batch::default();
        b.push(
            "UPDATE connections SET config = $1, updated_at = $2 WHERE id = $3",
            vec![
                Arg::Str(to_json(&c.config)?),
                Arg::Str(crate::core::now()),
                Arg::Str(c.id.clone()),
            ],
        );
        b.event(
            Some(&c.org_id),
            actor,
            &EventDraft::new(
                EventKind::ConnectionUpdated,
                &c.id,
                serde_json::json!({"private_networks": allowed}),
            ),
        );
        self.write_batch(b).await?;
        Ok(true)
    }

    async fn connection(&self, id: &str) -> CoreResult<Option<Connection>> {
        let row = sqlx::query("SELECT * FROM connections WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *self.read_conn().await?)
            .await
            .map_err(e)?;
        row.as_ref().map(connection_from_row).transpose()
    }

    async fn list_connections(&self, org: Option<&OrgId>) -> CoreResult<Vec<Connection>> {
        let rows = sqlx::query(
            "SELECT * FROM connections WHERE ($1 IS NULL OR org_id = $1) ORDER BY created_at, id",
        )
        .bind(org.map(OrgId::as_str))
        .fetch_all(&mut *self.read_conn().await?)
        .await
        .map_err(e)?;
        rows.iter().map(connection_from_row).collect()
    }

    async fn identity_user(
        &self,
        scope: &Scope,
        connection_id: &str,
        subject: &str,
    ) -> CoreResult<Option<User>> {
        let sql = format!(
            "SELECT {} FROM user_identities i JOIN users t ON t.org_id = i.org_id AND t.id = i.user_id \
             WHERE i.org_id = $1 AND i.connection_id = $2 AND i.subject = $3",
            self.user_cols()
        );
        let row = sqlx::query(&sql)
            .bind(scope.org.as_str())
            .bind(connection_id)
            .bind(subject)
            .fetch_optional(&mut *self.read_conn().await?)
            .await
            .map_err(e)?;
        row.as_ref().map(Self::user_from_row).transpose()
    }

    async fn identities_of(&self, scope: &Scope, user_id: &str) -> CoreResult<Vec<Identity>> {
        let rows = sqlx::query(
            "SELECT connection_id, subject, verified_email FROM user_identities \
             WHERE org_id = $1 AND user_id = $2 ORDER BY last_login_at DESC",
        )
        .bind(scope.org.as_str())
        .bind(user_id)
        .fetch_all(&mut *self.read_conn().await?)
        .await
        .map_err(e)?;
        rows.iter()
            .map(|r| {
                Ok(Identity {
                    connection_id: get(r, "connection_id")?,
                    subject: get(r, "subject")?,
                    verified_email: get(r, "verified_email")?,
                })
            })
            .collect()
    }

    async fn record_login(
        &self,
        scope: &Scope,
        user_id: &str,
        connection_id: &str,
        subject: &str,
        idp_groups: &[String],
        verified_email: Option<&str>,
    ) -> CoreResult<()> {
        let ts = now();
        let mut b = Batch::default();
        // A link moves to another user only when the user it names is gone. The vouched
        // address is the latest this connection vouched for.
        b.push(
            "INSERT INTO user_identities (connection_id, subject, org_id, user_id, idp_groups, created_at, last_login_at, idp_groups_norm, verified_email) \
             VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8) \
             ON CONFLICT (connection_id, subject) DO UPDATE SET user_id = excluded.user_id, \
             idp_groups = excluded.idp_groups, last_login_at = excluded.last_login_at, \
             idp_groups_norm = excluded.idp_groups_norm, \
             verified_email = COALESCE(excluded.verified_email, user_identities.verified_email) \
             WHERE user_identities.user_id = excluded.user_id \
             OR NOT EXISTS (SELECT 1 FROM users u WHERE u.org_id = user_identities.org_id AND u.id = user_identities.user_id)",
            vec![
                Arg::Str(connection_id.to_owned()),
                Arg::Str(subject.to_owned()),
                Arg::Str(scope.org.as_str().to_owned()),
                Arg::Str(user_id.to_owned()),
                Arg::Str(to_json(&idp_groups)?),
                Arg::Str(ts.clone()),
                Arg::Str(to_json(
                    &idp_groups.iter().map(|g| fold(g)).collect::<Vec<_>>(),
                )?),
                verified_email.map_or(Arg::Null, |v| Arg::Str(v.to_owned())),
            ],
        );
        // The claims decide the user's login-sourced roles.
        roles::refresh_idp_roles(&mut b, self.d, &scope.org, &scope.actor, user_id);
        b.push(
            "UPDATE users SET last_login_at = $1 WHERE org_id = $2 AND id = $3",
            vec![
                Arg::Str(ts),
                Arg::Str(scope.org.as_str().to_owned()),
                Arg::Str(user_id.to_owned()),
            ],
        );
        self.write_batch(b).await
    }

    async fn idp_groups(&self, scope: &Scope, user_id: &str) -> CoreResult<Vec<String>> {
        let row = sqlx::query(
            "SELECT idp_groups FROM user_identities WHERE org_id = $1 AND user_id = $2 \
             ORDER BY last_login_at DESC LIMIT 1",
        )
        .bind(scope.org.as_str())
        .bind(user_id)
        .fetch_optional(&mut *self.read_conn().await?)
        .await
        .map_err(e)?;
        match row {
            Some(r) => json_col(&r, "idp_groups", "identity"),
            None => Ok(Vec::new()),
        }
    }
}
