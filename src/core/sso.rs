//! SSO connections of an organization: which IdP, how its attributes map onto a Roster user,
//! and the provisioning policy that decides what a login may do (see `core::jit`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use unicode_normalization::UnicodeNormalization;

use super::error::{CoreError, CoreResult};
use super::model::OrgId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Saml,
    Oidc,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Saml => "saml",
            Protocol::Oidc => "oidc",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "saml" => Some(Protocol::Saml),
            "oidc" => Some(Protocol::Oidc),
            _ => None,
        }
    }
}

/// The identity provider product behind a connection: it selects the default claim names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdpKind {
    Okta,
    Entra,
    Google,
    Onelogin,
    Jumpcloud,
    Generic,
}

impl IdpKind {
    pub const ALL: [IdpKind; 6] = [
        IdpKind::Okta,
        IdpKind::Entra,
        IdpKind::Google,
        IdpKind::Onelogin,
        IdpKind::Jumpcloud,
        IdpKind::Generic,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            IdpKind::Okta => "okta",
            IdpKind::Entra => "entra",
            IdpKind::Google => "google",
            IdpKind::Onelogin => "onelogin",
            IdpKind::Jumpcloud => "jumpcloud",
            IdpKind::Generic => "generic",
        }
    }
    pub fn parse(s: &str) -> CoreResult<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                CoreError::InvalidValue(format!(
                    "unknown IdP \"{s}\": use okta, entra, google, onelogin, jumpcloud or generic"
                ))
            })
    }
}

/// What a login may do to the roster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JitMode {
    /// Only users that already exist may log in.
    Off,
    /// Unknown users are created at their first login.
    Create,
    /// ... and known users' attributes are refreshed at every login.
    CreateAndUpdate,
}

impl JitMode {
    pub fn as_str(self) -> &'static str {
        match self {
            JitMode::Off => "off",
            JitMode::Create => "create",
            JitMode::CreateAndUpdate => "create_and_update",
        }
    }
    pub fn parse(s: &str) -> CoreResult<Self> {
        match s {
            "off" => Ok(JitMode::Off),
            "create" => Ok(JitMode::Create),
            "create_and_update" => Ok(JitMode::CreateAndUpdate),
            _ => Err(CoreError::InvalidValue(format!(
                "unknown JIT mode \"{s}\": use off, create or create_and_update"
            ))),
        }
    }
}

/// Where each profile field comes from: claim (OIDC) or attribute (SAML) names, tried in
/// order; `$subject` is the IdP subject (OIDC `sub`, SAML NameID).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct AttributeMap {
    pub email: Vec<String>,
    pub given_name: Vec<String>,
    pub family_name: Vec<String>,
    pub display_name: Vec<String>,
    pub external_id: Vec<String>,
    pub groups: Vec<String>,
    pub roles: Vec<String>,
}

const SUBJECT: &str = "$subject";

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

impl AttributeMap {
    /// The claim names each IdP sends by default.
    pub fn defaults(protocol: Protocol, idp: IdpKind) -> Self {
        match protocol {
            Protocol::Oidc => {
                let mut m = AttributeMap {
                    email: names(&["email"]),
                    given_name: names(&["given_name"]),
                    family_name: names(&["family_name"]),
                    display_name: names(&["name"]),
                    external_id: Vec::new(),
                    groups: names(&["groups"]),
                    roles: names(&["roles"]),
                };
                if idp == IdpKind::Entra {
                    // Entra ID: `email` is optional; the UPN is in preferred_username; the
                    // immutable object id is `oid`.
                    m.email = names(&["email", "preferred_username", "upn"]);
                    m.external_id = names(&["oid"]);
                }
                m
            }
            Protocol::Saml => match idp {
                IdpKind::Entra => AttributeMap {
                    email: names(&[
                        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
                        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
                        SUBJECT,
                    ]),
                    given_name: names(&[
                        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname",
                    ]),
                    family_name: names(&[
                        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname",
                    ]),
                    display_name: names(&[
                        "http://schemas.microsoft.com/identity/claims/displayname",
                    ]),
                    external_id: names(&[
                        "http://schemas.microsoft.com/identity/claims/objectidentifier",
                    ]),
                    groups: names(&[
                        "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups",
                    ]),
                    roles: names(&["http://schemas.microsoft.com/ws/2008/06/identity/claims/role"]),
                },
                IdpKind::Onelogin => AttributeMap {
                    email: names(&["User.email", "email", SUBJECT]),
                    given_name: names(&["User.FirstName", "firstName"]),
                    family_name: names(&["User.LastName", "lastName"]),
                    display_name: names(&["displayName"]),
                    external_id: Vec::new(),
                    groups: names(&["memberOf", "groups"]),
                    roles: names(&["roles"]),
                },
                IdpKind::Jumpcloud => AttributeMap {
                    email: names(&["email", SUBJECT]),
                    given_name: names(&["firstname", "firstName"]),
                    family_name: names(&["lastname", "lastName"]),
                    display_name: names(&["displayname", "displayName"]),
                    external_id: Vec::new(),
                    groups: names(&["memberOf", "groups"]),
                    roles: names(&["roles"]),
                },
                // Okta, Google Workspace and generic SAML apps: attribute statements the
                // admin defines; these are the names their setup guides use.
                IdpKind::Okta | IdpKind::Google | IdpKind::Generic => AttributeMap {
                    email: names(&["email", "mail", "Email", SUBJECT]),
                    given_name: names(&["firstName", "givenName", "given_name"]),
                    family_name: names(&["lastName", "surname", "sn", "family_name"]),
                    display_name: names(&["displayName", "name"]),
                    external_id: Vec::new(),
                    groups: names(&["groups", "memberOf"]),
                    roles: names(&["roles"]),
                },
            },
        }
    }

    /// These defaults, with every field `overrides` sets replacing the default list.
    pub fn with_overrides(mut self, overrides: &AttributeMap) -> Self {
        let pairs = [
            (&mut self.email, &overrides.email),
            (&mut self.given_name, &overrides.given_name),
            (&mut self.family_name, &overrides.family_name),
            (&mut self.display_name, &overrides.display_name),
            (&mut self.external_id, &overrides.external_id),
            (&mut self.groups, &overrides.groups),
            (&mut self.roles, &overrides.roles),
        ];
        for (field, o) in pairs {
            if !o.is_empty() {
                field.clone_from(o);
            }
        }
        self
    }

    /// Parses `field=claim[,claim...]` (as given on the command line) into an override.
    pub fn set_from_spec(&mut self, spec: &str) -> CoreResult<()> {
        let (field, claims) = spec.split_once('=').ok_or_else(|| {
            CoreError::InvalidValue(format!("attribute mapping \"{spec}\" is not field=claim"))
        })?;
        let list: Vec<String> = claims
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect();
        let slot = match field.trim() {
            "email" => &mut self.email,
            "given_name" => &mut self.given_name,
            "family_name" => &mut self.family_name,
            "display_name" => &mut self.display_name,
            "external_id" => &mut self.external_id,
            "groups" => &mut self.groups,
            "roles" => &mut self.roles,
            other => {
                return Err(CoreError::InvalidValue(format!(
                    "unknown mapped field \"{other}\": use email, given_name, family_name, \
                     display_name, external_id, groups or roles"
                )));
            }
        };
        *slot = list;
        Ok(())
    }
}

/// A connection's settings, stored as one JSON document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectionConfig {
    /// OIDC: the issuer (discovery at `<issuer>/.well-known/openid-configuration`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc_issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc_client_id: Option<String>,
    /// Extra scopes asked for beside `openid email profile`.
    #[serde(default)]
    pub oidc_scopes: Vec<String>,
    /// SAML: the IdP's metadata document, as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saml_idp_metadata: Option<String>,
    /// SAML: our certificate for this connection (its private key is the connection's
    /// encrypted secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saml_sp_cert_pem: Option<String>,
    /// SAML: allowance in seconds for clock differences with the IdP (default 60, at
    /// most 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saml_clock_skew_secs: Option<u32>,
    /// SAML: accept responses the IdP sends unasked (no AuthnRequest of ours).
    #[serde(default)]
    pub allow_idp_initiated: bool,
    /// SAML: for IdP-initiated logins, the app and redirect URI to send the user on to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp_initiated_app: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp_initiated_redirect_uri: Option<String>,
    /// Overrides of the IdP's default claim names.
    #[serde(default)]
    pub attribute_map: AttributeMap,
    pub jit: JitMode,
    /// The domains this connection serves, narrowing the organization's verified domains
    /// (empty: all of them). It may match, link or create only users of these domains
    /// (`core::trust::serves`).
    #[serde(default, alias = "jit_allowed_domains")]
    pub domains: Vec<String>,
    /// When the organization has a SCIM directory, only users it provisioned may log in.
    #[serde(default)]
    pub directory_authoritative: bool,
    /// OIDC: trust emails the IdP does not mark `email_verified` (never by default).
    #[serde(default)]
    pub trust_unverified_email: bool,
    /// Whether Roster's requests for this connection (OIDC discovery, JWKS, token, userinfo)
    /// may reach loopback, private or link-local addresses. Set only on connections an
    /// operator makes (the CLI, an admin key for every organization); absent — connections
    /// of organization-scoped keys, setup links, and rows from before the flag — is public
    /// addresses only (`crate::outbound`).
    #[serde(default)]
    pub private_networks: bool,
}

impl Default for ConnectionConfig {
    /// A connection that JIT-creates users and trusts nothing beyond the defaults.
    fn default() -> Self {
        ConnectionConfig {
            oidc_issuer: None,
            oidc_client_id: None,
            oidc_scopes: Vec::new(),
            saml_idp_metadata: None,
            saml_sp_cert_pem: None,
            saml_clock_skew_secs: None,
            allow_idp_initiated: false,
            idp_initiated_app: None,
            idp_initiated_redirect_uri: None,
            attribute_map: AttributeMap::default(),
            jit: JitMode::Create,
            domains: Vec::new(),
            directory_authoritative: false,
            trust_unverified_email: false,
            private_networks: false,
        }
    }
}

/// An IdP connection of an organization.
#[derive(Debug, Clone)]
pub struct Connection {
    pub id: String,
    pub org_id: OrgId,
    pub protocol: Protocol,
    pub name: String,
    pub idp: IdpKind,
    pub config: ConnectionConfig,
    /// Encrypted with the master key (`secrets::MasterKey`), purpose `connection:<id>`.
    pub secret_enc: Option<String>,
    pub created_at: String,
    pub disabled: bool,
}

impl Connection {
    pub fn attribute_map(&self) -> AttributeMap {
        AttributeMap::defaults(self.protocol, self.idp).with_overrides(&self.config.attribute_map)
    }
    pub fn secret_purpose(&self) -> String {
        format!("connection:{}", self.id)
    }
}

/// What an IdP said about the user, after its signature and conditions were verified by the
/// protocol adapter: the subject and the claims (values are strings or arrays of strings).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Assertion {
    pub subject: String,
    pub claims: Map<String, Value>,
    /// OIDC: the `email_verified` claim; SAML: the IdP vouches for its assertions.
    pub email_verified: bool,
}

/// The profile a login maps to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    pub email: Option<String>,
    /// The claim (attribute) `email` was read from: an OIDC `email_verified` speaks for the
    /// `email` claim only.
    pub email_from: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub display_name: Option<String>,
    pub external_id: Option<String>,
    pub groups: Vec<String>,
    pub roles: Vec<String>,
}

fn claim_values(a: &Assertion, name: &str) -> Vec<String> {
    if name == SUBJECT {
        return vec![a.subject.clone()];
    }
    match a.claims.get(name) {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect(),
        Some(Value::Number(n)) => vec![n.to_string()],
        Some(Value::Bool(b)) => vec![b.to_string()],
        _ => Vec::new(),
    }
}

fn first(a: &Assertion, names: &[String]) -> Option<String> {
    names.iter().find_map(|n| {
        claim_values(a, n)
            .into_iter()
            .map(|v| v.trim().to_owned())
            .find(|v| !v.is_empty())
    })
}

fn all(a: &Assertion, names: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for n in names {
        for v in claim_values(a, n) {
            let v = v.trim().to_owned();
            if !v.is_empty() && !out.contains(&v) {
                out.push(v);
            }
        }
    }
    out
}

impl Profile {
    pub fn map(a: &Assertion, m: &AttributeMap) -> Profile {
        // Only a value that is an email address counts (a UPN or NameID may not be one).
        let (email_from, email) = m
            .email
            .iter()
            .flat_map(|n| claim_values(a, n).into_iter().map(move |v| (n, v)))
            .find(|(_, v)| normalize_email(v).is_some())
            .map(|(n, v)| (Some(n.clone()), Some(v.trim().to_owned())))
            .unwrap_or_default();
        Profile {
            email,
            email_from,
            given_name: first(a, &m.given_name),
            family_name: first(a, &m.family_name),
            display_name: first(a, &m.display_name),
            external_id: first(a, &m.external_id),
            groups: all(a, &m.groups),
            roles: all(a, &m.roles),
        }
    }
}

/// An email address in the form used for matching: Unicode NFKC, trimmed, lower-cased.
/// `None` unless it has exactly one `@` with something on both sides and a dotted domain.
pub fn normalize_email(s: &str) -> Option<String> {
    let n: String = s.trim().nfkc().collect::<String>().to_lowercase();
    let (local, domain) = n.split_once('@')?;
    let ok = !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !n
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || is_format_char(c));
    ok.then_some(n)
}

/// Invisible formatting characters (Unicode general category Cf, the ones that survive
/// NFKC): an address holding one looks like another.
fn is_format_char(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}'
        | '\u{E0001}' | '\u{E0020}'..='\u{E007F}')
}

/// The domain of a normalized email.
pub fn email_domain(normalized: &str) -> &str {
    normalized.rsplit_once('@').map_or("", |(_, d)| d)
}

/// A domain as stored: trimmed, lower-cased, NFKC, no trailing dot.
pub fn normalize_domain(s: &str) -> CoreResult<String> {
    let d: String = s.trim().nfkc().collect::<String>().to_lowercase();
    let d = d.trim_end_matches('.').to_owned();
    let ok = !d.is_empty()
        && d.len() <= 253
        && d.contains('.')
        && d.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    if ok {
        Ok(d)
    } else {
        Err(CoreError::InvalidValue(format!(
            "\"{s}\" is not a domain name"
        )))
    }
}

/// The email a user is matched by: the primary email, else the first work email, else the
/// first email, else the userName when it is an address; normalized.
pub fn user_email_key(attrs: &Map<String, Value>) -> Option<String> {
    let emails = attrs.get("emails").and_then(Value::as_array);
    let value_of = |e: &Value| e.get("value").and_then(Value::as_str).map(str::to_owned);
    let pick = emails.and_then(|list| {
        list.iter()
            .find(|e| e.get("primary").and_then(Value::as_bool) == Some(true))
            .or_else(|| {
                list.iter()
                    .find(|e| e.get("type").and_then(Value::as_str) == Some("work"))
            })
            .or_else(|| list.first())
            .and_then(value_of)
    });
    pick.or_else(|| {
        attrs
            .get("userName")
            .and_then(Value::as_str)
            .map(str::to_owned)
    })
    .and_then(|e| normalize_email(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn emails_normalize_with_nfkc() {
        assert_eq!(
            normalize_email("  Alice@Example.COM ").as_deref(),
            Some("alice@example.com")
        );
        // Fullwidth letters and the fullwidth at sign fold to ASCII under NFKC.
        assert_eq!(
            normalize_email("ａｌｉｃｅ＠example.com").as_deref(),
            Some("alice@example.com")
        );
        assert_eq!(normalize_email("not-an-email"), None);
        assert_eq!(normalize_email("a@b@c.com"), None);
        assert_eq!(normalize_email("a@localhost"), None);
        assert_eq!(normalize_email("a b@c.com"), None);
        // Invisible characters make look-alikes: refused.
        assert_eq!(normalize_email("ceo\u{200B}@example.com"), None);
        assert_eq!(normalize_email("ceo\u{202E}@example.com"), None);
        assert_eq!(normalize_email("ceo\u{00AD}@example.com"), None);
    }

    #[test]
    fn entra_oidc_defaults_fall_back_to_upn() {
        let a = Assertion {
            subject: "s".into(),
            claims: json!({"preferred_username": "Bob@Contoso.com", "oid": "o-1", "groups": ["g1", "g2"]})
                .as_object()
                .cloned()
                .unwrap(),
            email_verified: false,
        };
        let p = Profile::map(&a, &AttributeMap::defaults(Protocol::Oidc, IdpKind::Entra));
        assert_eq!(p.email.as_deref(), Some("Bob@Contoso.com"));
        assert_eq!(p.external_id.as_deref(), Some("o-1"));
        assert_eq!(p.groups, vec!["g1", "g2"]);
    }

    #[test]
    fn overrides_replace_only_their_field() {
        let mut o = AttributeMap::default();
        o.set_from_spec("email=mail, upn").unwrap();
        let m = AttributeMap::defaults(Protocol::Oidc, IdpKind::Okta).with_overrides(&o);
        assert_eq!(m.email, vec!["mail", "upn"]);
        assert_eq!(m.given_name, vec!["given_name"]);
        assert!(o.clone().set_from_spec("nope=x").is_err());
    }

    #[test]
    fn saml_subject_is_a_fallback_email() {
        let a = Assertion {
            subject: "carol@example.com".into(),
            claims: Map::new(),
            email_verified: true,
        };
        let p = Profile::map(&a, &AttributeMap::defaults(Protocol::Saml, IdpKind::Okta));
        assert_eq!(p.email.as_deref(), Some("carol@example.com"));
    }

    #[test]
    fn user_email_key_prefers_primary() {
        let attrs = json!({"userName": "x", "emails": [
            {"value": "b@x.com", "type": "work"},
            {"value": "A@X.com", "primary": true}
        ]});
        assert_eq!(
            user_email_key(attrs.as_object().unwrap()).as_deref(),
            Some("a@x.com")
        );
        let attrs = json!({"userName": "U@x.com"});
        assert_eq!(
            user_email_key(attrs.as_object().unwrap()).as_deref(),
            Some("u@x.com")
        );
    }

    #[test]
    fn domains_normalize() {
        assert_eq!(normalize_domain(" Example.COM. ").unwrap(), "example.com");
        assert!(normalize_domain("nodot").is_err());
        assert!(normalize_domain("-a.com").is_err());
    }
}
