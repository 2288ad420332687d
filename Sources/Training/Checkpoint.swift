// Checkpoint: a versioned binary file of named Float sections plus JSON metadata, closed by a checksum.
// Written to a temporary file, fsynced, renamed over the old one; the previous file is kept as `<name>.prev`.
// Layout (little-endian): "DCLUSTER" | version u32 | width count u32 | widths u32... | clusters u32 |
// section count u32 | per section: name length u32, name, element count u64, f32 data | metadata length u32,
// metadata JSON | FNV-1a 64 of everything before it.
import Clustering
import Datasets
import Foundation
import NN
import Report
import Tensor

public struct CheckpointError: Error, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var description: String { "\(path): \(reason)" }
}

public struct Checkpoint: Sendable {
    public static let magic: [UInt8] = Array("DCLUSTER".utf8)
    public static let version: UInt32 = 1

    public var widths: [Int]
    public var clusters: Int
    public var sections: [String: [Float]]
    public var metadata: [String: String]

    public init(widths: [Int], clusters: Int, sections: [String: [Float]], metadata: [String: String] = [:]) {
        self.widths = widths
        self.clusters = clusters
        self.sections = sections
        self.metadata = metadata
    }

    /// The arithmetic of the products that wrote it (metadata "precision", Model.checkpoint); nil for a file from
    /// before bf16 (float32 then).
    public func precision(path: String) throws -> Precision? {
        guard let text = metadata["precision"] else { return nil }
        guard let precision = Precision(rawValue: text) else {
            throw CheckpointError(path: path, reason: "its precision \(text.prefix(40)) is neither float32 nor bf16")
        }
        return precision
    }

    public func encoded() -> [UInt8] {
        var out = Checkpoint.magic
        func u32(_ v: Int) { withUnsafeBytes(of: UInt32(v).littleEndian) { out += $0 } }
        func u64(_ v: Int) { withUnsafeBytes(of: UInt64(v).littleEndian) { out += $0 } }
        u32(Int(Checkpoint.version))
        u32(widths.count)
        widths.forEach { u32($0) }
        u32(clusters)
        u32(sections.count)
        for name in sections.keys.sorted() {
            let values = sections[name]!
            u32(name.utf8.count)
            out += Array(name.utf8)
            u64(values.count)
            values.withUnsafeBytes { out += $0 }
        }
        let json = (try? JSONSerialization.data(withJSONObject: metadata, options: [.sortedKeys])) ?? Data("{}".utf8)
        u32(json.count)
        out += [UInt8](json)
        withUnsafeBytes(of: fnv1a(out).littleEndian) { out += $0 }
        return out
    }

    public static func decode(_ bytes: [UInt8], path: String) throws -> Checkpoint {
        func fail(_ reason: String) -> CheckpointError { CheckpointError(path: path, reason: reason) }
        guard bytes.count >= magic.count + 8, Array(bytes[0..<magic.count]) == magic else {
            throw fail("not a DeepClustering checkpoint (bad magic)")
        }
        let body = bytes.count - 8
        let stored = bytes[body...].withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        guard UInt64(littleEndian: stored) == fnv1a(Array(bytes[0..<body])) else {
            throw fail("checksum mismatch: the file is truncated or corrupt")
        }
        // Every size below comes from the file: each is checked against the bytes left before it is used, in
        // arithmetic that cannot overflow, and the architecture against the sections before anything is built from it.
        var offset = magic.count
        func need(_ n: UInt64) throws -> Int {
            guard n <= UInt64(body - offset) else { throw fail("truncated: a field needs \(n) bytes, \(body - offset) are left") }
            return Int(n)
        }
        func u32() throws -> Int {
            _ = try need(4)
            defer { offset += 4 }
            return Int(UInt32(littleEndian: bytes[offset..<offset + 4].withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }))
        }
        func u64() throws -> UInt64 {
            _ = try need(8)
            defer { offset += 8 }
            return UInt64(littleEndian: bytes[offset..<offset + 8].withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        }
        let version = try u32()
        guard version == Checkpoint.version else { throw fail("version \(version); this build reads version \(Checkpoint.version)") }
        let widthCount = try u32()
        guard (2...64).contains(widthCount) else { throw fail("implausible layer count \(widthCount)") }
        var widths = [Int]()
        for _ in 0..<widthCount { widths.append(try u32()) }
        guard widths.allSatisfy({ (1...Checkpoint.largestWidth).contains($0) }) else {
            throw fail("implausible layer widths \(widths.map(String.init).joined(separator: "-")) (each must be 1...\(Checkpoint.largestWidth))")
        }
        let clusters = try u32()
        guard clusters <= Checkpoint.largestClusterCount else { throw fail("implausible cluster count \(clusters)") }
        let sectionCount = try u32()
        guard sectionCount <= 64 else { throw fail("implausible section count \(sectionCount)") }
        var sections = [String: [Float]]()
        for _ in 0..<sectionCount {
            let nameLength = try need(UInt64(try u32()))
            let name = String(decoding: bytes[offset..<offset + nameLength], as: UTF8.self)
            offset += nameLength
            let count = try u64()
            guard count <= UInt64(body - offset) / 4 else {
                throw fail("truncated: section \(name) declares \(count) values, \(body - offset) bytes are left")
            }
            let size = try need(count * 4)
            var values = [Float](repeating: 0, count: size / 4)
            values.withUnsafeMutableBytes { target in
                bytes[offset..<offset + size].withUnsafeBytes { target.copyMemory(from: $0) }
            }
            offset += size
            guard values.allSatisfy({ $0.isFinite }) else {
                throw fail("section \(name) holds NaN or infinite values: the run that wrote it diverged; use an earlier checkpoint")
            }
            sections[name] = values
        }
        let jsonLength = try need(UInt64(try u32()))
        let json = Data(bytes[offset..<offset + jsonLength])
        guard let metadata = (try? JSONSerialization.jsonObject(with: json)) as? [String: String] else {
            throw fail("its metadata is not a JSON object of strings: the file was not written by deepcluster")
        }
        let checkpoint = Checkpoint(widths: widths, clusters: clusters, sections: sections, metadata: metadata)
        try checkpoint.checkArchitecture(path: path)
        return checkpoint
    }

    /// The widest layer and the most clusters a checkpoint may declare (far beyond any model this tool trains).
    public static let largestWidth = 1 << 20
    public static let largestClusterCount = 1 << 16

    /// Parameters of an autoencoder with these encoder widths (mirrored decoder), in overflow-checked arithmetic.
    public static func parameterCount(widths: [Int]) -> Int? {
        var total = 0
        for l in 0..<(widths.count - 1) {
            let (weights, o1) = widths[l].multipliedReportingOverflow(by: widths[l + 1])
            let (layer, o2) = weights.addingReportingOverflow(widths[l + 1] + widths[l])  // both directions' biases
            let (twice, o3) = weights.addingReportingOverflow(layer)
            let (sum, o4) = total.addingReportingOverflow(twice)
            if o1 || o2 || o3 || o4 { return nil }
            total = sum
        }
        return total
    }

    /// The sections agree with the declared architecture: the autoencoder's weights and the centres have the sizes
    /// that the widths and K imply.
    func checkArchitecture(path: String) throws {
        func fail(_ reason: String) -> CheckpointError { CheckpointError(path: path, reason: reason) }
        let architecture = widths.map(String.init).joined(separator: "-")
        if let weights = sections["autoencoder"] {
            guard let expected = Checkpoint.parameterCount(widths: widths), weights.count == expected else {
                throw fail("holds \(weights.count) autoencoder weights, but architecture \(architecture) has "
                           + "\(Checkpoint.parameterCount(widths: widths).map(String.init) ?? "too many")")
            }
        }
        if let centres = sections["centres"] {
            guard clusters >= 1, centres.count == clusters * widths[widths.count - 1] else {
                throw fail("holds \(centres.count) centre values, but K = \(clusters) in \(widths.last!) dimensions needs \(clusters * widths.last!)")
            }
        }
    }

    public static func load(_ path: String) throws -> Checkpoint {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CheckpointError(path: path, reason: "checkpoint not found or unreadable")
        }
        return try decode([UInt8](data), path: path)
    }

    /// Writes atomically: temporary file, fsync, keep the previous file as `.prev`, rename.
    public func write(to path: String) throws {
        try AtomicFile.write(encoded(), to: path, keepPrevious: true)
    }
}
