// The figures of a DEC run: the confusion matrix after the optimal matching, Figure 4 (t-SNE maps of the embedding
// at several epochs) and the gallery of each cluster's nearest images. Figure 3 is drawn by Training (RunFigures.swift).
import Clustering
import Datasets
import Foundation
import Tensor

public enum Figures {
    public static func confusionFigure(assignments: [Int32], labels: [Int32], clusters: Int, classes: Int, title: String) -> String {
        let table = Metrics.contingency(predicted: assignments, labels: labels, clusters: clusters, classes: classes)
        let matching = Metrics.matching(table)
        // Rows: clusters ordered by the label they were matched to.
        let order = (0..<clusters).sorted { (matching[$0] < 0 ? Int.max : matching[$0]) < (matching[$1] < 0 ? Int.max : matching[$1]) }
        let values = order.map { c in table[c].map(Double.init) }
        return SVG.figure(title: "Confusion matrix: \(title)", panels: [
            .heatmap(title: "samples per (cluster, true label)", xLabel: "true label", yLabel: "cluster (matched label)",
                     values: values, rowNames: order.map { "c\($0)→\(matching[$0])" }, columnNames: (0..<classes).map(String.init)),
        ], columns: 1, width: 620, height: 520)
    }
}

// MARK: - Figure 4 and the cluster gallery

extension Figures {
    /// Figure 4: t-SNE maps of the embedding at several epochs, side by side, coloured by the true label.
    /// `maps` holds (epoch, ACC at that epoch or nil, (n, 2) coordinates); `labels` the n labels.
    public static func tsneFigure(maps: [(epoch: Int, accuracy: Double?, coordinates: [Float])], labels: [Int32], classes: Int,
                                  method: String) -> String {
        let panels = maps.map { map -> Panel in
            let points = (0..<labels.count).map { (Double(map.coordinates[2 * $0]), Double(map.coordinates[2 * $0 + 1]), Int(labels[$0])) }
            let title = "epoch \(map.epoch)" + (map.accuracy.map { String(format: " (ACC %.3f)", $0) } ?? "")
            return .scatter(title: title, xLabel: "t-SNE 1", yLabel: "t-SNE 2", points: points, centres: [],
                            classNames: (0..<classes).map { "label \($0)" })
        }
        return SVG.figure(title: "Figure 4: \(method) clusters over epochs (t-SNE of \(labels.count) embedded points, colour = true label)",
                          panels: panels, columns: min(maps.count, 3), width: 460, height: 400)
    }

    /// The `perCluster` images nearest each centre in the embedding, one row per cluster, ordered by matched label.
    public static func galleryFigure(data: DataSet, embedding: [Float], centres: [Float], assignments: [Int32],
                                     clusters: Int, perCluster: Int = 10) -> String? {
        guard data.count > 0, let first = PNG.picture(data, 0) else { return nil }
        let e = centres.count / clusters
        // Without labels each cluster is its own "label".
        let table = data.hasLabels ? Metrics.contingency(predicted: assignments, labels: data.labels, clusters: clusters, classes: data.classCount)
            : Metrics.contingency(predicted: assignments, labels: assignments, clusters: clusters, classes: clusters)
        let matching = Metrics.matching(table)
        let order = (0..<clusters).sorted { (matching[$0] < 0 ? Int.max : matching[$0]) < (matching[$1] < 0 ? Int.max : matching[$1]) }
        // Small images twice their size (pixels kept sharp), large ones brought to at most 96 pixels across.
        let longest = Double(max(first.width, first.height))
        let scale = longest <= 32 ? 2.0 : min(1, 96 / longest)
        let drawnWidth = Double(first.width) * scale, drawnHeight = Double(first.height) * scale
        // The row labels ("c3 → label (n=..., ..%)") set the left margin: about 7 pixels a character at 12 px.
        let longestName = data.hasLabels ? (0..<data.classCount).map { className(data, $0).count }.max() ?? 2 : 3
        let cellWidth = drawnWidth + 4, cell = drawnHeight + 4, left = max(170, Double(longestName + 22) * 7), top = 60.0
        // Files' own images are shown as they are; arrays of grey digits as dark ink on white.
        let asFiles = !data.sampleNames.isEmpty
        // At least wide enough for the title and the caption, however small the images.
        let width = max(left + Double(perCluster) * cellWidth + 20, left + 620), height = top + Double(clusters) * cell + (asFiles ? 60 : 50)
        var s = """
            <?xml version="1.0" encoding="UTF-8"?>
            <svg xmlns="http://www.w3.org/2000/svg" width="\(SVG.f(width))" height="\(SVG.f(height))" viewBox="0 0 \(SVG.f(width)) \(SVG.f(height))" font-family="Helvetica, Arial, sans-serif">
            <title>What each cluster is: the images nearest its centre</title>
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(SVG.f(width / 2))" y="26" text-anchor="middle" font-size="18" font-weight="bold">What each cluster is: the \(perCluster) images nearest its centre</text>
            <text x="\(SVG.f(left))" y="48" font-size="12">x axis: nearest first → · y axis: cluster → matched label (cluster size, share of the matched label)</text>

            """
        for (row, c) in order.enumerated() {
            var members: [(Float, Int)] = []
            for i in 0..<data.count where assignments[i] == Int32(c) {
                var d: Float = 0
                for k in 0..<e { let v = embedding[i * e + k] - centres[c * e + k]; d += v * v }
                members.append((d, i))
            }
            members.sort { $0.0 < $1.0 }
            let y = top + Double(row) * cell
            let size = table[c].reduce(0, +)
            let purity = matching[c] >= 0 && size > 0 ? Double(table[c][matching[c]]) / Double(size) : 0
            let matched = matching[c] < 0 ? "-" : data.hasLabels ? SVG.escape(className(data, matching[c])) : String(matching[c])
            s += "<text x=\"\(SVG.f(left - 8))\" y=\"\(SVG.f(y + cell / 2 + 4))\" text-anchor=\"end\" font-size=\"12\">"
                + "c\(c) → \(matched) (n=\(size), \(String(format: "%.0f%%", purity * 100)))</text>\n"
            for (k, member) in members.prefix(perCluster).enumerated() {
                let i = member.1
                guard let picture = PNG.picture(data, i) else { continue }
                let pixels = asFiles ? picture.pixels : picture.pixels.map { 255 - $0 }
                let uri = PNG.dataURI(PNG.encode(width: picture.width, height: picture.height, channels: picture.channels, pixels: pixels))
                let hover = asFiles ? "<title>\(SVG.escape(data.sampleNames[i]))</title>" : ""
                s += "<image x=\"\(SVG.f(left + Double(k) * cellWidth))\" y=\"\(SVG.f(y))\" width=\"\(SVG.f(drawnWidth))\" height=\"\(SVG.f(drawnHeight))\" "
                    + "style=\"image-rendering:\(scale > 1 ? "pixelated" : "auto")\" href=\"\(uri)\">\(hover)</image>\n"
            }
        }
        if asFiles {
            s += "<text x=\"\(SVG.f(left))\" y=\"\(SVG.f(top + Double(clusters) * cell + 24))\" font-size=\"12\" fill=\"#555\">"
                + "Hover an image for its file (paths relative to \(SVG.escape(data.name))).</text>\n"
        }
        return s + "</svg>\n"
    }

    /// The name of class `index` as the data wrote it (its folder, its CSV label).
    static func className(_ data: DataSet, _ index: Int) -> String {
        index < data.classNames.count ? data.classNames[index] : String(index)
    }
}
