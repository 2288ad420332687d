// The K chooser (ICL of a Gaussian mixture over K) on layouts whose cluster count is known, and the accuracy's
// matching on non-square tables (more clusters than classes, or fewer) against a brute-force search.
@testable import Clustering
import Datasets
@testable import Training
import Collective
import Foundation
import Tensor
import TestSupport
import XCTest

final class ClusterCountTests: XCTestCase {
    /// `blobs` round blobs of `perBlob` points in 3 dimensions, centres 8 layout units apart at least.
    func blobs(_ blobs: Int, perBlob: Int = 300, spread: Double = 0.8, seed: UInt64) -> [Float] {
        var rng = Xoshiro256(seed: seed)
        var points: [Float] = []
        for b in 0..<blobs {
            let centre = [Double(b % 3) * 8, Double((b / 3) % 3) * 8, Double(b / 9) * 8]
            for _ in 0..<perBlob { points += centre.map { Float($0 + rng.nextNormal() * spread) } }
        }
        return points
    }

    static func choose(_ points: [Float], dims: Int, threads: Int = 1, screenIterations: Int = ClusterCountOptions().screenIterations,
                       communicator: Communicator = SingleProcessCommunicator()) throws -> ClusterCountChoice {
        var options = ClusterCountOptions()
        options.largest = 15
        options.sample = 1000
        options.screenIterations = screenIterations
        return try ClusterCount.choose(layout: points, count: points.count / dims, dims: dims, options: options, threads: threads,
                                       communicator: communicator)
    }

    func testPicksTheBlobCountExactly() throws {
        for k in [3, 5, 8] {
            let choice = try Self.choose(blobs(k, seed: UInt64(k)), dims: 3)
            XCTAssertEqual(choice.clusters, k, "criterion \(choice.criterion)")
            XCTAssertEqual(choice.criterion.first?.clusters, 2)
            XCTAssertGreaterThanOrEqual(choice.criterion.last!.clusters, k + 1, "the sweep looks past the best K")
        }
    }

    func testDoesNotSplitOneElongatedCluster() throws {
        // One cigar 40 units long and 1 wide, beside a round blob: two clusters, not a row of pieces of the cigar.
        var rng = Xoshiro256(seed: 7)
        var points: [Float] = []
        for _ in 0..<900 { points += [Float(Double(rng.next() >> 11) / Double(1 << 53) * 40), Float(rng.nextNormal() * 0.5), Float(rng.nextNormal() * 0.5)] }
        for _ in 0..<300 { points += [Float(20 + rng.nextNormal() * 0.8), Float(10 + rng.nextNormal() * 0.8), Float(rng.nextNormal() * 0.8)] }
        XCTAssertEqual(try Self.choose(points, dims: 3).clusters, 2)
    }

    /// Screening: the fits run `screenIterations` EM iterations, and the most likely runs from its k-means start to
    /// convergence; the mixture scored is exactly that start's fit to convergence (after 1 iteration no fit can have
    /// converged, so the run on must happen), and it is the start whose short fit was the most likely.
    func testScreeningRunsTheMostLikelyStartToConvergence() throws {
        let points = blobs(3, perBlob: 300, spread: 1.8, seed: 9)
        var options = ClusterCountOptions()
        options.screenIterations = 1
        let k = 6
        let chosen = try ClusterCount.bestFit(of: k, fitted: points, sampleCount: 900, dims: 3, options: options)
        XCTAssertTrue(chosen.converged, "\(chosen.iterations) iterations")
        var short: [GaussianMixtureResult] = [], full: [GaussianMixtureResult] = []
        for fit in 0..<options.fits {
            let start = try points.withUnsafeBufferPointer { p in
                try KMeans.fit(points: p.baseAddress!, count: 900, dims: 3, clusters: k, restarts: options.restarts,
                               seed: options.seed &+ UInt64(k) &+ UInt64(fit) &* 0x9e37, communicator: SingleProcessCommunicator(),
                               spreadRestarts: false).assignments
            }
            short.append(try GaussianMixture.fit(points: points, count: 900, dims: 3, components: k, initial: start, maxIterations: 1,
                                                 regularization: options.regularization))
            full.append(try GaussianMixture.fit(points: points, count: 900, dims: 3, components: k, initial: start,
                                                regularization: options.regularization))
        }
        let winner = short.indices.max { short[$0].logLikelihood < short[$1].logLikelihood }!
        XCTAssertEqual(chosen.logLikelihood, full[winner].logLikelihood)
        XCTAssertEqual(chosen.means, full[winner].means)
        XCTAssertGreaterThan(Set(full.map(\.logLikelihood)).count, 1, "the starts must differ for the test to mean anything")
    }

    /// The sweep's K split over ranks and threads in rounds: the same K and the same values, bit for bit.
    func testSameChoiceOnAnyRanksAndThreads() throws {
        let points = blobs(5, perBlob: 200, seed: 11)
        let one = try Self.choose(points, dims: 3)
        XCTAssertEqual(one.clusters, 5)
        var results = [try Self.choose(points, dims: 3, threads: 3)]
        for (ranks, threads) in [(2, 1), (2, 2), (3, 1)] {
            results += try InProcessWorld.run(ranks: ranks) { c in try ClusterCountTests.choose(points, dims: 3, threads: threads, communicator: c) }
        }
        for result in results {
            XCTAssertEqual(result.clusters, one.clusters)
            XCTAssertEqual(result.criterion.map(\.clusters), one.criterion.map(\.clusters))
            XCTAssertEqual(result.criterion.map(\.icl), one.criterion.map(\.icl))
        }
    }

    func testNonSquareAccuracyMatchesBruteForce() {
        var rng = Xoshiro256(seed: 5)
        for (clusters, classes) in [(2, 4), (4, 2), (3, 5), (5, 3), (4, 4), (6, 3)] {
            for _ in 0..<10 {
                let table = (0..<clusters).map { _ in (0..<classes).map { _ in Int(rng.next() % 20) } }
                let total = table.flatMap { $0 }.reduce(0, +)
                XCTAssertEqual(Metrics.accuracy(table), Double(bruteForce(table)) / Double(max(total, 1)), accuracy: 1e-12,
                               "\(table)")
            }
        }
    }

    /// The most samples any one-to-one matching of clusters to classes covers, by trying every injection.
    func bruteForce(_ table: [[Int]]) -> Int {
        let rows = table.count, columns = table[0].count
        func best(_ row: Int, _ used: Set<Int>) -> Int {
            guard row < rows else { return 0 }
            var top = best(row + 1, used)  // this cluster unmatched
            for c in 0..<columns where !used.contains(c) { top = max(top, table[row][c] + best(row + 1, used.union([c]))) }
            return top
        }
        return best(0, [])
    }
}

/// The clusters a run with `--clusters auto` drops at the end: the empty ones, the rest renumbered in order, q's
/// kept columns renormalised, the centres' rows and the scores of the renumbered clustering.
final class ClusterPruningTests: XCTestCase {
    func testDropsEmptyClustersAndRenumbers() throws {
        XCTAssertNil(ClusterPruning(assignments: [0, 1, 2, 1], clusters: 3), "nothing to drop")
        let pruning = try XCTUnwrap(ClusterPruning(assignments: [0, 3, 3, 1, 0], clusters: 5))
        XCTAssertEqual(pruning.kept, [0, 1, 3])
        XCTAssertEqual(pruning.dropped, [2, 4])
        XCTAssertEqual(pruning.clusters, 3)
        XCTAssertEqual(pruning.assignments([0, 3, 3, 1, 0]), [0, 2, 2, 1, 0])
        // q (2, 5): the kept columns 0, 1, 3, renormalised.
        let q: [Float] = [0.5, 0.1, 0.2, 0.1, 0.1,
                          0.0, 0.0, 0.5, 0.0, 0.5]
        let kept = pruning.q(q, samples: 2)
        XCTAssertEqual(kept[0], 0.5 / 0.7, accuracy: 1e-6)
        XCTAssertEqual(kept[1], 0.1 / 0.7, accuracy: 1e-6)
        XCTAssertEqual(kept[2], 0.1 / 0.7, accuracy: 1e-6)
        XCTAssertEqual(Array(kept[3...]), [Float](repeating: Float(1) / 3, count: 3), "a row with no mass on the kept clusters is uniform")
        XCTAssertEqual(pruning.rows((0..<10).map(Float.init), width: 2), [0, 1, 2, 3, 6, 7])
    }

    func testScoresOfThePrunedPassUseTheKeptClusters() throws {
        let data = DataSet(name: "four", features: [0, 1, 2, 3], labels: [0, 0, 1, 1], dimension: 1, classCount: 2, transform: nil)
        let pass = ClusteringPass(embedding: [0, 1, 2, 3], q: [Float](repeating: 1 / 3, count: 12), assignments: [0, 0, 2, 2],
                                  scores: data.scores([0, 0, 2, 2], clusters: 3))
        let pruning = try XCTUnwrap(ClusterPruning(assignments: pass.assignments, clusters: 3))
        let pruned = pruning.pass(pass, data: data)
        XCTAssertEqual(pruned.assignments, [0, 0, 1, 1])
        XCTAssertEqual(pruned.q, [Float](repeating: 0.5, count: 8))
        XCTAssertEqual(pruned.scores.accuracy, 1)
    }
}
