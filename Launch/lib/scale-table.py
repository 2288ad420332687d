# Launch/lib/scale-table.py RESULTS NAME...: Launch/scale-study's table, growth exponents and plot from its runs
# (RESULTS/NAME/metrics.jsonl, RESULTS/NAME.wall). Prints a Markdown table (seconds of each stage of the N2D start,
# the whole run, peak memory of a rank, ACC) and each stage's growth exponent between consecutive sizes of the
# g10-N runs and from the first to the last; writes RESULTS/scale.svg: seconds against points, both axes logarithmic,
# a line per stage, with the N^1 and N^1.2 slopes for reference. Standard library only.
import json
import math
import sys

from logplot import log_plot

root, names = sys.argv[1], sys.argv[2:]
stages = ["neighbours", "graph", "spectral", "sgd", "mixture"]
colours = {"neighbours": "#1f77b4", "graph": "#ff7f0e", "spectral": "#2ca02c", "sgd": "#d62728", "mixture": "#9467bd",
           "whole": "#222222"}
rows = []
together = []  # the ranks' proportional peaks summed (shared pages split among the ranks that map them)
for name in names:
    records = [json.loads(line) for line in open(f"{root}/{name}/metrics.jsonl")]
    n2d = [r for r in records if r.get("phase") == "n2d-input"][-1]
    seconds = dict(n2d["stage_seconds"])
    seconds["sgd"] = seconds["layout"] - seconds.get("spectral", 0)  # the layout's SGD, its spectral start apart
    wall = float(open(f"{root}/{name}.wall").read().split()[-1])
    rows.append((name, seconds, wall, n2d.get("peak_memory_mb", 0), n2d.get("acc", float("nan"))))
    together.append(n2d.get("peak_pss_sum_mb"))

print("| data | " + " | ".join(f"{s} s" for s in stages) + " | whole run s | peak MB/rank | ranks together MB | ACC |")
print("|---" * (len(stages) + 5) + "|")
for (name, seconds, wall, memory, acc), host in zip(rows, together):
    print(f"| {name} | " + " | ".join(f"{seconds[s]:.1f}" for s in stages)
          + f" | {wall:.0f} | {memory:.0f} | {'-' if host is None else f'{host:.0f}'} | {acc:.4f} |")

def family(prefix):  # (N, stage seconds, wall, memory) of the runs named prefix-N, by N
    return sorted(((int(name.split("-")[1]), seconds, wall, memory) for name, seconds, wall, memory, _ in rows
                   if name.startswith(prefix + "-")), key=lambda run: run[0])


def exponent(a, b, n0, n1):
    return math.log(max(b, 1e-3) / max(a, 1e-3)) / math.log(n1 / n0)


for prefix in sorted({name.split("-")[0] for name, *_ in rows if name.startswith("g") and "-" in name}):
    runs = family(prefix)
    pairs = list(zip(runs, runs[1:])) + [(first, runs[-1]) for first in runs[:-2]]  # and every size to the largest
    for (n0, s0, w0, m0), (n1, s1, w1, m1) in pairs:
        print(f"exponents {prefix} {n0} -> {n1}: " + "  ".join(f"{s} {exponent(s0[s], s1[s], n0, n1):.2f}" for s in stages)
              + f"  whole {exponent(w0, w1, n0, n1):.2f}  memory {exponent(m0, m1, n0, n1):.2f}")

sizes = family("g10")  # the plot: the 10-dimensional mixtures
if len(sizes) < 2:
    sys.exit(0)
lines = {s: [(n, seconds[s]) for n, seconds, _, _ in sizes] for s in stages}
lines["whole"] = [(n, wall) for n, _, wall, _ in sizes]
# Reference slopes N^1 and N^1.2 through the whole run at the second size (the first of issue 27's range, 70k).
log_plot(f"{root}/scale.svg", "N2D start on 10 Gaussians in 10 dimensions, seconds per stage", "points", lines, colours,
         slopes_from=lines["whole"][1 if len(sizes) > 2 else 0])
