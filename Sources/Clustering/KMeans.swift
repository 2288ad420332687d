// k-means++ seeding and Lloyd's k-means. Lloyd is distributed when given a communicator: each rank assigns
// its contiguous slice of the points, then one allreduce of the per-cluster sums, counts and inertia.
// N = points, D = dims, K = clusters. Points are row-major (N, D) and present on every rank.
import Collective
import Dispatch
import Foundation
import Tensor

public struct KMeansResult: Sendable {
    public var centres: [Float]        // (K, D)
    public var assignments: [Int32]    // (N)
    public var inertia: Double
    public var iterations: Int
}

public enum KMeans {
    /// Squared distances (rows, K) from `points` (rows, D) to `centres` (K, D): |x|^2 - 2 x.c + |c|^2, via sgemm.
    public static func squaredDistances(points: UnsafePointer<Float>, rows: Int, dims: Int, centres: UnsafePointer<Float>,
                                        clusters: Int, into out: UnsafeMutablePointer<Float>, pointNorms: UnsafePointer<Float>? = nil) {
        // pointNorms (rows): |x_i|^2 when the caller has them (Lloyd and k-means++ compute them once), else summed here.
        BLAS.gemm(transposeA: false, transposeB: true, m: rows, n: clusters, k: dims, alpha: -2,
                  a: points, lda: dims, b: centres, ldb: dims, c: out, ldc: clusters)
        var centreNorms = [Float](repeating: 0, count: clusters)
        for k in 0..<clusters {
            var s: Float = 0
            for d in 0..<dims { s += centres[k * dims + d] * centres[k * dims + d] }
            centreNorms[k] = s
        }
        for i in 0..<rows {
            let s = pointNorms?[i] ?? squaredNorm(points + i * dims, dims)
            for k in 0..<clusters { out[i * clusters + k] = max(out[i * clusters + k] + s + centreNorms[k], 0) }
        }
    }

    /// |x|^2 of one point, summed in order (Lloyd computes it once per point; the same value as a fresh sum).
    @inline(__always)
    static func squaredNorm(_ x: UnsafePointer<Float>, _ dims: Int) -> Float {
        var s: Float = 0
        for d in 0..<dims { s += x[d] * x[d] }
        return s
    }

    /// Greedy k-means++ (Arthur and Vassilvitskii 2007; the greedy variant scikit-learn uses): each next centre is
    /// the best of 2 + ln K candidates drawn with probability proportional to D(x)^2, best = lowest total potential.
    public static func plusPlus(points: UnsafePointer<Float>, count n: Int, dims: Int, clusters: Int,
                                rng: inout Xoshiro256) -> [Float] {
        let trials = 2 + Int(log(Double(clusters)))
        var centres = [Float](repeating: 0, count: clusters * dims)
        var nearest = [Double](repeating: .infinity, count: n)
        var distance = [Float](repeating: 0, count: n)
        let norms = (0..<n).map { squaredNorm(points + $0 * dims, dims) }
        func distances(to index: Int) {
            norms.withUnsafeBufferPointer { nb in
                squaredDistances(points: points, rows: n, dims: dims, centres: points + index * dims, clusters: 1, into: &distance,
                                 pointNorms: nb.baseAddress)
            }
        }
        var chosen = rng.nextInt(below: n)
        for k in 0..<clusters {
            for d in 0..<dims { centres[k * dims + d] = points[chosen * dims + d] }
            distances(to: chosen)
            var total = 0.0
            for i in 0..<n { nearest[i] = min(nearest[i], Double(distance[i])); total += nearest[i] }
            guard k + 1 < clusters else { break }
            if total <= 0 { chosen = rng.nextInt(below: n); continue }
            var bestPotential = Double.infinity
            for _ in 0..<trials {
                var target = rng.nextDouble() * total
                var candidate = n - 1
                for i in 0..<n {
                    target -= nearest[i]
                    if target <= 0 { candidate = i; break }
                }
                distances(to: candidate)
                var potential = 0.0
                for i in 0..<n { potential += min(nearest[i], Double(distance[i])) }
                if potential < bestPotential { bestPotential = potential; chosen = candidate }
            }
        }
        return centres
    }

    /// Lloyd iterations from `initial` centres until no centre moves more than `tolerance` (relative to the data's
    /// scale) or `maxIterations`. With a communicator of p ranks each rank assigns its slice (one allreduce per
    /// iteration); without one, everything is local.
    public static func lloyd(points: UnsafePointer<Float>, count n: Int, dims: Int, clusters: Int, initial: [Float],
                             communicator: Communicator?, maxIterations: Int = 300, tolerance: Double = 1e-4) throws -> KMeansResult {
        let rank = communicator?.rank ?? 0, size = communicator?.size ?? 1
        let slice = contiguousShare(total: n, rank: rank, size: size)
        let rows = slice.count
        var centres = initial
        var distance = [Float](repeating: 0, count: max(rows, 1) * clusters)
        var local = [Int32](repeating: 0, count: rows)
        // sums (K, D), counts (K), inertia (1)
        var accumulator = [Double](repeating: 0, count: clusters * dims + clusters + 1)
        var iterations = 0
        var inertia = 0.0
        let base = points + slice.lowerBound * dims
        let norms = (0..<rows).map { squaredNorm(base + $0 * dims, dims) }
        while iterations < maxIterations {
            iterations += 1
            assign(points: base, rows: rows, dims: dims, centres: centres, clusters: clusters, distance: &distance,
                   assignments: &local, accumulator: &accumulator, norms: norms)
            if let communicator { try communicator.allreduce(&accumulator, .sum) }
            inertia = accumulator[clusters * dims + clusters]
            var shift = 0.0, scale = 0.0
            for k in 0..<clusters {
                let count = accumulator[clusters * dims + k]
                for d in 0..<dims {
                    let old = Double(centres[k * dims + d])
                    scale += old * old
                    guard count > 0 else { continue }   // an empty cluster keeps its centre
                    let new = accumulator[k * dims + d] / count
                    shift += (new - old) * (new - old)
                    centres[k * dims + d] = Float(new)
                }
            }
            if shift <= tolerance * tolerance * max(scale, 1e-12) { break }
        }
        // Final assignment and inertia for the final centres.
        assign(points: base, rows: rows, dims: dims, centres: centres, clusters: clusters, distance: &distance,
               assignments: &local, accumulator: &accumulator, norms: norms)
        var assignments = local
        if let communicator {
            var tail = [accumulator[clusters * dims + clusters]]
            try communicator.allreduce(&tail, .sum)
            inertia = tail[0]
            assignments = try communicator.allgatherv(local.map { Int($0) }).map { Int32($0) }
        } else {
            inertia = accumulator[clusters * dims + clusters]
        }
        return KMeansResult(centres: centres, assignments: assignments, inertia: inertia, iterations: iterations)
    }

    static func assign(points: UnsafePointer<Float>, rows: Int, dims: Int, centres: [Float], clusters: Int,
                       distance: inout [Float], assignments: inout [Int32], accumulator: inout [Double], norms: [Float]) {
        for i in 0..<accumulator.count { accumulator[i] = 0 }
        centres.withUnsafeBufferPointer { c in
            norms.withUnsafeBufferPointer { nb in
                squaredDistances(points: points, rows: rows, dims: dims, centres: c.baseAddress!, clusters: clusters, into: &distance,
                                 pointNorms: nb.baseAddress)
            }
        }
        accumulator.withUnsafeMutableBufferPointer { sums in
            for i in 0..<rows {
                var best = 0
                for k in 1..<clusters where distance[i * clusters + k] < distance[i * clusters + best] { best = k }
                assignments[i] = Int32(best)
                sums[clusters * dims + best] += 1
                sums[clusters * dims + clusters] += Double(distance[i * clusters + best])
                let x = points + i * dims, row = sums.baseAddress! + best * dims
                for d in 0..<dims { row[d] += Double(x[d]) }
            }
        }
    }

    /// One restart: k-means++ from the restart's own stream, then Lloyd (distributed when given a communicator).
    static func restart(_ index: Int, points: UnsafePointer<Float>, count n: Int, dims: Int, clusters: Int, seed: UInt64,
                        communicator: Communicator?) throws -> KMeansResult {
        var rng = Xoshiro256(seed: seed, stream: 0x4B4D_4541_4E53, index: UInt64(index))
        let initial = plusPlus(points: points, count: n, dims: dims, clusters: clusters, rng: &rng)
        return try lloyd(points: points, count: n, dims: dims, clusters: clusters, initial: initial, communicator: communicator)
    }

    /// n_init restarts of k-means++ then Lloyd. `spreadRestarts`: each rank runs its share of the restarts on all
    /// the points alone, the best inertia wins (allreduce MIN, then the lowest such rank) and that rank broadcasts
    /// its centres; a rank's restarts run `threads` at a time, each product on one BLAS thread (its bits do not
    /// depend on the thread count), the lowest restart of the best inertia winning as it would in turn. Otherwise the
    /// restarts run one after another, each Lloyd distributed over the ranks.
    public static func fit(points: UnsafePointer<Float>, count n: Int, dims: Int, clusters: Int, restarts: Int,
                           seed: UInt64, communicator: Communicator, spreadRestarts: Bool, threads: Int = 1) throws -> KMeansResult {
        let mine = spreadRestarts ? Array(stride(from: communicator.rank, to: restarts, by: communicator.size)) : Array(0..<restarts)
        let results: [KMeansResult]
        let lanes = spreadRestarts ? min(max(threads, 1), mine.count) : 1
        if lanes > 1 {
            var slots = [Result<KMeansResult, Error>?](repeating: nil, count: mine.count)
            let blasThreads = BLAS.threads
            BLAS.threads = 1
            defer { BLAS.threads = blasThreads }
            let shared = SharedPointer(points)
            slots.withUnsafeMutableBufferPointer { out in
                let out = SharedPointer(out.baseAddress!)
                DispatchQueue.concurrentPerform(iterations: lanes) { lane in
                    for j in stride(from: lane, to: mine.count, by: lanes) {
                        out.base[j] = Result {
                            try restart(mine[j], points: shared.base, count: n, dims: dims, clusters: clusters, seed: seed, communicator: nil)
                        }
                    }
                }
            }
            results = try slots.map { try $0!.get() }
        } else {
            results = try mine.map {
                try restart($0, points: points, count: n, dims: dims, clusters: clusters, seed: seed,
                            communicator: spreadRestarts ? nil : communicator)
            }
        }
        let best = results.min { $0.inertia < $1.inertia }  // the first of equal inertias, as in turn
        guard spreadRestarts, communicator.size > 1 else { return best! }
        let inertia = best?.inertia ?? .infinity
        let lowest = try communicator.allreduce(inertia, .min)
        let winner = try communicator.allreduce(inertia == lowest ? communicator.rank : Int.max, .min)
        var centres = best?.centres ?? [Float](repeating: 0, count: clusters * dims)
        try communicator.broadcast(&centres, root: winner)
        // Every rank now holds the winner's centres; one assignment pass gives the same labels everywhere.
        var result = try lloyd(points: points, count: n, dims: dims, clusters: clusters, initial: centres,
                               communicator: communicator, maxIterations: 0)
        result.iterations = best?.iterations ?? 0
        return result
    }
}
