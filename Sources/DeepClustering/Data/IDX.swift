// IDX files (the MNIST format): a big-endian header, then unsigned bytes. Validates everything; not a writer
// of anything but test fixtures.
import Foundation

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

    /// Parses an IDX file (raw or gzip) holding unsigned bytes with `expectedRank` dimensions.
    public static func read(_ path: String, expectedRank: Int) throws -> IDXArray {
        try parse(try FileBytes.read(path), path: path, expectedRank: expectedRank)
    }

    public static func parse(_ data: [UInt8], path: String, expectedRank: Int) throws -> IDXArray {
        guard data.count >= 4 else { throw DataError(path, "too short for an IDX header (\(data.count) bytes)") }
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
        let headerSize = 4 + 4 * rank
        guard data.count >= headerSize else { throw DataError(path, "header truncated (\(data.count) of \(headerSize) bytes)") }
        var dimensions = [Int]()
        var total = 1
        for d in 0..<rank {
            let o = 4 + 4 * d
            let size = Int(data[o]) << 24 | Int(data[o + 1]) << 16 | Int(data[o + 2]) << 8 | Int(data[o + 3])
            guard size > 0 else {
                throw DataError(path, "dimension \(d) of the header is 0 (\(headerDimensions(data, rank))): no data; the file is damaged or empty")
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
        let payload = data.count - headerSize
        if payload < total {
            throw DataError(path, "truncated payload: header \(dimensions) needs \(total) bytes, file has \(payload)")
        }
        if payload > total {
            throw DataError(path, "\(payload - total) trailing bytes after the \(total) the header \(dimensions) declares")
        }
        return IDXArray(dimensions: dimensions, bytes: Array(data[headerSize...]))
    }

    /// The largest item (values per image or row) a header may declare: 16 Mi, a 4096 x 4096 image.
    public static let largestItem = 1 << 24

    /// The header's dimensions as text, for messages.
    private static func headerDimensions(_ data: [UInt8], _ rank: Int) -> String {
        (0..<rank).map { d -> String in
            let o = 4 + 4 * d
            return String(Int(data[o]) << 24 | Int(data[o + 1]) << 16 | Int(data[o + 2]) << 8 | Int(data[o + 3]))
        }.joined(separator: " x ")
    }

    /// Serialises to IDX (for test fixtures and `fetch-mnist` checks).
    public func encoded() -> [UInt8] {
        var out: [UInt8] = [0, 0, 0x08, UInt8(dimensions.count)]
        for d in dimensions { out += [UInt8(d >> 24 & 255), UInt8(d >> 16 & 255), UInt8(d >> 8 & 255), UInt8(d & 255)] }
        return out + bytes
    }
}
