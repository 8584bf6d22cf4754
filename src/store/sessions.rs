//! [`SessionStore`]: logins in flight, the assertion replay cache, sessions and OAuth tokens,
//! and the sweep of what has ended.

use super::Dialect;
use super::engine::Arg;
use super::engine::batch::Batch;
use super::sql_store::{SqlStore, bad_row, e, get, json_col, to_json};
use crate::core::audit::AuditDraft;
use crate::core::error::CoreResult;
use crate::core::events::{EventDraft, EventKind};
use crate::core::model::*;
use crate::core::now;
use crate::core::sessions::{
    Consumed, LoginData, LoginRequest, NewSession, TokenKind, TokenRow, TokenState,
};
use crate::core::store::*;
use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

/// In a batch: revokes every live session of a user (deprovisioning, same transaction).
/// Every token of those sessions goes with them (a token is also checked against its session
/// and user whenever it is used; revoking the rows makes the state plain to see).
pub(super) fn revoke_sessions_in(
    b: &mut Batch,
    d: Dialect,
    scope: &Scope,
    user_id: &str,
    reason: &str,
) {
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

fn tok_from_row(row: &AnyRow) -> CoreResult<TokenRow> {
    let kind: String = get(row, "kind")?;
    Ok(TokenRow {
        hash: get(row, "token_hash")?,
        kind: TokenKind::parse(&kind).ok_or_else(|| bad_row("token"))?,
        session_id: get(row, "session_id")?,
        app_id: get(row, "app_id")?,
        org_id: OrgId::from_store(get(row, "org_id")?),
        user_id: get(row, "user_id")?,
        data: json_col::<Value>(row, "data", "token")?,
        created_at: get(row, "created_at")?,
        expires_at: get(row, "expires_at")?,
        consumed_at: get(row, "consumed_at")?,
        revoked_at: get(row, "revoked_at")?,
    })
}

const TOKEN_COLS: &str = "t.token_hash, t.kind, t.session_id, t.app_id, t.org_id, t.user_id, \
     t.data, t.created_at, t.expires_at, t.consumed_at, t.revoked_at";

fn insert_token_in(b: &mut Batch, t: &TokenRow) -> CoreResult<()> {
    b.push(
        "INSERT INTO oauth_tokens (token_hash, kind, session_id, app_id, org_id, user_id, data, \
         created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        vec![
            Arg::Str(t.hash.clone()),
            Arg::Str(t.kind.as_str().to_owned()),
            Arg::Str(t.session_id.clone()),
            Arg::Str(t.app_id.clone()),
            Arg::Str(t.org_id.as_str().to_owned()),
            Arg::Str(t.user_id.clone()),
            Arg::Str(to_json(&t.data)?),
            Arg::Str(t.created_at.clone()),
            Arg::Str(t.expires_at.clone()),
        ],
    );
    Ok(())
}

impl SessionStore for SqlStore {
    async fn insert_login(&self, login: &LoginRequest) -> CoreResult<()> {
        let mut b = Batch::default();
        // Logins abandoned at the IdP are swept as new ones start.
        b.push(
            "DELETE FROM login_requests WHERE expires_at < $1",
            vec![Arg::Str(now())],
        );
        b.push(
            "INSERT INTO login_requests (id, org_id, connection_id, browser_hash, data, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            vec![
                Arg::Str(login.id.clone()),
                Arg::Str(login.org_id.as_str().to_owned()),
                Arg::Str(login.connection_id.clone()),
                Arg::Str(login.browser_hash.clone()),
                Arg::Str(to_json(&login.data)?),
                Arg::Str(now()),
                Arg::Str(login.expires_at.clone()),
            ],
        );
        self.write_batch(b).await
    }

    async fn take_login(&self, id: &str) -> CoreResult<Option<LoginRequest>> {
        let ts = now();
        let mut tx = self.begin().await?;
        let n = sqlx::query(
            "UPDATE login_requests SET consumed_at = $1 \
             WHERE id = $2 AND consumed_at IS NULL AND expires_at > $1",
        )
        .bind(ts.as_str())
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(e)?
        .rows_affected();
        let row = if n == 1 {
            sqlx::query("SELECT * FROM login_requests WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(e)?
        } else {
            None
        };
        tx.finish(self.d, Batch::default()).await.map_err(e)?;
        tx.commit().await?;
        row.map(|r| {
            Ok(LoginRequest {
                id: get(&r, "id")?,
                org_id: OrgId::from_store(get(&r, "org_id")?),
                connection_id: get(&r, "connection_id")?,
                browser_hash: get(&r, "browser_hash")?,
                data: json_col::<LoginData>(&r, "data", "login")?,
                expires_at: get(&r, "expires_at")?,
            })
        })
        .transpose()
    }

    async fn remember_assertion(
        &self,
        connection_id: &str,
        assertion_id: &str,
        expires_at: &str,
    ) -> CoreResult<bool> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM saml_replay WHERE connection_id = $1 AND expires_at < $2")
            .bind(connection_id)
            .bind(now())
            .execute(&mut *tx)
            .await
            .map_err(e)?;
        let n = sqlx::query(
            "INSERT INTO saml_replay (connection_id, assertion_id, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (connection_id, assertion_id) DO NOTHING",
        )
        .bind(connection_id)
        .bind(assertion_id)
        .bind(expires_at)
        .execute(&mut *tx)
        .await
        .map_err(e)?
        .rows_affected();
        tx.finish(self.d, Batch::default()).await.map_err(e)?;
        tx.commit().await?;
        Ok(n == 1)
    }

    async fn start_session(
        &self,
        scope: &Scope,
        session: &NewSession,
        code: &TokenRow,
    ) -> CoreResult<bool> {
        let mut tx = self.begin().await?;
        // Under the user's row lock (PostgreSQL; SQLite has one writer): a deactivation
        // either committed before (the user reads inactive) or waits and then revokes this.
        let sql = format!(
            "SELECT active FROM users WHERE org_id = $1 AND id = $2{}",
            self.for_share()
        );
        let active: Option<i64> = sqlx::query(&sql)
            .bind(scope.org.as_str())
            .bind(session.user_id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(e)?
            .map(|r| r.try_get::<i64, _>("active"))
            .transpose()
            .map_err(e)?;
        if active != Some(1) {
            return Ok(false);
        }
        let ts = now();
        let mut b = Batch::default();
        b.push(
            "INSERT INTO sessions (id, org_id, user_id, created_at, expires_at, connection_id, app_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            vec![
                Arg::Str(session.id.clone()),
                Arg::Str(scope.org.as_str().to_owned()),
                Arg::Str(session.user_id.clone()),
                Arg::Str(ts),
                Arg::Str(session.expires_at.clone()),
                Arg::Str(session.connection_id.clone()),
                Arg::Str(session.app_id.clone()),
            ],
        );
        insert_token_in(&mut b, code)?;
        b.event(
            Some(&scope.org),
            &scope.actor,
            &EventDraft::new(
                EventKind::SessionCreated,
                &session.id,
                serde_json::json!({"user_id": session.user_id, "app_id": session.app_id, "connection_id": session.connection_id}),
            ),
        );
        tx.finish(self.d, b).await.map_err(e)?;
        tx.commit().await?;
        Ok(true)
    }

    async fn token_state(&self, hash: &str) -> CoreResult<Option<TokenState>> {
        let sql = format!(
            "SELECT {TOKEN_COLS}, s.revoked_at AS s_revoked, s.expires_at AS s_expires, u.active AS u_active \
             FROM oauth_tokens t LEFT JOIN sessions s ON s.org_id = t.org_id AND s.id = t.session_id \
             LEFT JOIN users u ON u.org_id = t.org_id AND u.id = t.user_id \
             WHERE t.token_hash = $1"
        );
        let Some(row) = sqlx::query(&sql)
            .bind(hash)
            .fetch_optional(&mut *self.read_conn().await?)
            .await
            .map_err(e)?
        else {
            return Ok(None);
        };
        let s_revoked: Option<String> = get(&row, "s_revoked")?;
        let s_expires: Option<String> = get(&row, "s_expires")?;
        let u_active: Option<i64> = get(&row, "u_active")?;
        let ts = now();
        Ok(Some(TokenState {
            row: tok_from_row(&row)?,
            session_live: s_revoked.is_none() && s_expires.is_some_and(|x| x > ts),
            user_active: u_active == Some(1),
        }))
    }

    async fn consume_token(
        &self,
        token: &TokenRow,
        now: &str,
        successors: &[&TokenRow],
    ) -> CoreResult<Consumed> {
        let mut tx = self.begin().await?;
        let n = sqlx::query(
            "UPDATE oauth_tokens SET consumed_at = $1 WHERE token_hash = $2 \
             AND consumed_at IS NULL AND revoked_at IS NULL AND expires_at > $1 \
             AND EXISTS (SELECT 1 FROM sessions s WHERE s.org_id = oauth_tokens.org_id AND s.id = oauth_tokens.session_id \
                         AND s.revoked_at IS NULL AND s.expires_at > $1) \
             AND EXISTS (SELECT 1 FROM users u WHERE u.org_id = oauth_tokens.org_id \
                         AND u.id = oauth_tokens.user_id AND u.active = 1)",
        )
        .bind(now)
        .bind(token.hash.as_str())
        .execute(&mut *tx)
        .await
        .map_err(e)?
        .rows_affected();
        if n != 1 {
            let consumed: Option<String> =
                sqlx::query("SELECT consumed_at FROM oauth_tokens WHERE token_hash = $1")
                    .bind(token.hash.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(e)?
                    .map(|r| r.try_get::<Option<String>, _>("consumed_at"))
                    .transpose()
                    .map_err(e)?
                    .flatten();
            return Ok(if consumed.is_some() {
                Consumed::AlreadyUsed
            } else {
                Consumed::NotLive
            });
        }
        let mut b = Batch::default();
        for t in successors {
            insert_token_in(&mut b, t)?;
        }
        tx.finish(self.d, b).await.map_err(e)?;
        tx.commit().await?;
        Ok(Consumed::Done)
    }

    async fn revoke_oauth_token(&self, hash: &str) -> CoreResult<()> {
        let mut b = Batch::default();
        b.push(
            "UPDATE oauth_tokens SET revoked_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL",
            vec![Arg::Str(now()), Arg::Str(hash.to_owned())],
        );
        self.write_batch(b).await
    }

    async fn revoke_session(
        &self,
        org: &OrgId,
        session_id: &str,
        actor: &Actor,
        reason: &str,
    ) -> CoreResult<()> {
        let ts = now();
        let mut tx = self.begin().await?;
        // Only a live session changes, and only a change appends its event and audit entry.
        let row = sqlx::query(
            "UPDATE sessions SET revoked_at = $1 WHERE org_id = $2 AND id = $3 AND revoked_at IS NULL \
             RETURNING user_id",
        )
        .bind(ts.as_str())
        .bind(org.as_str())
        .bind(session_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(e)?;
        let Some(row) = row else {
            return Ok(());
        };
        let user_id: String = get(&row, "user_id")?;
        let mut b = Batch::default();
        b.push(
            "UPDATE oauth_tokens SET revoked_at = $1 WHERE org_id = $2 AND session_id = $3 AND revoked_at IS NULL",
            vec![
                Arg::Str(ts),
                Arg::Str(org.as_str().to_owned()),
                Arg::Str(session_id.to_owned()),
            ],
        );
        b.event(
            Some(org),
            actor,
            &EventDraft::new(
                EventKind::SessionRevoked,
                session_id,
                serde_json::json!({"user_id": user_id, "reason": reason}),
            ),
        );
        b.audit(
            Some(org),
            actor,
            AuditDraft::new(
                EventKind::SessionRevoked.as_str(),
                "Session",
                session_id,
                serde_json::json!({"reason": reason}),
            ),
        );
        tx.finish(self.d, b).await.map_err(e)?;
        tx.commit().await
    }

    async fn live_sessions(&self, scope: &Scope, user_id: &str) -> CoreResult<u64> {
        let n: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM sessions WHERE org_id = $1 AND user_id = $2 \
             AND revoked_at IS NULL AND expires_at > $3",
        )
        .bind(scope.org.as_str())
        .bind(user_id)
        .bind(now())
        .fetch_one(&mut *self.read_conn().await?)
        .await
        .map_err(e)?
        .try_get("n")
        .map_err(e)?;
        Ok(n.max(0) as u64)
    }

    async fn sweep_ended(&self, before: &str, batch: i64) -> CoreResult<u64> {
        // Session `s` has ended: it expired or was revoked before `before`.
        let ended = "(s.expires_at < $1 OR (s.revoked_at IS NOT NULL AND s.revoked_at < $1))";
        let sweeps = [
            format!(
                "DELETE FROM oauth_tokens WHERE token_hash IN (SELECT t.token_hash FROM oauth_tokens t \
                 WHERE t.expires_at < $1 AND NOT EXISTS (SELECT 1 FROM sessions s \
                   WHERE s.org_id = t.org_id AND s.id = t.session_id AND NOT {ended}) LIMIT $2)"
            ),
            format!(
                "DELETE FROM sessions WHERE (org_id, id) IN (SELECT s.org_id, s.id FROM sessions s WHERE {ended} \
                 AND NOT EXISTS (SELECT 1 FROM oauth_tokens t WHERE t.org_id = s.org_id AND t.session_id = s.id) LIMIT $2)"
            ),
            "DELETE FROM setup_links WHERE id IN \
             (SELECT id FROM setup_links WHERE expires_at < $1 LIMIT $2)"
                .to_owned(),
        ];
        let mut tx = self.begin().await?;
        let mut n = 0;
        for sql in &sweeps {
            n += sqlx::query(sql)
                .bind(before)
                .bind(batch)
                .execute(&mut *tx)
                .await
                .map_err(e)?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(n)
    }
}
