// The unsupervised guard and its parts: neighbour information (the neighbours against a brute-force search, on any
// rank count; its values on partitions whose quality is known), the verdict between a start and a fine-tuned
// clustering (merged or scrambled fine-tuning loses to the start, a fine-tuning that repairs the start wins), the
// neighbour vote that predict uses for a kept N2D start, and what a small-range uint8 image array gets (a note).
import Clustering
import Collective
import Datasets
import Foundation
import Tensor
import TestSupport
@testable import Training
import XCTest

final class GuardTests: XCTestCase {
    func testNeighboursAreTheNearestOnAnyRankCountAndWithASample() throws {
        let (points, _) = separatedBlobs(perBlob: 30, blobs: 3, dims: 5, seed: 2)
        let n = 90, k = 7
        let one = try NeighbourAgreement(points: points, count: n, dims: 5, k: k, seed: 0, communicator: SingleProcessCommunicator())
        XCTAssertEqual(one.queries, Array(0..<Int32(n)))
        for i in 0..<n {
            var brute: [(Double, Int32)] = []
            for j in 0..<n where j != i {
                var d = 0.0
                for e in 0..<5 { let v = Double(points[i * 5 + e]) - Double(points[j * 5 + e]); d += v * v }
                brute.append((d, Int32(j)))
            }
            brute.sort { $0.0 < $1.0 }
            // Distances through SGEMM round differently from the direct sum: compare as sets of the k nearest, allowing
            // a swap at the boundary only where two distances are equal to float precision.
            let found = Set(one.neighbours[(i * k)..<((i + 1) * k)])
            let exact = Set(brute.prefix(k).map(\.1))
            if found != exact { XCTAssertLessThan(abs(brute[k - 1].0 - brute[k].0), 1e-4, "sample \(i)") }
        }
        let split = try InProcessWorld.run(ranks: 3) { c in
            try NeighbourAgreement(points: points, count: n, dims: 5, k: k, seed: 0, communicator: c).neighbours
        }
        for r in split { XCTAssertEqual(r, one.neighbours, "every rank holds the same neighbours as one rank") }
        let sampled = try NeighbourAgreement(points: points, count: n, dims: 5, k: k, maxQueries: 20, seed: 4,
                                             communicator: SingleProcessCommunicator())
        XCTAssertEqual(sampled.queries.count, 20)
        XCTAssertEqual(Set(sampled.queries).count, 20, "a sample without repeats")
        XCTAssertEqual(sampled.queries, sampled.queries.sorted())
        for (r, q) in sampled.queries.enumerated() {
            XCTAssertEqual(Array(sampled.neighbours[(r * k)..<((r + 1) * k)]), Array(one.neighbours[(Int(q) * k)..<((Int(q) + 1) * k)]))
        }
    }

    /// The points made a chunk at a time (as the guard makes them from bytes) give the neighbours of the whole
    /// array, on any chunk size and rank count; a DataSet's unit rows are its floats(.unit), row for row.
    func testNeighboursByChunksMatchTheWholeArray() throws {
        let (points, _) = separatedBlobs(perBlob: 40, blobs: 3, dims: 6, seed: 9)
        let n = 120, k = 8
        let whole = try NeighbourAgreement(points: points, count: n, dims: 6, k: k, seed: 0, communicator: SingleProcessCommunicator(),
                                           chunk: n)
        for chunk in [1, 7, 50] {
            let split = try InProcessWorld.run(ranks: 2) { c in
                try NeighbourAgreement(points: points, count: n, dims: 6, k: k, maxQueries: 30, seed: 3, communicator: c,
                                       chunk: chunk)
            }
            for agreement in split {
                for (r, q) in agreement.queries.enumerated() {
                    XCTAssertEqual(Array(agreement.neighbours[(r * k)..<((r + 1) * k)]),
                                   Array(whole.neighbours[(Int(q) * k)..<((Int(q) + 1) * k)]), "chunk \(chunk), sample \(q)")
                }
            }
        }
        var rng = Xoshiro256(seed: 12)
        let bytes = DataSet(name: "bytes", images: (0..<(30 * 5)).map { _ in UInt8(rng.nextInt(below: 256)) },
                            labels: [Int32](repeating: 0, count: 30), dimension: 5, classCount: 1)
        var rows = [Float](repeating: .nan, count: 4 * 5)
        rows.withUnsafeMutableBufferPointer { bytes.unitRows(11..<15, into: $0.baseAddress!) }
        XCTAssertEqual(rows.map(\.bitPattern), bytes.floats(.unit)[55..<75].map(\.bitPattern))
    }

    func testAgreementRanksPartitionsByQuality() throws {
        let (points, truth) = separatedBlobs(perBlob: 40, blobs: 4, dims: 6, seed: 3)
        let agreement = try NeighbourAgreement(points: points, count: 160, dims: 6, k: 10, seed: 0, communicator: SingleProcessCommunicator())
        let right = agreement.score(truth, clusters: 4)
        XCTAssertEqual(right, log(4), accuracy: 1e-3, "the blobs themselves: log K for K equal clusters no neighbourhood crosses")
        let merged = truth.map { $0 == 3 ? 2 : $0 }  // two blobs in one cluster, one cluster left empty
        XCTAssertEqual(agreement.score(merged, clusters: 4), -2 * 0.25 * log(0.25) - 0.5 * log(0.5), accuracy: 1e-3,
                       "a merge of two separate blobs loses what telling them apart was worth")
        var rng = Xoshiro256(seed: 9)
        let scrambled = truth.map { label -> Int32 in rng.nextUnit() < 0.3 ? Int32(rng.nextInt(below: 4)) : label }
        XCTAssertLessThan(agreement.score(scrambled, clusters: 4), right - 0.2)
        let random = truth.map { _ in Int32(rng.nextInt(below: 4)) }
        XCTAssertLessThan(agreement.score(random, clusters: 4), 0.05, "a random partition scores about 0")
        XCTAssertEqual(agreement.score([Int32](repeating: 1, count: 160), clusters: 4), 0, "one cluster scores 0")
    }

    func testGuardKeepsTheStartAgainstADestroyingFineTuningAndTheFineTunedResultWhenItRepairs() throws {
        let (points, truth) = separatedBlobs(perBlob: 50, blobs: 4, dims: 8, seed: 5)
        let judge = ResultGuard(agreement: try NeighbourAgreement(points: points, count: 200, dims: 8, seed: 0,
                                                                  communicator: SingleProcessCommunicator()))
        // Fine-tuning that merged two clusters and pulled samples across (what self-training does when it amplifies).
        var rng = Xoshiro256(seed: 1)
        let destroyed = truth.map { label -> Int32 in label == 1 ? 0 : (rng.nextUnit() < 0.15 ? Int32(rng.nextInt(below: 4)) : label) }
        let verdict = judge.decide(start: truth, finetuned: destroyed, clusters: 4, keep: .auto, method: "DEC")
        XCTAssertTrue(verdict.keepsStart, verdict.reason)
        XCTAssertGreaterThan(verdict.startAgreement, verdict.finetunedAgreement)
        // A start with mistakes that fine-tuning repaired.
        let flawed = truth.enumerated().map { i, label -> Int32 in i % 9 == 0 ? (label + 1) % 4 : label }
        let repaired = judge.decide(start: flawed, finetuned: truth, clusters: 4, keep: .auto, method: "DEC")
        XCTAssertFalse(repaired.keepsStart, repaired.reason)
        // The flags override the verdict, and say so; the values are reported either way.
        let forced = judge.decide(start: truth, finetuned: destroyed, clusters: 4, keep: .finetuned, method: "DEC")
        XCTAssertFalse(forced.keepsStart)
        XCTAssertEqual(forced.startAgreement, verdict.startAgreement)
        XCTAssertTrue(judge.decide(start: flawed, finetuned: truth, clusters: 4, keep: .start, method: "DEC").keepsStart)
    }

    /// --confidence: a sample whose target's largest probability is below the threshold adds no loss and no gradient;
    /// one above it adds exactly what the objective without a threshold adds.
    func testConfidenceLeavesUnconfidentSamplesOutOfTheClusteringTerm() {
        let e = 3, k = 2, rows = 2
        let z: [Float] = [0.1, -0.4, 0.3, 1.2, 0.5, -0.7]      // (2, 3)
        let centres: [Float] = [0, 0, 0, 1, 1, -1]            // (2, 3)
        let target: [Float] = [0.95, 0.05, 0.6, 0.4]          // sample 0 confident, sample 1 not (at 0.9)
        func term(_ confidence: Float) -> (loss: Double, dZ: [Float], dCentres: [Float]) {
            let objective = DECObjective(clusters: k, embedding: e, rows: rows, confidence: confidence)
            objective.setTarget(target)
            var dZ = [Float](repeating: 0, count: rows * e), dCentres = [Float](repeating: 0, count: k * e)
            let loss = objective.lossAndGradient(z: z, rows: rows, indices: [0, 1], centres: centres, scale: 1, dZ: &dZ, dCentres: &dCentres)
            return (loss, dZ, dCentres)
        }
        let all = term(0), confident = term(0.9)
        XCTAssertEqual(Array(confident.dZ[e...]), [0, 0, 0], "the unconfident sample has no gradient")
        for d in 0..<e { XCTAssertEqual(confident.dZ[d], all.dZ[d], accuracy: 1e-6, "the confident sample's gradient is unchanged") }
        let alone = DECObjective(clusters: k, embedding: e, rows: 1)
        alone.setTarget(target)
        var dZ = [Float](repeating: 0, count: e), dCentres = [Float](repeating: 0, count: k * e)
        let loss = alone.lossAndGradient(z: z, rows: 1, indices: [0], centres: centres, scale: 1, dZ: &dZ, dCentres: &dCentres)
        XCTAssertEqual(confident.loss, loss, accuracy: 1e-12, "the loss is the confident sample's alone")
        for d in 0..<(k * e) { XCTAssertEqual(confident.dCentres[d], dCentres[d], accuracy: 1e-6, "and so are the centres' gradients") }
        XCTAssertNotEqual(all.dZ[e...].map { $0 == 0 }, [true, true, true], "without a threshold both samples count")
    }

    func testNeighbourVoteGivesReferencePointsTheirOwnClusterAndNewPointsTheirNeighbours() {
        let (points, truth) = separatedBlobs(perBlob: 30, blobs: 3, dims: 4, seed: 6)
        // A reference labelling that disagrees with the blobs on a few points: those points keep their own label.
        var labels = truth
        labels[0] = 2
        labels[31] = 0
        let own = NeighbourVote.assign(points: points, count: 90, reference: points, labels: labels, dims: 4, clusters: 3)
        XCTAssertEqual(own.assignments, labels, "a reference point takes its own cluster")
        // New points near each blob's members take the blob's majority cluster.
        let moved = points.map { $0 + 0.01 }
        let new = NeighbourVote.assign(points: moved, count: 90, reference: points, labels: labels, dims: 4, clusters: 3)
        XCTAssertEqual(new.assignments, truth, "off the reference, the majority of the neighbours decides")
        for i in 0..<90 { XCTAssertEqual(new.q[(i * 3)..<(i * 3 + 3)].reduce(0, +), 1, accuracy: 1e-6) }
    }

    /// A uint8 .npy file's bytes (format 1.0).
    func npyBytes(_ values: [UInt8], shape: [Int]) -> Data {
        var header = "{'descr': '|u1', 'fortran_order': False, 'shape': (" + shape.map(String.init).joined(separator: ", ") + "), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)]
        bytes += Array(header.utf8) + values
        return Data(bytes)
    }

    func testSmallRangeBytesAreNamedAndStillDividedBy255() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("guard-scale-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("small.npy").path
        let values: [UInt8] = (0..<(6 * 16)).map { UInt8($0 % 17) }  // 0...16, like 8x8 digits
        try npyBytes(values, shape: [6, 4, 4]).write(to: URL(fileURLWithPath: path))
        let data = try DataSet.load(file: path)
        XCTAssertTrue(data.isImage)
        // Scaling by the largest value (16) clustered 8x8 digits 7 points worse than dividing by 255: 255 stays.
        XCTAssertEqual(data.floats(.unit)[3], 3 / 255, accuracy: 1e-7)
        XCTAssertNil(data.inputTransform)
        XCTAssertTrue(data.notes.contains { $0.contains("uint8 values up to 16") && $0.contains("divided by 255") }, "\(data.notes)")
        // A full-range array gets no such note.
        let full = directory.appendingPathComponent("full.npy").path
        try npyBytes(values.map { $0 == 16 ? 255 : $0 }, shape: [6, 16]).write(to: URL(fileURLWithPath: full))
        XCTAssertFalse(try DataSet.load(file: full).notes.contains { $0.contains("divided by 255") })
    }
}
