//! `roster webhook | admin-key | audit | role-mapping | report`.

use std::io::Write;

use clap::Subcommand;
use serde_json::json;

use super::{CliError, print};
use crate::core::audit;
use crate::core::error::CoreError;
use crate::core::model::Actor;
use crate::core::orgs;
use crate::core::secrets::{MasterKey, hash_secret};
use crate::core::store::AdminKeyInfo;
use crate::core::store::prelude::*;
use crate::core::webhooks;
use crate::core::{new_id, now};
use crate::store::SqlStore;

#[derive(Subcommand)]
pub enum WebhookCmd {
    /// Add an endpoint; prints its signing secret (shown once).
    Create {
        /// The organization whose events it takes; omit with --all-orgs.
        #[arg(long, required_unless_present = "all_orgs")]
        org: Option<String>,
        /// Take every organization's events.
        #[arg(long, conflicts_with = "org")]
        all_orgs: bool,
        #[arg(long)]
        url: String,
        /// Event types: comma-separated types or families (`user.*,group.*`); default all.
        #[arg(long, default_value = "*")]
        events: String,
        #[arg(long)]
        json: bool,
    },
    /// List endpoints with their cursor and failed deliveries.
    List {
        #[arg(long)]
        org: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Stop delivering to an endpoint.
    Disable {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Send one event to an endpoint again now (e.g. a delivery that failed for good).
    Resend {
        id: String,
        /// The event's cursor (`roster webhook deliveries` lists them).
        #[arg(long)]
        event: i64,
        #[arg(long)]
        json: bool,
    },
    /// An endpoint's deliveries, newest first (`--status failed` for the ones that gave up).
    Deliveries {
        id: String,
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum AdminKeyCmd {
    /// Create an admin API key (shown once; stored as SHA-256).
    Create {
        /// Limit the key to one organization.
        #[arg(long)]
        org: Option<String>,
        #[arg(long, default_value = "admin")]
        name: String,
        #[arg(long)]
        read_only: bool,
        #[arg(long)]
        json: bool,
    },
    List {
        #[arg(long)]
        json: bool,
    },
    Revoke {
        id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum AuditCmd {
    /// Write an organization's audit entries as JSON lines (entry text, hashes, position).
    Export {
        #[arg(long)]
        org: String,
        /// Only entries at or after this time: a date (2026-11-01, UTC) or an RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Recompute every chain (or one organization's) and report the first broken link.
    Verify {
        #[arg(long)]
        org: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Delete entries older than N days now (the server does this hourly with
    /// --audit-retention-days); chains stay verifiable from their anchors.
    Prune {
        #[arg(long)]
        older_than_days: u32,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum RoleMappingCmd {
    /// Map an IdP group to an app role.
    Add {
        #[arg(long)]
        org: String,
        /// The group's displayName (case-insensitive) or, with --by-external-id, externalId.
        #[arg(long)]
        group: String,
        #[arg(long)]
        role: String,
        #[arg(long)]
        by_external_id: bool,
        #[arg(long)]
        json: bool,
    },
    List {
        #[arg(long)]
        org: String,
        #[arg(long)]
        json: bool,
    },
    Remove {
        #[arg(long)]
        org: String,
        id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum ReportCmd {
    /// Orphan risks, stale users, deactivated users with live access, directory health.
    Drift {
        #[arg(long)]
        org: String,
        /// Users the directory has not touched for this many days are stale.
        #[arg(long, default_value_t = 30)]
        stale_days: i64,
        #[arg(long)]
        json: bool,
    },
}

pub async fn webhook(store: &SqlStore, master: &MasterKey, c: &WebhookCmd) -> Result<(), CliError> {
    match c {
        WebhookCmd::Create {
            org,
            all_orgs: _,
            url,
            events,
            json,
        } => {
            let org = match org {
                Some(slug) => Some(orgs::org(store, slug).await?),
                None => None,
            };
            let (ep, secret) =
                webhooks::new_endpoint(master, org.as_ref().map(|o| &o.id), url, events, true)?;
            store.insert_webhook(&ep, &Actor::Cli).await?;
            print(
                *json,
                json!({"id": ep.id, "url": webhooks::display_url(&ep.url), "org": org.as_ref().map(|o| &o.slug), "events": ep.event_types, "secret": secret}),
                format!(
                    "webhook {}\nURL: {}\nevents: {}\nsigning secret (shown once): {secret}",
                    ep.id,
                    webhooks::display_url(&ep.url),
                    ep.event_types.join(",")
                ),
            );
        }
        WebhookCmd::List { org, json } => {
            let org = match org {
                Some(slug) => Some(orgs::org(store, slug).await?.id),
                None => None,
            };
            let list = store.list_webhooks(org.as_ref()).await?;
            let mut items = Vec::new();
            let mut lines = Vec::new();
            for w in &list {
                let failed = store.deliveries(&w.id, Some("failed"), 1000).await?.len();
                items.push(json!({"id": w.id, "org_id": w.org_id.as_ref().map(|o| o.as_str()), "url": webhooks::display_url(&w.url),
                    "events": w.event_types, "cursor": w.cursor, "next_attempt_at": w.next_attempt_at,
                    "disabled_at": w.disabled_at, "failed_deliveries": failed}));
                lines.push(format!(
                    "{}\t{}\t{}\tcursor {}\tfailed {}{}",
                    w.id,
                    webhooks::display_url(&w.url),
                    w.event_types.join(","),
                    w.cursor,
                    failed,
                    if w.disabled_at.is_some() {
                        "\tdisabled"
                    } else {
                        ""
                    }
                ));
            }
            print(*json, json!({"webhooks": items}), lines.join("\n"));
        }
        WebhookCmd::Disable { id, json } => {
            if !store.disable_webhook(id, &Actor::Cli).await? {
                return Err(CoreError::NotFound(format!("enabled webhook {id}")).into());
            }
            print(
                *json,
                json!({"id": id, "disabled": true}),
                format!("disabled {id}"),
            );
        }
        WebhookCmd::Resend { id, event, json } => {
            let d = crate::delivery::Dispatcher::new(
                store.clone(),
                master.clone(),
                crate::delivery::default_schedule_ms(),
                crate::delivery::DEFAULT_LEASE,
            )?;
            let a = d.resend(id, *event, &Actor::Cli).await?;
            print(
                *json,
                json!({"event_cursor": a.event_id, "status": a.status, "response_status": a.response_status, "error": a.error}),
                format!(
                    "event {}: {}{}",
                    a.event_id,
                    a.status,
                    a.error
                        .as_deref()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default()
                ),
            );
            if a.status != "delivered" {
                return Err(CoreError::Internal("the resend failed".into()).into());
            }
        }
        WebhookCmd::Deliveries {
            id,
            status,
            limit,
            json,
        } => {
            let list = store
                .deliveries(id, status.as_deref(), (*limit).clamp(1, 10_000))
                .await?;
            let items: Vec<_> = list
                .iter()
                .map(|d| json!({"event_cursor": d.event_id, "status": d.status, "attempts": d.attempts,
                    "first_attempt_at": d.first_attempt_at, "last_attempt_at": d.last_attempt_at,
                    "next_attempt_at": d.next_attempt_at, "response_status": d.response_status, "last_error": d.last_error}))
                .collect();
            let text = list
                .iter()
                .map(|d| {
                    format!(
                        "{}\t{}\tattempts {}\t{}",
                        d.event_id,
                        d.status,
                        d.attempts,
                        d.last_error.as_deref().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            print(*json, json!({"deliveries": items}), text);
        }
    }
    Ok(())
}

pub async fn admin_key(store: &SqlStore, c: &AdminKeyCmd) -> Result<(), CliError> {
    match c {
        AdminKeyCmd::Create {
            org,
            name,
            read_only,
            json,
        } => {
            let org = match org {
                Some(slug) => Some(orgs::org(store, slug).await?),
                None => None,
            };
            let key = crate::api::new_key()?;
            let info = AdminKeyInfo {
                id: new_id(),
                org_id: org.as_ref().map(|o| o.id.as_str().to_owned()),
                name: name.clone(),
                read_only: *read_only,
                created_at: now(),
                revoked_at: None,
            };
            store
                .insert_admin_key(&info, &hash_secret(&key), &Actor::Cli)
                .await?;
            print(
                *json,
                json!({"id": info.id, "org": org.as_ref().map(|o| &o.slug), "read_only": info.read_only, "key": key}),
                format!("admin key {}\nkey (shown once): {key}", info.id),
            );
        }
        AdminKeyCmd::List { json } => {
            let list = store.list_admin_keys().await?;
            let items: Vec<_> = list
                .iter()
                .map(|k| {
                    json!({"id": k.id, "org_id": k.org_id, "name": k.name, "read_only": k.read_only,
                    "created_at": k.created_at, "revoked_at": k.revoked_at})
                })
                .collect();
            let text = list
                .iter()
                .map(|k| {
                    format!(
                        "{}\t{}\t{}",
                        k.id,
                        k.name,
                        k.org_id.as_deref().unwrap_or("*")
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            print(*json, json!({"admin_keys": items}), text);
        }
        AdminKeyCmd::Revoke { id, json } => {
            if !store.revoke_admin_key(id, &Actor::Cli).await? {
                return Err(CoreError::NotFound(format!("live admin key {id}")).into());
            }
            print(
                *json,
                json!({"id": id, "revoked": true}),
                format!("revoked {id}"),
            );
        }
    }
    Ok(())
}

pub async fn audit_cmd(store: &SqlStore, c: &AuditCmd) -> Result<(), CliError> {
    match c {
        AuditCmd::Export { org, since, out } => {
            let org = orgs::org(store, org).await?;
            let since = match since {
                Some(s) => Some(crate::core::parse_time_or_date(s).ok_or_else(|| {
                    CoreError::InvalidValue(format!(
                        "--since \"{s}\" is not {}",
                        crate::core::TIME_OR_DATE
                    ))
                })?),
                None => None,
            };
            let entries = store
                .audit_entries(org.id.as_str(), since.as_deref())
                .await?;
            let mut w: Box<dyn Write> = match out {
                Some(p) => Box::new(std::io::BufWriter::new(std::fs::File::create(p)?)),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            for e in entries {
                let entry: serde_json::Value =
                    serde_json::from_str(&e.body).unwrap_or(serde_json::Value::Null);
                let line = json!({"seq": e.seq, "at": e.at, "entry": entry, "body": e.body,
                    "prev_hash": e.prev_hash, "hash": e.hash});
                writeln!(w, "{line}")?;
            }
            w.flush()?;
        }
        AuditCmd::Verify { org, json } => {
            let only = match org {
                Some(slug) => Some(orgs::org(store, slug).await?.id),
                None => None,
            };
            // PostgreSQL links entries into their chains after commit: link what has
            // committed, then verify; what is still unlinked is reported, not verified.
            store.seal_round().await?;
            let unsealed = store.seal_backlog().await?.map_or(0, |b| b.audit_entries);
            let mut checked = 0u64;
            let mut chains = 0u64;
            let mut broken = None;
            for (chain, anchor) in store.audit_chains().await? {
                if only.as_ref().is_some_and(|o| o.as_str() != chain) {
                    continue;
                }
                let entries = store.audit_entries(&chain, None).await?;
                chains += 1;
                match audit::verify_chain(&chain, anchor.as_ref(), entries) {
                    Ok(n) => checked += n,
                    Err(b) => {
                        broken = Some(b);
                        break;
                    }
                }
            }
            match broken {
                None => print(
                    *json,
                    json!({"ok": true, "chains": chains, "entries": checked, "unsealed": unsealed}),
                    if unsealed > 0 {
                        format!(
                            "ok: {chains} chains, {checked} entries verified; {unsealed} entries \
                             not linked yet (written by transactions still running or just ended)"
                        )
                    } else {
                        format!("ok: {chains} chains, {checked} entries verified")
                    },
                ),
                Some(b) => {
                    print(
                        *json,
                        json!({"ok": false, "chain": b.chain, "seq": b.seq, "reason": b.reason}),
                        format!(
                            "BROKEN: chain \"{}\" at entry {}: {}",
                            b.chain, b.seq, b.reason
                        ),
                    );
                    return Err(CoreError::Internal("the audit log does not verify".into()).into());
                }
            }
        }
        AuditCmd::Prune {
            older_than_days,
            json,
        } => {
            let before = crate::core::now_plus_secs(-i64::from(*older_than_days) * 86_400);
            let mut pruned = Vec::new();
            for (chain, _) in store.audit_chains().await? {
                let through = store.prune_audit(&chain, &before).await?;
                if through > 0 {
                    pruned.push(json!({"chain": chain, "through_seq": through}));
                }
            }
            print(
                *json,
                json!({"pruned": pruned, "before": before}),
                format!("pruned {} chains before {before}", pruned.len()),
            );
        }
    }
    Ok(())
}

pub async fn role_mapping(store: &SqlStore, c: &RoleMappingCmd) -> Result<(), CliError> {
    match c {
        RoleMappingCmd::Add {
            org,
            group,
            role,
            by_external_id,
            json,
        } => {
            let org = orgs::org(store, org).await?;
            let on = if *by_external_id {
                "externalId"
            } else {
                "displayName"
            };
            let m = crate::core::roles::new_mapping(&org.id, on, group, role)?;
            store.insert_role_mapping(&m, &Actor::Cli).await?;
            print(
                *json,
                json!({"id": m.id, "match_on": m.match_on, "group": m.group_value, "role": m.role}),
                format!("{}\t{} {} → {}", m.id, m.match_on, m.group_value, m.role),
            );
        }
        RoleMappingCmd::List { org, json } => {
            let org = orgs::org(store, org).await?;
            let list = store.role_mappings(&org.id).await?;
            let items: Vec<_> = list
                .iter()
                .map(|m| json!({"id": m.id, "match_on": m.match_on, "group": m.group_value, "role": m.role}))
                .collect();
            let text = list
                .iter()
                .map(|m| format!("{}\t{} {} → {}", m.id, m.match_on, m.group_value, m.role))
                .collect::<Vec<_>>()
                .join("\n");
            print(*json, json!({"role_mappings": items}), text);
        }
        RoleMappingCmd::Remove { org, id, json } => {
            let org = orgs::org(store, org).await?;
            if !store.delete_role_mapping(&org.id, id, &Actor::Cli).await? {
                return Err(CoreError::NotFound(format!("role mapping {id}")).into());
            }
            print(
                *json,
                json!({"id": id, "removed": true}),
                format!("removed {id}"),
            );
        }
    }
    Ok(())
}

pub async fn report(store: &SqlStore, c: &ReportCmd) -> Result<(), CliError> {
    let ReportCmd::Drift {
        org,
        stale_days,
        json,
    } = c;
    let org = orgs::org(store, org).await?;
    let r = store
        .drift_report(&org, (*stale_days).clamp(1, 3650), &now())
        .await?;
    let mut text = vec![
        format!("drift report for {} at {}", r.org, r.generated_at),
        format!(
            "JIT users never seen by the directory (orphan risk): {}",
            r.jit_never_synced.count
        ),
        format!(
            "users the directory has not touched for {} days: {}",
            r.stale_days, r.stale_directory_users.count
        ),
        format!(
            "deactivated users with a live session or token (must be 0): {}",
            r.deactivated_with_live_access.count
        ),
    ];
    for d in &r.directories {
        text.push(format!(
            "directory {} ({}): last request {}, {} requests, error rate {:.2}%",
            d.name,
            d.directory_id,
            d.last_request_at.as_deref().unwrap_or("never"),
            d.requests,
            d.error_rate * 100.0
        ));
        for c in &d.by_client {
            text.push(format!(
                "  {}: {} requests, {} errors",
                if c.user_agent.is_empty() {
                    "(no User-Agent)"
                } else {
                    &c.user_agent
                },
                c.requests,
                c.errors
            ));
        }
    }
    print(
        *json,
        serde_json::to_value(&r).unwrap_or_default(),
        text.join("\n"),
    );
    Ok(())
}
