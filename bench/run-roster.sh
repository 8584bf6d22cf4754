#!/usr/bin/env bash
# Benchmarks Roster with roster-bench: builds both in release mode, starts a fresh server
# (a new SQLite directory, or a new PostgreSQL schema), creates an organization and a SCIM
# directory, runs the workload, stops the server and removes its data.
#
# Usage: bench/run-roster.sh sqlite|postgres [roster-bench options...]
#   default options: --sizes 1000,100000 --duration-secs 10 (16 connections)
#   ROSTER_BENCH_BIN: measure this roster binary instead of building the checkout's
#   ROSTER_BENCH_ORGS=16: also compare creates in one organization with creates over 16
#   ROSTER_BENCH_NODES=3 (postgres): three servers on the one database, the connections of
#     every phase spread over them (docs/multi-node.md)
#   PostgreSQL: ROSTER_BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test)
#   PostgreSQL: ROSTER_BENCH_PG=private runs a cluster of the run's own instead (initdb into
#     the run's directory, its own port, removed after), configured as a production server
#     on this machine would be (bench/pg-tuned.conf: shared buffers a quarter of the memory,
#     autovacuum on, durability settings left at their defaults); the machine's cluster keeps
#     the defaults of a CI database (128 MB of shared buffers, autovacuum off)
#   PostgreSQL: after each size is loaded, its tables get the VACUUM ANALYZE that autovacuum
#     would have run by then in production (this machine's PostgreSQL runs with
#     autovacuum = off, for CI); ROSTER_BENCH_VACUUM=0 leaves them as loaded
set -euo pipefail
backend="${1:?usage: $0 sqlite|postgres [roster-bench options...]}"
shift
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
target="${CARGO_TARGET_DIR:-$root/target}"
# ROSTER_BENCH_BIN: a roster binary to measure instead of building this checkout's (A/B runs).
if [[ -z "${ROSTER_BENCH_BIN:-}" ]]; then
    cargo build --release --quiet --bin roster -p roster
fi
cargo build --release --quiet -p roster-bench
bin="${ROSTER_BENCH_BIN:-$target/release/roster}"
work="$(mktemp -d)"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
nodes="${ROSTER_BENCH_NODES:-1}"
if [[ "$nodes" != 1 && "$backend" != postgres ]]; then
    echo "ROSTER_BENCH_NODES needs the postgres backend (SQLite is one node's file)" >&2
    exit 2
fi
port="$(free_port)"
unset ROSTER_DATABASE_URL ROSTER_DATABASE_SCHEMA
export ROSTER_DATA_DIR="$work/data" ROSTER_PUBLIC_URL="http://127.0.0.1:$port"
schema=""
pg_private=""
as_pg=()
pids=()
cleanup() {
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true
    done
    if [[ -n "$pg_private" ]]; then
        "${as_pg[@]}" "$pgbin/pg_ctl" -D "$pg_private/data" -m fast stop >/dev/null 2>&1 || true
    elif [[ -n "$schema" ]]; then
        psql "$ROSTER_DATABASE_URL" -qc "DROP SCHEMA IF EXISTS \"$schema\" CASCADE" >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
if [[ "$backend" == postgres && "${ROSTER_BENCH_PG:-}" == private ]]; then
    pg_private="$work/pg"
    pgbin="$(pg_config --bindir)"
    mkdir -p "$pg_private"
    if [[ "$(id -u)" == 0 ]]; then
        chown postgres: "$work" "$pg_private"
        as_pg=(runuser -u postgres --)
    fi
    "${as_pg[@]}" "$pgbin/initdb" -D "$pg_private/data" -A trust -U postgres >/dev/null
    mem_mb=$(($(awk '/^MemTotal/ {print $2}' /proc/meminfo) / 1024))
    {
        cat "$root/bench/pg-tuned.conf"
        echo "shared_buffers = $((mem_mb / 4))MB"
        echo "effective_cache_size = $((mem_mb * 3 / 4))MB"
    } >>"$pg_private/data/postgresql.conf"
    pg_port="$(free_port)"
    "${as_pg[@]}" "$pgbin/pg_ctl" -D "$pg_private/data" -l "$pg_private/server.log" -w \
        -o "-p $pg_port -k $pg_private -c listen_addresses=127.0.0.1" start >/dev/null
    ROSTER_BENCH_DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/postgres"
fi
if [[ "$backend" == postgres ]]; then
    export ROSTER_DATABASE_URL="${ROSTER_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
    schema="bench_$(date +%s)_$$"
    export ROSTER_DATABASE_SCHEMA="$schema"
fi
"$bin" org create bench >/dev/null
token="$("$bin" directory create --org bench --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"
# ROSTER_BENCH_ORGS=N (N > 1): N-1 more organizations, each with a directory, for the
# --org-tokens measurement (creates in one organization against creates spread over N).
org_tokens=()
for i in $(seq 2 "${ROSTER_BENCH_ORGS:-1}"); do
    "$bin" org create "bench$i" >/dev/null
    org_tokens+=("$("$bin" directory create --org "bench$i" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')")
done
urls=()
for n in $(seq 1 "$nodes"); do
    p="$port"
    ((n == 1)) || p="$(free_port)"
    "$bin" serve --listen "127.0.0.1:$p" >"$work/server-$n.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 100); do
        curl -fsS "http://127.0.0.1:$p/healthz" >/dev/null 2>&1 && break
        sleep 0.1
    done
    urls+=("http://127.0.0.1:$p/scim/v2")
done
args=("$@")
[[ " ${args[*]} " == *" --sizes "* || " ${args[*]} " == *" --users "* ]] || args+=(--sizes 1000,100000)
[[ " ${args[*]} " == *" --duration-secs "* ]] || args+=(--duration-secs 10)
if ((${#org_tokens[@]})); then
    args+=(--org-tokens "$(IFS=,; echo "${org_tokens[*]}")")
fi
# One node: its memory and CPU per request are sampled (with several, one node's would
# mislead).
((nodes > 1)) || args+=(--server-pid "${pids[0]}")
if [[ "$backend" == postgres && "${ROSTER_BENCH_VACUUM:-1}" != 0 ]]; then
    # Only this run's schema: VACUUM takes no schema, so one statement per table (\gexec).
    args+=(--after-load "printf '%s\\n' \"SELECT format('VACUUM (ANALYZE) %I.%I', schemaname, relname) \
FROM pg_stat_user_tables WHERE schemaname = '$schema' \\gexec\" | psql -q '$ROSTER_DATABASE_URL'")
fi
"$target/release/roster-bench" scim --url "$(IFS=,; echo "${urls[*]}")" --token "$token" \
    "${args[@]}"
