//! Roster as a SAML 2.0 service provider, over `samael` (xmlsec, Debian's libxmlsec1).
//!
//! samael verifies signatures and the usual conditions; what it leaves open Roster closes
//! here (see docs/design/saml.md for the probe behind each rule):
//! - structure before crypto ([`precheck`]): no DOCTYPE (so no entities or DTDs), no
//!   processing instructions, one `samlp:Response` holding exactly one assertion, each
//!   signature a direct child of the Response or the Assertion with exactly one Reference to
//!   its parent, only enveloped-signature and exclusive-C14N transforms, SHA-256 or stronger
//!   — xmlsec would otherwise run transforms (XSLT, external URIs) before checking anything;
//! - a connection whose IdP metadata has no signing certificate is refused (samael would
//!   verify nothing);
//! - an AudienceRestriction naming us and a NameID are required;
//! - encrypted assertions are decrypted here (RSA-OAEP and AES-CBC/GCM only) and the inner
//!   assertion's own signature is verified;
//! - the replay cache and one-time request ids live in the database (the caller's part).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::Utc;
use openssl::pkey::{PKey, Private};
use quick_xml::NsReader;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use samael::crypto::{
    AllowedSignatureAlgorithm, CertificateDer, CryptoProvider, ReduceMode, XmlSec,
};
use samael::metadata::{EntityDescriptor, HTTP_REDIRECT_BINDING};
use samael::schema::Response;
use samael::service_provider::{ServiceProvider, ServiceProviderBuilder};
use samael::traits::ToXml;
use serde_json::{Map, Value};

use super::error_chain;
use crate::core::sso::Assertion;

const NS_SAMLP: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
const NS_SAML: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
const NS_DS: &str = "http://www.w3.org/2000/09/xmldsig#";
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const OAEP: &str = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p";

/// Largest SAMLResponse accepted (base64 text).
pub const MAX_RESPONSE: usize = 1 << 20;

/// Signature algorithms accepted: SHA-256 and stronger.
const STRONG: [AllowedSignatureAlgorithm; 6] = [
    AllowedSignatureAlgorithm::RsaSha256,
    AllowedSignatureAlgorithm::RsaSha384,
    AllowedSignatureAlgorithm::RsaSha512,
    AllowedSignatureAlgorithm::EcdsaSha256,
    AllowedSignatureAlgorithm::EcdsaSha384,
    AllowedSignatureAlgorithm::EcdsaSha512,
];

#[derive(Debug, thiserror::Error)]
pub enum SamlError {
    /// The connection cannot work (metadata, keys).
    #[error("{0}")]
    Config(String),
    /// The response is not acceptable.
    #[error("{0}")]
    Rejected(String),
}

fn rejected(m: impl Into<String>) -> SamlError {
    SamlError::Rejected(m.into())
}

/// A fresh SP key pair for a connection: RSA-2048 and a self-signed certificate (PEM) for
/// `common_name` (at most 64 characters, X.509's limit).
pub fn new_sp_keypair(common_name: &str) -> Result<(String, String), SamlError> {
    use openssl::asn1::Asn1Time;
    use openssl::bn::BigNum;
    use openssl::hash::MessageDigest;
    use openssl::x509::{X509Builder, X509NameBuilder};
    let fail = |e: openssl::error::ErrorStack| SamlError::Config(format!("SP key generation: {e}"));
    let rsa = openssl::rsa::Rsa::generate(2048).map_err(fail)?;
    let key = PKey::from_rsa(rsa).map_err(fail)?;
    let mut name = X509NameBuilder::new().map_err(fail)?;
    name.append_entry_by_text("CN", common_name).map_err(fail)?;
    let name = name.build();
    let mut b = X509Builder::new().map_err(fail)?;
    b.set_version(2).map_err(fail)?;
    let mut serial = BigNum::new().map_err(fail)?;
    serial
        .rand(127, openssl::bn::MsbOption::MAYBE_ZERO, false)
        .map_err(fail)?;
    let serial = serial.to_asn1_integer().map_err(fail)?;
    b.set_serial_number(&serial).map_err(fail)?;
    b.set_subject_name(&name).map_err(fail)?;
    b.set_issuer_name(&name).map_err(fail)?;
    b.set_pubkey(&key).map_err(fail)?;
    let not_before = Asn1Time::days_from_now(0).map_err(fail)?;
    let not_after = Asn1Time::days_from_now(3650).map_err(fail)?;
    b.set_not_before(&not_before).map_err(fail)?;
    b.set_not_after(&not_after).map_err(fail)?;
    b.sign(&key, MessageDigest::sha256()).map_err(fail)?;
    let cert = b.build();
    let key_pem = key.private_key_to_pem_pkcs8().map_err(fail)?;
    let cert_pem = cert.to_pem().map_err(fail)?;
    Ok((
        String::from_utf8_lossy(&key_pem).into_owned(),
        String::from_utf8_lossy(&cert_pem).into_owned(),
    ))
}

/// Parses IdP metadata and checks it can be trusted for verification: it must carry a
/// signing certificate and an SSO endpoint. Returns the IdP's entity id.
pub fn check_idp_metadata(xml: &str) -> Result<String, SamlError> {
    let md = parse_idp_metadata(xml)?;
    let entity_id = md.entity_id.clone().unwrap_or_default();
    let sp = ServiceProviderBuilder::default()
        .idp_metadata(md)
        .build()
        .map_err(|e| SamlError::Config(format!("IdP metadata: {e}")))?;
    require_signing_certs(&sp)?;
    if sp.sso_binding_location(HTTP_REDIRECT_BINDING).is_none() {
        return Err(SamlError::Config(
            "IdP metadata has no HTTP-Redirect SingleSignOnService".into(),
        ));
    }
    Ok(entity_id)
}

/// IdP metadata, refusing a DOCTYPE (no entity tricks in what we trust for keys).
fn parse_idp_metadata(xml: &str) -> Result<EntityDescriptor, SamlError> {
    if xml.contains("<!DOCTYPE") {
        return Err(SamlError::Config(
            "IdP metadata must not have a DOCTYPE".into(),
        ));
    }
    xml.parse()
        .map_err(|e| SamlError::Config(format!("IdP metadata does not parse: {e}")))
}

/// samael verifies nothing when the IdP metadata has no signing certificate: never run so.
fn require_signing_certs(sp: &ServiceProvider) -> Result<(), SamlError> {
    match sp.idp_signing_certs() {
        Ok(Some(certs)) if !certs.is_empty() => Ok(()),
        _ => Err(SamlError::Config(
            "IdP metadata has no signing certificate".into(),
        )),
    }
}

/// Default allowance for clock differences with the IdP (NotBefore / NotOnOrAfter).
pub const DEFAULT_CLOCK_SKEW_SECS: u32 = 60;
/// The largest allowance a connection may set.
pub const MAX_CLOCK_SKEW_SECS: u32 = 300;

fn build(
    entity_id: &str,
    acs_url: &str,
    idp: EntityDescriptor,
    sp_key_pem: &str,
    sp_cert_pem: &str,
    clock_skew_secs: u32,
) -> Result<ServiceProvider, SamlError> {
    let cfg = |m: String| SamlError::Config(m);
    let key = PKey::private_key_from_pem(sp_key_pem.as_bytes())
        .map_err(|e| cfg(format!("SP key: {e}")))?;
    let cert = openssl::x509::X509::from_pem(sp_cert_pem.as_bytes())
        .and_then(|c| c.to_der())
        .map_err(|e| cfg(format!("SP certificate: {e}")))?;
    let sp = ServiceProviderBuilder::default()
        .entity_id(entity_id.to_owned())
        .acs_url(acs_url.to_owned())
        .metadata_url(format!("{entity_id}/metadata"))
        // samael's metadata needs an SLO URL (its default is on localhost); Roster has no
        // single logout endpoint, so `metadata_xml` leaves it out again.
        .slo_url(format!("{entity_id}/slo"))
        .max_clock_skew(chrono::Duration::seconds(i64::from(
            clock_skew_secs.min(MAX_CLOCK_SKEW_SECS),
        )))
        .key(key)
        .certificate(CertificateDer::from(cert))
        .idp_metadata(idp)
        .allowed_signature_algorithms(STRONG.to_vec())
        .build()
        .map_err(|e| cfg(format!("service provider: {e}")))?;
    require_signing_certs(&sp)?;
    Ok(sp)
}

/// One connection's service provider.
pub struct Sp {
    sp: ServiceProvider,
    key: PKey<Private>,
}

impl Sp {
    pub fn new(
        entity_id: &str,
        acs_url: &str,
        idp_metadata: &str,
        sp_key_pem: &str,
        sp_cert_pem: &str,
        clock_skew_secs: u32,
    ) -> Result<Sp, SamlError> {
        let md = parse_idp_metadata(idp_metadata)?;
        let sp = build(
            entity_id,
            acs_url,
            md,
            sp_key_pem,
            sp_cert_pem,
            clock_skew_secs,
        )?;
        let key = PKey::private_key_from_pem(sp_key_pem.as_bytes())
            .map_err(|e| SamlError::Config(format!("SP key: {e}")))?;
        Ok(Sp { sp, key })
    }

    /// Our SP metadata: the second key descriptor is for encryption (samael marks both
    /// "signing"), and there is no single logout service.
    pub fn metadata_xml(&self) -> Result<String, SamlError> {
        let mut md = self
            .sp
            .metadata()
            .map_err(|e| SamlError::Config(format!("SP metadata: {e}")))?;
        if let Some(sso) = md.sp_sso_descriptors.as_mut().and_then(|v| v.first_mut()) {
            sso.single_logout_services = None;
            if let Some(d) = sso.key_descriptors.as_mut().and_then(|k| k.get_mut(1)) {
                d.key_use = Some("encryption".into());
            }
        }
        md.to_string()
            .map_err(|e| SamlError::Config(format!("SP metadata: {e}")))
    }

    /// An AuthnRequest with `request_id` (128 random bits, chosen by the caller) as an
    /// HTTP-Redirect URL carrying `relay_state`.
    pub fn authn_redirect(&self, request_id: &str, relay_state: &str) -> Result<String, SamlError> {
        let sso = self
            .sp
            .sso_binding_location(HTTP_REDIRECT_BINDING)
            .ok_or_else(|| SamlError::Config("IdP has no HTTP-Redirect SSO endpoint".into()))?;
        let mut req = self
            .sp
            .make_authentication_request(&sso)
            .map_err(|e| SamlError::Config(format!("AuthnRequest: {e}")))?;
        req.id = request_id.to_owned();
        let url = req
            .redirect(relay_state)
            .map_err(|e| SamlError::Config(format!("AuthnRequest: {e}")))?
            .ok_or_else(|| SamlError::Config("AuthnRequest has no destination".into()))?;
        Ok(url.to_string())
    }

    /// Verifies a base64 SAMLResponse. `request_id`: the AuthnRequest it must answer, or
    /// `None` for an IdP-initiated response (which must then answer nothing).
    pub fn verify(&self, b64: &str, request_id: Option<&str>) -> Result<Verified, SamlError> {
        if b64.len() > MAX_RESPONSE {
            return Err(rejected("the SAML response is too large"));
        }
        let compact: String = b64.split_ascii_whitespace().collect();
        let bytes = STANDARD
            .decode(compact)
            .map_err(|_| rejected("the SAML response is not base64"))?;
        let xml =
            String::from_utf8(bytes).map_err(|_| rejected("the SAML response is not UTF-8"))?;
        let shape = precheck(&xml).map_err(rejected)?;
        // samael skips every InResponseTo check when it allows IdP-initiated responses: only
        // for a response without a request (whose own InResponseTo is refused below).
        let unsolicited;
        let sp = match request_id {
            Some(_) => &self.sp,
            None => {
                unsolicited = ServiceProvider {
                    allow_idp_initiated: true,
                    ..self.sp.clone()
                };
                &unsolicited
            }
        };
        let ids: Vec<&str> = request_id.into_iter().collect();
        let expected = request_id.map(|_| ids.as_slice());
        let assertion = if shape.encrypted {
            if shape.response_signed {
                self.verify_envelope(&xml, request_id)?;
            } else if request_id.is_none() && shape.in_response_to {
                return Err(rejected(
                    "an IdP-initiated response must not answer a request",
                ));
            }
            let plain = decrypt_assertion(&xml, &self.key).map_err(rejected)?;
            let inner = shell(&plain);
            if precheck(&inner)
                .map_err(|e| rejected(format!("decrypted assertion: {e}")))?
                .encrypted
            {
                return Err(rejected("nested encrypted assertion"));
            }
            sp.parse_xml_response(&inner, expected)
                .map_err(|e| rejected(error_chain(&e)))?
        } else {
            if request_id.is_none() && shape.in_response_to {
                return Err(rejected(
                    "an IdP-initiated response must not answer a request",
                ));
            }
            sp.parse_xml_response(&xml, expected)
                .map_err(|e| rejected(error_chain(&e)))?
        };
        let ours = self.sp.entity_id.as_ref();
        let audience_ok = assertion
            .conditions
            .as_ref()
            .and_then(|c| c.audience_restrictions.as_ref())
            .is_some_and(|rs| {
                !rs.is_empty()
                    && rs
                        .iter()
                        .all(|r| r.audience.iter().any(|a| Some(a) == ours))
            });
        if !audience_ok {
            return Err(rejected(
                "the assertion has no AudienceRestriction naming this service",
            ));
        }
        let subject = assertion
            .subject
            .as_ref()
            .and_then(|s| s.name_id.as_ref())
            .map(|n| n.value.trim().to_owned())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| rejected("the assertion has no NameID"))?;
        let mut claims = Map::new();
        for stmt in assertion.attribute_statements.iter().flatten() {
            for attr in &stmt.attributes {
                let values: Vec<Value> = attr
                    .values
                    .iter()
                    .filter_map(|v| v.value.clone())
                    .map(Value::String)
                    .collect();
                for name in [&attr.name, &attr.friendly_name].into_iter().flatten() {
                    claims.insert(name.clone(), Value::Array(values.clone()));
                }
            }
        }
        let kept_until = replay_until(&assertion, self.sp.max_clock_skew);
        Ok(Verified {
            assertion_id: assertion.id.clone(),
            expires_at: crate::core::format_time(
                time::OffsetDateTime::from_unix_timestamp(kept_until.timestamp())
                    .unwrap_or_else(|_| time::OffsetDateTime::now_utc()),
            ),
            assertion: Assertion {
                subject,
                claims,
                // The IdP vouches for what it signs.
                email_verified: true,
            },
        })
    }

    /// A signed Response around an encrypted assertion: the Response's signature and the
    /// checks samael would make on it (Destination, InResponseTo, Issuer, Status, age).
    fn verify_envelope(&self, xml: &str, request_id: Option<&str>) -> Result<(), SamlError> {
        let certs =
            self.sp.idp_signing_certs().ok().flatten().ok_or_else(|| {
                SamlError::Config("IdP metadata has no signing certificate".into())
            })?;
        let reduced = XmlSec::reduce_xml_to_signed_with_allowed_algorithms(
            xml,
            &certs,
            ReduceMode::ValidateAndMarkNoAncestors,
            Some(&STRONG),
        )
        .map_err(|e| rejected(format!("response signature: {}", error_chain(&e))))?;
        let r: Response = reduced
            .parse()
            .map_err(|e| rejected(format!("signed response: {e}")))?;
        if r.destination.as_deref() != self.sp.acs_url.as_deref() {
            return Err(rejected("response Destination is not this service"));
        }
        if r.in_response_to.as_deref() != request_id {
            return Err(rejected("response InResponseTo does not match the request"));
        }
        if r.issuer
            .as_ref()
            .is_some_and(|i| i.value != self.sp.idp_metadata.entity_id)
        {
            return Err(rejected("response Issuer is not the IdP"));
        }
        let success = r
            .status
            .as_ref()
            .and_then(|s| s.status_code.value.as_deref())
            == Some("urn:oasis:names:tc:SAML:2.0:status:Success");
        if !success {
            return Err(rejected("the IdP did not report success"));
        }
        if r.issue_instant + self.sp.max_issue_delay < Utc::now() {
            return Err(rejected("the response is too old"));
        }
        if r.encrypted_assertion.is_none() {
            return Err(rejected("the signed response holds no encrypted assertion"));
        }
        Ok(())
    }
}

/// Until when an accepted assertion's id must be kept against replay: as long as samael
/// would accept it again, that is the latest NotOnOrAfter of its Conditions and
/// SubjectConfirmationData, plus the clock skew it allows (an assertion without any
/// NotOnOrAfter: an hour from now, plus the skew).
fn replay_until(
    assertion: &samael::schema::Assertion,
    skew: chrono::Duration,
) -> chrono::DateTime<Utc> {
    let conditions = assertion
        .conditions
        .as_ref()
        .and_then(|c| c.not_on_or_after);
    let confirmations = assertion
        .subject
        .iter()
        .flat_map(|s| s.subject_confirmations.iter().flatten())
        .filter_map(|c| c.subject_confirmation_data.as_ref()?.not_on_or_after);
    conditions
        .into_iter()
        .chain(confirmations)
        .max()
        .unwrap_or_else(|| Utc::now() + chrono::Duration::hours(1))
        + skew
}

/// What a verified response says.
#[derive(Debug)]
pub struct Verified {
    pub assertion_id: String,
    /// When the assertion stops being accepted (its latest NotOnOrAfter plus the clock
    /// skew): until then its id is kept against replay.
    pub expires_at: String,
    pub assertion: Assertion,
}

#[derive(Debug, PartialEq, Eq)]
struct Shape {
    encrypted: bool,
    response_signed: bool,
    in_response_to: bool,
}

/// The structural checks run on the raw XML before any cryptography.
fn precheck(xml: &str) -> Result<Shape, String> {
    let mut r = NsReader::from_str(xml);
    // (namespace, local name, ID attribute) of the open elements.
    let mut stack: Vec<(String, String, Option<String>)> = Vec::new();
    let mut assertions = 0;
    let mut roots = 0;
    let mut shape = Shape {
        encrypted: false,
        response_signed: false,
        in_response_to: false,
    };
    let mut expected_uri: Option<String> = None;
    let mut references = 0;
    loop {
        let (ns, ev) = r
            .read_resolved_event()
            .map_err(|e| format!("malformed XML: {e}"))?;
        let ns = match ns {
            ResolveResult::Bound(n) => String::from_utf8_lossy(n.as_ref()).into_owned(),
            _ => String::new(),
        };
        match ev {
            Event::DocType(_) => return Err("a DOCTYPE is not allowed".into()),
            Event::PI(_) => return Err("processing instructions are not allowed".into()),
            Event::Start(ref e) | Event::Empty(ref e) => {
                let local = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                let attr = |name: &[u8]| -> Option<String> {
                    e.try_get_attribute(name).ok().flatten().and_then(|a| {
                        a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                            .ok()
                            .map(|v| v.into_owned())
                    })
                };
                let depth = stack.len();
                if depth == 0 {
                    roots += 1;
                    if roots > 1 || ns != NS_SAMLP || local != "Response" {
                        return Err("the document must be one samlp:Response".into());
                    }
                    shape.in_response_to = attr(b"InResponseTo").is_some();
                }
                if ns == NS_SAML && (local == "Assertion" || local == "EncryptedAssertion") {
                    assertions += 1;
                    if assertions > 1 {
                        return Err("more than one assertion".into());
                    }
                    if depth != 1 {
                        return Err(format!("the {local} is not a child of the Response"));
                    }
                    shape.encrypted = local == "EncryptedAssertion";
                }
                if ns == NS_DS {
                    let alg = attr(b"Algorithm");
                    let alg = alg.as_deref();
                    match local.as_str() {
                        "Signature" => {
                            let (pns, plocal, pid) = stack.last().cloned().unwrap_or_default();
                            let placed = (depth == 1 && pns == NS_SAMLP && plocal == "Response")
                                || (depth == 2 && pns == NS_SAML && plocal == "Assertion");
                            if !placed || expected_uri.is_some() {
                                return Err("a signature is in an unexpected place".into());
                            }
                            let id = pid.ok_or("the signed element has no ID")?;
                            expected_uri = Some(format!("#{id}"));
                            references = 0;
                            shape.response_signed |= depth == 1;
                        }
                        "Reference" => {
                            references += 1;
                            if references > 1 || attr(b"URI") != expected_uri {
                                return Err(
                                    "a signature must have one Reference, to its parent".into()
                                );
                            }
                        }
                        "Transform" if alg != Some(ENVELOPED) && alg != Some(EXC_C14N) => {
                            return Err(format!("transform {alg:?} is not allowed"));
                        }
                        "CanonicalizationMethod" if alg != Some(EXC_C14N) => {
                            return Err(format!("canonicalization {alg:?} is not allowed"));
                        }
                        "SignatureMethod"
                            if !STRONG.iter().any(|a| alg == Some(a.signature_uri())) =>
                        {
                            return Err(format!("signature method {alg:?} is not allowed"));
                        }
                        "DigestMethod"
                            if expected_uri.is_some()
                                && !STRONG.iter().any(|a| alg == Some(a.digest_uri())) =>
                        {
                            return Err(format!("digest method {alg:?} is not allowed"));
                        }
                        "Object" | "Manifest" => {
                            return Err("ds:Object and ds:Manifest are not allowed".into());
                        }
                        _ => {}
                    }
                }
                if let Event::Start(_) = ev {
                    stack.push((ns, local, attr(b"ID")));
                }
            }
            Event::End(_) => {
                if let Some((ns, local, _)) = stack.pop()
                    && ns == NS_DS
                    && local == "Signature"
                {
                    if references != 1 {
                        return Err("a signature without a Reference".into());
                    }
                    expected_uri = None;
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if assertions != 1 {
        return Err("the response holds no assertion".into());
    }
    Ok(shape)
}

/// Decrypts the one EncryptedAssertion: RSA-OAEP key transport only (never RSA 1.5), then
/// AES-128/192/256 in CBC or GCM. Returns the assertion's XML.
fn decrypt_assertion(xml: &str, sp_key: &PKey<Private>) -> Result<String, String> {
    use openssl::symm::{Cipher, Crypter, Mode, decrypt_aead};
    let resp: Response = xml
        .parse()
        .map_err(|e| format!("malformed response: {e}"))?;
    let ea = resp.encrypted_assertion.ok_or("no encrypted assertion")?;
    let (ekey, kmethod) = ea.encrypted_key_info().ok_or("no EncryptedKey")?;
    if kmethod != OAEP {
        return Err(format!("key transport {kmethod} is not allowed"));
    }
    let cek = XmlSec::decrypt_assertion_key_info(ekey, kmethod, sp_key)
        .map_err(|e| format!("cannot decrypt the content key: {}", error_chain(&e)))?;
    let (evalue, vmethod) = ea.encrypted_value_info().ok_or("no CipherValue")?;
    let (cipher, gcm) = match vmethod.as_str() {
        "http://www.w3.org/2001/04/xmlenc#aes128-cbc" => (Cipher::aes_128_cbc(), false),
        "http://www.w3.org/2001/04/xmlenc#aes192-cbc" => (Cipher::aes_192_cbc(), false),
        "http://www.w3.org/2001/04/xmlenc#aes256-cbc" => (Cipher::aes_256_cbc(), false),
        "http://www.w3.org/2009/xmlenc11#aes128-gcm" => (Cipher::aes_128_gcm(), true),
        "http://www.w3.org/2009/xmlenc11#aes192-gcm" => (Cipher::aes_192_gcm(), true),
        "http://www.w3.org/2009/xmlenc11#aes256-gcm" => (Cipher::aes_256_gcm(), true),
        other => return Err(format!("content encryption {other} is not allowed")),
    };
    if cek.len() != cipher.key_len() {
        return Err("wrong content key length".into());
    }
    let compact: String = evalue.value.split_ascii_whitespace().collect();
    let data = STANDARD
        .decode(compact)
        .map_err(|_| "the cipher value is not base64".to_string())?;
    let plain = if gcm {
        if data.len() < 12 + 16 {
            return Err("the cipher value is too short".into());
        }
        let (iv, rest) = data.split_at(12);
        let (ct, tag) = rest.split_at(rest.len() - 16);
        decrypt_aead(cipher, &cek, Some(iv), &[], ct, tag)
            .map_err(|_| "decryption failed".to_string())?
    } else {
        if data.len() < 32 || data.len() % 16 != 0 {
            return Err("bad CBC cipher value length".into());
        }
        let (iv, ct) = data.split_at(16);
        let fail = |_| "decryption failed".to_string();
        let mut c = Crypter::new(cipher, Mode::Decrypt, &cek, Some(iv)).map_err(fail)?;
        // XML Encryption pads per ISO 10126 (last byte = length), not PKCS#7.
        c.pad(false);
        let mut out = vec![0; ct.len() + 16];
        let n = c.update(ct, &mut out).map_err(fail)?;
        let m = c.finalize(&mut out[n..]).map_err(fail)?;
        out.truncate(n + m);
        let pad = usize::from(*out.last().ok_or("decryption gave nothing")?);
        if pad == 0 || pad > 16 || pad > out.len() {
            return Err("bad CBC padding".into());
        }
        out.truncate(out.len() - pad);
        out
    };
    String::from_utf8(plain).map_err(|_| "the decrypted assertion is not UTF-8".into())
}

/// An unsigned Response around a decrypted assertion, so samael verifies the assertion's
/// own signature and runs its checks on it (the shell itself carries no trust).
fn shell(assertion_xml: &str) -> String {
    format!(
        r#"<samlp:Response xmlns:samlp="{NS_SAMLP}" ID="_roster-shell" Version="2.0" IssueInstant="{}"><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>{}</samlp:Response>"#,
        Utc::now().format("%Y-%m-%dT%H:%M:%SZ"),
        assertion_xml.trim_start_matches(|c: char| c != '<')
    )
}

#[cfg(test)]
mod tests {
    use super::precheck;

    #[test]
    fn precheck_refuses_doctype_and_pi() {
        assert!(precheck("<!DOCTYPE x [<!ENTITY a \"b\">]><samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\"/>").is_err());
        assert!(precheck("<?xml-stylesheet href=\"x\"?><samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\"/>").is_err());
        assert!(precheck("<a/>").is_err());
    }
}
