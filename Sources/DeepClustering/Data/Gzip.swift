// Reading whole files, gunzipped when they start with the gzip magic. The one Swift file that imports CZlib.
import Foundation
internal import CZlib

public enum FileBytes {
    /// The file's bytes, decompressed if it is a gzip stream. Errors name the file.
    public static func read(_ path: String) throws -> [UInt8] {
        guard FileManager.default.fileExists(atPath: path) else { throw DataError(path, "file not found") }
        guard let data = FileManager.default.contents(atPath: path) else { throw DataError(path, "cannot be read") }
        let raw = [UInt8](data)
        guard raw.count >= 2, raw[0] == 0x1f, raw[1] == 0x8b else { return raw }
        return try gunzip(raw, path: path)
    }

    /// Inflates a gzip stream (one or more members); a corrupt or truncated stream is an error.
    public static func gunzip(_ input: [UInt8], path: String) throws -> [UInt8] {
        var stream = z_stream()
        // 15 + 16: a gzip wrapper, the largest window.
        guard inflateInit2_(&stream, 15 + 16, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw DataError(path, "zlib could not start")
        }
        defer { inflateEnd(&stream) }
        var output = [UInt8]()
        output.reserveCapacity(input.count * 4)
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        var status: Int32 = Z_OK
        try input.withUnsafeBufferPointer { inBuffer in
            stream.next_in = UnsafeMutablePointer(mutating: inBuffer.baseAddress)
            stream.avail_in = UInt32(inBuffer.count)
            while true {
                let produced: Int = chunk.withUnsafeMutableBufferPointer { out in
                    stream.next_out = out.baseAddress
                    stream.avail_out = UInt32(out.count)
                    status = inflate(&stream, Z_NO_FLUSH)
                    return out.count - Int(stream.avail_out)
                }
                output.append(contentsOf: chunk[0..<produced])
                if status == Z_STREAM_END {
                    if stream.avail_in == 0 { break }
                    // Another gzip member follows (concatenated streams are valid gzip).
                    guard inflateReset(&stream) == Z_OK else { throw DataError(path, "corrupt gzip stream") }
                    continue
                }
                if status == Z_BUF_ERROR && stream.avail_in == 0 {
                    throw DataError(path, "truncated gzip stream (ends before the compressed data does)")
                }
                guard status == Z_OK else {
                    let reason = stream.msg.flatMap { String(validatingCString: $0) } ?? "error \(status)"
                    throw DataError(path, "corrupt gzip stream (\(reason))")
                }
            }
        }
        return output
    }

    /// A zlib stream (for PNG's IDAT) of `input`.
    public static func zlibCompress(_ input: [UInt8]) -> [UInt8] {
        var length = compressBound(uLong(input.count))
        var output = [UInt8](repeating: 0, count: Int(length))
        let status = output.withUnsafeMutableBufferPointer { out in
            input.withUnsafeBufferPointer { compress2(out.baseAddress, &length, $0.baseAddress, uLong($0.count), 9) }
        }
        precondition(status == Z_OK, "zlib compress2 failed (\(status))")
        return Array(output[0..<Int(length)])
    }

    /// CRC-32 as zlib computes it (PNG chunks use it).
    public static func crc32(_ bytes: [UInt8]) -> UInt32 {
        UInt32(bytes.withUnsafeBufferPointer { CZlib.crc32(0, $0.baseAddress, uInt($0.count)) })
    }
}
