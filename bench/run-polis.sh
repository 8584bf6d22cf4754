#!/usr/bin/env bash
# Run roster-bench against Ory Polis (npm `@boxyhq/saml-jackson`, formerly BoxyHQ SAML
# Jackson) as a SCIM 2.0 server, to have figures to compare Roster's with.
#
# bench/polis/server.js runs Polis's directory sync in a plain node HTTP server, doing the
# same request translation as Polis's Next.js route pages/api/scim/v2.0/[...directory].ts.
# Its npm dependencies are installed with `npm ci` (from bench/polis/package-lock.json) when
# bench/polis/node_modules is missing. Needs node (>= 20), npm, python3; for postgres, psql.
# roster-bench is taken from $ROSTER_BENCH, else from PATH, else built with cargo (release)
# from this directory (into $CARGO_TARGET_DIR when set).
#
# Usage: bench/run-polis.sh mem|postgres [roster-bench scim options...]
#   e.g. bench/run-polis.sh mem --sizes 1000 --duration-secs 2
#        bench/run-polis.sh postgres --json
#
#   mem:      Polis's in-memory engine (DB_ENGINE=mem).
#   postgres: Polis's sql engine with type postgres, in a fresh database polis_bench_<pid>,
#             created next to the one named by $POLIS_BENCH_DATABASE_URL (default
#             postgres://postgres@127.0.0.1:5432/test) and dropped at the end.
#
# Unless given, the sizes and phase length are smaller than roster-bench's:
# --sizes 1000,10000 --duration-secs 5 (Polis adds group members one by one, several
# queries each, so filling a large group takes long). --url, --token and --server-pid are
# set by this script. POLIS_BENCH_EVENTS=none swaps Polis's own event callback for a
# no-op (see server.js); POLIS_BENCH_LOG=FILE keeps the server's log there.
# The exit status is roster-bench's (2 means some requests failed: see the report).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
polis="$here/polis"

die() { echo "run-polis: $*" >&2; exit 1; }

backend="${1:-}"
case "$backend" in
    mem | postgres) shift ;;
    *) die "usage: $0 mem|postgres [roster-bench scim options...]" ;;
esac

command -v node >/dev/null || die "node not found"
command -v npm >/dev/null || die "npm not found"
command -v python3 >/dev/null || die "python3 not found"

# Add the smaller defaults unless the caller chose those options.
has_opt() {
    local name="$1" arg
    for arg in "${user_args[@]}"; do
        [[ "$arg" == "$name" || "$arg" == "$name="* ]] && return 0
    done
    return 1
}
user_args=("$@")
bench_args=()
has_opt --sizes || has_opt --users || bench_args+=(--sizes 1000,10000)
has_opt --duration-secs || bench_args+=(--duration-secs 5)
for forbidden in --url --token --server-pid; do
    has_opt "$forbidden" && die "$forbidden is set by this script"
done

# Node dependencies, from the lock file. --ignore-scripts: nothing used here needs an
# install script (better-sqlite3's would try to download a prebuilt binary).
if [[ ! -d "$polis/node_modules/@boxyhq/saml-jackson" ]]; then
    echo "run-polis: installing bench/polis dependencies (npm ci)" >&2
    (cd "$polis" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
fi

# Find roster-bench.
if [[ -n "${ROSTER_BENCH:-}" ]]; then
    bench="$ROSTER_BENCH"
elif command -v roster-bench >/dev/null; then
    bench="$(command -v roster-bench)"
else
    echo "run-polis: building roster-bench (release)" >&2
    cargo build --release --quiet --manifest-path "$here/Cargo.toml" >&2
    target_dir="$(cargo metadata --format-version 1 --no-deps --manifest-path "$here/Cargo.toml" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
    bench="$target_dir/release/roster-bench"
fi
[[ -x "$bench" ]] || die "roster-bench not found at $bench"

# A free port on loopback (the kernel picks it; the race until the server binds it is
# harmless on a quiet machine).
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
work="$(mktemp -d -t polis-bench.XXXXXX)"
log="${POLIS_BENCH_LOG:-$work/server.log}"

server_pid=""
bench_pid=""
database=""
admin_url=""
stop() {
    if [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null; then
        kill "$1" 2>/dev/null || true
        wait "$1" 2>/dev/null || true
    fi
}
cleanup() {
    stop "$bench_pid"
    stop "$server_pid"
    if [[ -n "$database" ]]; then
        psql "$admin_url" -qX -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS \"$database\" WITH (FORCE)" \
            >/dev/null 2>&1 || echo "run-polis: could not drop database $database" >&2
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# No telemetry or analytics may leave the machine.
unset OTEL_EXPORTER_OTLP_ENDPOINT OTEL_EXPORTER_OTLP_METRICS_ENDPOINT OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
export DO_NOT_TRACK=1 BOXYHQ_NO_ANALYTICS=1
export POLIS_BENCH_DB="$backend"

if [[ "$backend" == postgres ]]; then
    command -v psql >/dev/null || die "psql not found"
    admin_url="${POLIS_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
    database="polis_bench_$$"
    # The same server and credentials, another database.
    db_url="$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' \
        "$admin_url" "$database")"
    psql "$admin_url" -qX -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$database\"" >/dev/null ||
        { database=""; die "could not create database $database via $admin_url"; }
    export POLIS_BENCH_DATABASE_URL="$db_url"
fi

node "$polis/server.js" "$backend" --port "$port" >"$work/ready.json" 2>"$log" &
server_pid=$!

# Wait for the JSON line that says it listens with a directory made (at most 60 s: with
# postgres, Polis first creates its tables).
for _ in $(seq 600); do
    [[ -s "$work/ready.json" ]] && break
    kill -0 "$server_pid" 2>/dev/null || { tail -n 30 "$log" >&2; die "the Polis server exited at start"; }
    sleep 0.1
done
[[ -s "$work/ready.json" ]] || { tail -n 30 "$log" >&2; die "the Polis server did not start"; }
read -r scim_path token version < <(python3 -c '
import json, sys
j = json.loads(open(sys.argv[1]).readline())
print(j["scim_path"], j["token"], j["polis_version"])' "$work/ready.json")
(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || die "the Polis server does not listen on port $port"
echo "run-polis: Polis (@boxyhq/saml-jackson $version, node $(node --version), $backend${database:+ database $database}) pid $server_pid on 127.0.0.1:$port$scim_path" >&2

# In the background, so that a signal runs the trap at once.
"$bench" scim --url "http://127.0.0.1:$port$scim_path" --token "$token" --server-pid "$server_pid" \
    "${bench_args[@]}" "${user_args[@]}" &
bench_pid=$!
status=0
wait "$bench_pid" || status=$?
bench_pid=""
if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "run-polis: the Polis server died during the run; its log's end:" >&2
    tail -n 30 "$log" >&2
fi
exit "$status"
