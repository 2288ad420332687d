# Launch/lib/scale-training-table.py RESULTS NAME...: the table, growth exponents and plot of `Launch/scale-study
# --training` from its runs (RESULTS/NAME/metrics.jsonl, RESULTS/NAME.wall; NAME is mnist-N). Stages: loading the
# data, one pretraining epoch, the N2D start (neighbours, graph, layout, k-means, mixture), one DEC epoch's steps and
# its whole-data pass (the last epoch: its seconds less its steps'), k-means on the input (at most 256 MB of it as
# Float: 85,598 MNIST images),
# t-SNE (a fixed 2,000 points). Writes RESULTS/training.svg: seconds against samples, both axes logarithmic.
# Standard library only.
import json
import math
import sys

root, names = sys.argv[1], sys.argv[2:]
stages = ["load", "pretrain epoch", "start", "DEC steps", "DEC pass", "k-means input", "t-SNE"]
colours = ["#8c564b", "#1f77b4", "#2ca02c", "#d62728", "#ff7f0e", "#9467bd", "#7f7f7f", "#222222"]
rows = []
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
rows.sort(key=lambda row: row[0])

print("| samples | " + " | ".join(f"{s} s" for s in stages) + " | whole run s | peak MB/rank | ACC |")
print("|---" * (len(stages) + 4) + "|")
for n, seconds, wall, memory, acc in rows:
    print(f"| {n:,} | " + " | ".join(f"{seconds[s]:.1f}" for s in stages) + f" | {wall:.0f} | {memory:.0f} | {acc:.4f} |")


def exponent(a, b, n0, n1):
    return math.log(max(b, 1e-3) / max(a, 1e-3)) / math.log(n1 / n0)


for (n0, s0, w0, m0, _), (n1, s1, w1, m1, _) in list(zip(rows, rows[1:])) + ([(rows[1], rows[-1])] if len(rows) > 3 else []):
    print(f"exponents {n0} -> {n1}: " + "  ".join(f"{s} {exponent(s0[s], s1[s], n0, n1):.2f}" for s in stages)
          + f"  whole {exponent(w0, w1, n0, n1):.2f}  memory {exponent(m0, m1, n0, n1):.2f}")
if len(rows) < 2:
    sys.exit(0)

width, height, left, right, top, bottom = 680, 420, 70, 150, 30, 50
lines = {s: [(n, seconds[s]) for n, seconds, *_ in rows] for s in stages}
lines["whole run"] = [(n, wall) for n, _, wall, *_ in rows]
values = [max(v, 0.01) for line in lines.values() for _, v in line]
x0, x1 = math.log10(rows[0][0]), math.log10(rows[-1][0])
y0, y1 = math.floor(math.log10(min(values))), math.ceil(math.log10(max(values)))


def px(n):
    return left + (math.log10(n) - x0) / max(x1 - x0, 1e-9) * (width - left - right)


def py(v):
    return height - bottom - (math.log10(max(v, 0.01)) - y0) / max(y1 - y0, 1e-9) * (height - top - bottom)


svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
       f'<rect width="{width}" height="{height}" fill="white"/>',
       f'<text x="{(width - right + left) / 2}" y="18" text-anchor="middle">MNIST grown by augmentation: seconds per stage</text>']
for e in range(y0, y1 + 1):
    y = py(10 ** e)
    svg.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#ddd"/>')
    svg.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{10 ** e:g} s</text>')
for n, *_ in rows:
    x = px(n)
    svg.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{height - bottom}" stroke="#eee"/>')
    svg.append(f'<text x="{x:.1f}" y="{height - bottom + 16}" text-anchor="middle">{n:,}</text>')
svg.append(f'<text x="{(left + width - right) / 2}" y="{height - 12}" text-anchor="middle">samples (log scale)</text>')
for index, (stage, line) in enumerate(lines.items()):
    colour = colours[index % len(colours)]
    points = " ".join(f"{px(n):.1f},{py(v):.1f}" for n, v in line)
    svg.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
    for n, v in line:
        svg.append(f'<circle cx="{px(n):.1f}" cy="{py(v):.1f}" r="3" fill="{colour}"><title>{stage} {n:,}: {v:.1f} s</title></circle>')
    y = top + 20 + 18 * index
    svg.append(f'<line x1="{width - right + 20}" y1="{y - 4}" x2="{width - right + 38}" y2="{y - 4}" stroke="{colour}" stroke-width="2"/>')
    svg.append(f'<text x="{width - right + 42}" y="{y}">{stage}</text>')
svg.append("</svg>")
open(f"{root}/training.svg", "w").write("\n".join(svg) + "\n")
print(f"plot: {root}/training.svg")
