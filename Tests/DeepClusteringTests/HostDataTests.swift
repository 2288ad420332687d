// The data set loaded once per host (HostData): one reader, the samples in shared memory, the rest by broadcast,
// and a reader's failure as every rank's error. Three ranks as threads of one process (one host).
import Collective
@testable import Datasets
import Foundation
@testable import Tensor
@testable import Training
import XCTest

/// How many ranks ran a loader.
private final class Calls: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func add() { lock.withLock { count += 1 } }
    var total: Int { lock.withLock { count } }
}

final class HostDataTests: XCTestCase {
    /// 5 grey 2x3 images with named classes and samples, as an image folder gives them.
    static func images() -> DataSet {
        var data = DataSet(name: "folder", images: (0..<30).map { UInt8($0 * 7 % 256) }, labels: [0, 1, 2, 1, 0], dimension: 6,
                           classCount: 3)
        data.classNames = ["cat", "dog", "eel"]
        data.sampleNames = (0..<5).map { "c/\($0).png" }
        data.imageShape = ImageShape(width: 2, height: 3, channels: 1)
        data.notes = ["read 5 images"]
        return data
    }

    /// 4 rows of 3 standardised features without labels, as a CSV gives them.
    static func features() -> DataSet {
        var data = DataSet(name: "table.csv", features: (0..<12).map { Float($0) * 0.25 - 1 }, labels: [0, 0, 0, 0], dimension: 3,
                           classCount: 1, transform: FeatureTransform(shift: [0.1, 2.0 / 3, 3e-7], scale: [0.3, 1.0 / 7, 2e5]))
        data.hasLabels = false
        data.isImage = false
        return data
    }

    func assertSame(_ a: DataSet, _ b: DataSet, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(Array(a.images), Array(b.images), file: file, line: line)
        XCTAssertEqual(Array(a.features), Array(b.features), file: file, line: line)
        XCTAssertEqual(a.labels, b.labels, file: file, line: line)
        XCTAssertEqual([a.count, a.dimension, a.classCount], [b.count, b.dimension, b.classCount], file: file, line: line)
        XCTAssertEqual([a.hasLabels, a.isImage, a.isFloat], [b.hasLabels, b.isImage, b.isFloat], file: file, line: line)
        XCTAssertEqual(a.classNames, b.classNames, file: file, line: line)
        XCTAssertEqual(a.sampleNames, b.sampleNames, file: file, line: line)
        XCTAssertEqual(a.imageShape, b.imageShape, file: file, line: line)
        XCTAssertEqual(a.inputTransform?.shift, b.inputTransform?.shift, file: file, line: line)
        XCTAssertEqual(a.inputTransform?.scale, b.inputTransform?.scale, file: file, line: line)
        XCTAssertEqual(a.name, b.name, file: file, line: line)
    }

    func testOneRankOfTheHostReadsAndEveryRankHoldsTheSameSamples() throws {
        for make in [HostDataTests.images, HostDataTests.features] {
            let calls = Calls()
            let loaded = try InProcessWorld.run(ranks: 3) { c in try HostData.load(c) { calls.add(); return make() } }
            XCTAssertEqual(calls.total, 1, "one reader on the host")
            let reference = make()
            for (rank, data) in loaded.enumerated() {
                assertSame(data, reference)
                XCTAssert(data.isFloat ? data.features.isShared : data.images.isShared, "rank \(rank): the samples are shared")
                XCTAssertEqual(Array(data.notes.prefix(reference.notes.count)), reference.notes)
                XCTAssertEqual(data.notes.count, reference.notes.count + (rank == 0 ? 1 : 0), "rank 0 notes the sharing")
            }
            XCTAssertEqual(loaded[0].notes.last?.contains("held once on this host, in memory its 3 ranks share"), true)
            // One copy: every rank reads the same memory.
            let addresses = loaded.map { data in
                data.isFloat ? data.features.withUnsafeBufferPointer { Int(bitPattern: $0.baseAddress) }
                    : data.images.withUnsafeBufferPointer { Int(bitPattern: $0.baseAddress) }
            }
            XCTAssertEqual(Set(addresses).count, 1)
            // What a run does with them: a batch gathered from shared samples is the one gathered from an array.
            let gatherer = BatchGatherer(dims: reference.dimension, maxRows: 3,
                                         transform: reference.inputTransform ?? FeatureTransform(shift: [Float](repeating: 0, count: reference.dimension),
                                                                                                 scale: [Float](repeating: 1 / 255, count: reference.dimension)))
            func batch(_ data: DataSet) -> [Float] {
                gatherer.gather(data, indices: [3, 0, 2])
                return Array(UnsafeBufferPointer(start: gatherer.clean, count: 3 * reference.dimension))
            }
            XCTAssertEqual(batch(loaded[2]), batch(reference))
            // What the neighbour search reads (`raw --method n2d`): Float samples where they lie, bytes in [0, 1].
            for data in loaded {
                let (address, values) = data.withFloats(.unit) { (Int(bitPattern: $0.baseAddress), Array($0)) }
                XCTAssertEqual(values, reference.floats(.unit))
                if data.isFloat { XCTAssertEqual(address, addresses[0], "no copy of Float samples") }
            }
        }
    }

    func testEveryRankReadsWhenTheLoaderSplitsTheWorkOrSharedMemoryIsOff() throws {
        let calls = Calls()
        let split = try InProcessWorld.run(ranks: 3) { c in try HostData.load(c, everyRankLoads: true) { calls.add(); return HostDataTests.images() } }
        XCTAssertEqual(calls.total, 3)
        for data in split { assertSame(data, HostDataTests.images()); XCTAssert(data.images.isShared) }

        let own = Calls()
        let apart = try InProcessWorld.run(ranks: 3) { c in
            c.allowsSharedMemory = false
            return try HostData.load(c) { own.add(); return HostDataTests.images() }
        }
        XCTAssertEqual(own.total, 3, "off shared memory each rank reads its own copy")
        for data in apart { assertSame(data, HostDataTests.images()); XCTAssertFalse(data.images.isShared) }

        // No room in shared memory: the reader keeps its copy and says so, the others read their own.
        for make in [HostDataTests.images, HostDataTests.features] {
            let cramped = Calls()
            let copies = try InProcessWorld.run(ranks: 3) { c in
                c.sharedRoom = 20
                return try HostData.load(c) { cramped.add(); return make() }
            }
            XCTAssertEqual(cramped.total, 3)
            for data in copies { assertSame(data, make()); XCTAssertFalse(data.images.isShared || data.features.isShared) }
            XCTAssertEqual(copies[0].notes.last?.contains("do not fit this host's shared-memory file system: each of its 3 ranks holds a copy"), true)
        }
    }

    /// No samples at all: every rank gets the empty set with its transform.
    func testAnEmptyDataSet() throws {
        let empty: DataSet = {
            var data = HostDataTests.features().prefix(0)
            data.features = []
            return data
        }()
        let loaded = try InProcessWorld.run(ranks: 2) { c in try HostData.load(c) { empty } }
        for data in loaded { assertSame(data, empty); XCTAssertEqual(data.count, 0) }
    }

    func testAReadersFailureIsEveryRanksError() throws {
        // The host's reader fails: the others never read, and throw its message.
        let reader = try InProcessWorld.run(ranks: 3) { c in
            Result { try HostData.load(c) { throw DataError("missing.npy", "file not found") } }
        }
        // One of several readers fails (a loader that splits the work): every rank reports that one.
        let one = try InProcessWorld.run(ranks: 3) { c in
            Result {
                try HostData.load(c, everyRankLoads: true) {
                    if c.rank == 1 { throw DataError("b/7.png", "not a PNG") }
                    return HostDataTests.images()
                }
            }
        }
        for (results, message) in [(reader, "missing.npy: file not found"), (one, "b/7.png: not a PNG")] {
            for result in results {
                XCTAssertThrowsError(try result.get()) { error in
                    XCTAssertEqual((error as? RunError)?.message, message)
                    XCTAssertEqual((error as? RunError)?.everyRank, true, "reported once, by rank 0")
                }
            }
        }
        // A single process keeps the loader's own error.
        XCTAssertThrowsError(try HostData.load(SingleProcessCommunicator()) { throw DataError("x", "y") }) { error in
            XCTAssert(error is DataError)
        }
    }
}
