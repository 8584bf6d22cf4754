//! `SsoStore` on SQLite and PostgreSQL: domains, connections, identities, apps, signing keys,
//! logins in flight, sessions and tokens.

use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::engine::Arg;
use super::engine::batch::Batch;
use super::roles;
use super::sql_store::{SqlStore, e, fold, get};
use crate::core::audit::AuditDraft;
use crate::core::domains::DomainState;
use crate::core::error::{CoreError, CoreResult, StoreError};
use crate::core::events::{EventDraft, EventKind};
use crate::core::keys::SigningKeyRecord;
use crate::core::model::*;
use crate::core::now;
use crate::core::sessions::{
    App, Consumed, LoginData, LoginRequest, NewSession, TokenKind, TokenRow, TokenState,
};
use crate::core::sso::{Connection, ConnectionConfig, IdpKind, Protocol};
use crate::core::store::{Domain, Identity, SsoStore};

fn bad_row(what: &str) -> CoreError {
    CoreError::Store(StoreError::Other(format!("malformed {what} row")))
}

fn json_col<T: serde::de::DeserializeOwned>(row: &AnyRow, col: &str, what: &str) -> CoreResult<T> {
    let text: String = get(row, col)?;
    serde_json::from_str(&text).map_err(|_| bad_row(what))
}

fn to_json<T: serde::Serialize>(v: &T) -> CoreResult<String> {
    serde_json::to_string(v).map_err(|e| CoreError::Internal(format!("cannot encode: {e}")))
}

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

fn app_from_row(row: &AnyRow) -> CoreResult<App> {
    let revoked: Option<String> = get(row, "revoked_at")?;
    Ok(App {
        id: get(row, "id")?,
        name: get(row, "name")?,
        secret_hash: get(row, "secret_hash")?,
        redirect_uris: json_col(row, "redirect_uris", "app")?,
        created_at: get(row, "created_at")?,
        revoked: revoked.is_some(),
    })
}

fn key_from_row(row: &AnyRow) -> CoreResult<SigningKeyRecord> {
    Ok(SigningKeyRecord {
        kid: get(row, "kid")?,
        alg: get(row, "alg")?,
        private_enc: get(row, "private_enc")?,
        public_jwk: json_col(row, "public_jwk", "signing key")?,
        created_at: get(row, "created_at")?,
        retired_at: get(row, "retired_at")?,
    })
}

fn token_from_row(row: &AnyRow) -> CoreResult<TokenRow> {
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

impl SqlStore {
    /// One write: `b`'s statements and nothing else, committed.
    pub(super) async fn write_batch(&self, b: Batch) -> CoreResult<()> {
        self.write_unread(b, e).await
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

    fn for_share(&self) -> &'static str {
        self.d.for_share()
    }
}

impl SsoStore for SqlStore {
    async fn ensure_setting(&self, name: &str, value: &str) -> CoreResult<String> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(value)
        .execute(&mut *tx)
        .await
        .map_err(e)?;
        let stored: String = sqlx::query("SELECT value FROM settings WHERE name = $1")
            .bind(name)
            .fetch_one(&mut *tx)
            .await
            .map_err(e)?
            .try_get("value")
            .map_err(e)?;
        tx.finish(self.d, Batch::default()).await.map_err(e)?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn org_by_id(&self, id: &str) -> CoreResult<Option<Org>> {
        let row = sqlx::query("SELECT id, slug, name, created_at FROM orgs WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *self.read_conn().await?)
            .await
            .map_err(e)?;
        row.as_ref().map(Self::org_from_row).transpose()
    }

    async fn add_domain(
        &self,
        org: &Org,
        domain: &str,
        challenge: &str,
        actor: &Actor,
    ) -> CoreResult<()> {
        let mut b = Batch::default();
        b.push(
            "INSERT INTO org_domains (org_id, domain, state, challenge, created_at) \
             VALUES ($1, $2, 'pending', $3, $4)",
            vec![
                Arg::Str(org.id.as_str().to_owned()),
                Arg::Str(domain.to_owned()),
                Arg::Str(challenge.to_owned()),
                Arg::Str(now()),
            ],
        );
        b.event(
            Some(&org.id),
            actor,
            &EventDraft::new(
                EventKind::DomainAdded,
                domain,
                serde_json::json!({"domain": domain, "state": "pending"}),
            ),
        );
        self.write_batch(b).await.map_err(|err| match err {
            CoreError::Store(StoreError::Unique(_)) => CoreError::Uniqueness(format!(
                "the domain {domain} is already claimed by this organization"
            )),
            other => other,
        })
    }

    async fn list_domains(&self, org: Option<&OrgId>) -> CoreResult<Vec<Domain>> {
        let rows = sqlx::query(
            "SELECT d.domain, d.org_id, o.slug, d.created_at, d.state, d.challenge, d.verified_at, \
             d.verified_by, d.checked_at, d.check_error FROM org_domains d \
             JOIN orgs o ON o.id = d.org_id WHERE ($1 IS NULL OR d.org_id = $1) \
             ORDER BY d.domain, o.slug",
        )
        .bind(org.map(OrgId::as_str))
        .fetch_all(&mut *self.read_conn().await?)
        .await
        .map_err(e)?;
        rows.iter()
            .map(|r| {
                let state: String = get(r, "state")?;
                Ok(Domain {
                    domain: get(r, "domain")?,
                    org_id: OrgId::from_store(get(r, "org_id")?),
                    org_slug: get(r, "slug")?,
                    created_at: get(r, "created_at")?,
                    state: DomainState::parse(&state).ok_or_else(|| bad_row("domain"))?,
                    challenge: get(r, "challenge")?,
                    verified_at: get(r, "verified_at")?,
                    verified_by: get(r, "verified_by")?,
                    checked_at: get(r, "checked_at")?,
                    check_error: get(r, "check_error")?,
                })
            })
            .collect()
    }

    async fn org_by_domain(&self, domain: &str) -> CoreResult<Option<Org>> {
        let row = sqlx::query(
            "SELECT o.id, o.slug, o.name, o.created_at FROM org_domains d \
             JOIN orgs o ON o.id = d.org_id WHERE d.domain = $1 AND d.state = 'verified'",
        )
        .bind(domain)
        .fetch_optional(&mut *self.read_conn().await?)
        .await
        .map_err(e)?;
        row.as_ref().map(Self::org_from_row).transpose()
    }

    async fn verified_domains(&self, org: &OrgId) -> CoreResult<Vec<String>> {
        let rows = sqlx::query(
            "SELECT domain FROM org_domains WHERE org_id = $1 AND state = 'verified' ORDER BY domain",
        )
        .bind(org.as_str())
        .fetch_all(&mut *self.read_conn().await?)
        .await
        .map_err(e)?;
        rows.iter().map(|r| get(r, "domain")).collect()
    }

    async fn mark_domain_verified(
        &self,
        org: &Org,
        domain: &str,
        by: &str,
        actor: &Actor,
        event: EventDraft,
    ) -> CoreResult<()> {
        let ts = now();
        let mut b = Batch::default();
        b.push(
            "UPDATE org_domains SET state = 'verified', verified_at = $1, verified_by = $2, \
             checked_at = $1, check_error = NULL \
             WHERE org_id = $3 AND domain = $4 AND state = 'pending'",
            vec![
                Arg::Str(ts),
                Arg::Str(by.to_owned()),
                Arg::Str(org.id.as_str().to_owned()),
                Arg::Str(domain.to_owned()),
            ],
        );
        b.event(Some(&org.id), actor, &event);
        self.write_batch(b).await.map_err(|err| match err {
            CoreError::Store(StoreError::Unique(_)) => CoreError::Uniqueness(format!(
                "the domain {domain} is verified by another organization"
            )),
            other => other,
        })
    }

    async fn remove_domain(
        &self,
        org: &Org,
        domain: &str,
        actor: &Actor,
        event: EventDraft,
    ) -> CoreResult<bool> {
        let mut tx = self.begin().await?;
        let gone = sqlx::query("DELETE FROM org_domains WHERE org_id = $1 AND domain = $2")
            .bind(org.id.as_str())
            .bind(domain)
            .execute(&mut *tx)
            .await
            .map_err(e)?
            .rows_affected();
        if gone == 0 {
            // Nothing changed; dropping the transaction ends it.
            return Ok(false);
        }
        let mut b = Batch::default();
        b.event(Some(&org.id), actor, &event);
        tx.finish(self.d, b).await.map_err(e)?;
        tx.commit().await?;
        Ok(true)
    }

    async fn record_domain_check(
        &self,
        org: &Org,
        domain: &str,
        error: Option<&str>,
    ) -> CoreResult<()> {
        let mut b = Batch::default();
        b.push(
            "UPDATE org_domains SET checked_at = $1, check_error = $2 \
             WHERE org_id = $3 AND domain = $4",
            vec![
                Arg::Str(now()),
                Arg::opt(error.map(str::to_owned)),
                Arg::Str(org.id.as_str().to_owned()),
                Arg::Str(domain.to_owned()),
            ],
        );
        self.write_batch(b).await
    }

    async fn org_has_directory(&self, org: &OrgId) -> CoreResult<bool> {
        let row = sqlx::query("SELECT id FROM directories WHERE org_id = $1 LIMIT 1")
            .bind(org.as_str())
            .fetch_optional(&mut *self.read_conn().await?)
            .await
            .map_err(e)?;
        Ok(row.is_some())
    }

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
            "SELECT {} FROM user_identities i JOIN users t ON t.id = i.user_id AND t.org_id = i.org_id \
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
             OR NOT EXISTS (SELECT 1 FROM users u WHERE u.id = user_identities.user_id)",
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

    async fn insert_app(&self, app: &App, actor: &Actor) -> CoreResult<()> {
        let mut b = Batch::default();
        b.push(
            "INSERT INTO apps (id, name, secret_hash, redirect_uris, created_at) VALUES ($1, $2, $3, $4, $5)",
            vec![
                Arg::Str(app.id.clone()),
                Arg::Str(app.name.clone()),
                Arg::Str(app.secret_hash.clone()),
                Arg::Str(to_json(&app.redirect_uris)?),
                Arg::Str(app.created_at.clone()),
            ],
        );
        b.event(
            None,
            actor,
            &EventDraft::new(
                EventKind::AppCreated,
                &app.id,
                serde_json::json!({"name": app.name, "redirect_uris": app.redirect_uris}),
            ),
        );
        self.write_batch(b).await
    }

    async fn app(&self, id: &str) -> CoreResult<Option<App>> {
        let row = sqlx::query("SELECT * FROM apps WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *self.read_conn().await?)
            .await
            .map_err(e)?;
        row.as_ref().map(app_from_row).transpose()
    }

    async fn list_apps(&self) -> CoreResult<Vec<App>> {
        let rows = sqlx::query("SELECT * FROM apps ORDER BY created_at, id")
            .fetch_all(&mut *self.read_conn().await?)
            .await
            .map_err(e)?;
        rows.iter().map(app_from_row).collect()
    }

    async fn insert_signing_key(&self, key: &SigningKeyRecord) -> CoreResult<()> {
        let mut b = Batch::default();
        b.push(
            "UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL",
            vec![Arg::Str(key.created_at.clone())],
        );
        b.push(
            "INSERT INTO signing_keys (kid, alg, private_enc, public_jwk, created_at) VALUES ($1, $2, $3, $4, $5)",
            vec![
                Arg::Str(key.kid.clone()),
                Arg::Str(key.alg.clone()),
                Arg::Str(key.private_enc.clone()),
                Arg::Str(to_json(&key.public_jwk)?),
                Arg::Str(key.created_at.clone()),
            ],
        );
        b.event(
            None,
            &Actor::Cli,
            &EventDraft::new(
                EventKind::SigningKeyRotated,
                &key.kid,
                serde_json::json!({"kid": key.kid, "alg": key.alg}),
            ),
        );
        self.write_batch(b).await
    }

    async fn signing_keys(&self) -> CoreResult<Vec<SigningKeyRecord>> {
        let rows = sqlx::query("SELECT * FROM signing_keys ORDER BY created_at DESC, kid")
            .fetch_all(&mut *self.read_conn().await?)
            .await
            .map_err(e)?;
        rows.iter().map(key_from_row).collect()
    }

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
             FROM oauth_tokens t LEFT JOIN sessions s ON s.id = t.session_id \
             LEFT JOIN users u ON u.id = t.user_id AND u.org_id = t.org_id \
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
            row: token_from_row(&row)?,
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
             AND EXISTS (SELECT 1 FROM sessions s WHERE s.id = oauth_tokens.session_id \
                         AND s.revoked_at IS NULL AND s.expires_at > $1) \
             AND EXISTS (SELECT 1 FROM users u WHERE u.id = oauth_tokens.user_id \
                         AND u.org_id = oauth_tokens.org_id AND u.active = 1)",
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

    async fn revoke_token(&self, hash: &str) -> CoreResult<()> {
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
        let mut b = Batch::default();
        // The event only if the session was live: no event without its change.
        b.events_select(
            org,
            actor,
            EventKind::SessionRevoked,
            "s.id",
            &self
                .d
                .json_object(&[("user_id", "s.user_id"), ("reason", "CAST($3 AS TEXT)")]),
            "FROM sessions s WHERE s.org_id = $1 AND s.id = $2 AND s.revoked_at IS NULL",
            vec![
                Arg::Str(org.as_str().to_owned()),
                Arg::Str(session_id.to_owned()),
                Arg::Str(reason.to_owned()),
            ],
        );
        b.push(
            "UPDATE sessions SET revoked_at = $1 WHERE org_id = $2 AND id = $3 AND revoked_at IS NULL",
            vec![
                Arg::Str(ts.clone()),
                Arg::Str(org.as_str().to_owned()),
                Arg::Str(session_id.to_owned()),
            ],
        );
        b.push(
            "UPDATE oauth_tokens SET revoked_at = $1 WHERE org_id = $2 AND session_id = $3 AND revoked_at IS NULL",
            vec![
                Arg::Str(ts),
                Arg::Str(org.as_str().to_owned()),
                Arg::Str(session_id.to_owned()),
            ],
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
        self.write_batch(b).await
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
}
