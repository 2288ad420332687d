// What a fine-tuning run keeps on disk: model.bin (the encoder, the centres, the input normalisation: what predict
// needs) and dec-state.bin (the same weights and the RunState to continue exactly: the RNG streams are functions of
// (seed, epoch), so position, sums, optimizer, labels, snapshots and the objective's target are the rest).
import Clustering
import Foundation
import Tensor

extension DECTrainer {
    public static let stateName = "dec-state.bin"

    /// DKM's alpha, or for the other methods alphaStart (model.bin has always held it; predict reads it back).
    var alpha: Float { objective.sharpness ?? options.alphaStart }

    public func saveModel(_ name: String = "model.bin") throws {
        guard context.isRoot else { return }
        var checkpoint = model.checkpoint(metadata: ["kind": "model", "method": options.method.rawValue, "step": String(step),
                                                     "seed": String(options.seed), "alpha": String(alpha)],
                                          includeCentres: true)
        if let transform = data.inputTransform {  // how the data was normalised: predict does the same to new data
            checkpoint.sections["input.shift"] = transform.shift
            checkpoint.sections["input.scale"] = transform.scale
        }
        try checkpoint.write(to: context.path(name))
    }

    public func saveState() throws {
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
