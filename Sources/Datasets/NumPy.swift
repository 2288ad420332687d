// NumPy .npy files (format versions 1-3): the header is a Python dict literal ('descr', 'fortran_order', 'shape'),
// then the array in C order. Reads unsigned and signed integers of 1-8 bytes and floats of 4 and 8 bytes, either
// byte order; writes float32 (embeddings, soft assignments). Every size is checked against the file before reading.
import Foundation
import Tensor

public struct NumPyArray: Sendable {
    public enum Values: Sendable {
        case bytes([UInt8])       // uint8
        case integers([Int64])    // every other integer type
        case floats([Float])      // float32, float64 (converted; a float64 beyond float32's range is an error)
    }
    public var shape: [Int]
    public var values: Values
    public var count: Int { shape.first ?? 1 }

    /// The largest file the reader takes (the values are held in memory, as float32 at most twice their size).
    public static let largestBytes = 8 << 30

    public static func read(_ path: String) throws -> NumPyArray {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
              let size = attributes[.size] as? Int else { throw DataError(path, "file not found") }
        if size > largestBytes { throw DataError(path, "\(size) bytes: larger than the \(largestBytes >> 30) GiB this reader takes") }
        // Straight into the array that parse reads (through Data it was held twice: 1.2 GB of a 600 MB file).
        guard let file = fopen(path, "rb") else { throw DataError(path, "cannot read the file") }
        defer { fclose(file) }
        let bytes = [UInt8](unsafeUninitializedCapacity: max(size, 1)) { buffer, count in
            count = size > 0 ? fread(buffer.baseAddress!, 1, size, file) : 0
        }
        guard bytes.count == size else { throw DataError(path, "cannot read the file (read \(bytes.count) of \(size) bytes)") }
        return try parse(bytes, path: path)
    }

    public static func parse(_ bytes: [UInt8], path: String) throws -> NumPyArray {
        let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)
        guard bytes.count >= 10, Array(bytes[0..<6]) == magic else {
            throw DataError(path, "not a NumPy .npy file (its first bytes are not \\x93NUMPY)")
        }
        let major = bytes[6]
        let headerLength: Int, headerStart: Int
        switch major {
        case 1: headerLength = Int(bytes[8]) | Int(bytes[9]) << 8; headerStart = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw DataError(path, "truncated header") }
            headerLength = (8..<12).reduce(0) { $0 | Int(bytes[$1]) << (8 * ($1 - 8)) }
            headerStart = 12
        default: throw DataError(path, ".npy format version \(major) is not supported (1, 2 and 3 are)")
        }
        guard headerLength <= bytes.count - headerStart, headerLength <= 1 << 20 else {
            throw DataError(path, "truncated: the header declares \(headerLength) bytes")
        }
        guard let header = String(bytes: bytes[headerStart..<(headerStart + headerLength)], encoding: .utf8) else {
            throw DataError(path, "the header is not text")
        }
        let descr = try field(header, "descr", path: path)
        guard descr.hasPrefix("'"), descr.count >= 3 else {
            throw DataError(path, "dtype \(descr) is not supported (structured arrays are not): save a plain numeric array")
        }
        let dtype = String(descr.dropFirst().dropLast())
        if try field(header, "fortran_order", path: path) != "False" {
            throw DataError(path, "the array is in Fortran order: save np.ascontiguousarray(x) instead")
        }
        let shapeText = try field(header, "shape", path: path)
        let shape = try shapeText.trimmingCharacters(in: CharacterSet(charactersIn: "() ")).split(separator: ",")
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.map { text -> Int in
                guard let n = Int(text), n >= 0 else { throw DataError(path, "shape \(shapeText) is not a tuple of sizes") }
                return n
            }
        var elements = 1
        for n in shape {
            let (product, overflow) = elements.multipliedReportingOverflow(by: n)
            if overflow || product > largestBytes { throw DataError(path, "shape \(shapeText) is implausibly large") }
            elements = product
        }
        let marked = dtype.first.map { "<>|=".contains($0) } ?? false
        let order: Character = marked ? dtype.first! : "="
        let body = marked ? dtype.dropFirst() : Substring(dtype)
        guard let letter = body.first, let width = Int(body.dropFirst()),
              (letter == "u" || letter == "i") && [1, 2, 4, 8].contains(width) || letter == "f" && [4, 8].contains(width) else {
            throw DataError(path, "dtype '\(dtype)' is not supported: use uint8, an integer type, float32 or float64")
        }
        let bigEndian = order == ">"
        let start = headerStart + headerLength
        let expected = elements * width
        if bytes.count - start < expected {
            throw DataError(path, "truncated: shape \(shapeText) of '\(dtype)' needs \(expected) bytes, \(bytes.count - start) follow the header")
        }
        if bytes.count - start > expected {
            throw DataError(path, "\(bytes.count - start - expected) trailing bytes after the \(expected) that shape \(shapeText) of '\(dtype)' needs")
        }
        func word(_ i: Int) -> UInt64 {
            var value: UInt64 = 0
            let base = start + i * width
            for b in 0..<width {
                let byte = UInt64(bytes[base + (bigEndian ? width - 1 - b : b)])
                value |= byte << (8 * UInt64(b))
            }
            return value
        }
        let values: Values
        switch (letter, width) {
        case ("u", 1): values = .bytes(Array(bytes[start..<(start + expected)]))
        case ("u", _): values = .integers((0..<elements).map { i in
            let w = word(i); return w > UInt64(Int64.max) ? Int64.max : Int64(w) })
        case ("i", _): values = .integers((0..<elements).map { i in
            let shift = UInt64(64 - 8 * width)
            return Int64(bitPattern: word(i) << shift) >> Int64(shift) })
        case ("f", 4): values = .floats((0..<elements).map { Float(bitPattern: UInt32(word($0))) })
        default:
            var floats = [Float](repeating: 0, count: elements)
            for i in 0..<elements {
                let x = Double(bitPattern: word(i))
                let f = Float(x)
                if x.isFinite && !f.isFinite { throw DataError(path, "value \(x) at flat index \(i) is beyond float32's range") }
                floats[i] = f
            }
            values = .floats(floats)
        }
        return NumPyArray(shape: shape, values: values)
    }

    /// The text of `key`'s value in the header dict: a quoted string, a tuple or a word.
    static func field(_ header: String, _ key: String, path: String) throws -> String {
        guard let keyRange = header.range(of: "'\(key)'") ?? header.range(of: "\"\(key)\"") else {
            throw DataError(path, "the header has no '\(key)'")
        }
        var rest = header[keyRange.upperBound...].drop { $0 == " " }
        guard rest.first == ":" else { throw DataError(path, "the header's '\(key)' has no value") }
        rest = rest.dropFirst().drop { $0 == " " }
        if rest.first == "(" {
            guard let close = rest.firstIndex(of: ")") else { throw DataError(path, "the header's '\(key)' is not closed") }
            return String(rest[...close])
        }
        if let quote = rest.first, quote == "'" || quote == "\"" {
            guard let close = rest.dropFirst().firstIndex(of: quote) else { throw DataError(path, "the header's '\(key)' is not closed") }
            return String(rest[...close])
        }
        return String(rest.prefix { $0 != "," && $0 != "}" }).trimmingCharacters(in: .whitespaces)
    }

    /// A float32 .npy (version 1) of `shape` holding `values` (C order).
    public static func encode(_ values: [Float], shape: [Int]) -> [UInt8] {
        precondition(values.count == shape.reduce(1, *))
        let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': \(shapeText), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)]
        bytes += Array(header.utf8)
        bytes.reserveCapacity(bytes.count + 4 * values.count)
        for v in values {
            let bits = v.bitPattern.littleEndian
            withUnsafeBytes(of: bits) { bytes += $0 }
        }
        return bytes
    }
}
