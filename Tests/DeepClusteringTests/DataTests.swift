// IDX parsing and its errors, gzip, normalisation, the sampler's shares.
@testable import Clustering
@testable import Datasets
@testable import NN
@testable import Report
@testable import Tensor
@testable import Training
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

    /// The input baseline's sample of a large set: evenly spaced rows with their labels, the whole set when it asks
    /// for as many or more.
    func testEvenlySpacedSample() throws {
        let data = try DataSet.embeddedMNIST(limit: 100)
        let spaced = data.evenlySpaced(4)
        XCTAssertEqual(spaced.count, 4)
        XCTAssertEqual(spaced.labels, [0, 25, 50, 75].map { data.labels[$0] })
        XCTAssertEqual(Array(spaced.images), [0, 25, 50, 75].flatMap { data.images[($0 * 784)..<(($0 + 1) * 784)] })
        XCTAssertEqual(data.evenlySpaced(100).images, data.images)
        XCTAssertEqual(data.evenlySpaced(500).count, 100)
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

// MARK: - Augmentation

final class AugmentationTests: XCTestCase {
    let side = 28
    func image(seed: UInt64) -> [Float] { seededValues(28 * 28, seed: seed).map { Float(abs($0)) } }

    func transformed(_ source: [Float], dx: Double, dy: Double, angle: Double) -> [Float] {
        var out = [Float](repeating: -1, count: source.count)
        source.withUnsafeBufferPointer { s in
            out.withUnsafeMutableBufferPointer { Augmentation.transform(s.baseAddress!, into: $0.baseAddress!, side: side, dx: dx, dy: dy, angle: angle) }
        }
        return out
    }

    func testZeroTransformIsTheIdentity() {
        let x = image(seed: 1)
        XCTAssertEqual(transformed(x, dx: 0, dy: 0, angle: 0).map(\.bitPattern), x.map(\.bitPattern))
    }

    func testWholePixelShiftMovesPixelsExactly() {
        let x = image(seed: 2)
        for (dx, dy) in [(3, -2), (-5, 0), (0, 7), (27, 27), (28, 0)] {
            let y = transformed(x, dx: Double(dx), dy: Double(dy), angle: 0)
            for row in 0..<side {
                for column in 0..<side {
                    let sx = column - dx, sy = row - dy
                    let expected: Float = sx >= 0 && sx < side && sy >= 0 && sy < side ? x[sy * side + sx] : 0
                    XCTAssertEqual(y[row * side + column].bitPattern, expected.bitPattern, "shift (\(dx), \(dy)) at (\(column), \(row))")
                }
            }
        }
    }

    func testHalfTurnMirrorsThroughTheCentre() {
        let x = image(seed: 3)
        let y = transformed(x, dx: 0, dy: 0, angle: Double.pi)
        for row in 0..<side {
            for column in 0..<side {
                XCTAssertEqual(y[row * side + column], x[(side - 1 - row) * side + (side - 1 - column)], accuracy: 1e-5)
            }
        }
    }

    func testParametersAreDeterministicAndInRange() throws {
        let a = try Augmentation(parsing: "shift=0.1,rotate=10")
        XCTAssertEqual(a, Augmentation(shift: 0.1, rotate: 10))
        XCTAssertEqual(try Augmentation(parsing: "none"), .none)
        for bad in ["shift=0.9", "rotate=-1", "shift", "zoom=2", "shift=nan"] {
            XCTAssertThrowsError(try Augmentation(parsing: bad), bad)
        }
        var seen = Set<Double>()
        for index in 0..<200 {
            let p = a.parameters(seed: 4, epoch: 1, index: index, side: side)
            let q = a.parameters(seed: 4, epoch: 1, index: index, side: side)
            XCTAssertEqual(p.dx, q.dx); XCTAssertEqual(p.dy, q.dy); XCTAssertEqual(p.angle, q.angle)
            XCTAssert(abs(p.dx) <= 2.8 && abs(p.dy) <= 2.8 && abs(p.angle) <= 10 * Double.pi / 180)
            seen.insert(p.dx)
            XCTAssertNotEqual(p.dx, a.parameters(seed: 4, epoch: 2, index: index, side: side).dx, "another epoch, another draw")
        }
        XCTAssertEqual(seen.count, 200)
    }

    /// The images of a batch do not depend on how the batch is split: 3 ranks' shares augmented apart equal the whole.
    /// The batch's pixels come from CKernels on the rank's threads: the same bits as the Swift transform, row by row
    /// and plane by plane (colour), for any thread count.
    func testThreadedKernelIsTheSwiftTransform() throws {
        let a = Augmentation(shift: 0.2, rotate: 30)
        let saved = BLAS.threads
        defer { BLAS.threads = saved }
        for planes in [1, 3] {
            let dims = planes * side * side, rows = 37
            let gatherer = BatchGatherer(dims: dims, maxRows: rows, transform: FeatureTransform(shift: [], scale: []))
            let values = seededValues(rows * dims, seed: UInt64(planes)).map { Float(abs($0)) }
            gatherer.clean.update(from: values, count: values.count)
            let indices: [Int32] = (0..<rows).map { Int32($0 * 3) }
            for threads in [1, 2, 3] {
                BLAS.threads = threads
                gatherer.augment(a, seed: 4, epoch: 2, indices: indices[...])
                for r in 0..<rows {
                    let t = a.parameters(seed: 4, epoch: 2, index: Int(indices[r]), side: side)
                    for p in 0..<planes {
                        let plane = Array(values[(r * dims + p * side * side)..<(r * dims + (p + 1) * side * side)])
                        let expected = transformed(plane, dx: t.dx, dy: t.dy, angle: t.angle)
                        let got = (0..<(side * side)).map { gatherer.augmented[r * dims + p * side * side + $0] }
                        XCTAssertEqual(got.map(\.bitPattern), expected.map(\.bitPattern), "row \(r) plane \(p), \(threads) thread(s)")
                    }
                }
            }
        }
    }

    func testSameImagesWhateverTheShares() throws {
        let data = try DataSet.embeddedMNIST(limit: 30)
        let a = Augmentation(shift: 0.1, rotate: 10)
        let indices: [Int32] = (0..<30).map { Int32(($0 * 7) % 30) }
        let whole = BatchGatherer(dims: data.dimension, maxRows: 30, transform: FeatureTransform(data: data, normalization: .unit))
        whole.gather(data, indices: indices[...])
        whole.augment(a, seed: 9, epoch: 3, indices: indices[...])
        let part = BatchGatherer(dims: data.dimension, maxRows: 10, transform: FeatureTransform(data: data, normalization: .unit))
        for rank in 0..<3 {
            let share = indices[(rank * 10)..<(rank * 10 + 10)]
            part.gather(data, indices: share)
            part.augment(a, seed: 9, epoch: 3, indices: share)
            for i in 0..<(10 * data.dimension) {
                XCTAssertEqual(part.augmented[i].bitPattern, whole.augmented[rank * 10 * data.dimension + i].bitPattern)
            }
        }
    }
}
