#!/usr/bin/env bash
# A/B: measures two roster binaries in alternating runs of bench/run-roster.sh (A, B, A, B…),
# so that the machine's drift falls on both, and prints the medians per phase: rate, server
# CPU per request, and B/A.
#
# Usage: bench/run-ab.sh <roster A> <roster B> sqlite|postgres <rounds> [roster-bench options...]
#   e.g. bench/run-ab.sh /tmp/roster-base /tmp/roster-head sqlite 3 --sizes 1000 --client-threads 1
# The JSON of every run is kept in $AB_OUT (default: a new directory under /tmp), named
# <round>-<A|B>.json. Build both binaries before: nothing is compiled while it measures
# (run-roster.sh builds roster-bench first, once, if it is stale).
set -euo pipefail
a="${1:?usage: $0 <roster A> <roster B> sqlite|postgres <rounds> [options...]}"
b="${2:?}"
backend="${3:?}"
rounds="${4:?}"
shift 4
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${AB_OUT:-$(mktemp -d /tmp/roster-ab.XXXXXX)}"
mkdir -p "$out"
for r in $(seq 1 "$rounds"); do
    for side in A B; do
        bin="$a"
        [[ "$side" == B ]] && bin="$b"
        echo "round $r/$rounds: $side ($bin)" >&2
        ROSTER_BENCH_BIN="$bin" "$root/bench/run-roster.sh" "$backend" --json "$@" >"$out/$r-$side.json"
    done
done
python3 "$root/bench/ab-summary.py" "$out" "$rounds" A B
