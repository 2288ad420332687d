// A cost model of a data-parallel step, to plan past this machine. Compute scales with the rows a rank holds; the
// gradient allreduce follows the ring algorithm: t(n bytes, p ranks) = 2 (p - 1) alpha + 2 (p - 1) / p * n * beta.
// alpha (latency) and beta (seconds per byte) are fitted to a sweep of message sizes on the ranks at hand, or set
// from a link's speed. With overlap, communication hides behind the backward pass (about 2/3 of the compute).
import Clustering
import Collective
import Datasets
import Foundation
import NN
import Report
import Tensor

public struct LinkParameters: Sendable {
    public var alpha: Double     // seconds per message step
    public var beta: Double      // seconds per byte
    public init(alpha: Double, beta: Double) { self.alpha = alpha; self.beta = beta }
    /// A link of `gbps` gigabits per second with `latency` seconds per step.
    public init(gbps: Double, latency: Double) { self.init(alpha: latency, beta: 8 / (gbps * 1e9)) }
}

public struct AllreduceSweep: Sendable {
    public var ranks: Int
    public var points: [(bytes: Double, seconds: Double)]
    public var link: LinkParameters
}

public struct ModelRow: Sendable {
    public var ranks: Int
    public var rowsPerRank: Double
    public var compute: Double, communication: Double
    public var step: Double, stepOverlap: Double
    public var efficiency: Double, efficiencyOverlap: Double
}

public enum CostModel {
    public static func ringAllreduce(bytes: Double, ranks p: Int, link: LinkParameters) -> Double {
        guard p > 1 else { return 0 }
        return 2 * Double(p - 1) * link.alpha + 2 * Double(p - 1) / Double(p) * bytes * link.beta
    }

    /// Times blocking allreduces of 1 KiB ... `maxBytes` (median of `repeats`) and fits alpha and beta by least squares.
    public static func sweep(_ communicator: Communicator, maxBytes: Int, repeats: Int = 7) throws -> AllreduceSweep {
        let p = communicator.size
        var sizes: [Int] = []
        var n = 256
        while n * 4 <= maxBytes { sizes.append(n); n *= 4 }
        sizes.append(maxBytes / 4)
        var buffer = [Float](repeating: 1, count: maxBytes / 4)
        var points: [(Double, Double)] = []
        for count in sizes {
            var times: [Double] = []
            for r in 0..<(repeats + 2) {
                try communicator.barrier()
                let t = Clock.now
                try buffer.withUnsafeMutableBufferPointer { try communicator.allreduce(UnsafeMutableBufferPointer(rebasing: $0[0..<count]), .sum) }
                if r >= 2 { times.append(Clock.now - t) }
            }
            // Every rank takes rank 0's view, so all print and decide the same.
            var median = [times.sorted()[times.count / 2]]
            try communicator.broadcast(&median, root: 0)
            points.append((Double(count * 4), median[0]))
        }
        // t = a + b * bytes; alpha = a / (2 (p - 1)), beta = b / (2 (p - 1) / p).
        let xs = points.map { $0.0 }, ys = points.map { $0.1 }
        let mx = xs.reduce(0, +) / Double(xs.count), my = ys.reduce(0, +) / Double(ys.count)
        let sxy = zip(xs, ys).map { ($0 - mx) * ($1 - my) }.reduce(0, +), sxx = xs.map { ($0 - mx) * ($0 - mx) }.reduce(0, +)
        let b = max(sxy / max(sxx, 1e-30), 0), a = max(my - b * mx, 0)
        let steps = Double(2 * max(p - 1, 1)), share = p > 1 ? 2 * Double(p - 1) / Double(p) : 1
        return AllreduceSweep(ranks: p, points: points, link: LinkParameters(alpha: a / steps, beta: b / share))
    }

    /// Step time and efficiency for each rank count. Strong scaling keeps the global batch; weak scaling keeps
    /// `batch` rows per rank. `computePerSample`: seconds of one rank's compute per row.
    public static func predict(ranks: [Int], batch: Int, weak: Bool, computePerSample: Double, gradientBytes: Double,
                               link: LinkParameters) -> [ModelRow] {
        let one = computePerSample * Double(batch)
        return ranks.map { p in
            let rows = weak ? Double(batch) : Double(batch) / Double(p)
            let compute = computePerSample * rows
            let communication = ringAllreduce(bytes: gradientBytes, ranks: p, link: link)
            let step = compute + communication
            let stepOverlap = compute + max(0, communication - compute * 2 / 3)
            // Efficiency: samples per second per rank, relative to one rank.
            let samples = weak ? Double(batch * p) : Double(batch)
            return ModelRow(ranks: p, rowsPerRank: rows, compute: compute, communication: communication, step: step, stepOverlap: stepOverlap,
                            efficiency: samples / step / Double(p) / (Double(batch) / one),
                            efficiencyOverlap: samples / stepOverlap / Double(p) / (Double(batch) / one))
        }
    }
}
