// report.html: one self-contained page per run directory (command, machine, final metrics, timings, every figure
// inline), or one page comparing several runs (overlaid curves, a table of final metrics). Built only from the
// files a run leaves (command.json, machine.json, metrics.jsonl, *.svg), so `deepcluster report` can rebuild it.
// The page is well-formed XML (polyglot XHTML) and fetches nothing: it opens from the file system.
import Clustering
import Datasets
import Foundation
import Tensor

public enum RunReport {
    /// What a run directory holds, read back.
    public struct Run {
        public var directory: String
        public var manifest: RunManifest?
        public var machine: [String: Any]
        public var records: [RunRecord]
        public var figures: [(name: String, svg: String)]
        /// config.json: every setting per phase (absent in runs written before it existed).
        public var configuration: [String: [String: String]] = [:]

        public var name: String { (directory as NSString).lastPathComponent }
        public var final: RunRecord? { records.last { $0.phase == "final" } }
        public var command: String {
            manifest.map { (["deepcluster", $0.command] + $0.arguments).joined(separator: " ") } ?? "(no command.json)"
        }
    }

    public static func read(_ directory: String) throws -> Run {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) else {
            throw RunError("\(directory): not a run directory (it does not exist)")
        }
        guard isDirectory.boolValue else { throw RunError("\(directory): not a run directory (it is a file); give the directory a run wrote") }
        let metricsPath = directory + "/metrics.jsonl"
        guard FileManager.default.fileExists(atPath: metricsPath) else {
            throw RunError("\(directory): not a run directory (no metrics.jsonl)")
        }
        let records = RunRecord.read(metricsPath)
        let machine = FileManager.default.contents(atPath: directory + "/machine.json")
            .flatMap { (try? JSONSerialization.jsonObject(with: $0)) as? [String: Any] } ?? [:]
        let order = ["figure1.svg", "figure2.svg", "figure3.svg", "figure4.svg", "confusion.svg", "clusters.svg"]
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".svg") }
            .sorted { (order.firstIndex(of: $0) ?? 99, $0) < (order.firstIndex(of: $1) ?? 99, $1) }
        let figures = names.compactMap { name -> (String, String)? in
            guard let data = FileManager.default.contents(atPath: directory + "/" + name) else { return nil }
            return (name, String(decoding: data, as: UTF8.self))
        }
        var run = Run(directory: directory, manifest: try? RunManifest.read(from: directory), machine: machine,
                      records: records, figures: figures)
        run.configuration = FileManager.default.contents(atPath: directory + "/config.json")
            .flatMap { (try? JSONSerialization.jsonObject(with: $0)) as? [String: [String: String]] } ?? [:]
        return run
    }

    /// Writes `directory/report.html`.
    @discardableResult
    public static func write(directory: String) throws -> String {
        let run = try read(directory)
        let path = directory + "/report.html"
        try AtomicFile.write(Array(page(run).utf8), to: path)
        return path
    }

    /// Writes a page comparing `directories` to `output`.
    public static func compare(directories: [String], output: String) throws {
        let runs = try directories.map(read)
        try AtomicFile.write(Array(comparisonPage(runs).utf8), to: output)
    }

    // MARK: - Pages

    /// What the run kept and why, beside what the start, the fine-tuning and k-means on the input reached.
    static func headline(_ final: RunRecord, kept: String) -> String {
        func acc(_ v: Double?) -> String { v.map { String(format: "%.4f", $0) } ?? "-" }
        func info(_ v: Double?) -> String { v.map { String(format: "%.4f", $0) } ?? "-" }
        var out = "<h2>Result</h2>\n<p>Kept: <b>the \(kept == "start" ? "start" : "fine-tuned result")</b>"
            + (final.reason.map { ": " + h($0) } ?? "") + ". ACC of the kept clustering: \(acc(final.acc)).</p>\n"
        out += table(["clustering", "ACC", "neighbour information (input space)"], [
            ["the start", acc(final.startAcc), info(final.startAgreement)],
            ["fine-tuned (\((final.method ?? "dec").uppercased()))", acc(final.finetunedAcc), info(final.finetunedAgreement)],
            ["k-means on the input", acc(final.kmeansInputAcc), "-"],
        ])
        return out
    }

    /// `--clusters auto`: the criterion against K, the chosen K marked, and what it means.
    static func clusterChoice(_ record: RunRecord) -> String {
        guard let chosen = record.clusters, let tried = record.clustersTried, let values = record.icl, tried.count == values.count,
              !tried.isEmpty, values.allSatisfy(\.isFinite) else { return "" }
        let points = zip(tried, values).map { (Double($0), $1) }
        let low = values.min()!, high = values.max()!
        let figure = SVG.figure(title: "The number of clusters", panels: [
            .line(title: "ICL per point of a Gaussian mixture on the UMAP layout (lower is better)", xLabel: "K", yLabel: "ICL per point",
                  series: [Series(name: "ICL", points: points, markers: true),
                           Series(name: "chosen K = \(chosen)", points: [(Double(chosen), low), (Double(chosen), high)], dashed: true)]),
        ], columns: 1, width: 720, height: 360)
        return "<h2>The number of clusters</h2>\n<p>Chosen from the data (<code>--clusters auto</code>): K = \(chosen), the least "
            + "integrated completed likelihood (ICL: BIC plus twice the posteriors' entropy) of a full-covariance Gaussian mixture on "
            + "the UMAP layout (of the pretrained embedding; in <code>raw</code>, of the input), over K = \(tried.first!) to \(tried.last!)"
            + (record.seconds.map { String(format: " (%.1fs)", $0) } ?? "") + ".</p>\n<div class=\"figure\">" + inline(figure) + "</div>\n"
    }

    static func page(_ run: Run) -> String {
        var body = "<h1>DeepClustering run: \(h(run.name))</h1>\n"
        if let final = run.final, let kept = final.kept { body += headline(final, kept: kept) }
        body += "<h2>Command</h2>\n<pre>\(h(run.command))</pre>\n"
        for phase in run.configuration.keys.sorted() {
            let values = run.configuration[phase]!
            body += "<h2>Configuration: \(h(phase))</h2>\n" + table(["setting", "value"], values.keys.sorted().map { [$0, values[$0]!] })
        }
        body += "<h2>Machine</h2>\n" + table(["", ""], run.machine.keys.sorted().map { [$0, text(run.machine[$0]!)] })
        if let final = run.final {
            body += "<h2>Final metrics</h2>\n" + table(["quantity", "value"], final.fields.filter { $0.name != "phase" }.map { [$0.name, $0.value] })
        }
        body += "<h2>Timings</h2>\n" + timings(run.records)
        let losses = pretrainingLoss(run.records)
        if !losses.isEmpty {
            body += "<h2>Pretraining</h2>\n<div class=\"figure\">" + inline(SVG.figure(title: "Pretraining reconstruction loss", panels: [
                .line(title: "loss per sample over epochs", xLabel: "epoch", yLabel: "MSE per sample",
                      series: [Series(name: "reconstruction", points: losses, markers: losses.count < 30)]),
            ], columns: 1, width: 720, height: 360)) + "</div>\n"
        }
        if let choice = run.records.last(where: { $0.phase == "clusters" }) { body += clusterChoice(choice) }
        for figure in run.figures {
            // A file of the run directory is shown as an image (a data: URI): a browser runs no script inside an SVG
            // loaded that way, whatever the file holds. The heading is its <title>, as text.
            let title = svgTitle(figure.svg) ?? figure.name
            body += "<h2>\(h(title))</h2>\n<div class=\"figure\"><img alt=\"\(h(figure.name))\" "
                + "src=\"data:image/svg+xml;base64,\(Data(figure.svg.utf8).base64EncodedString())\"/></div>\n"
        }
        let epochs = run.records.filter { $0.epoch != nil }
        if !epochs.isEmpty {
            let columns: [(String, (RunRecord) -> Any?)] = [
                ("phase", { $0.phase }), ("epoch", { $0.epoch }), ("loss", { $0.loss }), ("acc", { $0.acc }), ("nmi", { $0.nmi }),
                ("ari", { $0.ari }), ("label_change", { $0.labelChange }), ("seconds", { $0.seconds }),
                ("samples_per_s", { $0.samplesPerS }), ("comm_share", { $0.commShare }),
            ]
            body += "<details><summary>Every epoch (\(epochs.count) records of metrics.jsonl)</summary>\n"
                + table(columns.map(\.0), epochs.map { r in columns.map { column in column.1(r).map(text) ?? "" } }) + "</details>\n"
        }
        return document(title: "DeepClustering: \(run.name)", body: body)
    }

    static func comparisonPage(_ runs: [Run]) -> String {
        var body = "<h1>DeepClustering: \(runs.count) runs compared</h1>\n"
        let rows = runs.map { run -> [String] in
            let f = run.final
            return [run.name, run.command, text(run.machine["ranks"] ?? f?.ranks ?? ""), f?.acc.map(text) ?? "",
                    f?.nmi.map(text) ?? "", f?.ari.map(text) ?? "", f?.totalSeconds.map(text) ?? ""]
        }
        body += "<h2>Final metrics</h2>\n" + table(["run", "command", "ranks", "ACC", "NMI", "ARI", "seconds"], rows)
        var panels: [Panel] = []
        let tuning = runs.flatMap { run in
            Dictionary(grouping: run.records.filter { ["dec", "idec", "dkm"].contains($0.phase) && $0.acc != nil },
                       by: \.phase).sorted { $0.key < $1.key }.map { phase, records in
                Series(name: "\(run.name) \(phase.uppercased())", points: records.compactMap { r in
                    r.epoch.flatMap { e in r.acc.map { (e, $0) } } })
            }
        }
        if !tuning.isEmpty {
            panels.append(.line(title: "Accuracy over fine-tuning", xLabel: "epoch", yLabel: "ACC", series: tuning, yRange: 0...1))
        }
        let pretraining = runs.compactMap { run -> Series? in
            let points = pretrainingLoss(run.records)
            return points.isEmpty ? nil : Series(name: run.name, points: points)
        }
        if !pretraining.isEmpty {
            panels.append(.line(title: "Pretraining reconstruction loss", xLabel: "epoch", yLabel: "MSE per sample", series: pretraining))
        }
        let speed = runs.compactMap { run -> Series? in
            let points = run.records.enumerated().compactMap { (i, r) -> (Double, Double)? in
                guard r.phase == "pretrain", let v = r.samplesPerS else { return nil }
                return (Double(i + 1), v)
            }
            return points.isEmpty ? nil : Series(name: run.name, points: points)
        }
        if !speed.isEmpty {
            let fastest = speed.flatMap { $0.points.map(\.1) }.max() ?? 1
            panels.append(.line(title: "Pretraining throughput", xLabel: "epoch", yLabel: "samples/s", series: speed,
                                yRange: 0...(fastest * 1.05)))
        }
        if !panels.isEmpty {
            body += "<h2>Curves</h2>\n<div class=\"figure\">"
                + inline(SVG.figure(title: "Runs compared", panels: panels, columns: 1, width: 900, height: 380)) + "</div>\n"
        }
        for run in runs {
            body += "<h2>\(h(run.name)): timings</h2>\n" + timings(run.records)
        }
        return document(title: "DeepClustering: runs compared", body: body)
    }

    /// Per phase: epochs, mean seconds per epoch, mean samples/s, the share of step time spent waiting on the allreduce.
    static func timings(_ records: [RunRecord]) -> String {
        var phases: [String] = []
        var groups: [String: [RunRecord]] = [:]
        for r in records where r.epoch != nil {
            if groups[r.phase] == nil { phases.append(r.phase) }
            groups[r.phase, default: []].append(r)
        }
        let rows = phases.map { phase -> [String] in
            let g = groups[phase]!
            func mean(_ value: (RunRecord) -> Double?) -> String {
                let v = g.compactMap(value).filter { $0 > 0 }
                return v.isEmpty ? "" : text(v.reduce(0, +) / Double(v.count))
            }
            let total = g.compactMap(\.seconds).reduce(0, +)
            return [phase, String(g.count), text(total), mean(\.seconds), mean(\.samplesPerS), mean(\.commShare)]
        }
        var out = table(["phase", "records", "seconds", "seconds per record", "samples/s", "allreduce share"], rows)
        if let t = records.last(where: { $0.phase == "tsne" }) {
            out += "<p>t-SNE: \(t.maps.map(text) ?? "") map(s) of \(t.points.map(text) ?? "") points in \(t.seconds.map(text) ?? "")s.</p>\n"
        }
        return out
    }

    /// (epoch, loss) of the pretraining records.
    static func pretrainingLoss(_ records: [RunRecord]) -> [(Double, Double)] {
        records.filter { $0.phase == "pretrain" }.compactMap { r in r.epoch.flatMap { e in r.loss.map { (e, $0) } } }
    }

    // MARK: - HTML pieces

    static func document(title: String, body: String) -> String {
        """
        <!DOCTYPE html>
        <html xmlns="http://www.w3.org/1999/xhtml" lang="en">
        <head>
        <meta charset="utf-8"/>
        <title>\(h(title))</title>
        <style>
        body { font-family: Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1900px; padding: 0 1em; color: #222; }
        table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
        td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; font-size: 13px; }
        th { background: #f0f0f0; }
        pre { background: #f6f6f6; padding: 0.6em; white-space: pre-wrap; }
        .figure { overflow-x: auto; }
        .figure svg { max-width: none; }
        .figure img { max-width: 100%; height: auto; }
        </style>
        </head>
        <body>
        \(body)
        <p style="color:#888">Written by deepcluster from the files of the run directory; rebuild with <code>deepcluster report DIR</code>.</p>
        </body>
        </html>

        """
    }

    static func table(_ header: [String], _ rows: [[String]]) -> String {
        var s = "<table>\n"
        if header.contains(where: { !$0.isEmpty }) { s += "<tr>" + header.map { "<th>\(h($0))</th>" }.joined() + "</tr>\n" }
        for row in rows { s += "<tr>" + row.map { "<td>\(h($0))</td>" }.joined() + "</tr>\n" }
        return s + "</table>\n"
    }

    /// An SVG document without its XML prolog, for inlining.
    static func inline(_ svg: String) -> String {
        guard svg.hasPrefix("<?xml"), let end = svg.range(of: "?>") else { return svg }
        return String(svg[end.upperBound...])
    }

    static func h(_ s: String) -> String { SVG.escape(s) }

    /// The text of an SVG's first <title>, unescaped (the page escapes it again).
    static func svgTitle(_ svg: String) -> String? {
        guard let start = svg.range(of: "<title>"), let end = svg.range(of: "</title>", range: start.upperBound..<svg.endIndex) else { return nil }
        let text = svg[start.upperBound..<end.lowerBound]
            .replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
            .replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&amp;", with: "&")
        return String(text.prefix(300))
    }

    static func text(_ value: Any) -> String { RunRecord.text(value) }
}
