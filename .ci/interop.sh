#!/usr/bin/env bash
# Starts a fresh Roster on the given backend, creates an organization and a SCIM
# directory with the CLI, and runs the scim2-cli conformance suite against it.
# Usage: .ci/interop.sh ROSTER_BINARY sqlite|postgres
set -euo pipefail
bin="$(realpath "$1")"
backend="$2"
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/fresh-server.sh" "$backend" ci_interop

"$bin" org create interop --name "Interop" --json >/dev/null
token="$("$bin" directory create --org interop --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"
start_roster
echo "-- scim2 test on $backend (port $port)"
if ! bash "$here/scim2-interop.sh" "http://127.0.0.1:$port/scim/v2" "$token"; then
    echo "-- server log (last 50 lines)"; tail -50 "$work/server.log"
    exit 1
fi
