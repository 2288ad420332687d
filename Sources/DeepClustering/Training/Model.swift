// Model: the ParameterStore of a run, laid out as [decoder | encoder | centres (K, E) | statistics].
// The encoder, the centres and the statistics are one suffix, so DEC reduces them in one allreduce
// without the decoder; pretraining and IDEC reduce everything.
import Collective

public final class Model {
    public let store: ParameterStore
    public let autoencoder: Autoencoder
    public let clusters: Int
    public let centres: Int                 // offset of the centres (K, E)
    public let statistics: Int              // offset of the statistics slots (loss sums)
    public static let statisticsCount = 4

    public init(widths: [Int], clusters: Int, maxRows: Int) {
        var layout = ParameterLayout()
        autoencoder = Autoencoder(widths: widths, maxRows: maxRows, layout: &layout)
        self.clusters = clusters
        centres = layout.reserve(clusters * widths[widths.count - 1])
        statistics = layout.reserve(Model.statisticsCount)
        store = ParameterStore(layout: layout)
    }

    public var embeddingDimension: Int { autoencoder.embeddingDimension }
    public var centreRange: Range<Int> { centres..<(centres + clusters * embeddingDimension) }
    public var statisticsRange: Range<Int> { statistics..<(statistics + Model.statisticsCount) }
    /// The statistics slot that carries the ranks' stop votes (GracefulStop).
    public var stopSlot: Int { statistics + Model.statisticsCount - 1 }
    /// Encoder + centres + statistics: what DEC and DKM reduce.
    public var encoderSuffix: Range<Int> { autoencoder.encoderRange.lowerBound..<store.count }
    /// Everything.
    public var all: Range<Int> { 0..<store.count }

    public var centreValues: [Float] { store.parameterArray(centreRange) }
    public func setCentres(_ values: [Float]) { store.setParameters(values, at: centres) }

    /// Rank 0's parameters everywhere, then every rank checks the checksum.
    public func synchronize(_ communicator: Communicator) throws {
        guard communicator.size > 1 else { return }
        try communicator.broadcast(store.parameterBuffer(0..<statistics), root: 0)
        let sum = Int(bitPattern: UInt(store.checksum(0..<statistics) & 0x7FFF_FFFF_FFFF_FFFF))
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
