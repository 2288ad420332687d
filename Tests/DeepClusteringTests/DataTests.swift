// IDX parsing and its errors, gzip, normalisation, the sampler's shares.
@testable import DeepClustering
import Collective
import TestSupport
import XCTest

final class DataTests: XCTestCase {
    func idx(_ dims: [Int], _ payload: Int, magic: [UInt8]? = nil) -> [UInt8] {
        var out = magic ?? [0, 0, 8, UInt8(dims.count)]
        for d in dims { out += [UInt8(d >> 24 & 255), UInt8(d >> 16 & 255), UInt8(d >> 8 & 255), UInt8(d & 255)] }
        return out + [UInt8](repeating: 7, count: payload)
    }

    func expectError(_ bytes: [UInt8], rank: Int, containing text: String, line: UInt = #line) {
        XCTAssertThrowsError(try IDXArray.parse(bytes, path: "f.idx", expectedRank: rank), line: line) { error in
            XCTAssert("\(error)".contains(text), "\(error) should mention '\(text)'", line: line)
            XCTAssert("\(error)".hasPrefix("f.idx"), "the error names the file", line: line)
        }
    }

    func testValidAndEveryDefect() throws {
        let good = try IDXArray.parse(idx([2, 3, 4], 24), path: "f", expectedRank: 3)
        XCTAssertEqual(good.dimensions, [2, 3, 4])
        XCTAssertEqual(good.itemSize, 12)
        expectError(idx([2, 3, 4], 24, magic: [8, 3, 0, 0]), rank: 3, containing: "bad magic")
        expectError(idx([2, 3, 4], 24, magic: [0, 0, 0x0D, 3]), rank: 3, containing: "element type")
        expectError(idx([2, 12], 24), rank: 3, containing: "2 dimensions, expected 3")
        expectError(idx([2, 3, 4], 23), rank: 3, containing: "truncated payload")
        expectError(idx([2, 3, 4], 25), rank: 3, containing: "trailing bytes")
        expectError(idx([0x7FFF_FFFF, 0x7FFF_FFFF, 0x7FFF_FFFF], 0), rank: 3, containing: "overflow")
        expectError(idx([10000, 0, 28], 0), rank: 3, containing: "dimension 1 of the header is 0 (10000 x 0 x 28)")
        expectError(idx([0, 28, 28], 0), rank: 3, containing: "dimension 0 of the header is 0")
        expectError(idx([0], 0), rank: 1, containing: "is 0")
        expectError(idx([1, 65535, 65535], 0), rank: 3, containing: "implausible")
        expectError([0, 0], rank: 1, containing: "too short")
        expectError([0, 0, 8, 3, 0, 0], rank: 3, containing: "header truncated")
    }

    func testGzipRoundTripAndCorruption() throws {
        let dir = NSTemporaryDirectory() + "dc-gzip-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let raw = idx([3, 2, 2], 12)
        FileManager.default.createFile(atPath: dir + "/a", contents: Data(raw))
        let gzip = Process()
        gzip.executableURL = URL(fileURLWithPath: "/bin/gzip")
        gzip.arguments = ["-kf", dir + "/a"]
        try gzip.run(); gzip.waitUntilExit()
        XCTAssertEqual(try FileBytes.read(dir + "/a.gz"), raw)
        var compressed = [UInt8](FileManager.default.contents(atPath: dir + "/a.gz")!)
        FileManager.default.createFile(atPath: dir + "/t.gz", contents: Data(compressed.prefix(compressed.count - 12)))
        XCTAssertThrowsError(try FileBytes.read(dir + "/t.gz")) { XCTAssert("\($0)".contains("truncated"), "\($0)") }
        compressed[12] ^= 0xFF; compressed[14] ^= 0xFF
        FileManager.default.createFile(atPath: dir + "/c.gz", contents: Data(compressed))
        XCTAssertThrowsError(try FileBytes.read(dir + "/c.gz")) { XCTAssert("\($0)".contains("gzip"), "\($0)") }
        XCTAssertThrowsError(try FileBytes.read(dir + "/missing")) { XCTAssert("\($0)".contains("not found")) }
    }

    /// A header that declares 3 items, then 64 MB of zeros in a small gzip file: the reader stops after the declared
    /// payload plus its bound on trailing bytes, never inflating the rest; with --limit it reads only what it keeps.
    func testIDXReadsNoMoreThanItsHeaderDeclares() throws {
        let dir = NSTemporaryDirectory() + "dc-bomb-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: dir + "/b", contents: Data(idx([3, 2, 2], 12) + [UInt8](repeating: 0, count: 64 << 20)))
        let gzip = Process()
        gzip.executableURL = URL(fileURLWithPath: "/bin/gzip")
        gzip.arguments = ["-kf", dir + "/b"]
        try gzip.run(); gzip.waitUntilExit()
        XCTAssertLessThan(try FileManager.default.attributesOfItem(atPath: dir + "/b.gz")[.size] as! Int, 1 << 20)
        XCTAssertThrowsError(try IDXArray.read(dir + "/b.gz", expectedRank: 3)) {
            XCTAssert("\($0)".contains("more than 1048576 trailing bytes"), "\($0)")
        }
        let two = try IDXArray.read(dir + "/b.gz", expectedRank: 3, limit: 2)
        XCTAssertEqual(two.dimensions, [2, 2, 2])
        XCTAssertEqual(two.bytes, [UInt8](repeating: 7, count: 8))
        let reader = try ByteReader(path: dir + "/b.gz")
        XCTAssertEqual(try reader.read(4), [0, 0, 8, 3])
        XCTAssertEqual(try reader.read(12).count, 12)
        try? FileManager.default.removeItem(atPath: dir)
    }

    func testEmbeddedMNISTAndNormalisations() throws {
        let data = try DataSet.embeddedMNIST(limit: 500)
        XCTAssertEqual(data.count, 500)
        XCTAssertEqual(data.dimension, 784)
        XCTAssertEqual(Array(data.labels.prefix(5)), [7, 2, 1, 0, 4])  // the t10k set's first labels
        let unit = data.floats(.unit)
        XCTAssert(unit.allSatisfy { (0...1).contains($0) })
        let z = data.floats(.zscore)
        // Feature 350 (near the centre) varies: mean 0, std 1 after z-scoring.
        let column = (0..<data.count).map { Double(z[$0 * 784 + 350]) }
        let mean = column.reduce(0, +) / Double(column.count)
        let variance = column.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(column.count)
        assertClose(mean, 0, absolute: 1e-5)
        assertClose(variance, 1, relative: 1e-4)
        XCTAssert((0..<data.count).allSatisfy { z[$0 * 784] == 0 }, "a constant feature z-scores to 0")
    }

    func testSamplerSharesCoverTheBatchAndAgreeAcrossRanks() {
        for ranks in 1...5 {
            var seen = [Int32]()
            for rank in 0..<ranks {
                var s = Sampler(count: 103, globalBatch: 20, seed: 9, rank: rank, ranks: ranks)
                s.shuffle(epoch: 2)
                for b in 0..<s.batchesPerEpoch {
                    let (global, local) = s.batch(b)
                    XCTAssert(global.contains(local.lowerBound) || local.isEmpty)
                    XCTAssert(local.count >= global.count / ranks && local.count <= global.count / ranks + 1)
                    seen += s.permutation[local]
                }
            }
            XCTAssertEqual(seen.sorted(), (0..<103).map { Int32($0) }, "\(ranks) ranks cover every sample once")
        }
        var a = Sampler(count: 50, globalBatch: 10, seed: 1, rank: 0, ranks: 1)
        var b = a
        a.shuffle(epoch: 0); b.shuffle(epoch: 1)
        XCTAssertNotEqual(a.permutation, b.permutation, "epochs draw different permutations")
    }
}
