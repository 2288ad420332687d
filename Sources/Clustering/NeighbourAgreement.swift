// How much a clustering follows the data's own neighbourhoods, without labels: for a seeded sample of query points,
// their k nearest neighbours in a fixed space (found once); per clustering, the mutual information (nats) between
// a query's cluster and its neighbours' clusters over all (query, neighbour) pairs. It is highest for a partition
// into many well-filled clusters that no neighbourhood crosses (log K for K equal ones), and it falls both when a
// partition cuts through neighbourhoods and when it merges clusters (a chance-corrected share of same-cluster pairs
// would score a merge of two separate clusters as perfect). A random partition scores about 0, one cluster 0.
// N = samples, D = dims, M = queries, k = neighbours.
import Collective
import Foundation
import Tensor

public struct NeighbourAgreement: Sendable {
    /// The query samples (M), ascending.
    public let queries: [Int32]
    /// Their neighbours (M, k), nearest first, the query itself left out; `none` where no finite distance was left
    /// (values whose squares overflow Float).
    public let neighbours: [Int32]
    public static let none = Int32.max
    public let k: Int

    /// Neighbours of up to `maxQueries` samples (all when N is at most that; else a sample drawn by `seed`) among
    /// all N `points` (N, D). The ranks split the queries and gather the result: every rank holds the same neighbours.
    public init(points: [Float], count n: Int, dims: Int, k wanted: Int = 15, maxQueries: Int = 10_000, seed: UInt64,
                communicator: Communicator, chunk: Int = NeighbourAgreement.chunk) throws {
        try self.init(count: n, dims: dims, k: wanted, maxQueries: maxQueries, seed: seed, communicator: communicator,
                      chunk: chunk) { range, out in
            points.withUnsafeBufferPointer { out.update(from: $0.baseAddress! + range.lowerBound * dims, count: range.count * dims) }
        }
    }

    /// How many points the search makes into Floats at a time (a (chunk, D) buffer), whatever type the samples have.
    public static let chunk = 8192

    /// The same, the points made `chunk` at a time by `rows(range, out)` (writes rows `range`, (R, D), into `out`),
    /// so that samples kept as bytes need no whole Float copy (a million MNIST images: 3.1 GB). Distances by SGEMM,
    /// (a block of queries) x (a chunk of points), every point visited in index order for every query.
    public init(count n: Int, dims: Int, k wanted: Int = 15, maxQueries: Int = 10_000, seed: UInt64,
                communicator: Communicator, chunk wantedChunk: Int = NeighbourAgreement.chunk,
                rows: (Range<Int>, UnsafeMutablePointer<Float>) -> Void) throws {
        let k = min(wanted, n - 1)
        precondition(k >= 1, "neighbour agreement needs at least 2 samples")
        var queries = Array(0..<Int32(n))
        if n > maxQueries {
            var rng = Xoshiro256(seed: seed, stream: 0x4E42_5253, index: 0)
            for i in 0..<maxQueries { queries.swapAt(i, i + Int(rng.next() % UInt64(n - i))) }
            queries = Array(queries[0..<maxQueries]).sorted()
        }
        let m = queries.count
        let mine = contiguousShare(total: m, rank: communicator.rank, size: communicator.size)
        let chunk = max(1, min(wantedChunk, n))
        let block = max(1, min(mine.count, (1 << 24) / chunk))  // (block, chunk) products in at most 64 MB
        var queryRows = [Float](repeating: 0, count: max(mine.count, 1) * dims)  // (M share, D)
        queryRows.withUnsafeMutableBufferPointer { out in
            for (r, q) in queries[mine].enumerated() { rows(Int(q)..<(Int(q) + 1), out.baseAddress! + r * dims) }
        }
        var best = [(Float, Int32)](repeating: (.infinity, NeighbourAgreement.none), count: mine.count * k)
        var points = [Float](repeating: 0, count: chunk * dims)       // (chunk, D)
        var norms = [Float](repeating: 0, count: chunk)               // |x_j|^2
        var products = [Float](repeating: 0, count: block * chunk)    // (block, chunk)
        for first in stride(from: 0, to: mine.isEmpty ? 0 : n, by: chunk) {
            let count = min(chunk, n - first)
            points.withUnsafeMutableBufferPointer { rows(first..<(first + count), $0.baseAddress!) }
            for j in 0..<count { var s: Float = 0; for d in 0..<dims { s += points[j * dims + d] * points[j * dims + d] }; norms[j] = s }
            for start in stride(from: 0, to: mine.count, by: block) {
                let b = min(block, mine.count - start)
                queryRows.withUnsafeBufferPointer { a in
                    points.withUnsafeBufferPointer { p in
                        products.withUnsafeMutableBufferPointer { c in
                            BLAS.gemm(transposeA: false, transposeB: true, m: b, n: count, k: dims, a: a.baseAddress! + start * dims,
                                      lda: dims, b: p.baseAddress!, ldb: dims, c: c.baseAddress!, ldc: count)
                        }
                    }
                }
                for r in 0..<b {
                    let q = Int(queries[mine.lowerBound + start + r]), slots = (start + r) * k
                    for j in 0..<count where first + j != q {
                        let d2 = norms[j] - 2 * products[r * count + j]  // |q|^2 is the same for every j
                        guard d2 < best[slots + k - 1].0 else { continue }
                        var slot = k - 1
                        while slot > 0 && best[slots + slot - 1].0 > d2 { best[slots + slot] = best[slots + slot - 1]; slot -= 1 }
                        best[slots + slot] = (d2, Int32(first + j))
                    }
                }
            }
        }
        let local = best.map { Int($0.1) }
        var all = local
        if communicator.size > 1 {
            all = [Int](repeating: 0, count: m * k)
            let counts = shareCounts(total: m, size: communicator.size).map { $0 * k }
            try local.withUnsafeBufferPointer { send in
                try all.withUnsafeMutableBufferPointer { try communicator.allgatherv(send, into: $0, counts: counts) }
            }
        }
        self.queries = queries
        self.neighbours = all.map { Int32($0) }
        self.k = k
    }

    /// The mutual information (nats) between the cluster of a query and that of each of its neighbours under
    /// `assignments` (N, in 0..<clusters).
    public func score(_ assignments: [Int32], clusters: Int) -> Double {
        var joint = [Double](repeating: 0, count: clusters * clusters)  // (query's cluster, neighbour's cluster)
        var total = 0.0
        for (r, q) in queries.enumerated() {
            let label = Int(assignments[Int(q)])
            for s in 0..<k where neighbours[r * k + s] != NeighbourAgreement.none {
                joint[label * clusters + Int(assignments[Int(neighbours[r * k + s])])] += 1
                total += 1
            }
        }
        guard total > 0 else { return 0 }
        var rows = [Double](repeating: 0, count: clusters), columns = [Double](repeating: 0, count: clusters)
        for a in 0..<clusters {
            for b in 0..<clusters { rows[a] += joint[a * clusters + b] / total; columns[b] += joint[a * clusters + b] / total }
        }
        var information = 0.0
        for a in 0..<clusters {
            for b in 0..<clusters where joint[a * clusters + b] > 0 {
                let p = joint[a * clusters + b] / total
                information += p * log(p / (rows[a] * columns[b]))
            }
        }
        return max(information, 0)
    }
}

/// Out-of-sample assignment by neighbours: a new point takes the cluster most of its k nearest reference points
/// hold (a tie: the nearest point's cluster when it is among the tied, else the lowest tied cluster), and a point
/// equal to a reference point takes that point's (the first such point's, if the reference repeats it).
/// q is the share of the k neighbours in each cluster. How predict assigns with a model that kept an N2D start
/// (whose clusters are a graph's, not the centres' cells). M = points, N = reference points, E = dims.
public enum NeighbourVote {
    public static func assign(points: [Float], count m: Int, reference: [Float], labels: [Int32], dims: Int, clusters: Int,
                              k wanted: Int = 15) -> (q: [Float], assignments: [Int32]) {
        let n = labels.count, k = max(1, min(wanted, n))
        var q = [Float](repeating: 0, count: m * clusters), assignments = [Int32](repeating: 0, count: m)
        let threads = max(1, min(BLAS.threads, m))
        q.withUnsafeMutableBufferPointer { qBuffer in
            assignments.withUnsafeMutableBufferPointer { aBuffer in
                let qOut = SharedPointer(qBuffer.baseAddress!), aOut = SharedPointer(aBuffer.baseAddress!)
                DispatchQueue.concurrentPerform(iterations: threads) { part in
                    var best = [(Float, Int)](repeating: (.infinity, Int.max), count: k)
                    for i in contiguousShare(total: m, rank: part, size: threads) {
                        for s in 0..<k { best[s] = (.infinity, Int.max) }
                        for j in 0..<n {
                            var d2: Float = 0
                            for e in 0..<dims { let v = points[i * dims + e] - reference[j * dims + e]; d2 += v * v }
                            guard d2 < best[k - 1].0 else { continue }
                            var slot = k - 1
                            while slot > 0 && best[slot - 1].0 > d2 { best[slot] = best[slot - 1]; slot -= 1 }
                            best[slot] = (d2, j)
                        }
                        var votes = [Int](repeating: 0, count: clusters)
                        for s in 0..<k where best[s].1 < n { votes[Int(labels[best[s].1])] += 1 }
                        var label = best[0].1 < n ? Int(labels[best[0].1]) : 0  // no finite distance at all: cluster 0
                        if best[0].0 > 0 {
                            for c in 0..<clusters where votes[c] > votes[label] { label = c }
                        }
                        aOut.base[i] = Int32(label)
                        if votes.allSatisfy({ $0 == 0 }) { votes[label] = 1 }
                        let counted = Float(votes.reduce(0, +))
                        for c in 0..<clusters { qOut.base[i * clusters + c] = Float(votes[c]) / counted }
                    }
                }
            }
        }
        return (q, assignments)
    }
}
