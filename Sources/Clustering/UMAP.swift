// UMAP (McInnes, Healy & Melville 2018) of the autoencoder's codes, as N2D (McConville et al. 2020) uses it before a
// Gaussian mixture: k nearest neighbours, their fuzzy simplicial set, and a layout fitted by SGD with negative
// sampling, as umap-learn does it (min_dist 0, spread 1: a = 1.9328, b = 0.7905; the spectral start). Distances one
// pair at a time by one expression (no GEMM) and a one-thread seeded layout make the result the same bits for any
// rank, thread count or BLAS kernel: the ranks split the neighbour search, then each fits the same layout.
// N = points, D = dims, k = neighbours (the point itself included, as umap-learn counts).
import Collective
import Foundation
import Tensor

public struct UMAPOptions: Sendable, Equatable {
    public var neighbors = 20
    public var components = 10
    /// Layout epochs (umap-learn takes 500 up to 10,000 points: from the spectral start N2D scored the same with 200
    /// on MNIST, 0.950-0.952 over three embeddings).
    public var epochs = 200
    public var negativeSamples = 5
    public var learningRate: Float = 1
    public var seed: UInt64 = 0
    /// Start from the graph's spectral layout (umap-learn's default; a random start left 2 of 3 seeds at 0.81 on
    /// MNIST in N2D where the spectral one gave 0.95); false: uniform random.
    public var spectralStart = true
    /// How the neighbours are found: exact for small N, NN-descent above (`NNDescentOptions.exactUpTo`).
    public var search = NeighbourSearch.auto
    public var descent = NNDescentOptions()
    /// The curve 1 / (1 + a d^2b) that umap-learn fits for min_dist 0, spread 1 (find_ab_params).
    public var a: Float = 1.9328084
    public var b: Float = 0.79049497
    public init() {}
}

public enum UMAP {
    /// A layout and what each stage of it took.
    public struct Embedding: Sendable {
        /// (N, components)
        public var layout: [Float]
        public var search: NeighbourSearch
        /// NN-descent's rounds (0 for the exact search).
        public var rounds = 0
        public var neighbourSeconds = 0.0, graphSeconds = 0.0, layoutSeconds = 0.0

        /// "neighbours 1.2s (NN-descent, 5 rounds), graph 0.3s, layout 4.5s"
        public var timings: String {
            String(format: "neighbours %.1fs (%@), graph %.1fs, layout %.1fs", neighbourSeconds,
                   search == .exact ? "exact" : "NN-descent, \(rounds) rounds", graphSeconds, layoutSeconds)
        }
    }

    /// The layout (N, components) of `points` (N, D). Collective: the ranks split the neighbour search.
    public static func embed(points: [Float], count n: Int, dims: Int, options: UMAPOptions,
                             communicator: Communicator) throws -> Embedding {
        let k = min(options.neighbors, n)
        guard k >= 2, options.neighbors >= 2, options.components >= 1 else {
            throw RunError("UMAP needs at least 2 points and 2 neighbours (got \(n) points, \(options.neighbors) neighbours)")
        }
        var started = Clock.now
        let search = k < n ? options.search.resolved(count: n, options: options.descent) : .exact
        var embedding = Embedding(layout: [], search: search)
        let indices: [Int], distances: [Float]
        if search == .exact {
            (indices, distances) = try nearestNeighbours(points: points, count: n, dims: dims, k: k, communicator: communicator)
        } else {
            var descent = options.descent
            descent.seed = options.seed
            let found = try NNDescent.neighbours(points: points, count: n, dims: dims, k: k, options: descent, communicator: communicator)
            (indices, distances, embedding.rounds) = (found.indices, found.distances, found.rounds)
        }
        embedding.neighbourSeconds = Clock.now - started
        started = Clock.now
        let graph = fuzzyGraph(indices: indices, distances: distances, count: n, k: k)
        embedding.graphSeconds = Clock.now - started
        started = Clock.now
        embedding.layout = layout(graph, count: n, options: options)
        embedding.layoutSeconds = Clock.now - started
        return embedding
    }

    // MARK: - Neighbours

    /// Each point's k nearest (itself first, then by distance, ties by index): indices and Euclidean distances,
    /// (N, k) each. The ranks take contiguous shares of the points and gather the result.
    public static func nearestNeighbours(points: [Float], count n: Int, dims: Int, k: Int,
                                         communicator: Communicator) throws -> (indices: [Int], distances: [Float]) {
        let mine = contiguousShare(total: n, rank: communicator.rank, size: communicator.size)
        var localIndices = [Int](repeating: 0, count: mine.count * k)
        var localDistances = [Float](repeating: 0, count: mine.count * k)
        let threads = max(1, min(BLAS.threads, mine.count))
        points.withUnsafeBufferPointer { p in
            let base = SharedPointer(p.baseAddress!)
            localIndices.withUnsafeMutableBufferPointer { indexBuffer in
                localDistances.withUnsafeMutableBufferPointer { distanceBuffer in
                    let outIndices = SharedPointer(indexBuffer.baseAddress!), outDistances = SharedPointer(distanceBuffer.baseAddress!)
                    DispatchQueue.concurrentPerform(iterations: threads) { part in
                        let rows = contiguousShare(total: mine.count, rank: part, size: threads)
                        var best = [(Float, Int)](repeating: (.infinity, Int.max), count: k - 1)
                        for local in rows {
                            let i = mine.lowerBound + local
                            for slot in 0..<(k - 1) { best[slot] = (.infinity, Int.max) }
                            let x = base.base + i * dims
                            for j in 0..<n where j != i {
                                let y = base.base + j * dims
                                var d2: Float = 0
                                for e in 0..<dims { let v = x[e] - y[e]; d2 += v * v }
                                guard d2 < best[k - 2].0 else { continue }
                                var slot = k - 2  // insert, keeping the list sorted (an equal distance keeps the lower index first)
                                while slot > 0 && best[slot - 1].0 > d2 { best[slot] = best[slot - 1]; slot -= 1 }
                                best[slot] = (d2, j)
                            }
                            outIndices.base[local * k] = i
                            outDistances.base[local * k] = 0
                            for slot in 0..<(k - 1) {
                                outIndices.base[local * k + 1 + slot] = best[slot].1
                                outDistances.base[local * k + 1 + slot] = best[slot].0.squareRoot()
                            }
                        }
                    }
                }
            }
        }
        guard communicator.size > 1 else { return (localIndices, localDistances) }
        let counts = shareCounts(total: n, size: communicator.size).map { $0 * k }
        var indices = [Int](repeating: 0, count: n * k), distances = [Float](repeating: 0, count: n * k)
        try localIndices.withUnsafeBufferPointer { send in
            try indices.withUnsafeMutableBufferPointer { try communicator.allgatherv(send, into: $0, counts: counts) }
        }
        try localDistances.withUnsafeBufferPointer { send in
            try distances.withUnsafeMutableBufferPointer { try communicator.allgatherv(send, into: $0, counts: counts) }
        }
        return (indices, distances)
    }

    // MARK: - The fuzzy simplicial set

    /// The graph's edges, both directions of each (head, tail, weight), in head order.
    public struct Graph: Sendable {
        public var heads: [Int32] = []
        public var tails: [Int32] = []
        public var weights: [Float] = []
    }

    /// umap-learn's smooth_knn_dist and fuzzy_simplicial_set (local connectivity 1, set_op_mix_ratio 1): each point's
    /// memberships exp(-(d - rho) / sigma) with rho its nearest neighbour's distance and sigma such that they sum to
    /// log2(k); then the fuzzy union W = A + A^T - A * A^T.
    public static func fuzzyGraph(indices: [Int], distances: [Float], count n: Int, k: Int) -> Graph {
        let target = log2(Double(k))
        let meanOfAll = distances.reduce(0.0) { $0 + Double($1) } / Double(distances.count)
        var membership = [Float](repeating: 0, count: n * k)
        for i in 0..<n {
            let row = Array(distances[(i * k)..<((i + 1) * k)])
            let rho = Double(row.dropFirst().first { $0 > 0 } ?? 0)
            var low = 0.0, high = Double.infinity, mid = 1.0
            for _ in 0..<64 {
                var sum = 0.0
                for j in 1..<k {
                    let d = Double(row[j]) - rho
                    sum += d > 0 ? exp(-d / mid) : 1
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
            let meanOfRow = row.reduce(0.0) { $0 + Double($1) } / Double(k)
            mid = max(mid, 1e-3 * (rho > 0 ? meanOfRow : meanOfAll))
            for j in 1..<k {
                let d = Double(row[j]) - rho
                membership[i * k + j] = d <= 0 ? 1 : Float(exp(-d / mid))
            }
        }
        // The union: for each directed edge i -> j, the weight of j -> i where j lists i.
        func weight(_ from: Int, _ to: Int) -> Float? {
            for slot in 1..<k where indices[from * k + slot] == to { return membership[from * k + slot] }
            return nil
        }
        var lists = [[(Int32, Float)]](repeating: [], count: n)
        for i in 0..<n {
            for slot in 1..<k {
                let j = indices[i * k + slot]
                guard j != i else { continue }
                let a = membership[i * k + slot], reverse = weight(j, i)
                let b = reverse ?? 0
                let w = a + b - a * b
                lists[i].append((Int32(j), w))
                if reverse == nil { lists[j].append((Int32(i), w)) }  // j does not list i: i's edge is the pair's only entry
            }
        }
        var graph = Graph()
        for i in 0..<n {
            for (j, w) in lists[i].sorted(by: { $0.0 < $1.0 }) where w > 0 {
                graph.heads.append(Int32(i))
                graph.tails.append(j)
                graph.weights.append(w)
            }
        }
        return graph
    }

    // MARK: - The layout

    /// umap-learn's optimize_layout_euclidean on one thread: attraction along each edge as often as its weight says,
    /// repulsion from `negativeSamples` random points per attraction, the learning rate falling linearly to 0.
    public static func layout(_ graph: Graph, count n: Int, options: UMAPOptions) -> [Float] {
        let epochs = options.epochs
        let dims = options.components, a = options.a, b = options.b
        var rng = Xoshiro256(seed: options.seed, stream: 0x554D_4150)
        // Random initialisation in [-10, 10], then scaled to [0, 10] per coordinate as umap-learn does.
        // (Drawn even when the spectral start replaces it: the negative samples below continue this stream.)
        var y = (0..<(n * dims)).map { _ in rng.nextUnit() * 20 - 10 }
        scaleToTen(&y, count: n, dims: dims)
        if options.spectralStart, let start = spectralLayout(graph, count: n, dims: dims, seed: options.seed) {
            // umap-learn's spectral start: scaled to 10 at its largest, a little noise, then the same [0, 10] scaling.
            let expansion = 10 / max(start.map { abs($0) }.max() ?? 1, 1e-12)
            var noise = Xoshiro256(seed: options.seed, stream: 0x4E4F_4953)
            y = start.map { Float($0 * expansion + noise.nextNormal() * 1e-4) }
            scaleToTen(&y, count: n, dims: dims)
        }
        let largest = graph.weights.max() ?? 1
        // Edges too light to be sampled once in `epochs` are dropped; the others come every largest / weight epochs.
        var edges: [Int] = []
        for e in graph.weights.indices where graph.weights[e] >= largest / Float(epochs) { edges.append(e) }
        let perSample = edges.map { Double(largest / graph.weights[$0]) }
        let perNegative = perSample.map { $0 / Double(options.negativeSamples) }
        var nextSample = perSample, nextNegative = perNegative
        let heads = edges.map { Int(graph.heads[$0]) }, tails = edges.map { Int(graph.tails[$0]) }
        y.withUnsafeMutableBufferPointer { buffer in
            let y = buffer.baseAddress!
            func clip(_ v: Float) -> Float { min(max(v, -4), 4) }
            for epoch in 0..<epochs {
                let alpha = options.learningRate * (1 - Float(epoch) / Float(epochs))
                let now = Double(epoch)
                for e in 0..<edges.count where nextSample[e] <= now {
                    let current = y + heads[e] * dims, other = y + tails[e] * dims
                    var d2: Float = 0
                    for d in 0..<dims { let v = current[d] - other[d]; d2 += v * v }
                    let attract = d2 > 0 ? -2 * a * b * pow(d2, b - 1) / (a * pow(d2, b) + 1) : 0
                    for d in 0..<dims {
                        let g = clip(attract * (current[d] - other[d])) * alpha
                        current[d] += g
                        other[d] -= g
                    }
                    nextSample[e] += perSample[e]
                    let negatives = Int((now - nextNegative[e]) / perNegative[e])
                    for _ in 0..<max(negatives, 0) {
                        let t = rng.nextInt(below: n)
                        guard t != heads[e] else { continue }
                        let other = y + t * dims
                        var d2: Float = 0
                        for d in 0..<dims { let v = current[d] - other[d]; d2 += v * v }
                        let repel = d2 > 0 ? 2 * b / ((0.001 + d2) * (a * pow(d2, b) + 1)) : 0
                        for d in 0..<dims { current[d] += (repel > 0 ? clip(repel * (current[d] - other[d])) : 4) * alpha }
                    }
                    nextNegative[e] += Double(max(negatives, 0)) * perNegative[e]
                }
            }
        }
        return y
    }

    /// Each coordinate of (N, dims) mapped linearly onto [0, 10], as umap-learn does to every start.
    static func scaleToTen(_ y: inout [Float], count n: Int, dims: Int) {
        for d in 0..<dims {
            var low = Float.infinity, high = -Float.infinity
            for i in 0..<n { low = min(low, y[i * dims + d]); high = max(high, y[i * dims + d]) }
            for i in 0..<n { y[i * dims + d] = 10 * (y[i * dims + d] - low) / max(high - low, 1e-12) }
        }
    }

    // MARK: - The spectral start

    /// The eigenvectors of the normalised graph Laplacian I - D^-1/2 W D^-1/2 with the smallest eigenvalues after the
    /// trivial one (umap-learn's spectral_layout), as (N, dims). Found as the dominant eigenvectors of
    /// (I + D^-1/2 W D^-1/2) / 2 by subspace iteration with `dims` + 6 vectors, the trivial one D^1/2 1 projected out,
    /// and Rayleigh-Ritz at the end. In Double, in a fixed order: the same on every rank. Nil on a degenerate graph.
    static func spectralLayout(_ graph: Graph, count n: Int, dims: Int, seed: UInt64, iterations: Int = 300) -> [Double]? {
        let block = min(dims + 6, n - 1)
        guard block >= dims, !graph.weights.isEmpty else { return nil }
        var degree = [Double](repeating: 0, count: n)
        for e in graph.weights.indices { degree[Int(graph.heads[e])] += Double(graph.weights[e]) }
        guard degree.allSatisfy({ $0 > 0 }) else { return nil }
        let inverseRoot = degree.map { 1 / $0.squareRoot() }
        var trivial = degree.map { $0.squareRoot() }
        let norm = trivial.reduce(0) { $0 + $1 * $1 }.squareRoot()
        trivial = trivial.map { $0 / norm }
        // Edges by head (the graph lists them in head order): rows of the sparse matrix.
        var rowStart = [Int](repeating: 0, count: n + 1)
        for h in graph.heads { rowStart[Int(h) + 1] += 1 }
        for i in 0..<n { rowStart[i + 1] += rowStart[i] }
        let values = graph.weights.indices.map { e in
            Double(graph.weights[e]) * inverseRoot[Int(graph.heads[e])] * inverseRoot[Int(graph.tails[e])]
        }
        func apply(_ x: [Double]) -> [Double] {  // (I + M) x / 2, column by column of the (n, block) row-major x
            var y = x
            for i in 0..<n {
                for e in rowStart[i]..<rowStart[i + 1] {
                    let j = Int(graph.tails[e]), w = values[e]
                    for c in 0..<block { y[i * block + c] += w * x[j * block + c] }
                }
            }
            return y.map { $0 * 0.5 }
        }
        func orthonormalise(_ x: inout [Double]) {
            for c in 0..<block {
                var t = 0.0
                for i in 0..<n { t += trivial[i] * x[i * block + c] }
                for i in 0..<n { x[i * block + c] -= t * trivial[i] }
                for p in 0..<c {
                    var dot = 0.0
                    for i in 0..<n { dot += x[i * block + p] * x[i * block + c] }
                    for i in 0..<n { x[i * block + c] -= dot * x[i * block + p] }
                }
                var length = 0.0
                for i in 0..<n { length += x[i * block + c] * x[i * block + c] }
                length = length.squareRoot()
                for i in 0..<n { x[i * block + c] /= max(length, 1e-300) }
            }
        }
        var rng = Xoshiro256(seed: seed, stream: 0x5350_4543)
        var x = (0..<(n * block)).map { _ in rng.nextNormal() }
        orthonormalise(&x)
        for _ in 0..<iterations {
            x = apply(x)
            orthonormalise(&x)
        }
        // Rayleigh-Ritz: the block's matrix H = X^T A X, its eigenvectors by Jacobi rotations, largest first.
        let ax = apply(x)
        var h = [Double](repeating: 0, count: block * block)
        for p in 0..<block {
            for q in 0..<block {
                var s = 0.0
                for i in 0..<n { s += x[i * block + p] * ax[i * block + q] }
                h[p * block + q] = s
            }
        }
        let (eigenvalues, vectors) = jacobi(h, size: block)
        let order = (0..<block).sorted { eigenvalues[$0] > eigenvalues[$1] }
        var layout = [Double](repeating: 0, count: n * dims)
        for i in 0..<n {
            for d in 0..<dims {
                let v = order[d]
                var s = 0.0
                for p in 0..<block { s += x[i * block + p] * vectors[p * block + v] }
                layout[i * dims + d] = s
            }
        }
        return layout
    }

    /// Eigenvalues and eigenvectors (columns of a row-major matrix) of a small symmetric matrix, by cyclic Jacobi.
    static func jacobi(_ matrix: [Double], size m: Int) -> ([Double], [Double]) {
        var a = matrix
        var v = [Double](repeating: 0, count: m * m)
        for i in 0..<m { v[i * m + i] = 1 }
        for _ in 0..<100 {
            var off = 0.0
            for p in 0..<m { for q in (p + 1)..<max(m, p + 1) { off += a[p * m + q] * a[p * m + q] } }
            if off < 1e-22 { break }
            for p in 0..<m {
                for q in (p + 1)..<max(m, p + 1) where abs(a[p * m + q]) > 1e-300 {
                    let theta = (a[q * m + q] - a[p * m + p]) / (2 * a[p * m + q])
                    let t = (theta >= 0 ? 1 : -1) / (abs(theta) + (theta * theta + 1).squareRoot())
                    let c = 1 / (t * t + 1).squareRoot(), s = t * c
                    for k in 0..<m {  // columns p and q
                        let akp = a[k * m + p], akq = a[k * m + q]
                        a[k * m + p] = c * akp - s * akq
                        a[k * m + q] = s * akp + c * akq
                    }
                    for k in 0..<m {  // rows p and q
                        let apk = a[p * m + k], aqk = a[q * m + k]
                        a[p * m + k] = c * apk - s * aqk
                        a[q * m + k] = s * apk + c * aqk
                    }
                    for k in 0..<m {
                        let vkp = v[k * m + p], vkq = v[k * m + q]
                        v[k * m + p] = c * vkp - s * vkq
                        v[k * m + q] = s * vkp + c * vkq
                    }
                }
            }
        }
        return ((0..<m).map { a[$0 * m + $0] }, v)
    }
}
