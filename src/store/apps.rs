//! [`AppStore`]: apps and the signing keys of their tokens.

use super::engine::Arg;
use super::engine::batch::Batch;
use super::sql_store::{SqlStore, e, get, json_col, to_json};
use crate::core::error::CoreResult;
use crate::core::events::{EventDraft, EventKind};
use crate::core::keys::SigningKeyRecord;
use crate::core::model::*;
use crate::core::sessions::App;
use crate::core::store::*;
use sqlx::any::AnyRow;

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

impl AppStore for SqlStore {
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
}
