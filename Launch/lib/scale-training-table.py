# Launch/lib/scale-training-table.py RESULTS NAME...: the table, growth exponents and plot of `Launch/scale-study
# --training` from its runs (RESULTS/NAME/metrics.jsonl, RESULTS/NAME.wall; NAME is mnist-N). Stages: loading the
# data, one pretraining epoch, the N2D start (neighbours, graph, layout, k-means, mixture), one DEC epoch's steps and
# its whole-data pass (the last epoch: its seconds less its steps'), k-means on the input (at most 256 MB of it as
# Float: 85,598 MNIST images),
# t-SNE (a fixed 2,000 points). Then the N2D start's own stages (neighbours, graph, spectral start, the layout's SGD,
# k-means, mixture: its stage_seconds), seconds and exponents. Writes RESULTS/training.svg: seconds against samples, both axes
# logarithmic. Standard library only.
import json
import math
import sys

from logplot import log_plot

root, names = sys.argv[1], sys.argv[2:]
stages = ["load", "pretrain epoch", "start", "DEC steps", "DEC pass", "k-means input", "t-SNE"]
colours = ["#8c564b", "#1f77b4", "#2ca02c", "#d62728", "#ff7f0e", "#9467bd", "#7f7f7f", "#222222"]
start_stages = ["neighbours", "graph", "spectral", "sgd", "kmeans", "mixture"]
rows = []
inside = {}  # by N: the N2D start's stage seconds
together = {}  # by N: the ranks' proportional peaks summed (shared pages split among the ranks that map them)
for name in names:
    records = [json.loads(line) for line in open(f"{root}/{name}/metrics.jsonl")]

    def last(phase):
        return [r for r in records if r.get("phase") == phase][-1]

    final, dec = last("final"), last("dec")
    start = [r for r in records if r.get("phase", "").startswith("n2d") or r.get("phase") == "kmeans-embedding"][-1]
    seconds = {"load": final.get("load_seconds", 0), "pretrain epoch": last("pretrain")["seconds"],
               "start": start["seconds"], "DEC steps": dec["step_seconds"], "DEC pass": dec["seconds"] - dec["step_seconds"],
               "k-means input": last("kmeans-input")["seconds"], "t-SNE": last("tsne")["seconds"]}
    wall = float(open(f"{root}/{name}.wall").read().split()[-1])
    rows.append((int(name.split("-")[-1]), seconds, wall, final.get("peak_memory_mb", 0), final["acc"]))
    together[rows[-1][0]] = final.get("peak_pss_sum_mb")
    if "stage_seconds" in start:
        parts = dict(start["stage_seconds"])
        if "layout" in parts:  # the layout's SGD, its spectral start apart
            parts["sgd"] = parts["layout"] - parts.get("spectral", 0)
        inside[rows[-1][0]] = parts
rows.sort(key=lambda row: row[0])

print("| samples | " + " | ".join(f"{s} s" for s in stages) + " | whole run s | peak MB/rank | ranks together MB | ACC |")
print("|---" * (len(stages) + 5) + "|")
for n, seconds, wall, memory, acc in rows:
    host = together[n]
    print(f"| {n:,} | " + " | ".join(f"{seconds[s]:.1f}" for s in stages)
          + f" | {wall:.0f} | {memory:.0f} | {'-' if host is None else f'{host:.0f}'} | {acc:.4f} |")


def exponent(a, b, n0, n1):
    return math.log(max(b, 1e-3) / max(a, 1e-3)) / math.log(n1 / n0)


for (n0, s0, w0, m0, _), (n1, s1, w1, m1, _) in list(zip(rows, rows[1:])) + ([(rows[1], rows[-1])] if len(rows) > 3 else []):
    print(f"exponents {n0} -> {n1}: " + "  ".join(f"{s} {exponent(s0[s], s1[s], n0, n1):.2f}" for s in stages)
          + f"  whole {exponent(w0, w1, n0, n1):.2f}  memory {exponent(m0, m1, n0, n1):.2f}")
if inside:
    sizes = sorted(inside)
    print("\n| samples | " + " | ".join(f"start: {s} s" for s in start_stages) + " |")
    print("|---" * (len(start_stages) + 1) + "|")
    for n in sizes:
        print(f"| {n:,} | " + " | ".join(f"{inside[n].get(s, 0):.2f}" for s in start_stages) + " |")
    for n0, n1 in list(zip(sizes, sizes[1:])) + ([(sizes[1], sizes[-1])] if len(sizes) > 3 else []):
        print(f"start exponents {n0} -> {n1}: "
              + "  ".join(f"{s} {exponent(inside[n0].get(s, 0), inside[n1].get(s, 0), n0, n1):.2f}" for s in start_stages))
if len(rows) < 2:
    sys.exit(0)

lines = {s: [(n, seconds[s]) for n, seconds, *_ in rows] for s in stages}
lines["whole run"] = [(n, wall) for n, _, wall, *_ in rows]
log_plot(f"{root}/training.svg", "MNIST grown by augmentation: seconds per stage", "samples", lines,
         dict(zip(lines, colours)), width=680, height=420, right=150)
