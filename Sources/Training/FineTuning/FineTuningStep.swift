// One global batch of fine-tuning, this rank's share of it: gather, encode, zero, the objective's term, the
// statistics, the decoder's reconstruction when the objective keeps it, backward bucket by bucket into the
// transport, finish the reduction, update. The ranges it touches come from the objective once (StepRanges).
// B = batch rows, D = input dims, E = embedding dims, K = clusters.
import CollectiveMPI
import Datasets
import NN
import Tensor

/// What a step touches in the model's memory, derived once from whether the objective reconstructs.
/// DEC trains the encoder and the centres: the decoder's gradients are neither zeroed nor reduced, its weights not
/// updated. IDEC and DKM reconstruct: every gradient is zeroed and reduced, every parameter updated.
public struct StepRanges: Equatable, Sendable {
    /// Gradients zeroed before the step (and the statistics after them).
    public let zeroed: Range<Int>
    /// What the transport sums over the ranks: the same range, bucket by bucket (centres and statistics first).
    public let reduced: Range<Int>
    /// Parameters the optimizer moves.
    public let updated: Range<Int>

    public init(model: Model, reconstructs: Bool) {
        zeroed = reconstructs ? model.all : model.encoderSuffix
        reduced = zeroed
        updated = (reconstructs ? 0 : model.autoencoder.encoderRange.lowerBound)..<model.centreRange.upperBound
    }
}

public final class FineTuningStep {
    let model: Model
    let objective: FineTuningObjective
    let ranges: StepRanges
    public let optimizer: Optimizer
    let gatherer: BatchGatherer
    let augmentation: Augmentation
    let seed: UInt64
    let dZ: UnsafeMutablePointer<Float>   // (B, E): the clustering term's gradient on the embedding
    public let stopAgreement = StopAgreement()
    /// This rank, and the per-share gradients of an emulation of several ranks (tests: the exact 1-vs-p check).
    let rank: Int
    let shares: ShareGradients?
    /// Seconds the last step waited on the reduction.
    public private(set) var exposedSeconds = 0.0

    init(model: Model, objective: FineTuningObjective, data: DataSet, options: DECOptions, rank: Int) {
        self.model = model
        self.objective = objective
        ranges = StepRanges(model: model, reconstructs: objective.reconstructs)
        optimizer = Optimizer(kind: options.optimizer, learningRate: options.learningRate, range: ranges.updated)
        let rows = model.autoencoder.maxRows
        gatherer = BatchGatherer(dims: data.dimension, maxRows: rows, transform: FeatureTransform(data: data, normalization: .unit))
        augmentation = options.augmentation ?? Recipe.augmentation(for: data)
        seed = options.seed
        dZ = .allocate(capacity: rows * model.embeddingDimension)
        self.rank = rank
        let reduced = ranges.reduced.count
        shares = options.emulation.map { ShareGradients($0, count: reduced) }
    }

    deinit { dZ.deallocate() }

    /// The step on a global batch of `batchRows` rows: this rank's share `share(rank)` (or, emulating p ranks, every
    /// share in turn, summed in rank order as the shared-memory reduction sums them), reduced, then the update. Returns
    /// the batch's summed (clustering, reconstruction) losses over all ranks and whether every gradient was finite.
    func callAsFunction(_ data: DataSet, batchRows: Int, epoch: Int, step: Int,
                        share: (_ rank: Int) -> ArraySlice<Int32>) throws -> (cluster: Double, reconstruction: Double, finite: Bool) {
        if let shares {
            try shares.emulate(into: model.transport.gradients, range: ranges.reduced) { r in
                try computeGradients(data, indices: share(r), batchRows: batchRows, epoch: epoch, step: step)
            }
        } else {
            try computeGradients(data, indices: share(rank), batchRows: batchRows, epoch: epoch, step: step)
        }
        stopAgreement.tally(model, step: step)
        let totals = (Double(model.statistics[0]), Double(model.statistics[1]))
        let finite = optimizer.update(model.store)
        return (totals.0, totals.1, finite)
    }

    /// Forward, the terms, and backward into the transport on the rows `indices`, reduced over the ranks.
    func computeGradients(_ data: DataSet, indices: ArraySlice<Int32>, batchRows: Int, epoch: Int, step: Int) throws {
        let rows = indices.count, e = model.embeddingDimension
        let store = model.store, ae = model.autoencoder, transport = model.transport
        let scale = 1 / Float(batchRows)
        gatherer.gather(data, indices: indices)
        let input = gatherer.input(augmentation, seed: seed, epoch: epoch, indices: indices)  // (B, D)
        let z = ae.encode(store, input: input, rows: rows)                                     // (B, E)
        model.zeroGradients(ranges.zeroed)
        transport.beginStep()
        dZ.update(repeating: 0, count: rows * e)
        model.statistics[0] = Float(objective.lossAndGradient(z: z, rows: rows, indices: indices, centres: store.parameters + model.centres,
                                                              scale: scale, dZ: dZ, dCentres: store.gradients + model.centres))
        stopAgreement.vote(model, step: step)
        if objective.reconstructs {
            ae.decode(store, rows: rows)
            model.statistics[1] = Float(MSE.lossAndGradient(reconstruction: ae.reconstruction, target: input,
                                                            dReconstruction: gatherer.scratch, rows: rows, dims: data.dimension,
                                                            scale: scale))
        }
        // The centres and the statistics are complete: their bucket first, then each layer as backward completes it.
        try transport.bucketReady(model.centreRange.lowerBound..<model.statisticsRange.upperBound)
        var dEmbedding = dZ                                                                    // (B, E)
        if objective.reconstructs {
            dEmbedding = try ae.backwardDecoder(store, dReconstruction: gatherer.scratch, rows: rows) { layer in
                try transport.bucketReady(layer.parameterRange)
            }
            for i in 0..<(rows * e) { dEmbedding[i] += dZ[i] }  // both terms reach the embedding
        }
        try ae.backwardEncoder(store, input: input, dEmbedding: dEmbedding, rows: rows) { layer in
            try transport.bucketReady(layer.parameterRange)
        }
        try transport.finish()
        exposedSeconds = transport.exposedSeconds
    }
}
