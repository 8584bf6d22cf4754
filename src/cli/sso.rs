//! `roster domain | connection | app | keys`: setting up SSO from the command line.

use clap::{Args, Subcommand};
use serde_json::json;

use super::{CliError, print};
use crate::core::domains::{self, Domain};
use crate::core::error::CoreError;
use crate::core::keys;
use crate::core::model::Actor;
use crate::core::orgs;
use crate::core::secrets::MasterKey;
use crate::core::sessions;
use crate::core::sso::{Connection, IdpKind, JitMode};
use crate::core::store::prelude::*;
use crate::outbound::{Outbound, Reach};
use crate::sso::setup::{self, ConnectionSpec, Upstream};
use crate::store::SqlStore;

#[derive(Subcommand)]
pub enum DomainCmd {
    /// Claim a domain for an organization: pending, with the TXT record to publish, until
    /// `roster domain verify` finds it. Only verified domains route logins, allow JIT
    /// creation or count for email_verified.
    Add {
        #[arg(long)]
        org: String,
        domain: String,
        #[arg(long)]
        json: bool,
    },
    /// Check a claimed domain's TXT record and verify it when it carries the challenge;
    /// --force verifies without looking (the operator vouches for it).
    Verify {
        #[arg(long)]
        org: String,
        domain: String,
        #[arg(long)]
        force: bool,
        #[arg(long)]
        json: bool,
    },
    /// Remove a claimed domain (pending or verified): it stops routing logins, allowing JIT
    /// and counting for email_verified at once. Users keep their accounts.
    Remove {
        #[arg(long)]
        org: String,
        domain: String,
        #[arg(long)]
        json: bool,
    },
    /// List claimed domains and their state.
    List {
        #[arg(long)]
        org: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

// Parsed once per process: boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum ConnectionCmd {
    /// Connect an organization to its IdP: OIDC (issuer, client id and secret) or SAML.
    Create(CreateConnection),
    /// List connections.
    List {
        #[arg(long)]
        org: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Let Roster's requests for a connection (OIDC discovery, JWKS, token, userinfo)
    /// reach loopback and private networks — for an IdP inside your network — or, with
    /// --off, public addresses only (the rule for connections made by organization-scoped
    /// keys and setup links; connections created before this setting existed have it off).
    PrivateNetworks {
        /// The connection's id.
        id: String,
        #[arg(long)]
        off: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub struct CreateConnection {
    #[arg(long)]
    org: String,
    #[arg(long)]
    name: Option<String>,
    /// The IdP product (selects default claim names): okta, entra, google, onelogin,
    /// jumpcloud, generic.
    #[arg(long, default_value = "generic")]
    idp: String,
    /// SAML: the IdP's metadata, as a file path or an https URL.
    #[arg(long, conflicts_with = "oidc_issuer")]
    saml_metadata: Option<String>,
    /// OIDC: the IdP's issuer URL (discovery document at <issuer>/.well-known/openid-configuration).
    #[arg(long, requires_all = ["client_id", "client_secret"])]
    oidc_issuer: Option<String>,
    #[arg(long)]
    client_id: Option<String>,
    /// OIDC client secret (stored encrypted with the master key).
    #[arg(long, env = "ROSTER_OIDC_CLIENT_SECRET", hide_env_values = true)]
    client_secret: Option<String>,
    /// OIDC: extra scopes to request beside openid, email and profile (repeatable).
    #[arg(long = "scope")]
    scopes: Vec<String>,
    /// JIT provisioning at login: off, create, create_and_update.
    #[arg(long, default_value = "create")]
    jit: String,
    /// The domains this connection serves (repeatable; default: every verified domain of
    /// the organization). It may sign in, link or create only users of these domains.
    #[arg(long = "domain", alias = "jit-allowed-domain")]
    domains: Vec<String>,
    /// When the organization has a SCIM directory, refuse logins of people it did not provision.
    #[arg(long)]
    directory_authoritative: bool,
    /// Override a claim mapping: field=claim[,claim...] (fields: email, given_name,
    /// family_name, display_name, external_id, groups, roles). Repeatable.
    #[arg(long = "map")]
    mappings: Vec<String>,
    /// OIDC: accept email addresses the IdP does not mark verified.
    #[arg(long)]
    trust_unverified_email: bool,
    /// SAML: seconds of clock difference with the IdP to tolerate (default 60, at most 300).
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=300))]
    clock_skew_secs: Option<u32>,
    /// SAML: accept IdP-initiated logins (sent to --idp-initiated-app).
    #[arg(long, requires_all = ["idp_initiated_app", "idp_initiated_redirect_uri"])]
    allow_idp_initiated: bool,
    /// SAML: the app (client id) IdP-initiated logins go to.
    #[arg(long)]
    idp_initiated_app: Option<String>,
    /// SAML: the app's redirect URI for IdP-initiated logins (one it registered).
    #[arg(long)]
    idp_initiated_redirect_uri: Option<String>,
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
pub enum AppCmd {
    /// Register an app; prints its client id and secret (shown once, stored hashed).
    Create {
        #[arg(long)]
        name: Option<String>,
        /// Where Roster may send users back with a code (exact match; repeatable).
        #[arg(long = "redirect-uri", required = true)]
        redirect_uris: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// List apps.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum KeysCmd {
    /// Make a new ID token signing key current; the previous one stays published for a while.
    Rotate {
        #[arg(long)]
        json: bool,
    },
    /// List signing keys.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum UserCmd {
    /// Deactivate a user (by id or userName): every session and token ends at once.
    Deactivate {
        #[arg(long)]
        org: String,
        user: String,
        #[arg(long)]
        json: bool,
    },
    /// Reactivate a user (by id or userName).
    Reactivate {
        #[arg(long)]
        org: String,
        user: String,
        #[arg(long)]
        json: bool,
    },
}

pub async fn user(store: &SqlStore, cmd: &UserCmd) -> Result<(), CliError> {
    let (org, user, active, json) = match cmd {
        UserCmd::Deactivate { org, user, json } => (org, user, false, *json),
        UserCmd::Reactivate { org, user, json } => (org, user, true, *json),
    };
    let org = orgs::org(store, org).await?;
    let scope = crate::core::model::Scope {
        org: org.id.clone(),
        actor: Actor::Cli,
    };
    let found = match store.get_user(&scope, user).await? {
        Some(u) => Some(u),
        None => store.user_by_user_name(&scope, user).await?,
    };
    let found =
        found.ok_or_else(|| CoreError::NotFound(format!("user \"{user}\" in {}", org.slug)))?;
    let u = crate::core::resources::set_active(store, &scope, &found.id, active).await?;
    print(
        json,
        json!({"id": u.id, "userName": u.user_name(), "active": u.active()}),
        format!(
            "{} {} ({})",
            if active { "reactivated" } else { "deactivated" },
            u.user_name(),
            u.id
        ),
    );
    Ok(())
}

fn domain_json(d: &Domain) -> serde_json::Value {
    json!({
        "domain": d.domain, "org": d.org_slug, "state": d.state.as_str(),
        "record_name": d.record_name(), "record_value": d.record_value(),
        "created_at": d.created_at, "verified_at": d.verified_at, "verified_by": d.verified_by,
        "checked_at": d.checked_at, "check_error": d.check_error,
    })
}

pub async fn domain(
    store: &SqlStore,
    dns: &crate::dns::Resolver,
    cmd: &DomainCmd,
) -> Result<(), CliError> {
    match cmd {
        DomainCmd::Add { org, domain, json } => {
            let org = orgs::org(store, org).await?;
            let d = domains::claim(store, &org, domain, &Actor::Cli).await?;
            print(
                *json,
                domain_json(&d),
                format!(
                    "claimed domain {} for {} (pending)\npublish this DNS record, then run \
                     `roster domain verify --org {} {}`:\n  {}  TXT  \"{}\"",
                    d.domain,
                    org.slug,
                    org.slug,
                    d.domain,
                    d.record_name(),
                    d.record_value()
                ),
            );
        }
        DomainCmd::Verify {
            org,
            domain,
            force,
            json,
        } => {
            let org = orgs::org(store, org).await?;
            let (d, outcome) =
                domains::verify(store, dns, &org, domain, *force, &Actor::Cli).await?;
            let text = match &outcome {
                domains::CheckOutcome::Verified => format!("{} is verified", d.domain),
                domains::CheckOutcome::Pending(why) => format!(
                    "{} is still pending: {why}\nexpected: {}  TXT  \"{}\"",
                    d.domain,
                    d.record_name(),
                    d.record_value()
                ),
            };
            print(*json, domain_json(&d), text);
            if let domains::CheckOutcome::Pending(why) = outcome {
                return Err(CoreError::InvalidValue(format!(
                    "{} is not verified: {why}",
                    d.domain
                ))
                .into());
            }
        }
        DomainCmd::Remove { org, domain, json } => {
            let org = orgs::org(store, org).await?;
            let d = domains::remove(store, &org, domain, &Actor::Cli).await?;
            print(
                *json,
                json!({"removed": d.domain, "org": org.slug, "state": d.state.as_str()}),
                format!(
                    "removed domain {} ({}) from {}",
                    d.domain,
                    d.state.as_str(),
                    org.slug
                ),
            );
        }
        DomainCmd::List { org, json } => {
            let org = match org {
                Some(slug) => Some(orgs::org(store, slug).await?),
                None => None,
            };
            let list = store.list_domains(org.as_ref().map(|o| &o.id)).await?;
            let v: Vec<_> = list.iter().map(domain_json).collect();
            let text = list
                .iter()
                .map(|d| format!("{}\t{}\t{}", d.domain, d.org_slug, d.state.as_str()))
                .collect::<Vec<_>>()
                .join("\n");
            print(*json, json!({"domains": v}), text);
        }
    }
    Ok(())
}

/// The CLI's view of a connection (`connection_id` for the id, as it always printed).
fn connection_json(c: &Connection, public_url: &str) -> serde_json::Value {
    let mut v = serde_json::to_value(setup::ConnectionView::of(c, public_url)).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        if let Some(id) = o.remove("id") {
            o.insert("connection_id".into(), id);
        }
        o.remove("org_id");
        o.remove("disabled");
    }
    v
}

pub async fn connection(
    store: &SqlStore,
    master: &MasterKey,
    public_url: &str,
    cmd: &ConnectionCmd,
) -> Result<(), CliError> {
    match cmd {
        ConnectionCmd::Create(c) => {
            crate::http::check_master_key(store, master).await?;
            let org = orgs::org(store, &c.org).await?;
            let idp = IdpKind::parse(&c.idp)?;
            let upstream = match (&c.oidc_issuer, &c.saml_metadata) {
                (Some(issuer), None) => Upstream::Oidc {
                    issuer: issuer.clone(),
                    client_id: c.client_id.clone().unwrap_or_default(),
                    client_secret: c.client_secret.clone().unwrap_or_default(),
                },
                (None, Some(source)) => Upstream::Saml {
                    metadata_xml: read_metadata(source).await?,
                },
                _ => {
                    return Err(CoreError::InvalidValue(
                        "give --oidc-issuer (with --client-id and --client-secret) or --saml-metadata"
                            .into(),
                    )
                    .into());
                }
            };
            let spec = ConnectionSpec {
                name: c.name.clone(),
                scopes: c.scopes.clone(),
                jit: JitMode::parse(&c.jit)?,
                domains: c.domains.clone(),
                directory_authoritative: c.directory_authoritative,
                mappings: c.mappings.clone(),
                trust_unverified_email: c.trust_unverified_email,
                clock_skew_secs: c.clock_skew_secs,
                idp_initiated: match (&c.idp_initiated_app, &c.idp_initiated_redirect_uri) {
                    (Some(app), Some(uri)) if c.allow_idp_initiated => {
                        Some((app.clone(), uri.clone()))
                    }
                    _ => None,
                },
                // The operator's own command: the IdP may be on a private network.
                private_networks: true,
                ..ConnectionSpec::new(idp, upstream)
            };
            let conn = setup::create_connection(store, master, &org, spec, &Actor::Cli).await?;
            let v = connection_json(&conn, public_url);
            let text = format!(
                "connection {} for {}\n{}",
                conn.id,
                org.slug,
                serde_json::to_string_pretty(&v).unwrap_or_default()
            );
            print(c.json, v, text);
        }
        ConnectionCmd::List { org, json } => {
            let org = match org {
                Some(slug) => Some(orgs::org(store, slug).await?),
                None => None,
            };
            let list = store.list_connections(org.as_ref().map(|o| &o.id)).await?;
            let v: Vec<_> = list
                .iter()
                .map(|c| connection_json(c, public_url))
                .collect();
            let text = list
                .iter()
                .map(|c| {
                    format!(
                        "{}\t{}\t{}\t{}",
                        c.id,
                        c.protocol.as_str(),
                        c.idp.as_str(),
                        c.name
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            print(*json, json!({"connections": v}), text);
        }
        ConnectionCmd::PrivateNetworks { id, off, json } => {
            if !store
                .set_connection_private_networks(id, !off, &Actor::Cli)
                .await?
            {
                return Err(CoreError::NotFound(format!("connection {id}")).into());
            }
            print(
                *json,
                json!({"connection_id": id, "private_networks": !off}),
                format!(
                    "connection {id}: {}",
                    if *off {
                        "public addresses only"
                    } else {
                        "private networks allowed"
                    }
                ),
            );
        }
    }
    Ok(())
}

/// IdP metadata from a file, or from an https URL (http only on loopback). The operator's
/// own command: private networks may be reached.
async fn read_metadata(source: &str) -> Result<String, CliError> {
    if source.starts_with("https://") || source.starts_with("http://") {
        let out = Outbound::new(
            concat!("roster/", env!("CARGO_PKG_VERSION")),
            std::time::Duration::from_secs(15),
        )
        .map_err(|e| CoreError::Internal(e.to_string()))?;
        return Ok(setup::fetch_idp_metadata(&out, Reach::Private, source).await?);
    }
    Ok(std::fs::read_to_string(source)?)
}

pub async fn app(store: &SqlStore, cmd: &AppCmd) -> Result<(), CliError> {
    match cmd {
        AppCmd::Create {
            name,
            redirect_uris,
            json,
        } => {
            let (app, secret) = sessions::create_app(
                store,
                name.as_deref().unwrap_or("app"),
                redirect_uris,
                &Actor::Cli,
            )
            .await?;
            print(
                *json,
                json!({"client_id": app.id, "client_secret": secret, "name": app.name, "redirect_uris": app.redirect_uris}),
                format!(
                    "app {}\nclient_id: {}\nclient_secret (shown once): {secret}",
                    app.name, app.id
                ),
            );
        }
        AppCmd::List { json } => {
            let list = store.list_apps().await?;
            let v: Vec<_> = list
                .iter()
                .map(|a| json!({"client_id": a.id, "name": a.name, "redirect_uris": a.redirect_uris, "created_at": a.created_at}))
                .collect();
            let text = list
                .iter()
                .map(|a| format!("{}\t{}\t{}", a.id, a.name, a.redirect_uris.join(" ")))
                .collect::<Vec<_>>()
                .join("\n");
            print(*json, json!({"apps": v}), text);
        }
    }
    Ok(())
}

pub async fn keys(store: &SqlStore, master: &MasterKey, cmd: &KeysCmd) -> Result<(), CliError> {
    match cmd {
        KeysCmd::Rotate { json } => {
            crate::http::check_master_key(store, master).await?;
            let k = keys::rotate(store, master).await?;
            print(
                *json,
                json!({"kid": k.kid, "alg": k.alg, "created_at": k.created_at}),
                format!("signing key {} ({}) is now current", k.kid, k.alg),
            );
        }
        KeysCmd::List { json } => {
            let list = store.signing_keys().await?;
            let v: Vec<_> = list
                .iter()
                .map(|k| json!({"kid": k.kid, "alg": k.alg, "created_at": k.created_at, "retired_at": k.retired_at}))
                .collect();
            let text = list
                .iter()
                .map(|k| {
                    format!(
                        "{}\t{}\t{}",
                        k.kid,
                        k.alg,
                        k.retired_at.as_deref().unwrap_or("current")
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            print(*json, json!({"keys": v}), text);
        }
    }
    Ok(())
}
