// Sampler: the batches of DESIGN.md. One permutation per epoch from (seed, epoch), the same on every rank;
// global batch b is perm[bB ..< (b+1)B]; each rank takes its contiguous share of it.
import Tensor

public struct Sampler: Sendable {
    public let count: Int
    public let globalBatch: Int
    public let seed: UInt64
    public let rank: Int
    public let ranks: Int
    public private(set) var permutation: [Int32]

    public init(count: Int, globalBatch: Int, seed: UInt64, rank: Int, ranks: Int) {
        self.count = count
        self.globalBatch = globalBatch
        self.seed = seed
        self.rank = rank
        self.ranks = ranks
        permutation = (0..<Int32(count)).map { $0 }
    }

    /// Batches per epoch; the last one may be short.
    public var batchesPerEpoch: Int { (count + globalBatch - 1) / globalBatch }

    /// Draws the permutation of `epoch` (Fisher-Yates).
    public mutating func shuffle(epoch: Int) {
        var rng = Xoshiro256(seed: seed, stream: 0x5A4D_504C, index: UInt64(epoch))
        for i in 0..<count { permutation[i] = Int32(i) }
        var i = count - 1
        while i > 0 {
            let j = rng.nextInt(below: i + 1)
            permutation.swapAt(i, j)
            i -= 1
        }
    }

    /// Rows of global batch `b`: the whole batch and this rank's share (indices into `permutation`).
    public func batch(_ b: Int) -> (global: Range<Int>, local: Range<Int>) { batch(b, rank: rank, of: ranks) }

    /// Rows of global batch `b` and the share of `rank` among `ranks` (a one-process emulation of several ranks).
    public func batch(_ b: Int, rank: Int, of ranks: Int) -> (global: Range<Int>, local: Range<Int>) {
        let lower = b * globalBatch
        let upper = min(lower + globalBatch, count)
        let share = contiguousShare(total: upper - lower, rank: rank, size: ranks)
        return (lower..<upper, (lower + share.lowerBound)..<(lower + share.upperBound))
    }
}
