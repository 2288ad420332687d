// Model: the ParameterStore of a run, laid out as [decoder | encoder | centres (K, E)], and the gradient transport
// that its gradients live in, followed by the step statistics (loss sums, the stop vote): a bucket of their own,
// reduced with the gradients but not parameters. The encoder, the centres and the statistics are one suffix of the
// transport's memory, so DEC reduces them in one range without the decoder; pretraining and the objectives that
// reconstruct (IDEC, DKM) reduce everything. Which ranges a fine-tuning step touches: StepRanges.
import Clustering
import Collective
import CollectiveMPI
import Datasets
import NN
import Report
import Tensor

public final class Model {
    public let store: ParameterStore
    public let autoencoder: Autoencoder
    public let clusters: Int
    public let centres: Int                 // offset of the centres (K, E)
    /// Where the gradients (and after them the statistics) live, and how they are summed over the ranks.
    public let transport: GradientTransport
    /// This rank's step statistics (`statisticsCount` floats after the gradients); after a step, their sums.
    public let statistics: UnsafeMutableBufferPointer<Float>
    public static let statisticsCount = 4

    /// Collective when `communicator` has several ranks (the transport may set up shared memory). `overlap` false:
    /// one blocking allreduce per step.
    public init(widths: [Int], clusters: Int, maxRows: Int, communicator: Communicator, overlap: Bool = true,
                precision: Precision = .float32) throws {
        var layout = ParameterLayout()
        autoencoder = Autoencoder(widths: widths, maxRows: maxRows, layout: &layout, precision: precision)
        self.clusters = clusters
        centres = layout.reserve(clusters * widths[widths.count - 1])
        transport = try GradientTransports.make(communicator, count: layout.count + Model.statisticsCount, overlap: overlap)
        store = ParameterStore(layout: layout, gradients: transport.gradients)
        statistics = UnsafeMutableBufferPointer(start: transport.gradients + layout.count, count: Model.statisticsCount)
    }

    public var embeddingDimension: Int { autoencoder.embeddingDimension }
    public var centreRange: Range<Int> { centres..<(centres + clusters * embeddingDimension) }
    /// The statistics' range in the transport's memory: their bucket.
    public var statisticsRange: Range<Int> { store.count..<(store.count + Model.statisticsCount) }
    /// The statistics slot that carries the ranks' stop votes (GracefulStop).
    public static let stopSlot = statisticsCount - 1
    /// Encoder + centres + statistics: what DEC and DKM reduce.
    public var encoderSuffix: Range<Int> { autoencoder.encoderRange.lowerBound..<statisticsRange.upperBound }
    /// Every parameter.
    public var parameterRange: Range<Int> { 0..<store.count }
    /// Every parameter and the statistics: what pretraining and IDEC reduce.
    public var all: Range<Int> { 0..<statisticsRange.upperBound }

    /// Zeroes this rank's gradients in `range` (of the transport's memory) and its statistics, before a step.
    public func zeroGradients(_ range: Range<Int>) {
        store.zeroGradients(range.lowerBound..<min(range.upperBound, store.count))
        statistics.update(repeating: 0)
    }

    public var centreValues: [Float] { store.parameterArray(centreRange) }
    public func setCentres(_ values: [Float]) { store.setParameters(values, at: centres) }

    /// Rank 0's parameters everywhere, then every rank checks the checksum.
    public func synchronize(_ communicator: Communicator) throws {
        guard communicator.size > 1 else { return }
        try communicator.broadcast(store.parameterBuffer(parameterRange), root: 0)
        let sum = Int(bitPattern: UInt(store.checksum(parameterRange) & 0x7FFF_FFFF_FFFF_FFFF))
        let low = try communicator.allreduce(sum, .min), high = try communicator.allreduce(sum, .max)
        if low != high { throw RunError("parameters differ across ranks after the broadcast") }
    }

    // MARK: - Checkpoints

    public func checkpoint(metadata: [String: String], optimizer: Optimizer? = nil, includeCentres: Bool) -> Checkpoint {
        var sections = ["autoencoder": store.parameterArray(autoencoder.range)]
        if includeCentres { sections["centres"] = centreValues }
        if let optimizer {
            let state = optimizer.state
            sections["optimizer.first"] = state.first
            sections["optimizer.second"] = state.second
        }
        var meta = metadata
        meta["precision"] = autoencoder.precision.rawValue
        if let optimizer { meta["optimizer_step"] = String(optimizer.state.step) }
        return Checkpoint(widths: autoencoder.widths, clusters: includeCentres ? clusters : 0, sections: sections, metadata: meta)
    }

    /// Loads autoencoder weights (and centres when present and wanted) from a checkpoint of the same architecture.
    public func load(_ checkpoint: Checkpoint, path: String, wantCentres: Bool) throws {
        guard checkpoint.widths == autoencoder.widths else {
            throw CheckpointError(path: path, reason: "architecture \(checkpoint.widths.map(String.init).joined(separator: "-")) "
                + "does not match this run's \(autoencoder.widths.map(String.init).joined(separator: "-"))")
        }
        guard let weights = checkpoint.sections["autoencoder"], weights.count == autoencoder.range.count else {
            throw CheckpointError(path: path, reason: "no autoencoder weights of the expected size")
        }
        store.setParameters(weights, at: autoencoder.range.lowerBound)
        if wantCentres {
            guard let centres = checkpoint.sections["centres"], centres.count == centreRange.count else {
                throw CheckpointError(path: path, reason: "no cluster centres for K = \(clusters)")
            }
            setCentres(centres)
        }
    }
}
