// t-SNE, the PNG writer and the run report.
@testable import Clustering
@testable import Datasets
@testable import NN
@testable import Report
@testable import Tensor
@testable import Training
import Collective
import Foundation
import XCTest

final class ReportTests: XCTestCase {
    /// Three well-separated Gaussian clusters in 50-D, 60 points each.
    func blobs(seed: UInt64) -> (points: [Float], labels: [Int32]) {
        var rng = Xoshiro256(seed: seed)
        var points: [Float] = [], labels: [Int32] = []
        for c in 0..<3 {
            let centre = (0..<50).map { _ in Float(rng.nextNormal() * 10) }
            for _ in 0..<60 {
                points += centre.map { $0 + Float(rng.nextNormal()) }
                labels.append(Int32(c))
            }
        }
        return (points, labels)
    }

    /// Axis ticks: nice steps over a range, and a handful (not an endless loop) for a flat series of huge values,
    /// a diverged run's loss (fuzz: --pretrain-lr 16 gave one pretraining loss of 1.1e17).
    func testTicksCoverARangeAndStayFewForAFlatHugeSeries() {
        let unit = SVG.ticks(0, 1)
        XCTAssertEqual(unit.count, 6)
        for (i, t) in unit.enumerated() { XCTAssertEqual(t, Double(i) * 0.2, accuracy: 1e-12) }
        let flat = SVG.ticks(1.0863919245589434e17, 1.0863919245589434e17)
        XCTAssertFalse(flat.isEmpty)
        XCTAssertLessThanOrEqual(flat.count, 21)
        XCTAssertEqual(SVG.ticks(.nan, 1), [])
        XCTAssertLessThanOrEqual(SVG.ticks(-1e308, 1e308).count, 21)
        XCTAssertLessThanOrEqual(SVG.ticks(0.5, 0.5).count, 21)
    }

    func testTSNEKeepsSeparatedClustersSeparated() {
        let (points, labels) = blobs(seed: 1)
        var options = TSNEOptions()
        options.iterations = 400
        options.exaggerationIterations = 100
        let map = TSNE.embed(points, count: labels.count, dims: 50, options: options)
        XCTAssertTrue(map.allSatisfy { $0.isFinite })
        let agreement = TSNE.neighbourAgreement(map, labels: labels)
        XCTAssertGreaterThan(agreement, 0.95, "nearest-neighbour label agreement in 2-D")
        // A shuffled labelling agrees about a third of the time: the measure can fail.
        var shuffled = labels
        var rng = Xoshiro256(seed: 9)
        shuffled.shuffle(using: &rng)
        XCTAssertLessThan(TSNE.neighbourAgreement(map, labels: shuffled), 0.6)
    }

    func testTSNEIsDeterministicForASeedAndAnyThreadCount() {
        let (points, labels) = blobs(seed: 2)
        var options = TSNEOptions()
        options.iterations = 60
        options.exaggerationIterations = 30
        options.threads = 1
        let one = TSNE.embed(points, count: labels.count, dims: 50, options: options)
        options.threads = 2
        XCTAssertEqual(one, TSNE.embed(points, count: labels.count, dims: 50, options: options))
        options.seed = 5
        XCTAssertNotEqual(one, TSNE.embed(points, count: labels.count, dims: 50, options: options))
    }

    func testPerplexityCalibrationReachesTheTargetEntropy() {
        let (points, _) = blobs(seed: 3)
        let n = 180
        for perplexity in [5.0, 20.0] {
            // Each conditional row's entropy is log(perplexity): the binary search stops within 1e-5 nats; storing the
            // row in float32 moves it by about n u log(n) more, far below the 1e-3 asked here.
            let conditional = TSNE.conditionalAffinities(points, count: n, dims: 50, perplexity: perplexity, threads: 2)
            var worst = 0.0
            for i in 0..<n {
                let row = (0..<n).map { Double(conditional[i * n + $0]) }
                XCTAssertEqual(row[i], 0)
                XCTAssertEqual(row.reduce(0, +), 1, accuracy: 1e-5)
                let entropy = -row.reduce(0.0) { $0 + ($1 > 0 ? $1 * log($1) : 0) }
                worst = max(worst, abs(entropy - log(perplexity)))
            }
            XCTAssertLessThan(worst, 1e-3, "perplexity \(perplexity): worst |entropy - log(perplexity)| \(worst)")
        }
        // The symmetric P: (p_j|i + p_i|j) / 2n, summing to 1, zero diagonal.
        let conditional = TSNE.conditionalAffinities(points, count: n, dims: 50, perplexity: 20, threads: 1)
        let p = TSNE.affinities(points, count: n, dims: 50, perplexity: 20, threads: 2)
        XCTAssertEqual(Double(p.reduce(0, +)), 1, accuracy: 1e-3)
        for i in stride(from: 0, to: n, by: 17) {
            XCTAssertEqual(p[i * n + i], 0)
            for j in stride(from: 1, to: n, by: 13) where j != i {
                let expected = max((conditional[i * n + j] + conditional[j * n + i]) / Float(2 * n), 1e-12)
                XCTAssertEqual(p[i * n + j], expected, accuracy: expected * 1e-6)
            }
        }
    }

    func testPNGHeaderAndPayload() throws {
        let pixels: [UInt8] = [0, 128, 255, 1, 2, 3]
        let png = PNG.grayscale(width: 3, height: 2, pixels: pixels)
        XCTAssertEqual(Array(png.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        // Walk the chunks: length, type, data, CRC-32 of type + data.
        var chunks: [(type: String, data: [UInt8])] = []
        var at = 8
        while at + 12 <= png.count {
            let length = png[at..<(at + 4)].reduce(0) { $0 << 8 | Int($1) }
            let body = Array(png[(at + 4)..<(at + 8 + length)])
            let crc = png[(at + 8 + length)..<(at + 12 + length)].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            XCTAssertEqual(crc, FileBytes.crc32(body), "CRC of chunk \(chunks.count)")
            chunks.append((String(decoding: body.prefix(4), as: UTF8.self), Array(body.dropFirst(4))))
            at += 12 + length
        }
        XCTAssertEqual(at, png.count)
        XCTAssertEqual(chunks.map(\.type), ["IHDR", "IDAT", "IEND"])
        XCTAssertEqual(chunks[0].data, [0, 0, 0, 3, 0, 0, 0, 2, 8, 0, 0, 0, 0])  // 3 x 2, 8-bit grayscale
        // The payload: a zlib stream of the rows, each led by filter byte 0. Rewrapped as gzip (the deflate data between
        // zlib's 2-byte header and 4-byte Adler-32, with gzip's header and CRC-32 + size trailer) it inflates with the
        // reader's own gunzip, which checks the CRC.
        let expected: [UInt8] = [0, 0, 128, 255, 0, 1, 2, 3]
        let zlib = chunks[1].data
        XCTAssertEqual(zlib[0] & 0x0F, 8, "deflate")
        let deflate = Array(zlib[2..<(zlib.count - 4)])
        func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8((v >> (8 * $0)) & 255) } }
        let gzip = [0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 0xFF] + deflate + le32(FileBytes.crc32(expected)) + le32(UInt32(expected.count))
        XCTAssertEqual(try FileBytes.gunzip(gzip, path: "payload"), expected)
        let adler = zlib.suffix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        var a: UInt32 = 1, b: UInt32 = 0
        for byte in expected { a = (a + UInt32(byte)) % 65521; b = (b + a) % 65521 }
        XCTAssertEqual(adler, b << 16 | a, "Adler-32 of the rows")
    }

    func testReportOfARunDirectoryIsWellFormedAndSelfContained() throws {
        let dir = NSTemporaryDirectory() + "dc-report-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        let context = try RunContext(communicator: SingleProcessCommunicator(), directory: dir, quiet: true,
                                     mode: .fresh(RunManifest(command: "dec", arguments: ["--epochs", "2"])))
        func record(_ phase: String, epoch: Double? = nil, loss: Double? = nil, scores: Double? = nil, seconds: Double? = nil,
                    samples: Double? = nil, ranks: Int? = nil) -> RunRecord {
            var r = RunRecord(phase: phase)
            r.epoch = epoch
            r.loss = loss
            if let scores { r.setScores(accuracy: scores, nmi: scores - 0.1, ari: scores - 0.2) }
            r.seconds = seconds
            r.samplesPerS = samples
            r.ranks = ranks
            return r
        }
        context.record(record("pretrain", epoch: 1, loss: 0.05, seconds: 1, samples: 8000))
        context.record(record("pretrain", epoch: 2, loss: 0.04, seconds: 1, samples: 8000))
        context.record(record("dec", epoch: 1, scores: 0.5, seconds: 2, samples: 5000))
        context.record(record("final", scores: 0.5, ranks: 2))
        try context.write("figure3.svg", SVG.figure(title: "a <test> & figure", panels: [
            .line(title: "t", xLabel: "epoch", yLabel: "ACC", series: [Series(name: "s", points: [(0, 0.1), (1, 0.5)])]),
        ]))
        // An SVG someone edited to carry a script: shown as an image, the script never reaches the page's markup.
        try context.write("figure4.svg", "<svg xmlns=\"http://www.w3.org/2000/svg\"><title>edited</title><script>alert(1)</script>"
                          + "<rect onload=\"alert(2)\"/></svg>")
        try context.writeConfiguration([("pretrain", PretrainOptions().flags())])
        let path = try RunReport.write(directory: dir)
        let html = try String(contentsOfFile: path, encoding: .utf8)
        XCTAssertTrue(html.contains("deepcluster dec --epochs 2"))
        XCTAssertTrue(html.contains("<svg"), "the pretraining curve, drawn by the report itself, is inline")
        XCTAssertTrue(html.contains("Pretraining reconstruction loss"))
        XCTAssertTrue(html.contains("a &lt;test&gt; &amp; figure"), "a figure's title becomes its heading, escaped")
        XCTAssertTrue(html.contains("<td>--lr</td><td>0.001</td>"), "the configuration table from config.json, as flags")
        XCTAssertFalse(html.contains("poison") || html.contains("gradientDump") || html.contains("emulation"), "test hooks left out")
        XCTAssertFalse(html.contains("<script"), "no script from a run directory's file reaches the page")
        XCTAssertFalse(html.contains("onload"))
        XCTAssertEqual(html.components(separatedBy: "src=\"data:image/svg+xml;base64,").count - 1, 2, "both files shown as images")
        let encoded = html.components(separatedBy: "src=\"data:image/svg+xml;base64,")[1].prefix { $0 != "\"" }
        let decoded = String(decoding: Data(base64Encoded: String(encoded))!, as: UTF8.self)
        XCTAssertTrue(decoded.hasPrefix("<?xml") && decoded.contains("a &lt;test&gt; &amp; figure"), "the image is the file")
        XCTAssertFalse(html.contains("<?xml"), "SVG prologs are stripped when inlined")
        XCTAssertFalse(html.contains("src=\"http"), "nothing is fetched")
        let parser = XMLParserCheck(html)
        XCTAssertTrue(parser.wellFormed, "report.html parses as XML: \(parser.error ?? "")")
        XCTAssertThrowsError(try RunReport.write(directory: dir + "-missing"))
        XCTAssertEqual(RunRecord.read(dir + "/metrics.jsonl").map(\.phase), ["pretrain", "pretrain", "dec", "final"])
    }

    /// metrics.jsonl's lines: the names in the file, sorted keys, nothing for absent or non-finite quantities.
    func testRunRecordLines() throws {
        var r = RunRecord(phase: "dec")
        r.epoch = 3
        r.samplesPerS = 1000.5
        r.labelChange = 0.25
        r.acc = .nan
        r.collapsedClusters = [2]
        let line = String(decoding: try r.jsonLine(), as: UTF8.self)
        XCTAssertEqual(line, #"{"collapsed_clusters":[2],"epoch":3,"label_change":0.25,"phase":"dec","samples_per_s":1000.5}"#)
        var back = try JSONDecoder().decode(RunRecord.self, from: Data(line.utf8))
        XCTAssertEqual(back.wholeEpoch, 3)
        back.acc = .nan
        XCTAssertEqual(String(decoding: try back.jsonLine(), as: UTF8.self), line)
        back.epoch = 2.5
        XCTAssertNil(back.wholeEpoch)
    }
}

#if canImport(FoundationXML)
import FoundationXML
#endif

/// Parses a document with Foundation's XMLParser.
final class XMLParserCheck: NSObject, XMLParserDelegate {
    var wellFormed = false
    var error: String?
    init(_ text: String) {
        super.init()
        let parser = XMLParser(data: Data(text.utf8))
        parser.delegate = self
        wellFormed = parser.parse()
        error = parser.parserError.map { "\($0)" }
    }
}
