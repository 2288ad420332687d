// A minimal PNG writer (8-bit grey or RGB, no interlace) so that reports can show images inline as data: URIs.
import Clustering
import Datasets
import Foundation
import Tensor

public enum PNG {
    /// `pixels` (height, width), 0 = black.
    public static func grayscale(width: Int, height: Int, pixels: [UInt8]) -> [UInt8] {
        encode(width: width, height: height, channels: 1, pixels: pixels)
    }

    /// `pixels` (height, width, 3): red, green, blue interleaved.
    public static func rgb(width: Int, height: Int, pixels: [UInt8]) -> [UInt8] {
        encode(width: width, height: height, channels: 3, pixels: pixels)
    }

    /// An 8-bit PNG of `channels` 1 (grey) or 3 (RGB) interleaved samples, rows top to bottom, no filter.
    public static func encode(width: Int, height: Int, channels: Int, pixels: [UInt8]) -> [UInt8] {
        precondition(pixels.count == width * height * channels && (channels == 1 || channels == 3))
        let stride = width * channels
        var raw = [UInt8]()
        raw.reserveCapacity((stride + 1) * height)
        for row in 0..<height {
            raw.append(0)  // filter: none
            raw += pixels[(row * stride)..<((row + 1) * stride)]
        }
        func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 255), UInt8((v >> 8) & 255), UInt8(v & 255)] }
        func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
            let body = Array(type.utf8) + data
            return be32(UInt32(data.count)) + body + be32(FileBytes.crc32(body))
        }
        let header = be32(UInt32(width)) + be32(UInt32(height)) + [8, channels == 3 ? 2 : 0, 0, 0, 0]
        return [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + chunk("IHDR", header)
            + chunk("IDAT", FileBytes.zlibCompress(raw)) + chunk("IEND", [])
    }

    /// Sample `i` of image data as an interleaved picture (planes interleaved for colour): (width, height, channels,
    /// pixels), or nil when the samples are not images of a known shape.
    public static func picture(_ data: DataSet, _ i: Int) -> (width: Int, height: Int, channels: Int, pixels: [UInt8])? {
        guard data.isImage, !data.isFloat else { return nil }
        let shape = data.imageShape ?? Augmentation.imageSide(of: data.dimension).map { ImageShape(width: $0, height: $0, channels: 1) }
        guard let shape, shape.values == data.dimension else { return nil }
        let base = i * data.dimension, plane = shape.pixels
        if shape.channels == 1 { return (shape.width, shape.height, 1, Array(data.images[base..<(base + plane)])) }
        var pixels = [UInt8](repeating: 0, count: data.dimension)
        for p in 0..<plane { for c in 0..<shape.channels { pixels[p * shape.channels + c] = data.images[base + c * plane + p] } }
        return (shape.width, shape.height, shape.channels, pixels)
    }

    public static func dataURI(_ png: [UInt8]) -> String { "data:image/png;base64," + Data(png).base64EncodedString() }
}
