// SVG charts for every figure of the project: line charts (several series, legend, reference lines) and
// scatter plots (points coloured by class, centres marked), laid out in a grid with a title. Plain SVG 1.1,
// no scripts, nothing fetched. Not a general plotting library.
import Clustering
import Datasets
import Foundation
import Tensor

public struct Series: Sendable {
    public var name: String
    public var points: [(Double, Double)]
    public var dashed = false
    /// A dot on every point (for series of few measured points, where the line only guides the eye).
    public var markers = false
    public init(name: String, points: [(Double, Double)], dashed: Bool = false, markers: Bool = false) {
        self.name = name
        self.points = points
        self.dashed = dashed
        self.markers = markers
    }
}

public enum Panel: Sendable {
    case line(title: String, xLabel: String, yLabel: String, series: [Series], yRange: ClosedRange<Double>? = nil)
    /// points (x, y, class); centres (x, y); classes name the colour legend.
    case scatter(title: String, xLabel: String, yLabel: String, points: [(Double, Double, Int)], centres: [(Double, Double)],
                 classNames: [String])
    case heatmap(title: String, xLabel: String, yLabel: String, values: [[Double]], rowNames: [String], columnNames: [String])
}

public enum SVG {
    public static let palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                                 "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#ad494a"]

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    static func f(_ x: Double) -> String { String(format: "%.2f", x) }

    /// "Nice" tick values covering [low, high].
    static func ticks(_ low: Double, _ high: Double, count: Int = 5) -> [Double] {
        guard low.isFinite, high.isFinite else { return [] }
        // The span at least a billionth of the values: a flat series at 1e17 would otherwise step by 2e-13, which adding
        // to 1e17 leaves unchanged (a loop without end).
        let span = max(high - low, max(abs(low), abs(high)) * 1e-9, 1e-12)
        let raw = span / Double(count)
        let magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 2.5, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? raw
        var t = ceil(low / step) * step
        var out = [Double]()
        while t <= high + step * 1e-9 && out.count <= 4 * count {
            out.append(abs(t) < step * 1e-9 ? 0 : t)
            t += step
        }
        return out.isEmpty ? [low] : out
    }

    static func label(_ v: Double) -> String {
        if v == 0 { return "0" }
        if abs(v) >= 1e4 || abs(v) < 1e-3 { return String(format: "%.1e", v) }
        return String(format: "%g", (v * 1000).rounded() / 1000)
    }

    /// A figure: panels in a grid of `columns`, each `width` x `height`, under one title.
    public static func figure(title: String, panels: [Panel], columns: Int = 2, width: Double = 460, height: Double = 340) -> String {
        let cols = max(1, min(columns, panels.count))
        let rows = (panels.count + cols - 1) / cols
        let totalWidth = Double(cols) * width, totalHeight = Double(rows) * height + 40
        var s = """
            <?xml version="1.0" encoding="UTF-8"?>
            <svg xmlns="http://www.w3.org/2000/svg" width="\(f(totalWidth))" height="\(f(totalHeight))" viewBox="0 0 \(f(totalWidth)) \(f(totalHeight))" font-family="Helvetica, Arial, sans-serif">
            <title>\(escape(title))</title>
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(f(totalWidth / 2))" y="26" text-anchor="middle" font-size="18" font-weight="bold">\(escape(title))</text>

            """
        for (i, panel) in panels.enumerated() {
            let x = Double(i % cols) * width, y = 40 + Double(i / cols) * height
            s += "<g transform=\"translate(\(f(x)),\(f(y)))\">\n" + render(panel, width: width, height: height) + "</g>\n"
        }
        return s + "</svg>\n"
    }

    static func render(_ panel: Panel, width: Double, height: Double) -> String {
        let left = 64.0, right = 170.0, top = 30.0, bottom = 50.0
        let plotWidth = width - left - right, plotHeight = height - top - bottom
        var s = ""
        func frame(title: String, xLabel: String, yLabel: String, xRange: (Double, Double), yRange: (Double, Double)) {
            s += "<text x=\"\(f(left + plotWidth / 2))\" y=\"18\" text-anchor=\"middle\" font-size=\"14\">\(escape(title))</text>\n"
            s += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(plotWidth))\" height=\"\(f(plotHeight))\" fill=\"none\" stroke=\"#333\"/>\n"
            for t in ticks(xRange.0, xRange.1) {
                let px = left + (t - xRange.0) / max(xRange.1 - xRange.0, 1e-12) * plotWidth
                s += "<line x1=\"\(f(px))\" y1=\"\(f(top + plotHeight))\" x2=\"\(f(px))\" y2=\"\(f(top + plotHeight + 5))\" stroke=\"#333\"/>"
                s += "<text x=\"\(f(px))\" y=\"\(f(top + plotHeight + 18))\" text-anchor=\"middle\" font-size=\"11\">\(label(t))</text>\n"
            }
            for t in ticks(yRange.0, yRange.1) {
                let py = top + plotHeight - (t - yRange.0) / max(yRange.1 - yRange.0, 1e-12) * plotHeight
                s += "<line x1=\"\(f(left - 5))\" y1=\"\(f(py))\" x2=\"\(f(left))\" y2=\"\(f(py))\" stroke=\"#333\"/>"
                s += "<line x1=\"\(f(left))\" y1=\"\(f(py))\" x2=\"\(f(left + plotWidth))\" y2=\"\(f(py))\" stroke=\"#eee\"/>"
                s += "<text x=\"\(f(left - 8))\" y=\"\(f(py + 4))\" text-anchor=\"end\" font-size=\"11\">\(label(t))</text>\n"
            }
            s += "<text x=\"\(f(left + plotWidth / 2))\" y=\"\(f(height - 12))\" text-anchor=\"middle\" font-size=\"12\">\(escape(xLabel))</text>\n"
            s += "<text transform=\"translate(16,\(f(top + plotHeight / 2))) rotate(-90)\" text-anchor=\"middle\" font-size=\"12\">\(escape(yLabel))</text>\n"
        }
        func legend(_ entries: [(String, String, Bool)]) {
            for (i, (name, colour, dashed)) in entries.enumerated() {
                let y = top + 10 + Double(i) * 18, x = left + plotWidth + 10
                s += "<line x1=\"\(f(x))\" y1=\"\(f(y))\" x2=\"\(f(x + 18))\" y2=\"\(f(y))\" stroke=\"\(colour)\" stroke-width=\"3\"\(dashed ? " stroke-dasharray=\"5,3\"" : "")/>"
                s += "<text x=\"\(f(x + 24))\" y=\"\(f(y + 4))\" font-size=\"11\">\(escape(String(name.prefix(24))))</text>\n"
            }
        }
        switch panel {
        case let .line(title, xLabel, yLabel, series, yRange):
            let all = series.flatMap { $0.points }.filter { $0.0.isFinite && $0.1.isFinite }
            var xr = (all.map { $0.0 }.min() ?? 0, all.map { $0.0 }.max() ?? 1)
            var yr = yRange.map { ($0.lowerBound, $0.upperBound) } ?? (all.map { $0.1 }.min() ?? 0, all.map { $0.1 }.max() ?? 1)
            if xr.1 <= xr.0 { xr.1 = xr.0 + 1 }
            if yr.1 <= yr.0 { yr = (yr.0 - 0.5, yr.1 + 0.5) }
            if yRange == nil {  // a data-driven range gets 5% of air above and below, so no curve runs along the frame
                let pad = 0.05 * (yr.1 - yr.0)
                yr = (yr.0 - pad, yr.1 + pad)
            }
            frame(title: title, xLabel: xLabel, yLabel: yLabel, xRange: xr, yRange: yr)
            for (i, series) in series.enumerated() {
                let colour = palette[i % palette.count]
                let path = series.points.filter { $0.0.isFinite && $0.1.isFinite }.map { p in
                    "\(f(left + (p.0 - xr.0) / (xr.1 - xr.0) * plotWidth)),\(f(top + plotHeight - (min(max(p.1, yr.0), yr.1) - yr.0) / (yr.1 - yr.0) * plotHeight))"
                }
                guard !path.isEmpty else { continue }
                s += "<polyline fill=\"none\" stroke=\"\(colour)\" stroke-width=\"2\"\(series.dashed ? " stroke-dasharray=\"6,4\"" : "") points=\"\(path.joined(separator: " "))\"/>\n"
                for point in series.markers ? path : path.count == 1 ? path : [] {
                    let xy = point.split(separator: ",")
                    s += "<circle cx=\"\(xy[0])\" cy=\"\(xy[1])\" r=\"3\" fill=\"\(colour)\"/>\n"
                }
            }
            legend(series.enumerated().map { ($0.element.name, palette[$0.offset % palette.count], $0.element.dashed) })
        case let .scatter(title, xLabel, yLabel, points, centres, classNames):
            let xs = points.map { $0.0 } + centres.map { $0.0 }, ys = points.map { $0.1 } + centres.map { $0.1 }
            var xr = (xs.min() ?? 0, xs.max() ?? 1), yr = (ys.min() ?? 0, ys.max() ?? 1)
            let padX = (xr.1 - xr.0) * 0.05 + 1e-9, padY = (yr.1 - yr.0) * 0.05 + 1e-9
            xr = (xr.0 - padX, xr.1 + padX); yr = (yr.0 - padY, yr.1 + padY)
            frame(title: title, xLabel: xLabel, yLabel: yLabel, xRange: xr, yRange: yr)
            func px(_ x: Double) -> String { f(left + (x - xr.0) / (xr.1 - xr.0) * plotWidth) }
            func py(_ y: Double) -> String { f(top + plotHeight - (y - yr.0) / (yr.1 - yr.0) * plotHeight) }
            for p in points {
                s += "<circle cx=\"\(px(p.0))\" cy=\"\(py(p.1))\" r=\"2\" fill=\"\(palette[p.2 % palette.count])\" fill-opacity=\"0.7\"/>"
            }
            s += "\n"
            for c in centres {
                s += "<path d=\"M\(px(c.0)),\(py(c.1)) m-7,-7 l14,14 m0,-14 l-14,14\" stroke=\"black\" stroke-width=\"3\"/>\n"
            }
            var entries = classNames.enumerated().map { ($0.element, palette[$0.offset % palette.count], false) }
            if !centres.isEmpty { entries.append(("centres (x)", "black", false)) }
            legend(entries)
        case let .heatmap(title, xLabel, yLabel, values, rowNames, columnNames):
            s += "<text x=\"\(f(left + plotWidth / 2))\" y=\"18\" text-anchor=\"middle\" font-size=\"14\">\(escape(title))</text>\n"
            let rows = values.count, cols = values.first?.count ?? 0
            let largest = max(values.flatMap { $0 }.max() ?? 1, 1e-12)
            let cw = plotWidth / Double(max(cols, 1)), ch = plotHeight / Double(max(rows, 1))
            for r in 0..<rows {
                for c in 0..<cols {
                    let v = values[r][c] / largest
                    let shade = Int(255 * (1 - v))
                    s += "<rect x=\"\(f(left + Double(c) * cw))\" y=\"\(f(top + Double(r) * ch))\" width=\"\(f(cw))\" height=\"\(f(ch))\" fill=\"rgb(\(shade),\(shade),255)\" stroke=\"#ccc\"/>"
                    s += "<text x=\"\(f(left + (Double(c) + 0.5) * cw))\" y=\"\(f(top + (Double(r) + 0.5) * ch + 4))\" text-anchor=\"middle\" font-size=\"9\" fill=\"\(v > 0.5 ? "white" : "black")\">\(Int(values[r][c]))</text>"
                }
                s += "<text x=\"\(f(left - 6))\" y=\"\(f(top + (Double(r) + 0.5) * ch + 4))\" text-anchor=\"end\" font-size=\"10\">\(escape(r < rowNames.count ? rowNames[r] : ""))</text>\n"
            }
            for c in 0..<cols {
                s += "<text x=\"\(f(left + (Double(c) + 0.5) * cw))\" y=\"\(f(top + plotHeight + 16))\" text-anchor=\"middle\" font-size=\"10\">\(escape(c < columnNames.count ? columnNames[c] : ""))</text>"
            }
            s += "<text x=\"\(f(left + plotWidth / 2))\" y=\"\(f(height - 12))\" text-anchor=\"middle\" font-size=\"12\">\(escape(xLabel))</text>\n"
            s += "<text transform=\"translate(16,\(f(top + plotHeight / 2))) rotate(-90)\" text-anchor=\"middle\" font-size=\"12\">\(escape(yLabel))</text>\n"
            // Legend: the colour scale.
            s += "<rect x=\"\(f(left + plotWidth + 10))\" y=\"\(f(top + 10))\" width=\"14\" height=\"14\" fill=\"rgb(0,0,255)\"/><text x=\"\(f(left + plotWidth + 30))\" y=\"\(f(top + 21))\" font-size=\"11\">\(Int(largest)) samples</text>"
            s += "<rect x=\"\(f(left + plotWidth + 10))\" y=\"\(f(top + 30))\" width=\"14\" height=\"14\" fill=\"white\" stroke=\"#ccc\"/><text x=\"\(f(left + plotWidth + 30))\" y=\"\(f(top + 41))\" font-size=\"11\">0 samples</text>\n"
        }
        return s
    }
}
