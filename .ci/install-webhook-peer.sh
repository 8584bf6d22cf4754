#!/usr/bin/env bash
# Install the webhook receiver test peer's pinned Python package (standardwebhooks, the
# Standard Webhooks reference library; see tests/peers/webhooks/requirements.txt) into a
# virtualenv, by default .ci/.venv-webhooks in this repository.
#
# Usage: .ci/install-webhook-peer.sh [VENV_DIR]
#   Afterwards run the peer as VENV_DIR/bin/python tests/peers/webhooks/receiver.py.
# Idempotent: does nothing when the pin is already installed. Needs PyPI otherwise.
set -euo pipefail

prog="install-webhook-peer"
die() { echo "$prog: $*" >&2; exit 1; }

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
venv="${1:-$here/.venv-webhooks}"
bash "$here/pinned-venv.sh" "$prog" "$venv" "$repo/tests/peers/webhooks/requirements.txt" 9
"$venv/bin/python" -c 'from standardwebhooks.webhooks import Webhook' ||
    die "standardwebhooks fails to import in $venv"
echo "$prog: done; run $venv/bin/python $repo/tests/peers/webhooks/receiver.py" >&2
