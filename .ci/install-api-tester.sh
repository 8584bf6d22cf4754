#!/usr/bin/env bash
# Install the pinned API tester (schemathesis, see .ci/api-tools.txt) into a virtualenv,
# by default .ci/.venv-api in this repository. Idempotent; needs PyPI otherwise.
#
# Usage: .ci/install-api-tester.sh [VENV_DIR]
set -euo pipefail

prog="install-api-tester"
die() { echo "$prog: $*" >&2; exit 1; }

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${1:-$here/.venv-api}"
bash "$here/pinned-venv.sh" "$prog" "$venv" "$here/api-tools.txt" 9
[[ -x "$venv/bin/schemathesis" ]] || die "$venv/bin/schemathesis missing after install"
echo "$prog: done; run $venv/bin/schemathesis" >&2
