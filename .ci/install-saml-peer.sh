#!/usr/bin/env bash
# Install the SAML IdP test peer's pinned Python packages (signxml, lxml,
# cryptography and their dependencies, see tests/peers/saml/requirements.txt)
# into a virtualenv, by default .ci/.venv-saml in this repository.
#
# Usage: .ci/install-saml-peer.sh [VENV_DIR]
#   Afterwards run the peer as VENV_DIR/bin/python tests/peers/saml/idp.py.
# Environment: PYTHON, the interpreter creating the venv (default python3,
# needs >= 3.9).
#
# Idempotent: does nothing when every pin in requirements.txt is already
# installed in VENV_DIR. Needs PyPI otherwise. No apt package is needed: every
# pin ships a manylinux wheel (lxml's bundles libxml2/libxslt), so nothing is
# compiled. (The Rust side, samael with its xmlsec feature, needs apt packages
# of its own: libxmlsec1-dev, libclang-dev, pkg-config, libssl-dev.)
set -euo pipefail

prog="install-saml-peer"
die() { echo "$prog: $*" >&2; exit 1; }

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
venv="${1:-$here/.venv-saml}"
requirements="$repo/tests/peers/saml/requirements.txt"
# signxml 5 needs Python >= 3.9; wheels only, so nothing is compiled.
bash "$here/pinned-venv.sh" "$prog" "$venv" "$requirements" 9 --only-binary=:all:
"$venv/bin/python" -c 'import signxml, lxml.etree, cryptography' ||
    die "signxml, lxml or cryptography fails to import in $venv"
echo "$prog: done; run $venv/bin/python $repo/tests/peers/saml/idp.py" >&2
