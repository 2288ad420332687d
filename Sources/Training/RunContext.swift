// RunContext: what every pipeline shares: the communicator, the run directory, printing and metrics from
// rank 0 only, and the configuration check that all ranks run before their first collective.
import Clustering
import Collective
import Datasets
import Foundation
import NN
import Report
import Tensor


public final class RunContext {
    public let communicator: Communicator
    public let directory: String
    public let quiet: Bool
    private var metricsHandle: FileHandle?
    /// machine.json of a resumed run, held back until the resume has loaded its checkpoint: a resume that fails
    /// leaves the directory exactly as it was.
    private var pendingFiles: [(name: String, bytes: [UInt8])] = []
    /// Complete lines in metrics.jsonl; a checkpoint stores it so that a resumed run can drop what came after.
    public private(set) var metricsLines = 0
    public let startTime = Clock.now
    /// The manifest's hash for training runs: written into every checkpoint and checked on resume.
    public let configHash: String
    public let resuming: Bool
    /// Epochs this invocation may still train (`--stop-after-epochs`); nil = no limit.
    public var epochBudget: Int?

    public var rank: Int { communicator.rank }
    public var ranks: Int { communicator.size }
    public var isRoot: Bool { communicator.rank == 0 }

    /// How a command uses its run directory.
    public enum Mode: Sendable {
        /// Scratch output (predict, bench, tests): no manifest.
        case scratch
        /// A new training run: the directory must not hold one already; `manifest` is written into it.
        case fresh(RunManifest)
        /// Continuing the run whose manifest the directory holds.
        case resume(RunManifest)
    }

    /// Creates the run directory on rank 0; every rank learns whether that worked, so none hangs.
    public init(communicator: Communicator, directory: String, quiet: Bool = false, mode: Mode = .scratch) throws {
        self.communicator = communicator
        self.directory = directory
        self.quiet = quiet
        switch mode {
        case .scratch: (configHash, resuming) = ("", false)
        case .fresh(let manifest): (configHash, resuming) = (manifest.hash, false)
        case .resume(let manifest): (configHash, resuming) = (manifest.hash, true)
        }
        if case .resume(let manifest) = mode, manifest.overrides != nil, communicator.rank == 0,
           let json = try? manifest.encoded() {
            pendingFiles.append((RunManifest.fileName, json))  // options changed by this resume
        }
        var failure = ""
        if communicator.rank == 0 {
            do {
                if case .scratch = mode {} else {
                    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                    try RunContext.lockDirectory(directory)
                }
                if case .fresh = mode, FileManager.default.fileExists(atPath: directory + "/" + RunManifest.fileName)
                    || !RunFiles.completeLines(directory + "/metrics.jsonl").isEmpty {
                    throw RunError("\(directory) already holds a run; continue it with --resume \(directory) or choose another --out")
                }
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                let probe = directory + "/.write-test"
                guard FileManager.default.createFile(atPath: probe, contents: Data()) else {
                    throw RunError("cannot write in \(directory)")
                }
                try? FileManager.default.removeItem(atPath: probe)
                let path = directory + "/metrics.jsonl"
                if case .fresh(let manifest) = mode { try manifest.write(to: directory) }
                if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil) }
                metricsHandle = FileHandle(forWritingAtPath: path)
                metricsLines = RunFiles.completeLines(path).count
                metricsHandle?.seekToEndOfFile()
            } catch let error as RunError {
                failure = error.message
            } catch {
                failure = "output directory \(directory): \(error.localizedDescription)"
            }
        }
        let message = try communicator.broadcast(failure, root: 0)
        if !message.isEmpty { throw RunError(message) }
    }

    /// Locks this process holds, by directory: taken once, kept until the process ends (the kernel releases them
    /// however it ends).
    nonisolated(unsafe) private static var held: [String: Int32] = [:]

    /// Takes DIR/.lock (flock, exclusive, without waiting) and writes this process's id into it; a directory that
    /// another live process holds is an error naming that process. Taking it again in the same process is a no-op.
    @discardableResult
    public static func lockDirectory(_ directory: String) throws -> Int32 {
        let key = URL(fileURLWithPath: directory).standardizedFileURL.path
        if let fd = held[key] { return fd }
        let path = directory + "/.lock"
        let fd = open(path, O_RDWR | O_CREAT, 0o644)
        guard fd >= 0 else { throw RunError("cannot create \(path): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            close(fd)
            throw RunError("\(directory) is being written by another deepcluster process\(holder.isEmpty ? "" : " (pid \(holder))"); "
                           + "wait for it to end, or choose another --out")
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pid.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        held[key] = fd
        return fd
    }

    /// Prints on rank 0 only.
    public func say(_ line: String) {
        guard isRoot, !quiet else { return }
        print(line)
        fflush(nil)
    }

    /// Appends one record to metrics.jsonl (rank 0).
    public func record(_ record: RunRecord) {
        guard isRoot, let metricsHandle else { return }
        flushMachineInfo()
        if var data = try? record.jsonLine() {
            data.append(10)
            metricsHandle.write(data)
            metricsLines += 1
        }
    }

    /// The records of metrics.jsonl (rank 0; empty elsewhere).
    public func readMetrics() -> [RunRecord] {
        guard isRoot else { return [] }
        return RunRecord.read(path("metrics.jsonl"))
    }

    /// Drops the records written after a checkpoint (a resumed run writes them again).
    public func truncateMetrics(to lines: Int) {
        guard isRoot, let metricsHandle else { return }
        flushMachineInfo()
        let kept = RunFiles.completeLines(path("metrics.jsonl")).prefix(lines)
        let bytes = kept.map { $0 + "\n" }.joined().utf8.count
        metricsHandle.truncateFile(atOffset: UInt64(bytes))
        metricsHandle.seekToEndOfFile()
        metricsLines = kept.count
    }

    /// Counts a finished epoch against `--stop-after-epochs`; true when this invocation should stop now.
    public func epochFinished() -> Bool {
        guard let budget = epochBudget else { return false }
        epochBudget = budget - 1
        return budget - 1 <= 0
    }


    /// Rank 0 reads the newest complete checkpoint `name` (or, when it is missing or damaged, the `.prev` kept
    /// beside it) and every rank receives the same bytes, so ranks need no shared file system. Nil when neither exists.
    public func loadCheckpoint(_ name: String) throws -> Checkpoint? {
        let path = self.path(name)
        var bytes: [UInt8] = []
        var failure = ""
        if isRoot {
            var problems: [String] = []
            for candidate in [path, path + ".prev"] where FileManager.default.fileExists(atPath: candidate) {
                do {
                    let data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: candidate)))
                    _ = try Checkpoint.decode(data, path: candidate)
                    if candidate != path {
                        say("note: \(problems.isEmpty ? "\(path) is missing" : problems.joined(separator: "; ")); using the previous checkpoint \(candidate)")
                    }
                    bytes = data
                    break
                } catch {
                    problems.append("\(error)")
                }
            }
            if bytes.isEmpty && !problems.isEmpty { failure = problems.joined(separator: "; ") }
        }
        failure = try communicator.broadcast(failure, root: 0)
        if !failure.isEmpty { throw RunError(failure) }
        if ranks > 1 {
            let count = try communicator.allreduce(isRoot ? bytes.count : 0, .sum)
            var words = [Int](repeating: 0, count: (count + 7) / 8)
            if isRoot { words.withUnsafeMutableBytes { target in bytes.withUnsafeBytes { target.copyMemory(from: $0) } } }
            try communicator.broadcast(&words, root: 0)
            if !isRoot { bytes = words.withUnsafeBytes { Array($0.prefix(count)) } }
        }
        guard !bytes.isEmpty else { return nil }
        let checkpoint = try Checkpoint.decode(bytes, path: path)
        if !configHash.isEmpty, let written = checkpoint.metadata["config"], written != configHash {
            throw RunError("\(path) was written by another configuration than \(RunManifest.fileName) describes; "
                           + "resume with the options the run was started with")
        }
        return checkpoint
    }

    /// The metadata every run checkpoint carries.
    public func checkpointMetadata(epoch: Int, step: Int) -> [String: String] {
        ["epoch": String(epoch), "step": String(step), "config": configHash, "metrics_lines": String(metricsLines)]
    }

    /// Writes a file into the run directory (rank 0), atomically.
    public func write(_ name: String, _ contents: String) throws {
        guard isRoot else { return }
        try AtomicFile.write(Array(contents.utf8), to: directory + "/" + name)
    }

    /// Writes a binary file into the run directory (rank 0), atomically.
    public func writeBytes(_ name: String, _ bytes: [UInt8]) throws {
        guard isRoot else { return }
        try AtomicFile.write(bytes, to: directory + "/" + name)
    }

    public func path(_ name: String) -> String { directory + "/" + name }

    /// Writes config.json: every setting of the run, defaults included, per phase ("pretrain", "dec", ...), read off
    /// the option structs themselves so that no setting is left out. The report shows it.
    public func writeConfiguration(_ phases: [(String, Any)]) throws {
        guard isRoot else { return }
        var object: [String: [String: String]] = [:]
        for (phase, options) in phases {
            var values: [String: String] = [:]
            for child in Mirror(reflecting: options).children {
                guard let label = child.label else { continue }
                var text = String(describing: child.value)
                if let set = child.value as? Set<Int> { text = set.sorted().map(String.init).joined(separator: ",") }
                if text == "nil" { text = "(default)" }
                values[label] = text.hasPrefix("Optional(") ? String(text.dropFirst(9).dropLast()) : text
            }
            object[phase] = values
        }
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        try writeOnceResumed("config.json", [UInt8](data))
    }

    /// Every rank compares a hash of its configuration and data shape with rank 0's. A mismatch is an error
    /// on every rank (rather than a deadlock or a silent divergence).
    public func verifySameConfiguration(_ description: String) throws {
        let hash = Int(bitPattern: UInt(fnv1a(Array(description.utf8)) & 0x7FFF_FFFF_FFFF_FFFF))
        var mine = [hash]
        try communicator.broadcast(&mine, root: 0)
        let mismatch = try communicator.allreduce(mine[0] == hash ? 0 : 1, .max)
        if mismatch != 0 {
            throw RunError("rank \(rank): the ranks disagree on the configuration or the data they loaded "
                + "(this rank: \(description)); start every rank with the same options and data")
        }
    }

    /// Stops when a reduced quantity is not finite. The loss is a sum over the ranks (it travels in the step's
    /// statistics bucket, reduced with the gradients) and the gradients are the reduced ones, so a NaN or Inf on any rank is the same
    /// NaN or Inf on every rank: the reduction itself is the flag, and all ranks stop at the same step with no extra
    /// collective and no allocation.
    public func requireFinite(_ reduced: Double, quantity: String, step: Int, gradients: Bool = true) throws {
        if !reduced.isFinite {
            throw RunError("non-finite \(quantity) (\(reduced)) at step \(step), seen by all \(ranks) rank(s); stopping. "
                           + "The last good checkpoint is kept: lower the learning rate and resume, or start again")
        }
        if !gradients {
            throw RunError("non-finite gradient at step \(step) (the \(quantity) was finite), seen by all \(ranks) rank(s); stopping. "
                           + "The last good checkpoint is kept: lower the learning rate and resume, or start again")
        }
    }

    /// machine.json: where and how this invocation runs (the report's "Machine" table). Rank 0; a resumed run
    /// replaces it with its own once its checkpoint has loaded (the first truncateMetrics or record).
    public func writeMachineInfo(data: DataSet?) throws {
        guard isRoot else { return }
        let formatter = ISO8601DateFormatter()
        let info: [String: Any] = [
            "host": communicator.hostName, "ranks": ranks, "blas_threads": BLAS.threads,
            "cores": ProcessInfo.processInfo.activeProcessorCount,
            "memory_gib": Double(ProcessInfo.processInfo.physicalMemory) / 1_073_741_824,
            "os": ProcessInfo.processInfo.operatingSystemVersionString, "started": formatter.string(from: Date()),
            "resumed": resuming, "data": data.map { "\($0.name): \($0.count) x \($0.dimension)" } ?? "generated", "blas": BLAS.configuration,
        ]
        let json = try JSONSerialization.data(withJSONObject: info, options: [.prettyPrinted, .sortedKeys])
        try writeOnceResumed("machine.json", [UInt8](json))
    }

    /// Writes a file now, or, in a resumed run, once the resume has loaded its checkpoint (the first record after it):
    /// a resume that fails leaves the directory exactly as it was.
    func writeOnceResumed(_ name: String, _ bytes: [UInt8]) throws {
        guard isRoot else { return }
        if resuming { pendingFiles.append((name, bytes)) } else { try AtomicFile.write(bytes, to: path(name)) }
    }

    private func flushMachineInfo() {
        let files = pendingFiles
        pendingFiles = []
        for file in files { try? AtomicFile.write(file.bytes, to: path(file.name)) }
    }

    /// Throws `StopRequested` when `--stop-after-epochs` allows no further epoch in this invocation.
    public func checkEpochBudget() throws {
        if let epochBudget, epochBudget <= 0 { throw StopRequested(directory: directory) }
    }

    public var elapsed: Double { Clock.now - startTime }
}

/// Thrown when `--stop-after-epochs` is used up: the checkpoint is written and the command ends successfully.
public struct StopRequested: Error, CustomStringConvertible {
    public let directory: String
    public var description: String {
        "stopped as asked by --stop-after-epochs; the checkpoint is in \(directory): continue with --resume \(directory)"
    }
}

/// Human-readable seconds: 42s, 3m07s, 1h02m.
public func formatDuration(_ seconds: Double) -> String {
    guard seconds.isFinite, seconds >= 0 else { return "?" }
    let s = Int(seconds.rounded())
    if s < 60 { return "\(s)s" }
    if s < 3600 { return String(format: "%dm%02ds", s / 60, s % 60) }
    return String(format: "%dh%02dm", s / 3600, (s % 3600) / 60)
}

/// A live progress bar on a terminal (rank 0); silent when stdout is a file or pipe.
public struct ProgressBar {
    let enabled: Bool
    let total: Int
    let label: String
    public init(context: RunContext, total: Int, label: String) {
        // Under mpirun a rank's stdout is a pseudo-terminal even when mpirun's own output goes to a file: no bar there.
        enabled = context.isRoot && !context.quiet && isatty(1) != 0
            && ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_SIZE"] == nil
        self.total = total
        self.label = label
    }
    public func update(_ done: Int) {
        guard enabled, done % 4 == 0 || done == total else { return }
        let width = 30
        let filled = total > 0 ? width * done / total : width
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        print("\r\(label) [\(bar)] \(done)/\(total)", terminator: "")
        fflush(nil)
    }
    public func clear() {
        guard enabled else { return }
        print("\r" + String(repeating: " ", count: label.count + 50) + "\r", terminator: "")
        fflush(nil)
    }
}
