// Reading whole files, gunzipped when they start with the gzip magic. The one Swift file that imports CZlib.
internal import CZlib
import Foundation
import Tensor

public enum FileBytes {
    /// The file's bytes, decompressed if it is a gzip stream. Errors name the file.
    public static func read(_ path: String) throws -> [UInt8] {
        try ByteReader(path: path).readToEnd()
    }

    /// Inflates a whole gzip stream (one or more members); a corrupt or truncated stream is an error.
    public static func gunzip(_ input: [UInt8], path: String) throws -> [UInt8] {
        try ByteReader(bytes: input, path: path).readToEnd()
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

/// A file's bytes in order, inflated on the way when they start with the gzip magic. Nothing is read or inflated
/// beyond what the caller asks for, so a header that declares little bounds the work on a file that holds much
/// (a gzip bomb, a huge file under --limit), and memory grows only with the bytes actually delivered.
public final class ByteReader {
    public let path: String
    private var raw: FileHandle?
    private var memory: [UInt8]?            // an in-memory source that is not gzip
    private var memoryOffset = 0
    // gzip: the compressed bytes (kept alive for the stream), the stream, and whether it ended.
    private var compressed: UnsafeMutableBufferPointer<UInt8>?
    private var stream = z_stream()
    private var finished = false

    /// Opens a file: a missing or unreadable one is an error that names it.
    public convenience init(path: String) throws {
        guard FileManager.default.fileExists(atPath: path) else { throw DataError(path, "file not found") }
        guard let handle = FileHandle(forReadingAtPath: path) else { throw DataError(path, "cannot be read") }
        let magic = (try? handle.read(upToCount: 2)) ?? Data()
        if magic.count == 2, magic[magic.startIndex] == 0x1f, magic[magic.startIndex + 1] == 0x8b {
            try? handle.seek(toOffset: 0)
            let all = (try? handle.readToEnd()) ?? Data()
            try? handle.close()
            try self.init(bytes: [UInt8](all), path: path)
        } else {
            try? handle.seek(toOffset: 0)
            try self.init(handle: handle, path: path)
        }
    }

    /// Bytes already in memory (gzip or not).
    public init(bytes: [UInt8], path: String) throws {
        self.path = path
        guard bytes.count >= 2, bytes[0] == 0x1f, bytes[1] == 0x8b else { memory = bytes; return }
        let copy = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: bytes.count)
        _ = copy.initialize(from: bytes)
        compressed = copy
        // 15 + 16: a gzip wrapper, the largest window.
        guard inflateInit2_(&stream, 15 + 16, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw DataError(path, "zlib could not start")
        }
        stream.next_in = copy.baseAddress
        stream.avail_in = UInt32(copy.count)
    }

    private init(handle: FileHandle, path: String) throws {
        self.path = path
        raw = handle
    }

    deinit {
        if let compressed {
            inflateEnd(&stream)
            compressed.deallocate()
        }
        try? raw?.close()
    }

    /// Everything left (for files whose size the caller bounds otherwise).
    public func readToEnd() throws -> [UInt8] {
        var all = [UInt8]()
        while true {
            let chunk = try read(1 << 20)
            if chunk.isEmpty { return all }
            all += chunk
        }
    }

    /// Up to `count` next bytes; fewer only at the end of the data. A corrupt or truncated gzip stream is an error.
    public func read(_ count: Int) throws -> [UInt8] {
        precondition(count >= 0)
        if let raw {
            guard count > 0 else { return [] }
            do { return [UInt8](try raw.read(upToCount: count) ?? Data()) } catch {
                throw DataError(path, "read failed: \(error.localizedDescription)")
            }
        }
        if let memory {
            let n = min(count, memory.count - memoryOffset)
            defer { memoryOffset += n }
            return Array(memory[memoryOffset..<(memoryOffset + n)])
        }
        var output = [UInt8](repeating: 0, count: count)
        var produced = 0
        try output.withUnsafeMutableBufferPointer { out in
            while produced < count && !finished {
                stream.next_out = out.baseAddress! + produced
                stream.avail_out = UInt32(min(count - produced, Int(UInt32.max)))
                let before = Int(stream.avail_out)
                let status = inflate(&stream, Z_NO_FLUSH)
                produced += before - Int(stream.avail_out)
                if status == Z_STREAM_END {
                    if stream.avail_in == 0 { finished = true; break }
                    // Another gzip member follows (concatenated streams are valid gzip).
                    guard inflateReset(&stream) == Z_OK else { throw DataError(path, "corrupt gzip stream") }
                    continue
                }
                if status == Z_BUF_ERROR && stream.avail_in == 0 {
                    throw DataError(path, "truncated gzip stream (ends before the compressed data does)")
                }
                guard status == Z_OK || (status == Z_BUF_ERROR && stream.avail_out == 0) else {
                    let reason = stream.msg.flatMap { String(validatingCString: $0) } ?? "error \(status)"
                    throw DataError(path, "corrupt gzip stream (\(reason))")
                }
            }
        }
        return Array(output[0..<produced])
    }
}
