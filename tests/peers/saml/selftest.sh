#!/usr/bin/env bash
# Self-test of the SAML IdP test peer: generates an IdP and an SP key pair,
# every response case (idp.py responses), the IdP metadata with and without
# its signing certificate, and checks them with selftest_check.py: every output
# is strict base64 of a samlp:Response; the valid_* signatures verify with
# signxml against the IdP certificate (and the encrypted ones decrypt with the
# SP key first); tampered, wrong_cert and SHA-1 do not verify; the XSW variants
# keep a signature that is valid over the moved original copy; and so on.
# With the xmlsec1 CLI on PATH (apt-get install xmlsec1), valid_signed_*,
# tampered and wrong_cert are cross-checked with it too.
#
# Usage: tests/peers/saml/selftest.sh
# Environment: SAML_PEER_PYTHON, the interpreter to use (default: the venv of
# .ci/install-saml-peer.sh, which is installed when missing).
# Prints 'N passed, N failed' last; exits non-zero on any failure.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
if [[ -n "${SAML_PEER_PYTHON:-}" ]]; then
    py="$SAML_PEER_PYTHON"
else
    bash "$repo/.ci/install-saml-peer.sh" >&2
    py="$repo/.ci/.venv-saml/bin/python"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$py" "$here/idp.py" keys --cn "selftest IdP" >"$work/idp-keys.json"
"$py" "$here/idp.py" keys --cn "selftest SP" >"$work/sp-keys.json"

"$py" - "$work" <<'EOF'
import json, os, sys
work = sys.argv[1]
idp = json.load(open(os.path.join(work, "idp-keys.json")))
sp = json.load(open(os.path.join(work, "sp-keys.json")))
request = {
    "idp_entity_id": "https://idp.example.org/saml/metadata",
    "idp_key_pem": idp["key_pem"],
    "idp_cert_pem": idp["cert_pem"],
    "sp_entity_id": "https://roster.example.com/saml/metadata",
    "acs_url": "https://roster.example.com/saml/acs",
    "in_response_to": "_roster-request-1",
    "name_id": "user@example.com",
    "name_id_format": "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
    "attributes": {"email": ["user@example.com"], "groups": ["admins", "staff"]},
    "session_index": "_session-1",
    "sp_cert_pem": sp["cert_pem"],
    "sso_url": "https://idp.example.org/saml/sso",
    "cases": ["all"],
}
json.dump(request, open(os.path.join(work, "request.json"), "w"))
request["sp_key_pem"] = sp["key_pem"]  # for the checker only; idp.py never sees it
json.dump(request, open(os.path.join(work, "request-with-sp-key.json"), "w"))
EOF

"$py" "$here/idp.py" responses <"$work/request.json" >"$work/responses.json"
"$py" "$here/idp.py" metadata <"$work/request.json" >"$work/metadata.xml"
"$py" "$here/idp.py" metadata --omit-signing-cert <"$work/request.json" >"$work/metadata-nocert.xml"
mv "$work/request-with-sp-key.json" "$work/request.json"

"$py" "$here/selftest_check.py" "$work"
