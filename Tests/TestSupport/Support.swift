// Test helpers shared by every test file: tolerance checks that point at the caller, a central-difference
// gradient check in Double that reports its worst difference, and seeded data.
import Clustering
import Datasets
import NN
import Report
import Tensor
import Training
import Foundation
import XCTest

/// Points on `blobs` blobs in `dims` dimensions, `perBlob` each, their centres 3 or more apart and their spread
/// `spread`: (points (N, dims), labels), seeded.
public func separatedBlobs(perBlob: Int, blobs: Int, dims: Int, seed: UInt64, spread: Double = 0.4) -> ([Float], [Int32]) {
    var rng = Xoshiro256(seed: seed)
    var points: [Float] = [], labels: [Int32] = []
    for b in 0..<blobs {
        for _ in 0..<perBlob {
            points += (0..<dims).map { d in Float(Double((b * 5 + d * 3) % 7) * 3 + rng.nextNormal() * spread) }
            labels.append(Int32(b))
        }
    }
    return (points, labels)
}

/// Asserts |a - b| <= absolute + relative * |b|, reporting at the caller's line.
public func assertClose(_ a: Double, _ b: Double, relative: Double = 1e-5, absolute: Double = 1e-7,
                        _ message: String = "", file: StaticString = #filePath, line: UInt = #line) {
    XCTAssert(abs(a - b) <= absolute + relative * abs(b), "\(a) vs \(b) \(message)", file: file, line: line)
}

/// Compares an analytic gradient with central differences of `loss` at `x` (perturbing each coordinate by `h`).
/// Returns the worst relative error max |g - fd| / max(|fd|, floor), and prints it.
@discardableResult
public func gradientCheck(name: String, x: [Double], analytic: [Double], h: Double = 1e-5, floor: Double = 1e-3,
                          tolerance: Double = 1e-4, file: StaticString = #filePath, line: UInt = #line,
                          loss: ([Double]) -> Double) -> Double {
    precondition(x.count == analytic.count)
    var worst = 0.0
    var probe = x
    for i in 0..<x.count {
        probe[i] = x[i] + h
        let up = loss(probe)
        probe[i] = x[i] - h
        let down = loss(probe)
        probe[i] = x[i]
        let numeric = (up - down) / (2 * h)
        worst = max(worst, abs(numeric - analytic[i]) / max(abs(numeric), floor))
    }
    print("gradient check \(name): worst relative difference \(worst) over \(x.count) coordinates")
    XCTAssertLessThan(worst, tolerance, "gradient check \(name)", file: file, line: line)
    return worst
}

/// Seeded uniform values in [-scale, scale].
public func seededValues(_ count: Int, seed: UInt64, scale: Double = 1) -> [Double] {
    var rng = Xoshiro256(seed: seed)
    return (0..<count).map { _ in (2 * rng.nextDouble() - 1) * scale }
}

// MARK: - Double references for gradient checks

/// The tolerance of a gradient check that compares a float32 analytic gradient with central differences of a Double
/// reference at h = 1e-6. The difference quotient's own error is O(h^2) (truncation) + O(2^-53 |L| / h) (rounding),
/// about 1e-10 here. The float32 gradient's error is a sum over its terms of a few u = 2^-24 each (short dot products
/// and elementwise passes, chained through at most a handful of layers): at most a few hundred u = 2e-5 relative to the
/// magnitude of those terms, which the `floor` of the check stands in for where terms cancel. So 1e-4 (~1,700 u) holds
/// on any kernel while a wrong term (an O(1) error) fails it by orders of magnitude. The old checks differenced the
/// float32 code itself at h = 1e-3, where rounding the perturbed parameter to float alone costs u |x| / h ~ 6e-5 and
/// the loss's own rounding u |L| / h more: hence their 1e-2 to 5e-2.
public let doubleReferenceTolerance = 1e-4
public let doubleReferenceStep = 1e-6

public enum Reference {
    /// act(x W + b) of `layer` in Double, reading W and b from `params` (the store's layout).
    public static func dense(_ layer: Dense, _ params: [Double], _ x: [Double], rows: Int) -> [Double] {
        var y = [Double](repeating: 0, count: rows * layer.outputs)
        for r in 0..<rows {
            for o in 0..<layer.outputs {
                var s = params[layer.bias + o]
                for i in 0..<layer.inputs { s += x[r * layer.inputs + i] * params[layer.weight + i * layer.outputs + o] }
                y[r * layer.outputs + o] = layer.relu ? max(s, 0) : s
            }
        }
        return y
    }

    /// The encoder in Double: the embedding (rows, E).
    public static func encode(_ ae: Autoencoder, _ params: [Double], _ x: [Double], rows: Int) -> [Double] {
        ae.encoder.reduce(x) { dense($1, params, $0, rows: rows) }
    }

    /// The decoder in Double from an embedding: the reconstruction (rows, D).
    public static func decode(_ ae: Autoencoder, _ params: [Double], _ z: [Double], rows: Int) -> [Double] {
        ae.decoder.reduce(z) { dense($1, params, $0, rows: rows) }
    }

    /// MSE as the trainer sums it: sum over rows of the mean over dims of (r - x)^2.
    public static func mse(_ r: [Double], _ x: [Double], rows: Int, dims: Int) -> Double {
        zip(r, x).reduce(0.0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } / Double(dims)
    }

    /// Squared distances (rows, k) between points (rows, e) and centres (k, e).
    public static func squaredDistances(_ z: [Double], _ centres: [Double], rows: Int, e: Int, k: Int) -> [Double] {
        var d = [Double](repeating: 0, count: rows * k)
        for i in 0..<rows {
            for j in 0..<k { d[i * k + j] = (0..<e).reduce(0.0) { $0 + pow(z[i * e + $1] - centres[j * e + $1], 2) } }
        }
        return d
    }

    /// KL(P || Q) with Q the Student's t soft assignment of DEC (Xie et al. 2016, eq. 1).
    public static func kl(z: [Double], centres: [Double], p: [Double], rows: Int, e: Int, k: Int) -> Double {
        let d = squaredDistances(z, centres, rows: rows, e: e, k: k)
        var loss = 0.0
        for i in 0..<rows {
            let t = (0..<k).map { 1 / (1 + d[i * k + $0]) }
            let s = t.reduce(0, +)
            for j in 0..<k where p[i * k + j] > 0 { loss += p[i * k + j] * Foundation.log(p[i * k + j] / (t[j] / s)) }
        }
        return loss
    }

    /// Soft k-means: sum_i sum_k d_ik softmax_k(-alpha d_ik) over distances (rows, k).
    public static func softKMeans(_ d: [Double], rows: Int, k: Int, alpha: Double) -> Double {
        var total = 0.0
        for i in 0..<rows {
            let row = Array(d[(i * k)..<((i + 1) * k)])
            let m = row.min()!
            let w = row.map { Foundation.exp(-alpha * ($0 - m)) }
            let s = w.reduce(0, +)
            total += zip(row, w).reduce(0.0) { $0 + $1.0 * $1.1 / s }
        }
        return total
    }
}
