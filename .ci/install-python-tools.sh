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
# scim2-cli needs Python >= 3.11; the pins live in .ci/python-tools.txt.
bash "$here/pinned-venv.sh" "$prog" "$venv" "$here/python-tools.txt" 11
for tool in scim2 scim2-server; do
    [[ -x "$venv/bin/$tool" ]] || die "$venv/bin/$tool missing after install"
done
echo "$prog: done; add $venv/bin to PATH" >&2
