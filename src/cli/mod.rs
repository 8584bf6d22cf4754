//! The `roster` command line: `serve` and the administration commands, which work on the
//! same data directory or database as a running server.

mod lifecycle;
mod sso;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use serde_json::json;

use crate::core::error::CoreError;
use crate::core::model::Actor;
use crate::core::orgs::{self, OrgSlug};
use crate::core::secrets::MasterKey;
use crate::core::store::prelude::*;
use crate::http::Server;
use crate::store::{self, SqlStore, StoreLocation};

#[derive(Parser)]
#[command(
    name = "roster",
    version,
    about = "Self-hosted user provisioning: SCIM 2.0, SSO with JIT, one roster per organization"
)]
struct Cli {
    /// A TOML file of settings (keys: the flags' names with `_`, e.g. `data_dir`, `listen`);
    /// flags and environment variables override it.
    #[arg(long, env = "ROSTER_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(flatten)]
    db: DbArgs,
    /// Log lines as text or as JSON objects (one per line, with the request id of the
    /// request they belong to); `RUST_LOG` filters them.
    #[arg(
        long,
        env = "ROSTER_LOG_FORMAT",
        global = true,
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Args, Clone)]
struct DbArgs {
    /// Directory of the embedded SQLite database.
    #[arg(
        long,
        env = "ROSTER_DATA_DIR",
        default_value = "./roster-data",
        global = true
    )]
    data_dir: PathBuf,
    /// PostgreSQL URL (postgres://…); when set, used instead of SQLite.
    #[arg(
        long,
        env = "ROSTER_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    database_url: Option<String>,
    /// PostgreSQL schema to use (created if missing); default: the search_path's.
    #[arg(long, env = "ROSTER_DATABASE_SCHEMA", global = true)]
    database_schema: Option<String>,
    /// Base URL clients reach this server at (for SCIM locations and printed URLs).
    #[arg(long, env = "ROSTER_PUBLIC_URL", global = true)]
    public_url: Option<String>,
    /// The DNS server domain verification asks (IP or IP:PORT); default: the system's.
    #[arg(long, env = "ROSTER_DNS_RESOLVER", global = true, value_parser = crate::dns::parse_upstream)]
    dns_resolver: Option<std::net::SocketAddr>,
}

// Parsed once per process: boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Cmd {
    /// Run the server.
    Serve {
        /// Address to listen on.
        #[arg(long, env = "ROSTER_LISTEN", default_value = "127.0.0.1:8080")]
        listen: String,
        /// Delays between webhook retries (units ms, s, m, h); after the last, a delivery
        /// is marked failed.
        #[arg(
            long,
            env = "ROSTER_WEBHOOK_RETRY_SCHEDULE",
            default_value = "5s,5m,30m,2h,5h,10h,10h,10h"
        )]
        webhook_retry_schedule: String,
        /// Delete audit entries older than this many days (hourly); default: keep all.
        #[arg(long, env = "ROSTER_AUDIT_RETENTION_DAYS")]
        audit_retention_days: Option<u32>,
        /// Delete events older than this many days (hourly), but none a webhook endpoint has
        /// yet to deliver; default: keep all.
        #[arg(long, env = "ROSTER_EVENT_RETENTION_DAYS")]
        event_retention_days: Option<u32>,
        /// SCIM requests per second each bearer token may make on this node (bursts of twice
        /// that); over it, 429 with Retry-After. 0: no limit.
        #[arg(long, env = "ROSTER_SCIM_RATE_LIMIT", default_value_t = 0)]
        scim_rate_limit: u32,
        /// Admin API requests per second each admin key may make on this node (bursts of
        /// twice that); over it, 429 with Retry-After. 0: no limit.
        #[arg(long, env = "ROSTER_ADMIN_RATE_LIMIT", default_value_t = 0)]
        admin_rate_limit: u32,
        /// Unauthenticated login starts (/oauth/authorize, the console's SSO) per second each
        /// client address may make on this node (bursts of twice that; IPv6 counted per
        /// /64); over it, 429 with Retry-After. 0: no limit.
        #[arg(long, env = "ROSTER_LOGIN_RATE_LIMIT", default_value_t = crate::sso::DEFAULT_LOGIN_RATE_LIMIT)]
        login_rate_limit: u32,
        /// Serve HTTPS with this PEM certificate chain (with --tls-key).
        #[arg(long, env = "ROSTER_TLS_CERT", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The PEM private key of --tls-cert.
        #[arg(long, env = "ROSTER_TLS_KEY", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Require `Authorization: Bearer <token>` on /metrics (401 otherwise); default:
        /// /metrics is open (bind or firewall it).
        #[arg(
            long,
            env = "ROSTER_METRICS_TOKEN",
            hide_env_values = true,
            hide_default_value = true
        )]
        metrics_token: Option<String>,
    },
    /// Organizations.
    #[command(subcommand)]
    Org(OrgCmd),
    /// SCIM directories and their tokens.
    #[command(subcommand)]
    Directory(DirCmd),
    /// Email domains of organizations: claimed, then verified through DNS.
    #[command(subcommand)]
    Domain(sso::DomainCmd),
    /// SSO connections to organizations' identity providers (OIDC, SAML).
    #[command(subcommand)]
    Connection(sso::ConnectionCmd),
    /// Apps that sign users in through Roster (OpenID Connect clients).
    #[command(subcommand)]
    App(sso::AppCmd),
    /// ID token signing keys.
    #[command(subcommand)]
    Keys(sso::KeysCmd),
    /// Users of an organization.
    #[command(subcommand)]
    User(sso::UserCmd),
    /// Webhook endpoints and their deliveries.
    #[command(subcommand)]
    Webhook(lifecycle::WebhookCmd),
    /// Admin API keys.
    #[command(subcommand)]
    AdminKey(lifecycle::AdminKeyCmd),
    /// The hash-chained audit log: export, verify, prune.
    #[command(subcommand)]
    Audit(lifecycle::AuditCmd),
    /// Let the users of an organization (your operators') sign in to the console through
    /// its SSO, with the role roster-admin (read-write) or roster-viewer (read-only).
    ConsoleSso {
        /// The operators' organization; with --off, stop.
        #[arg(long, required_unless_present = "off")]
        org: Option<String>,
        #[arg(long, conflicts_with = "org")]
        off: bool,
        #[arg(long)]
        json: bool,
    },
    /// Group-to-role mappings of an organization.
    #[command(subcommand)]
    RoleMapping(lifecycle::RoleMappingCmd),
    /// Reports.
    #[command(subcommand)]
    Report(lifecycle::ReportCmd),
}

#[derive(Subcommand)]
enum OrgCmd {
    /// Create an organization.
    Create {
        slug: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List organizations.
    List {
        #[arg(long)]
        json: bool,
    },
    /// A one-time, expiring link for the organization's IT admin: step-by-step SSO and SCIM
    /// setup for their IdP, without access to anything else.
    SetupLink {
        #[arg(long)]
        org: String,
        /// How long the link (and the session it opens) lasts: e.g. 7d, 12h, 30m.
        #[arg(long, default_value = "7d")]
        expires: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum DirCmd {
    /// Create a SCIM directory for an organization; prints its base URL and a token (shown once).
    Create {
        #[arg(long)]
        org: String,
        #[arg(long)]
        name: Option<String>,
        /// The first token may only read (GET and searches).
        #[arg(long)]
        read_only: bool,
        #[arg(long)]
        json: bool,
    },
    /// Issue a new token for a directory, or revoke one.
    Token {
        #[arg(long)]
        directory: String,
        #[arg(long)]
        read_only: bool,
        /// Revoke this token id instead of issuing a new token.
        #[arg(long)]
        revoke: Option<String>,
        /// List the directory's tokens (ids and state, never the secrets).
        #[arg(long, conflicts_with = "revoke")]
        list: bool,
        #[arg(long)]
        json: bool,
    },
    /// List directories.
    List {
        #[arg(long)]
        org: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Store(#[from] crate::core::error::StoreError),
}

/// Settings a configuration file may hold; each is the default its flag falls back to.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<String>,
    database_url: Option<String>,
    database_schema: Option<String>,
    public_url: Option<String>,
    dns_resolver: Option<String>,
    log_format: Option<String>,
    listen: Option<String>,
    webhook_retry_schedule: Option<String>,
    audit_retention_days: Option<u32>,
    event_retention_days: Option<u32>,
    scim_rate_limit: Option<u32>,
    admin_rate_limit: Option<u32>,
    login_rate_limit: Option<u32>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    metrics_token: Option<String>,
}

/// The configuration file named by `--config` or `ROSTER_CONFIG`, if any.
fn config_path() -> Option<PathBuf> {
    let mut args = std::env::args_os().skip(1);
    while let Some(a) = args.next() {
        let a = a.to_string_lossy().into_owned();
        if a == "--config" {
            return args.next().map(PathBuf::from);
        }
        if let Some(p) = a.strip_prefix("--config=") {
            return Some(PathBuf::from(p));
        }
    }
    std::env::var_os("ROSTER_CONFIG")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// An environment variable set to the empty string (as compose files and systemd units
/// write `ROSTER_DATABASE_URL=`) counts as unset: the option falls back to the file or
/// the default instead of failing on an empty value. Every subcommand's options, too.
fn unset_empty_env(cmd: clap::Command) -> clap::Command {
    let cmd = cmd.mut_args(|a| {
        let empty = a
            .get_env()
            .and_then(std::env::var_os)
            .is_some_and(|v| v.is_empty());
        if empty {
            a.env(None::<&'static str>)
        } else {
            a
        }
    });
    cmd.mut_subcommands(unset_empty_env)
}

/// The command line with the configuration file's values as defaults, so that flags, then
/// environment variables, then the file, then built-in defaults decide.
fn parse_cli() -> Result<Cli, String> {
    use clap::{CommandFactory, FromArgMatches};
    let mut cmd = unset_empty_env(Cli::command());
    if let Some(path) = config_path() {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let f: FileConfig =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let global = [
            ("data_dir", f.data_dir),
            ("database_url", f.database_url),
            ("database_schema", f.database_schema),
            ("public_url", f.public_url),
            ("dns_resolver", f.dns_resolver),
            ("log_format", f.log_format),
        ];
        for (id, v) in global {
            if let Some(v) = v {
                cmd = cmd.mut_arg(id, |a| a.default_value(v));
            }
        }
        let serve = [
            ("listen", f.listen),
            ("webhook_retry_schedule", f.webhook_retry_schedule),
            (
                "audit_retention_days",
                f.audit_retention_days.map(|d| d.to_string()),
            ),
            (
                "event_retention_days",
                f.event_retention_days.map(|d| d.to_string()),
            ),
            ("scim_rate_limit", f.scim_rate_limit.map(|d| d.to_string())),
            (
                "admin_rate_limit",
                f.admin_rate_limit.map(|d| d.to_string()),
            ),
            (
                "login_rate_limit",
                f.login_rate_limit.map(|d| d.to_string()),
            ),
            ("tls_cert", f.tls_cert),
            ("tls_key", f.tls_key),
            ("metrics_token", f.metrics_token),
        ];
        for (id, v) in serve {
            if let Some(v) = v {
                cmd = cmd.mut_subcommand("serve", |c| c.mut_arg(id, |a| a.default_value(v)));
            }
        }
    }
    let matches = cmd.get_matches();
    Cli::from_arg_matches(&matches).map_err(|e| e.to_string())
}

pub fn main() -> std::process::ExitCode {
    let cli = match parse_cli() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let serve = matches!(cli.cmd, Cmd::Serve { .. });
    init_tracing(serve, cli.log_format);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_tracing(serve: bool, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(if serve { "info,sqlx=warn" } else { "warn" })
    });
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => fmt.try_init(),
        LogFormat::Json => fmt
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

/// The master key: `ROSTER_MASTER_KEY`, else the key file in the data directory (generated
/// on first use: the development default; with several nodes, set the variable).
fn master_key(db: &DbArgs) -> Result<MasterKey, CliError> {
    // An environment variable only: a flag would show the key in the process list.
    let configured = std::env::var("ROSTER_MASTER_KEY")
        .ok()
        .filter(|k| !k.is_empty());
    let (key, created) = MasterKey::load_or_create(configured.as_deref(), &db.data_dir)?;
    if created {
        tracing::warn!(
            file = %db.data_dir.join(crate::core::secrets::MASTER_KEY_FILE).display(),
            "generated a master key for secrets at rest; back it up, or set ROSTER_MASTER_KEY"
        );
    }
    Ok(key)
}

fn location(db: &DbArgs) -> StoreLocation {
    match &db.database_url {
        Some(url) => StoreLocation::Postgres {
            url: url.clone(),
            schema: db.database_schema.clone(),
        },
        None => StoreLocation::SqliteDir(db.data_dir.clone()),
    }
}

fn public_url(db: &DbArgs, listen: Option<&str>) -> String {
    db.public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", listen.unwrap_or("127.0.0.1:8080")))
        .trim_end_matches('/')
        .to_owned()
}

async fn run(cli: Cli) -> Result<(), CliError> {
    let store = store::open(&location(&cli.db)).await?;
    let result = dispatch(&cli, &store).await;
    store.close().await;
    result
}

pub(crate) fn print(json_out: bool, v: serde_json::Value, text: String) {
    if json_out {
        println!("{v}");
    } else {
        println!("{text}");
    }
}

async fn dispatch(cli: &Cli, store: &SqlStore) -> Result<(), CliError> {
    let actor = Actor::Cli;
    match &cli.cmd {
        Cmd::Domain(c) => {
            sso::domain(store, &crate::dns::Resolver::new(cli.db.dns_resolver), c).await?;
        }
        Cmd::Connection(c) => {
            let master = master_key(&cli.db)?;
            sso::connection(store, &master, &public_url(&cli.db, None), c).await?;
        }
        Cmd::App(c) => sso::app(store, c).await?,
        Cmd::User(c) => sso::user(store, c).await?,
        Cmd::Keys(c) => {
            let master = master_key(&cli.db)?;
            sso::keys(store, &master, c).await?;
        }
        Cmd::Webhook(c) => {
            let master = master_key(&cli.db)?;
            lifecycle::webhook(store, &master, c).await?;
        }
        Cmd::AdminKey(c) => lifecycle::admin_key(store, c).await?,
        Cmd::Audit(c) => lifecycle::audit_cmd(store, c).await?,
        Cmd::RoleMapping(c) => lifecycle::role_mapping(store, c).await?,
        Cmd::Report(c) => lifecycle::report(store, c).await?,
        Cmd::Serve {
            listen,
            webhook_retry_schedule,
            audit_retention_days,
            event_retention_days,
            scim_rate_limit,
            admin_rate_limit,
            login_rate_limit,
            tls_cert,
            tls_key,
            metrics_token,
        } => {
            let master = master_key(&cli.db)?;
            let schedule = crate::delivery::parse_schedule(webhook_retry_schedule)
                .map_err(|m| CoreError::InvalidValue(format!("--webhook-retry-schedule: {m}")))?;
            let server = Server::bind_tls(
                listen,
                store.clone(),
                cli.db.public_url.as_deref(),
                master,
                tls_cert.as_deref().zip(tls_key.as_deref()),
            )
            .await?
            .webhook_schedule_ms(schedule)
            .audit_retention_days(*audit_retention_days)
            .event_retention_days(*event_retention_days)
            .scim_rate_limit(*scim_rate_limit)
            .admin_rate_limit(*admin_rate_limit)
            .dns_resolver(cli.db.dns_resolver)
            .login_rate_limit(*login_rate_limit)
            .metrics_token(metrics_token.clone());
            tracing::info!(addr = %server.local_addr()?, "roster listening");
            server.run(shutdown_signal()).await?;
        }
        Cmd::Org(OrgCmd::Create { slug, name, json }) => {
            let slug = OrgSlug::parse(slug)?;
            let org = orgs::create_org(store, &slug, name.as_deref(), &actor).await?;
            print(
                *json,
                json!({"id": org.id.as_str(), "slug": org.slug, "name": org.name}),
                format!("created organization {} ({})", org.slug, org.id.as_str()),
            );
        }
        Cmd::Org(OrgCmd::List { json }) => {
            let list = store.list_orgs().await?;
            let v: Vec<_> = list
                .iter()
                .map(|o| json!({"id": o.id.as_str(), "slug": o.slug, "name": o.name, "created_at": o.created_at}))
                .collect();
            let text = list
                .iter()
                .map(|o| format!("{}\t{}\t{}", o.slug, o.id.as_str(), o.name))
                .collect::<Vec<_>>()
                .join("\n");
            print(*json, json!({"organizations": v}), text);
        }
        Cmd::ConsoleSso { org, off: _, json } => {
            use crate::core::store::prelude::*;
            let slug = match org {
                Some(slug) => Some(orgs::org(store, slug).await?.slug),
                None => None,
            };
            store
                .set_setting(crate::console::SSO_ORG_SETTING, slug.as_deref(), &actor)
                .await?;
            print(
                *json,
                json!({"console_sso_org": slug}),
                match &slug {
                    Some(s) => format!(
                        "operators of {s} with role roster-admin or roster-viewer may sign in to /console through its SSO"
                    ),
                    None => "console SSO is off".to_owned(),
                },
            );
        }
        Cmd::Org(OrgCmd::SetupLink { org, expires, json }) => {
            let org = orgs::org(store, org).await?;
            let secs = crate::console::setup_page::parse_expiry(expires)?;
            let (link, token) =
                crate::console::setup_page::create_link(store, &org, secs, &actor).await?;
            let url = format!("{}/setup/{token}", public_url(&cli.db, None));
            print(
                *json,
                json!({"url": url, "org": org.slug, "expires_at": link.expires_at, "id": link.id}),
                format!(
                    "setup link for {} (one use, expires {}):\n{url}",
                    org.slug, link.expires_at
                ),
            );
        }
        Cmd::Directory(DirCmd::Create {
            org,
            name,
            read_only,
            json,
        }) => {
            let org = orgs::org(store, org).await?;
            let (dir, info, token) =
                orgs::create_directory(store, &org, name.as_deref(), *read_only, &actor).await?;
            let base = format!("{}/scim/v2", public_url(&cli.db, None));
            print(
                *json,
                json!({"directory_id": dir.id, "org": org.slug, "scim_base_url": base, "token": token, "token_id": info.id, "read_only": info.read_only}),
                format!(
                    "directory {}\nSCIM base URL: {base}\nbearer token (shown once): {token}",
                    dir.id
                ),
            );
        }
        Cmd::Directory(DirCmd::Token {
            directory,
            read_only,
            revoke,
            list,
            json,
        }) => {
            let dir = orgs::directory(store, directory).await?;
            if *list {
                let tokens = store.list_tokens(&dir.id).await?;
                let v: Vec<_> = tokens
                    .iter()
                    .map(|t| json!({"token_id": t.id, "read_only": t.read_only, "created_at": t.created_at, "revoked_at": t.revoked_at}))
                    .collect();
                let text = tokens
                    .iter()
                    .map(|t| {
                        format!(
                            "{}\t{}\t{}",
                            t.id,
                            if t.read_only {
                                "read-only"
                            } else {
                                "read-write"
                            },
                            t.revoked_at.as_deref().unwrap_or("active")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                print(*json, json!({"tokens": v}), text);
            } else if let Some(id) = revoke {
                if !store.revoke_scim_token(&dir, id, &actor).await? {
                    return Err(CoreError::NotFound(format!(
                        "active token \"{id}\" of this directory"
                    ))
                    .into());
                }
                print(*json, json!({"revoked": id}), format!("revoked token {id}"));
            } else {
                let (info, token) = orgs::issue_token(store, &dir, *read_only, &actor).await?;
                print(
                    *json,
                    json!({"directory_id": dir.id, "token_id": info.id, "token": token, "read_only": info.read_only}),
                    format!("token {} (shown once): {token}", info.id),
                );
            }
        }
        Cmd::Directory(DirCmd::List { org, json }) => {
            let org = match org {
                Some(slug) => Some(orgs::org(store, slug).await?),
                None => None,
            };
            let list = store.list_directories(org.as_ref().map(|o| &o.id)).await?;
            let base = format!("{}/scim/v2", public_url(&cli.db, None));
            let v: Vec<_> = list
                .iter()
                .map(|d| json!({"directory_id": d.id, "org": d.org_slug, "name": d.name, "scim_base_url": base, "created_at": d.created_at}))
                .collect();
            let text = list
                .iter()
                .map(|d| format!("{}\t{}\t{}", d.id, d.org_slug, d.name))
                .collect::<Vec<_>>()
                .join("\n");
            print(*json, json!({"directories": v}), text);
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
