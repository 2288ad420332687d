// UMAP (McInnes, Healy & Melville 2018) of the autoencoder's codes, as N2D (McConville et al. 2020) uses it before a
// Gaussian mixture: k nearest neighbours, their fuzzy simplicial set, and a layout fitted by SGD with negative
// sampling, as umap-learn does it (min_dist 0, spread 1: a = 1.9328, b = 0.7905; the spectral start). Distances one
// pair at a time by one expression (no GEMM), sums over fixed chunks of rows and a layout whose draws come from (seed,
// epoch, point) make the result the same bits for any rank, thread count or BLAS kernel: the ranks split the
// neighbour search, the graph (FuzzyGraph.swift), the spectral start's rows and the layout's chunks.
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
    /// Points per chunk of the layout's serial moves and of the spectral start's sums (nil: `UMAP.layoutChunk` and
    /// 2,048): the unit the ranks and threads split, which the result depends on (the split does not).
    public var chunkRows: Int?
    /// The layout's rows on 64-byte lines (`UMAP.layoutStride`); false: packed, `components` floats apart (tests: the
    /// same bits either way).
    public var paddedRows = true
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
        /// Of `layoutSeconds`: the spectral start's, and the sparse products it took (0: no spectral start).
        public var spectralSeconds = 0.0
        public var spectralProducts = 0

        /// "neighbours 1.2s (NN-descent, 5 rounds), graph 0.3s, layout 4.5s (spectral start 0.9s, 81 products)"
        public var timings: String {
            String(format: "neighbours %.1fs (%@), graph %.1fs, layout %.1fs (spectral start %.1fs, %d products)", neighbourSeconds,
                   search == .exact ? "exact" : "NN-descent, \(rounds) rounds", graphSeconds, layoutSeconds, spectralSeconds,
                   spectralProducts)
        }
    }

    /// The layout (N, components) of `points` (N, D). Collective: the ranks split the neighbour search.
    public static func embed(points: [Float], count n: Int, dims: Int, options: UMAPOptions, threads: Int = BLAS.threads,
                             communicator: Communicator) throws -> Embedding {
        try points.withUnsafeBufferPointer {
            try embed(points: $0, count: n, dims: dims, options: options, threads: threads, communicator: communicator)
        }
    }

    /// As above, of points the caller holds (a data set's shared samples, read without a copy). Collective.
    public static func embed(points: UnsafeBufferPointer<Float>, count n: Int, dims: Int, options: UMAPOptions,
                             threads: Int = BLAS.threads, communicator: Communicator) throws -> Embedding {
        precondition(points.count >= n * dims, "UMAP: fewer points than \(n) x \(dims)")
        return try embed(count: n, options: options, threads: threads, communicator: communicator) { search, k in
            if search == .exact {
                let (indices, distances) = try nearestNeighbours(points: points, count: n, dims: dims, k: k, communicator: communicator)
                return (indices, distances, 0)
            }
            var descent = options.descent
            descent.seed = options.seed
            let found = try NNDescent.neighbours(points: points, count: n, dims: dims, k: k, options: descent, threads: threads,
                                                 communicator: communicator)
            return (found.indices, found.distances, found.rounds)
        }
    }

    /// As above, of image pixels read as pixels / 255 (`Normalization.unit`): the neighbours are searched on the bytes
    /// themselves (no Float copy: a quarter of the memory; distances summed exactly). Collective.
    public static func embed(pixels: UnsafeBufferPointer<UInt8>, count n: Int, dims: Int, options: UMAPOptions,
                             threads: Int = BLAS.threads, communicator: Communicator) throws -> Embedding {
        precondition(pixels.count >= n * dims, "UMAP: fewer points than \(n) x \(dims)")
        return try embed(count: n, options: options, threads: threads, communicator: communicator) { search, k in
            try neighbours(pixels: pixels, count: n, dims: dims, k: k, search: search, options: options, threads: threads,
                           communicator: communicator)
        }
    }

    /// The k neighbours of pixels read as pixels / 255, as `embed(pixels:)` finds them: by `search` (resolved), on the
    /// bytes, their distances scaled from the bytes' units by 1/255. Collective.
    static func neighbours(pixels: UnsafeBufferPointer<UInt8>, count n: Int, dims: Int, k: Int, search: NeighbourSearch,
                           options: UMAPOptions, threads: Int, communicator: Communicator)
        throws -> (indices: [Int], distances: [Float], rounds: Int) {
        if search == .exact {
            let found = try nearestNeighbours(points: pixels, count: n, dims: dims, k: k, communicator: communicator)
            return (found.indices, found.distances.map { $0 * (1 / 255) }, 0)
        }
        var descent = options.descent
        descent.seed = options.seed
        let found = try NNDescent.neighbours(points: pixels, count: n, dims: dims, k: k, options: descent, threads: threads,
                                             communicator: communicator)
        return (found.indices, found.distances.map { $0 * (1 / 255) }, found.rounds)
    }

    /// The embedding from the neighbours `search(resolved search, k)` finds: (N, k) indices and distances, rounds.
    private static func embed(count n: Int, options: UMAPOptions, threads: Int, communicator: Communicator,
                              search find: (NeighbourSearch, Int) throws -> (indices: [Int], distances: [Float], rounds: Int))
        throws -> Embedding {
        let k = min(options.neighbors, n)
        guard k >= 2, options.neighbors >= 2, options.components >= 1 else {
            throw RunError("UMAP needs at least 2 points and 2 neighbours (got \(n) points, \(options.neighbors) neighbours)")
        }
        var started = Clock.now
        let search = k < n ? options.search.resolved(count: n, options: options.descent) : .exact
        var embedding = Embedding(layout: [], search: search)
        let (indices, distances, rounds) = try find(search, k)
        embedding.rounds = rounds
        embedding.neighbourSeconds = Clock.now - started
        started = Clock.now
        let chunkRows = options.chunkRows ?? RowChunks.chunkRows
        let fuzzy = try fuzzyGraph(indices: indices, distances: distances, count: n, k: k, threads: threads, chunkRows: chunkRows,
                                   communicator: communicator)
        let (graph, order) = try breadthFirst(fuzzy, count: n, threads: threads, chunkRows: chunkRows, communicator: communicator)
        embedding.graphSeconds = Clock.now - started
        started = Clock.now
        // The layout is fitted on the points renumbered in breadth-first order of the graph (edges then join points
        // near in memory: the spectral start's products and the attractions read what the cache holds).
        let renumbered = try layout(graph, count: n, options: options, threads: threads, communicator: communicator,
                                    spectralSeconds: &embedding.spectralSeconds, spectralProducts: &embedding.spectralProducts)
        let dims = options.components
        var layout = [Float](repeating: 0, count: n * dims)
        for (slot, u) in order.enumerated() {
            for d in 0..<dims { layout[u * dims + d] = renumbered[slot * dims + d] }
        }
        embedding.layout = layout
        embedding.layoutSeconds = Clock.now - started
        return embedding
    }

    // MARK: - Neighbours

    /// Each point's k nearest (itself first, then by distance, ties by index): indices and Euclidean distances,
    /// (N, k) each. The ranks take contiguous shares of the points and gather the result.
    public static func nearestNeighbours(points: [Float], count n: Int, dims: Int, k: Int,
                                         communicator: Communicator) throws -> (indices: [Int], distances: [Float]) {
        try points.withUnsafeBufferPointer { try nearestNeighbours(points: $0, count: n, dims: dims, k: k, communicator: communicator) }
    }

    /// As above, of points the caller holds. Collective.
    public static func nearestNeighbours(points: UnsafeBufferPointer<Float>, count n: Int, dims: Int, k: Int,
                                         communicator: Communicator) throws -> (indices: [Int], distances: [Float]) {
        try exactSearch(points, count: n, dims: dims, k: k, communicator: communicator)
    }

    /// As above, of bytes (image pixels as they came), their distances summed exactly; distances in the bytes' units.
    /// Collective.
    public static func nearestNeighbours(points: UnsafeBufferPointer<UInt8>, count n: Int, dims: Int, k: Int,
                                         communicator: Communicator) throws -> (indices: [Int], distances: [Float]) {
        try exactSearch(points, count: n, dims: dims, k: k, communicator: communicator)
    }

    /// The exact search for either element (the doors above make the module specialise it for each).
    static func exactSearch<E: SearchElement>(_ points: UnsafeBufferPointer<E>, count n: Int, dims: Int, k: Int,
                                              communicator: Communicator) throws -> (indices: [Int], distances: [Float]) {
        precondition(points.count >= n * dims, "the neighbour search: fewer points than \(n) x \(dims)")
        let mine = contiguousShare(total: n, rank: communicator.rank, size: communicator.size)
        var localIndices = [Int](repeating: 0, count: mine.count * k)
        var localDistances = [Float](repeating: 0, count: mine.count * k)
        let threads = max(1, min(BLAS.threads, mine.count))
        let base = SharedPointer(points.baseAddress!)
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
                            let d2 = E.squaredDistance(x, y, dims)  // as NN-descent sums it
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

    // MARK: - The layout

    /// umap-learn's optimize_layout_euclidean (attraction along each edge as often as its weight says, repulsion
    /// from `negativeSamples` random points per attraction, the learning rate falling linearly to 0), by chunks of
    /// points (`layoutChunk`: one chunk up to 20,000 points): within a chunk the points move one after the other as
    /// in umap-learn, an edge inside the chunk moving both its ends; other chunks' points are read where the epoch
    /// found them, and an edge to one moves only its head, by `crossChunkStep` of a step. The ranks and threads take
    /// whole chunks and gather the positions every epoch; a point's draws come from (seed, epoch, point), so the
    /// layout is the same bits for any split. A chunk's moves run in C (`Kernels.umapLayoutChunk`: the arithmetic of
    /// the Swift loop it replaced, bit for bit, 13% faster at 200k points; each point's negative samples are drawn
    /// while the point before it moves, so their positions are fetched ahead). Collective.
    public static func layout(_ graph: Graph, count n: Int, options: UMAPOptions, threads: Int = BLAS.threads,
                              communicator: Communicator, spectralSeconds: inout Double, spectralProducts: inout Int) throws -> [Float] {
        let epochs = options.epochs
        let dims = options.components, a = options.a, b = options.b
        var rng = Xoshiro256(seed: options.seed, stream: 0x554D_4150)
        // Random initialisation in [-10, 10], then scaled to [0, 10] per coordinate as umap-learn does.
        var y = (0..<(n * dims)).map { _ in rng.nextUnit() * 20 - 10 }
        scaleToTen(&y, count: n, dims: dims)
        let spectralStarted = Clock.now
        if options.spectralStart, let (start, products) = try spectralLayout(graph, count: n, dims: dims, seed: options.seed, threads: threads,
                                                                             chunkRows: options.chunkRows ?? RowChunks.chunkRows,
                                                                             communicator: communicator) {
            spectralProducts = products
            // umap-learn's spectral start: scaled to 10 at its largest, a little noise, then the same [0, 10] scaling.
            let expansion = 10 / max(start.map { abs($0) }.max() ?? 1, 1e-12)
            var noise = Xoshiro256(seed: options.seed, stream: 0x4E4F_4953)
            y = start.map { Float($0 * expansion + noise.nextNormal() * 1e-4) }
            scaleToTen(&y, count: n, dims: dims)
        }
        spectralSeconds = Clock.now - spectralStarted
        let negatives = Double(options.negativeSamples)
        let edges = SampledEdges(graph, count: n, epochs: epochs, negatives: negatives)
        let rows = RowChunks(count: n, chunkRows: options.chunkRows ?? layoutChunk(count: n), communicator: communicator, threads: threads)
        let mine = rows.myRows
        // The positions where the epoch found them and this rank's rows where it moved them, (N, rowStride) on 64-byte
        // lines; and the chunks whose kernel could not allocate.
        let rowStride = options.paddedRows ? layoutStride(dims: dims) : dims
        let positions = AlignedRows(count: n, stride: rowStride), moved = AlignedRows(count: n, stride: rowStride)
        let found = SharedPointer(positions.base), movedRows = SharedPointer(moved.base)
        let failed = SharedPointer(UnsafeMutablePointer<Bool>.allocate(capacity: rows.chunks))
        failed.base.initialize(repeating: false, count: rows.chunks)
        defer { failed.base.deallocate() }
        func place(_ rows: Range<Int>) { for i in rows { for d in 0..<dims { positions.base[i * rowStride + d] = y[i * dims + d] } } }
        place(0..<n)
        for epoch in 0..<epochs {
            let alpha = options.learningRate * (1 - Float(epoch) / Float(epochs))
            rows.forEachChunk { chunk in
                let done = Kernels.umapLayoutChunk(positions: found.base, moved: movedRows.base, chunk: chunk, count: n, dims: dims,
                                                   stride: rowStride, rowStart: edges.rowStart, tails: edges.tails, perSample: edges.perSample,
                                                   nextSample: edges.nextSample, nextNegative: edges.nextNegative, a: a, b: b,
                                                   alpha: alpha, crossStep: crossChunkStep, epoch: epoch, negatives: negatives,
                                                   seed: options.seed, stream: 0x4E45_4741)
                failed.base[chunk.lowerBound / rows.chunkRows] = !done
            }
            if try communicator.allreduce((0..<rows.chunks).contains { failed.base[$0] } ? 1 : 0, .max) != 0 {
                throw RunError("the UMAP layout ran out of memory", everyRank: true)
            }
            // This rank's rows into y, every rank's rows gathered there (without the padding), then placed.
            for i in mine { for d in 0..<dims { y[i * dims + d] = moved.base[i * rowStride + d] } }
            try rows.gather(&y, width: dims)
            place(0..<n)
        }
        return y
    }

    /// Floats between the starts of two layout rows: `dims` rounded up to a power of two up to 16, then to a multiple
    /// of 16, so that no row crosses a 64-byte cache line. Each negative sample reads a row at random: at a million
    /// points in 10 dimensions (40 MB, out of cache) half of the 40-byte rows spanned two lines.
    static func layoutStride(dims: Int) -> Int {
        dims > 16 ? (dims + 15) / 16 * 16 : 1 << (Int.bitWidth - (max(dims, 1) - 1).leadingZeroBitCount)
    }

    /// What an edge to another chunk's point moves its head by, in steps. Both ends of such a pair move toward where
    /// the other stood when the epoch began, so a step near the distance (early epochs, short edges) carries them past
    /// each other: with 2 (the pull its two directions give in umap-learn) or 1, full MNIST's layout at 16 chunks
    /// merged digits, and the mixture on it scored ACC 0.82-0.85 on two seeds against 0.976 for the serial layout;
    /// with 0.5 it scored 0.976 on both (0.975 with 0.25), with the exact neighbours too (issue 27's closing note).
    static let crossChunkStep: Float = 0.5

    /// Points a layout chunk moves one after the other (umap-learn's serial SGD within it): all of them up to 20,000
    /// points, then a sixteenth (at most 16 threads over all ranks find work).
    static func layoutChunk(count n: Int) -> Int {
        return n <= 20_000 ? n : (n + 15) / 16
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
    /// trivial one (umap-learn's spectral_layout), as (N, dims), and the products it took. Found as the dominant
    /// eigenvectors of A = (I + D^-1/2 W D^-1/2) / 2, whose spectrum lies in [0, 1], by Chebyshev-filtered subspace
    /// iteration (Zhou & Saad 2007) with `dims` + 6 vectors kept orthonormal to each other and to the trivial one
    /// D^1/2 1 (Cholesky QR, twice): each round is a Rayleigh-Ritz step, then the Chebyshev polynomial of degree
    /// `filterDegree` that is at most 1 in magnitude on [0, θ] (θ the block's least Ritz value) and grows fastest above
    /// it, applied by its three-term recurrence. An eigenvalue a relative gap δ above θ grows by about
    /// exp(filterDegree sqrt(2δ)) in a round, against exp(filterDegree δ) in as many plain products: at the gaps of
    /// 1e-3 of a large graph, 45 times the separation. It stops when every wanted Ritz pair's residual ‖Ax - θx‖ is at
    /// most `tolerance` (the vectors are unit); when two rounds in a row each leave the largest residual above `stall`
    /// times the round before's (the pairs left lie too close to the damped part of the spectrum for the filter to
    /// part them: ten Gaussian clusters at a million points took 291 products, their residual 5% lower a round at the
    /// end; one such round alone happens on the way, on an MNIST-10k graph); or before a round would take it past
    /// `maxProducts` products. In Double.
    /// The ranks and threads take rows; every sum over the points is taken over fixed chunks of `chunkRows` rows and
    /// then over the chunks in order, so the result is the same bits on any split. Nil on a degenerate graph.
    /// Collective.
    static func spectralLayout(_ graph: Graph, count n: Int, dims: Int, seed: UInt64, maxProducts: Int = 300, filterDegree: Int = 10,
                               tolerance: Double = 1e-4, stall: Double = 0.8, threads: Int = BLAS.threads,
                               chunkRows: Int = RowChunks.chunkRows,
                               communicator: Communicator) throws -> (layout: [Double], products: Int)? {
        precondition(filterDegree >= 1, "the filter's degree is at least 1")
        let block = min(dims + 6, n - 1)
        guard block >= dims, !graph.weights.isEmpty else { return nil }
        // Edges by head (the graph lists them in head order): rows of the sparse matrix.
        var rowStart = [Int](repeating: 0, count: n + 1)
        for h in graph.heads { rowStart[Int(h) + 1] += 1 }
        for i in 0..<n { rowStart[i + 1] += rowStart[i] }
        let rows = RowChunks(count: n, chunkRows: chunkRows, communicator: communicator, threads: threads)
        // Each row's degree is its edges' weights added in order, as one pass over the edges would add them.
        var degree = [Double](repeating: 0, count: n)
        degree.withUnsafeMutableBufferPointer { db in
            let degree = SharedPointer(db.baseAddress!)
            inParts(0..<n, threads: threads) { part in
                for i in part { for e in rowStart[i]..<rowStart[i + 1] { degree.base[i] += Double(graph.weights[e]) } }
            }
        }
        guard degree.allSatisfy({ $0 > 0 }) else { return nil }
        let inverseRoot = degree.map { 1 / $0.squareRoot() }
        var trivial = degree.map { $0.squareRoot() }
        let norm = trivial.reduce(0) { $0 + $1 * $1 }.squareRoot()
        trivial = trivial.map { $0 / norm }
        // The normalised weights of this rank's rows' edges (the products read no others): edge e at e - valuesFrom.
        let mine = rows.myRows, valuesFrom = rowStart[mine.lowerBound]
        var values = [Double](repeating: 0, count: rowStart[mine.upperBound] - valuesFrom)
        values.withUnsafeMutableBufferPointer { vb in
            guard let base = vb.baseAddress else { return }
            let values = SharedPointer(base)
            inParts(valuesFrom..<rowStart[mine.upperBound], threads: threads) { part in
                for e in part {
                    values.base[e - valuesFrom] = Double(graph.weights[e]) * inverseRoot[Int(graph.heads[e])]
                        * inverseRoot[Int(graph.tails[e])]
                }
            }
        }
        // (N, block): the start is normal draws in row order from one stream, of which this rank draws its rows' (each
        // thread its part's, after stepping over the draws before it: two words a value) until the first gather.
        var x = [Double](repeating: 0, count: n * block)
        let stream = Xoshiro256(seed: seed, stream: 0x5350_4543)
        x.withUnsafeMutableBufferPointer { xb in
            let x = SharedPointer(xb.baseAddress!)
            inParts((mine.lowerBound * block)..<(mine.upperBound * block), threads: threads) { part in
                var rng = stream
                for _ in 0..<(2 * part.lowerBound) { _ = rng.next() }
                for c in part { x.base[c] = rng.nextNormal() }
            }
        }
        var ax = [Double](repeating: 0, count: n * block)  // (N, block): A x, then the filter's y_k, on this rank's rows
        var products = 0
        // Each pass below is one C kernel over a chunk's rows (CKernels' spectral.c), fusing what the rows need between
        // two sums over all of them: the same operations in the same order as separate passes, so the same bits.
        /// A step of the Chebyshev filter on this rank's rows, out <- 2 (A v - centre v) / halfWidth - out (in C: the
        /// random reads of v's rows prefetched); v whole.
        func filterStep(_ v: [Double], into out: inout [Double], centre: Double, halfWidth: Double) {
            v.withUnsafeBufferPointer { vb in
                out.withUnsafeMutableBufferPointer { ob in
                    let v = SharedPointer(vb.baseAddress!), o = SharedPointer(ob.baseAddress!)
                    rows.forEachChunk { chunk in
                        Kernels.spectralRows(x: v.base, y: o.base, rowStart: rowStart, tails: graph.tails, values: values,
                                             valuesFrom: valuesFrom, block: block,
                                             rows: chunk, filter: (centre, halfWidth))
                    }
                }
            }
            products += 1
        }
        /// This rank's rows of `x` orthonormal to the trivial vector and to each other; false when they are degenerate.
        func orthonormalise() throws -> Bool {
            try x.withUnsafeMutableBufferPointer { xb in
                let x = SharedPointer(xb.baseAddress!)
                return try trivial.withUnsafeBufferPointer { tb in
                    let trivial = SharedPointer(tb.baseAddress!)
                    let t = try rows.sumByChunk(width: block) { chunk, out in
                        Kernels.spectralDot(x: x.base, v: trivial.base, into: out, block: block, rows: chunk)
                    }
                    // Cholesky QR twice: X <- X R^-1 with R^T R = X^T X, the first Gram matrix taken as the rows lose
                    // the trivial part, the second as they are divided by the first R.
                    let gram = try rows.sumByChunk(width: block * block) { chunk, out in
                        Kernels.spectralOrthogonalise(x: x.base, trivial: trivial.base, t: t, r: nil, gram: out, block: block, rows: chunk)
                    }
                    guard let first = upperCholesky(gram, size: block) else { return false }
                    let again = try rows.sumByChunk(width: block * block) { chunk, out in
                        Kernels.spectralOrthogonalise(x: x.base, trivial: trivial.base, t: nil, r: first, gram: out, block: block, rows: chunk)
                    }
                    guard let second = upperCholesky(again, size: block) else { return false }
                    rows.forEachChunk { chunk in
                        Kernels.spectralOrthogonalise(x: x.base, trivial: trivial.base, t: nil, r: second, gram: nil, block: block, rows: chunk)
                    }
                    return true
                }
            }
        }
        /// Rayleigh-Ritz on the block (x whole and orthonormal): H = X^T A X, and this rank's rows of x and ax turned to
        /// H's eigenvectors, largest Ritz value first; then ax holds the Chebyshev filter's first step for the next
        /// round. Returns the largest residual ‖Ax - θx‖ of the `dims` wanted pairs and the filter.
        func rayleighRitz() throws -> (residual: Double, filter: (centre: Double, halfWidth: Double)) {
            let h = try x.withUnsafeBufferPointer { xb in
                try ax.withUnsafeMutableBufferPointer { ab in
                    let x = SharedPointer(xb.baseAddress!), ax = SharedPointer(ab.baseAddress!)
                    return try rows.sumByChunk(width: block * block) { chunk, out in
                        Kernels.spectralRows(x: x.base, y: ax.base, rowStart: rowStart, tails: graph.tails, values: values,
                                             valuesFrom: valuesFrom, block: block,
                                             rows: chunk, h: out)
                    }
                }
            }
            products += 1
            let (eigenvalues, vectors) = jacobi(h, size: block)
            let order = (0..<block).sorted { eigenvalues[$0] > eigenvalues[$1] }
            let ritz = order.map { eigenvalues[$0] }
            var turn = [Double](repeating: 0, count: block * block)  // (block, block): column c is H's c-th eigenvector
            for p in 0..<block { for c in 0..<block { turn[p * block + c] = vectors[p * block + order[c]] } }
            // The filter maps [0, θ] onto [-1, 1]: y_1 = (A - c) x / e, y_k+1 = 2 (A - c) y_k / e - y_k-1, unscaled. θ is
            // kept at 0.05 or more: the polynomial then stays below 5e18 on [0, 1] at degree 10 (T_10(39)), far inside
            // Double's range.
            let cut = max(ritz[block - 1], 0.05), centre = cut / 2, halfWidth = cut / 2
            let squares = try x.withUnsafeMutableBufferPointer { xb in
                try ax.withUnsafeMutableBufferPointer { ab in
                    let x = SharedPointer(xb.baseAddress!), ax = SharedPointer(ab.baseAddress!)
                    return try rows.sumByChunk(width: dims) { chunk, out in
                        Kernels.spectralTurn(x: x.base, ax: ax.base, turn: turn, ritz: ritz, squares: out, block: block, dims: dims,
                                             centre: centre, halfWidth: halfWidth, rows: chunk)
                    }
                }
            }
            return (squares.max()!.squareRoot(), (centre, halfWidth))
        }
        guard try orthonormalise() else { return nil }
        try rows.gather(&x, width: block)
        var last = Double.infinity, stalled = 0  // the round before's residual; rounds in a row that cut it little
        while true {
            let (residual, filter) = try rayleighRitz()
            stalled = residual > stall * last ? stalled + 1 : 0
            if residual <= tolerance || stalled == 2 || products + filterDegree > maxProducts { break }
            last = residual
            // y_0 = x, y_1 in ax (the Rayleigh-Ritz step's last pass, on this rank's rows). Then x holds y_k-1 and ax
            // y_k, and each step writes y_k+1 over y_k-1 row by row (a row of y_k+1 needs that row of y_k-1 only).
            for _ in 1..<filterDegree {
                try rows.gather(&ax, width: block)
                filterStep(ax, into: &x, centre: filter.centre, halfWidth: filter.halfWidth)
                swap(&x, &ax)
            }
            swap(&x, &ax)  // x = y_filterDegree
            guard try orthonormalise() else { return nil }
            try rows.gather(&x, width: block)
        }
        try rows.gather(&x, width: block)  // the Ritz vectors, turned on each rank's rows
        var layout = [Double](repeating: 0, count: n * dims)
        for i in 0..<n { for d in 0..<dims { layout[i * dims + d] = x[i * block + d] } }
        return (layout, products)
    }

    /// The upper Cholesky factor R (R^T R = A) of a symmetric positive definite matrix given by its upper triangle;
    /// nil when it is not positive definite.
    static func upperCholesky(_ a: [Double], size m: Int) -> [Double]? {
        var r = [Double](repeating: 0, count: m * m)
        for j in 0..<m {
            var diagonal = a[j * m + j]
            for p in 0..<j { diagonal -= r[p * m + j] * r[p * m + j] }
            guard diagonal > 1e-300, diagonal.isFinite else { return nil }
            r[j * m + j] = diagonal.squareRoot()
            for q in (j + 1)..<max(m, j + 1) {
                var v = a[j * m + q]
                for p in 0..<j { v -= r[p * m + j] * r[p * m + q] }
                r[j * m + q] = v / r[j * m + j]
            }
        }
        return r
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

/// The rows 0..<N split for work whose sums must not depend on the split: fixed chunks of `chunkRows` rows, the
/// ranks taking contiguous runs of chunks and their threads runs of those; sums are taken per chunk, gathered, and
/// added in chunk order on every rank.
struct RowChunks {
    static let chunkRows = 2048
    let count: Int
    let chunkRows: Int
    let communicator: Communicator
    let threads: Int
    let chunks: Int
    let mine: Range<Int>  // this rank's chunks

    init(count: Int, chunkRows: Int = RowChunks.chunkRows, communicator: Communicator, threads: Int) {
        self.count = count
        self.chunkRows = max(1, chunkRows)
        self.communicator = communicator
        self.threads = threads
        chunks = (count + self.chunkRows - 1) / self.chunkRows
        mine = contiguousShare(total: chunks, rank: communicator.rank, size: communicator.size)
    }

    func rows(ofChunk chunk: Int) -> Range<Int> { (chunk * chunkRows)..<min(count, (chunk + 1) * chunkRows) }
    var myRows: Range<Int> { mine.isEmpty ? 0..<0 : rows(ofChunk: mine.lowerBound).lowerBound..<rows(ofChunk: mine.upperBound - 1).upperBound }

    /// `body(rows)` for each of this rank's chunks, the chunks split over the threads.
    func forEachChunk(_ body: (Range<Int>) -> Void) {
        let workers = max(1, min(threads, mine.count)), ranges = mine.map { rows(ofChunk: $0) }
        withoutActuallyEscaping(body) { body in
            let call = UncheckedBox(value: body)
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                for local in contiguousShare(total: ranges.count, rank: w, size: workers) { call.value(ranges[local]) }
            }
        }
    }

    /// The sum over all rows of what `body(row, out)` adds into a zeroed `width`-vector, chunk by chunk. Collective.
    func sum(width: Int, _ body: (Int, UnsafeMutablePointer<Double>) -> Void) throws -> [Double] {
        try sumByChunk(width: width) { rows, out in for i in rows { body(i, out) } }
    }

    /// The sum over the chunks of what `body(rows, out)` adds into a zeroed `width`-vector for each chunk's rows (the
    /// chunks split over the threads), taken in chunk order. Collective.
    func sumByChunk(width: Int, _ body: (Range<Int>, UnsafeMutablePointer<Double>) -> Void) throws -> [Double] {
        var partial = [Double](repeating: 0, count: mine.count * width)  // (my chunks, width)
        let workers = max(1, min(threads, mine.count)), ranges = mine.map { rows(ofChunk: $0) }
        partial.withUnsafeMutableBufferPointer { pb in
            let out = SharedPointer(pb.baseAddress!)
            withoutActuallyEscaping(body) { body in
                let call = UncheckedBox(value: body)
                DispatchQueue.concurrentPerform(iterations: workers) { w in
                    for local in contiguousShare(total: ranges.count, rank: w, size: workers) {
                        call.value(ranges[local], out.base + local * width)
                    }
                }
            }
        }
        let all = communicator.size > 1 ? try communicator.allgatherv(partial) : partial  // (chunks, width), chunk order
        var total = [Double](repeating: 0, count: width)
        for chunk in 0..<chunks { for c in 0..<width { total[c] += all[chunk * width + c] } }
        return total
    }

    /// Every rank's rows of the (N, width) `values` gathered onto every rank. Collective.
    func gather<T: CollectiveElement>(_ values: inout [T], width: Int) throws {
        guard communicator.size > 1 else { return }
        let counts = (0..<communicator.size).map { r -> Int in
            let share = contiguousShare(total: chunks, rank: r, size: communicator.size)
            return share.isEmpty ? 0 : (rows(ofChunk: share.upperBound - 1).upperBound - rows(ofChunk: share.lowerBound).lowerBound) * width
        }
        let mineRows = myRows
        try values.withUnsafeMutableBufferPointer { all in  // this rank's rows are sent from where they lie
            let send = UnsafeBufferPointer(rebasing: all[(mineRows.lowerBound * width)..<(mineRows.upperBound * width)])
            try communicator.allgatherv(send, into: all, counts: counts)
        }
    }

    /// Every rank's rows of `values`, rows of varying length (row r at rowStart[r] ..< rowStart[r + 1]), gathered onto
    /// every rank. Collective.
    func gather<T: CollectiveElement>(_ values: inout [T], rowStart: [Int]) throws {
        guard communicator.size > 1 else { return }
        let counts = (0..<communicator.size).map { r -> Int in
            let share = contiguousShare(total: chunks, rank: r, size: communicator.size)
            guard !share.isEmpty else { return 0 }
            return rowStart[rows(ofChunk: share.upperBound - 1).upperBound] - rowStart[rows(ofChunk: share.lowerBound).lowerBound]
        }
        let mineRows = myRows
        try values.withUnsafeMutableBufferPointer { all in
            let send = UnsafeBufferPointer(rebasing: all[rowStart[mineRows.lowerBound]..<rowStart[mineRows.upperBound]])
            try communicator.allgatherv(send, into: all, counts: counts)
        }
    }
}

/// (count, stride) Floats, zeroed, from the start of a 64-byte cache line; freed with the object.
final class AlignedRows {
    let base: UnsafeMutablePointer<Float>

    init(count: Int, stride: Int) {
        let floats = max(count * stride, 1)
        base = UnsafeMutableRawPointer.allocate(byteCount: floats * MemoryLayout<Float>.stride, alignment: 64)
            .initializeMemory(as: Float.self, repeating: 0, count: floats)
    }

    deinit { UnsafeMutableRawPointer(base).deallocate() }
}

/// The layout's edges by head (the graph lists them in head order), those too light to be sampled once in `epochs`
/// dropped, the others sampled every largest / weight epochs, with their schedules (next sample, next negative
/// samples): in memory that the chunks' kernels update from several threads, each chunk its own heads' edges.
final class SampledEdges: @unchecked Sendable {
    let rowStart: UnsafeMutablePointer<Int>  // (N + 1)
    let tails: UnsafeMutablePointer<Int32>
    let perSample, nextSample, nextNegative: UnsafeMutablePointer<Double>

    init(_ graph: UMAP.Graph, count n: Int, epochs: Int, negatives: Double) {
        let largest = graph.weights.max() ?? 1, lightest = largest / Float(epochs)
        rowStart = .allocate(capacity: n + 1)
        rowStart.initialize(repeating: 0, count: n + 1)
        for e in graph.weights.indices where graph.weights[e] >= lightest { rowStart[Int(graph.heads[e]) + 1] += 1 }
        for i in 0..<n { rowStart[i + 1] += rowStart[i] }
        let kept = max(rowStart[n], 1)
        tails = .allocate(capacity: kept)
        perSample = .allocate(capacity: kept)
        nextSample = .allocate(capacity: kept)
        nextNegative = .allocate(capacity: kept)
        var k = 0
        for e in graph.weights.indices where graph.weights[e] >= lightest {
            tails[k] = graph.tails[e]
            perSample[k] = Double(largest / graph.weights[e])
            nextSample[k] = perSample[k]
            nextNegative[k] = perSample[k] / negatives
            k += 1
        }
    }

    deinit {
        rowStart.deallocate(); tails.deallocate(); perSample.deallocate(); nextSample.deallocate(); nextNegative.deallocate()
    }
}
