#!/usr/bin/env bash
# Benchmarks Roster's event delivery with `roster-bench events`: builds both in release mode,
# starts a fresh server (a new SQLite directory, or a new PostgreSQL schema), creates an
# organization, a SCIM directory and a webhook endpoint (`user.*`) pointing at the bench's
# receiver, runs the workload, stops the server and removes its data.
#
# Usage: bench/run-events.sh sqlite|postgres [roster-bench events options...]
#   default options: --users 5000 --connections 16 --deprovision 500
#   server retry schedule: ROSTER_BENCH_RETRY_SCHEDULE (default 200ms,1s)
#   PostgreSQL: ROSTER_BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test)
set -euo pipefail
backend="${1:?usage: $0 sqlite|postgres [roster-bench events options...]}"
shift
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
target="${CARGO_TARGET_DIR:-$root/target}"
cargo build --release --quiet --bin roster -p roster
cargo build --release --quiet -p roster-bench
bin="$target/release/roster"
work="$(mktemp -d)"
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
port="$(free_port)"
hook_port="$(free_port)"
unset ROSTER_DATABASE_URL ROSTER_DATABASE_SCHEMA
export ROSTER_DATA_DIR="$work/data" ROSTER_PUBLIC_URL="http://127.0.0.1:$port"
schema=""
if [[ "$backend" == postgres ]]; then
    export ROSTER_DATABASE_URL="${ROSTER_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
    schema="bench_events_$(date +%s)_$$"
    export ROSTER_DATABASE_SCHEMA="$schema"
elif [[ "$backend" != sqlite ]]; then
    echo "usage: $0 sqlite|postgres [roster-bench events options...]" >&2
    exit 1
fi
pid=""
cleanup() {
    [[ -n "$pid" ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    [[ -n "$schema" ]] && psql "$ROSTER_DATABASE_URL" -qc "DROP SCHEMA IF EXISTS \"$schema\" CASCADE" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)[\"$1\"])"; }
"$bin" org create bench >/dev/null
token="$("$bin" directory create --org bench --json | json_field token)"
secret="$("$bin" webhook create --org bench --url "http://127.0.0.1:$hook_port/webhook" \
    --events 'user.*' --json | json_field secret)"
"$bin" serve --listen "127.0.0.1:$port" \
    --webhook-retry-schedule "${ROSTER_BENCH_RETRY_SCHEDULE:-200ms,1s}" >"$work/server.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done
status=0
"$target/release/roster-bench" events --url "http://127.0.0.1:$port/scim/v2" --token "$token" \
    --listen "127.0.0.1:$hook_port" --webhook-secret "$secret" "$@" || status=$?
if [[ $status -ne 0 ]] && grep -qiE 'warn|error' "$work/server.log"; then
    echo "--- server log (warnings and errors, last 20) ---" >&2
    grep -iE 'warn|error' "$work/server.log" | tail -20 >&2
fi
exit "$status"
