//! [`AuditStore`]: the hash-chained audit log, its pages and its retention.

use super::engine::Arg;
use super::engine::batch::Batch;
use super::sql_store::{SqlStore, e, get};
use crate::core::audit::{Anchor, AuditDraft, StoredEntry};
use crate::core::error::CoreResult;
use crate::core::model::*;
use crate::core::store::*;
use serde_json::json;
use sqlx::any::AnyRow;

fn entry_from_row(r: &AnyRow) -> CoreResult<StoredEntry> {
    Ok(StoredEntry {
        chain: get(r, "chain")?,
        seq: get(r, "seq")?,
        at: get(r, "at")?,
        body: get(r, "body")?,
        prev_hash: get(r, "prev_hash")?,
        hash: get(r, "hash")?,
    })
}

impl AuditStore for SqlStore {
    async fn audit_chains(&self) -> CoreResult<Vec<(String, Option<Anchor>)>> {
        self.sealed().await;
        let rows = sqlx::query(
            "SELECT c.chain, a.seq, a.hash FROM (SELECT DISTINCT chain FROM audit_log \
             UNION SELECT chain FROM audit_anchors) c LEFT JOIN audit_anchors a ON a.chain = c.chain \
             ORDER BY c.chain",
        )
        .fetch_all(&mut *self.read_conn().await?)
        .await
        .map_err(e)?;
        rows.iter()
            .map(|r| {
                let seq: Option<i64> = get(r, "seq")?;
                let hash: Option<String> = get(r, "hash")?;
                Ok((
                    get(r, "chain")?,
                    seq.zip(hash).map(|(seq, hash)| Anchor { seq, hash }),
                ))
            })
            .collect()
    }

    async fn audit_entries(
        &self,
        chain: &str,
        since: Option<&str>,
    ) -> CoreResult<Vec<StoredEntry>> {
        self.sealed().await;
        let rows = sqlx::query(
            "SELECT chain, seq, at, body, prev_hash, hash FROM audit_log \
             WHERE chain = $1 AND at >= $2 ORDER BY seq",
        )
        .bind(chain)
        .bind(since.unwrap_or(""))
        .fetch_all(&mut *self.read_conn().await?)
        .await
        .map_err(e)?;
        rows.iter().map(entry_from_row).collect()
    }

    async fn audit_page(
        &self,
        chain: &str,
        since: Option<&str>,
        after_seq: i64,
        limit: i64,
    ) -> CoreResult<Vec<StoredEntry>> {
        self.sealed().await;
        let rows = sqlx::query(
            "SELECT chain, seq, at, body, prev_hash, hash FROM audit_log \
             WHERE chain = $1 AND seq > $2 AND at >= $3 ORDER BY seq LIMIT $4",
        )
        .bind(chain)
        .bind(after_seq)
        .bind(since.unwrap_or(""))
        .bind(limit)
        .fetch_all(&mut *self.read_conn().await?)
        .await
        .map_err(e)?;
        rows.iter().map(entry_from_row).collect()
    }

    async fn prune_audit(&self, chain: &str, before: &str) -> CoreResult<u64> {
        // What this node wrote is linked first: pruning reads the chain as linked, and an
        // entry still waiting for its link would be neither pruned nor anchored.
        self.sealed().await;
        let mut tx = self.begin().await?;
        let last = sqlx::query(
            "SELECT seq, hash FROM audit_log WHERE chain = $1 AND at < $2 ORDER BY seq DESC LIMIT 1",
        )
        .bind(chain)
        .bind(before)
        .fetch_optional(&mut *tx)
        .await
        .map_err(e)?;
        let Some(last) = last else {
            return Ok(0);
        };
        let seq: i64 = get(&last, "seq")?;
        let hash: String = get(&last, "hash")?;
        let mut b = Batch::default();
        b.push(
            "INSERT INTO audit_anchors (chain, seq, hash, pruned_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (chain) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, pruned_at = excluded.pruned_at",
            vec![
                Arg::Str(chain.to_owned()),
                Arg::I64(seq),
                Arg::Str(hash),
                Arg::Str(crate::core::now()),
            ],
        );
        b.push(
            "DELETE FROM audit_log WHERE chain = $1 AND seq <= $2",
            vec![Arg::Str(chain.to_owned()), Arg::I64(seq)],
        );
        let org = (!chain.is_empty()).then(|| OrgId::from_store(chain.to_owned()));
        b.audit(
            org.as_ref(),
            &Actor::System,
            AuditDraft::new(
                "audit.pruned",
                "AuditLog",
                chain,
                json!({"through_seq": seq, "before": before}),
            ),
        );
        tx.finish(self.d, b).await.map_err(e)?;
        tx.commit().await?;
        Ok(u64::try_from(seq).unwrap_or(0))
    }
}
