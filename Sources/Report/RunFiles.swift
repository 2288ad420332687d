// The files a run directory holds, as types: `RunRecord`, one line of metrics.jsonl, which training writes and
// reports read; `RunManifest`, command.json; and `AtomicFile`, the one way every file of a run is written.
import Clustering
import Datasets
import Foundation
import Tensor

/// One line of metrics.jsonl: a phase's epoch (pretrain, dec, idec, dkm, softmax, free), or an event (kmeans,
/// kmeans-embedding, tsne, final, warning). Each phase fills what it has; absent fields are left out of the line,
/// and so is a quantity that is not a number (JSON has no NaN: a score without labels).
public struct RunRecord: Codable, Sendable, Equatable {
    public var phase: String
    public var method: String?
    /// Epochs done: whole in pretraining; in fine-tuning steps / batches per epoch (a target update may fall
    /// inside an epoch).
    public var epoch: Double?
    public var step: Int?
    public var loss: Double?
    public var reconstructionLoss: Double?
    public var acc: Double?
    public var nmi: Double?
    public var ari: Double?
    public var labelChange: Double?
    public var alpha: Double?
    public var inertia: Double?
    public var nonemptyClusters: Int?
    public var seconds: Double?
    /// Of `seconds`, the time inside training steps (the rest: shuffling, target passes, checkpoints, records).
    public var stepSeconds: Double?
    public var samplesPerS: Double?
    /// Share of the step time spent waiting on (or doing) the gradient reduction.
    public var commShare: Double?
    public var pretrainSeconds: Double?
    public var finetuneSeconds: Double?
    public var totalSeconds: Double?
    public var ranks: Int?
    public var collapsedClusters: [Int]?
    public var sizes: [Int]?
    public var maps: Int?
    public var points: Int?
    /// The guard (the final record): which result the run kept, why, and the criterion's values (neighbour information).
    public var kept: String?
    public var reason: String?
    public var startAgreement: Double?
    public var finetunedAgreement: Double?
    /// The final record: the start's, the fine-tuned model's and k-means on the input's ACC beside the kept one.
    public var startAcc: Double?
    public var finetunedAcc: Double?
    public var kmeansInputAcc: Double?
    /// The number of clusters: chosen (the `clusters` record of `--clusters auto`), or in the final record the run's
    /// after any pruning; with the choice, every K tried and its ICL per point (lower is better).
    public var clusters: Int?
    public var clustersTried: [Int]?
    public var icl: [Double]?
    /// The choice of K: seconds of the UMAP layout it chose on (which the N2D start then reuses).
    public var layoutSeconds: Double?
    /// Clusters that held no sample at the end of fine-tuning and were dropped (their numbers before the drop).
    public var prunedClusters: [Int]?
    /// N2D: seconds of each stage (neighbours, graph, layout, kmeans, mixture).
    public var stageSeconds: [String: Double]?
    /// The largest peak resident memory of any rank, MB.
    public var peakMemoryMB: Double?
    /// On several ranks: the largest peak proportional set size of any rank (shared pages split), MB, sampled.
    public var peakProportionalMB: Double?
    /// On several ranks: the sum of every rank's peak proportional set size, MB (a bound on what they held at any one time).
    public var peakProportionalSumMB: Double?
    /// Seconds the data took to load (read, decode, normalise), before the run's clock started.
    public var loadSeconds: Double?

    public init(phase: String) { self.phase = phase }

    enum CodingKeys: String, CodingKey {
        case phase, method, epoch, step, loss, acc, nmi, ari, alpha, inertia, seconds, ranks, sizes, maps, points
        case reconstructionLoss = "reconstruction_loss", labelChange = "label_change", nonemptyClusters = "nonempty_clusters"
        case samplesPerS = "samples_per_s", commShare = "comm_share", pretrainSeconds = "pretrain_seconds"
        case finetuneSeconds = "finetune_seconds", totalSeconds = "total_seconds", collapsedClusters = "collapsed_clusters"
        case kept, reason, startAgreement = "start_agreement", finetunedAgreement = "finetuned_agreement", startAcc = "start_acc"
        case finetunedAcc = "finetuned_acc", kmeansInputAcc = "kmeans_input_acc"
        case clusters, clustersTried = "clusters_tried", icl, prunedClusters = "pruned_clusters", layoutSeconds = "layout_seconds"
        case stageSeconds = "stage_seconds", peakMemoryMB = "peak_memory_mb", stepSeconds = "step_seconds"
        case peakProportionalMB = "peak_pss_mb", peakProportionalSumMB = "peak_pss_sum_mb"
        case loadSeconds = "load_seconds"
    }

    /// The fine-tuning epoch this record marks when it falls on a whole epoch (snapshots are taken at whole epochs).
    public var wholeEpoch: Int? { epoch.flatMap { Int(exactly: $0) } }

    public mutating func setScores(accuracy: Double, nmi: Double, ari: Double) {
        acc = accuracy
        self.nmi = nmi
        self.ari = ari
    }

    /// One line of JSON (sorted keys, no newline); quantities that are not finite are left out.
    public func jsonLine() throws -> Data {
        var copy = self
        for path in [\RunRecord.epoch, \.loss, \.reconstructionLoss, \.acc, \.nmi, \.ari, \.labelChange, \.alpha, \.inertia,
                     \.seconds, \.samplesPerS, \.commShare, \.pretrainSeconds, \.finetuneSeconds, \.totalSeconds,
                     \.startAgreement, \.finetunedAgreement, \.startAcc, \.finetunedAcc, \.kmeansInputAcc, \.layoutSeconds]
            where !(copy[keyPath: path]?.isFinite ?? true) {
            copy[keyPath: path] = nil
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return try encoder.encode(copy)
    }

    /// Every field present, by its name in the file, formatted for a table.
    public var fields: [(name: String, value: String)] {
        guard let data = try? jsonLine(), let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else { return [] }
        return object.keys.sorted().map { ($0, RunRecord.text(object[$0]!)) }
    }

    /// A number as a table shows it: integers whole, others to 4 significant digits.
    public static func text(_ value: Any) -> String {
        switch value {
        case let d as Double where d.rounded() != d || abs(d) < 1e15: return d.rounded() == d ? String(Int(d)) : String(format: "%.4g", d)
        case let n as NSNumber: return n.stringValue
        case let list as [Any]: return list.map { text($0) }.joined(separator: ", ")
        default: return "\(value)"
        }
    }

    /// The complete records of a metrics.jsonl (a line cut short by a kill, or not a record, is skipped).
    public static func read(_ path: String) -> [RunRecord] {
        let decoder = JSONDecoder()
        return RunFiles.completeLines(path).compactMap { try? decoder.decode(RunRecord.self, from: Data($0.utf8)) }
    }
}

public enum RunFiles {
    /// The lines of a file that end with a newline: the last, unterminated one may have been cut short by a kill.
    public static func completeLines(_ path: String) -> [String] {
        guard let data = FileManager.default.contents(atPath: path) else { return [] }
        var lines = String(decoding: data, as: UTF8.self).components(separatedBy: "\n")
        lines.removeLast()  // after the last newline: empty, or a line cut short by a kill
        return lines
    }
}

/// Every file of a run is written this way: temporary file, fsync, (optionally the previous file kept as `.prev`),
/// rename, fsync of the directory. At every instant the name holds a complete file.
public enum AtomicFile {
    public static func write(_ bytes: [UInt8], to path: String, keepPrevious: Bool = false) throws {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw RunError("\(path): cannot write: \(String(cString: strerror(errno)))") }
        var written = 0
        let ok = bytes.withUnsafeBytes { raw -> Bool in
            while written < raw.count {
                let n = Foundation.write(fd, raw.baseAddress! + written, raw.count - written)
                if n <= 0 { return false }
                written += n
            }
            return fsync(fd) == 0
        }
        close(fd)
        guard ok else {
            unlink(temporary)
            throw RunError("\(path): write failed: \(String(cString: strerror(errno)))")
        }
        // The previous file becomes `.prev` through a hard link and a rename, and the new one replaces it by a rename:
        // at every instant both names hold a complete file (an interrupt between two renames once left neither).
        if keepPrevious && FileManager.default.fileExists(atPath: path) {
            let link = path + ".prev.tmp"
            unlink(link)
            if Foundation.link(path, link) == 0 { _ = Foundation.rename(link, path + ".prev") }
        }
        guard Foundation.rename(temporary, path) == 0 else {
            throw RunError("\(path): rename failed: \(String(cString: strerror(errno)))")
        }
        let parent = (path as NSString).deletingLastPathComponent
        let directory = open(parent.isEmpty ? "." : parent, O_RDONLY)
        if directory >= 0 { fsync(directory); close(directory) }
    }

    public static func write(_ text: String, to path: String) throws { try write(Array(text.utf8), to: path) }
}

/// What a training run was started with, kept in its directory as command.json so that `--resume` continues
/// it with exactly the same configuration.
public struct RunManifest: Sendable, Codable {
    public static let fileName = "command.json"
    public var command: String
    /// The command's arguments, less those that only steer one invocation (--out, --resume, --threads, ...).
    public var arguments: [String]
    /// Options changed by `--resume DIR --lr ...` (applied over `arguments`; not part of `hash`).
    public var overrides: [String]?

    public init(command: String, arguments: [String]) {
        self.command = command
        self.arguments = arguments
    }

    /// Identifies the configuration; checkpoints carry it, and a resumed run checks it.
    public var hash: String { String(fnv1a(Array(([command] + arguments).joined(separator: "\u{1}").utf8)), radix: 16) }

    public func write(to directory: String) throws {
        try AtomicFile.write(try encoded(), to: directory + "/" + RunManifest.fileName)
    }

    public func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return [UInt8](try encoder.encode(self))
    }

    public static func read(from directory: String) throws -> RunManifest {
        let path = directory + "/" + fileName
        guard let data = FileManager.default.contents(atPath: path) else {
            throw RunError("\(directory) holds no run to resume (no \(fileName)); pass the directory of a pretrain or dec run")
        }
        do { return try JSONDecoder().decode(RunManifest.self, from: data) } catch {
            throw RunError("\(path) is damaged: \(error.localizedDescription)")
        }
    }
}

/// FNV-1a, 64 bits: the hash of configurations and of parameter bit patterns.
public func fnv1a(_ bytes: [UInt8]) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in bytes { hash = (hash ^ UInt64(b)) &* 0x100_0000_01b3 }
    return hash
}
