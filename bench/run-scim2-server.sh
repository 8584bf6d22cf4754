#!/usr/bin/env bash
# Run roster-bench against the reference SCIM server `scim2-server` (PyPI), to
# have figures to compare Roster's with.
#
# Installs nothing: `scim2-server` must be on PATH (or named by $SCIM2_SERVER),
# e.g. from `python3 -m venv V && V/bin/pip install scim2-server`.
# roster-bench is taken from $ROSTER_BENCH, else from PATH, else built with
# cargo (release) from this directory.
#
# Usage: bench/run-scim2-server.sh [roster-bench scim options...]
#   e.g. bench/run-scim2-server.sh --json
#        bench/run-scim2-server.sh --sizes 500,5000 --duration-secs 10
#
# The Python server is slow, so unless given, the defaults are smaller than
# roster-bench's: --sizes 200,2000 --duration-secs 5 (connections stay at 16).
# scim2-server answers in HTTP/1.0 and closes every connection, and its listen
# backlog is 5: with 16 connections some SYNs overflow it and are retried after
# 1 s, so its p99 figures are about 1 s. --connections 4 avoids that.
# --url, --token and --server-pid are set by this script. The server listens
# on 127.0.0.1 on a free port, serves under /v2, logs to a temporary file, and
# is stopped when the script exits. The exit status is roster-bench's
# (2 means some requests failed: see the report).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
server_cmd="${SCIM2_SERVER:-scim2-server}"
token="bench-token"

die() { echo "run-scim2-server: $*" >&2; exit 1; }

command -v "$server_cmd" >/dev/null || die "'$server_cmd' not found on PATH (pip install scim2-server)"
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
has_opt --sizes || has_opt --users || bench_args+=(--sizes 200,2000)
has_opt --duration-secs || bench_args+=(--duration-secs 5)
for forbidden in --url --token --server-pid; do
    has_opt "$forbidden" && die "$forbidden is set by this script"
done

# Find roster-bench.
if [[ -n "${ROSTER_BENCH:-}" ]]; then
    bench="$ROSTER_BENCH"
elif command -v roster-bench >/dev/null; then
    bench="$(command -v roster-bench)"
else
    echo "run-scim2-server: building roster-bench (release)" >&2
    cargo build --release --quiet --manifest-path "$here/Cargo.toml" >&2
    target_dir="$(cargo metadata --format-version 1 --no-deps --manifest-path "$here/Cargo.toml" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
    bench="$target_dir/release/roster-bench"
fi
[[ -x "$bench" ]] || die "roster-bench not found at $bench"

# A free port on loopback (the kernel picks it; the race until the server
# binds it is harmless on a quiet machine).
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
log="$(mktemp -t scim2-server.XXXXXX.log)"

server_pid=""
bench_pid=""
stop() {
    if [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null; then
        kill "$1" 2>/dev/null || true
        wait "$1" 2>/dev/null || true
    fi
}
cleanup() {
    stop "$bench_pid"
    stop "$server_pid"
    rm -f "$log"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$server_cmd" --hostname 127.0.0.1 --port "$port" --bearer-token "$token" >"$log" 2>&1 &
server_pid=$!

# Wait until it accepts connections (at most 15 s).
for _ in $(seq 150); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        break
    fi
    kill -0 "$server_pid" 2>/dev/null || { cat "$log" >&2; die "scim2-server exited at start"; }
    sleep 0.1
done
(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || die "scim2-server did not listen on port $port"

version="$(python3 -c 'import importlib.metadata as m; print(m.version("scim2-server"))' 2>/dev/null ||
    "$(dirname "$(command -v "$server_cmd")")/python" -c 'import importlib.metadata as m; print(m.version("scim2-server"))' 2>/dev/null ||
    echo unknown)"
echo "run-scim2-server: scim2-server $version (pid $server_pid) on 127.0.0.1:$port" >&2

# In the background, so that a signal runs the trap at once.
"$bench" scim --url "http://127.0.0.1:$port/v2" --token "$token" --server-pid "$server_pid" \
    "${bench_args[@]}" "${user_args[@]}" &
bench_pid=$!
status=0
wait "$bench_pid" || status=$?
bench_pid=""
exit "$status"
