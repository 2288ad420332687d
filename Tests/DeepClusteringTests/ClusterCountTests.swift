// The K chooser (ICL of a Gaussian mixture over K) on layouts whose cluster count is known, and the accuracy's
// matching on non-square tables (more clusters than classes, or fewer) against a brute-force search.
@testable import Clustering
import Collective
import Foundation
import Tensor
import TestSupport
import XCTest

final class ClusterCountTests: XCTestCase {
    /// `blobs` round blobs of `perBlob` points in 3 dimensions, centres 8 layout units apart at least.
    func blobs(_ blobs: Int, perBlob: Int = 300, seed: UInt64) -> [Float] {
        var rng = Xoshiro256(seed: seed)
        var points: [Float] = []
        for b in 0..<blobs {
            let centre = [Double(b % 3) * 8, Double((b / 3) % 3) * 8, Double(b / 9) * 8]
            for _ in 0..<perBlob { points += centre.map { Float($0 + rng.nextNormal() * 0.8) } }
        }
        return points
    }

    static func choose(_ points: [Float], dims: Int, communicator: Communicator = SingleProcessCommunicator()) throws -> ClusterCountChoice {
        var options = ClusterCountOptions()
        options.largest = 15
        options.sample = 1000
        return try ClusterCount.choose(layout: points, count: points.count / dims, dims: dims, options: options, communicator: communicator)
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

    func testSameChoiceOnOneAndTwoRanks() throws {
        let points = blobs(5, perBlob: 200, seed: 11)
        let one = try Self.choose(points, dims: 3)
        let two = try InProcessWorld.run(ranks: 2) { c in try ClusterCountTests.choose(points, dims: 3, communicator: c) }
        for result in two {
            XCTAssertEqual(result.clusters, one.clusters)
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
