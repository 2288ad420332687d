// Exact t-SNE (van der Maaten and Hinton 2008): per-point perplexity calibration by binary search, symmetric P,
// Student-t Q, gradient descent with early exaggeration, momentum and per-coordinate gains. O(n^2) per iteration,
// so it runs on a seeded subsample (2,000 points by default). Deterministic for a seed and any thread count: rows
// are split over threads, and every sum across rows is taken in row order.
// n = points, d = input dimensions; the output is (n, 2), row-major.
import Clustering
import Datasets
import Dispatch
import Foundation
import Tensor

public struct TSNEOptions: Sendable {
    public var perplexity: Double = 30
    public var iterations = 1000
    public var exaggeration: Float = 12
    public var exaggerationIterations = 250
    /// Nil: max(n / exaggeration / 4, 50) (Belkina et al. 2019).
    public var learningRate: Float? = nil
    public var seed: UInt64 = 0
    public var threads = 1
    public init() {}
}

public enum TSNE {
    /// Embeds `count` points of `dims` dimensions (row-major) in 2-D.
    public static func embed(_ points: [Float], count n: Int, dims d: Int, options: TSNEOptions = TSNEOptions()) -> [Float] {
        precondition(points.count == n * d && n >= 2)
        let p = affinities(points, count: n, dims: d, perplexity: min(options.perplexity, Double(n - 1) / 3), threads: options.threads)
        var rng = Xoshiro256(seed: options.seed, stream: 0x74534E45)
        var x = (0..<n).map { _ in Float(rng.nextNormal() * 1e-2) }
        var y = (0..<n).map { _ in Float(rng.nextNormal() * 1e-2) }
        var update = [Float](repeating: 0, count: 2 * n), gains = [Float](repeating: 1, count: 2 * n)
        // Per row: attractive (x, y), repulsive (x, y), sum of kernels.
        var sums = [Float](repeating: 0, count: 5 * n)
        let rate = options.learningRate ?? max(Float(n) / options.exaggeration / 4, 50)
        let threads = max(1, min(options.threads, n / 64))
        for iteration in 0..<options.iterations {
            let early = iteration < options.exaggerationIterations
            let exaggeration: Float = early ? options.exaggeration : 1, momentum: Float = early ? 0.5 : 0.8
            x.withUnsafeBufferPointer { xs in y.withUnsafeBufferPointer { ys in p.withUnsafeBufferPointer { ps in
                sums.withUnsafeMutableBufferPointer { out in
                    let xs = SharedPointer(xs.baseAddress!), ys = SharedPointer(ys.baseAddress!)
                    let ps = SharedPointer(ps.baseAddress!), out = SharedPointer(out.baseAddress!)
                    DispatchQueue.concurrentPerform(iterations: threads) { t in
                        for i in (n * t / threads)..<(n * (t + 1) / threads) {
                            forces(row: i, n: n, x: xs.base, y: ys.base, p: ps.base + i * n, into: out.base + 5 * i)
                        }
                    }
                }
            }}}
            var z: Float = 0
            for i in 0..<n { z += sums[5 * i + 4] }
            let inverseZ = 1 / max(z, 1e-12)
            var meanX: Float = 0, meanY: Float = 0
            for i in 0..<n {
                for c in 0..<2 {
                    let k = 2 * i + c
                    let grad = 4 * (exaggeration * sums[5 * i + c] - sums[5 * i + 2 + c] * inverseZ)
                    gains[k] = (grad > 0) != (update[k] > 0) ? gains[k] + 0.2 : max(gains[k] * 0.8, 0.01)
                    update[k] = momentum * update[k] - rate * gains[k] * grad
                }
                x[i] += update[2 * i]; y[i] += update[2 * i + 1]
                meanX += x[i]; meanY += y[i]
            }
            meanX /= Float(n); meanY /= Float(n)
            for i in 0..<n { x[i] -= meanX; y[i] -= meanY }
        }
        var out = [Float](repeating: 0, count: 2 * n)
        for i in 0..<n { out[2 * i] = x[i]; out[2 * i + 1] = y[i] }
        return out
    }

    /// Row i of the gradient's sums, 8 columns at a time: attractive sum_j p_ij w_ij (y_i - y_j), repulsive
    /// sum_j w_ij^2 (y_i - y_j), and sum_{j != i} w_ij, with w_ij = 1 / (1 + |y_i - y_j|^2).
    @inline(__always)
    static func forces(row i: Int, n: Int, x: UnsafePointer<Float>, y: UnsafePointer<Float>, p: UnsafePointer<Float>,
                       into out: UnsafeMutablePointer<Float>) {
        typealias V = SIMD8<Float>
        let xi = V(repeating: x[i]), yi = V(repeating: y[i]), one = V(repeating: 1)
        var ax = V(), ay = V(), rx = V(), ry = V(), zs = V()
        let raw = (UnsafeRawPointer(x), UnsafeRawPointer(y), UnsafeRawPointer(p))
        var j = 0
        while j + 8 <= n {
            let dx = xi - raw.0.loadUnaligned(fromByteOffset: 4 * j, as: V.self)
            let dy = yi - raw.1.loadUnaligned(fromByteOffset: 4 * j, as: V.self)
            let w = one / (one + dx * dx + dy * dy)
            let pw = raw.2.loadUnaligned(fromByteOffset: 4 * j, as: V.self) * w
            let ww = w * w
            ax += pw * dx; ay += pw * dy; rx += ww * dx; ry += ww * dy; zs += w
            j += 8
        }
        var sx = ax.sum(), sy = ay.sum(), tx = rx.sum(), ty = ry.sum(), z = zs.sum()
        while j < n {
            let dx = x[i] - x[j], dy = y[i] - y[j]
            let w = 1 / (1 + dx * dx + dy * dy)
            sx += p[j] * w * dx; sy += p[j] * w * dy; tx += w * w * dx; ty += w * w * dy; z += w
            j += 1
        }
        out[0] = sx; out[1] = sy; out[2] = tx; out[3] = ty; out[4] = z - 1  // less w_ii = 1
    }

    /// Symmetric input affinities P (n, n), summing to 1: p_ij = (p_j|i + p_i|j) / 2n.
    static func affinities(_ points: [Float], count n: Int, dims d: Int, perplexity: Double, threads: Int) -> [Float] {
        let conditional = conditionalAffinities(points, count: n, dims: d, perplexity: perplexity, threads: threads)
        var p = [Float](repeating: 0, count: n * n)
        let scale = 1 / Float(2 * n)
        for i in 0..<n {
            for j in 0..<n { p[i * n + j] = max((conditional[i * n + j] + conditional[j * n + i]) * scale, 1e-12) }
            p[i * n + i] = 0
        }
        return p
    }

    /// The conditional affinities p_j|i (n, n), rows summing to 1: each row's Gaussian bandwidth is found by binary
    /// search so that its entropy is log(perplexity) (to 1e-5 nats).
    static func conditionalAffinities(_ points: [Float], count n: Int, dims d: Int, perplexity: Double, threads: Int) -> [Float] {
        var conditional = [Float](repeating: 0, count: n * n)
        let target = log(perplexity)
        conditional.withUnsafeMutableBufferPointer { out in
            points.withUnsafeBufferPointer { xs in
                let outShared = SharedPointer(out.baseAddress!), xsShared = SharedPointer(xs.baseAddress!)
                DispatchQueue.concurrentPerform(iterations: max(1, threads)) { t in
                    let out = outShared.base, xs = xsShared.base
                    var distances = [Double](repeating: 0, count: n)
                    for i in (n * t / max(1, threads))..<(n * (t + 1) / max(1, threads)) {
                        for j in 0..<n {
                            var s: Float = 0
                            for k in 0..<d { let v = xs[i * d + k] - xs[j * d + k]; s += v * v }
                            distances[j] = Double(s)
                        }
                        let nearest = (0..<n).filter { $0 != i }.map { distances[$0] }.min() ?? 0
                        var beta = 1.0, low = 0.0, high = Double.infinity
                        var row = [Double](repeating: 0, count: n)
                        for _ in 0..<64 {
                            var sum = 0.0, weighted = 0.0
                            for j in 0..<n where j != i {
                                let v = exp(-(distances[j] - nearest) * beta)  // shifted: no underflow of every term
                                row[j] = v; sum += v; weighted += v * (distances[j] - nearest)
                            }
                            let entropy = log(sum) + beta * weighted / sum
                            if abs(entropy - target) < 1e-5 { break }
                            if entropy > target { low = beta; beta = high.isFinite ? (beta + high) / 2 : beta * 2 }
                            else { high = beta; beta = (beta + low) / 2 }
                        }
                        let sum = row.reduce(0, +)
                        for j in 0..<n { out[i * n + j] = Float(row[j] / sum) }
                        out[i * n + i] = 0
                    }
                }
            }
        }
        return conditional
    }

    /// A seeded sample of `size` indices from 0..<count (all of them when count <= size), in increasing order.
    public static func subsample(count: Int, size: Int, seed: UInt64) -> [Int] {
        guard count > size else { return Array(0..<count) }
        var rng = Xoshiro256(seed: seed, stream: 0x53414D50)
        var indices = Array(0..<count)
        for i in 0..<size { indices.swapAt(i, i + rng.nextInt(below: count - i)) }
        return indices[0..<size].sorted()
    }

    /// The fraction of points whose nearest neighbour in `embedding` (n, 2) carries the same label.
    public static func neighbourAgreement(_ embedding: [Float], labels: [Int32]) -> Double {
        let n = labels.count
        var agree = 0
        for i in 0..<n {
            var best = -1, bestDistance = Float.infinity
            for j in 0..<n where j != i {
                let dx = embedding[2 * i] - embedding[2 * j], dy = embedding[2 * i + 1] - embedding[2 * j + 1]
                let d = dx * dx + dy * dy
                if d < bestDistance { bestDistance = d; best = j }
            }
            if best >= 0 && labels[best] == labels[i] { agree += 1 }
        }
        return Double(agree) / Double(n)
    }
}
