# Launch/lib/logplot.py: seconds against size, both axes logarithmic, one line per stage, as an SVG file; the plot of
# Launch/lib/scale-table.py and Launch/lib/scale-training-table.py. Standard library only.
import math


def log_plot(path, title, xlabel, lines, colours, slopes_from=None, powers=(1.0, 1.2), width=640, height=400, right=130):
    """Writes `path`: `lines` maps a stage to its [(size, seconds)] in size order, `colours` a stage to its colour.
    `slopes_from` = (size, seconds): dashed reference lines N^power from that point to the largest size."""
    left, top, bottom = 70, 30, 50
    sizes = sorted({n for line in lines.values() for n, _ in line})
    values = [max(v, 0.01) for line in lines.values() for _, v in line]
    if slopes_from:
        values.append(slopes_from[1] * (sizes[-1] / slopes_from[0]) ** max(powers) * 1.5)  # room for the label
    x0, x1 = math.log10(sizes[0]), math.log10(sizes[-1])
    y0, y1 = math.floor(math.log10(min(values))), math.ceil(math.log10(max(values)))

    def px(n):
        return left + (math.log10(n) - x0) / max(x1 - x0, 1e-9) * (width - left - right)

    def py(v):
        return height - bottom - (math.log10(max(v, 0.01)) - y0) / max(y1 - y0, 1e-9) * (height - top - bottom)

    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{(width - right + left) / 2}" y="18" text-anchor="middle">{title}</text>']
    for e in range(y0, y1 + 1):
        y = py(10 ** e)
        svg.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#ddd"/>')
        svg.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{10 ** e:g} s</text>')
    for n in sizes:
        x = px(n)
        svg.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{height - bottom}" stroke="#eee"/>')
        svg.append(f'<text x="{x:.1f}" y="{height - bottom + 16}" text-anchor="middle">{n:,}</text>')
    svg.append(f'<text x="{(left + width - right) / 2}" y="{height - 12}" text-anchor="middle">{xlabel} (log scale)</text>')
    if slopes_from:
        n_first, v_first = slopes_from
        for power, dash in zip(powers, ["4,4", "1,3"]):
            end = v_first * (sizes[-1] / n_first) ** power
            svg.append(f'<line x1="{px(n_first):.1f}" y1="{py(v_first):.1f}" x2="{px(sizes[-1]):.1f}" y2="{py(end):.1f}" '
                       f'stroke="#888" stroke-dasharray="{dash}"/>')
            svg.append(f'<text x="{px(sizes[-1]) - 4:.1f}" y="{py(end) + (14 if power == min(powers) else -6):.1f}" '
                       f'text-anchor="end" fill="#888">N^{power:g} from {n_first:,}</text>')
    for index, (stage, line) in enumerate(lines.items()):
        colour = colours[stage]
        points = " ".join(f"{px(n):.1f},{py(v):.1f}" for n, v in line)
        svg.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for n, v in line:
            svg.append(f'<circle cx="{px(n):.1f}" cy="{py(v):.1f}" r="3" fill="{colour}"><title>{stage} {n:,}: {v:.1f} s</title></circle>')
        y = top + 20 + 18 * index
        svg.append(f'<line x1="{width - right + 20}" y1="{y - 4}" x2="{width - right + 38}" y2="{y - 4}" stroke="{colour}" stroke-width="2"/>')
        svg.append(f'<text x="{width - right + 42}" y="{y}">{stage}</text>')
    svg.append("</svg>")
    open(path, "w").write("\n".join(svg) + "\n")
    print(f"plot: {path}")
