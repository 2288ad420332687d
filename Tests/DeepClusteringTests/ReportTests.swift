// t-SNE, the PNG writer and the run report.
@testable import DeepClustering
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
        // Recover the conditional rows from the symmetric P is not possible; check the symmetric P instead:
        // it sums to 1, is symmetric and has a zero diagonal.
        let p = TSNE.affinities(points, count: n, dims: 50, perplexity: 20, threads: 2)
        XCTAssertEqual(Double(p.reduce(0, +)), 1, accuracy: 1e-3)
        for i in stride(from: 0, to: n, by: 17) {
            XCTAssertEqual(p[i * n + i], 0)
            for j in stride(from: 0, to: n, by: 13) { XCTAssertEqual(p[i * n + j], p[j * n + i], accuracy: 1e-9) }
        }
    }

    func testPNGHeaderAndPayload() throws {
        let png = PNG.grayscale(width: 3, height: 2, pixels: [0, 128, 255, 1, 2, 3])
        XCTAssertEqual(Array(png.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        XCTAssertEqual(String(decoding: png[12..<16], as: UTF8.self), "IHDR")
        XCTAssertEqual(Array(png[16..<24]), [0, 0, 0, 3, 0, 0, 0, 2])
        XCTAssertEqual(String(decoding: png.suffix(8).prefix(4), as: UTF8.self), "IEND")
    }

    func testReportOfARunDirectoryIsWellFormedAndSelfContained() throws {
        let dir = NSTemporaryDirectory() + "dc-report-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        let context = try RunContext(communicator: SingleProcessCommunicator(), directory: dir, quiet: true,
                                     mode: .fresh(RunManifest(command: "dec", arguments: ["--epochs", "2"])))
        context.record(["phase": "dec", "epoch": 1.0, "acc": 0.5, "nmi": 0.4, "ari": 0.3, "seconds": 2.0, "samples_per_s": 5000.0])
        context.record(["phase": "final", "acc": 0.5, "nmi": 0.4, "ari": 0.3, "ranks": 2])
        try context.write("figure3.svg", SVG.figure(title: "a <test> & figure", panels: [
            .line(title: "t", xLabel: "epoch", yLabel: "ACC", series: [Series(name: "s", points: [(0, 0.1), (1, 0.5)])]),
        ]))
        let path = try RunReport.write(directory: dir)
        let html = try String(contentsOfFile: path, encoding: .utf8)
        XCTAssertTrue(html.contains("deepcluster dec --epochs 2"))
        XCTAssertTrue(html.contains("<svg"))
        XCTAssertTrue(html.contains("a &lt;test&gt; &amp; figure"))
        XCTAssertFalse(html.contains("<?xml"), "SVG prologs are stripped when inlined")
        XCTAssertFalse(html.contains("src=\"http"), "nothing is fetched")
        let parser = XMLParserCheck(html)
        XCTAssertTrue(parser.wellFormed, "report.html parses as XML: \(parser.error ?? "")")
        XCTAssertThrowsError(try RunReport.write(directory: dir + "-missing"))
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
