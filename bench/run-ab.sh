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
python3 - "$out" "$rounds" <<'EOF'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
runs = {s: [json.load(open(f"{out}/{r}-{s}.json")) for r in range(1, rounds + 1)] for s in "AB"}
def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None
def fmt(x, unit=""):
    return "—" if x is None else f"{x:,.0f}{unit}"
print(f"medians of {rounds} alternating rounds (results in {out})")
print("| users | phase | A /s (CPU µs/req) | B /s (CPU µs/req) | B/A rate |")
print("|---|---|---|---|---|")
for i, size in enumerate(runs["A"][0]["sizes"]):
    rows = [("creates", lambda s: s["creates"], "per_sec")]
    rows += [(p, (lambda p: lambda s: s["phases"][p])(p), "rps") for p in size["phases"]]
    for name, pick, key in rows:
        m = {}
        for side in "AB":
            stats = [pick(run["sizes"][i]) for run in runs[side]]
            m[side] = (med([x[key] for x in stats]), med([x.get("server_cpu_us_per_req") for x in stats]))
        ratio = m["B"][0] / m["A"][0] if m["A"][0] else None
        print(f"| {size['users']:,} | {name} | {fmt(m['A'][0])} ({fmt(m['A'][1])}) | "
              f"{fmt(m['B'][0])} ({fmt(m['B'][1])}) | {'—' if ratio is None else f'{ratio:.2f}'} |")
errors = sum(run["total_errors"] for side in "AB" for run in runs[side])
print(f"errors in all runs: {errors}")
sys.exit(1 if errors else 0)
EOF
