// Scoring a clustering of a data set: against its labels when it has them, and the collapse check.
import Clustering
import Datasets

extension DataSet {
    /// ACC, NMI and ARI of `predicted` against the labels; `.unknown` without labels.
    public func scores(_ predicted: [Int32], clusters: Int) -> ClusteringScores {
        hasLabels ? Metrics.scores(predicted: predicted, labels: labels, clusters: clusters, classes: classCount) : .unknown
    }

    /// Cluster sizes, and the clusters holding under 1% of the samples (collapsed), for the warning.
    public static func clusterSizes(_ assignments: [Int32], clusters: Int) -> (sizes: [Int], small: [Int]) {
        var sizes = [Int](repeating: 0, count: clusters)
        for a in assignments where Int(a) < clusters { sizes[Int(a)] += 1 }
        let small = (0..<clusters).filter { Double(sizes[$0]) < 0.01 * Double(assignments.count) }
        return (sizes, small)
    }
}
