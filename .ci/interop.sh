#!/usr/bin/env bash
# Starts a fresh Roster on the given backend, creates an organization and a SCIM
# directory with the CLI, and runs the scim2-cli conformance suite against it.
# Usage: .ci/interop.sh ROSTER_BINARY sqlite|postgres
set -euo pipefail
bin="$(realpath "$1")"
backend="$2"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
schema=""
export ROSTER_DATA_DIR="$work/data"
unset ROSTER_DATABASE_URL ROSTER_DATABASE_SCHEMA
if [[ "$backend" == postgres ]]; then
    export ROSTER_DATABASE_URL="${ROSTER_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
    schema="ci_interop_$(date +%s)_$$"
    export ROSTER_DATABASE_SCHEMA="$schema"
fi
export ROSTER_PUBLIC_URL="http://127.0.0.1:$port"
pid=""
cleanup() {
    [[ -n "$pid" ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    if [[ -n "$schema" ]]; then
        psql "$ROSTER_DATABASE_URL" -qc "DROP SCHEMA IF EXISTS \"$schema\" CASCADE" >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

"$bin" org create interop --name "Interop" --json >/dev/null
token="$("$bin" directory create --org interop --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"
"$bin" serve --listen "127.0.0.1:$port" >"$work/server.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/server.log"; exit 1; }
    sleep 0.1
done
echo "-- scim2 test on $backend (port $port)"
if ! bash "$here/scim2-interop.sh" "http://127.0.0.1:$port/scim/v2" "$token"; then
    echo "-- server log (last 50 lines)"; tail -50 "$work/server.log"
    exit 1
fi
