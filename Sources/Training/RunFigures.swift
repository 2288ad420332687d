// Figure 3 of a DEC run (accuracy and NMI over fine-tuning, against k-means) and its confusion matrix, from the
// trainer's records, written into the run directory.
import Clustering
import Datasets
import Foundation
import NN
import Report
import Tensor

extension Figures {
    public static func writeRunFigures(context: RunContext, data: DataSet, trainer: DECTrainer, kmeansScores: ClusteringScores?,
                                       final: ClusteringPass, clusters: Int) throws {
        guard data.hasLabels else { return }  // Figure 3 and the confusion matrix compare with labels
        let name = trainer.options.method.rawValue.uppercased()
        let points = trainer.history.compactMap { entry -> (Double, Double, Double)? in
            guard let epoch = entry.epoch, let acc = entry.acc, let nmi = entry.nmi else { return nil }
            return (epoch, acc, nmi)
        }
        let last = points.last?.0 ?? 1
        let figure3 = SVG.figure(title: "Figure 3: deep clustering accuracy", panels: [
            .line(title: "\(name) over fine-tuning", xLabel: "epoch", yLabel: "score", series: [
                Series(name: "\(name) ACC", points: points.map { ($0.0, $0.1) }),
                Series(name: "\(name) NMI", points: points.map { ($0.0, $0.2) }),
            ] + (kmeansScores.map { k in [Series(name: trainer.options.start == .n2d ? "N2D start ACC" : "k-means ACC", points: [(0, k.accuracy), (max(last, 1), k.accuracy)], dashed: true)] } ?? []),
            yRange: 0...1),
        ], columns: 1, width: 720, height: 400)
        try context.write("figure3.svg", figure3)
        try context.write("confusion.svg", confusionFigure(assignments: final.assignments, labels: data.labels,
                                                           clusters: clusters, classes: data.classCount, title: "\(name) clusters vs labels"))
    }
}
