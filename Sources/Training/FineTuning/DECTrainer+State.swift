// What a fine-tuning run keeps on disk: model.bin (the encoder, the centres, the input normalisation: what predict
// needs) and dec-state.bin (the same weights and the RunState to continue exactly: the RNG streams are functions of
// (seed, epoch), so position, sums, optimizer, labels, snapshots and the objective's target are the rest).
import Clustering
import Collective
import Foundation
import Tensor

extension DECTrainer {
    public static let stateName = "dec-state.bin"

    /// DKM's alpha, or for the other methods alphaStart (model.bin has always held it; predict reads it back).
    var alpha: Float { objective.sharpness ?? options.alphaStart }

    /// `start`: the guard kept the start (the model holds its weights again). An N2D start's clusters are not the
    /// centres' cells, so model.bin then keeps the start's embedding and assignments, and predict assigns a new sample
    /// by its nearest neighbours there (Predictor). `pruning`: the clusters the run dropped are left out (their
    /// centres, and the reference assignments renumbered).
    public func saveModel(_ name: String = "model.bin", start: KeptStart? = nil, pruning: ClusterPruning? = nil) throws {
        guard context.isRoot else { return }
        var metadata = ["kind": "model", "method": options.method.rawValue, "step": String(step), "seed": String(options.seed),
                        "alpha": String(alpha), "result": start == nil ? "fine-tuned" : "start"]
        if let start, start.q != nil { metadata["assign"] = "neighbours" }
        var checkpoint = model.checkpoint(metadata: metadata, includeCentres: true)
        if let start, start.q != nil {
            checkpoint.sections["reference.embedding"] = start.embedding
            checkpoint.sections["reference.assignments"] = start.checkpoint.sections["start.assignments"]
        }
        if let pruning {
            checkpoint.clusters = pruning.clusters
            checkpoint.sections["centres"] = pruning.rows(checkpoint.sections["centres"]!, width: model.embeddingDimension)
            if let reference = checkpoint.sections["reference.assignments"] {
                checkpoint.sections["reference.assignments"] = pruning.assignments(reference.map { Int32($0) }).map(Float.init)
            }
        }
        if let transform = data.inputTransform {  // how the data was normalised: predict does the same to new data
            checkpoint.sections["input.shift"] = transform.shift
            checkpoint.sections["input.scale"] = transform.scale
        }
        try checkpoint.write(to: context.path(name))
    }

    public func saveState() throws {
        lastCheckpoint = Clock.now
        guard context.isRoot else { return }
        var state = RunState()
        (state.epoch, state.step, state.batch) = (completedEpochs, step, batchInEpoch)
        state.sums = intervalSums
        fineTuningStep.optimizer.save(into: &state)
        state.labels = previous
        state.snapshots = snapshots
        state.sections = objective.state
        state.startScores = startScores.map { [$0.accuracy, $0.nmi, $0.ari] }
        state.alpha = objective.sharpness
        var checkpoint = model.checkpoint(metadata: context.checkpointMetadata(), includeCentres: true)
        state.encode(into: &checkpoint, kind: "dec-state", method: options.method.rawValue)
        try checkpoint.write(to: context.path(DECTrainer.stateName))
    }

    /// Continues from the run directory's newest complete dec-state.bin; false when there is none.
    public func resume() throws -> Bool {
        guard let checkpoint = try context.loadCheckpoint(DECTrainer.stateName) else { return false }
        let path = context.path(DECTrainer.stateName)
        let expected = RunState.Expectation(kind: "dec-state", method: options.method.rawValue,
                                            optimizerCount: fineTuningStep.optimizer.range.count,
                                            batchesPerEpoch: sampler.batchesPerEpoch, sumCount: 2, samples: data.count,
                                            clusters: options.clusters, embedding: model.embeddingDimension,
                                            sections: objective.stateLengths(samples: data.count),
                                            metricsLines: try context.agreedMetricsLines())
        let (state, lines) = try context.onEveryRank {
            try model.load(checkpoint, path: path, wantCentres: true)
            return try RunState.decode(checkpoint, path: path, expected: expected)
        }
        kept = try loadStart()  // checked before anything of the run changes
        fineTuningStep.optimizer.restore(state)
        objective.restore(state.sections)
        if let alpha = state.alpha { objective.sharpness = alpha }
        (completedEpochs, step, batchInEpoch) = (state.epoch, state.step, state.batch)
        intervalSums = state.sums
        previous = state.labels
        snapshots = state.snapshots
        startScores = state.startScores.map { ClusteringScores(accuracy: $0[0], nmi: $0[1], ari: $0[2]) }
        context.metrics.truncate(to: lines)
        history = context.metrics.read().filter { $0.phase == options.method.rawValue }
        try model.synchronize(context.communicator)
        return true
    }
}

/// The start as the guard may keep it (start.bin): the model at the start (the pretrained encoder and the start's
/// centres) and the start's clustering: its assignments (N), the embedding they were found on (N, E) and, for N2D,
/// the mixture's posteriors (N, K) that a pass over the model would not give back.
public struct KeptStart: Sendable {
    public var checkpoint: Checkpoint

    init(model: Model, embedding: [Float], start: StartingClusters) {
        checkpoint = model.checkpoint(metadata: ["kind": "start", "start": start.firstPass == nil ? ClusterStart.kmeans.rawValue : ClusterStart.n2d.rawValue],
                                      includeCentres: true)
        checkpoint.sections["start.assignments"] = start.assignments.map(Float.init)
        checkpoint.sections["start.embedding"] = embedding
        if let q = start.firstPass?.q { checkpoint.sections["start.q"] = q }
    }

    init(checked checkpoint: Checkpoint) { self.checkpoint = checkpoint }

    public var assignments: [Int32] { checkpoint.sections["start.assignments"]!.map { Int32($0) } }
    public var embedding: [Float] { checkpoint.sections["start.embedding"]! }
    public var q: [Float]? { checkpoint.sections["start.q"] }
}

extension DECTrainer {
    public static let startName = "start.bin"

    func saveStart() throws {
        guard context.isRoot, let kept else { return }
        try kept.checkpoint.write(to: context.path(DECTrainer.startName))
    }

    /// start.bin of a resumed run, its sections checked against the run; nil when it has none.
    func loadStart() throws -> KeptStart? {
        guard let checkpoint = try context.loadCheckpoint(DECTrainer.startName) else { return nil }
        let path = context.path(DECTrainer.startName), n = data.count, k = options.clusters, e = model.embeddingDimension
        func fail(_ reason: String) -> Error { RunError("\(path): \(reason)", everyRank: true) }
        guard checkpoint.metadata["kind"] == "start" else { throw fail("is not a start (kind \(checkpoint.metadata["kind"] ?? "none"))") }
        guard checkpoint.metadata["start"] == options.start.rawValue else {
            throw fail("holds the start of --start \(checkpoint.metadata["start"].map { "'\($0.prefix(40))'" } ?? "(none named)"); this run's is --start \(options.start.rawValue)")
        }
        guard (checkpoint.sections["start.q"] != nil) == (options.start == .n2d) else {
            throw fail(options.start == .n2d ? "an N2D start without its mixture posteriors (start.q)" : "a k-means start with a start.q section")
        }
        guard let labels = checkpoint.sections["start.assignments"], labels.count == n,
              labels.allSatisfy({ $0 >= 0 && $0 < Float(k) && $0 == $0.rounded() }) else {
            throw fail("its start.assignments are not \(n) cluster numbers in 0..<\(k)")
        }
        guard checkpoint.sections["start.embedding"]?.count == n * e, checkpoint.sections["start.embedding"]!.allSatisfy(\.isFinite) else {
            throw fail("its start.embedding is not \(n) x \(e) finite values")
        }
        if let q = checkpoint.sections["start.q"], q.count != n * k || !q.allSatisfy({ $0 >= 0 && $0 <= 1 }) {
            throw fail("its start.q is not \(n) x \(k) probabilities")
        }
        guard checkpoint.widths == model.autoencoder.widths, checkpoint.clusters == k,
              checkpoint.sections["autoencoder"]?.count == model.autoencoder.range.count,
              checkpoint.sections["centres"]?.count == model.centreRange.count else {
            throw fail("its model is not this run's (\(model.autoencoder.widths.map(String.init).joined(separator: "-")), K = \(k))")
        }
        return KeptStart(checked: checkpoint)
    }

    /// Puts the start's model back (encoder and centres, every rank) and returns the start's clustering as a pass.
    func restoreStart(_ kept: KeptStart) throws -> ClusteringPass {
        try model.load(kept.checkpoint, path: context.path(DECTrainer.startName), wantCentres: true)
        guard let q = kept.q else { return try passes.run(objective) }  // k-means: the centres' cells, as predict assigns
        let labels = kept.assignments
        return ClusteringPass(embedding: kept.embedding, q: q, assignments: labels, scores: data.scores(labels, clusters: options.clusters))
    }
}
