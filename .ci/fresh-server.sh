# Sourced by the interop scripts: a fresh Roster on one backend, torn down on exit.
#
#   source .ci/fresh-server.sh BACKEND SCHEMA_PREFIX   (backend: sqlite or postgres)
#   ... create what the run needs with "$bin" (the CLI on the same data) ...
#   start_roster                                      (serves on $base, waits for /healthz)
#
# Expects $bin (the roster binary). Sets $work (a temporary directory), $port, $base and the
# ROSTER_* environment; the server's log is $work/server.log. PostgreSQL runs get their own
# schema, dropped on exit.
backend="$1"
work="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
schema=""
export ROSTER_DATA_DIR="$work/data"
unset ROSTER_DATABASE_URL ROSTER_DATABASE_SCHEMA
if [[ "$backend" == postgres ]]; then
    export ROSTER_DATABASE_URL="${ROSTER_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
    schema="${2}_$(date +%s)_$$"
    export ROSTER_DATABASE_SCHEMA="$schema"
fi
export ROSTER_PUBLIC_URL="$base"
pid=""
cleanup() {
    [[ -n "$pid" ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    if [[ -n "$schema" ]]; then
        psql "$ROSTER_DATABASE_URL" -qc "DROP SCHEMA IF EXISTS \"$schema\" CASCADE" >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

start_roster() {
    "$bin" serve --listen "127.0.0.1:$port" >"$work/server.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do
        curl -fsS "$base/healthz" >/dev/null 2>&1 && return 0
        kill -0 "$pid" 2>/dev/null || { cat "$work/server.log"; exit 1; }
        sleep 0.1
    done
    echo "roster did not answer /healthz on $base" >&2
    exit 1
}
