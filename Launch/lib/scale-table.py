# Launch/lib/scale-table.py RESULTS NAME...: Launch/scale-study's table, growth exponents and plot from its runs
# (RESULTS/NAME/metrics.jsonl, RESULTS/NAME.wall). Prints a Markdown table (seconds of each stage of the N2D start,
# the whole run, peak memory of a rank, ACC) and each stage's growth exponent between consecutive sizes of the
# g10-N runs and from the first to the last; writes RESULTS/scale.svg: seconds against points, both axes logarithmic,
# a line per stage, with the N^1 and N^1.2 slopes for reference. Standard library only.
import json
import math
import sys

root, names = sys.argv[1], sys.argv[2:]
stages = ["neighbours", "graph", "spectral", "sgd", "mixture"]
colours = {"neighbours": "#1f77b4", "graph": "#ff7f0e", "spectral": "#2ca02c", "sgd": "#d62728", "mixture": "#9467bd",
           "whole": "#222222"}
rows = []
for name in names:
    records = [json.loads(line) for line in open(f"{root}/{name}/metrics.jsonl")]
    n2d = [r for r in records if r.get("phase") == "n2d-input"][-1]
    seconds = dict(n2d["stage_seconds"])
    seconds["sgd"] = seconds["layout"] - seconds.get("spectral", 0)  # the layout's SGD, its spectral start apart
    wall = float(open(f"{root}/{name}.wall").read().split()[-1])
    rows.append((name, seconds, wall, n2d.get("peak_memory_mb", 0), n2d.get("acc", float("nan"))))

print("| data | " + " | ".join(f"{s} s" for s in stages) + " | whole run s | peak MB/rank | ACC |")
print("|---" * (len(stages) + 4) + "|")
for name, seconds, wall, memory, acc in rows:
    print(f"| {name} | " + " | ".join(f"{seconds[s]:.1f}" for s in stages) + f" | {wall:.0f} | {memory:.0f} | {acc:.4f} |")

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
# The plot: x = log10 N, y = log10 seconds, in a 640 x 400 frame.
width, height, left, right, top, bottom = 640, 400, 70, 130, 30, 50
lines = {s: [(n, seconds[s]) for n, seconds, _, _ in sizes] for s in stages}
lines["whole"] = [(n, wall) for n, _, wall, _ in sizes]
values = [max(v, 0.01) for line in lines.values() for _, v in line]
reference_start = lines["whole"][1 if len(sizes) > 2 else 0]
values.append(reference_start[1] * (sizes[-1][0] / reference_start[0]) ** 1.2 * 1.5)  # room for the N^1.2 line's label
x0, x1 = math.log10(sizes[0][0]), math.log10(sizes[-1][0])
y0, y1 = math.floor(math.log10(min(values))), math.ceil(math.log10(max(values)))


def px(n):
    return left + (math.log10(n) - x0) / max(x1 - x0, 1e-9) * (width - left - right)


def py(v):
    return height - bottom - (math.log10(max(v, 0.01)) - y0) / max(y1 - y0, 1e-9) * (height - top - bottom)


svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
       f'<rect width="{width}" height="{height}" fill="white"/>',
       f'<text x="{width / 2}" y="18" text-anchor="middle">N2D start on 10 Gaussians in 10 dimensions, seconds per stage</text>']
for e in range(y0, y1 + 1):
    y = py(10 ** e)
    svg.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#ddd"/>')
    svg.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{10 ** e:g} s</text>')
for n, _, _, _ in sizes:
    x = px(n)
    svg.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{height - bottom}" stroke="#eee"/>')
    svg.append(f'<text x="{x:.1f}" y="{height - bottom + 16}" text-anchor="middle">{n:,}</text>')
svg.append(f'<text x="{(left + width - right) / 2}" y="{height - 12}" text-anchor="middle">points (log scale)</text>')
# Reference slopes N^1 and N^1.2 through the whole run at the second size (the first of issue 27's range, 70k).
n_first, w_first = lines["whole"][1 if len(sizes) > 2 else 0]
for power, dash in [(1.0, "4,4"), (1.2, "1,3")]:
    end = w_first * (sizes[-1][0] / n_first) ** power
    svg.append(f'<line x1="{px(n_first):.1f}" y1="{py(w_first):.1f}" x2="{px(sizes[-1][0]):.1f}" y2="{py(end):.1f}" '
               f'stroke="#888" stroke-dasharray="{dash}"/>')
    svg.append(f'<text x="{px(sizes[-1][0]) - 4:.1f}" y="{py(end) + (14 if power == 1.0 else -6):.1f}" text-anchor="end" fill="#888">N^{power:g} from {n_first:,}</text>')
for index, (stage, line) in enumerate(lines.items()):
    points = " ".join(f"{px(n):.1f},{py(v):.1f}" for n, v in line)
    svg.append(f'<polyline points="{points}" fill="none" stroke="{colours[stage]}" stroke-width="2"/>')
    for n, v in line:
        svg.append(f'<circle cx="{px(n):.1f}" cy="{py(v):.1f}" r="3" fill="{colours[stage]}"><title>{stage} {n:,}: {v:.1f} s</title></circle>')
    y = top + 20 + 18 * index
    svg.append(f'<line x1="{width - right + 30}" y1="{y - 4}" x2="{width - right + 48}" y2="{y - 4}" stroke="{colours[stage]}" stroke-width="2"/>')
    svg.append(f'<text x="{width - right + 52}" y="{y}">{stage}</text>')
svg.append("</svg>")
open(f"{root}/scale.svg", "w").write("\n".join(svg) + "\n")
print(f"plot: {root}/scale.svg")
