// RunState: where a trainer stands, as one codec for every trainer (pretraining, fine-tuning): the position (epoch,
// step, batch in the epoch), the sums over the epoch or interval so far (bit-exact), the optimizer's moments, the
// last hard labels, the embedding snapshots and the objective's own sections. Decoding checks every size, index and
// value read from the file against what this run expects before anything uses it, so a crafted or damaged state is
// an error line, never a trap (sections it does not know are left alone). Not the weights: Model.load reads those from the same checkpoint.
import Foundation
import NN
import Tensor

public struct RunState {
    /// Epochs completed, steps taken, and batches of the current epoch done (non-zero after a stop mid-epoch).
    public var epoch = 0, step = 0, batch = 0
    /// Running sums of the current epoch or interval (loss, seconds, ...), kept as their bits.
    public var sums: [Double] = []
    public var optimizerStep = 0
    public var first: [Float] = [], second: [Float] = []
    /// The hard labels at the last target update (N), if any.
    public var labels: [Int32]?
    /// Embeddings kept for Figure 4, by epoch (N, E) each.
    public var snapshots: [(epoch: Int, embedding: [Float])] = []
    /// The objective's own sections (DEC's target P), by name.
    public var sections: [String: [Float]] = [:]
    /// The start's scores (ACC, NMI, ARI), kept for the figures of a resumed run.
    public var startScores: [Double]?
    /// DKM's sharpness at the checkpoint.
    public var alpha: Float?

    public init() {}

    /// What this run expects of a state: every value read back is checked against it.
    public struct Expectation {
        public var kind: String
        public var method: String?
        public var optimizerCount: Int
        public var batchesPerEpoch: Int
        public var sumCount: Int
        public var samples: Int
        public var clusters = 0
        public var embedding = 0
        /// The objective's sections and their lengths.
        public var sections: [String: Int] = [:]
        /// Complete lines of metrics.jsonl now: a checkpoint cannot have seen more.
        public var metricsLines: Int
    }

    static let largestPosition = 1 << 40

    // MARK: - Encoding

    /// The state's metadata and sections, added to a checkpoint that already holds the weights.
    public func encode(into checkpoint: inout Checkpoint, kind: String, method: String?) {
        var meta = checkpoint.metadata
        meta["kind"] = kind
        if let method { meta["method"] = method }
        meta["epoch"] = String(epoch)
        meta["step"] = String(step)
        meta["batch"] = String(batch)
        meta["optimizer_step"] = String(optimizerStep)
        meta["sums"] = RunState.bits(sums)
        if let startScores { meta["start_scores"] = RunState.bits(startScores) }
        if let alpha { meta["alpha"] = String(alpha.bitPattern, radix: 16) }
        checkpoint.metadata = meta
        checkpoint.sections["optimizer.first"] = first
        checkpoint.sections["optimizer.second"] = second
        if let labels { checkpoint.sections["labels"] = labels.map(Float.init) }
        for (epoch, embedding) in snapshots { checkpoint.sections["snapshot.\(epoch)"] = embedding }
        for (name, values) in sections { checkpoint.sections["objective.\(name)"] = values }
    }

    static func bits(_ values: [Double]) -> String { values.map { String($0.bitPattern, radix: 16) }.joined(separator: " ") }

    // MARK: - Decoding

    /// The state in `checkpoint`, every field checked against `expected`; the error names the file and the field.
    public static func decode(_ checkpoint: Checkpoint, path: String, expected: Expectation) throws -> (RunState, metricsLines: Int) {
        func fail(_ reason: String) -> CheckpointError { CheckpointError(path: path, reason: reason) }
        let meta = checkpoint.metadata
        guard meta["kind"] == expected.kind else {
            throw fail("holds a state of kind '\(meta["kind"] ?? "")', not the \(expected.kind) state of this run")
        }
        if let method = expected.method, meta["method"] != method {
            throw fail("holds the state of a run of method '\(meta["method"] ?? "")', not of this \(method) run")
        }
        func integer(_ key: String, in range: ClosedRange<Int>) throws -> Int {
            guard let text = meta[key] else { throw fail("its metadata has no \(key)") }
            guard let value = Int(text), range.contains(value) else {
                throw fail("\(key) \(text.prefix(40)) is not a whole number in \(range.lowerBound)...\(range.upperBound)")
            }
            return value
        }
        func doubles(_ key: String, count: Int) throws -> [Double]? {
            guard let text = meta[key] else { return nil }
            let parts = text.split(separator: " ", omittingEmptySubsequences: false)
            let values = parts.compactMap { UInt64($0, radix: 16).map(Double.init(bitPattern:)) }
            guard parts.count == count, values.count == count, values.allSatisfy(\.isFinite) else {
                throw fail("\(key) must be \(count) finite values (as bits); it is \(text.prefix(60))")
            }
            return values
        }
        func section(_ name: String, count: Int) throws -> [Float] {
            guard let values = checkpoint.sections[name] else { throw fail("section \(name) is missing") }
            guard values.count == count else { throw fail("section \(name) holds \(values.count) values; this run needs \(count)") }
            return values
        }
        var state = RunState()
        let batches = expected.batchesPerEpoch
        state.epoch = try integer("epoch", in: 0...largestPosition)
        state.batch = try integer("batch", in: 0...(batches - 1))
        state.step = try integer("step", in: 0...(state.epoch + 1) * batches)
        state.optimizerStep = try integer("optimizer_step", in: 0...state.step)
        let lines = try integer("metrics_lines", in: 0...expected.metricsLines)
        state.sums = try doubles("sums", count: expected.sumCount) ?? []
        if state.sums.isEmpty && expected.sumCount > 0 { throw fail("its metadata has no sums") }
        state.startScores = try doubles("start_scores", count: 3)
        if let text = meta["alpha"] {
            guard let bits = UInt32(text, radix: 16), Float(bitPattern: bits).isFinite, Float(bitPattern: bits) > 0 else {
                throw fail("alpha \(text.prefix(40)) is not a positive number (as bits)")
            }
            state.alpha = Float(bitPattern: bits)
        }
        state.first = try section("optimizer.first", count: expected.optimizerCount)
        state.second = try section("optimizer.second", count: expected.optimizerCount)
        if let labels = checkpoint.sections["labels"] {
            guard labels.count == expected.samples else {
                throw fail("section labels holds \(labels.count) values; the data has \(expected.samples) samples")
            }
            guard labels.allSatisfy({ $0 >= 0 && $0 < Float(expected.clusters) && $0.rounded() == $0 }) else {
                throw fail("section labels holds values that are not clusters 0...\(expected.clusters - 1)")
            }
            state.labels = labels.map { Int32($0) }
        }
        for name in checkpoint.sections.keys.sorted() where name.hasPrefix("snapshot.") {
            guard let epoch = Int(name.dropFirst("snapshot.".count)), (0...largestPosition).contains(epoch) else {
                throw fail("section \(name) does not name an epoch")
            }
            state.snapshots.append((epoch, try section(name, count: expected.samples * expected.embedding)))
        }
        state.snapshots.sort { $0.epoch < $1.epoch }
        for (name, count) in expected.sections {
            let values = try section("objective.\(name)", count: count)
            guard values.allSatisfy({ (0...1).contains($0) }) else {
                throw fail("section objective.\(name) holds values outside [0, 1]; it is a distribution over the clusters")
            }
            state.sections[name] = values
        }
        return (state, lines)
    }
}

extension Optimizer {
    /// The optimizer's part of a run state.
    func save(into state: inout RunState) {
        let saved = self.state
        (state.optimizerStep, state.first, state.second) = (saved.step, saved.first, saved.second)
    }

    /// Restores from a decoded state (its lengths are checked against `range` by the decoder).
    func restore(_ state: RunState) { restore(step: state.optimizerStep, first: state.first, second: state.second) }
}
