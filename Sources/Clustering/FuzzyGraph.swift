// UMAP's fuzzy simplicial set over the neighbour lists, and the graph renumbered in breadth-first order, split over
// the ranks and threads by rows (RowChunks). A row's memberships depend on its own list only, and a row's edges of
// the union on the lists and the memberships only, so the graph is the same bits on any split, and the same as the
// serial loops these replaced (Tests/TestSupport/GraphReference.swift), which every rank ran whole: a million embedded
// points on 2 ranks, 14.5-20.5 s then and 5.6-8.5 s now (four runs of each, one binary after the other). N = points,
// k = neighbours (the point itself first).
import Collective
import Foundation
import Tensor

extension UMAP {
    /// umap-learn's smooth_knn_dist and fuzzy_simplicial_set (local connectivity 1, set_op_mix_ratio 1): each point's
    /// memberships exp(-(d - rho) / sigma) with rho its nearest neighbour's distance and sigma such that they sum to
    /// log2(k); then the fuzzy union W = A + A^T - A * A^T, both directions of each edge, each row's edges by tail.
    /// The ranks and threads take rows (chunks of `chunkRows`); the memberships and then the rows' edges are gathered.
    /// Collective.
    static func fuzzyGraph(indices: [Int], distances: [Float], count n: Int, k: Int, threads: Int = BLAS.threads,
                           chunkRows: Int = RowChunks.chunkRows, communicator: Communicator) throws -> EdgeRows {
        precondition(k >= 2, "fuzzyGraph: k counts the point itself and at least one neighbour")
        precondition(indices.count >= n * k && distances.count >= n * k, "fuzzyGraph: fewer lists than \(n) x \(k)")
        guard n > 0 else { return EdgeRows(rowStart: [0], tails: [], weights: []) }
        let rows = RowChunks(count: n, chunkRows: chunkRows, communicator: communicator, threads: threads)
        let mine = rows.myRows
        let target = log2(Double(k))
        let meanOfAll = distances.reduce(0.0) { $0 + Double($1) } / Double(distances.count)
        var membership = [Float](repeating: 0, count: n * k)  // (N, k); slot 0, the point itself, stays 0
        distances.withUnsafeBufferPointer { db in
            membership.withUnsafeMutableBufferPointer { mb in
                let distances = SharedPointer(db.baseAddress!), membership = SharedPointer(mb.baseAddress!)
                rows.forEachChunk { chunk in
                    for i in chunk {
                        smoothMemberships(distances.base + i * k, k: k, target: target, meanOfAll: meanOfAll,
                                          into: membership.base + i * k)
                    }
                }
            }
        }
        try rows.gather(&membership, width: k)
        // The lists that name each of this rank's points (each u whose list names it, u in order) and their memberships.
        var listedStart = [Int](repeating: 0, count: mine.count + 1), listedBy: [Int32] = [], listedWeight: [Float] = []
        indices.withUnsafeBufferPointer { indices in
            /// Where j sits among this rank's points, or nil (one unsigned comparison: the scans read every list).
            @inline(__always) func local(_ j: Int) -> Int? {
                UInt(bitPattern: j - mine.lowerBound) < UInt(mine.count) ? j - mine.lowerBound : nil
            }
            listedStart.withUnsafeMutableBufferPointer { starts in
                for u in 0..<n {
                    for slot in 1..<k { if let at = local(indices[u * k + slot]), indices[u * k + slot] != u { starts[at + 1] += 1 } }
                }
                for r in 0..<mine.count { starts[r + 1] += starts[r] }
            }
            listedBy = [Int32](repeating: 0, count: listedStart[mine.count])
            listedWeight = [Float](repeating: 0, count: listedStart[mine.count])
            var next = listedStart
            next.withUnsafeMutableBufferPointer { next in
                listedBy.withUnsafeMutableBufferPointer { by in
                    listedWeight.withUnsafeMutableBufferPointer { weight in
                        membership.withUnsafeBufferPointer { membership in
                            for u in 0..<n {
                                for slot in 1..<k {
                                    guard let at = local(indices[u * k + slot]), indices[u * k + slot] != u else { continue }
                                    by[next[at]] = Int32(u)
                                    weight[next[at]] = membership[u * k + slot]
                                    next[at] += 1
                                }
                            }
                        }
                    }
                }
            }
        }
        // This rank's rows' edges, chunk by chunk (each chunk's tails and weights), and each row's count.
        let myChunks = rows.mine
        var counts = [Int](repeating: 0, count: n)
        var parts = [(tails: [Int32], weights: [Float])](repeating: ([], []), count: myChunks.count)
        indices.withUnsafeBufferPointer { ib in
            membership.withUnsafeBufferPointer { mb in
                counts.withUnsafeMutableBufferPointer { cb in
                    parts.withUnsafeMutableBufferPointer { pb in
                        guard let partsBase = pb.baseAddress else { return }  // no rows on this rank
                        let indices = SharedPointer(ib.baseAddress!), membership = SharedPointer(mb.baseAddress!)
                        let counts = SharedPointer(cb.baseAddress!), parts = SharedPointer(partsBase)
                        rows.forEachChunk { chunk in
                            parts.base[chunk.lowerBound / rows.chunkRows - myChunks.lowerBound] =
                                unionRows(chunk, k: k, indices: indices.base, membership: membership.base, listedStart: listedStart,
                                          listedBy: listedBy, listedWeight: listedWeight, firstRow: mine.lowerBound,
                                          counts: counts.base)
                        }
                    }
                }
            }
        }
        try rows.gather(&counts, width: 1)
        var rowStart = [Int](repeating: 0, count: n + 1)
        for i in 0..<n { rowStart[i + 1] = rowStart[i] + counts[i] }
        var graph = EdgeRows(rowStart: rowStart, tails: [Int32](repeating: 0, count: rowStart[n]),
                             weights: [Float](repeating: 0, count: rowStart[n]))
        var at = rowStart[mine.lowerBound]
        for part in parts {
            graph.tails.replaceSubrange(at..<(at + part.tails.count), with: part.tails)
            graph.weights.replaceSubrange(at..<(at + part.weights.count), with: part.weights)
            at += part.tails.count
        }
        try rows.gather(&graph.tails, rowStart: rowStart)
        try rows.gather(&graph.weights, rowStart: rowStart)
        return graph
    }

    /// A graph's edges by head, as the layout's passes read them: row i's at rowStart[i] ..< rowStart[i + 1] (the
    /// fuzzy graph before its renumbering: its heads are never needed, and at a million points the first touch of
    /// their 120 MB took 0.9 s on this VM).
    struct EdgeRows {
        var rowStart: [Int]
        var tails: [Int32]
        var weights: [Float]

        /// The same edges as (head, tail, weight) lists.
        var graph: Graph { Graph(heads: UMAP.heads(rowStart: rowStart), tails: tails, weights: weights) }
    }

    /// The edges of the union W = A + A^T - A * A^T in `rows` (this rank's, whose first is `firstRow`), each row's by
    /// tail, without those of weight 0; each row's count into `counts`. Row i joins each j it lists (weight a + b - ab,
    /// a its membership of j, b j's of i where j lists i, else 0) and each u that lists i where i does not list u
    /// (u's membership of i): a merge of i's own list, put in order, with the lists that name i (in the order of u;
    /// r = listedStart[i - firstRow] ..< listedStart[i - firstRow + 1], u = listedBy[r], its membership listedWeight[r]).
    static func unionRows(_ rows: Range<Int>, k: Int, indices: UnsafePointer<Int>, membership: UnsafePointer<Float>,
                          listedStart: [Int], listedBy: [Int32], listedWeight: [Float], firstRow: Int,
                          counts: UnsafeMutablePointer<Int>) -> (tails: [Int32], weights: [Float]) {
        @inline(__always) func union(_ a: Float, _ b: Float) -> Float { a + b - a * b }
        var own: [(tail: Int32, weight: Float)] = [], tails: [Int32] = [], weights: [Float] = []
        for i in rows {
            own.removeAll(keepingCapacity: true)
            for slot in 1..<k where indices[i * k + slot] != i { own.append((Int32(indices[i * k + slot]), membership[i * k + slot])) }
            sortByTail(&own)
            func keep(_ tail: Int32, _ weight: Float) {
                guard weight > 0 else { return }
                tails.append(tail)
                weights.append(weight)
                counts[i] += 1
            }
            var f = 0, r = listedStart[i - firstRow]
            let end = listedStart[i - firstRow + 1]
            while f < own.count || r < end {
                if r == end || (f < own.count && own[f].tail < listedBy[r]) {  // j does not list i
                    keep(own[f].tail, union(own[f].weight, 0))
                    f += 1
                } else if f == own.count || listedBy[r] < own[f].tail {  // i does not list u
                    keep(listedBy[r], union(listedWeight[r], 0))
                    r += 1
                } else {  // each lists the other: b is j's first slot naming i
                    let j = own[f].tail, b = listedWeight[r]
                    while f < own.count && own[f].tail == j {
                        keep(j, union(own[f].weight, b))
                        f += 1
                    }
                    while r < end && listedBy[r] == j { r += 1 }
                }
            }
        }
        return (tails, weights)
    }

    /// One point's memberships from its k distances (slot 0 itself): rho its first positive distance, sigma found by
    /// bisection so that they sum to `target`, then kept above 1e-3 of the mean distance (of its row, or of all rows
    /// where rho is 0); written to slots 1 ..< k of `out`.
    static func smoothMemberships(_ row: UnsafePointer<Float>, k: Int, target: Double, meanOfAll: Double,
                                  into out: UnsafeMutablePointer<Float>) {
        let rho = Double((1..<k).first { row[$0] > 0 }.map { row[$0] } ?? 0)
        var low = 0.0, high = Double.infinity, mid = 1.0
        for _ in 0..<64 {
            var sum = 0.0
            for j in 1..<k {
                let d = Double(row[j]) - rho
                sum += d > 0 ? expOrZero(-d / mid) : 1
            }
            if abs(sum - target) < 1e-5 { break }
            if sum > target {
                high = mid
                mid = (low + high) / 2
            } else {
                low = mid
                mid = high == .infinity ? mid * 2 : (low + high) / 2
            }
        }
        var meanOfRow = 0.0
        for j in 0..<k { meanOfRow += Double(row[j]) }
        meanOfRow /= Double(k)
        mid = max(mid, 1e-3 * (rho > 0 ? meanOfRow : meanOfAll))
        for j in 1..<k {
            let d = Double(row[j]) - rho
            out[j] = d <= 0 ? 1 : Float(expOrZero(-d / mid))
        }
    }

    /// exp(x), 0 without calling libm below -746, where exp is under half the least subnormal and so rounds to 0: the
    /// bisection's narrow sigmas reach there often, and libm's underflow path sets errno (perf showed it, `xflow`, as
    /// the largest part of exp's time in the serial loops).
    @inline(__always) static func expOrZero(_ x: Double) -> Double { x < -746 ? 0 : exp(x) }

    /// The graph over its points renumbered in breadth-first order (from point 0, then from the lowest point not yet
    /// reached; neighbours in the order the graph lists them), and that order (new number -> point). Every rank walks
    /// the graph; the ranks and threads then write the renumbered rows (each row's edges by new tail), gathered.
    /// Collective.
    static func breadthFirst(_ graph: EdgeRows, count n: Int, threads: Int = BLAS.threads, chunkRows: Int = RowChunks.chunkRows,
                             communicator: Communicator) throws -> (Graph, [Int]) {
        let rowStart = graph.rowStart
        var order: [Int] = [], reached = [Bool](repeating: false, count: n)
        order.reserveCapacity(n)
        for root in 0..<n where !reached[root] {
            reached[root] = true
            var next = order.count
            order.append(root)
            while next < order.count {
                let u = order[next]
                next += 1
                for e in rowStart[u]..<rowStart[u + 1] where !reached[Int(graph.tails[e])] {
                    reached[Int(graph.tails[e])] = true
                    order.append(Int(graph.tails[e]))
                }
            }
        }
        var position = [Int32](repeating: 0, count: n)
        for (slot, u) in order.enumerated() { position[u] = Int32(slot) }
        var newStart = [Int](repeating: 0, count: n + 1)
        for (slot, u) in order.enumerated() { newStart[slot + 1] = newStart[slot] + rowStart[u + 1] - rowStart[u] }
        var renumbered = Graph()
        renumbered.tails = [Int32](repeating: 0, count: newStart[n])
        renumbered.weights = [Float](repeating: 0, count: newStart[n])
        let rows = RowChunks(count: n, chunkRows: chunkRows, communicator: communicator, threads: threads)
        graph.tails.withUnsafeBufferPointer { tb in
            graph.weights.withUnsafeBufferPointer { wb in
                renumbered.tails.withUnsafeMutableBufferPointer { ntb in
                    renumbered.weights.withUnsafeMutableBufferPointer { nwb in
                        guard let tails = tb.baseAddress, let weights = wb.baseAddress else { return }
                        let from = (tails: SharedPointer(tails), weights: SharedPointer(weights))
                        let to = (tails: SharedPointer(ntb.baseAddress!), weights: SharedPointer(nwb.baseAddress!))
                        rows.forEachChunk { chunk in
                            var edges: [(tail: Int32, weight: Float)] = []
                            for slot in chunk {
                                let u = order[slot]
                                edges.removeAll(keepingCapacity: true)
                                for e in rowStart[u]..<rowStart[u + 1] {
                                    edges.append((position[Int(from.tails.base[e])], from.weights.base[e]))
                                }
                                sortByTail(&edges)
                                for (r, edge) in edges.enumerated() {
                                    to.tails.base[newStart[slot] + r] = edge.tail
                                    to.weights.base[newStart[slot] + r] = edge.weight
                                }
                            }
                        }
                    }
                }
            }
        }
        try rows.gather(&renumbered.tails, rowStart: newStart)
        try rows.gather(&renumbered.weights, rowStart: newStart)
        renumbered.heads = heads(rowStart: newStart)
        return (renumbered, order)
    }

    /// A row's edges in the order of their tails (short rows: insertion sort), stable: a tail named twice (a list that
    /// names a point twice) keeps its order, as in the serial loops' sort.
    static func sortByTail(_ edges: inout [(tail: Int32, weight: Float)]) {
        for p in edges.indices.dropFirst() {
            let edge = edges[p]
            var q = p
            while q > 0 && edges[q - 1].tail > edge.tail {
                edges[q] = edges[q - 1]
                q -= 1
            }
            edges[q] = edge
        }
    }

    /// Each edge's head, from where each row's edges start.
    static func heads(rowStart: [Int]) -> [Int32] {
        let count = rowStart.last ?? 0
        return [Int32](unsafeUninitializedCapacity: count) { heads, initialized in
            rowStart.withUnsafeBufferPointer { starts in
                for i in 0..<(starts.count - 1) { for e in starts[i]..<starts[i + 1] { heads[e] = Int32(i) } }
            }
            initialized = count
        }
    }
}
