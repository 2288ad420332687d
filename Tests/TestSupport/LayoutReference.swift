// The plain Swift reference of one chunk of one UMAP layout epoch, the loop that `Kernels.umapLayoutChunk` (C)
// replaced, kept to test the kernel against bit for bit: the same operations in the same order (Swift does not fuse
// multiply-adds; its Float `pow` is libm's powf). N = points, D = dims; edges by head in CSR form.
import Foundation
import Tensor

extension Reference {
    /// Copies the chunk's rows of `y` (N, D) into `out`, then moves them one after the other: along each edge due this
    /// epoch (attraction; an edge to another chunk's point moves only its head, by `crossStep`), then away from the
    /// negative samples it owes (up to 8 at a time, from where the point stood before them).
    public static func umapLayoutChunk(y: [Float], out: inout [Float], chunk: Range<Int>, dims: Int, rowStart: [Int],
                                       tails: [Int32], perSample: [Double], nextSample: inout [Double],
                                       nextNegative: inout [Double], a: Float, b: Float, alpha: Float, crossStep: Float,
                                       epoch: Int, negatives: Double, seed: UInt64, stream: UInt64) {
        let n = y.count / dims, now = Double(epoch)
        func clip(_ v: Float) -> Float { min(max(v, -4), 4) }
        for i in chunk { for d in 0..<dims { out[i * dims + d] = y[i * dims + d] } }
        func position(_ t: Int, _ d: Int) -> Float { chunk.contains(t) ? out[t * dims + d] : y[t * dims + d] }
        for i in chunk {
            var draws = Xoshiro256(seed: seed, stream: stream, index: UInt64(epoch) << 32 | UInt64(i))
            for e in rowStart[i]..<rowStart[i + 1] where nextSample[e] <= now {
                let t = Int(tails[e]), inChunk = chunk.contains(t)
                var d2: Float = 0
                for d in 0..<dims { let v = out[i * dims + d] - position(t, d); d2 += v * v }
                if d2 > 0 {
                    let power = pow(d2, b)
                    let attract = -2 * a * b * power / d2 / (a * power + 1)
                    for d in 0..<dims {
                        let g = clip(attract * (out[i * dims + d] - position(t, d))) * alpha
                        if inChunk {
                            out[i * dims + d] += g
                            out[t * dims + d] -= g
                        } else {
                            out[i * dims + d] += crossStep * g
                        }
                    }
                }
                nextSample[e] += perSample[e]
                let count = max(Int((now - nextNegative[e]) / (perSample[e] / negatives)), 0)
                var done = 0
                while done < count {
                    let batch = min(8, count - done)
                    let targets = (0..<batch).map { _ in draws.nextInt(below: n) }
                    var step = [Float](repeating: 0, count: dims)
                    for t in targets where t != i {
                        var d2: Float = 0
                        for d in 0..<dims { let v = out[i * dims + d] - position(t, d); d2 += v * v }
                        if d2 > 0 {
                            let repel = 2 * b / ((0.001 + d2) * (a * pow(d2, b) + 1))
                            for d in 0..<dims { step[d] += clip(repel * (out[i * dims + d] - position(t, d))) }
                        } else {
                            for d in 0..<dims { step[d] += 4 }
                        }
                    }
                    for d in 0..<dims { out[i * dims + d] += step[d] * alpha }
                    done += batch
                }
                nextNegative[e] += Double(count) * (perSample[e] / negatives)
            }
        }
    }
}
