// Folders of PNG and JPEG images: decoding through libpng and libjpeg against known pixels, the folder's order and
// labels, resizing, the ranks' split of the reading, and every kind of bad file the reader must refuse or convert.
import Collective
@testable import Datasets
@testable import Report
@testable import Tensor
import XCTest

final class ImageFolderTests: XCTestCase {
    var root = ""

    override func setUpWithError() throws {
        root = NSTemporaryDirectory() + "dc-images-\(getpid())-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: root)
    }

    func write(_ relative: String, _ bytes: [UInt8]) throws {
        let path = root + "/" + relative
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        XCTAssert(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
    }

    /// A PNG of any bit depth and colour type from its scanlines (filter byte included), with optional PLTE and tRNS.
    func craftedPNG(width: Int, height: Int, depth: UInt8, colour: UInt8, scanlines: [UInt8], palette: [UInt8]? = nil,
                    transparency: [UInt8]? = nil) -> [UInt8] {
        func be32(_ v: Int) -> [UInt8] { [UInt8(v >> 24 & 255), UInt8(v >> 16 & 255), UInt8(v >> 8 & 255), UInt8(v & 255)] }
        func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
            let body = Array(type.utf8) + data
            return be32(data.count) + body + be32(Int(FileBytes.crc32(body)))
        }
        var png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        png += chunk("IHDR", be32(width) + be32(height) + [depth, colour, 0, 0, 0])
        if let palette { png += chunk("PLTE", palette) }
        if let transparency { png += chunk("tRNS", transparency) }
        return png + chunk("IDAT", FileBytes.zlibCompress(scanlines)) + chunk("IEND", [])
    }

    func expectError(_ text: String, line: UInt = #line) {
        XCTAssertThrowsError(try ImageFolder.load(directory: root, options: ImageFolderOptions()), line: line) { error in
            XCTAssert("\(error)".contains(text), "\(error) should say '\(text)'", line: line)
        }
    }

    func testNaturalOrder() {
        let sorted = ["img10.png", "img2.png", "b/1.png", "img1.png", "a/20.png", "a/3.png", "img02.png"].sorted(by: ImageFolder.naturalOrder)
        XCTAssertEqual(sorted, ["a/3.png", "a/20.png", "b/1.png", "img1.png", "img2.png", "img02.png", "img10.png"])
        XCTAssertFalse(ImageFolder.naturalOrder("x", "x"))
    }

    /// A flat folder of the embedded MNIST's images named by index reads back the same bytes in the same order; a
    /// folder per label gives the labels, in natural order within each.
    func testMNISTAsPNGReadsBackExactly() throws {
        let mnist = try DataSet.embeddedMNIST(limit: 300)
        for i in 0..<mnist.count {
            let picture = try XCTUnwrap(PNG.picture(mnist, i))
            let png = PNG.grayscale(width: 28, height: 28, pixels: picture.pixels)
            try write("flat/\(i).png", png)
            try write("classes/\(mnist.labels[i])/\(i).png", png)
        }
        let flat = try ImageFolder.load(directory: root + "/flat", options: ImageFolderOptions(threads: 3))
        XCTAssertEqual(flat.images, mnist.images)
        XCTAssertEqual(flat.imageShape, ImageShape(width: 28, height: 28, channels: 1))
        XCTAssertFalse(flat.hasLabels)
        XCTAssertEqual(flat.sampleNames.prefix(3), ["0.png", "1.png", "2.png"])

        let classes = try ImageFolder.load(directory: root + "/classes", options: ImageFolderOptions())
        XCTAssert(classes.hasLabels)
        XCTAssertEqual(classes.classNames, (0..<10).map(String.init))
        let order = (0..<mnist.count).sorted { (mnist.labels[$0], $0) < (mnist.labels[$1], $1) }
        XCTAssertEqual(classes.labels, order.map { mnist.labels[$0] })
        XCTAssertEqual(classes.sampleNames.first, "0/\(order[0]).png")
        for (row, i) in order.enumerated().prefix(50) {
            XCTAssertEqual(Array(classes.images[(row * 784)..<((row + 1) * 784)]), Array(mnist.images[(i * 784)..<((i + 1) * 784)]))
        }
    }

    /// Colour is kept as three planes; a folder whose colour files are all grey becomes one channel; --channels 1
    /// turns colour into luma.
    func testColourPlanesAndGreyDetection() throws {
        // 2x1 image: a red pixel and a blue one.
        try write("c/a.png", PNG.rgb(width: 2, height: 1, pixels: [255, 0, 0, 0, 0, 255]))
        try write("c/b.png", PNG.rgb(width: 2, height: 1, pixels: [10, 20, 30, 40, 50, 60]))
        let colour = try ImageFolder.load(directory: root + "/c", options: ImageFolderOptions())
        XCTAssertEqual(colour.imageShape, ImageShape(width: 2, height: 1, channels: 3))
        XCTAssertEqual(Array(colour.images[0..<6]), [255, 0, 0, 0, 0, 255], "planes: red, green, blue")
        let grey = try ImageFolder.load(directory: root + "/c", options: ImageFolderOptions(channels: 1))
        XCTAssertEqual(Array(grey.images[0..<2]), [76, 29], "0.299 R and 0.114 B, rounded")

        try write("g/a.png", PNG.rgb(width: 2, height: 1, pixels: [9, 9, 9, 200, 200, 200]))
        try write("g/b.png", PNG.rgb(width: 2, height: 1, pixels: [1, 1, 1, 2, 2, 2]))
        let greyContent = try ImageFolder.load(directory: root + "/g", options: ImageFolderOptions())
        XCTAssertEqual(greyContent.imageShape?.channels, 1)
        XCTAssertEqual(greyContent.images, [9, 200, 1, 2])
        XCTAssert(greyContent.notes.contains { $0.contains("every image is grey") })
    }

    /// 16-bit, palette, 2-bit and transparent PNGs are converted to 8-bit values, transparency onto white.
    func testPNGConversions() throws {
        // 16-bit grey: 0x0000, 0xFFFF, 0x8080 -> 0, 255, 128.
        try write("a.png", craftedPNG(width: 3, height: 1, depth: 16, colour: 0, scanlines: [0, 0, 0, 0xFF, 0xFF, 0x80, 0x80]))
        // Palette of two colours (grey ones), indices 1, 0, 1.
        try write("b.png", craftedPNG(width: 3, height: 1, depth: 8, colour: 3, scanlines: [0, 1, 0, 1],
                                      palette: [10, 10, 10, 90, 90, 90]))
        // Grey + alpha: opaque 50, fully transparent 0, alpha 128 on 0 -> 50, 255, 127.
        try write("c.png", craftedPNG(width: 3, height: 1, depth: 8, colour: 4, scanlines: [0, 50, 255, 0, 0, 0, 128]))
        // 2-bit grey: 0, 1, 3 -> 0, 85, 255 (bits 00 01 11 packed, padded).
        try write("d.png", craftedPNG(width: 3, height: 1, depth: 2, colour: 0, scanlines: [0, 0b0001_1100]))
        let data = try ImageFolder.load(directory: root, options: ImageFolderOptions())
        XCTAssertEqual(data.imageShape, ImageShape(width: 3, height: 1, channels: 1))
        XCTAssertEqual(data.images, [0, 255, 128, 90, 10, 90, 50, 255, 127, 0, 85, 255])
        XCTAssert(data.notes.contains { $0.contains("transparency") })
    }

    /// JPEG: grey and colour round trips within JPEG's loss; a truncated one is an error.
    func testJPEG() throws {
        let side = 16
        let grey = (0..<(side * side)).map { UInt8(($0 % side) * 16) }
        try write("g/a.jpg", try ImageFolder.jpeg(width: side, height: side, channels: 1, pixels: grey, quality: 100))
        try write("g/b.jpeg", try ImageFolder.jpeg(width: side, height: side, channels: 1, pixels: grey.reversed(), quality: 100))
        let read = try ImageFolder.load(directory: root + "/g", options: ImageFolderOptions())
        XCTAssertEqual(read.imageShape, ImageShape(width: side, height: side, channels: 1))
        let error = zip(read.images[0..<(side * side)], grey).map { abs(Int($0) - Int($1)) }.max()!
        XCTAssertLessThanOrEqual(error, 3, "quality 100 keeps a gradient within a few levels")

        let rgb = (0..<(side * side)).flatMap { p -> [UInt8] in [200, UInt8(p % 256), 40] }
        try write("c/a.jpg", try ImageFolder.jpeg(width: side, height: side, channels: 3, pixels: rgb, quality: 100))
        try write("c/b.jpg", try ImageFolder.jpeg(width: side, height: side, channels: 3, pixels: rgb, quality: 90))
        let colour = try ImageFolder.load(directory: root + "/c", options: ImageFolderOptions())
        XCTAssertEqual(colour.imageShape?.channels, 3)
        XCTAssertLessThanOrEqual(abs(Int(colour.images[0]) - 200), 6, "red plane first")
        XCTAssertLessThanOrEqual(abs(Int(colour.images[2 * side * side]) - 40), 6, "blue plane last")

        let whole = try ImageFolder.jpeg(width: side, height: side, channels: 1, pixels: grey, quality: 90)
        try write("t/a.jpg", whole)
        try write("t/b.jpg", Array(whole.prefix(whole.count / 2)))
        XCTAssertThrowsError(try ImageFolder.load(directory: root + "/t", options: ImageFolderOptions())) { error in
            XCTAssert("\(error)".contains("b.jpg") && "\(error)".contains("truncated"), "\(error)")
        }
    }

    /// Sizes: the most common one wins, others are resized (a constant stays constant, a 2x shrink averages pairs).
    func testResizing() throws {
        try write("a.png", PNG.grayscale(width: 4, height: 2, pixels: [0, 100, 200, 50, 0, 100, 200, 50]))
        try write("b.png", PNG.grayscale(width: 4, height: 2, pixels: [UInt8](repeating: 7, count: 8)))
        try write("c.png", PNG.grayscale(width: 8, height: 4, pixels: [UInt8](repeating: 9, count: 32)))
        let data = try ImageFolder.load(directory: root, options: ImageFolderOptions())
        XCTAssertEqual(data.imageShape, ImageShape(width: 4, height: 2, channels: 1))
        XCTAssertEqual(Array(data.images[16..<24]), [UInt8](repeating: 9, count: 8))
        XCTAssert(data.notes.contains { $0.contains("1 of 3 images are not 4x2") })
        let small = try ImageFolder.load(directory: root, options: ImageFolderOptions(width: 2, height: 1))
        XCTAssertEqual(Array(small.images[0..<2]), [50, 125], "each target pixel averages the two it covers")
        XCTAssertEqual(Array(small.images[2..<4]), [7, 7])
        // predict: a model of 2x2 grey inputs sets the size when --image-size is not given.
        let forModel = try ImageFolder.load(directory: root, options: ImageFolderOptions(expectedDimension: 4))
        XCTAssertEqual(forModel.imageShape, ImageShape(width: 2, height: 2, channels: 1))
        XCTAssertEqual(Array(forModel.images[8..<12]), [9, 9, 9, 9])
    }

    /// The same bytes, names and labels whether one rank reads everything or three ranks (and threads) split it.
    func testRanksAndThreadsReadTheSame() throws {
        for i in 0..<150 {
            let pixels = (0..<64).map { UInt8(truncatingIfNeeded: $0 * 7 + i * 13) }
            try write("\(["cat", "dog"][i % 2])/\(i).png", PNG.grayscale(width: 8, height: 8, pixels: pixels))
        }
        let one = try ImageFolder.load(directory: root, options: ImageFolderOptions(threads: 1))
        let directory = root
        let split = try InProcessWorld.run(ranks: 3) { c in
            try ImageFolder.load(directory: directory, options: ImageFolderOptions(threads: 2),
                                 share: ReadShare(rank: c.rank, size: c.size, gather: { try c.allgatherBytes($0) }))
        }
        for data in split {
            XCTAssertEqual(data.images, one.images)
            XCTAssertEqual(data.labels, one.labels)
            XCTAssertEqual(data.sampleNames, one.sampleNames)
            XCTAssertEqual(data.classNames, ["cat", "dog"])
        }
        // A bad file in one rank's share stops every rank with its name.
        try write("dog/75.png", [1, 2, 3])
        let failures = try InProcessWorld.run(ranks: 3) { c -> String in
            do {
                _ = try ImageFolder.load(directory: directory, options: ImageFolderOptions(),
                                         share: ReadShare(rank: c.rank, size: c.size, gather: { try c.allgatherBytes($0) }))
                return "no error"
            } catch { return "\(error)" }
        }
        for failure in failures { XCTAssert(failure.contains("dog/75.png") && failure.contains("not a PNG or JPEG"), failure) }
    }

    /// The gallery shows a folder's own colour images (RGB PNGs, not inverted) with each file's path on hover.
    func testGalleryShowsTheFilesInColour() throws {
        for i in 0..<6 {
            let pixels = (0..<16).flatMap { _ -> [UInt8] in [UInt8(40 * i), 200, 10] }
            try write("\(i % 2 == 0 ? "green" : "teal")/img \(i) & co.png", PNG.rgb(width: 4, height: 4, pixels: pixels))
        }
        let data = try ImageFolder.load(directory: root, options: ImageFolderOptions())
        let assignments = data.labels
        let svg = try XCTUnwrap(Figures.galleryFigure(data: data, embedding: data.labels.map { Float($0) }, centres: [0, 1],
                                                      assignments: assignments, clusters: 2, perCluster: 3))
        XCTAssert(svg.contains("<title>green/img 0 &amp; co.png</title>"), "the file's path, escaped, on hover")
        XCTAssert(svg.contains("→ green") && svg.contains("→ teal"), "clusters named by the matched folder")
        let first = try XCTUnwrap(svg.range(of: "data:image/png;base64,"))
        let encoded = svg[first.upperBound...].prefix { $0 != "\"" }
        let png = try XCTUnwrap(Data(base64Encoded: String(encoded)))
        XCTAssertEqual(png[png.startIndex + 25], 2, "colour type 2: RGB")
        let picture = try XCTUnwrap(PNG.picture(data, 0))
        XCTAssertEqual(Array(picture.pixels.prefix(3)), [0, 200, 10], "planes interleaved back, not inverted")
    }

    func testBadFoldersAndFiles() throws {
        expectError("no .png, .jpg or .jpeg files")
        try write("notes.txt", Array("hello".utf8))
        expectError("no .png, .jpg or .jpeg files")
        try write("one/a.png", PNG.grayscale(width: 2, height: 2, pixels: [1, 2, 3, 4]))
        expectError("one image")
        try write("one/b.png", PNG.grayscale(width: 2, height: 2, pixels: [1, 2, 3, 4]))
        let oneClass = try ImageFolder.load(directory: root, options: ImageFolderOptions())
        XCTAssertFalse(oneClass.hasLabels, "one class folder: no labels")
        XCTAssert(oneClass.notes.contains { $0.contains("one class") })
        XCTAssert(oneClass.notes.contains { $0.contains("1 file(s) that are not") })

        // A link back to the root is passed over, not followed for ever.
        try FileManager.default.createSymbolicLink(atPath: root + "/one/loop", withDestinationPath: root)
        let looped = try ImageFolder.load(directory: root, options: ImageFolderOptions())
        XCTAssertEqual(looped.count, 2)
        XCTAssert(looped.notes.contains { $0.contains("link(s) back to a folder") })

        // A header that declares 60,000 x 60,000 pixels is refused before decoding.
        try write("one/c.png", craftedPNG(width: 60_000, height: 60_000, depth: 8, colour: 0, scanlines: [0, 0]))
        expectError("refused before decoding")
        try FileManager.default.removeItem(atPath: root + "/one/c.png")

        try write("one/d.png", Array(PNG.grayscale(width: 2, height: 2, pixels: [1, 2, 3, 4]).prefix(40)))
        expectError("truncated")
        try write("one/d.png", Array("not an image".utf8))
        expectError("not a PNG or JPEG")
        try write("one/d.png", [])
        expectError("empty file")
    }
}
