// Metrics (Hungarian against brute force, NMI/ARI by hand), k-means, soft k-means and DEC/IDEC/DKM gradients.
import Foundation
@testable import Clustering
@testable import Datasets
@testable import NN
@testable import Report
@testable import Tensor
@testable import Training
import Collective
import TestSupport
import XCTest

final class ClusteringTests: XCTestCase {
    func permutations(_ n: Int) -> [[Int]] {
        if n == 0 { return [[]] }
        return permutations(n - 1).flatMap { p in (0...p.count).map { i in var q = p; q.insert(n - 1, at: i); return q } }
    }

    func testHungarianMatchesBruteForce() {
        var rng = Xoshiro256(seed: 21)
        for trial in 0..<60 {
            let n = 1 + trial % 7
            let cost = (0..<n).map { _ in (0..<n).map { _ in Double(rng.nextInt(below: 50)) } }
            let assignment = Hungarian.solve(cost)
            XCTAssertEqual(Set(assignment).count, n, "a permutation (seed 21, trial \(trial))")
            let best = permutations(n).map { p in (0..<n).reduce(0.0) { $0 + cost[$1][p[$1]] } }.min()!
            XCTAssertEqual((0..<n).reduce(0.0) { $0 + cost[$1][assignment[$1]] }, best, "trial \(trial)")
        }
    }

    func testAccuracyOnNonSquareTables() {
        // 3 clusters, 2 labels: one cluster must stay unmatched.
        let table = [[5, 0], [0, 4], [2, 1]]
        XCTAssertEqual(Metrics.accuracy(table), 9.0 / 12.0, accuracy: 1e-12)
        // 2 clusters, 4 labels: best two cells in different rows and columns.
        let wide = [[3, 1, 0, 0], [2, 0, 6, 1]]
        XCTAssertEqual(Metrics.accuracy(wide), 9.0 / 13.0, accuracy: 1e-12)
    }

    func testMetricsByHand() {
        let s = Metrics.scores(predicted: [1, 1, 0, 0], labels: [0, 0, 1, 1], clusters: 2, classes: 2)
        XCTAssertEqual(s, ClusteringScores(accuracy: 1, nmi: 1, ari: 1))
        // labels [0,0,1,1] vs clusters [0,0,1,2]: MI = ln 2, H = ln 2 and 1.5 ln 2, NMI = 1 / 1.25 = 0.8;
        // ARI = (1 - 0.5*1/6*... ) = 0.5714... (index 1, expected 2*1/6, max (2+1)/2).
        let t = Metrics.scores(predicted: [0, 0, 1, 2], labels: [0, 0, 1, 1], clusters: 3, classes: 2)
        XCTAssertEqual(t.nmi, 0.8, accuracy: 1e-12)
        XCTAssertEqual(t.ari, 4.0 / 7.0, accuracy: 1e-12)
        XCTAssertEqual(t.accuracy, 0.75, accuracy: 1e-12)
        // Independent partitions: ARI below zero is allowed, NMI 0.
        let u = Metrics.scores(predicted: [0, 1, 0, 1], labels: [0, 0, 1, 1], clusters: 2, classes: 2)
        XCTAssertEqual(u.nmi, 0, accuracy: 1e-12)
        XCTAssertEqual(u.ari, -0.5, accuracy: 1e-12)
    }

    func testKMeansFindsSeparatedBlobs() throws {
        let (points, labels) = gaussianBlobs(perBlob: 100, spread: 0.5, seed: 3)
        let result = try points.withUnsafeBufferPointer {
            try KMeans.fit(points: $0.baseAddress!, count: 300, dims: 2, clusters: 3, restarts: 3, seed: 1,
                           communicator: SingleProcessCommunicator(), spreadRestarts: true)
        }
        XCTAssertEqual(Metrics.scores(predicted: result.assignments, labels: labels, clusters: 3, classes: 3).accuracy, 1)
        XCTAssertGreaterThan(result.inertia, 0)
    }

    /// Restarts run a few at a time on threads: the same centres, labels and inertia as one after another, bit for
    /// bit, with more restarts than threads and fewer (the lowest restart of the best inertia wins either way).
    func testKMeansRestartsOnThreadsMatchInTurn() throws {
        let (points, _) = gaussianBlobs(perBlob: 150, spread: 2.5, seed: 5)  // overlapping: restarts differ
        func fit(restarts: Int, threads: Int) throws -> KMeansResult {
            try points.withUnsafeBufferPointer {
                try KMeans.fit(points: $0.baseAddress!, count: 450, dims: 2, clusters: 6, restarts: restarts, seed: 7,
                               communicator: SingleProcessCommunicator(), spreadRestarts: true, threads: threads)
            }
        }
        for restarts in [1, 2, 7] {
            let inTurn = try fit(restarts: restarts, threads: 1)
            for threads in [2, 3, 16] {
                let threaded = try fit(restarts: restarts, threads: threads)
                XCTAssertEqual(threaded.centres.map(\.bitPattern), inTurn.centres.map(\.bitPattern), "\(restarts) restarts, \(threads) threads")
                XCTAssertEqual(threaded.assignments, inTurn.assignments)
                XCTAssertEqual(threaded.inertia.bitPattern, inTurn.inertia.bitPattern)
            }
        }
        // The restarts do differ here, so the test would see a wrong winner.
        XCTAssertNotEqual(try fit(restarts: 1, threads: 1).inertia, try fit(restarts: 7, threads: 1).inertia)
    }

    func testSoftmaxLossGradientAtSharpAlphas() {
        let rows = 4, k = 3
        for alpha: Float in [1, 10, 1000] {
            // Distances spread so that alpha = 1000 gives weights that underflow without the shift.
            let d = seededValues(rows * k, seed: 31).map { Float(1 + abs($0)) }
            var w = [Float](repeating: 0, count: rows * k), g = w
            let loss = SoftKMeans.softmaxLoss(distances: d, rows: rows, clusters: k, alpha: alpha, weights: &w, dDistances: &g)
            XCTAssert(loss.isFinite && g.allSatisfy { $0.isFinite }, "alpha \(alpha)")
            // Finite differences of the Double reference. The float32 gradient w (1 - alpha (d - dbar)) carries the
            // rounding of d - dbar (a few u |d|) times alpha: its error relative to O(1) gradients is ~ alpha |d| 4u,
            // 5e-4 at alpha = 1000 with |d| <= 2; the tolerance is that bound or the general one, whichever is larger.
            func reference(_ x: [Double]) -> Double { Reference.softKMeans(x, rows: rows, k: k, alpha: Double(alpha)) }
            let tolerance = max(doubleReferenceTolerance, Double(alpha) * 2 * 8 * 0x1p-24)
            gradientCheck(name: "soft k-means alpha=\(alpha)", x: d.map(Double.init), analytic: g.map(Double.init),
                          h: doubleReferenceStep / Double(alpha).squareRoot(), tolerance: tolerance, loss: reference)
            assertClose(loss, reference(d.map(Double.init)), relative: 1e-5)
        }
        // Huge alpha and huge distances: still finite.
        var w = [Float](repeating: 0, count: 3), g = w
        let loss = SoftKMeans.softmaxLoss(distances: [1e6, 2e6, 3e6], rows: 1, clusters: 3, alpha: 1e6, weights: &w, dDistances: &g)
        XCTAssert(loss.isFinite && g.allSatisfy { $0.isFinite })
    }

    func testCentreGradientMatchesFiniteDifferences() {
        let rows = 5, dims = 3, k = 2
        let x = seededValues(rows * dims, seed: 41).map(Float.init)
        let u = seededValues(k * dims, seed: 42).map(Float.init)
        func loss(_ centres: [Double]) -> Double {
            let d = Reference.squaredDistances(x.map(Double.init), centres, rows: rows, e: dims, k: k)
            return Reference.softKMeans(d, rows: rows, k: k, alpha: 2)
        }
        var d = [Float](repeating: 0, count: rows * k), w = d, g = d
        KMeans.squaredDistances(points: x, rows: rows, dims: dims, centres: u, clusters: k, into: &d)
        _ = SoftKMeans.softmaxLoss(distances: d, rows: rows, clusters: k, alpha: 2, weights: &w, dDistances: &g)
        var dU = [Float](repeating: 0, count: k * dims)
        SoftKMeans.centreGradient(points: x, rows: rows, dims: dims, centres: u, clusters: k, dDistances: g, scale: 1, into: &dU)
        gradientCheck(name: "soft k-means centres", x: u.map(Double.init), analytic: dU.map(Double.init), h: doubleReferenceStep,
                      tolerance: doubleReferenceTolerance, loss: loss)
    }

    func testSimplexProjection() {
        var v: [Float] = [0.5, 2, -1]
        SoftKMeans.projectOntoSimplex(&v, count: 3)
        XCTAssertEqual(v, [0, 1, 0])
        var u: [Float] = [0.4, 0.3, 0.1]   // sum 0.8: each gets +0.2/3
        SoftKMeans.projectOntoSimplex(&u, count: 3)
        for (a, b) in zip(u, [0.4 + 0.2 / 3, 0.3 + 0.2 / 3, 0.1 + 0.2 / 3]) { assertClose(Double(a), b, relative: 1e-6) }
    }

    // MARK: - DEC, IDEC, DKM

    func decFixture() -> (z: [Float], centres: [Float], p: [Float], rows: Int, e: Int, k: Int) {
        let rows = 4, e = 3, k = 3
        let z = seededValues(rows * e, seed: 51, scale: 2).map(Float.init)
        let centres = seededValues(k * e, seed: 52, scale: 2).map(Float.init)
        var q = [Float](repeating: 0, count: rows * k), t = q
        DEC.softAssignment(z: z, rows: rows, dims: e, centres: centres, clusters: k, q: &q, kernel: &t)
        return (z, centres, DEC.target(q: q, clusters: k), rows, e, k)
    }

    func testDECGradientsWithRespectToEmbeddingAndCentres() {
        let f = decFixture()
        var q = [Float](repeating: 0, count: f.rows * f.k), t = q
        DEC.softAssignment(z: f.z, rows: f.rows, dims: f.e, centres: f.centres, clusters: f.k, q: &q, kernel: &t)
        XCTAssert((0..<f.rows).allSatisfy { i in abs((0..<f.k).reduce(Float(0)) { $0 + q[i * f.k + $1] } - 1) < 1e-6 })
        var dZ = [Float](repeating: 0, count: f.rows * f.e), dMu = [Float](repeating: 0, count: f.k * f.e)
        let value = DEC.klLossAndGradient(z: f.z, rows: f.rows, dims: f.e, centres: f.centres, clusters: f.k, p: f.p, q: q,
                                          kernel: t, scale: 1, dZ: &dZ, dCentres: &dMu)
        let z = f.z.map(Double.init), centres = f.centres.map(Double.init), p = f.p.map(Double.init)
        assertClose(value, Reference.kl(z: z, centres: centres, p: p, rows: f.rows, e: f.e, k: f.k), relative: 1e-5)
        gradientCheck(name: "DEC KL wrt z", x: z, analytic: dZ.map(Double.init), h: doubleReferenceStep,
                      tolerance: doubleReferenceTolerance) {
            Reference.kl(z: $0, centres: centres, p: p, rows: f.rows, e: f.e, k: f.k)
        }
        gradientCheck(name: "DEC KL wrt centres", x: centres, analytic: dMu.map(Double.init), h: doubleReferenceStep,
                      tolerance: doubleReferenceTolerance) {
            Reference.kl(z: z, centres: $0, p: p, rows: f.rows, e: f.e, k: f.k)
        }
    }

    func testTargetDistributionSharpensAndNormalises() {
        let q: [Float] = [0.6, 0.4, 0.5, 0.5, 0.2, 0.8]
        let p = DEC.target(q: q, clusters: 2)
        // f = (1.3, 1.7); row 0: (0.36/1.3, 0.16/1.7) normalised.
        let a = 0.36 / 1.3, b = 0.16 / 1.7
        assertClose(Double(p[0]), a / (a + b), relative: 1e-6)
        XCTAssertGreaterThan(p[0], q[0], "P is sharper than Q where Q is confident")
        for i in 0..<3 { assertClose(Double(p[2 * i] + p[2 * i + 1]), 1, relative: 1e-6) }
    }

    func testDKMGradient() {
        let f = decFixture()
        func loss(z: [Double], centres: [Double]) -> Double {
            Reference.softKMeans(Reference.squaredDistances(z, centres, rows: f.rows, e: f.e, k: f.k), rows: f.rows, k: f.k, alpha: 0.5)
        }
        let z = f.z.map(Double.init), centres = f.centres.map(Double.init)
        var d = [Float](repeating: 0, count: f.rows * f.k), w = d, g = d
        var dZ = [Float](repeating: 0, count: f.rows * f.e), dMu = [Float](repeating: 0, count: f.k * f.e)
        let value = DEC.kMeansLossAndGradient(z: f.z, rows: f.rows, dims: f.e, centres: f.centres, clusters: f.k, alpha: 0.5, scale: 1,
                                      distances: &d, weights: &w, dDistances: &g, dZ: &dZ, dCentres: &dMu)
        assertClose(value, loss(z: z, centres: centres), relative: 1e-5)
        gradientCheck(name: "DKM wrt z", x: z, analytic: dZ.map(Double.init), h: doubleReferenceStep,
                      tolerance: doubleReferenceTolerance) { loss(z: $0, centres: centres) }
        gradientCheck(name: "DKM wrt centres", x: centres, analytic: dMu.map(Double.init), h: doubleReferenceStep,
                      tolerance: doubleReferenceTolerance) { loss(z: z, centres: $0) }
    }

    /// IDEC = reconstruction + gamma KL through the whole autoencoder, checked end to end on the parameters.
    func testIDECGradientThroughTheAutoencoder() throws {
        let model = try Model(widths: [5, 4, 2], clusters: 2, maxRows: 3, communicator: SingleProcessCommunicator())
        var rng = Xoshiro256(seed: 61)
        model.autoencoder.initialize(model.store, scheme: .glorot, rng: &rng)
        model.setCentres([0.3, -0.2, -0.4, 0.5])
        let x = seededValues(3 * 5, seed: 62).map { Float(abs($0)) }
        let p: [Float] = [0.7, 0.3, 0.2, 0.8, 0.5, 0.5]
        let gamma: Float = 0.1
        let ae = model.autoencoder, store = model.store
        let range = 0..<model.centreRange.upperBound
        let xd = x.map(Double.init), pd = p.map(Double.init)
        func loss(_ params: [Double]) -> Double {
            let z = Reference.encode(ae, params, xd, rows: 3)
            let rec = Reference.mse(Reference.decode(ae, params, z, rows: 3), xd, rows: 3, dims: 5)
            let centres = Array(params[model.centreRange])
            return rec + Double(gamma) * Reference.kl(z: z, centres: centres, p: pd, rows: 3, e: 2, k: 2)
        }
        let params = store.parameterArray(range).map(Double.init)
        ae.forward(store, input: x, rows: 3)
        model.zeroGradients(model.all)
        var q = [Float](repeating: 0, count: 6), t = q, dZ = [Float](repeating: 0, count: 6), dRec = [Float](repeating: 0, count: 15)
        DEC.softAssignment(z: ae.embedding, rows: 3, dims: 2, centres: store.parameters + model.centres, clusters: 2, q: &q, kernel: &t)
        _ = DEC.klLossAndGradient(z: ae.embedding, rows: 3, dims: 2, centres: store.parameters + model.centres, clusters: 2, p: p, q: q,
                                  kernel: t, scale: gamma, dZ: &dZ, dCentres: store.gradients + model.centres)
        _ = MSE.lossAndGradient(reconstruction: ae.reconstruction, target: x, dReconstruction: &dRec, rows: 3, dims: 5, scale: 1)
        let dEmbedding = ae.backwardDecoder(store, dReconstruction: &dRec, rows: 3) { _ in }
        for i in 0..<6 { dEmbedding[i] += dZ[i] }
        ae.backwardEncoder(store, input: x, dEmbedding: dEmbedding, rows: 3) { _ in }
        gradientCheck(name: "IDEC whole model", x: params, analytic: Array(store.gradientBuffer(range)).map(Double.init),
                      h: doubleReferenceStep, tolerance: doubleReferenceTolerance, loss: loss)
    }
}
