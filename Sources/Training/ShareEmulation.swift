// ShareEmulation: one process that reproduces the step of p ranks on one host bit for bit (DESIGN.md: "a one-rank
// run that emulates p shards gives the same bits"). For each global batch it computes every rank's contiguous share
// in turn, with that rank's GEMM shapes, keeps each share's gradients, and sums them in rank order as the
// shared-memory reduction does (slot 0, then += slot 1, ...). Run with one thread, as each rank under mpirun is.
// For the exact test of the reduction contract (Tests/multirank.sh) and, with a wrong order, its negative controls;
// its per-share gradients are also the reference that the MPI paths' one-step gradients are bounded against.
import Clustering
import Datasets
import Foundation
import NN
import Report
import Tensor

public struct ShareEmulation: Sendable {
    /// How the shares are combined: the contract's order, or a deliberate mistake the exact test must catch.
    public enum Order: String, Sendable, CaseIterable {
        case rank
        case reverse
        case dropLast = "drop-last"
    }
    public var ranks: Int
    public var order: Order

    public init(ranks: Int, order: Order = .rank) {
        self.ranks = ranks
        self.order = order
    }

    /// The shares in the order they are summed.
    var summationOrder: [Int] {
        switch order {
        case .rank: return Array(0..<ranks)
        case .reverse: return Array((0..<ranks).reversed())
        case .dropLast: return Array(0..<(ranks - 1))
        }
    }
}

/// The per-share gradients of one step (ranks x count), sized once.
final class ShareGradients {
    let emulation: ShareEmulation
    let count: Int
    private let shares: UnsafeMutablePointer<Float>   // (ranks, count)

    init(_ emulation: ShareEmulation, count: Int) {
        precondition(emulation.ranks >= 2, "an emulation needs at least 2 shares")
        self.emulation = emulation
        self.count = count
        shares = .allocate(capacity: emulation.ranks * count)
    }

    deinit { shares.deallocate() }

    /// Keeps share `rank`'s gradients (`range` of `gradients`, just computed).
    func keep(_ gradients: UnsafeMutablePointer<Float>, range: Range<Int>, rank: Int) {
        precondition(range.count <= count)
        (shares + rank * count).update(from: gradients + range.lowerBound, count: range.count)
    }

    /// Writes the sum of the kept shares, in the emulation's order, into `range` of `gradients`.
    func combine(into gradients: UnsafeMutablePointer<Float>, range: Range<Int>) {
        let target = gradients + range.lowerBound, n = range.count
        let order = emulation.summationOrder
        target.update(from: shares + order[0] * count, count: n)
        for q in order.dropFirst() {
            let other = shares + q * count
            for i in 0..<n { target[i] += other[i] }
        }
    }

    /// One emulated step's reduction: `compute(r)` writes share r's gradients into `gradients` for every r in turn;
    /// each is kept, and their sum in the emulation's order replaces `range` of `gradients`.
    func emulate(into gradients: UnsafeMutablePointer<Float>, range: Range<Int>, _ compute: (_ rank: Int) throws -> Void) rethrows {
        for r in 0..<emulation.ranks {
            try compute(r)
            keep(gradients, range: range, rank: r)
        }
        combine(into: gradients, range: range)
    }

    /// The kept shares of `range`, share after share, as float32 in this machine's byte order.
    func write(to path: String, range: Range<Int>) throws {
        var bytes = Data(capacity: emulation.ranks * range.count * 4)
        for r in 0..<emulation.ranks {
            bytes.append(UnsafeBufferPointer(start: shares + r * count, count: range.count))
        }
        try GradientDump.write(bytes, to: path)
    }
}

/// One step's gradients written for the reduction tests: the reduced gradient of a run, the shares of an emulation.
public enum GradientDump {
    /// The store's `range` as float32 in this machine's byte order.
    static func write(_ store: ParameterStore, range: Range<Int>, to path: String) throws {
        try write(Data(buffer: UnsafeBufferPointer(start: store.gradients + range.lowerBound, count: range.count)), to: path)
    }

    static func write(_ bytes: Data, to path: String) throws {
        do { try bytes.write(to: URL(fileURLWithPath: path)) } catch {
            throw RunError("cannot write the gradient dump \(path): \(error.localizedDescription)")
        }
    }

    public static func read(_ path: String) throws -> [Float] {
        guard let bytes = FileManager.default.contents(atPath: path) else { throw RunError("cannot read \(path)") }
        guard bytes.count % 4 == 0 else { throw RunError("\(path): \(bytes.count) bytes is not a whole number of float32") }
        return bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }
}

/// How far a reduced gradient lies from the sum of its shares, against what float32 rounding allows.
public struct ReductionBound: Sendable {
    /// max over elements of |reduced - exact| / bound; at most 1 when the reduction is a sum of the shares.
    public let worstRatio: Double
    public let worstIndex: Int
    public let largestDifference: Double
    public let elements: Int

    /// Any order of summing p floats (a chain, a tree, a ring) rounds at most p - 1 times, so (Higham, Accuracy and
    /// Stability of Numerical Algorithms, 4.2) |fl(sum) - sum| <= gamma_(p-1) * sum |g_r|, gamma_n = n u / (1 - n u),
    /// u = 2^-24. The exact sum is taken in Double; its own rounding (p 2^-53 sum |g_r| at most) is added to the bound.
    public init(shares: [Float], ranks p: Int, reduced: [Float]) throws {
        guard p >= 2, shares.count == p * reduced.count else {
            throw RunError("the shares (\(shares.count) values) are not \(p) times the reduced gradient (\(reduced.count) values)")
        }
        let n = reduced.count
        let u = 0x1p-24, gamma = Double(p - 1) * u / (1 - Double(p - 1) * u), slack = Double(p) * 0x1p-53
        var worst = 0.0, worstIndex = 0, largest = 0.0
        for i in 0..<n {
            var exact = 0.0, magnitude = 0.0
            for r in 0..<p {
                let g = Double(shares[r * n + i])
                exact += g
                magnitude += abs(g)
            }
            let difference = abs(Double(reduced[i]) - exact)
            let bound = (gamma + slack) * magnitude
            let ratio = difference == 0 ? 0 : (bound > 0 && !difference.isNaN ? difference / bound : .infinity)
            if ratio > worst { worst = ratio; worstIndex = i }
            largest = max(largest, difference)
        }
        worstRatio = worst
        self.worstIndex = worstIndex
        largestDifference = largest
        elements = n
    }
}
