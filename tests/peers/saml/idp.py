#!/usr/bin/env python3
"""A SAML 2.0 Identity Provider test peer for Roster's Service Provider tests.

It makes complete, realistic SAML Responses, valid and hostile ones, signed by a
real XML-DSig library (signxml over lxml and cryptography) and, for encrypted
assertions, encrypted with XML Encryption built on `cryptography`
(AES-128/256-GCM or -CBC content key, RSA-OAEP-MGF1P key transport; rsa-1_5
only in the case that checks it is refused). samael 0.0.22 itself decrypts only
the AES-128 ones, and only when the Response is signed.

Usage (one JSON request on stdin, one JSON object or document on stdout):

    idp.py keys [--cn NAME]      -> {"key_pem": ..., "cert_pem": ...}
                                   a fresh RSA-2048 key and self-signed cert
    idp.py responses             -> {"responses": {case: base64 SAMLResponse}}
                                   (also the default when no subcommand is given)
    idp.py metadata [--sso-url URL] [--slo-url URL] [--omit-signing-cert] [--json]
                                 -> IdP metadata XML (EntityDescriptor); with
                                   --json: {"metadata": xml}
    idp.py cases                 -> {"cases": [every case name]}

`keys` and `cases` read no input. `metadata` reads a JSON request with
`idp_entity_id`, `idp_cert_pem`, `sso_url`, optional `slo_url` and optional
`omit_signing_cert` (bool); the command-line flags override those fields.

The `responses` request:
    idp_entity_id    Issuer of Response and Assertion
    idp_key_pem      PEM private key that signs (RSA)
    idp_cert_pem     PEM certificate of that key (sent in ds:KeyInfo)
    sp_entity_id     the Audience
    acs_url          Response Destination and SubjectConfirmationData Recipient
    in_response_to   optional: the AuthnRequest ID (absent: IdP-initiated)
    name_id, name_id_format
    attributes       {name: [string, ...]}
    session_index
    now              optional ISO-8601 time to pretend instead of the clock
    sp_cert_pem      the SP's certificate; needed only by the *encrypted* cases
    external_reference_uri  optional, for the external_reference case
    cases            list of case names; "all" (or an absent list) means every case

Every case is documented in CASES below. Times: IssueInstant = now; Conditions
NotBefore = now - 30 s, NotOnOrAfter = now + 5 min; SubjectConfirmationData
NotOnOrAfter = now + 5 min. Signatures are enveloped, RSA-SHA256 with a SHA-256
digest and exclusive C14N (both for SignedInfo and the reference), placed right
after the Issuer of the signed element as the SAML schema requires, with the
signing certificate in ds:KeyInfo/ds:X509Data. Output XML carries an XML
declaration and is UTF-8.
"""

from __future__ import annotations

import argparse
import base64
import copy
import datetime as dt
import json
import os
import sys
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml import XMLSigner

NS_SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
NS_SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
NS_DS = "http://www.w3.org/2000/09/xmldsig#"
NS_XENC = "http://www.w3.org/2001/04/xmlenc#"
NS_MD = "urn:oasis:names:tc:SAML:2.0:metadata"
NS_XS = "http://www.w3.org/2001/XMLSchema"
NS_XSI = "http://www.w3.org/2001/XMLSchema-instance"
NS_XSL = "http://www.w3.org/1999/XSL/Transform"

EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
STATUS_SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
PASSWORD_PROTECTED = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
ATTRNAME_BASIC = "urn:oasis:names:tc:SAML:2.0:attrname-format:basic"
ATTRNAME_URI = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"
BINDING_REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
BINDING_POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"

ENC_AES128_GCM = "http://www.w3.org/2009/xmlenc11#aes128-gcm"
ENC_AES256_GCM = "http://www.w3.org/2009/xmlenc11#aes256-gcm"
ENC_AES128_CBC = "http://www.w3.org/2001/04/xmlenc#aes128-cbc"
ENC_AES256_CBC = "http://www.w3.org/2001/04/xmlenc#aes256-cbc"
ENC_RSA_OAEP_MGF1P = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"
ENC_RSA_1_5 = "http://www.w3.org/2001/04/xmlenc#rsa-1_5"
CONTENT_KEY_BYTES = {ENC_AES128_GCM: 16, ENC_AES256_GCM: 32, ENC_AES128_CBC: 16, ENC_AES256_CBC: 32}
DIGEST_SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"
TRANSFORM_XSLT = "http://www.w3.org/TR/1999/REC-xslt-19991116"
XSLT_MARKER = "ROSTER-XSLT-TRANSFORM-EXECUTED"

WRONG_AUDIENCE = "https://wrong-sp.example.net/saml/metadata"
WRONG_URL = "https://wrong-sp.example.net/saml/acs"
EVIL_PREFIX = "evil-"

# Case name -> one-line description. The generator for each is in build_case().
CASES = {
    "valid_signed_assertion": "only the Assertion is signed",
    "valid_signed_response": "only the Response is signed (the Assertion inside is unsigned)",
    "valid_signed_both": "Assertion signed, then the Response signed over it",
    "valid_encrypted": "Assertion signed, then encrypted to sp_cert_pem as EncryptedAssertion "
    "(AES-128-GCM, RSA-OAEP-MGF1P); the Response is not signed",
    "valid_encrypted_cbc": "as valid_encrypted with AES-128-CBC content encryption",
    "valid_encrypted_signed_response": "as valid_encrypted, and the Response is signed over the EncryptedAssertion",
    "valid_encrypted_aes256_gcm": "as valid_encrypted with AES-256-GCM",
    "valid_encrypted_aes256_cbc": "as valid_encrypted with AES-256-CBC",
    "encrypted_rsa1_5": "as valid_encrypted but the content key is wrapped with RSA PKCS#1 v1.5 "
    "(rsa-1_5, open to padding-oracle attacks; an SP should refuse it)",
    "unsigned": "no signature anywhere",
    "sha1_signature": "Assertion signed with RSA-SHA1 and a SHA-1 digest (valid signature, weak algorithm)",
    "wrong_cert": "Assertion signed by a fresh key; its fresh cert is in KeyInfo",
    "tampered": "Assertion signed, then its NameID text changed (digest mismatch)",
    "xsw1": "XSW1: signed Response; evil Response at the root, original copy inside the Signature",
    "xsw2": "XSW2: signed Response; evil Response at the root, original copy just before the Signature",
    "xsw3": "XSW3: evil unsigned Assertion inserted before the signed one",
    "xsw4": "XSW4: evil unsigned Assertion wraps the signed one",
    "xsw5": "XSW5: evil Assertion keeps the Signature, original copy appended to the Response",
    "xsw6": "XSW6: evil Assertion keeps the Signature, original copy inside that Signature",
    "xsw7": "XSW7: evil copy (same ID) inside samlp:Extensions before the signed Assertion",
    "xsw8": "XSW8: evil Assertion keeps the Signature, original copy inside ds:Object in it",
    "comment_in_nameid": "signed NameID text is name_id<!---->.evil.com: comments are outside the digest",
    "valid_within_skew": "Conditions NotOnOrAfter 20 s and SubjectConfirmationData NotOnOrAfter "
    "10 s in the past: expired by the IdP's clock, still valid within a clock skew of 60 s",
    "expired": "Conditions and SubjectConfirmationData NotOnOrAfter 1 hour in the past",
    "not_yet_valid": "Conditions NotBefore 1 hour ahead",
    "wrong_audience": "Audience is another SP",
    "wrong_destination": "Response Destination is another URL (Response and Assertion signed)",
    "wrong_recipient": "SubjectConfirmationData Recipient is another URL",
    "wrong_in_response_to": "InResponseTo (Response and SubjectConfirmationData) names another request",
    "wrong_issuer": "Issuer (Response and Assertion) is another entity, signed with the right key",
    "no_audience_restriction": "Conditions without AudienceRestriction",
    "doctype": "a DOCTYPE with an internal subset declaring an (unused) entity; otherwise valid",
    "xxe": "DOCTYPE declaring an external entity file:///etc/passwd, referenced in NameID",
    "billion_laughs": "DOCTYPE with nested entities (lol9 = 10^9 'lol'), referenced in NameID",
    "two_assertions": "the signed Assertion, then a second unsigned Assertion (evil NameID)",
    "two_signed_assertions": "two Assertions, each separately signed (second NameID prefixed other-)",
    "xslt_transform": "signed Assertion whose Reference gains an XSLT transform (xsl:message prints "
    f"{XSLT_MARKER} to stderr); SignedInfo changed, so the signature is invalid",
    "external_reference": "signed Assertion whose Reference URI is changed to external_reference_uri "
    "(default file:///etc/hostname); SignedInfo changed, so the signature is invalid",
}


class Fail(Exception):
    pass


class SHA1Signer(XMLSigner):
    """signxml refuses SHA-1 by default; the sha1_signature case needs it."""

    def check_deprecated_methods(self):
        pass


# --------------------------------------------------------------------------- utils


def q(ns: str, tag: str) -> str:
    return f"{{{ns}}}{tag}"


def new_id(prefix: str = "_") -> str:
    return f"{prefix}{uuid.uuid4().hex}"


def iso(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_now(value: str | None) -> dt.datetime:
    if not value:
        return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return t.astimezone(dt.timezone.utc)


def cert_b64(cert_pem: str) -> str:
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def generate_keys(cn: str = "Roster test IdP") -> dict:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return {
        "key_pem": key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
        "cert_pem": cert.public_bytes(serialization.Encoding.PEM).decode(),
    }


def serialize(root: etree._Element, doctype: str | None = None) -> bytes:
    body = etree.tostring(root, encoding="UTF-8", xml_declaration=False)
    head = b'<?xml version="1.0" encoding="UTF-8"?>\n'
    if doctype:
        head += doctype.encode() + b"\n"
    return head + body


def by_id(root: etree._Element, ident: str) -> etree._Element:
    found = root.xpath("//*[@ID=$i]", i=ident)
    if len(found) != 1:
        raise Fail(f"expected one element with ID {ident}, found {len(found)}")
    return found[0]


def child(el: etree._Element, ns: str, tag: str) -> etree._Element:
    found = el.find(q(ns, tag))
    if found is None:
        raise Fail(f"{el.tag} has no {tag} child")
    return found


def name_id_el(assertion: etree._Element) -> etree._Element:
    return child(child(assertion, NS_SAML, "Subject"), NS_SAML, "NameID")


# ----------------------------------------------------------------- the documents


class Params:
    def __init__(self, req: dict):
        def need(k):
            if k not in req or req[k] in (None, ""):
                raise Fail(f"request field '{k}' is required")
            return req[k]

        self.idp_entity_id = need("idp_entity_id")
        self.idp_key_pem = need("idp_key_pem")
        self.idp_cert_pem = need("idp_cert_pem")
        self.sp_entity_id = need("sp_entity_id")
        self.acs_url = need("acs_url")
        self.in_response_to = req.get("in_response_to") or None
        self.name_id = need("name_id")
        self.name_id_format = req.get(
            "name_id_format", "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
        )
        self.attributes = req.get("attributes") or {}
        if not isinstance(self.attributes, dict) or not all(
            isinstance(v, list) and all(isinstance(s, str) for s in v) for v in self.attributes.values()
        ):
            raise Fail("'attributes' must map names to lists of strings")
        self.session_index = req.get("session_index") or new_id("_s")
        self.now = parse_now(req.get("now"))
        self.sp_cert_pem = req.get("sp_cert_pem")
        self.external_reference_uri = req.get("external_reference_uri") or "file:///etc/hostname"


def build_assertion(p: Params, **o) -> etree._Element:
    """A complete saml:Assertion. Overrides in `o`: issuer, name_id, audience
    (None: no AudienceRestriction), recipient, in_response_to, not_before,
    not_on_or_after, scd_not_on_or_after, assertion_id."""
    now = p.now
    assertion = etree.Element(
        q(NS_SAML, "Assertion"),
        nsmap={"saml": NS_SAML, "xs": NS_XS, "xsi": NS_XSI},
        ID=o.get("assertion_id") or new_id("_a"),
        IssueInstant=iso(now),
        Version="2.0",
    )
    etree.SubElement(assertion, q(NS_SAML, "Issuer")).text = o.get("issuer", p.idp_entity_id)

    subject = etree.SubElement(assertion, q(NS_SAML, "Subject"))
    nid = etree.SubElement(
        subject,
        q(NS_SAML, "NameID"),
        Format=p.name_id_format,
        NameQualifier=p.idp_entity_id,
        SPNameQualifier=p.sp_entity_id,
    )
    nid.text = o.get("name_id", p.name_id)
    sc = etree.SubElement(subject, q(NS_SAML, "SubjectConfirmation"), Method=BEARER)
    scd = etree.SubElement(
        sc,
        q(NS_SAML, "SubjectConfirmationData"),
        NotOnOrAfter=iso(o.get("scd_not_on_or_after", now + dt.timedelta(minutes=5))),
        Recipient=o.get("recipient", p.acs_url),
    )
    irt = o.get("in_response_to", p.in_response_to)
    if irt:
        scd.set("InResponseTo", irt)

    cond = etree.SubElement(
        assertion,
        q(NS_SAML, "Conditions"),
        NotBefore=iso(o.get("not_before", now - dt.timedelta(seconds=30))),
        NotOnOrAfter=iso(o.get("not_on_or_after", now + dt.timedelta(minutes=5))),
    )
    audience = o.get("audience", p.sp_entity_id)
    if audience is not None:
        ar = etree.SubElement(cond, q(NS_SAML, "AudienceRestriction"))
        etree.SubElement(ar, q(NS_SAML, "Audience")).text = audience

    authn = etree.SubElement(
        assertion,
        q(NS_SAML, "AuthnStatement"),
        AuthnInstant=iso(now - dt.timedelta(seconds=5)),
        SessionIndex=p.session_index,
        SessionNotOnOrAfter=iso(now + dt.timedelta(hours=8)),
    )
    ctx = etree.SubElement(authn, q(NS_SAML, "AuthnContext"))
    etree.SubElement(ctx, q(NS_SAML, "AuthnContextClassRef")).text = PASSWORD_PROTECTED

    if p.attributes:
        stmt = etree.SubElement(assertion, q(NS_SAML, "AttributeStatement"))
        for name, values in p.attributes.items():
            attr = etree.SubElement(
                stmt,
                q(NS_SAML, "Attribute"),
                Name=name,
                NameFormat=ATTRNAME_URI if name.startswith("urn:") else ATTRNAME_BASIC,
            )
            for v in values:
                av = etree.SubElement(attr, q(NS_SAML, "AttributeValue"))
                av.set(q(NS_XSI, "type"), "xs:string")
                av.text = v
    return assertion


def build_response(p: Params, assertions: list[etree._Element], **o) -> etree._Element:
    """A samlp:Response holding `assertions`. Overrides: destination, issuer,
    in_response_to."""
    resp = etree.Element(
        q(NS_SAMLP, "Response"),
        nsmap={"samlp": NS_SAMLP, "saml": NS_SAML},
        ID=new_id("_r"),
        Version="2.0",
        IssueInstant=iso(p.now),
        Destination=o.get("destination", p.acs_url),
    )
    irt = o.get("in_response_to", p.in_response_to)
    if irt:
        resp.set("InResponseTo", irt)
    etree.SubElement(resp, q(NS_SAML, "Issuer")).text = o.get("issuer", p.idp_entity_id)
    status = etree.SubElement(resp, q(NS_SAMLP, "Status"))
    etree.SubElement(status, q(NS_SAMLP, "StatusCode"), Value=STATUS_SUCCESS)
    for a in assertions:
        resp.append(a)
    return resp


def sign(
    root: etree._Element,
    target_id: str,
    key_pem: str,
    cert_pem: str,
    sha1: bool = False,
) -> etree._Element:
    """Enveloped signature over the element with ID `target_id`, placed right
    after that element's Issuer. Returns the new root (signxml works on a copy)."""
    target = by_id(root, target_id)
    issuer = child(target, NS_SAML, "Issuer")
    placeholder = etree.Element(q(NS_DS, "Signature"), nsmap={"ds": NS_DS}, Id="placeholder")
    issuer.addnext(placeholder)
    cls = SHA1Signer if sha1 else XMLSigner
    signer = cls(
        signature_algorithm="rsa-sha1" if sha1 else "rsa-sha256",
        digest_algorithm="sha1" if sha1 else "sha256",
        c14n_algorithm=EXC_C14N,
    )
    signer.namespaces = {"ds": NS_DS}
    return signer.sign(
        root,
        key=key_pem.encode(),
        cert=cert_pem,
        reference_uri="#" + target_id,
        id_attribute="ID",
    )


def signed_assertion_response(p: Params, **o) -> tuple[etree._Element, str]:
    """A Response whose single Assertion is signed; returns (root, assertion ID)."""
    resp_o = {k: o.pop(k) for k in ("destination", "response_issuer", "response_in_response_to") if k in o}
    a = build_assertion(p, **o)
    aid = a.get("ID")
    resp = build_response(
        p,
        [a],
        **{
            k2: resp_o[k1]
            for k1, k2 in (
                ("destination", "destination"),
                ("response_issuer", "issuer"),
                ("response_in_response_to", "in_response_to"),
            )
            if k1 in resp_o
        },
    )
    return sign(resp, aid, p.idp_key_pem, p.idp_cert_pem), aid


def sign_response(p: Params, resp: etree._Element) -> etree._Element:
    return sign(resp, resp.get("ID"), p.idp_key_pem, p.idp_cert_pem)


# ---------------------------------------------------------------- XML Encryption


def encrypt_assertion(
    p: Params, assertion: etree._Element, method: str, transport: str = ENC_RSA_OAEP_MGF1P
) -> etree._Element:
    """saml:EncryptedAssertion holding xenc:EncryptedData (Type Element) whose
    ds:KeyInfo carries the xenc:EncryptedKey (by default RSA-OAEP-MGF1P with a
    SHA-1 digest, the XML-Enc 1.0 default, to the SP certificate). CipherValue
    is IV || ciphertext (|| 16-byte tag for GCM), as XML-Enc specifies."""
    if not p.sp_cert_pem:
        raise Fail("the encrypted cases need 'sp_cert_pem' in the request")
    sp_cert = x509.load_pem_x509_certificate(p.sp_cert_pem.encode())
    plaintext = etree.tostring(assertion, encoding="UTF-8", xml_declaration=False)
    if method not in CONTENT_KEY_BYTES:
        raise Fail(f"unknown content encryption {method}")
    key = os.urandom(CONTENT_KEY_BYTES[method])
    if method in (ENC_AES128_GCM, ENC_AES256_GCM):
        iv = os.urandom(12)
        cipher_value = iv + AESGCM(key).encrypt(iv, plaintext, None)  # ciphertext || 16-byte tag
    else:
        iv = os.urandom(16)
        pad = 16 - len(plaintext) % 16  # XML-Enc padding: last byte = pad length
        padded = plaintext + bytes([pad]) * pad
        enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
        cipher_value = iv + enc.update(padded) + enc.finalize()
    if transport == ENC_RSA_1_5:
        wrapped_key = sp_cert.public_key().encrypt(key, asym_padding.PKCS1v15())
    else:
        wrapped_key = sp_cert.public_key().encrypt(
            key,
            asym_padding.OAEP(mgf=asym_padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None),
        )

    ea = etree.Element(q(NS_SAML, "EncryptedAssertion"), nsmap={"saml": NS_SAML})
    ed = etree.SubElement(
        ea,
        q(NS_XENC, "EncryptedData"),
        nsmap={"xenc": NS_XENC},
        Id=new_id("_ed"),
        Type=NS_XENC + "Element",
    )
    etree.SubElement(ed, q(NS_XENC, "EncryptionMethod"), Algorithm=method)
    ki = etree.SubElement(ed, q(NS_DS, "KeyInfo"), nsmap={"ds": NS_DS})
    ek = etree.SubElement(ki, q(NS_XENC, "EncryptedKey"), Id=new_id("_ek"))
    em = etree.SubElement(ek, q(NS_XENC, "EncryptionMethod"), Algorithm=transport)
    if transport == ENC_RSA_OAEP_MGF1P:
        etree.SubElement(em, q(NS_DS, "DigestMethod"), Algorithm=DIGEST_SHA1)
    eki = etree.SubElement(ek, q(NS_DS, "KeyInfo"))
    x5d = etree.SubElement(eki, q(NS_DS, "X509Data"))
    etree.SubElement(x5d, q(NS_DS, "X509Certificate")).text = cert_b64(p.sp_cert_pem)
    cd = etree.SubElement(ek, q(NS_XENC, "CipherData"))
    etree.SubElement(cd, q(NS_XENC, "CipherValue")).text = base64.b64encode(wrapped_key).decode()
    cd = etree.SubElement(ed, q(NS_XENC, "CipherData"))
    etree.SubElement(cd, q(NS_XENC, "CipherValue")).text = base64.b64encode(cipher_value).decode()
    return ea


def encrypted_case(
    p: Params, method: str, sign_resp: bool, transport: str = ENC_RSA_OAEP_MGF1P
) -> bytes:
    resp, aid = signed_assertion_response(p)
    assertion = by_id(resp, aid)
    ea = encrypt_assertion(p, assertion, method, transport)
    assertion.addprevious(ea)
    resp.remove(assertion)
    if sign_resp:
        resp = sign_response(p, resp)
    return serialize(resp)


# --------------------------------------------------------------- signature wrapping
#
# XSW1-XSW8 follow "On Breaking SAML: Be Whoever You Want to Be" (Somorovsky et al.,
# USENIX Security 2012) as implemented by the SAML Raider Burp extension. In each,
# the signature stays cryptographically valid (its Reference still finds an intact
# copy of the signed element by ID) while an unsigned "evil" element, whose NameID
# is prefixed "evil-", sits where a naive SP looks for the Response or Assertion.
# ("orig" = a copy of the signed element without its ds:Signature; enveloped-
# signature + exclusive C14N make its digest equal to the signed one.)


def _evil(el: etree._Element) -> None:
    for nid in el.iter(q(NS_SAML, "NameID")):
        nid.text = EVIL_PREFIX + (nid.text or "")


def _strip_signature(el: etree._Element) -> etree._Element:
    """A deep copy of `el` without its own direct ds:Signature child."""
    c = copy.deepcopy(el)
    for s in c.findall(q(NS_DS, "Signature")):
        c.remove(s)
    return c


def xsw_response(p: Params, variant: int) -> bytes:
    """XSW1 and XSW2 attack a signed Response (base: valid_signed_response).

    XSW1:                                   XSW2:
      Response ID=evil  (evil assertion)      Response ID=evil  (evil assertion)
        Issuer                                  Issuer
        ds:Signature  Reference=#orig           Response ID=orig  (orig, unsigned copy)
          SignedInfo, SignatureValue, KeyInfo   ds:Signature  Reference=#orig
          Response ID=orig  (orig copy)         Status
        Status                                  Assertion  (evil NameID)
        Assertion  (evil NameID)
    """
    resp = build_response(p, [build_assertion(p)])
    resp = sign_response(p, resp)
    orig = _strip_signature(resp)
    sig = child(resp, NS_DS, "Signature")
    _evil(resp)
    resp.set("ID", new_id("_evil_r"))
    if variant == 1:
        sig.append(orig)
    else:
        sig.addprevious(orig)
    return serialize(resp)


def xsw_assertion(p: Params, variant: int) -> bytes:
    """XSW3-XSW8 attack a signed Assertion (base: valid_signed_assertion); the
    Response is unsigned.

    XSW3: Response                          XSW4: Response
            Assertion ID=evil (evil)                Assertion ID=evil (evil)
            Assertion ID=orig (signed)                Assertion ID=orig (signed)
              ds:Signature Ref=#orig                    ds:Signature Ref=#orig

    XSW5: Response                          XSW6: Response
            Assertion ID=evil (evil)                Assertion ID=evil (evil)
              ds:Signature Ref=#orig                  ds:Signature Ref=#orig
            Assertion ID=orig (orig copy)               Assertion ID=orig (orig copy)

    XSW7: Response                          XSW8: Response
            samlp:Extensions                        Assertion ID=orig (evil content!)
              Assertion ID=orig (evil, no sig)        ds:Signature Ref=#orig
            Assertion ID=orig (signed)                  ds:Object
              ds:Signature Ref=#orig                      Assertion ID=orig (orig copy)

    XSW7 and XSW8 keep the original ID on both elements, as SAML Raider does
    (a verifier that resolves IDs to the first match digests the wrong one; one
    that resolves to the last, or rejects duplicate IDs, does not).
    """
    resp, aid = signed_assertion_response(p)
    signed = by_id(resp, aid)
    evil_id = new_id("_evil_a")
    if variant in (3, 4, 7):
        evil = _strip_signature(signed)
        _evil(evil)
        if variant == 3:
            evil.set("ID", evil_id)
            signed.addprevious(evil)
        elif variant == 4:
            evil.set("ID", evil_id)
            signed.addprevious(evil)
            evil.append(signed)  # moves the signed assertion inside the evil one
        else:
            ext = etree.Element(q(NS_SAMLP, "Extensions"))
            signed.addprevious(ext)
            ext.append(evil)
    else:
        orig = _strip_signature(signed)
        sig = child(signed, NS_DS, "Signature")
        _evil(signed)  # the element in place becomes the evil one, Signature and all
        if variant == 5:
            signed.set("ID", evil_id)
            resp.append(orig)
        elif variant == 6:
            signed.set("ID", evil_id)
            sig.append(orig)
        else:  # 8
            obj = etree.SubElement(sig, q(NS_DS, "Object"))
            obj.append(orig)
    return serialize(resp)


# ------------------------------------------------------------------- other cases


def comment_in_nameid(p: Params) -> bytes:
    """NameID = "<name_id>" <!----> ".evil.com". Exclusive C14N without comments
    drops the comment, so the signed value is "<name_id>.evil.com" and the
    signature is valid; an SP that reads only the first text node sees
    "<name_id>" (the 2018 Duo Labs finding, CVE-2017-11427 and others)."""
    a = build_assertion(p)
    nid = name_id_el(a)
    nid.text = p.name_id
    comment = etree.Comment("")
    comment.tail = ".evil.com"
    nid.append(comment)
    resp = build_response(p, [a])
    return serialize(sign(resp, a.get("ID"), p.idp_key_pem, p.idp_cert_pem))


def with_doctype(p: Params, kind: str) -> bytes:
    resp, aid = signed_assertion_response(p)
    root_name = "samlp:Response"
    if kind == "doctype":
        doctype = f'<!DOCTYPE {root_name} [\n  <!ENTITY roster-test "declared but unused">\n]>'
        return serialize(resp, doctype)
    # The entity reference replaces the signed NameID text, so this signature no
    # longer verifies; what matters is whether the SP's parser loads or expands
    # the entity before (or instead of) rejecting the document.
    marker = "ROSTER-ENTITY-MARKER"
    name_id_el(by_id(resp, aid)).text = marker
    if kind == "xxe":
        doctype = f'<!DOCTYPE {root_name} [\n  <!ENTITY xxe SYSTEM "file:///etc/passwd">\n]>'
        ref = "&xxe;"
    else:
        lines = ['  <!ENTITY lol "lol">']
        prev = "lol"
        for i in range(1, 10):
            name = f"lol{i}"
            lines.append(f'  <!ENTITY {name} "' + f"&{prev};" * 10 + '">')
            prev = name
        doctype = f"<!DOCTYPE {root_name} [\n" + "\n".join(lines) + "\n]>"
        ref = "&lol9;"
    return serialize(resp, doctype).replace(marker.encode(), ref.encode(), 1)


def xslt_transform(p: Params) -> bytes:
    """An attacker cannot sign, but a verifier that runs the Reference transforms
    before checking SignatureValue (xmlsec does) executes attacker-supplied XSLT.
    libxslt writes xsl:message text to stderr, which makes the execution visible."""
    resp, aid = signed_assertion_response(p)
    transforms = by_id(resp, aid).find(f"{{{NS_DS}}}Signature/{{{NS_DS}}}SignedInfo/{{{NS_DS}}}Reference/{{{NS_DS}}}Transforms")
    t = etree.SubElement(transforms, q(NS_DS, "Transform"), Algorithm=TRANSFORM_XSLT)
    xsl = etree.SubElement(t, q(NS_XSL, "stylesheet"), nsmap={"xsl": NS_XSL}, version="1.0")
    tmpl = etree.SubElement(xsl, q(NS_XSL, "template"), match="/")
    etree.SubElement(tmpl, q(NS_XSL, "message")).text = XSLT_MARKER
    etree.SubElement(tmpl, q(NS_XSL, "copy-of"), select=".")
    return serialize(resp)


def external_reference(p: Params) -> bytes:
    """A verifier that dereferences Reference URIs before checking SignatureValue
    (xmlsec does, with any URI scheme libxml2's I/O layer knows) reads a local file
    or makes a request on behalf of an unauthenticated sender."""
    resp, aid = signed_assertion_response(p)
    ref = by_id(resp, aid).find(f"{{{NS_DS}}}Signature/{{{NS_DS}}}SignedInfo/{{{NS_DS}}}Reference")
    ref.set("URI", p.external_reference_uri)
    return serialize(resp)


def build_case(p: Params, case: str) -> bytes:
    hour = dt.timedelta(hours=1)
    if case == "valid_signed_assertion":
        return serialize(signed_assertion_response(p)[0])
    if case == "valid_signed_response":
        return serialize(sign_response(p, build_response(p, [build_assertion(p)])))
    if case == "valid_signed_both":
        return serialize(sign_response(p, signed_assertion_response(p)[0]))
    if case == "valid_encrypted":
        return encrypted_case(p, ENC_AES128_GCM, sign_resp=False)
    if case == "valid_encrypted_cbc":
        return encrypted_case(p, ENC_AES128_CBC, sign_resp=False)
    if case == "valid_encrypted_signed_response":
        return encrypted_case(p, ENC_AES128_GCM, sign_resp=True)
    if case == "valid_encrypted_aes256_gcm":
        return encrypted_case(p, ENC_AES256_GCM, sign_resp=False)
    if case == "valid_encrypted_aes256_cbc":
        return encrypted_case(p, ENC_AES256_CBC, sign_resp=False)
    if case == "encrypted_rsa1_5":
        return encrypted_case(p, ENC_AES128_GCM, sign_resp=False, transport=ENC_RSA_1_5)
    if case == "unsigned":
        return serialize(build_response(p, [build_assertion(p)]))
    if case == "sha1_signature":
        a = build_assertion(p)
        resp = build_response(p, [a])
        return serialize(sign(resp, a.get("ID"), p.idp_key_pem, p.idp_cert_pem, sha1=True))
    if case == "wrong_cert":
        other = generate_keys("Not the configured IdP")
        a = build_assertion(p)
        resp = build_response(p, [a])
        return serialize(sign(resp, a.get("ID"), other["key_pem"], other["cert_pem"]))
    if case == "tampered":
        resp, aid = signed_assertion_response(p)
        _evil(by_id(resp, aid))
        return serialize(resp)
    if case in ("xsw1", "xsw2"):
        return xsw_response(p, int(case[3:]))
    if case.startswith("xsw") and case[3:] in ("3", "4", "5", "6", "7", "8"):
        return xsw_assertion(p, int(case[3:]))
    if case == "comment_in_nameid":
        return comment_in_nameid(p)
    if case == "valid_within_skew":
        return serialize(
            signed_assertion_response(
                p,
                not_before=p.now - dt.timedelta(minutes=5),
                not_on_or_after=p.now - dt.timedelta(seconds=20),
                scd_not_on_or_after=p.now - dt.timedelta(seconds=10),
            )[0]
        )
    if case == "expired":
        return serialize(
            signed_assertion_response(
                p,
                not_before=p.now - hour - dt.timedelta(minutes=5),
                not_on_or_after=p.now - hour,
                scd_not_on_or_after=p.now - hour,
            )[0]
        )
    if case == "not_yet_valid":
        return serialize(
            signed_assertion_response(
                p, not_before=p.now + hour, not_on_or_after=p.now + hour + dt.timedelta(minutes=5)
            )[0]
        )
    if case == "wrong_audience":
        return serialize(signed_assertion_response(p, audience=WRONG_AUDIENCE)[0])
    if case == "no_audience_restriction":
        return serialize(signed_assertion_response(p, audience=None)[0])
    if case == "wrong_destination":
        # Response signed too, so the wrong Destination is authentic, not tampering.
        return serialize(sign_response(p, signed_assertion_response(p, destination=WRONG_URL)[0]))
    if case == "wrong_recipient":
        return serialize(signed_assertion_response(p, recipient=WRONG_URL)[0])
    if case == "wrong_in_response_to":
        other = new_id("_other-request-")
        return serialize(
            sign_response(
                p, signed_assertion_response(p, in_response_to=other, response_in_response_to=other)[0]
            )
        )
    if case == "wrong_issuer":
        other = "https://other-idp.example.net/metadata"
        return serialize(
            sign_response(p, signed_assertion_response(p, issuer=other, response_issuer=other)[0])
        )
    if case in ("doctype", "xxe", "billion_laughs"):
        return with_doctype(p, case)
    if case == "two_assertions":
        resp, aid = signed_assertion_response(p)
        extra = build_assertion(p)
        _evil(extra)
        by_id(resp, aid).addnext(extra)
        return serialize(resp)
    if case == "xslt_transform":
        return xslt_transform(p)
    if case == "external_reference":
        return external_reference(p)
    if case == "two_signed_assertions":
        a1 = build_assertion(p)
        a2 = build_assertion(p, name_id="other-" + p.name_id)
        resp = build_response(p, [a1, a2])
        resp = sign(resp, a1.get("ID"), p.idp_key_pem, p.idp_cert_pem)
        resp = sign(resp, a2.get("ID"), p.idp_key_pem, p.idp_cert_pem)
        return serialize(resp)
    raise Fail(f"unknown case '{case}' (known: {', '.join(CASES)})")


# ---------------------------------------------------------------------- metadata


def metadata(req: dict) -> str:
    entity_id = req.get("idp_entity_id")
    sso_url = req.get("sso_url")
    if not entity_id or not sso_url:
        raise Fail("metadata needs 'idp_entity_id' and 'sso_url'")
    ed = etree.Element(
        q(NS_MD, "EntityDescriptor"),
        nsmap={"md": NS_MD, "ds": NS_DS},
        entityID=entity_id,
    )
    idp = etree.SubElement(
        ed,
        q(NS_MD, "IDPSSODescriptor"),
        WantAuthnRequestsSigned="false",
        protocolSupportEnumeration=NS_SAMLP,
    )
    if not req.get("omit_signing_cert"):
        cert_pem = req.get("idp_cert_pem")
        if not cert_pem:
            raise Fail("metadata needs 'idp_cert_pem' (or omit_signing_cert)")
        kd = etree.SubElement(idp, q(NS_MD, "KeyDescriptor"), use="signing")
        ki = etree.SubElement(kd, q(NS_DS, "KeyInfo"))
        x5d = etree.SubElement(ki, q(NS_DS, "X509Data"))
        etree.SubElement(x5d, q(NS_DS, "X509Certificate")).text = cert_b64(cert_pem)
    if req.get("slo_url"):
        for binding in (BINDING_REDIRECT, BINDING_POST):
            etree.SubElement(idp, q(NS_MD, "SingleLogoutService"), Binding=binding, Location=req["slo_url"])
    for fmt in (
        "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
        "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
        "urn:oasis:names:tc:SAML:2.0:nameid-format:transient",
    ):
        etree.SubElement(idp, q(NS_MD, "NameIDFormat")).text = fmt
    for binding in (BINDING_REDIRECT, BINDING_POST):
        etree.SubElement(idp, q(NS_MD, "SingleSignOnService"), Binding=binding, Location=sso_url)
    return etree.tostring(ed, encoding="UTF-8", xml_declaration=True, pretty_print=True).decode()


# ---------------------------------------------------------------------------- CLI


def read_request() -> dict:
    raw = sys.stdin.read()
    try:
        req = json.loads(raw)
    except json.JSONDecodeError as e:
        raise Fail(f"stdin is not one JSON object: {e}") from e
    if not isinstance(req, dict):
        raise Fail("stdin must hold one JSON object")
    return req


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="idp.py", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd")
    k = sub.add_parser("keys", help="print a fresh RSA-2048 key and self-signed cert as JSON")
    k.add_argument("--cn", default="Roster test IdP")
    sub.add_parser("responses", help="read a request on stdin, print {'responses': {...}}")
    sub.add_parser("cases", help="print every case name")
    m = sub.add_parser("metadata", help="read a request on stdin, print IdP metadata XML")
    m.add_argument("--sso-url")
    m.add_argument("--slo-url")
    m.add_argument("--omit-signing-cert", action="store_true")
    m.add_argument("--json", action="store_true", help='print {"metadata": xml} instead of XML')
    args = ap.parse_args(argv)

    try:
        if args.cmd == "keys":
            out = json.dumps(generate_keys(args.cn))
        elif args.cmd == "cases":
            out = json.dumps({"cases": list(CASES)})
        elif args.cmd == "metadata":
            req = read_request()
            if args.sso_url:
                req["sso_url"] = args.sso_url
            if args.slo_url:
                req["slo_url"] = args.slo_url
            if args.omit_signing_cert:
                req["omit_signing_cert"] = True
            xml = metadata(req)
            out = json.dumps({"metadata": xml}) if args.json else xml.rstrip("\n")
        else:
            req = read_request()
            p = Params(req)
            cases = req.get("cases")
            if cases is None or cases == "all" or cases == ["all"]:
                cases = list(CASES)
            if not isinstance(cases, list) or not all(isinstance(c, str) for c in cases):
                raise Fail("'cases' must be a list of case names")
            responses = {c: base64.b64encode(build_case(p, c)).decode() for c in cases}
            out = json.dumps({"responses": responses})
    except Fail as e:
        print(f"idp.py: {e}", file=sys.stderr)
        return 2
    sys.stdout.write(out + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
