// `--clusters auto`: the number of clusters chosen from the data before fine-tuning, on the start's manifold (the
// UMAP layout of the pretrained codes, which the N2D start then reuses), by the ICL of a Gaussian mixture over K
// (ClusterCount); and the clusters that fine-tuning leaves empty, dropped from what the run writes rather than kept
// as ghosts. N = samples, E = embedding dims, K = clusters.
import Clustering
import Collective
import Datasets
import Foundation
import Report
import Tensor

/// The K a run chose, the layout it chose on (N, components), and what the run prints and records of the choice.
public struct ClusterChoice {
    public var clusters: Int
    /// The layout (N, components) chosen on, and what it took.
    public var embedding: UMAP.Embedding
    public var criterion: [(clusters: Int, icl: Double)]
    public var seconds: Double
    var layoutSeconds: Double
    /// The points the choice was made on, and the numbers each component of its mixtures holds.
    var samples: Int, parametersPerComponent: Int

    /// Collective. UMAP of the embedding `z` (N, E) as the N2D start makes it, then the sweep over K.
    public static func choose(_ z: [Float], data: DataSet, embedding e: Int, options: DECOptions,
                              communicator: Communicator) throws -> ClusterChoice {
        guard let count = options.chooseClusters else { preconditionFailure("no choice asked for") }
        return try z.withUnsafeBufferPointer {
            try choose($0, count: data.count, dims: e, umap: ClusterStarts.umapOptions(options), options: count,
                       communicator: communicator)
        }
    }

    /// Collective. UMAP of `points` (N, D), then the sweep over K on the layout.
    public static func choose(_ points: UnsafeBufferPointer<Float>, count n: Int, dims: Int, umap: UMAPOptions,
                              options: ClusterCountOptions, communicator: Communicator) throws -> ClusterChoice {
        let started = Clock.now
        let embedding = try UMAP.embed(points: points, count: n, dims: dims, options: umap, communicator: communicator)
        let layoutSeconds = Clock.now - started
        let chosen = Clock.now
        let choice = try ClusterCount.choose(layout: embedding.layout, count: n, dims: umap.components, options: options, threads: BLAS.threads,
                                             communicator: communicator)
        return ClusterChoice(clusters: choice.clusters, embedding: embedding, criterion: choice.criterion, seconds: Clock.now - chosen,
                             layoutSeconds: layoutSeconds, samples: n,
                             parametersPerComponent: ClusterCount.parametersPerComponent(dims: umap.components))
    }

    public var summary: String {
        let values = criterion.map { String(format: "%d: %.4f%@", $0.clusters, $0.icl, $0.clusters == clusters ? " <" : "") }
        let line = String(format: "clusters chosen: K = %d, the least ICL per point of a Gaussian mixture on the UMAP layout of the embedding "
                          + "(%.1fs, after the layout's %.1fs); K: ICL  %@", clusters, seconds, layoutSeconds, values.joined(separator: "  "))
        var notes: [String] = []
        if atTopOfSweep {
            notes.append("K = \(clusters) is the largest K the sweep tried, and the ICL was still falling there: the data may hold "
                         + "more clusters (--clusters auto:MAX tries up to MAX, at most a tenth of the samples)")
        }
        if samples < Self.fewSamples {
            notes.append("on \(samples) samples the choice is unreliable (the \(parametersPerComponent) numbers of each component are many "
                         + "for so few points; README: When nobody knows K): give --clusters K if you know it")
        }
        return ([line] + notes.map { "note: " + $0 }).joined(separator: "\n")
    }

    /// Below this many samples a run says its choice is unreliable: on tables of 100-1,000 rows the choice was off by
    /// more than one in 4 of 10 (README), from 1,797 rows on within one.
    static let fewSamples = 1000

    /// The least ICL is the last K tried: the sweep stopped at its limit, not past a minimum.
    public var atTopOfSweep: Bool { criterion.count >= 2 && criterion.last?.clusters == clusters }

    public var record: RunRecord {
        var record = RunRecord(phase: "clusters")
        record.clusters = clusters
        record.clustersTried = criterion.map(\.clusters)
        record.icl = criterion.map(\.icl)
        record.seconds = seconds
        record.layoutSeconds = layoutSeconds
        return record
    }

    /// `--clusters auto` in `dec`: the run's model (its centres) waits for K. A resumed run that had chosen reads its K
    /// back; otherwise the autoencoder is pretrained (or loaded, or its pretraining continued) on a model without
    /// centres, K is chosen on its embedding, and that model comes back for the run's model to take the weights from.
    static func resolve(context: RunContext, data: DataSet, pretrain: PretrainOptions, pretrained: String?,
                        options: DECOptions) throws -> (clusters: Int, choice: ClusterChoice?, encoder: Model?) {
        guard let count = options.chooseClusters else { preconditionFailure("no choice asked for") }
        if context.resuming, let known = try chosenBefore(context: context, samples: data.count, largest: count.largest) {
            context.say("resuming with the K = \(known) this run chose")
            return (known, nil, nil)
        }
        let encoder = try DECExperiment.makeModel(pretrain, clusters: 0, options: options, context: context)
        try DECExperiment.loadOrPretrain(context: context, data: data, pretrain: pretrain, pretrained: pretrained, model: encoder)
        try context.checkEpochBudget()
        let z = try WholeDataPass(data: data, model: encoder, communicator: context.communicator).embed()
        let chosen = try choose(z, data: data, embedding: encoder.embeddingDimension, options: options, communicator: context.communicator)
        context.say(chosen.summary)
        context.record(chosen.record)
        return (chosen.clusters, chosen, encoder)
    }

    /// The K a resumed run chose before it stopped, from its dec-state.bin (whose metrics lines include the choice's
    /// record); nil when it stopped before fine-tuning saved a state: the choice is then made again, alike. Checked
    /// against the run's range before use; the file itself is checked in full when the trainer resumes.
    static func chosenBefore(context: RunContext, samples: Int, largest: Int) throws -> Int? {
        guard let checkpoint = try context.loadCheckpoint(DECTrainer.stateName) else { return nil }
        guard (2...max(2, min(largest, samples))).contains(checkpoint.clusters) else {
            throw RunError("\(context.path(DECTrainer.stateName)): holds \(checkpoint.clusters) clusters, not a choice of "
                           + "--clusters auto:\(largest) for \(samples) samples", everyRank: true)
        }
        return checkpoint.clusters
    }
}

/// The clusters a result keeps: those that hold at least one sample, renumbered in order.
public struct ClusterPruning: Sendable {
    /// The old numbers of the clusters kept, ascending.
    public let kept: [Int]
    /// The old numbers of the clusters dropped.
    public let dropped: [Int]
    let renumbered: [Int32]  // old number -> new number, -1 for a dropped one

    /// nil when every one of the `clusters` holds a sample of `assignments`.
    public init?(assignments: [Int32], clusters: Int) {
        var held = [Bool](repeating: false, count: clusters)
        for a in assignments { held[Int(a)] = true }
        guard held.contains(false) else { return nil }
        kept = (0..<clusters).filter { held[$0] }
        dropped = (0..<clusters).filter { !held[$0] }
        var map = [Int32](repeating: -1, count: clusters)
        for (new, old) in kept.enumerated() { map[old] = Int32(new) }
        renumbered = map
    }

    public var clusters: Int { kept.count }

    public func assignments(_ old: [Int32]) -> [Int32] { old.map { renumbered[Int($0)] } }

    /// The kept columns of `q` (N, K), each row renormalised (DEC's Student-t q and the mixture's posteriors are
    /// normalised over the clusters, so this is the q of the kept clusters alone).
    public func q(_ old: [Float], samples n: Int) -> [Float] {
        let k = renumbered.count
        var q = [Float](repeating: 0, count: n * kept.count)
        for i in 0..<n {
            var total: Float = 0
            for c in kept { total += old[i * k + c] }
            for (j, c) in kept.enumerated() { q[i * kept.count + j] = total > 0 ? old[i * k + c] / total : 1 / Float(kept.count) }
        }
        return q
    }

    /// The kept rows of `rows` (K, width).
    public func rows(_ old: [Float], width: Int) -> [Float] {
        kept.flatMap { old[($0 * width)..<(($0 + 1) * width)] }
    }

    public func pass(_ old: ClusteringPass, data: DataSet) -> ClusteringPass {
        let labels = assignments(old.assignments)
        return ClusteringPass(embedding: old.embedding, q: q(old.q, samples: data.count), assignments: labels,
                              scores: data.scores(labels, clusters: clusters))
    }
}
