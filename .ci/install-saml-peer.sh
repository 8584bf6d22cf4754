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
python="${PYTHON:-python3}"
requirements="$repo/tests/peers/saml/requirements.txt"
[[ -f "$requirements" ]] || die "$requirements not found"

# Exit 0 when every NAME==VERSION line of requirements.txt is satisfied.
pins_installed() {
    [[ -x "$venv/bin/python" ]] || return 1
    "$venv/bin/python" - "$requirements" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import PackageNotFoundError, version

for line in open(sys.argv[1]):
    line = line.split("#", 1)[0].strip()
    if not line:
        continue
    name, wanted = line.split("==")
    try:
        if version(name) != wanted:
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
EOF
}

if pins_installed; then
    echo "$prog: pinned packages already installed in $venv" >&2
    exit 0
fi

if [[ ! -x "$venv/bin/python" ]]; then
    command -v "$python" >/dev/null 2>&1 || die "'$python' not found (set PYTHON)"
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 9))' ||
        die "$("$python" --version 2>&1) is too old: signxml 5 needs Python >= 3.9 (set PYTHON)"
    echo "$prog: creating virtualenv $venv" >&2
    "$python" -m venv "$venv"
fi

echo "$prog: installing $requirements into $venv" >&2
PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/python" -m pip install --quiet --no-input \
    --only-binary=:all: -r "$requirements"

pins_installed || die "the pinned versions are not all installed in $venv after pip install"
"$venv/bin/python" -c 'import signxml, lxml.etree, cryptography' ||
    die "signxml, lxml or cryptography fails to import in $venv"
echo "$prog: done; run $venv/bin/python $repo/tests/peers/saml/idp.py" >&2
