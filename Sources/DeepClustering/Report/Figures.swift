// The figures of a DEC run: Figure 3 (accuracy and NMI over fine-tuning), the confusion matrix after the optimal
// matching, and Figure 4 (t-SNE of the embedding at several epochs) when t-SNE is available.
import Foundation

public enum Figures {
    public static func writeRunFigures(context: RunContext, data: DataSet, trainer: DECTrainer, kmeansScores: ClusteringScores?,
                                       final: ClusteringPass) throws {
        let name = trainer.options.method.rawValue.uppercased()
        let points = trainer.history.compactMap { entry -> (Double, Double, Double)? in
            guard let epoch = entry["epoch"] as? Double, let acc = entry["acc"] as? Double, let nmi = entry["nmi"] as? Double else { return nil }
            return (epoch, acc, nmi)
        }
        let last = points.last?.0 ?? 1
        let figure3 = SVG.figure(title: "Figure 3: deep clustering accuracy", panels: [
            .line(title: "\(name) over fine-tuning", xLabel: "epoch", yLabel: "score", series: [
                Series(name: "\(name) ACC", points: points.map { ($0.0, $0.1) }),
                Series(name: "\(name) NMI", points: points.map { ($0.0, $0.2) }),
            ] + (kmeansScores.map { k in [Series(name: "k-means ACC", points: [(0, k.accuracy), (max(last, 1), k.accuracy)], dashed: true)] } ?? []),
            yRange: 0...1),
        ], columns: 1, width: 720, height: 400)
        try context.write("figure3.svg", figure3)
        try context.write("confusion.svg", confusionFigure(assignments: final.assignments, labels: data.labels,
                                                           clusters: trainer.options.clusters, classes: data.classCount, title: "\(name) clusters vs labels"))
    }

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
