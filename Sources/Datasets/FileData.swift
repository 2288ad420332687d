// Users' own data: a .npy or CSV file (labels inside, in a file of their own, or none), normalised by kind:
// images (uint8, or arrays of N x H x W) to [0, 1], features (columns) standardised, unless asked otherwise.
import Foundation
import Tensor

public enum InputNormalization: String, Sendable, CaseIterable {
    /// Images to [0, 1] (uint8 by 255, whatever their largest value: a note names a small one), features standardised.
    case auto
    /// uint8 / 255; other values (value - min) / (max - min) over the whole array.
    case unit
    /// Each feature to mean 0 and standard deviation 1 (constant features become 0).
    case zscore
    /// The values as they are.
    case none
}

extension DataSet {
    /// The file kinds `load(file:)` reads, by extension.
    public static let fileExtensions = ["npy", "csv", "tsv", "txt"]

    /// A .npy or CSV file of samples; labels from `labelPath` (.npy or one label per line), or from a CSV column,
    /// or none. The first `limit` samples, normalised by `normalization` (over those samples).
    public static func load(file path: String, labels labelPath: String? = nil, labelColumn: CSVTable.LabelColumn = .automatic,
                            normalization: InputNormalization? = .auto, limit: Int? = nil) throws -> DataSet {
        let name = URL(fileURLWithPath: path).lastPathComponent
        let suffix = URL(fileURLWithPath: path).pathExtension.lowercased()
        var data: DataSet
        var labelTexts: [String]? = nil
        var notes: [String] = []
        var bytes = false
        switch suffix {
        case "npy":
            let array = try NumPyArray.read(path)
            guard array.shape.count >= 2, array.shape[0] >= 2 else {
                throw DataError(path, "shape \(array.shape): expected (samples, features) or (samples, height, width)")
            }
            let n = array.shape[0], d = array.shape.dropFirst().reduce(1, *)
            guard d >= 1 else { throw DataError(path, "shape \(array.shape) holds no values per sample") }
            let zeros = [Int32](repeating: 0, count: n)
            switch array.values {
            case .bytes(let bytes): data = DataSet(name: name, images: bytes, labels: zeros, dimension: d, classCount: 1)
            case .integers(let values):
                data = DataSet(name: name, features: values.map(Float.init), labels: zeros, dimension: d, classCount: 1, transform: nil)
            case .floats(let values):
                if let bad = values.firstIndex(where: { !$0.isFinite }) {
                    throw DataError(path, "value \(values[bad]) at sample \(bad / d), feature \(bad % d): NaN and infinities are not supported")
                }
                data = DataSet(name: name, features: values, labels: zeros, dimension: d, classCount: 1, transform: nil)
            }
            if case .bytes = array.values { bytes = true }
            data.isImage = array.shape.count == 3 || array.shape.count == 4 && (array.shape[1] == 1 || array.shape[3] == 1)
                || array.shape.count == 2 && bytes && Augmentation.imageSide(of: d) != nil
        case "csv", "tsv", "txt":
            if labelPath != nil && labelColumn != .automatic && labelColumn != .none {
                throw DataError(path, "labels come either from --labels or from --label-column, not both")
            }
            let table = try CSVTable.read(path, labelColumn: labelPath != nil ? .none : labelColumn)
            data = DataSet(name: name, features: table.features, labels: [Int32](repeating: 0, count: table.count),
                           dimension: table.dimension, classCount: 1, transform: nil)
            data.isImage = false
            labelTexts = table.labels
            if let column = table.labelColumnName { notes.append("labels from \(column) of \(name)") }
            else if labelPath == nil { notes.append("\(name) has no label column: no ACC/NMI/ARI (name one with --label-column)") }
        default:
            throw DataError(path, "--data takes a directory in the MNIST layout, or a .npy or .csv file (this one ends in '.\(suffix)')")
        }
        if let labelPath { labelTexts = try readLabels(labelPath, count: data.count) }
        if let labelTexts {
            guard labelTexts.count == data.count else {
                throw DataError(labelPath ?? path, "\(labelTexts.count) labels for \(data.count) samples")
            }
            let set = LabelSet(labelTexts)
            data.labels = set.indices
            data.classCount = set.names.count
            data.classNames = set.names
            data.hasLabels = true
        } else {
            data.hasLabels = false
        }
        if let limit { data = data.prefix(limit) }
        if let normalization { data = data.normalized(normalization) }  // nil: as read (predict applies the model's)
        if data.isFloat, normalization == .auto {
            notes.append("\(name): \(data.count) x \(data.dimension) \(data.isImage ? "image values scaled to [0, 1]" : "features standardised (mean 0, std 1)")")
        }
        if bytes, normalization == .auto, let high = data.images.max(), high < UInt8.max / 2 {
            // Measured on 8x8 digits stored as 0-16 (seeds 0, 1): N2D start 0.867 / 0.870 divided by 255, 0.789 / 0.801
            // scaled by their largest value. So 255 stays, and the run says so.
            notes.append("\(name): uint8 values up to \(high), divided by 255 as images are (in [0, \(String(format: "%.3f", Double(high) / 255))]); "
                         + "--normalize zscore standardises each pixel instead")
        }
        data.notes = notes
        return data
    }

    /// Labels, one per sample: a .npy of integers, or text with one label per line (a first line that names the
    /// column is skipped when the others are numbers).
    static func readLabels(_ path: String, count: Int) throws -> [String] {
        if path.lowercased().hasSuffix(".npy") {
            let array = try NumPyArray.read(path)
            guard array.shape.count == 1 || array.shape.count == 2 && array.shape[1] == 1 else {
                throw DataError(path, "shape \(array.shape): labels are one value per sample")
            }
            switch array.values {
            case .bytes(let b): return b.map { String($0) }
            case .integers(let v): return v.map { String($0) }
            case .floats(let v):
                guard v.allSatisfy({ $0 == $0.rounded() && abs($0) < 1e9 }) else {
                    throw DataError(path, "labels must be integers (this array holds fractions)")
                }
                return v.map { String(Int($0)) }
            }
        }
        guard let data = FileManager.default.contents(atPath: path) else { throw DataError(path, "file not found") }
        var lines = String(decoding: data, as: UTF8.self).split(whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" })
            .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.filter { !$0.isEmpty }
        if lines.count == count + 1, Int(lines[0]) == nil, lines.dropFirst().allSatisfy({ Int($0) != nil }) { lines.removeFirst() }
        if lines.count == count + 1, lines.count >= 2, CSVTable.labelNames.contains(lines[0].lowercased()) { lines.removeFirst() }
        return lines.map { $0.hasPrefix("\"") && $0.hasSuffix("\"") && $0.count >= 2 ? String($0.dropFirst().dropLast()) : $0 }
    }

    /// Normalised as `mode` asks (bytes stay bytes for auto and unit: pixels / 255 at gather time).
    public func normalized(_ mode: InputNormalization) -> DataSet {
        if !isFloat && (mode == .auto || mode == .unit) { return self }
        let raw = isFloat ? features.array : images.map(Float.init)
        let d = dimension
        var shift = [Float](repeating: 0, count: d), scale = [Float](repeating: 1, count: d)
        switch mode {
        case .none: break
        case .unit, .auto where isImage:
            let low = raw.min() ?? 0, high = raw.max() ?? 1
            if !isFloat { scale = [Float](repeating: 1 / 255, count: d) }
            else if low >= 0 && high <= 1 { break }
            else { shift = [Float](repeating: low, count: d); scale = [Float](repeating: high > low ? 1 / (high - low) : 1, count: d) }
        case .zscore, .auto:
            var copy = self
            copy.features = Samples(raw)
            copy.images = []
            (shift, scale) = copy.featureMoments()
        }
        return applying(FeatureTransform(shift: shift, scale: scale), to: raw)
    }

    /// The file's values (`raw`, N x D) under `transform` (a model's, for new data).
    public func applying(_ transform: FeatureTransform, to raw: [Float]? = nil) -> DataSet {
        let values = raw ?? (isFloat ? features.array : images.map(Float.init))
        let d = dimension
        var out = [Float](repeating: 0, count: values.count)
        for i in 0..<count {
            for k in 0..<d { out[i * d + k] = (values[i * d + k] - transform.shift[k]) * transform.scale[k] }
        }
        var copy = self
        copy.images = []
        copy.features = Samples(out)
        copy.inputTransform = transform
        return copy
    }
}
