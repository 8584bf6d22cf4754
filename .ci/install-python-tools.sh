#!/usr/bin/env bash
# Install the pinned Python SCIM tools into a virtualenv:
#   - scim2-cli (`scim2`), used by .ci/scim2-interop.sh for conformance checks;
#   - scim2-server (`scim2-server`), the reference server used by
#     bench/run-scim2-server.sh.
# The scim2-* libraries they pull in are pinned too, since scim2-tester
# decides which checks run and scim2-client/scim2-models how responses are
# judged.
#
# Usage: .ci/install-python-tools.sh [VENV_DIR]
#   VENV_DIR defaults to .ci/.venv in this repository (a relative VENV_DIR is
#   taken from the current directory). Afterwards, put VENV_DIR/bin on PATH.
# Environment: PYTHON, the interpreter creating the venv (default python3;
# scim2-cli needs Python >= 3.11).
#
# Idempotent: does nothing when every pinned version is already installed in
# VENV_DIR. Needs network access to PyPI otherwise.
set -euo pipefail

prog="install-python-tools"
die() { echo "$prog: $*" >&2; exit 1; }

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${1:-$here/.venv}"
python="${PYTHON:-python3}"

# Keep in sync with the versions scim2-interop.sh was checked against.
pins=(
    "scim2-cli==0.6.0"
    "scim2-server==0.8.3"
    "scim2-tester==0.5.2"
    "scim2-client==0.13.2"
    "scim2-models==0.12.3"
)

# Exit 0 when every pin is satisfied by the venv's interpreter.
pins_installed() {
    [[ -x "$venv/bin/python" ]] || return 1
    "$venv/bin/python" - "${pins[@]}" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import PackageNotFoundError, version

for pin in sys.argv[1:]:
    name, wanted = pin.split("==")
    try:
        if version(name) != wanted:
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
EOF
}

if pins_installed; then
    echo "$prog: pinned tools already installed in $venv" >&2
    exit 0
fi

if [[ ! -x "$venv/bin/python" ]]; then
    command -v "$python" >/dev/null 2>&1 || die "'$python' not found (set PYTHON)"
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
        die "$("$python" --version 2>&1) is too old: scim2-cli needs Python >= 3.11 (set PYTHON)"
    echo "$prog: creating virtualenv $venv" >&2
    "$python" -m venv "$venv"
fi

echo "$prog: installing ${pins[*]} into $venv" >&2
PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/python" -m pip install --quiet --no-input "${pins[@]}"

pins_installed || die "the pinned versions are not all installed in $venv after pip install"
for tool in scim2 scim2-server; do
    [[ -x "$venv/bin/$tool" ]] || die "$venv/bin/$tool missing after install"
done
echo "$prog: done; add $venv/bin to PATH" >&2
