// Approximate k nearest neighbours by NN-descent (Dong, Charikar & Li 2011) started from a random-projection forest,
// as pynndescent starts it, in a form whose result does not depend on how the points are split over ranks and
// threads. Each point's list is rebuilt from the previous round's whole graph only ("gather" form: point u compares
// itself with the neighbours of its neighbours; the classic local join also writes into other points' lists, whose
// result then depends on the order of the writes), the forest's trees and the fill-in draws come from generators
// seeded by (seed, tree) and (seed, point), candidates are visited in a fixed order and lists are ordered by
// (squared distance, index) computed by one expression: the same graph, bit for bit, on any rank and thread count.
// The ranks take contiguous shares of the points and gather every round's rows.
// N = points, D = dims, k = neighbours (the point itself included, as umap-learn counts), m = k - 1 listed others,
// C = candidates per point and round (new and old each).
import Collective
import Foundation
import Tensor

/// How UMAP's neighbours are found.
public enum NeighbourSearch: String, Sendable, CaseIterable {
    /// Exact up to `NNDescentOptions.exactUpTo` points, NN-descent above.
    case auto
    /// Every point against every other: N^2 D, the reference.
    case exact
    /// NN-descent from a random-projection forest: about N k^2 D a round, a few rounds.
    case descent

    /// The search `auto` resolves to for `n` points.
    public func resolved(count n: Int, options: NNDescentOptions = NNDescentOptions()) -> NeighbourSearch {
        self == .auto ? (n <= options.exactUpTo ? .exact : .descent) : self
    }
}

public struct NNDescentOptions: Sendable, Equatable {
    /// Below this many points the exact search is as fast (about 1 s on 2 cores at 20,000 points in 10 dimensions).
    public var exactUpTo = 20_000
    public var trees = 8
    /// Points per leaf of a tree at most (at least k).
    public var leafSize = 40
    public var rounds = 12
    /// Stop when a round changes fewer than delta x N x k entries (pynndescent's delta).
    public var delta = 0.001
    /// The search copies the points in its order when the copy takes at most this many bytes; larger data is read where
    /// it lies, through that order (`PointRows`): at 70,000 x 784 on 2 ranks the copy, 220 MB a rank, made the search
    /// 8-14% faster, and a million such points would need 3.1 GB a rank. A million 784-pixel images (784 MB): copied
    /// 104.7 s and a rank's peak 2.16 GB, read in place 156.0 s and 1.59 GB.
    public var copyBytes = 1 << 30
    public var seed: UInt64 = 0
    public init() {}
}

/// What the search reads a point's coordinates as: Float, or bytes (image pixels as they came), whose squared
/// distances are summed exactly in integers (`Kernels.squaredDistance`, vector C): a quarter of the memory of a Float
/// copy, and the same graph as a Float search of the same values wherever that one sums exactly (tested).
public protocol SearchElement: BitwiseCopyable, Sendable {
    init()
    /// The squared distance of two rows of `dims`, in the element's own units, as the lists compare it.
    static func squaredDistance(_ a: UnsafePointer<Self>, _ b: UnsafePointer<Self>, _ dims: Int) -> Float
    /// out[i] = squaredDistance(point u, point rows[i]) for i < count, point r being row r of the (N, dims) rows at x,
    /// or row point[r] when `point` is given; the rows ahead fetched from memory while the current one is summed.
    static func squaredDistances(_ out: UnsafeMutablePointer<Float>, rows x: UnsafePointer<Self>, dims: Int, from u: Int,
                                 to rows: UnsafePointer<Int32>, count: Int, through point: UnsafePointer<Int>?)
    /// start + normal . row: which side of a tree's hyperplane the row lies on.
    static func side(_ normal: UnsafePointer<Float>, _ row: UnsafePointer<Self>, _ dims: Int, start: Float) -> Float
    /// The coordinate as the trees' hyperplanes take it.
    var coordinate: Float { get }
}

extension Float: SearchElement {
    /// Rows narrower than 32 in one sum in order, here (the C kernel's narrow case, without the call: 10-dimension
    /// embeddings are the common case); wider ones in the kernel's 32 partial sums, in vector C.
    @inline(__always)
    public static func squaredDistance(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ dims: Int) -> Float {
        guard dims < 32 else { return Kernels.squaredDistance(a, b, count: dims) }
        var d2: Float = 0
        for e in 0..<dims { let t = a[e] - b[e]; d2 += t * t }
        return d2
    }

    @inline(__always)
    public static func squaredDistances(_ out: UnsafeMutablePointer<Float>, rows x: UnsafePointer<Float>, dims: Int, from u: Int,
                                        to rows: UnsafePointer<Int32>, count: Int, through point: UnsafePointer<Int>?) {
        Kernels.squaredDistances(out, rows: x, dims: dims, from: u, to: rows, count: count, through: point)
    }

    @inline(__always)
    public static func side(_ normal: UnsafePointer<Float>, _ row: UnsafePointer<Float>, _ dims: Int, start: Float) -> Float {
        guard dims < 32 else { return Kernels.side(normal, row, count: dims, start: start) }
        var side = start
        for e in 0..<dims { side += normal[e] * row[e] }
        return side
    }

    @inline(__always) public var coordinate: Float { self }
}

extension UInt8: SearchElement {
    /// The exact integer sum, rounded to Float once (exact below 2^24: rows of up to 258 bytes, or nearer ones).
    @inline(__always)
    public static func squaredDistance(_ a: UnsafePointer<UInt8>, _ b: UnsafePointer<UInt8>, _ dims: Int) -> Float {
        Float(Kernels.squaredDistance(a, b, count: dims))
    }

    @inline(__always)
    public static func squaredDistances(_ out: UnsafeMutablePointer<Float>, rows x: UnsafePointer<UInt8>, dims: Int, from u: Int,
                                        to rows: UnsafePointer<Int32>, count: Int, through point: UnsafePointer<Int>?) {
        Kernels.squaredDistances(out, rows: x, dims: dims, from: u, to: rows, count: count, through: point)
    }

    @inline(__always)
    public static func side(_ normal: UnsafePointer<Float>, _ row: UnsafePointer<UInt8>, _ dims: Int, start: Float) -> Float {
        Kernels.side(normal, row, count: dims, start: start)
    }

    @inline(__always) public var coordinate: Float { Float(self) }
}

public enum NNDescent {
    public struct Result: Sendable {
        /// (N, k): the point itself first, then by distance, ties by index.
        public var indices: [Int]
        /// (N, k) Euclidean distances, in the points' own units (bytes: 0 to 255 a coordinate).
        public var distances: [Float]
        public var rounds: Int
        /// Entries changed in each round.
        public var updates: [Int]
    }

    /// Each point's k approximate nearest neighbours (see the file's head). Collective.
    public static func neighbours(points: [Float], count n: Int, dims: Int, k: Int, options: NNDescentOptions,
                                  threads: Int = BLAS.threads, communicator: Communicator) throws -> Result {
        try points.withUnsafeBufferPointer {
            try neighbours(points: $0, count: n, dims: dims, k: k, options: options, threads: threads, communicator: communicator)
        }
    }

    /// As above, of points the caller holds (a data set's shared samples, read without a copy). Collective.
    public static func neighbours(points: UnsafeBufferPointer<Float>, count n: Int, dims: Int, k: Int, options: NNDescentOptions,
                                  threads: Int = BLAS.threads, communicator: Communicator) throws -> Result {
        try search(points, count: n, dims: dims, k: k, options: options, threads: threads, communicator: communicator)
    }

    /// As above, of bytes (image pixels as they came), their distances summed exactly. Collective.
    public static func neighbours(points: UnsafeBufferPointer<UInt8>, count n: Int, dims: Int, k: Int, options: NNDescentOptions,
                                  threads: Int = BLAS.threads, communicator: Communicator) throws -> Result {
        try search(points, count: n, dims: dims, k: k, options: options, threads: threads, communicator: communicator)
    }

    /// The search itself, for either element (the public doors above make the module specialise it for each: a
    /// generic call from another module would run it through the protocol's witnesses: 1.3-1.5x the time at 70k).
    static func search<E: SearchElement>(_ points: UnsafeBufferPointer<E>, count n: Int, dims: Int, k: Int,
                                         options: NNDescentOptions, threads: Int, communicator: Communicator) throws -> Result {
        precondition(k >= 2 && n > k, "NN-descent needs more points than neighbours")
        precondition(points.count >= n * dims, "NN-descent: fewer points than \(n) x \(dims)")
        let m = k - 1
        let mine = contiguousShare(total: n, rank: communicator.rank, size: communicator.size)
        let counts = shareCounts(total: n, size: communicator.size).map { $0 * m }
        let workers = max(1, min(threads, mine.count))
        var forest = try Forest(points: SharedPointer(points.baseAddress!), count: n, dims: dims, trees: options.trees,
                                leafSize: max(options.leafSize, k), seed: options.seed, threads: threads, communicator: communicator)
        // The search runs on the points renumbered in the first tree's leaf order: neighbours of neighbours then lie
        // near in memory (at a million points in 10 dimensions: 95 s -> 36 s on 2 threads): in a copy in that order, or
        // where they lie, through it, when the copy would exceed `copyBytes`.
        let original = forest.trees[0].order.map(Int.init)  // position -> point
        var position = [Int32](repeating: 0, count: n)       // point -> position
        for (slot, u) in original.enumerated() { position[u] = Int32(slot) }
        forest.renumber(position)
        let copied = n * dims * MemoryLayout<E>.stride <= options.copyBytes
        var renumbered = [E](repeating: E(), count: copied ? n * dims : 0)
        if copied {
            for (slot, u) in original.enumerated() {
                for e in 0..<dims { renumbered[slot * dims + e] = points[u * dims + e] }
            }
        }
        return try renumbered.withUnsafeBufferPointer { buffer in try original.withUnsafeBufferPointer { original in
            let x = copied ? PointRows(base: SharedPointer(buffer.baseAddress!), dims: dims, point: nil)
                : PointRows(base: SharedPointer(points.baseAddress!), dims: dims, point: original.baseAddress!)
            var graph = [Int](repeating: 0, count: n * m)  // (N, m) keys: see Key
            var local = [Int](repeating: 0, count: mine.count * m)
            var stamps = (0..<workers).map { _ in [Int](repeating: -1, count: n) }
            func gather() throws {
                if communicator.size == 1 { swap(&graph, &local); return }
                try local.withUnsafeBufferPointer { send in
                    try graph.withUnsafeMutableBufferPointer { try communicator.allgatherv(send, into: $0, counts: counts) }
                }
            }
            // The forest's start: each point against its leaves' other points, tree after tree, each leaf's rows
            // gathered once for the points of this thread in it (at a million points, reading them for every point
            // missed the cache 320 times a point); then random points while a list is short.
            let largestLeaf = forest.largestLeaf
            forEachRange(mine, workers: workers, local: &local, stamps: &stamps, m: m) { block, lists, stamp in
                var counts = [Int](repeating: 0, count: block.count)       // (points of the block): each list's length
                var leafRows = [E](repeating: E(), count: largestLeaf * dims)  // (largest leaf, D)
                leafRows.withUnsafeMutableBufferPointer { leafRows in
                    let gathered = leafRows.baseAddress!
                    for tree in forest.trees {
                        for leaf in 0..<(tree.leafStart.count - 1) {
                            let members = tree.order[Int(tree.leafStart[leaf])..<Int(tree.leafStart[leaf + 1])]
                            guard members.contains(where: { block.contains(Int($0)) }) else { continue }
                            for (i, v) in members.enumerated() {
                                (gathered + i * dims).update(from: x.row(Int(v)), count: dims)
                            }
                            for (i, u) in members.enumerated() where block.contains(Int(u)) {
                                let slot = Int(u) - block.lowerBound
                                var list = Candidates(row: lists + slot * m, m: m, count: counts[slot])
                                for (j, v) in members.enumerated() where j != i {
                                    let d2 = E.squaredDistance(gathered + i * dims, gathered + j * dims, dims)
                                    // A point offered before is held still or would not go in now: as if stamped.
                                    guard list.admits(Int(v), distance: d2), !list.holds(Int(v)) else { continue }
                                    list.offer(Int(v), distance: d2, fresh: true)
                                }
                                counts[slot] = list.count
                            }
                        }
                    }
                }
                for u in block where counts[u - block.lowerBound] < m {  // a short list holds all its leaves offered
                    let row = lists + (u - block.lowerBound) * m
                    var list = Candidates(row: row, m: m, count: counts[u - block.lowerBound])
                    stamp[u] = u
                    for slot in 0..<list.count { stamp[Key.index(row[slot])] = u }
                    var draws = Xoshiro256(seed: options.seed, stream: 0x4E4E_4649_4C4C, index: UInt64(u))
                    while list.count < m {
                        let v = draws.nextInt(below: n)
                        guard stamp[v] != u else { continue }
                        stamp[v] = u
                        list.offer(v, distance: x.distance(u, v), fresh: true)
                    }
                }
                return 0
            }
            try gather()
            var updates: [Int] = []
            let capacity = max(m, 1) + 1
            for round in 0..<options.rounds {
                let hops = try graph.withUnsafeBufferPointer {
                    try Hops(graph: $0, count: n, m: m, capacity: capacity, threads: threads, communicator: communicator)
                }
                let token = (round + 1) * n
                // Pointers, not arrays, inside: an array's slice retains its buffer, and two threads retaining one
                // buffer contend for its count's cache line (13% of a million-point search in retains and releases).
                var changed = hops.withLists { hops in
                    graph.withUnsafeBufferPointer { graph in
                        forEachRange(mine, workers: workers, local: &local, stamps: &stamps, m: m) { block, rows, stamp in
                            join(block, rows: rows, stamp: stamp, token: token, graph: graph.baseAddress!, hops: hops,
                                 points: x, m: m, capacity: capacity)
                        }
                    }
                }
                changed = try communicator.allreduce(changed, .sum)
                try gather()
                updates.append(changed)
                if Double(changed) <= options.delta * Double(n * k) { break }
            }
            // Each rank turns its share of the points' rows back into the points' own numbers, then the ranks gather them.
            var indices = [Int](repeating: 0, count: mine.count * k), distances = [Float](repeating: 0, count: mine.count * k)
            indices.withUnsafeMutableBufferPointer { indexBuffer in
                distances.withUnsafeMutableBufferPointer { distanceBuffer in
                    let indices = SharedPointer(indexBuffer.baseAddress!), distances = SharedPointer(distanceBuffer.baseAddress!)
                    inParts(mine, threads: threads) { part in
                        var row = [(Float, Int)](repeating: (0, 0), count: m)
                        for u in part {
                            let p = Int(position[u]), out = (u - mine.lowerBound) * k
                            // By (distance, position) in the graph: in the points' own numbers only ties move.
                            for slot in 0..<m {
                                let key = graph[p * m + slot], entry = (Key.distance(key), original[Key.index(key)])
                                var at = slot
                                while at > 0 && entry < row[at - 1] { row[at] = row[at - 1]; at -= 1 }
                                row[at] = entry
                            }
                            indices.base[out] = u  // (its distance 0)
                            for slot in 0..<m {
                                indices.base[out + 1 + slot] = row[slot].1
                                distances.base[out + 1 + slot] = row[slot].0.squareRoot()
                            }
                        }
                    }
                }
            }
            if communicator.size > 1 {
                indices = try communicator.allgatherv(indices)
                distances = try communicator.allgatherv(distances)
            }
            return Result(indices: indices, distances: distances, rounds: updates.count, updates: updates)
        } }
    }

    /// One round's work on the points of `block`: each one's list, from the previous round's `graph`, offered its
    /// partners' partners that it has not seen this round (stamped `token + u`); `rows` are the block's (count, m)
    /// rows. Returns the entries changed. A point's candidates are listed first (the stamp checked without a branch,
    /// so that the stamps' cache misses overlap), then measured in one call that fetches the rows ahead, then offered
    /// in the order visited, as one loop would offer them. A million points' rows, stamps and partners fit no cache:
    /// their rounds took 0.75x the time with the listing, 0.65x with the rows fetched ahead (2 ranks, 10 dimensions).
    static func join<E: SearchElement>(_ block: Range<Int>, rows: UnsafeMutablePointer<Int>, stamp: UnsafeMutablePointer<Int>,
                                       token: Int, graph: UnsafePointer<Int>, hops: Hops.Lists, points x: PointRows<E>,
                                       m: Int, capacity: Int) -> Int {
        let most = 3 * capacity * capacity  // fresh x (fresh + old) + old x fresh partners
        let found = UnsafeMutablePointer<Int32>.allocate(capacity: most)   // (most) a point's unseen candidates
        let measured = UnsafeMutablePointer<Float>.allocate(capacity: most)  // (most) their squared distances
        defer { found.deallocate(); measured.deallocate() }
        var changes = 0
        for u in block {
            let row = rows + (u - block.lowerBound) * m
            // The list as it stands, every entry now old; its members need no second look.
            for slot in 0..<m { row[slot] = graph[u * m + slot] & ~Key.freshBit }
            stamp[u] = token + u
            for slot in 0..<m { stamp[Key.index(row[slot])] = token + u }
            var count = 0
            func visit(_ v: Int32) {
                found[count] = v
                count += stamp[Int(v)] != token + u ? 1 : 0
                stamp[Int(v)] = token + u
            }
            for p in hops.fresh(u) {
                for v in hops.fresh(Int(p)) { visit(v) }
                for v in hops.old(Int(p)) { visit(v) }
            }
            for p in hops.old(u) {
                for v in hops.fresh(Int(p)) { visit(v) }
            }
            x.distances(measured, from: u, to: found, count: count)
            var list = Candidates(row: row, m: m, full: true)
            for i in 0..<count where list.offer(Int(found[i]), distance: measured[i], fresh: true) { changes += 1 }
        }
        return changes
    }

    /// Runs `body(points, rows, stamps)` on `share` split into one range of points per thread, each with its own
    /// stamp array; rows are the range's rows of this rank's (share.count, m) block. Returns the sum of the results.
    @discardableResult
    static func forEachRange(_ share: Range<Int>, workers: Int, local: inout [Int], stamps: inout [[Int]], m: Int,
                             _ body: (Range<Int>, UnsafeMutablePointer<Int>, UnsafeMutablePointer<Int>) -> Int) -> Int {
        var totals = [Int](repeating: 0, count: workers)
        let stampPointers = stamps.indices.map { w in stamps[w].withUnsafeMutableBufferPointer { SharedPointer($0.baseAddress!) } }
        local.withUnsafeMutableBufferPointer { rows in
            let out = SharedPointer(rows.baseAddress!)
            totals.withUnsafeMutableBufferPointer { totalBuffer in
                let sums = SharedPointer(totalBuffer.baseAddress!)
                withoutActuallyEscaping(body) { body in
                    let call = UncheckedBox(value: body)
                    DispatchQueue.concurrentPerform(iterations: workers) { w in
                        let part = contiguousShare(total: share.count, rank: w, size: workers)
                        let points = (share.lowerBound + part.lowerBound)..<(share.lowerBound + part.upperBound)
                        sums.base[w] = call.value(points, out.base + part.lowerBound * m, stampPointers[w].base)
                    }
                }
            }
        }
        return totals.reduce(0, +)
    }

    @inline(__always)
    static func squaredDistance<E: SearchElement>(_ x: UnsafeMutablePointer<E>, _ u: Int, _ v: Int, _ dims: Int) -> Float {
        E.squaredDistance(x + u * dims, x + v * dims, dims)
    }
}

/// The points in the search's order: a copy in that order, or (`point` given: position -> row) the caller's rows read
/// through it.
struct PointRows<E: SearchElement> {
    let base: SharedPointer<E>
    let dims: Int
    let point: UnsafePointer<Int>?

    @inline(__always) func distance(_ u: Int, _ v: Int) -> Float {
        guard let point else { return NNDescent.squaredDistance(base.base, u, v, dims) }
        return NNDescent.squaredDistance(base.base, point[u], point[v], dims)
    }

    @inline(__always) func row(_ u: Int) -> UnsafeMutablePointer<E> { base.base + (point?[u] ?? u) * dims }

    /// out[i] = distance(u, rows[i]) for i < count.
    @inline(__always) func distances(_ out: UnsafeMutablePointer<Float>, from u: Int, to rows: UnsafePointer<Int32>, count: Int) {
        E.squaredDistances(out, rows: base.base, dims: dims, from: u, to: rows, count: count, through: point)
    }
}

/// A list entry packed in one Int: the squared distance's bits above, a fresh bit, the index below, so that ordering
/// the keys (fresh bit cleared) orders by (distance, index); non-negative floats' bits order as the floats do.
enum Key {
    static let freshBit = 1 << 31
    @inline(__always) static func make(_ index: Int, _ d2: Float, fresh: Bool) -> Int {
        Int(d2.bitPattern) << 32 | (fresh ? freshBit : 0) | index
    }
    @inline(__always) static func index(_ key: Int) -> Int { key & 0x7FFF_FFFF }
    @inline(__always) static func distance(_ key: Int) -> Float { Float(bitPattern: UInt32(truncatingIfNeeded: key >> 32)) }
    @inline(__always) static func order(_ key: Int) -> Int { key & ~freshBit }
}

/// One point's list of its m nearest so far, kept sorted by (distance, index) in `row`.
struct Candidates {
    let row: UnsafeMutablePointer<Int>
    let m: Int
    private(set) var count: Int

    init(row: UnsafeMutablePointer<Int>, m: Int, full: Bool = false) {
        self.init(row: row, m: m, count: full ? m : 0)
    }

    /// The first `count` of row already hold a sorted list.
    init(row: UnsafeMutablePointer<Int>, m: Int, count: Int) {
        self.row = row
        self.m = m
        self.count = count
    }

    /// Whether v at this distance would go in: the list is short, or v is nearer than the last.
    @inline(__always)
    func admits(_ v: Int, distance d2: Float) -> Bool {
        count < m || Key.order(Key.make(v, d2, fresh: false)) < Key.order(row[m - 1])
    }

    /// Whether v is listed.
    @inline(__always)
    func holds(_ v: Int) -> Bool {
        for slot in 0..<count where Key.index(row[slot]) == v { return true }
        return false
    }

    /// Inserts v when it is nearer than the last; true when it went in.
    @discardableResult @inline(__always)
    mutating func offer(_ v: Int, distance d2: Float, fresh: Bool) -> Bool {
        let key = Key.make(v, d2, fresh: fresh), order = Key.order(key)
        if count == m {
            guard order < Key.order(row[m - 1]) else { return false }
        } else {
            count += 1
        }
        var slot = count - 1
        while slot > 0 && Key.order(row[slot - 1]) > order { row[slot] = row[slot - 1]; slot -= 1 }
        row[slot] = key
        return true
    }
}

/// Each point's partners for a round: its fresh and its old neighbours, each its own listed ones first, then the
/// points that list it (in index order), at most `capacity` of each kind. O(N m), split over the ranks and their
/// threads: each takes a contiguous range of the points, reads the whole graph and writes its range's partners only;
/// the ranks then gather their ranges.
struct Hops {
    private var freshStart: [Int], freshList: [Int32], oldStart: [Int], oldList: [Int32]

    /// Collective.
    init(graph: UnsafeBufferPointer<Int>, count n: Int, m: Int, capacity: Int, threads: Int,
         communicator: Communicator) throws {
        (freshStart, freshList) = try Hops.partners(fresh: true, graph: graph, count: n, m: m, capacity: capacity,
                                                   threads: threads, communicator: communicator)
        (oldStart, oldList) = try Hops.partners(fresh: false, graph: graph, count: n, m: m, capacity: capacity,
                                               threads: threads, communicator: communicator)
    }

    /// The (N + 1) starts and the lists of the partners of one kind. Two passes over the graph: one counts each
    /// point's own entries of that kind and the entries of that kind that list it, one writes them.
    static func partners(fresh: Bool, graph: UnsafeBufferPointer<Int>, count n: Int, m: Int, capacity: Int, threads: Int,
                         communicator: Communicator) throws -> (start: [Int], list: [Int32]) {
        let mine = contiguousShare(total: n, rank: communicator.rank, size: communicator.size)
        let kind = fresh ? Key.freshBit : 0
        // (N) how many partners each point has: its own entries, then the entries listing it, at most `capacity` (own
        // ones alone are m < capacity). This rank's share counted, then gathered.
        var counts = [Int32](repeating: 0, count: n)
        counts.withUnsafeMutableBufferPointer { countBuffer in
            let count = SharedPointer(countBuffer.baseAddress!)
            inParts(mine, threads: threads) { range in
                for u in 0..<n {
                    for slot in 0..<m {
                        let key = graph[u * m + slot], p = Key.index(key)
                        guard key & Key.freshBit == kind else { continue }
                        if range.contains(u) { count.base[u] += 1 }
                        if range.contains(p) { count.base[p] += 1 }
                    }
                }
                for p in range { count.base[p] = min(Int32(capacity), count.base[p]) }
            }
        }
        if communicator.size > 1 {
            let share = Array(counts[mine])
            try share.withUnsafeBufferPointer { send in
                try counts.withUnsafeMutableBufferPointer {
                    try communicator.allgatherv(send, into: $0, counts: shareCounts(total: n, size: communicator.size))
                }
            }
        }
        var start = [Int](repeating: 0, count: n + 1)
        for p in 0..<n { start[p + 1] = start[p] + Int(counts[p]) }
        // (this rank's partners) its range of the lists: own entries first, then the entries listing the point in
        // index order.
        var local = [Int32](repeating: 0, count: start[mine.upperBound] - start[mine.lowerBound])
        local.withUnsafeMutableBufferPointer { localBuffer in
            start.withUnsafeBufferPointer { start in
                guard let base = localBuffer.baseAddress else { return }  // no partners of this kind
                let list = SharedPointer(base)
                inParts(mine, threads: threads) { range in
                    // (range) where the point's next partner goes in this rank's lists
                    var next = range.map { start[$0] - start[mine.lowerBound] }
                    for u in range {
                        for slot in 0..<m where graph[u * m + slot] & Key.freshBit == kind {
                            list.base[next[u - range.lowerBound]] = Int32(Key.index(graph[u * m + slot]))
                            next[u - range.lowerBound] += 1
                        }
                    }
                    for u in 0..<n {
                        for slot in 0..<m {
                            let key = graph[u * m + slot], p = Key.index(key)
                            guard key & Key.freshBit == kind && range.contains(p),
                                  next[p - range.lowerBound] < start[p + 1] - start[mine.lowerBound] else { continue }
                            list.base[next[p - range.lowerBound]] = Int32(u)
                            next[p - range.lowerBound] += 1
                        }
                    }
                }
            }
        }
        guard communicator.size > 1 else { return (start, local) }
        var list = [Int32](repeating: 0, count: start[n])
        let shares = (0..<communicator.size).map {
            let share = contiguousShare(total: n, rank: $0, size: communicator.size)
            return start[share.upperBound] - start[share.lowerBound]
        }
        try local.withUnsafeBufferPointer { send in
            try list.withUnsafeMutableBufferPointer { try communicator.allgatherv(send, into: $0, counts: shares) }
        }
        return (start, list)
    }

    /// Runs `body` with the lists read through pointers, valid for the call only.
    func withLists<R>(_ body: (Lists) throws -> R) rethrows -> R {
        try freshStart.withUnsafeBufferPointer { freshStart in
            try freshList.withUnsafeBufferPointer { freshList in
                try oldStart.withUnsafeBufferPointer { oldStart in
                    try oldList.withUnsafeBufferPointer { oldList in
                        try body(Lists(freshStart: freshStart, freshList: freshList, oldStart: oldStart, oldList: oldList))
                    }
                }
            }
        }
    }

    struct Lists {
        let freshStart: UnsafeBufferPointer<Int>, freshList: UnsafeBufferPointer<Int32>
        let oldStart: UnsafeBufferPointer<Int>, oldList: UnsafeBufferPointer<Int32>

        /// u's fresh partners.
        @inline(__always) func fresh(_ u: Int) -> UnsafeBufferPointer<Int32> {
            UnsafeBufferPointer(rebasing: freshList[freshStart[u]..<freshStart[u + 1]])
        }

        /// u's old partners.
        @inline(__always) func old(_ u: Int) -> UnsafeBufferPointer<Int32> {
            UnsafeBufferPointer(rebasing: oldList[oldStart[u]..<oldStart[u + 1]])
        }
    }
}

/// Random-projection trees: each splits its points by the hyperplane halfway between two of them drawn at random,
/// until a leaf holds at most `leafSize`. Tree t draws from (seed, t) only; the ranks and threads build them in parallel.
struct Forest {
    struct Tree {
        var order: [Int32]       // the points, leaf after leaf
        var leafStart: [Int32]   // (leaves + 1)
    }

    var trees: [Tree]

    /// The most points a leaf of any tree holds.
    var largestLeaf: Int {
        trees.map { tree in zip(tree.leafStart.dropFirst(), tree.leafStart).map { Int($0 - $1) }.max() ?? 0 }.max() ?? 0
    }

    /// The trees over the points renumbered by `position` (point -> new number).
    mutating func renumber(_ position: [Int32]) {
        for t in trees.indices {
            for slot in trees[t].order.indices { trees[t].order[slot] = position[Int(trees[t].order[slot])] }
        }
    }

    /// The trees split over the ranks (tree t built on rank t mod p, on its threads), each then sent from its
    /// builder to every rank: tree t draws from (seed, t) only, so the forest is the same on any split. Collective.
    init<E: SearchElement>(points x: SharedPointer<E>, count n: Int, dims: Int, trees count: Int, leafSize: Int, seed: UInt64,
                           threads: Int, communicator: Communicator) throws {
        let mine = Array(stride(from: communicator.rank, to: count, by: communicator.size))
        var built = [Tree?](repeating: nil, count: count)
        built.withUnsafeMutableBufferPointer { buffer in
            let out = SharedPointer(buffer.baseAddress!)
            let workers = max(1, min(threads, mine.count))
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                guard w < mine.count else { return }  // a rank that builds no tree
                var scratch = Scratch<E>(count: n, dims: dims)  // one a thread
                for t in stride(from: w, to: mine.count, by: workers) {
                    out.base[mine[t]] = Forest.build(x.base, count: n, dims: dims, leafSize: leafSize, seed: seed, tree: mine[t],
                                                     scratch: &scratch)
                }
            }
        }
        trees = []
        for t in 0..<count {
            let builder = t % communicator.size
            guard communicator.size > 1 else { trees.append(built[t]!); continue }
            var order = built[t]?.order ?? [Int32](repeating: 0, count: n)
            let leaves = try communicator.allreduce(built[t]?.leafStart.count ?? 0, .max)
            var leafStart = built[t]?.leafStart ?? [Int32](repeating: 0, count: leaves)
            try communicator.broadcast(&order, root: builder)
            try communicator.broadcast(&leafStart, root: builder)
            trees.append(built[t] ?? Tree(order: order, leafStart: leafStart))
        }
    }

    /// Rows of at most this many elements are carried along as a tree partitions its points (wider rows stream well
    /// from where they lie), when their two copies take at most `carriedBytes` a builder.
    static let carriedDims = 64
    static let carriedBytes = 256 << 20

    /// A builder's working memory, kept from one tree to the next (fresh memory is slow to touch). `carried`: the
    /// points' rows move with the tree's order, so that every split reads them in sequence (at a million points in 10
    /// dimensions, reading them through the order missed the cache at every split); the same tree either way.
    struct Scratch<E: SearchElement> {
        let carried: Bool
        var source: [Int32]  // (N): a split's new slot -> its old slot
        var spare: [Int32]   // (N): the split's new order, before it is copied back
        var rows: [E]        // (N, D) when carried: the points' rows in the tree's order
        var moved: [E]       // (N, D) when carried: the split's rows, before they are copied back

        init(count n: Int, dims: Int, carry: Bool? = nil) {
            carried = carry ?? (dims <= carriedDims && 2 * n * dims * MemoryLayout<E>.stride <= carriedBytes)
            source = [Int32](repeating: 0, count: n)
            spare = source
            rows = [E](repeating: E(), count: carried ? n * dims : 0)
            moved = rows
        }
    }

    static func build<E: SearchElement>(_ x: UnsafeMutablePointer<E>, count n: Int, dims: Int, leafSize: Int, seed: UInt64,
                                        tree: Int, scratch: inout Scratch<E>) -> Tree {
        precondition(scratch.source.count == n && (!scratch.carried || scratch.rows.count == n * dims),
                     "a scratch of another size")
        var rng = Xoshiro256(seed: seed, stream: 0x5250_5452_4545, index: UInt64(tree))
        var order = (0..<n).map { Int32($0) }
        let carried = scratch.carried
        if carried { scratch.rows.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: x, count: n * dims) } }
        var leafStart: [Int32] = []
        var pending = [(0, n)]  // ranges of `order`, depth first, the left half next
        var normal = [Float](repeating: 0, count: dims)
        scratch.rows.withUnsafeMutableBufferPointer { rowBuffer in
            scratch.moved.withUnsafeMutableBufferPointer { movedBuffer in
                func row(_ slot: Int) -> UnsafeMutablePointer<E> {
                    carried ? rowBuffer.baseAddress! + slot * dims : x + Int(order[slot]) * dims
                }
                while let (lower, upper) = pending.popLast() {
                    let size = upper - lower
                    guard size > leafSize else { leafStart.append(Int32(lower)); continue }
                    let slotA = lower + rng.nextInt(below: size)
                    var slotB = lower + rng.nextInt(below: size - 1)
                    if order[slotB] == order[slotA] { slotB = upper - 1 }
                    let a = row(slotA), b = row(slotB)
                    var offset: Float = 0
                    for e in 0..<dims {
                        normal[e] = a[e].coordinate - b[e].coordinate
                        offset += normal[e] * (a[e].coordinate + b[e].coordinate) * 0.5
                    }
                    var left = lower, right = upper
                    for slot in lower..<upper {  // stable: the left side in order from the front, the right from the back
                        let side = E.side(normal, row(slot), dims, start: -offset)
                        let goesLeft = side < 0 || (side == 0 && rng.next() & 1 == 0)
                        if goesLeft {
                            scratch.source[left] = Int32(slot)
                            left += 1
                        } else {
                            right -= 1
                            scratch.source[right] = Int32(slot)
                        }
                    }
                    var middle = left
                    if middle - lower < 1 || upper - middle < 1 { middle = lower + size / 2 }  // all on one side (equal points)
                    else { scratch.source[middle..<upper].reverse() }
                    for slot in lower..<upper { scratch.spare[slot] = order[Int(scratch.source[slot])] }
                    order.replaceSubrange(lower..<upper, with: scratch.spare[lower..<upper])
                    if carried {
                        let from = rowBuffer.baseAddress!, to = movedBuffer.baseAddress!
                        for slot in lower..<upper {
                            (to + slot * dims).update(from: from + Int(scratch.source[slot]) * dims, count: dims)
                        }
                        (from + lower * dims).update(from: to + lower * dims, count: size * dims)
                    }
                    pending.append((middle, upper))
                    pending.append((lower, middle))
                }
            }
        }
        leafStart.append(Int32(n))
        return Tree(order: order, leafStart: leafStart)
    }
}

extension NNDescent {
    /// The share of the true neighbours that `indices` (N, k, self first) holds, over `sample` points drawn with
    /// `seed`: for each, the exact search of it alone (a listed neighbour counts when it is no farther than the true
    /// k-th, so that ties at equal distance count either way). Collective: the ranks split the sample.
    public static func recall(points: [Float], count n: Int, dims: Int, k: Int, indices: [Int], sample: Int, seed: UInt64,
                              communicator: Communicator) throws -> Double {
        try points.withUnsafeBufferPointer {
            try recall(points: $0, count: n, dims: dims, k: k, indices: indices, sample: sample, seed: seed, communicator: communicator)
        }
    }

    /// As above, of points the caller holds. Collective.
    public static func recall(points: UnsafeBufferPointer<Float>, count n: Int, dims: Int, k: Int, indices: [Int], sample: Int,
                              seed: UInt64, communicator: Communicator) throws -> Double {
        try recall(points, count: n, dims: dims, k: k, indices: indices, sample: sample, seed: seed, communicator: communicator)
    }

    /// As above, of bytes. Collective.
    public static func recall(points: UnsafeBufferPointer<UInt8>, count n: Int, dims: Int, k: Int, indices: [Int], sample: Int,
                              seed: UInt64, communicator: Communicator) throws -> Double {
        try recall(points, count: n, dims: dims, k: k, indices: indices, sample: sample, seed: seed, communicator: communicator)
    }

    static func recall<E: SearchElement>(_ points: UnsafeBufferPointer<E>, count n: Int, dims: Int, k: Int, indices: [Int],
                                         sample: Int, seed: UInt64, communicator: Communicator) throws -> Double {
        precondition(points.count >= n * dims && indices.count >= n * k, "recall: fewer points or neighbours than \(n) x \(dims), \(k)")
        let m = k - 1
        guard m >= 1 else { return 1 }
        var draws = Xoshiro256(seed: seed, stream: 0x5245_4341_4C4C)
        let checked = sample >= n ? Array(0..<n) : (0..<sample).map { _ in draws.nextInt(below: n) }
        let mine = contiguousShare(total: checked.count, rank: communicator.rank, size: communicator.size)
        var hits = [Int](repeating: 0, count: mine.count)
        let x = SharedPointer(points.baseAddress!)
        hits.withUnsafeMutableBufferPointer { out in
            let hitsOut = SharedPointer(out.baseAddress!)
            let workers = max(1, min(BLAS.threads, mine.count))
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                var nearest = [Float]()
                for local in contiguousShare(total: mine.count, rank: w, size: workers) {
                    let u = checked[mine.lowerBound + local]
                    nearest.removeAll(keepingCapacity: true)
                    for v in 0..<n where v != u { nearest.append(squaredDistance(x.base, u, v, dims)) }
                    nearest.sort()
                    let kth = nearest[m - 1]
                    var count = 0
                    for slot in 1...m {
                        let v = indices[u * k + slot]
                        if v != u && squaredDistance(x.base, u, v, dims) <= kth { count += 1 }
                    }
                    hitsOut.base[local] = count
                }
            }
        }
        let total = try communicator.allreduce(hits.reduce(0, +), .sum)
        return Double(total) / Double(checked.count * m)
    }
}
