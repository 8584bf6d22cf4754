//! Creating an IdP connection, shared by the CLI, the admin API, the console and the customer
//! setup page: checks what the operator gave, makes the SAML service provider's key pair,
//! encrypts the secrets and stores the connection.

use serde::{Deserialize, Serialize};

use crate::core::error::{CoreError, CoreResult};
use crate::core::model::{Actor, Org};
use crate::core::secrets::MasterKey;
use crate::core::sso::{
    AttributeMap, Connection, ConnectionConfig, IdpKind, JitMode, Protocol, normalize_domain,
};
use crate::core::store::prelude::*;
use crate::outbound::{Outbound, Reach};
use crate::store::SqlStore;

/// Where the IdP is: an OIDC issuer with a client, or SAML metadata (the XML itself).
#[derive(Debug, Clone)]
pub enum Upstream {
    Oidc {
        issuer: String,
        client_id: String,
        client_secret: String,
    },
    Saml {
        metadata_xml: String,
    },
}

/// Everything a new connection needs besides its organization.
#[derive(Debug, Clone)]
pub struct ConnectionSpec {
    /// The id to give the connection (a setup link reserves one); a new one if `None`.
    pub id: Option<String>,
    pub name: Option<String>,
    pub idp: IdpKind,
    pub upstream: Upstream,
    pub scopes: Vec<String>,
    pub jit: JitMode,
    /// The domains it serves, narrowing the organization's verified domains (empty: all).
    pub domains: Vec<String>,
    pub directory_authoritative: bool,
    /// `field=claim[,claim…]` overrides of the IdP's default claim names.
    pub mappings: Vec<String>,
    pub trust_unverified_email: bool,
    pub clock_skew_secs: Option<u32>,
    pub idp_initiated: Option<(String, String)>,
    /// Whether Roster's requests to this IdP may reach private networks: only for an
    /// operator (the CLI, an admin key for every organization), never from a request body.
    pub private_networks: bool,
}

impl ConnectionSpec {
    pub fn new(idp: IdpKind, upstream: Upstream) -> Self {
        ConnectionSpec {
            id: None,
            name: None,
            idp,
            upstream,
            scopes: Vec::new(),
            jit: JitMode::Create,
            domains: Vec::new(),
            directory_authoritative: false,
            mappings: Vec::new(),
            trust_unverified_email: false,
            clock_skew_secs: None,
            idp_initiated: None,
            private_networks: false,
        }
    }
}

/// Whether `url` may be an IdP address: https, or http on a loopback host.
pub fn check_idp_url(what: &str, url: &str) -> CoreResult<url::Url> {
    let parsed = url::Url::parse(url)
        .map_err(|_| CoreError::InvalidValue(format!("{what} \"{url}\" is not a URL")))?;
    let loopback = matches!(parsed.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    if parsed.scheme() != "https" && !(parsed.scheme() == "http" && loopback) {
        return Err(CoreError::InvalidValue(format!(
            "{what} must be https (http only on loopback)"
        )));
    }
    Ok(parsed)
}

/// The largest IdP metadata document fetched (single-IdP metadata is a few KiB).
const MAX_METADATA: usize = 1 << 20;

/// IdP metadata from `url` (https; http only on loopback) through the outbound guard:
/// `reach` is [`Reach::Private`] only for an operator.
pub async fn fetch_idp_metadata(out: &Outbound, reach: Reach, url: &str) -> CoreResult<String> {
    let parsed = check_idp_url("the IdP metadata URL", url)?;
    let cannot = |e: String| {
        CoreError::InvalidValue(format!("cannot fetch IdP metadata from {parsed}: {e}"))
    };
    let resp = out
        .request(reach, reqwest::Method::GET, parsed.as_str())
        .map_err(|e| cannot(e.to_string()))?
        .send()
        .await
        .map_err(|e| cannot(crate::outbound::error_text(e)))?;
    if !resp.status().is_success() {
        return Err(cannot(format!("HTTP {}", resp.status().as_u16())));
    }
    let body = crate::outbound::read_limited(resp, MAX_METADATA)
        .await
        .map_err(cannot)?;
    String::from_utf8(body).map_err(|_| cannot("the document is not UTF-8".into()))
}

/// Checks the spec, makes the connection's secrets and stores it.
pub async fn create_connection(
    store: &SqlStore,
    master: &MasterKey,
    org: &Org,
    spec: ConnectionSpec,
    actor: &Actor,
) -> CoreResult<Connection> {
    let mut overrides = AttributeMap::default();
    for m in &spec.mappings {
        overrides.set_from_spec(m)?;
    }
    let domains = spec
        .domains
        .iter()
        .map(|d| normalize_domain(d))
        .collect::<Result<Vec<_>, _>>()?;
    if !domains.is_empty() {
        let claimed = store.list_domains(Some(&org.id)).await?;
        if let Some(d) = domains
            .iter()
            .find(|d| !claimed.iter().any(|c| &c.domain == *d))
        {
            return Err(CoreError::InvalidValue(format!(
                "the organization has not claimed the domain {d} (roster domain add)"
            )));
        }
    }
    if spec.clock_skew_secs.is_some_and(|s| s > 300) {
        return Err(CoreError::InvalidValue(
            "clock skew is at most 300 seconds".into(),
        ));
    }
    let (idp_initiated_app, idp_initiated_redirect_uri) = match &spec.idp_initiated {
        Some((app, uri)) => (Some(app.clone()), Some(uri.clone())),
        None => (None, None),
    };
    let mut config = ConnectionConfig {
        oidc_scopes: spec.scopes.clone(),
        saml_clock_skew_secs: spec.clock_skew_secs,
        allow_idp_initiated: spec.idp_initiated.is_some(),
        idp_initiated_app,
        idp_initiated_redirect_uri,
        attribute_map: overrides,
        jit: spec.jit,
        domains,
        directory_authoritative: spec.directory_authoritative,
        trust_unverified_email: spec.trust_unverified_email,
        private_networks: spec.private_networks,
        ..Default::default()
    };
    let id = spec.id.clone().unwrap_or_else(crate::core::new_id);
    let purpose = format!("connection:{id}");
    let (protocol, secret_enc) = match spec.upstream {
        Upstream::Oidc {
            issuer,
            client_id,
            client_secret,
        } => {
            if spec.idp_initiated.is_some() {
                return Err(CoreError::InvalidValue(
                    "IdP-initiated logins are a SAML feature".into(),
                ));
            }
            check_idp_url("the OIDC issuer", &issuer)?;
            if client_id.trim().is_empty() {
                return Err(CoreError::InvalidValue(
                    "an OIDC client id is required".into(),
                ));
            }
            config.oidc_issuer = Some(issuer.trim_end_matches('/').to_owned());
            config.oidc_client_id = Some(client_id);
            let enc = master.encrypt(&purpose, client_secret.as_bytes())?;
            (Protocol::Oidc, Some(enc))
        }
        Upstream::Saml { metadata_xml } => {
            super::saml_sp::check_idp_metadata(&metadata_xml)
                .map_err(|e| CoreError::InvalidValue(e.to_string()))?;
            if let Some((app_id, uri)) = &spec.idp_initiated {
                let app = store
                    .app(app_id)
                    .await?
                    .ok_or_else(|| CoreError::NotFound(format!("app \"{app_id}\"")))?;
                if !app.allows_redirect(uri) {
                    return Err(CoreError::InvalidValue(format!(
                        "\"{uri}\" is not a redirect URI of app {app_id}"
                    )));
                }
            }
            // X.509 limits a CN to 64 characters, shorter than most entity ids (URLs); the
            // certificate only carries our keys, so it names the connection instead.
            let cn = format!("roster-sp-{id}");
            let (key, cert) = super::saml_sp::new_sp_keypair(&cn)
                .map_err(|e| CoreError::Internal(e.to_string()))?;
            config.saml_idp_metadata = Some(metadata_xml);
            config.saml_sp_cert_pem = Some(cert);
            let enc = master.encrypt(&purpose, key.as_bytes())?;
            (Protocol::Saml, Some(enc))
        }
    };
    let conn = Connection {
        id,
        org_id: org.id.clone(),
        protocol,
        name: spec
            .name
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| format!("{} {}", spec.idp.as_str(), protocol.as_str())),
        idp: spec.idp,
        config,
        secret_enc,
        created_at: crate::core::now(),
        disabled: false,
    };
    store.insert_connection(&conn, actor).await?;
    Ok(conn)
}

/// What an operator or a customer's IT admin needs to know of a connection: never its
/// secrets.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConnectionView {
    pub id: String,
    pub org_id: String,
    /// `oidc` or `saml`.
    pub protocol: String,
    /// okta, entra, google, onelogin, jumpcloud or generic.
    pub idp: String,
    pub name: String,
    /// off, create or create_and_update.
    pub jit: String,
    pub directory_authoritative: bool,
    pub created_at: String,
    pub disabled: bool,
    /// Whether Roster's requests to the IdP may reach loopback, private or link-local
    /// addresses (connections an operator made: the CLI, a key for every organization).
    pub private_networks: bool,
    /// OIDC: the issuer, our client id there, and the redirect URI to register.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<String>,
    /// SAML: our entity id, ACS URL and metadata URL to give the IdP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sp_entity_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acs_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata_url: Option<String>,
}

impl ConnectionView {
    pub fn of(c: &Connection, public_url: &str) -> Self {
        let mut v = ConnectionView {
            id: c.id.clone(),
            org_id: c.org_id.as_str().to_owned(),
            protocol: c.protocol.as_str().to_owned(),
            idp: c.idp.as_str().to_owned(),
            name: c.name.clone(),
            jit: c.config.jit.as_str().to_owned(),
            directory_authoritative: c.config.directory_authoritative,
            created_at: c.created_at.clone(),
            disabled: c.disabled,
            private_networks: c.config.private_networks,
            issuer: None,
            client_id: None,
            redirect_uri: None,
            sp_entity_id: None,
            acs_url: None,
            metadata_url: None,
        };
        match c.protocol {
            Protocol::Oidc => {
                v.issuer.clone_from(&c.config.oidc_issuer);
                v.client_id.clone_from(&c.config.oidc_client_id);
                v.redirect_uri = Some(format!("{public_url}/sso/oidc/callback"));
            }
            Protocol::Saml => {
                let base = super::saml_entity_id(public_url, &c.id);
                v.acs_url = Some(format!("{base}/acs"));
                v.metadata_url = Some(format!("{base}/metadata"));
                v.sp_entity_id = Some(base);
            }
        }
        v
    }
}
