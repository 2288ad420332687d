// DataSet: samples as UInt8 (N, D) (images: MNIST-layout directories, the embedded 10k test set, uint8 .npy) or as
// Float (N, D) already normalised (.npy of other types, CSV), with labels when there are any.
// Normalised copies of bytes are made on demand; the bytes stay the one source. Under mpirun the samples may live in
// memory that the ranks of a host share (`Samples`; loaded once per host).
import Foundation
import Tensor

public enum Normalization: String, Sendable, CaseIterable {
    /// Pixels / 255, in [0, 1] (as DEC does).
    case unit
    /// Per-feature mean 0 and standard deviation 1 (as the report does); constant features become 0.
    case zscore
}

public enum Split: String, Sendable, CaseIterable { case train, test, all }

public struct DataSet: Sendable {
    public var name: String
    public var images: Samples<UInt8>      // (N, D); empty when the samples are `features`
    /// (N, D) Float samples, already normalised (`inputTransform` made them from the file's values); empty for bytes.
    public var features: Samples<Float> = []
    /// (N) class indices 0..<classCount; all 0 when `hasLabels` is false.
    public var labels: [Int32]
    public var count: Int
    public var dimension: Int
    public var classCount: Int
    public var hasLabels = true
    /// The labels as the file wrote them, by class index (empty: the indices themselves).
    public var classNames: [String] = []
    /// Samples are images (pixels that augmentation may move), not columns of features.
    public var isImage = true
    /// Width, height and channels of image samples when the source says (a folder of images: channels stored one
    /// plane after another); nil: square grey images when `dimension` is a square, else unknown.
    public var imageShape: ImageShape? = nil
    /// Each sample's name (an image's path relative to the folder), empty when samples are rows of one file.
    public var sampleNames: [String] = []
    /// How `features` came from the file's values: (value - shift) * scale per dimension; a model keeps it so that
    /// `predict` treats new data the same way. Nil for bytes (pixels / 255 at gather time).
    public var inputTransform: FeatureTransform? = nil
    /// What loading chose (label column, normalisation), for rank 0 to print.
    public var notes: [String] = []

    public init(name: String, images: [UInt8], labels: [Int32], dimension: Int, classCount: Int) {
        precondition(images.count == labels.count * dimension)
        self.name = name
        self.images = Samples(images)
        self.labels = labels
        self.count = labels.count
        self.dimension = dimension
        self.classCount = classCount
    }

    /// Float samples (N, D), already normalised by `transform`.
    public init(name: String, features: [Float], labels: [Int32], dimension: Int, classCount: Int, transform: FeatureTransform?) {
        precondition(features.count == labels.count * dimension)
        self.name = name
        self.images = []
        self.features = Samples(features)
        self.labels = labels
        self.count = labels.count
        self.dimension = dimension
        self.classCount = classCount
        self.inputTransform = transform
    }

    public var isFloat: Bool { images.isEmpty && !features.isEmpty }

    /// The first `limit` samples.
    public func prefix(_ limit: Int) -> DataSet {
        let n = min(limit, count)
        var copy = self
        if isFloat { copy.features = Samples(Array(features[0..<(n * dimension)])) } else { copy.images = Samples(Array(images[0..<(n * dimension)])) }
        copy.labels = Array(labels[0..<n])
        if !sampleNames.isEmpty { copy.sampleNames = Array(sampleNames[0..<n]) }
        copy.count = n
        return copy
    }

    /// `count` samples spread evenly over the set (sample i * N / count), in order: a share that a set sorted by
    /// class (an image folder) still holds every class of.
    public func evenlySpaced(_ count: Int) -> DataSet {
        guard count < self.count else { return self }
        let n = self.count, d = dimension, picked = (0..<count).map { $0 * n / count }
        var copy = self
        if isFloat { copy.features = Samples(picked.flatMap { features[($0 * d)..<(($0 + 1) * d)] }) }
        else { copy.images = Samples(picked.flatMap { images[($0 * d)..<(($0 + 1) * d)] }) }
        copy.labels = picked.map { labels[$0] }
        if !sampleNames.isEmpty { copy.sampleNames = picked.map { sampleNames[$0] } }
        copy.count = count
        return copy
    }

    /// The label of sample i as the file wrote it.
    public func labelName(_ i: Int) -> String {
        let c = Int(labels[i])
        return c < classNames.count ? classNames[c] : String(c)
    }

    /// The samples as Float (N, D) under `normalization` (Float samples are already normalised: returned as they are).
    public func floats(_ normalization: Normalization) -> [Float] {
        if isFloat { return features.array }
        switch normalization {
        case .unit:
            return images.map { Float($0) * (1 / 255) }
        case .zscore:
            let (mean, invStd) = featureMoments()
            var out = [Float](repeating: 0, count: images.count)
            for i in 0..<count {
                for d in 0..<dimension {
                    out[i * dimension + d] = (Float(images[i * dimension + d]) - mean[d]) * invStd[d]
                }
            }
            return out
        }
    }

    /// `body` on the samples as `floats(normalization)` has them: Float samples where they lie (an array of this
    /// process's or the host's shared block: no copy), bytes as a Float copy.
    public func withFloats<R>(_ normalization: Normalization, _ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        if isFloat { return try features.withUnsafeBufferPointer(body) }
        return try floats(normalization).withUnsafeBufferPointer(body)
    }

    /// Rows `range` as `floats(.unit)` has them, written to `out` (range.count, D): a share of the samples as Float
    /// without the whole copy.
    public func unitRows(_ range: Range<Int>, into out: UnsafeMutablePointer<Float>) {
        let d = dimension, first = range.lowerBound * d, count = range.count * d
        if isFloat {
            features.withUnsafeBufferPointer { out.update(from: $0.baseAddress! + first, count: count) }
        } else {
            images.withUnsafeBufferPointer { bytes in for i in 0..<count { out[i] = Float(bytes[first + i]) * (1 / 255) } }
        }
    }

    /// Per-feature mean and 1/std (0 for constant features, which z-score to 0).
    public func featureMoments() -> (mean: [Float], invStd: [Float]) {
        var sum = [Double](repeating: 0, count: dimension)
        var sumSq = [Double](repeating: 0, count: dimension)
        for i in 0..<count {
            for d in 0..<dimension {
                let x = isFloat ? Double(features[i * dimension + d]) : Double(images[i * dimension + d])
                sum[d] += x
                sumSq[d] += x * x
            }
        }
        let n = Double(max(count, 1))
        var mean = [Float](repeating: 0, count: dimension)
        var invStd = [Float](repeating: 0, count: dimension)
        for d in 0..<dimension {
            let m = sum[d] / n
            let variance = max(sumSq[d] / n - m * m, 0)
            mean[d] = Float(m)
            invStd[d] = variance > 1e-12 ? Float(1 / variance.squareRoot()) : 0
        }
        return (mean, invStd)
    }

    // MARK: - Loading

    /// Pairs an image file and a label file, checking that their headers agree; with `limit`, reads only the first
    /// `limit` images and labels.
    public static func load(images imagePath: String, labels labelPath: String, classCount: Int = 10,
                            name: String? = nil, limit: Int? = nil) throws -> DataSet {
        let imageCount = try IDXArray.header(imagePath, expectedRank: 3)[0]
        let labelCount = try IDXArray.header(labelPath, expectedRank: 1)[0]
        guard imageCount == labelCount else {
            throw DataError(imagePath, "has \(imageCount) images but \(labelPath) has \(labelCount) labels")
        }
        let images = try IDXArray.read(imagePath, expectedRank: 3, limit: limit)
        let labels = try IDXArray.read(labelPath, expectedRank: 1, limit: limit)
        if let bad = labels.bytes.firstIndex(where: { Int($0) >= classCount }) {
            throw DataError(labelPath, "label \(labels.bytes[bad]) at index \(bad) is outside 0...\(classCount - 1)")
        }
        return DataSet(name: name ?? URL(fileURLWithPath: imagePath).lastPathComponent, images: images.bytes,
                       labels: labels.bytes.map { Int32($0) }, dimension: images.itemSize, classCount: classCount)
    }

    /// Files of one split in an MNIST-layout directory (`train-images-idx3-ubyte[.gz]` and so on).
    static func splitFiles(directory: String, prefix: String) throws -> (String, String) {
        func find(_ stem: String) throws -> String {
            for candidate in ["\(directory)/\(stem).gz", "\(directory)/\(stem)"]
            where FileManager.default.fileExists(atPath: candidate) { return candidate }
            throw DataError("\(directory)/\(stem)[.gz]", "file not found (expected the MNIST layout)")
        }
        return (try find("\(prefix)-images-idx3-ubyte"), try find("\(prefix)-labels-idx1-ubyte"))
    }

    /// A directory in the MNIST layout (MNIST, Fashion-MNIST): train, test or both, then the first `limit`.
    public static func load(directory: String, split: Split, limit: Int?) throws -> DataSet {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) else {
            throw DataError(directory, "data directory not found")
        }
        guard isDirectory.boolValue else {
            throw DataError(directory, "is a file; --data takes a directory in the MNIST layout (t10k-images-idx3-ubyte[.gz], ...)")
        }
        let name = URL(fileURLWithPath: directory).lastPathComponent
        var parts = [DataSet]()
        var left = limit
        for prefix in split == .all ? ["train", "t10k"] : [split == .train ? "train" : "t10k"] where left ?? 1 > 0 {
            let (images, labels) = try splitFiles(directory: directory, prefix: prefix)
            parts.append(try load(images: images, labels: labels, name: "\(name)/\(prefix)", limit: left))
            left = left.map { $0 - parts.last!.count }
        }
        var data = parts[0]
        if parts.count == 2 {
            guard parts[0].dimension == parts[1].dimension else {
                throw DataError(directory, "train and test images differ in size")
            }
            data = DataSet(name: "\(name)/all", images: parts[0].images.array + parts[1].images.array,
                           labels: parts[0].labels + parts[1].labels, dimension: parts[0].dimension, classCount: 10)
        }
        return data
    }

    /// The 10,000-image MNIST test set shipped inside the package.
    public static func embeddedMNIST(limit: Int? = nil) throws -> DataSet {
        guard let images = Bundle.module.path(forResource: "t10k-images-idx3-ubyte", ofType: "gz", inDirectory: "Resources"),
              let labels = Bundle.module.path(forResource: "t10k-labels-idx1-ubyte", ofType: "gz", inDirectory: "Resources")
        else { throw DataError("embedded MNIST", "resource missing from the package bundle") }
        return try load(images: images, labels: labels, name: "MNIST t10k (embedded)", limit: limit)
    }
}
