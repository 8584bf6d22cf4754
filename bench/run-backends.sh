#!/usr/bin/env bash
# One roster binary on both backends, in alternating runs of bench/run-roster.sh (SQLite,
# PostgreSQL; the next round PostgreSQL first), so that the machine's drift falls on both;
# prints the medians per phase and PostgreSQL's rate as a share of SQLite's.
#
# Usage: bench/run-backends.sh <rounds> [roster-bench options...]
#   e.g. ROSTER_BENCH_PG=private bench/run-backends.sh 3 --sizes 1000,100000 --duration-secs 5
# ROSTER_BENCH_BIN: the binary (default: the checkout's, built once before the first run).
# The JSON of every run is kept in $AB_OUT (default: a new directory under /tmp), named
# <round>-A.json (SQLite) and <round>-B.json (PostgreSQL).
set -euo pipefail
rounds="${1:?usage: $0 <rounds> [options...]}"
shift
root="$(cd "$(dirname "$0")/.." && pwd)"
if [[ -z "${ROSTER_BENCH_BIN:-}" ]]; then
    cargo build --release --quiet --bin roster -p roster --manifest-path "$root/Cargo.toml"
    export ROSTER_BENCH_BIN="${CARGO_TARGET_DIR:-$root/target}/release/roster"
fi
out="${AB_OUT:-$(mktemp -d /tmp/roster-backends.XXXXXX)}"
mkdir -p "$out"
for r in $(seq 1 "$rounds"); do
    order=(A B)
    ((r % 2)) || order=(B A)
    for side in "${order[@]}"; do
        backend=sqlite
        [[ "$side" == B ]] && backend=postgres
        echo "round $r/$rounds: $backend" >&2
        "$root/bench/run-roster.sh" "$backend" --json "$@" >"$out/$r-$side.json"
    done
done
python3 "$root/bench/ab-summary.py" "$out" "$rounds" SQLite PostgreSQL
