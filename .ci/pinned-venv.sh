#!/usr/bin/env bash
# Installs the NAME==VERSION pins of a requirements file into a virtualenv, idempotently
# (nothing happens when every pin is already installed). Shared by install-python-tools.sh
# and install-saml-peer.sh.
#
# Usage: .ci/pinned-venv.sh PROG VENV_DIR REQUIREMENTS MIN_PYTHON_MINOR [PIP_ARGS...]
#   PROG names the caller in messages; MIN_PYTHON_MINOR is the least 3.x the pins need.
# Environment: PYTHON, the interpreter creating the venv (default python3).
set -euo pipefail

prog="$1" venv="$2" requirements="$3" min_minor="$4"
shift 4
die() { echo "$prog: $*" >&2; exit 1; }
python="${PYTHON:-python3}"
[[ -f "$requirements" ]] || die "$requirements not found"

# Exit 0 when every NAME==VERSION line of the requirements file is satisfied.
pins_installed() {
    [[ -x "$venv/bin/python" ]] || return 1
    "$venv/bin/python" - "$requirements" <<'PY' 2>/dev/null
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
PY
}

if pins_installed; then
    echo "$prog: pinned packages already installed in $venv" >&2
    exit 0
fi

if [[ ! -x "$venv/bin/python" ]]; then
    command -v "$python" >/dev/null 2>&1 || die "'$python' not found (set PYTHON)"
    "$python" -c "import sys; sys.exit(sys.version_info < (3, $min_minor))" ||
        die "$("$python" --version 2>&1) is too old: these pins need Python >= 3.$min_minor (set PYTHON)"
    echo "$prog: creating virtualenv $venv" >&2
    "$python" -m venv "$venv"
fi

echo "$prog: installing $requirements into $venv" >&2
PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/python" -m pip install --quiet --no-input "$@" \
    -r "$requirements"

pins_installed || die "the pinned versions are not all installed in $venv after pip install"
