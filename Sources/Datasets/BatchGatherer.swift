// BatchGatherer: copies a batch's rows out of the UInt8 images into Float buffers, normalising on the way
// (the conversion is fused into the gather), and optionally masking inputs for denoising pretraining.
// B = batch rows, D = input dims. Buffers sized once.
import Foundation
import Tensor

public struct FeatureTransform: Sendable {
    public let shift: [Float]   // (D)
    public let scale: [Float]   // (D)

    public init(shift: [Float], scale: [Float]) {
        self.shift = shift
        self.scale = scale
    }

    public init(data: DataSet, normalization: Normalization) {
        switch normalization {
        case .unit:
            shift = [Float](repeating: 0, count: data.dimension)
            scale = [Float](repeating: 1 / 255, count: data.dimension)
        case .zscore:
            let (mean, invStd) = data.featureMoments()
            shift = mean
            scale = invStd
        }
    }
}

public final class BatchGatherer {
    public let dims: Int
    public let maxRows: Int
    public let transform: FeatureTransform
    public let clean: UnsafeMutablePointer<Float>   // (B, D): the target
    public let noisy: UnsafeMutablePointer<Float>   // (B, D): the masked input (when masking)
    public let scratch: UnsafeMutablePointer<Float> // (B, D): free for a loss gradient
    public let augmented: UnsafeMutablePointer<Float> // (B, D): `clean` under each sample's affine transform
    let transforms: UnsafeMutablePointer<Double>     // (B, 4): each row's shift, cosine and sine

    public init(dims: Int, maxRows: Int, transform: FeatureTransform) {
        self.dims = dims
        self.maxRows = maxRows
        self.transform = transform
        clean = .allocate(capacity: max(maxRows * dims, 1))
        noisy = .allocate(capacity: max(maxRows * dims, 1))
        scratch = .allocate(capacity: max(maxRows * dims, 1))
        augmented = .allocate(capacity: max(maxRows * dims, 1))
        transforms = .allocate(capacity: max(maxRows * 4, 4))
    }

    deinit {
        clean.deallocate()
        noisy.deallocate()
        scratch.deallocate()
        augmented.deallocate()
        transforms.deallocate()
    }

    /// Gathers rows `indices` of `data` into `clean`.
    public func gather(_ data: DataSet, indices: ArraySlice<Int32>) {
        precondition(indices.count <= maxRows)
        if data.isFloat {  // already normalised
            data.features.withUnsafeBufferPointer { features in
                for (r, index) in indices.enumerated() {
                    (clean + r * dims).update(from: features.baseAddress! + Int(index) * dims, count: dims)
                }
            }
            return
        }
        data.images.withUnsafeBufferPointer { images in
            transform.shift.withUnsafeBufferPointer { shift in
                transform.scale.withUnsafeBufferPointer { scale in
                    var r = 0
                    for index in indices {
                        let source = images.baseAddress! + Int(index) * dims
                        let target = clean + r * dims
                        for d in 0..<dims { target[d] = (Float(source[d]) - shift[d]) * scale[d] }
                        r += 1
                    }
                }
            }
        }
    }

    /// Writes `noisy` = `source` (default `clean`) with each input zeroed with probability `rate`. The mask of a
    /// sample depends only on (seed, epoch, sample index), so it is the same whichever rank draws it.
    public func mask(rate: Float, seed: UInt64, epoch: Int, indices: ArraySlice<Int32>, from input: UnsafePointer<Float>? = nil) {
        let from = input ?? UnsafePointer(clean)
        var r = 0
        for index in indices {
            var rng = Xoshiro256(seed: seed, stream: 0x4D41534B ^ UInt64(epoch) << 32, index: UInt64(index))
            let source = from + r * dims, target = noisy + r * dims
            for d in 0..<dims { target[d] = rng.nextUnit() < rate ? 0 : source[d] }
            r += 1
        }
    }
}

extension BatchGatherer {
    /// The batch a step trains on: `clean`, or `augmented` after writing it (none: nothing is computed).
    public func input(_ augmentation: Augmentation, seed: UInt64, epoch: Int, indices: ArraySlice<Int32>) -> UnsafePointer<Float> {
        guard !augmentation.isNone else { return UnsafePointer(clean) }
        augment(augmentation, seed: seed, epoch: epoch, indices: indices)
        return UnsafePointer(augmented)
    }

    /// Writes `augmented` = each row of `clean` under its sample's transform, drawn from (seed, epoch, sample index):
    /// the transforms here, the pixels by CKernels on the rank's threads (the same bits as `Augmentation.transform`,
    /// whatever the split). Colour: every plane under the sample's one transform.
    public func augment(_ augmentation: Augmentation, seed: UInt64, epoch: Int, indices: ArraySlice<Int32>) {
        guard let (side, planes) = Augmentation.imageLayout(of: dims) else { preconditionFailure("augmentation needs square images") }
        precondition(indices.count <= maxRows)
        var r = 0
        for index in indices {
            let t = augmentation.parameters(seed: seed, epoch: epoch, index: Int(index), side: side)
            transforms[4 * r] = t.dx
            transforms[4 * r + 1] = t.dy
            transforms[4 * r + 2] = cos(t.angle)
            transforms[4 * r + 3] = sin(t.angle)
            r += 1
        }
        // A pixel costs about as much as 16 elementwise passes' elements: the threads wake for a batch of a few rows.
        Kernels.affineBilinear(clean, into: augmented, rows: r, side: side, planes: planes, transforms: transforms,
                               parts: Parallel.parts(work: r * dims * 16, count: r))
    }
}
