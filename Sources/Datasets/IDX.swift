// IDX files (the MNIST format): a big-endian header, then unsigned bytes. Validates everything; not a writer
// of anything but test fixtures.
import Foundation
import Tensor

public struct DataError: Error, CustomStringConvertible {
    public let path: String
    public let reason: String
    public init(_ path: String, _ reason: String) { self.path = path; self.reason = reason }
    public var description: String { "\(path): \(reason)" }
}

public struct IDXArray {
    public var dimensions: [Int]
    public var bytes: [UInt8]
    public var count: Int { dimensions.first ?? 0 }
    /// Elements per item (product of the dimensions after the first).
    public var itemSize: Int { dimensions.dropFirst().reduce(1, *) }

    /// Reads an IDX file (raw or gzip) holding unsigned bytes with `expectedRank` dimensions; with `limit`, only the
    /// first `limit` items are read (and inflated).
    public static func read(_ path: String, expectedRank: Int, limit: Int? = nil) throws -> IDXArray {
        try read(try ByteReader(path: path), expectedRank: expectedRank, limit: limit)
    }

    public static func parse(_ data: [UInt8], path: String, expectedRank: Int) throws -> IDXArray {
        try read(try ByteReader(bytes: data, path: path), expectedRank: expectedRank, limit: nil)
    }

    /// The header and dimensions only (the first 4 + 4 rank bytes).
    public static func header(_ path: String, expectedRank: Int) throws -> [Int] {
        try header(try ByteReader(path: path), expectedRank: expectedRank)
    }

    static func header(_ reader: ByteReader, expectedRank: Int) throws -> [Int] {
        let path = reader.path
        let data = try reader.read(4)
        guard data.count == 4 else { throw DataError(path, "too short for an IDX header (\(data.count) bytes)") }
        guard data[0] == 0, data[1] == 0 else {
            throw DataError(path, String(format: "bad magic 0x%02X%02X%02X%02X: not an IDX file", data[0], data[1], data[2], data[3]))
        }
        guard data[2] == 0x08 else {
            throw DataError(path, String(format: "element type 0x%02X is not unsigned bytes (0x08)", data[2]))
        }
        let rank = Int(data[3])
        guard rank == expectedRank else {
            throw DataError(path, "has \(rank) dimensions, expected \(expectedRank)")
        }
        let sizes = try reader.read(4 * rank)
        guard sizes.count == 4 * rank else {
            throw DataError(path, "header truncated (\(4 + sizes.count) of \(4 + 4 * rank) bytes)")
        }
        let declared: [Int] = (0..<rank).map { d -> Int in
            sizes[(4 * d)..<(4 * d + 4)].reduce(0) { (value: Int, byte: UInt8) -> Int in value << 8 | Int(byte) }
        }
        var dimensions = [Int]()
        var total = 1
        for (d, size) in declared.enumerated() {
            guard size > 0 else {
                throw DataError(path, "dimension \(d) of the header is 0 (\(declared.map(String.init).joined(separator: " x "))): "
                                + "no data; the file is damaged or empty")
            }
            let (product, overflow) = total.multipliedReportingOverflow(by: size)
            guard !overflow, product <= Int(Int32.max) * 16 else {
                throw DataError(path, "dimensions \(dimensions + [size]) overflow")
            }
            dimensions.append(size)
            total = product
        }
        let itemSize = dimensions.dropFirst().reduce(1, *)
        guard itemSize <= IDXArray.largestItem else {
            throw DataError(path, "items of \(dimensions.dropFirst().map(String.init).joined(separator: " x ")) = \(itemSize) values "
                            + "are implausible (at most \(IDXArray.largestItem)): the header is damaged")
        }
        return dimensions
    }

    static func read(_ reader: ByteReader, expectedRank: Int, limit: Int?) throws -> IDXArray {
        let path = reader.path
        var dimensions = try header(reader, expectedRank: expectedRank)
        let total = dimensions.reduce(1, *), itemSize = total / dimensions[0]
        let items = min(dimensions[0], limit ?? Int.max)
        let wanted = items * itemSize
        // Grown as bytes arrive: a header that lies about its size costs no more memory than the file delivers.
        var bytes = [UInt8]()
        while bytes.count < wanted {
            let chunk = try reader.read(min(wanted - bytes.count, 1 << 22))
            if chunk.isEmpty { break }
            bytes += chunk
        }
        if bytes.count < wanted {
            throw DataError(path, "truncated payload: header \(dimensions) needs \(total) bytes, file has \(bytes.count)")
        }
        if items == dimensions[0] {
            // Nothing may follow the declared payload; count what does, up to a bound (a bomb is not inflated).
            var trailing = 0
            while trailing <= IDXArray.trailingCountLimit {
                let chunk = try reader.read(1 << 16)
                if chunk.isEmpty { break }
                trailing += chunk.count
            }
            if trailing > 0 {
                let amount = trailing > IDXArray.trailingCountLimit ? "more than \(IDXArray.trailingCountLimit)" : "\(trailing)"
                throw DataError(path, "\(amount) trailing bytes after the \(total) the header \(dimensions) declares")
            }
        }
        dimensions[0] = items
        return IDXArray(dimensions: dimensions, bytes: bytes)
    }

    /// How many bytes after the payload are counted before the error says "more than".
    static let trailingCountLimit = 1 << 20

    /// The largest item (values per image or row) a header may declare: 16 Mi, a 4096 x 4096 image.
    public static let largestItem = 1 << 24

    /// Serialises to IDX (for test fixtures and `fetch-mnist` checks).
    public func encoded() -> [UInt8] {
        var out: [UInt8] = [0, 0, 0x08, UInt8(dimensions.count)]
        for d in dimensions { out += [UInt8(d >> 24 & 255), UInt8(d >> 16 & 255), UInt8(d >> 8 & 255), UInt8(d & 255)] }
        return out + bytes
    }
}
