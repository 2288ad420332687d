// N2D's parts: the exact neighbour search (and its split over ranks), the fuzzy graph, the spectral start (Jacobi
// eigenvectors), the Gaussian mixture, and the whole of UMAP + mixture on blobs whose clusters are known.
@testable import Clustering
import Collective
import Foundation
import Tensor
import TestSupport
import XCTest

final class N2DTests: XCTestCase {
    /// Points on well-separated blobs in `dims` dimensions: (points, labels), seeded.
    func blobs(perBlob: Int, blobs: Int, dims: Int, seed: UInt64, spread: Double = 0.3) -> ([Float], [Int32]) {
        var rng = Xoshiro256(seed: seed)
        var points: [Float] = [], labels: [Int32] = []
        for b in 0..<blobs {
            let centre = (0..<dims).map { d in Double((b * 7 + d * 3) % 11) * 2.0 }
            for _ in 0..<perBlob {
                points += centre.map { Float($0 + rng.nextNormal() * spread) }
                labels.append(Int32(b))
            }
        }
        return (points, labels)
    }

    func testNeighboursAreTheNearestAndTheSameOnAnyRankCount() throws {
        let (points, _) = blobs(perBlob: 20, blobs: 3, dims: 4, seed: 1)
        let n = 60, k = 6
        let one = try UMAP.nearestNeighbours(points: points, count: n, dims: 4, k: k, communicator: SingleProcessCommunicator())
        for i in 0..<n {
            XCTAssertEqual(one.indices[i * k], i, "a point is its own first neighbour")
            var brute: [(Float, Int)] = []
            for j in 0..<n where j != i {
                var d: Float = 0
                for e in 0..<4 { let v = points[i * 4 + e] - points[j * 4 + e]; d += v * v }
                brute.append((d.squareRoot(), j))
            }
            brute.sort { (a: (Float, Int), b: (Float, Int)) -> Bool in a.0 < b.0 || (a.0 == b.0 && a.1 < b.1) }
            XCTAssertEqual(Array(one.indices[(i * k + 1)..<((i + 1) * k)]), brute.prefix(k - 1).map(\.1))
        }
        let split = try InProcessWorld.run(ranks: 3) { c in
            try UMAP.nearestNeighbours(points: points, count: n, dims: 4, k: k, communicator: c)
        }
        for result in split {
            XCTAssertEqual(result.indices, one.indices)
            XCTAssertEqual(result.distances.map(\.bitPattern), one.distances.map(\.bitPattern))
        }
    }

    /// NN-descent: a high recall against the exact search, and the same graph bit for bit however the points are split
    /// over ranks and threads (each round's rows depend on the previous round's whole graph only).
    func testNNDescentFindsTheNeighboursAndIsTheSameOnAnySplit() throws {
        let (points, _) = blobs(perBlob: 300, blobs: 4, dims: 5, seed: 6, spread: 1.5)
        let n = 1200, k = 10
        let options: NNDescentOptions = {
            var o = NNDescentOptions()
            o.leafSize = 12  // small leaves: the rounds, not the forest, find most neighbours
            o.trees = 2
            return o
        }()
        let exact = try UMAP.nearestNeighbours(points: points, count: n, dims: 5, k: k, communicator: SingleProcessCommunicator())
        let one = try NNDescent.neighbours(points: points, count: n, dims: 5, k: k, options: options, threads: 1,
                                           communicator: SingleProcessCommunicator())
        XCTAssertGreaterThan(one.rounds, 1, "the rounds did work")
        var same = 0
        for i in 0..<n {
            XCTAssertEqual(one.indices[i * k], i)
            let found = Set(one.indices[(i * k + 1)..<((i + 1) * k)])
            XCTAssertEqual(found.count, k - 1, "no point listed twice")
            XCTAssertFalse(found.contains(i))
            same += found.intersection(exact.indices[(i * k + 1)..<((i + 1) * k)]).count
            for slot in 1..<(k - 1) { XCTAssertLessThanOrEqual(one.distances[i * k + slot], one.distances[i * k + slot + 1]) }
        }
        let recall = Double(same) / Double(n * (k - 1))
        print(String(format: "NN-descent recall %.4f in %d rounds (changes %@)", recall, one.rounds, "\(one.updates)"))
        XCTAssertGreaterThan(recall, 0.97)
        XCTAssertEqual(try NNDescent.recall(points: points, count: n, dims: 5, k: k, indices: exact.indices, sample: 50, seed: 1,
                                            communicator: SingleProcessCommunicator()), 1)
        for (ranks, threads) in [(1, 3), (2, 1), (3, 2)] {
            let split = try InProcessWorld.run(ranks: ranks) { c in
                try NNDescent.neighbours(points: points, count: n, dims: 5, k: k, options: options, threads: threads, communicator: c)
            }
            for result in split {
                XCTAssertEqual(result.indices, one.indices, "\(ranks) ranks x \(threads) threads")
                XCTAssertEqual(result.distances.map(\.bitPattern), one.distances.map(\.bitPattern))
                XCTAssertEqual(result.updates, one.updates)
            }
        }
    }

    /// The forest's start, taken leaf after leaf on each leaf's gathered rows with a point already offered skipped by
    /// its list, is the per-point loop with stamps it replaced, bit for bit: on equal points, on leaves too small
    /// for a list (random points fill it, some drawn twice or listed already), on 1 to 3 ranks x 1 to 2 threads.
    /// The rounds after it (candidates listed, then measured, then offered; partners built in two passes) are the
    /// per-point loop of `referenceRound`, bit for bit, round after round.
    func testNNDescentStartAndRoundsMatchThePerPointLoops() throws {
        var (data, _) = blobs(perBlob: 150, blobs: 4, dims: 5, seed: 10, spread: 1)
        for i in 0..<40 {  // 40 copies of point 3
            for e in 0..<5 { data[(300 + i) * 5 + e] = data[3 * 5 + e] }
        }
        let points = data, n = 600, k = 9, m = k - 1
        var short = 0, redrawn = 0, partnersCut = 0
        for trees in [1, 3] {
            var options = NNDescentOptions()
            options.trees = trees
            options.leafSize = 9
            options.rounds = 0
            options.seed = 5
            // The reference: the loop of the release before, on the points renumbered by the first tree.
            var forest = try points.withUnsafeBufferPointer { x in
                try Forest(points: SharedPointer(UnsafeMutablePointer(mutating: x.baseAddress!)), count: n, dims: 5, trees: trees,
                           leafSize: 9, seed: 5, threads: 1, communicator: SingleProcessCommunicator())
            }
            let original = forest.trees[0].order.map(Int.init)
            var position = [Int32](repeating: 0, count: n)
            for (slot, u) in original.enumerated() { position[u] = Int32(slot) }
            forest.renumber(position)
            let leafOf = forest.trees.map { tree in  // tree -> point -> its leaf's points
                var leaf = [ArraySlice<Int32>](repeating: [], count: n)
                for l in 0..<(tree.leafStart.count - 1) {
                    let members = tree.order[Int(tree.leafStart[l])..<Int(tree.leafStart[l + 1])]
                    for u in members { leaf[Int(u)] = members }
                }
                return leaf
            }
            var x = original.flatMap { points[($0 * 5)..<($0 * 5 + 5)] }
            var rows = [Int](repeating: 0, count: n * m), stamp = [Int](repeating: -1, count: n)
            x.withUnsafeMutableBufferPointer { x in
                rows.withUnsafeMutableBufferPointer { rows in
                    for u in 0..<n {
                        var list = Candidates(row: rows.baseAddress! + u * m, m: m)
                        stamp[u] = u
                        for leaves in leafOf {
                            for v in leaves[u] where stamp[Int(v)] != u {
                                stamp[Int(v)] = u
                                list.offer(Int(v), distance: NNDescent.squaredDistance(x.baseAddress!, u, Int(v), 5), fresh: true)
                            }
                        }
                        if list.count < m { short += 1 }
                        var draws = Xoshiro256(seed: 5, stream: 0x4E4E_4649_4C4C, index: UInt64(u))
                        while list.count < m {
                            let v = draws.nextInt(below: n)
                            guard stamp[v] != u else { redrawn += 1; continue }
                            stamp[v] = u
                            list.offer(v, distance: NNDescent.squaredDistance(x.baseAddress!, u, v, 5), fresh: true)
                        }
                    }
                }
            }
            func converted(_ rows: [Int]) -> (indices: [Int], distances: [Float]) {
                var indices = [Int](), distances = [Float]()
                for u in 0..<n {
                    let p = Int(position[u])
                    let row = (0..<m).map { (Key.distance(rows[p * m + $0]), original[Key.index(rows[p * m + $0])]) }
                        .sorted { $0 < $1 }
                    indices += [u] + row.map(\.1)
                    distances += [0] + row.map { $0.0.squareRoot() }
                }
                return (indices, distances)
            }
            // The rounds, as the loop of the release before ran them, until one changes too few entries.
            var graph = rows, updates: [Int] = []
            for _ in 0..<NNDescentOptions().rounds {
                let (changed, cut) = x.withUnsafeMutableBufferPointer { x in
                    referenceRound(&graph, count: n, m: m, capacity: m + 1, dims: 5, x: x.baseAddress!)
                }
                partnersCut += cut
                updates.append(changed)
                if Double(changed) <= NNDescentOptions().delta * Double(n * k) { break }
            }
            XCTAssertGreaterThan(updates.count, 2, "the rounds did work")
            for rounds in [0, NNDescentOptions().rounds] {
                let search = { var o = options; o.rounds = rounds; return o }()
                let (indices, distances) = converted(rounds == 0 ? rows : graph)
                for (ranks, threads) in [(1, 1), (1, 2), (2, 1), (3, 2)] {
                    let split = try InProcessWorld.run(ranks: ranks) { c in
                        try NNDescent.neighbours(points: points, count: n, dims: 5, k: k, options: search, threads: threads,
                                                 communicator: c)
                    }
                    for result in split {  // (whole arrays: short messages)
                        let run = "\(trees) trees, \(rounds) rounds, \(ranks) ranks x \(threads) threads"
                        XCTAssertTrue(result.indices == indices, run)
                        XCTAssertTrue(result.distances.map(\.bitPattern) == distances.map(\.bitPattern), run)
                        XCTAssertEqual(result.updates, rounds == 0 ? [] : updates, run)
                    }
                }
            }
        }
        XCTAssertGreaterThan(short, 0, "some leaves held too few others")
        XCTAssertGreaterThan(redrawn, 0, "some draws fell on a point seen already")
        XCTAssertGreaterThan(partnersCut, 0, "some points had more partners of a kind than the capacity")
    }

    /// One NN-descent round as a plain loop: each point's partners by their definition (its own fresh or old entries
    /// in list order, then the points listing it as such in index order, at most `capacity` of each kind), then each
    /// point's list offered, in that order, the fresh partners' fresh and old partners and the old partners' fresh
    /// ones that it has not seen this round. `graph` holds (N, m) keys; returns the entries changed, and how many
    /// partner lists the capacity cut.
    func referenceRound(_ graph: inout [Int], count n: Int, m: Int, capacity: Int, dims: Int,
                        x: UnsafeMutablePointer<Float>) -> (changed: Int, cut: Int) {
        var cut = 0
        func partners(fresh: Bool) -> [[Int]] {
            var own = [[Int]](repeating: [], count: n), listing = [[Int]](repeating: [], count: n)
            for u in 0..<n {
                for slot in 0..<m where (graph[u * m + slot] & Key.freshBit != 0) == fresh {
                    own[u].append(Key.index(graph[u * m + slot]))
                    listing[Key.index(graph[u * m + slot])].append(u)
                }
            }
            cut += (0..<n).filter { own[$0].count + listing[$0].count > capacity }.count
            return (0..<n).map { Array((own[$0] + listing[$0]).prefix(capacity)) }
        }
        let fresh = partners(fresh: true), old = partners(fresh: false)
        var next = graph.map { $0 & ~Key.freshBit }, changed = 0
        next.withUnsafeMutableBufferPointer { next in
            for u in 0..<n {
                var list = Candidates(row: next.baseAddress! + u * m, m: m, full: true)
                var seen: Set<Int> = [u]
                for slot in 0..<m { seen.insert(Key.index(next[u * m + slot])) }
                let visits = fresh[u].flatMap { fresh[$0] + old[$0] } + old[u].flatMap { fresh[$0] }
                for v in visits where seen.insert(v).inserted {
                    if list.offer(v, distance: NNDescent.squaredDistance(x, u, v, dims), fresh: true) { changed += 1 }
                }
            }
        }
        graph = next
        return (changed, cut)
    }

    /// A tree whose builder carries the points' rows along its splits (narrow points) is the tree it builds reading
    /// them where they lie, with its scratch kept from tree to tree, also where points are equal (sides drawn at
    /// random; all equal: splits that send all to one side).
    func testForestCarriesRowsToTheSameTree() {
        var (points, _) = blobs(perBlob: 200, blobs: 3, dims: 5, seed: 9, spread: 1)
        for i in 0..<80 {  // 50 copies of point 0 and 30 of point 1
            for e in 0..<5 { points[(100 + i) * 5 + e] = points[(i < 50 ? 0 : 1) * 5 + e] }
        }
        let equal = [Float](repeating: 0.5, count: 64 * 5)
        for (data, n, leafSize) in [(points, 600, 10), (equal, 64, 1)] {
            var source = data
            source.withUnsafeMutableBufferPointer { x in
                var carrying = Forest.Scratch<Float>(count: n, dims: 5, carry: true)
                var reading = Forest.Scratch<Float>(count: n, dims: 5, carry: false)
                for tree in 0..<6 {
                    let carried = Forest.build(x.baseAddress!, count: n, dims: 5, leafSize: leafSize, seed: 3, tree: tree,
                                               scratch: &carrying)
                    let read = Forest.build(x.baseAddress!, count: n, dims: 5, leafSize: leafSize, seed: 3, tree: tree,
                                            scratch: &reading)
                    XCTAssertTrue(carried.order == read.order, "\(n) points, tree \(tree)")  // (whole arrays: short messages)
                    XCTAssertTrue(carried.leafStart == read.leafStart, "\(n) points, tree \(tree)")
                    XCTAssertGreaterThan(carried.leafStart.count, n / leafSize / 2, "tree \(tree) split to small leaves")
                    XCTAssertEqual(Set(carried.order).count, n)
                }
            }
        }
    }

    /// Points too many to copy are read where they lie, through the search's order, instead of copied in it: the same
    /// graph bit for bit, on any split.
    func testNNDescentReadsLargeDataWhereItLies() throws {
        let (points, _) = blobs(perBlob: 100, blobs: 4, dims: 70, seed: 8, spread: 1.5)
        let n = 400, k = 8
        let copying: NNDescentOptions = {
            var o = NNDescentOptions()
            o.leafSize = 12
            return o
        }()
        let reading: NNDescentOptions = {
            var o = copying
            o.copyBytes = n * 70 * 4 - 1  // a byte short of the copy
            return o
        }()
        let copied = try NNDescent.neighbours(points: points, count: n, dims: 70, k: k, options: copying, threads: 1,
                                              communicator: SingleProcessCommunicator())
        XCTAssertGreaterThan(copied.rounds, 1, "the rounds did work")
        for (ranks, threads) in [(1, 1), (2, 1), (3, 2)] {
            let split = try InProcessWorld.run(ranks: ranks) { c in
                try NNDescent.neighbours(points: points, count: n, dims: 70, k: k, options: reading, threads: threads, communicator: c)
            }
            for result in split {  // (whole arrays: short messages)
                XCTAssertTrue(result.indices == copied.indices, "\(ranks) ranks x \(threads) threads")
                XCTAssertTrue(result.distances.map(\.bitPattern) == copied.distances.map(\.bitPattern), "\(ranks) x \(threads)")
            }
        }
    }

    /// Bytes' squared distances are exact on every body the CPU has (AVX-512, AVX2, scalar): rows of every length
    /// around the vector widths, the extremes 0 and 255, a sum past 2^32 (70,000 bytes 255 apart), and rows long
    /// enough that a 32-bit lane would wrap unless it is handed to the 64-bit total in time (1.1 M bytes 255 apart: 34,375
    /// steps of 130,050 a lane on AVX-512).
    func testByteDistanceIsExactOnEveryBody() {
        var rng = Xoshiro256(seed: 21)
        let lengths = [0, 1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 784, 16_383, 16_384, 16_417, 40_000, 70_000, 1_100_000]
        assertBodiesRun(Kernels.byteDistanceLevel, needs: ["avx2", "avx512bw"], what: "byte")
        for count in lengths {
            for pattern in (count > 100_000 ? 1..<3 : 0..<3) {
                let a: [UInt8] = (0..<count).map { _ in pattern == 0 ? UInt8(rng.nextInt(below: 256)) : (pattern == 1 ? 255 : 0) }
                let b: [UInt8] = (0..<count).map { _ in pattern == 0 ? UInt8(rng.nextInt(below: 256)) : (pattern == 1 ? 0 : 255) }
                var expected: UInt64 = 0
                for i in 0..<count { let d = Int(a[i]) - Int(b[i]); expected += UInt64(d * d) }
                for level in 0...2 {
                    XCTAssertEqual(Kernels.squaredDistance(a, b, count: count, level: level), expected,
                                   "\(count) bytes, pattern \(pattern), body \(min(level, Kernels.byteDistanceLevel))")
                }
            }
        }
        XCTAssertEqual(Kernels.squaredDistance([UInt8(255)], [UInt8(0)], count: 1), 65_025)
    }

    /// Float rows' squared distances and hyperplane sides are the same bits on every body the CPU has, and are the
    /// reference's sums: 32 partial sums added by a fixed tree, then the rest in order; rows narrower than 32 one
    /// sum in order, as the Swift loops of the release before (narrow points keep their graphs).
    func testFloatRowSumsAreTheSameOnEveryBody() {
        var rng = Xoshiro256(seed: 29)
        func reference(_ terms: [Float], start: Float) -> Float {
            var part = [Float](repeating: 0, count: 32), i = 0
            while i + 32 <= terms.count {
                for j in 0..<32 { part[j] += terms[i + j] }
                i += 32
            }
            var sum = start
            if i > 0 {
                var width = 16
                while width >= 1 {
                    for j in 0..<width { part[j] += part[j + width] }
                    width /= 2
                }
                sum = start + part[0]
            }
            while i < terms.count { sum += terms[i]; i += 1 }
            return sum
        }
        assertBodiesRun(Kernels.floatRowsLevel, needs: ["avx2", "avx512f"], what: "float row")
        for count in [0, 1, 10, 31, 32, 33, 63, 64, 70, 95, 784, 1_000] {
            let a = (0..<count).map { _ in Float(rng.nextNormal()) * 3 }, b = (0..<count).map { _ in Float(rng.nextNormal()) }
            let bytes: [UInt8] = (0..<count).map { _ in UInt8(rng.nextInt(below: 256)) }
            let start = Float(rng.nextNormal())
            let distance = reference((0..<count).map { (a[$0] - b[$0]) * (a[$0] - b[$0]) }, start: 0)
            let side = reference((0..<count).map { a[$0] * b[$0] }, start: start)
            let byteSide = reference((0..<count).map { a[$0] * Float(bytes[$0]) }, start: start)
            for level in 0...2 {
                let body = "\(count) floats, body \(min(level, Kernels.floatRowsLevel))"
                XCTAssertEqual(Kernels.squaredDistance(a, b, count: count, level: level).bitPattern, distance.bitPattern, body)
                XCTAssertEqual(Kernels.side(a, b, count: count, start: start, level: level).bitPattern, side.bitPattern, body)
                XCTAssertEqual(Kernels.side(a, bytes, count: count, start: start, level: level).bitPattern, byteSide.bitPattern,
                               body)
            }
            a.withUnsafeBufferPointer { a in
                b.withUnsafeBufferPointer { b in
                    XCTAssertEqual(Float.squaredDistance(a.baseAddress!, b.baseAddress!, count).bitPattern, distance.bitPattern)
                    XCTAssertEqual(Float.side(a.baseAddress!, b.baseAddress!, count, start: start).bitPattern, side.bitPattern)
                }
            }
            if count < 32 {  // the loops of the release before
                var d2: Float = 0, s = start
                for e in 0..<count { let t = a[e] - b[e]; d2 += t * t; s += a[e] * b[e] }
                XCTAssertEqual(distance.bitPattern, d2.bitPattern)
                XCTAssertEqual(side.bitPattern, s.bitPattern)
            }
        }
    }

    /// Many rows against one (NN-descent's candidates, fetched ahead) are the single pairs' sums, bit for bit: Float
    /// rows narrow and wide, bytes, on every body, for lists shorter and longer than the distance fetched ahead, the
    /// rows in order or read through a map.
    func testManyRowsAgainstOneAreThePairsSums() {
        var rng = Xoshiro256(seed: 31)
        let n = 60
        for dims in [1, 10, 31, 32, 33, 784] {
            let x = (0..<(n * dims)).map { _ in Float(rng.nextNormal()) }
            let bytes = (0..<(n * dims)).map { _ in UInt8(rng.nextInt(below: 256)) }
            for count in [0, 1, 7, 8, 9, 45] {
                let u = rng.nextInt(below: n)
                let rows = (0..<count).map { i in Int32(i == 3 ? u : rng.nextInt(below: n)) }  // u itself, and repeats
                let shuffled = (0..<n).map { ($0 * 7 + 3) % n }  // points read through a map: point r is row shuffled[r]
                for level in 0...2 {
                    for map in [nil, shuffled] {
                        var floats = [Float](repeating: .nan, count: count), fromBytes = floats
                        (map ?? []).withUnsafeBufferPointer { mapped in
                            let through = map == nil ? nil : mapped.baseAddress
                            Kernels.squaredDistances(&floats, rows: x, dims: dims, from: u, to: rows, count: count, through: through,
                                                     level: level)
                            Kernels.squaredDistances(&fromBytes, rows: bytes, dims: dims, from: u, to: rows, count: count,
                                                     through: through, level: level)
                        }
                        let row = { (r: Int) in map?[r] ?? r }
                        x.withUnsafeBufferPointer { x in
                            bytes.withUnsafeBufferPointer { bytes in
                                for (i, v) in rows.map(Int.init).enumerated() {
                                    let pair = Kernels.squaredDistance(x.baseAddress! + row(u) * dims, x.baseAddress! + row(v) * dims,
                                                                       count: dims, level: level)
                                    let bytePair = Kernels.squaredDistance(bytes.baseAddress! + row(u) * dims,
                                                                           bytes.baseAddress! + row(v) * dims, count: dims, level: level)
                                    let body = "\(dims) dims, \(count) rows, body \(level), map \(map != nil)"
                                    XCTAssertEqual(floats[i].bitPattern, pair.bitPattern, body)
                                    XCTAssertEqual(fromBytes[i], Float(bytePair), body)
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The widest body `level` says the CPU runs is the one its flags allow (`/proc/cpuinfo` where there is one), and
    /// the line the test prints says which bodies ran.
    func assertBodiesRun(_ level: Int, needs flags: [String], what: String) {
        print("distance kernels: the \(what) bodies up to \(["scalar", "AVX2", "AVX-512"][level]) run")
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return }
        let has = Set(line.split(separator: " ").map(String.init))
        XCTAssertEqual(level, has.contains(flags[1]) && has.contains("avx512f") ? 2 : (has.contains(flags[0]) ? 1 : 0))
    }

    /// NN-descent of bytes is the Float search of the same values where the Float sums are exact (bytes up to 15 in 12
    /// and in 40 dimensions: one sum in order, and the vector bodies' partial sums): the same trees, lists and rounds,
    /// so the same graph bit for bit, with equal points among them, on 1 to 3 ranks x 1 to 2 threads, copied in the
    /// search's order or read where they lie; and the exact search of bytes is that of their values.
    func testNNDescentOfBytesIsTheFloatSearchOfTheirValues() throws {
        for dims in [12, 40] { try assertBytesSearchLikeFloats(dims: dims) }
    }

    func assertBytesSearchLikeFloats(dims: Int) throws {
        var rng = Xoshiro256(seed: 17)
        let n = 500, k = 9
        var bytes = [UInt8](repeating: 0, count: n * dims)
        for i in 0..<n {
            let centre = i % 4
            for e in 0..<dims { bytes[i * dims + e] = UInt8(min(15, max(0, centre * 4 + rng.nextInt(below: 5) - 2 + (e % 3)))) }
        }
        for i in 0..<30 { for e in 0..<dims { bytes[(200 + i) * dims + e] = bytes[7 * dims + e] } }  // 30 copies of point 7
        let data = bytes, values = bytes.map { Float($0) }
        var options = NNDescentOptions()
        options.leafSize = 10
        options.trees = 3
        options.seed = 2
        let floats = try NNDescent.neighbours(points: values, count: n, dims: dims, k: k, options: options, threads: 1,
                                              communicator: SingleProcessCommunicator())
        XCTAssertGreaterThan(floats.rounds, 1, "the rounds did work")
        let exactFloats = try UMAP.nearestNeighbours(points: values, count: n, dims: dims, k: k,
                                                     communicator: SingleProcessCommunicator())
        let exactBytes = try InProcessWorld.run(ranks: 2) { c in
            try data.withUnsafeBufferPointer {
                try UMAP.nearestNeighbours(points: $0, count: n, dims: dims, k: k, communicator: c)
            }
        }
        for result in exactBytes {  // the exact search too
            XCTAssertTrue(result.indices == exactFloats.indices, "\(dims) dims, the exact search")
            XCTAssertTrue(result.distances.map(\.bitPattern) == exactFloats.distances.map(\.bitPattern), "\(dims) dims, exact")
        }
        var reading = options
        reading.copyBytes = n * dims - 1  // a byte short of the copy
        for (search, (ranks, threads)) in [(options, (1, 1)), (options, (2, 1)), (reading, (3, 2)), (reading, (1, 2))] {
            let split = try InProcessWorld.run(ranks: ranks) { c in
                try data.withUnsafeBufferPointer {
                    try NNDescent.neighbours(points: $0, count: n, dims: dims, k: k, options: search, threads: threads,
                                             communicator: c)
                }
            }
            for result in split {  // (whole arrays: short messages)
                XCTAssertTrue(result.indices == floats.indices, "\(dims) dims, \(ranks) ranks x \(threads) threads")
                XCTAssertTrue(result.distances.map(\.bitPattern) == floats.distances.map(\.bitPattern),
                              "\(dims) dims, \(ranks) x \(threads)")
                XCTAssertEqual(result.updates, floats.updates)
            }
        }
    }

    /// Wide bytes over their whole range (784 of them, as MNIST's pixels): the search finds the neighbours (recall
    /// against the exact search of the bytes), the same graph on any split; and UMAP of pixels hands on the neighbours
    /// of the bytes, by either search, their distances scaled by 1/255.
    func testWideBytesSearchAndUMAPOfPixels() throws {
        var rng = Xoshiro256(seed: 23)
        let n = 300, dims = 784, k = 8
        let prototypes = (0..<3).map { _ in (0..<dims).map { _ in rng.nextInt(below: 256) } }
        let bytes: [UInt8] = (0..<(n * dims)).map { j in
            UInt8(min(255, max(0, prototypes[(j / dims) % 3][j % dims] + rng.nextInt(below: 121) - 60)))
        }
        var options = NNDescentOptions()
        options.leafSize = 12
        let one = try bytes.withUnsafeBufferPointer {
            try NNDescent.neighbours(points: $0, count: n, dims: dims, k: k, options: options, threads: 1,
                                     communicator: SingleProcessCommunicator())
        }
        let recall = try bytes.withUnsafeBufferPointer {
            try NNDescent.recall(points: $0, count: n, dims: dims, k: k, indices: one.indices, sample: n, seed: 0,
                                 communicator: SingleProcessCommunicator())
        }
        let values = bytes.map { Float($0) }  // the Float search of the same values, which sums them rounded
        let floats = try NNDescent.neighbours(points: values, count: n, dims: dims, k: k, options: options, threads: 1,
                                              communicator: SingleProcessCommunicator())
        let floatRecall = try NNDescent.recall(points: values, count: n, dims: dims, k: k, indices: floats.indices, sample: n,
                                               seed: 0, communicator: SingleProcessCommunicator())
        print("recall of the bytes' search \(recall), of the Float search \(floatRecall)")
        XCTAssertGreaterThan(recall, 0.9)
        XCTAssertGreaterThan(recall, floatRecall - 0.02)
        let search = options
        let split = try InProcessWorld.run(ranks: 2) { c in
            try bytes.withUnsafeBufferPointer {
                try NNDescent.neighbours(points: $0, count: n, dims: dims, k: k, options: search, threads: 2, communicator: c)
            }
        }
        XCTAssertTrue(split[1].indices == one.indices, "2 ranks x 2 threads")
        XCTAssertTrue(split[1].distances.map(\.bitPattern) == one.distances.map(\.bitPattern))
        var umap = UMAPOptions()
        umap.neighbors = 8
        umap.components = 2
        umap.epochs = 20
        var descent = umap.descent
        descent.seed = umap.seed
        for search in [NeighbourSearch.exact, .descent] {
            umap.search = search
            let embedding = try bytes.withUnsafeBufferPointer {
                try UMAP.embed(pixels: $0, count: n, dims: dims, options: umap, threads: 1, communicator: SingleProcessCommunicator())
            }
            XCTAssertEqual(embedding.search, search)
            XCTAssertTrue(embedding.layout.allSatisfy(\.isFinite))
            // What UMAP hands on: the search of the bytes, its distances scaled to the units of pixels / 255.
            let (handed, found) = try bytes.withUnsafeBufferPointer { pixels in
                let handed = try UMAP.neighbours(pixels: pixels, count: n, dims: dims, k: 8, search: search, options: umap, threads: 1,
                                                 communicator: SingleProcessCommunicator())
                guard search == .descent else {
                    return (handed, try UMAP.nearestNeighbours(points: pixels, count: n, dims: dims, k: 8,
                                                               communicator: SingleProcessCommunicator()))
                }
                let found = try NNDescent.neighbours(points: pixels, count: n, dims: dims, k: 8, options: descent, threads: 1,
                                                     communicator: SingleProcessCommunicator())
                return (handed, (found.indices, found.distances))
            }
            XCTAssertTrue(handed.indices == found.indices, "\(search)")
            XCTAssertTrue(handed.distances.map(\.bitPattern) == found.distances.map { ($0 * (1 / 255)).bitPattern }, "\(search)")
            XCTAssertEqual(handed.distances[1], found.distances[1] / 255, accuracy: 1e-6 * found.distances[1])
        }
    }

    /// The whole UMAP at a size where every part splits: NN-descent, the spectral start's chunked sums and the
    /// layout's chunks over 1 to 3 ranks and 1 to 3 threads give the same layout, bit for bit.
    func testUMAPInChunksIsTheSameOnAnySplit() throws {
        let (points, _) = blobs(perBlob: 150, blobs: 4, dims: 6, seed: 7, spread: 1)
        let options: UMAPOptions = {
            var o = UMAPOptions()
            o.neighbors = 8
            o.components = 3
            o.epochs = 30
            o.search = .descent
            o.descent.leafSize = 10
            o.chunkRows = 70  // 9 chunks of the 600 points
            return o
        }()
        let one = try UMAP.embed(points: points, count: 600, dims: 6, options: options, threads: 1, communicator: SingleProcessCommunicator())
        XCTAssertEqual(one.search, .descent)
        XCTAssertTrue(one.layout.allSatisfy(\.isFinite))
        XCTAssertGreaterThan(one.spectralProducts, 0, "the spectral start ran")
        var packed = options
        packed.paddedRows = false  // 3 floats a row, not 4
        let unpadded = try UMAP.embed(points: points, count: 600, dims: 6, options: packed, threads: 1, communicator: SingleProcessCommunicator())
        XCTAssertEqual(unpadded.layout.map(\.bitPattern), one.layout.map(\.bitPattern), "padded rows, the same layout")
        for (ranks, threads) in [(1, 3), (2, 1), (3, 2)] {
            let split = try InProcessWorld.run(ranks: ranks) { c in
                try UMAP.embed(points: points, count: 600, dims: 6, options: options, threads: threads, communicator: c)
            }
            for embedding in split {
                XCTAssertEqual(embedding.layout.map(\.bitPattern), one.layout.map(\.bitPattern), "\(ranks) ranks x \(threads) threads")
                XCTAssertEqual(embedding.spectralProducts, one.spectralProducts)
            }
        }
    }

    func testFuzzyGraphIsSymmetricWithWeightsInUnitInterval() throws {
        let (points, _) = blobs(perBlob: 15, blobs: 2, dims: 3, seed: 2)
        let (indices, distances) = try UMAP.nearestNeighbours(points: points, count: 30, dims: 3, k: 5,
                                                              communicator: SingleProcessCommunicator())
        let graph = try UMAP.fuzzyGraph(indices: indices, distances: distances, count: 30, k: 5, communicator: SingleProcessCommunicator()).graph
        var weight: [String: Float] = [:]
        for e in graph.weights.indices { weight["\(graph.heads[e]),\(graph.tails[e])"] = graph.weights[e] }
        for e in graph.weights.indices {
            XCTAssertEqual(weight["\(graph.tails[e]),\(graph.heads[e])"], graph.weights[e], "W = W^T")
            XCTAssertTrue(graph.weights[e] > 0 && graph.weights[e] <= 1)
        }
        // Every point's nearest neighbour is joined with weight 1 (its distance is rho).
        for i in 0..<30 { XCTAssertEqual(weight["\(i),\(indices[i * 5 + 1])"]!, 1, accuracy: 1e-6) }
    }

    /// The fuzzy graph and its breadth-first renumbering, split over ranks, threads and chunks (ranks with no rows
    /// among them), against the serial loops they replaced, bit for bit: on random lists, mostly not mutual, with rows
    /// whose nearest distances are 0 (rho 0), rows whose far members weigh 0 (those edges dropped), lists that name a
    /// point twice or name their own point again, and two parts no list joins; on such lists of one neighbour (k = 2);
    /// and on the exact neighbours of blobs, mostly mutual.
    func testFuzzyGraphAndItsOrderMatchTheSerialLoops() throws {
        /// Random lists of n points, k - 1 others each (the second part's points list only each other).
        func randomLists(_ n: Int, k: Int, second: Int, seed: UInt64) -> ([Int], [Float]) {
            var rng = Xoshiro256(seed: seed)
            var indices = [Int](repeating: 0, count: n * k), distances = [Float](repeating: 0, count: n * k)
            for i in 0..<n {
                let part = i < second ? 0..<second : second..<n
                var listed: Set<Int> = [i]
                indices[i * k] = i
                var d: Float = i % 9 == 0 ? 0 : Float(rng.nextUnit()) * 0.5  // every ninth row: its two nearest at distance 0
                for slot in 1..<k {
                    var j = part.lowerBound + Int(rng.next() % UInt64(part.count))
                    while listed.contains(j) { j = part.lowerBound + Int(rng.next() % UInt64(part.count)) }
                    listed.insert(j)
                    indices[i * k + slot] = j
                    let far = i % 7 == 0 && slot >= 5  // every seventh row: its last members far
                    if !(i % 9 == 0 && slot <= 2) { d += Float(rng.nextUnit()) * (far ? 500 : 1) }
                    distances[i * k + slot] = d
                }
                if k > 3 && i % 11 == 5 { indices[i * k + 3] = indices[i * k + 1] }  // a point named twice
                if k > 2 && i % 13 == 6 { indices[i * k + 2] = i }  // its own point named again
            }
            return (indices, distances)
        }
        let n = 700, k = 7
        let (indexRows, distanceRows) = randomLists(n, k: k, second: 600, seed: 11)
        let (pairs, pairDistances) = randomLists(60, k: 2, second: 60, seed: 13)
        let (points, _) = blobs(perBlob: 100, blobs: 3, dims: 3, seed: 12)
        let exact = try UMAP.nearestNeighbours(points: points, count: 300, dims: 3, k: 8, communicator: SingleProcessCommunicator())
        for (indices, distances, n, k) in [(indexRows, distanceRows, n, k), (pairs, pairDistances, 60, 2),
                                           (exact.indices, exact.distances, 300, 8)] {
            let serial = Reference.fuzzyGraph(indices: indices, distances: distances, count: n, k: k)
            let order = Reference.breadthFirst(heads: serial.heads, tails: serial.tails, weights: serial.weights, count: n)
            if n == 700 {
                XCTAssertLessThan(serial.weights.count, 2 * n * (k - 1) - 500, "the every seventh row's far members weigh 0")
                XCTAssertEqual(order.order[600], 600, "the second part is reached from its lowest point")
            } else if n == 300 {
                XCTAssertLessThan(serial.weights.count, n * (k - 1) * 3 / 2, "most neighbours are mutual")
            }
            for (ranks, threads, chunkRows) in [(1, 1, 2048), (1, 3, 50), (2, 1, 64), (3, 2, 37), (3, 1, 2048)] {
                let split = try InProcessWorld.run(ranks: ranks) { c in
                    let edges = try UMAP.fuzzyGraph(indices: indices, distances: distances, count: n, k: k, threads: threads,
                                                    chunkRows: chunkRows, communicator: c)
                    return (edges.graph, try UMAP.breadthFirst(edges, count: n, threads: threads, chunkRows: chunkRows, communicator: c))
                }
                for (graph, (renumbered, renumbering)) in split {
                    let label = "\(n) points, \(ranks) ranks x \(threads) threads, chunks of \(chunkRows)"  // (whole arrays: short messages)
                    XCTAssertTrue(graph.heads == serial.heads && graph.tails == serial.tails, "the edges, \(label)")
                    XCTAssertTrue(graph.weights.map(\.bitPattern) == serial.weights.map(\.bitPattern), "the weights, \(label)")
                    XCTAssertTrue(renumbering == order.order, "the order, \(label)")
                    XCTAssertTrue(renumbered.heads == order.heads && renumbered.tails == order.tails, "the renumbered edges, \(label)")
                    XCTAssertTrue(renumbered.weights.map(\.bitPattern) == order.weights.map(\.bitPattern),
                                  "the renumbered weights, \(label)")
                }
            }
        }
    }

    func testJacobiEigenvectors() {
        let m = 6
        let r = seededValues(m * m, seed: 5)
        var a = [Double](repeating: 0, count: m * m)
        for p in 0..<m { for q in 0..<m { a[p * m + q] = r[p * m + q] + r[q * m + p] } }
        let (values, vectors) = UMAP.jacobi(a, size: m)
        for c in 0..<m {
            for p in 0..<m {
                var av = 0.0
                for q in 0..<m { av += a[p * m + q] * vectors[q * m + c] }
                XCTAssertEqual(av, values[c] * vectors[p * m + c], accuracy: 1e-9)
            }
        }
    }

    /// The spectral start (Chebyshev-filtered subspace iteration) finds the eigenvectors of A = (I + D^-1/2 W D^-1/2) / 2
    /// with the largest eigenvalues after the trivial one: each of its vectors is unit, orthogonal to the trivial one
    /// and the others, an eigenvector to within its residual, with the eigenvalues of a dense Jacobi decomposition of A
    /// in order; in under half the products of plain subspace iteration; and that it stops when its residual stalls.
    func testSpectralStartFindsTheLeadingEigenvectors() throws {
        let (points, _) = blobs(perBlob: 40, blobs: 5, dims: 3, seed: 4, spread: 4)
        let n = 200, k = 8, dims = 4
        let (indices, distances) = try UMAP.nearestNeighbours(points: points, count: n, dims: 3, k: k, communicator: SingleProcessCommunicator())
        let graph = try UMAP.fuzzyGraph(indices: indices, distances: distances, count: n, k: k, communicator: SingleProcessCommunicator()).graph
        var degree = [Double](repeating: 0, count: n)
        for e in graph.weights.indices { degree[Int(graph.heads[e])] += Double(graph.weights[e]) }
        var a = [Double](repeating: 0, count: n * n)
        for i in 0..<n { a[i * n + i] = 0.5 }
        for e in graph.weights.indices {
            let h = Int(graph.heads[e]), t = Int(graph.tails[e])
            a[h * n + t] += 0.5 * Double(graph.weights[e]) / (degree[h] * degree[t]).squareRoot()
        }
        let (values, _) = UMAP.jacobi(a, size: n)
        let expected = Array(values.sorted(by: >)[1...dims])  // after the trivial eigenvalue 1
        XCTAssertEqual(values.max()!, 1, accuracy: 1e-9)
        let tolerance = 1e-7
        func spectral(filterDegree: Int = 10, tolerance: Double, stall: Double = .infinity) throws -> (layout: [Double], products: Int) {
            try XCTUnwrap(UMAP.spectralLayout(graph, count: n, dims: dims, seed: 3, maxProducts: 2_000, filterDegree: filterDegree,
                                              tolerance: tolerance, stall: stall, threads: 1, chunkRows: 64,
                                              communicator: SingleProcessCommunicator()))
        }
        let (layout, products) = try spectral(tolerance: tolerance)
        // The filter's worth: plain subspace iteration (a Rayleigh-Ritz step after every product) needs twice as many.
        let plain = try spectral(filterDegree: 1, tolerance: tolerance).products
        XCTAssertLessThan(2 * products, plain, "\(products) products with the filter, \(plain) without")
        // A residual it cannot reach: without the stall rule it runs to the cap, with it it stops once the residual
        // stops falling (at Double's rounding).
        XCTAssertEqual(try spectral(tolerance: 0).products, 1_991)
        XCTAssertLessThan(try spectral(tolerance: 0, stall: 0.8).products, 1_991)
        let trivial = degree.map { $0.squareRoot() }
        for d in 0..<dims {
            let v = (0..<n).map { layout[$0 * dims + d] }
            let av = (0..<n).map { i in (0..<n).reduce(0.0) { $0 + a[i * n + $1] * v[$1] } }
            let theta = zip(v, av).reduce(0.0) { $0 + $1.0 * $1.1 }
            XCTAssertEqual(zip(v, v).reduce(0.0) { $0 + $1.0 * $1.1 }, 1, accuracy: 1e-9)
            XCTAssertEqual(zip(v, trivial).reduce(0.0) { $0 + $1.0 * $1.1 }, 0, accuracy: 1e-9)
            let residual = zip(av, v).reduce(0.0) { $0 + ($1.0 - theta * $1.1) * ($1.0 - theta * $1.1) }.squareRoot()
            XCTAssertLessThanOrEqual(residual, tolerance * 1.01, "vector \(d)")
            XCTAssertEqual(theta, expected[d], accuracy: 1e-9, "eigenvalue \(d)")
            for other in 0..<d {
                XCTAssertEqual((0..<n).reduce(0.0) { $0 + v[$1] * layout[$1 * dims + other] }, 0, accuracy: 1e-9)
            }
        }
    }

    /// How many entries of `a` and `b` differ in their bits (or are missing from one of them).
    private func differing(_ a: [Double], _ b: [Double]) -> Int {
        zip(a, b).filter { $0.bitPattern != $1.bitPattern }.count + abs(a.count - b.count)
    }

    /// The spectral start's product in C (Kernels.spectralRows) against the Swift loop it replaced (Reference), bit for
    /// bit, with the Rayleigh-Ritz matrix X^T A X it sums as it goes; and a step of its Chebyshev filter: rows with 0 to
    /// 40 edges to random rows, in two chunks (the prefetch reads past a chunk's end, never writes there); a block of 16
    /// (the AVX2 copy where the CPU has it) and of 7 (the plain loop). Launch/test runs it optimised as well.
    func testSpectralProductMatchesTheSwiftLoop() {
        print("spectral kernels: the AVX2 copy for a block of 16 \(Kernels.vectorised ? "runs" : "does not run (no AVX2)")")
        for block in [16, 7] {
            var rng = Xoshiro256(seed: 17)
            let n = 600, chunks = [0..<250, 250..<n]
            var rowStart = [0], tails: [Int32] = [], values: [Double] = []
            for _ in 0..<n {
                for _ in 0..<Int(rng.next() % 41) { tails.append(Int32(rng.next() % UInt64(n))); values.append(rng.nextNormal()) }
                rowStart.append(tails.count)
            }
            let x = (0..<(n * block)).map { _ in rng.nextNormal() }
            var expected = [Double](repeating: .nan, count: n * block), y = expected
            var expectedH = [[Double]](repeating: [Double](repeating: 0, count: block * block), count: chunks.count), h = expectedH
            for (k, rows) in chunks.enumerated() {
                Reference.spectralRows(x: x, y: &expected, rowStart: rowStart, tails: tails, values: values, block: block, rows: rows)
                Reference.spectralProjection(x: x, y: expected, into: &expectedH[k], block: block, rows: rows)
                Kernels.spectralRows(x: x, y: &y, rowStart: rowStart, tails: tails, values: values, block: block, rows: rows, h: &h[k])
            }
            XCTAssertEqual(differing(y, expected), 0, "block \(block)")
            XCTAssertEqual(differing(h.flatMap { $0 }, expectedH.flatMap { $0 }), 0, "block \(block)")
            // A step of the Chebyshev filter, y <- 2 (A x - centre x) / halfWidth - y, in the same chunks, each given only
            // its own rows' values (as a rank holds them).
            let filter = (centre: 0.45, halfWidth: 0.4), old = (0..<(n * block)).map { _ in rng.nextNormal() }
            (expected, y) = (old, old)
            for rows in chunks {
                Reference.spectralRows(x: x, y: &expected, rowStart: rowStart, tails: tails, values: values, block: block, rows: rows,
                                       filter: filter)
                let from = rowStart[rows.lowerBound], own = Array(values[from..<rowStart[rows.upperBound]])  // the chunk's values only
                Kernels.spectralRows(x: x, y: &y, rowStart: rowStart, tails: tails, values: own, valuesFrom: from, block: block,
                                     rows: rows, filter: filter)
            }
            XCTAssertEqual(differing(y, expected), 0, "block \(block)")
        }
    }

    /// The spectral start's other passes in C against the separate Swift loops they fuse (Reference), bit for bit: the
    /// projections on the trivial vector; their removal with the Gram matrix of the rows so changed; the forward
    /// substitution by R, with the next Gram matrix and without; the Rayleigh-Ritz turn with its residuals and the
    /// filter's first step. Blocks of 16 (the AVX2 copy where the CPU has it) and 7, rows 3..<203 of 210.
    func testSpectralPassesMatchTheSwiftLoops() {
        for block in [16, 7] {
            var rng = Xoshiro256(seed: 23)
            let n = 210, rows = 3..<203, dims = block - 3
            let x0 = (0..<(n * block)).map { _ in rng.nextNormal() }, trivial = (0..<n).map { _ in rng.nextNormal() }
            let t = (0..<block).map { _ in rng.nextNormal() }, ritz = (0..<block).map { _ in rng.nextNormal() }
            let turn = (0..<(block * block)).map { _ in rng.nextNormal() }
            var r = [Double](repeating: 0, count: block * block)  // upper triangular, its diagonal away from 0
            for p in 0..<block { for q in p..<block { r[p * block + q] = q == p ? 1 + abs(rng.nextNormal()) : rng.nextNormal() * 0.3 } }
            let zeros = [Double](repeating: 0, count: block * block)
            // The projections.
            var dot = [Double](repeating: 0, count: block), expectedDot = dot
            Reference.spectralDot(x: x0, v: trivial, into: &expectedDot, block: block, rows: rows)
            Kernels.spectralDot(x: x0, v: trivial, into: &dot, block: block, rows: rows)
            XCTAssertEqual(differing(dot, expectedDot), 0, "block \(block)")
            // Their removal, with the Gram matrix (upper triangle) of the rows without them.
            var expected = x0, expectedGram = zeros, x = x0, gram = zeros
            Reference.spectralRemove(x: &expected, trivial: trivial, t: t, block: block, rows: rows)
            Reference.spectralGram(x: expected, into: &expectedGram, block: block, rows: rows)
            Kernels.spectralOrthogonalise(x: &x, trivial: trivial, t: t, r: nil, gram: &gram, block: block, rows: rows)
            XCTAssertEqual(differing(x, expected), 0, "block \(block)")
            XCTAssertEqual(differing(gram, expectedGram), 0, "block \(block)")
            // The forward substitution row <- row R^-1 with the Gram matrix of its result, and without one.
            var once = x
            (expectedGram, gram) = (zeros, zeros)
            Reference.spectralSubstitute(x: &expected, r: r, block: block, rows: rows)
            Reference.spectralGram(x: expected, into: &expectedGram, block: block, rows: rows)
            Kernels.spectralOrthogonalise(x: &x, trivial: trivial, t: nil, r: r, gram: &gram, block: block, rows: rows)
            Kernels.spectralOrthogonalise(x: &once, trivial: trivial, t: nil, r: r, gram: nil, block: block, rows: rows)
            XCTAssertEqual(differing(x, expected), 0, "block \(block)")
            XCTAssertEqual(differing(once, expected), 0, "block \(block)")
            XCTAssertEqual(differing(gram, expectedGram), 0, "block \(block)")
            // The turn of x and ax, the residuals of the first `dims`, and the filter's first step in ax.
            let ax0 = (0..<(n * block)).map { _ in rng.nextNormal() }, centre = 0.35, halfWidth = 0.3
            var expectedX = x0, expectedAx = ax0, ax = ax0, squares = [Double](repeating: 0, count: dims), expectedSquares = squares
            x = x0
            Reference.spectralTurn(x: &expectedX, ax: &expectedAx, turn: turn, ritz: ritz, squares: &expectedSquares, block: block,
                                   dims: dims, centre: centre, halfWidth: halfWidth, rows: rows)
            Kernels.spectralTurn(x: &x, ax: &ax, turn: turn, ritz: ritz, squares: &squares, block: block, dims: dims, centre: centre,
                                 halfWidth: halfWidth, rows: rows)
            XCTAssertEqual(differing(x, expectedX), 0, "block \(block)")
            XCTAssertEqual(differing(ax, expectedAx), 0, "block \(block)")
            XCTAssertEqual(differing(squares, expectedSquares), 0, "block \(block)")
        }
    }

    /// The layout's C kernel against the Swift loop it replaced (Reference.umapLayoutChunk), bit for bit: the moved
    /// points and both schedules over several epochs, on a chunk in the middle with edges inside and outside it; with
    /// rows `dims` apart and padded to the layout's stride (the padding, NaN, neither read nor written).
    func testLayoutKernelMatchesTheReference() {
        let n = 400, dims = 5, negatives = 5.0, chunk = 120..<290
        XCTAssertEqual([1, 2, 3, 5, 10, 16, 17, 40].map { UMAP.layoutStride(dims: $0) }, [1, 2, 4, 8, 16, 16, 32, 48])
        let a = UMAPOptions().a, b = UMAPOptions().b
        var rng = Xoshiro256(seed: 21)
        let y = (0..<(n * dims)).map { _ in rng.nextUnit() * 10 }
        var rowStart = [0], tails: [Int32] = [], perSample: [Double] = []
        for i in 0..<n {
            for _ in 0..<(1 + rng.nextInt(below: 6)) {
                tails.append(Int32((i + 1 + rng.nextInt(below: n - 1)) % n))
                perSample.append(1 + Double(rng.nextUnit()) * 4)
            }
            rowStart.append(tails.count)
        }
        for stride in [dims, UMAP.layoutStride(dims: dims)] {
            func padded(_ rows: [Float]) -> [Float] {
                (0..<(n * stride)).map { $0 % stride < dims ? rows[$0 / stride * dims + $0 % stride] : .nan }
            }
            let yPadded = padded(y)
            var out = padded([Float](repeating: 0, count: n * dims)), next = perSample, negative = perSample.map { $0 / negatives }
            var expected = [Float](repeating: 0, count: n * dims), expectedNext = next, expectedNegative = negative
            for epoch in 0..<8 {
                let alpha = 1 - Float(epoch) / 8
                let done = yPadded.withUnsafeBufferPointer { y in
                    out.withUnsafeMutableBufferPointer { out in
                        next.withUnsafeMutableBufferPointer { next in
                            negative.withUnsafeMutableBufferPointer { negative in
                                Kernels.umapLayoutChunk(positions: y.baseAddress!, moved: out.baseAddress!, chunk: chunk, count: n,
                                                        dims: dims, stride: stride, rowStart: rowStart, tails: tails, perSample: perSample,
                                                        nextSample: next.baseAddress!, nextNegative: negative.baseAddress!, a: a, b: b,
                                                        alpha: alpha, crossStep: 0.5, epoch: epoch, negatives: negatives, seed: 3, stream: 7)
                            }
                        }
                    }
                }
                XCTAssertTrue(done)
                Reference.umapLayoutChunk(y: y, out: &expected, chunk: chunk, dims: dims, rowStart: rowStart, tails: tails,
                                          perSample: perSample, nextSample: &expectedNext, nextNegative: &expectedNegative, a: a, b: b,
                                          alpha: alpha, crossStep: 0.5, epoch: epoch, negatives: negatives, seed: 3, stream: 7)
                let want = padded(expected)
                let differs = out.indices.first { out[$0].bitPattern != want[$0].bitPattern }
                XCTAssertNil(differs, "stride \(stride), epoch \(epoch): first difference at \(differs ?? 0): \(out[differs ?? 0]) against \(want[differs ?? 0])")
                XCTAssertEqual(next, expectedNext)
                XCTAssertEqual(negative, expectedNegative)
            }
            XCTAssertNotEqual(Array(expected[(chunk.lowerBound * dims)..<(chunk.upperBound * dims)]),
                              Array(y[(chunk.lowerBound * dims)..<(chunk.upperBound * dims)]), "the points moved")
        }
    }

    /// The mixture's E-step by chunks of points over ranks and threads, its sums chunk by chunk: the same fit, bit for
    /// bit, on any split; and with one chunk (the default up to 20,000 points) the sums run in point order.
    func testMixtureIsTheSameOnAnySplit() throws {
        let (points, labels) = blobs(perBlob: 150, blobs: 4, dims: 3, seed: 11, spread: 1.5)
        let initial = labels.indices.map { i in i % 5 == 0 ? (labels[i] + 1) % 4 : labels[i] }
        let one = try GaussianMixture.fit(points: points, count: 600, dims: 3, components: 4, initial: initial, chunkRows: 70)
        XCTAssertGreaterThan(one.iterations, 1)
        for (ranks, threads) in [(1, 3), (2, 1), (3, 2)] {
            let split = try InProcessWorld.run(ranks: ranks) { c in
                try GaussianMixture.fit(points: points, count: 600, dims: 3, components: 4, initial: initial, threads: threads,
                                        communicator: c, chunkRows: 70)
            }
            for fit in split {
                XCTAssertEqual(fit.responsibilities.map(\.bitPattern), one.responsibilities.map(\.bitPattern), "\(ranks) x \(threads)")
                XCTAssertEqual(fit.means.map(\.bitPattern), one.means.map(\.bitPattern))
                XCTAssertEqual(fit.logLikelihood.bitPattern, one.logLikelihood.bitPattern)
                XCTAssertEqual(fit.iterations, one.iterations)
            }
        }
        // Different chunks sum in another order: close, and (a negative control) not the same bits.
        let whole = try GaussianMixture.fit(points: points, count: 600, dims: 3, components: 4, initial: initial)
        XCTAssertEqual(whole.logLikelihood, one.logLikelihood, accuracy: 1e-9)
        XCTAssertNotEqual(whole.means.map(\.bitPattern), one.means.map(\.bitPattern))
    }

    func testMixtureRecoversElongatedClustersFromAPoorStart() throws {
        // Two long thin clusters side by side, a quarter of the starting labels wrong: full covariances follow them.
        var rng = Xoshiro256(seed: 3)
        var points: [Float] = [], labels: [Int32] = []
        for c in 0..<2 {
            for _ in 0..<300 {
                points += [Float(rng.nextNormal() * 10), Float(Double(c) * 3 + rng.nextNormal() * 0.3)]
                labels.append(Int32(c))
            }
        }
        let initial = (0..<600).map { i in i % 4 == 0 ? 1 - labels[i] : labels[i] }
        let fit = try GaussianMixture.fit(points: points, count: 600, dims: 2, components: 2, initial: initial)
        XCTAssertEqual(Metrics.scores(predicted: fit.assignments, labels: labels, clusters: 2, classes: 2).accuracy, 1, accuracy: 0.005)
        XCTAssertTrue(fit.converged)
        for i in 0..<600 {
            XCTAssertEqual(fit.responsibilities[2 * i] + fit.responsibilities[2 * i + 1], 1, accuracy: 1e-5)
        }
    }

    func testUMAPAndMixtureSeparateBlobsAndRepeatBitForBit() throws {
        let (points, labels) = blobs(perBlob: 40, blobs: 4, dims: 6, seed: 4)
        let options: UMAPOptions = {
            var o = UMAPOptions()
            o.neighbors = 10
            o.components = 3
            o.epochs = 100
            return o
        }()
        let layout = try UMAP.embed(points: points, count: 160, dims: 6, options: options, communicator: SingleProcessCommunicator()).layout
        XCTAssertEqual(layout.count, 160 * 3)
        let start = try layout.withUnsafeBufferPointer {
            try KMeans.fit(points: $0.baseAddress!, count: 160, dims: 3, clusters: 4, restarts: 4, seed: 0,
                           communicator: SingleProcessCommunicator(), spreadRestarts: true)
        }
        let fit = try GaussianMixture.fit(points: layout, count: 160, dims: 3, components: 4, initial: start.assignments)
        XCTAssertEqual(Metrics.scores(predicted: fit.assignments, labels: labels, clusters: 4, classes: 4).accuracy, 1)
        let again = try InProcessWorld.run(ranks: 2) { c in
            try UMAP.embed(points: points, count: 160, dims: 6, options: options, communicator: c).layout
        }
        XCTAssertEqual(again[0].map(\.bitPattern), layout.map(\.bitPattern), "same layout on 2 ranks as on 1")
        XCTAssertEqual(again[1].map(\.bitPattern), layout.map(\.bitPattern))
    }
}
