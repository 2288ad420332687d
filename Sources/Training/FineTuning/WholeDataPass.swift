// Whole-data passes: every rank embeds its contiguous 1/p slice of the N clean samples and, for Q, assigns it with
// the objective's soft assignment; allgatherv then gives every rank the whole (N, E) embedding or (N, K) Q. No
// optimizer, no sampler: the fine-tuning loop, the cluster starts and predict use it alike.
// E = embedding dims, K = clusters, N = samples.
import Clustering
import Collective
import Datasets
import Tensor

/// The state of the clustering after one whole-data pass.
public struct ClusteringPass: Sendable {
    public var embedding: [Float]      // (N, E)
    public var q: [Float]              // (N, K)
    public var assignments: [Int32]    // (N)
    public var scores: ClusteringScores
}

public final class WholeDataPass {
    let data: DataSet
    let model: Model
    let communicator: Communicator
    /// Clean batches of up to the model's rows, for the encoder.
    let gatherer: BatchGatherer

    public init(data: DataSet, model: Model, communicator: Communicator) {
        self.data = data
        self.model = model
        self.communicator = communicator
        gatherer = BatchGatherer(dims: data.dimension, maxRows: model.autoencoder.maxRows,
                                 transform: FeatureTransform(data: data, normalization: .unit))
    }

    /// This rank's slice of the samples.
    var slice: Range<Int> { contiguousShare(total: data.count, rank: communicator.rank, size: communicator.size) }

    /// Z (N, E): each rank its slice in chunks of the batch buffer, then allgatherv.
    public func embed() throws -> [Float] {
        let e = model.embeddingDimension, slice = self.slice
        var local = [Float](repeating: 0, count: slice.count * e)   // (slice, E)
        var start = slice.lowerBound
        while start < slice.upperBound {
            let end = min(start + gatherer.maxRows, slice.upperBound)
            gatherer.gather(data, indices: ArraySlice(Int32(start)..<Int32(end)))
            let z = model.autoencoder.encode(model.store, input: gatherer.clean, rows: end - start)
            for i in 0..<((end - start) * e) { local[(start - slice.lowerBound) * e + i] = z[i] }
            start = end
        }
        return try gather(local, perSample: e)
    }

    /// Z, Q under `objective`'s soft assignment, the hard assignments (argmax of Q) and their scores.
    public func run(_ objective: FineTuningObjective) throws -> ClusteringPass {
        let k = model.clusters, e = model.embeddingDimension, slice = self.slice
        let z = try embed()
        var localQ = [Float](repeating: 0, count: slice.count * k)  // (slice, K)
        if slice.count > 0 {
            z.withUnsafeBufferPointer { zp in
                localQ.withUnsafeMutableBufferPointer { qp in
                    objective.assign(z: zp.baseAddress! + slice.lowerBound * e, rows: slice.count,
                                     centres: model.store.parameters + model.centres, q: qp.baseAddress!)
                }
            }
        }
        let q = try gather(localQ, perSample: k)
        var assignments = [Int32](repeating: 0, count: data.count)
        for i in 0..<data.count {
            var best = 0
            for j in 1..<k where q[i * k + j] > q[i * k + best] { best = j }
            assignments[i] = Int32(best)
        }
        return ClusteringPass(embedding: z, q: q, assignments: assignments, scores: data.scores(assignments, clusters: k))
    }

    /// Every rank's slice of `width` values per sample, in rank order.
    func gather(_ local: [Float], perSample width: Int) throws -> [Float] {
        let counts = shareCounts(total: data.count, size: communicator.size).map { $0 * width }
        var all = [Float](repeating: 0, count: data.count * width)
        try local.withUnsafeBufferPointer { send in
            try all.withUnsafeMutableBufferPointer { try communicator.allgatherv(send, into: $0, counts: counts) }
        }
        return all
    }
}
