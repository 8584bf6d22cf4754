"""Medians of alternating benchmark rounds, side against side.

Usage: ab-summary.py <dir> <rounds> <label A> <label B>
Reads <dir>/<round>-A.json and <dir>/<round>-B.json (roster-bench --json) and prints, per
size and phase, the median rate and server CPU per request of each side, and B/A.
Exits 1 if any run had errors.
"""
import json
import statistics
import sys

out, rounds, label_a, label_b = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
runs = {s: [json.load(open(f"{out}/{r}-{s}.json")) for r in range(1, rounds + 1)] for s in "AB"}


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x):
    return "—" if x is None else f"{x:,.0f}"


print(f"medians of {rounds} alternating rounds (results in {out})")
print(f"| users | phase | {label_a} /s (CPU µs/req) | {label_b} /s (CPU µs/req) | {label_b}/{label_a} rate |")
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
