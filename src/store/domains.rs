//! [`DomainStore`]: claimed email domains, their DNS verification state and checks.

use super::engine::Arg;
use super::engine::batch::Batch;
use super::sql_store::{SqlStore, bad_row, e, get};
use crate::core::domains::{Domain, DomainState};
use crate::core::error::{CoreError, CoreResult, StoreError};
use crate::core::events::{EventDraft, EventKind};
use crate::core::model::*;
use crate::core::now;
use crate::core::store::*;

impl DomainStore for SqlStore {
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
}
