// Augmentation: a random affine transform per sample (shift and rotation about the image centre, bilinear, zero
// fill), as DEC-DA and DynAE train with. The transform of a sample depends only on (seed, epoch, global sample index),
// so every rank count sees the same images and the reduction contract keeps holding.
// B = batch rows, side x side = D pixels, row-major.
import Foundation
import Tensor

public struct Augmentation: Sendable, Equatable, CustomStringConvertible {
    /// Largest shift, as a fraction of the width (and of the height).
    public var shift: Double
    /// Largest rotation, in degrees.
    public var rotate: Double

    public init(shift: Double = 0, rotate: Double = 0) {
        self.shift = shift
        self.rotate = rotate
    }

    public static let none = Augmentation()
    public var isNone: Bool { shift == 0 && rotate == 0 }
    public var description: String { isNone ? "none" : "shift=\(shift),rotate=\(rotate)" }

    /// "none", or "shift=0.1,rotate=10" (either part may be left out).
    public init(parsing text: String) throws {
        self.init()
        guard text != "none" else { return }
        for part in text.split(separator: ",") {
            let pair = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard pair.count == 2, let value = Double(pair[1]), value.isFinite else {
                throw RunError("--augment takes none or shift=F,rotate=DEGREES, e.g. shift=0.1,rotate=10 (got \(text))")
            }
            switch pair[0] {
            case "shift" where (0...0.5).contains(value): shift = value
            case "rotate" where (0...180).contains(value): rotate = value
            default:
                throw RunError("--augment: \(part) is not shift in [0, 0.5] or rotate in [0, 180] degrees (got \(text))")
            }
        }
    }

    /// The side of a square image of `dimension` pixels, or nil when it is not one.
    public static func imageSide(of dimension: Int) -> Int? {
        let side = Int(Double(dimension).squareRoot().rounded())
        return side * side == dimension && side > 1 ? side : nil
    }

    /// The side and the planes of square images of `dimension` values: grey (side x side) or colour stored as three
    /// planes (3 x side x side; 3 s^2 is never a square, so the two cannot be confused). Nil otherwise.
    public static func imageLayout(of dimension: Int) -> (side: Int, planes: Int)? {
        if let side = imageSide(of: dimension) { return (side, 1) }
        if dimension % 3 == 0, let side = imageSide(of: dimension / 3) { return (side, 3) }
        return nil
    }

    /// Whether the samples of `data` are square images augmentation can move (planes moved alike).
    public static func canMove(_ data: DataSet) -> Bool {
        guard data.isImage else { return false }
        if let shape = data.imageShape { return shape.width == shape.height && shape.width > 1 }
        return imageSide(of: data.dimension) != nil
    }

    /// Augmentation moves pixels: it needs square images.
    public func check(_ data: DataSet) throws {
        if !isNone && !Augmentation.canMove(data) {
            throw RunError("--augment \(self) moves pixels of square images, but a sample of \(data.name) has \(data.dimension) values; use --augment none")
        }
    }

    /// The transform of one sample: its shift in pixels (dx, dy) and its angle in radians.
    public func parameters(seed: UInt64, epoch: Int, index: Int, side: Int) -> (dx: Double, dy: Double, angle: Double) {
        var rng = Xoshiro256(seed: seed, stream: 0x4155_474D ^ UInt64(epoch) << 32, index: UInt64(index))
        let dx = (2 * rng.nextDouble() - 1) * shift * Double(side)
        let dy = (2 * rng.nextDouble() - 1) * shift * Double(side)
        let angle = (2 * rng.nextDouble() - 1) * rotate * Double.pi / 180
        return (dx, dy, angle)
    }

    /// `target` (side, side) = `source` moved by (dx, dy) pixels and turned by `angle` about the centre: each target
    /// pixel samples the source bilinearly at the inverse-transformed position; outside the source reads 0. A whole-pixel
    /// shift copies pixels exactly, and the zero transform is the identity, bit for bit.
    public static func transform(_ source: UnsafePointer<Float>, into target: UnsafeMutablePointer<Float>, side: Int,
                                 dx: Double, dy: Double, angle: Double) {
        let c = Double(side - 1) / 2
        let cosine = cos(angle), sine = sin(angle)
        for y in 0..<side {
            for x in 0..<side {
                // Inverse map: undo the shift, then rotate by -angle about the centre.
                let u = Double(x) - dx - c, v = Double(y) - dy - c
                let sx = cosine * u + sine * v + c, sy = -sine * u + cosine * v + c
                let x0 = Int(sx.rounded(.down)), y0 = Int(sy.rounded(.down))
                let fx = Float(sx - Double(x0)), fy = Float(sy - Double(y0))
                func pixel(_ px: Int, _ py: Int) -> Float {
                    px >= 0 && px < side && py >= 0 && py < side ? source[py * side + px] : 0
                }
                let top = pixel(x0, y0) * (1 - fx) + pixel(x0 + 1, y0) * fx
                let bottom = pixel(x0, y0 + 1) * (1 - fx) + pixel(x0 + 1, y0 + 1) * fx
                target[y * side + x] = fy == 0 ? top : top * (1 - fy) + bottom * fy
            }
        }
    }
}
