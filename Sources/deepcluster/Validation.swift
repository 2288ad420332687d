// Checks of option values that need more than one flag or the machine: ranges that guard memory and time, each
// with a sentence that says what to do. Called from the commands' validate() (before any rank starts) and, for
// what depends on the data, right after loading it.
import ArgumentParser
import Clustering
import Datasets
import NN
import Report
import Tensor
import Training
import Foundation

/// `--lr -1` reads as two flags to the argument parser; `--lr=-1` does not. Joins an option and a following negative
/// number, so that the value reaches validation and gets its sentence there.
func joiningNegativeValues(_ arguments: [String]) -> [String] {
    var out: [String] = []
    var i = 0
    while i < arguments.count {
        let argument = arguments[i]
        if argument.hasPrefix("--"), !argument.contains("="), i + 1 < arguments.count,
           let next = arguments[i + 1].first, next == "-", arguments[i + 1].count > 1,
           Double(arguments[i + 1]) != nil || arguments[i + 1].lowercased() == "-inf" {
            out.append("\(argument)=\(arguments[i + 1])")
            i += 2
            continue
        }
        out.append(argument)
        i += 1
    }
    return out
}


/// Help texts of flags that several commands share, written once.
enum FlagHelp {
    static let precision = "Arithmetic of the autoencoder's matrix products: float32; bf16 (operands rounded to bfloat16, sums in float32, through oneDNN; needs AVX-512; faster than float32 with AMX and on AMD's AVX-512 BF16, slower on Intel's without AMX); or auto: bf16 where every rank's CPU multiplies bf16 faster than float32 (AMX, or AMD's AVX-512 BF16: README, Speed), else float32; a new run records what auto meant, so --resume keeps it. Weights, optimizer state and gradient sums stay float32. Default: \(Recipe.precision.rawValue)."
}

enum Limits {
    static let cores = ProcessInfo.processInfo.activeProcessorCount
    static let largestBatch = 1 << 20
    static let largestRestarts = 1000
    /// `--clusters auto:MAX`: each K of the sweep costs three mixture fits, so MAX bounds the choice's time.
    static let largestChosenClusters = 200
    static let largestPointsPerBlob = 1_000_000
    static let largestTSNEPoints = 10_000

    static func threads(_ threads: Int?) throws {
        guard let threads else { return }
        if threads < 1 { throw ValidationError("--threads must be at least 1 (got \(threads)).") }
        if threads > cores {
            throw ValidationError("--threads \(threads) exceeds the \(cores) cores of this machine; more threads than cores only slow a step down: use at most \(cores).")
        }
    }

    static func batch(_ batchSize: Int) throws {
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1 (got \(batchSize)).") }
        if batchSize > largestBatch {
            throw ValidationError("--batch-size \(batchSize) is beyond \(largestBatch); typical values are 64 to 1024.")
        }
    }

    static func restarts(_ restarts: Int) throws {
        if !(1...largestRestarts).contains(restarts) {
            throw ValidationError("--restarts must be between 1 and \(largestRestarts) (got \(restarts)); 10 to 20 is typical.")
        }
    }

    static func finite(_ value: Double, _ name: String, in range: ClosedRange<Double>, hint: String) throws {
        if !value.isFinite || !range.contains(value) { throw ValidationError("\(name) must be \(hint) (got \(value)).") }
    }

    static func positive(_ value: Float, _ name: String) throws {
        if !(value > 0) || !value.isFinite { throw ValidationError("\(name) must be a positive number (got \(value)).") }
    }

    /// What one rank holds for an autoencoder of `widths` at `rows` rows per step: parameters, gradients and two
    /// optimizer moments, the activations of every layer both ways, two gradient scratch buffers and the batch.
    static func bytesPerRank(widths: [Int], rows: Int) -> Double {
        let parameters = Double(Checkpoint.parameterCount(widths: widths) ?? Int.max)
        let activations = Double(rows) * Double(widths.dropFirst().reduce(0, +) + widths.dropLast().reduce(0, +))
        let scratch = 2 * Double(rows) * Double(widths.max()!) + 3 * Double(rows) * Double(widths[0])
        return 4 * (4 * parameters + activations + scratch)
    }

    /// Refuses a model and batch that would not fit in this machine's memory (before anything is allocated).
    static func memory(widths: [Int], batchSize: Int) throws {
        let need = bytesPerRank(widths: widths, rows: batchSize)
        let have = Double(ProcessInfo.processInfo.physicalMemory)
        if need > 0.8 * have {
            let widthText = widths.map(String.init).joined(separator: "-")
            throw ValidationError(String(format: "--widths %@ at --batch-size %d needs about %.1f GB per rank (parameters, gradients, optimizer state, activations); this machine has %.1f GB: choose narrower layers or a smaller batch.",
                                         widthText, batchSize, need / 1e9, have / 1e9))
        }
    }

    /// The augmentation to use: as given (on other data than square images the trainer refuses it); by default the
    /// recipe's for the data (none, with a note, where the samples are not square images).
    static func augmentation(_ text: String?, data: DataSet, rank: Int) throws -> Augmentation {
        if let text { return try Augmentation(parsing: text) }
        let chosen = Recipe.augmentation(for: data)
        if chosen != Recipe.augmentation, rank == 0 {
            let what = data.imageShape.map { "\($0.width)x\($0.height) images, not square ones" }
                ?? (data.isImage ? "\(data.dimension) values per sample, not square images" : "feature columns, not images")
            print("note: \(data.name) holds \(what): no augmentation")
        }
        return chosen
    }

    /// `--augment`'s text, checked before any rank starts.
    static func augmentation(_ text: String?) throws {
        guard let text else { return }
        do { _ = try Augmentation(parsing: text) } catch { throw ValidationError("\(error)") }
    }

    /// The global batch must fit the data: every step draws B distinct samples. Asked for explicitly, a larger one is
    /// an error; the default (`Recipe.batchSize`) shrinks to the data (with a note from rank 0).
    static func batch(_ given: Int?, samples: Int, rank: Int) throws -> Int {
        let batchSize = given ?? Recipe.batchSize
        guard batchSize > samples else { return batchSize }
        if given != nil {
            throw RunError("--batch-size \(batchSize) is larger than the \(samples) samples of the data: use at most \(samples)")
        }
        if rank == 0 { print("note: the data has \(samples) samples, fewer than the default batch of \(batchSize): batch \(samples)") }
        return samples
    }
}

/// `--widths` as given; when not given, the recipe's with the data's width first (784 for MNIST).
func dataWidths(_ text: String?, _ data: DataSet) throws -> [Int] {
    guard let text else { return [data.dimension] + Recipe.widths.dropFirst() }
    return try parseWidths(text)
}

/// The widths to check before the data is loaded: as given, or the recipe's.
func plannedWidths(_ text: String?) throws -> [Int] { try text.map(parseWidths) ?? Recipe.widths }

/// `epochs`: nil when the data's size will choose them (Recipe.pretrainEpochs(samples:) and the like).
func validateTraining(epochs: Int?, batchSize: Int?, lr: Float, prefix: String = "") throws {
    if let epochs, epochs <= 0 { throw ValidationError("--\(prefix)epochs must be positive (got \(epochs)).") }
    try Limits.batch(batchSize ?? Recipe.batchSize)
    if !(lr > 0) || !lr.isFinite { throw ValidationError("--\(prefix)lr must be a positive number (got \(lr)).") }
}

/// Every rank needs at least one row of each global batch.
func checkBatch(_ batchSize: Int?, ranks: Int) throws {
    if let batchSize, batchSize < ranks {
        throw RunError("--batch-size \(batchSize) is smaller than the \(ranks) ranks; every rank needs a row", everyRank: true)
    }
}

func parseWidths(_ text: String) throws -> [Int] {
    let parts = text.split(separator: "-", omittingEmptySubsequences: false).map { Int($0) }
    guard parts.count >= 2, parts.allSatisfy({ ($0 ?? 0) > 0 }) else {
        throw ValidationError("--widths must be positive integers joined by '-', e.g. 784-500-500-2000-10 (got \(text)).")
    }
    return parts.map { $0! }
}


/// `--clusters`: a number K, or `auto` / `auto:MAX`: chosen from the data (the least ICL of a Gaussian mixture over
/// K = 2 ... MAX on the UMAP layout; ClusterCount).
enum ClustersArgument: ExpressibleByArgument, Equatable {
    case count(Int)
    case auto(largest: Int)

    init?(argument: String) {
        let text = argument.trimmingCharacters(in: .whitespaces).lowercased()
        if let k = Int(text) {
            self = .count(k)
        } else if text == "auto" {
            self = .auto(largest: Recipe.largestClusters)
        } else if text.hasPrefix("auto:"), let largest = Int(text.dropFirst(5)) {
            self = .auto(largest: largest)
        } else {
            return nil
        }
    }

    static let help = "K, or auto (chosen from the data: the least ICL of a Gaussian mixture over K = 2 to \(Recipe.largestClusters) on the UMAP layout; README: When nobody knows K), or auto:MAX."

    func validate() throws {
        switch self {
        case .count(let k) where k < 2: throw ValidationError("--clusters must be at least 2 (got \(k)).")
        case .auto(let largest) where !(2...Limits.largestChosenClusters).contains(largest):
            throw ValidationError("--clusters auto:MAX needs MAX between 2 and \(Limits.largestChosenClusters) (got \(largest)).")
        default: break
        }
    }

    /// K as given, or the choice's settings; without --clusters, the labels' class count, or (no labels) auto with a note.
    static func resolve(_ argument: ClustersArgument?, data: DataSet, seed: UInt64) throws -> (clusters: Int, choose: ClusterCountOptions?, note: String?) {
        switch argument {
        case .count(let k)?:
            try checkClusters(k, samples: data.count)
            return (k, nil, nil)
        case .auto(let largest)?:
            try checkChoice(samples: data.count)
            return (0, Recipe.clusterCount(largest: largest, seed: seed), nil)
        case nil where data.hasLabels:
            try checkClusters(data.classCount, samples: data.count)
            return (data.classCount, nil, nil)
        case nil:
            try checkChoice(samples: data.count)
            return (0, Recipe.clusterCount(seed: seed),
                    "note: \(data.name) has no labels and no --clusters was given: K is chosen from the data (--clusters auto); give --clusters K to fix it")
        }
    }

    static func checkChoice(samples: Int) throws {
        if samples < 20 { throw RunError("--clusters auto needs at least 20 samples (the data has \(samples)): give --clusters K") }
    }
}
