// RunContext: what every pipeline is handed: the communicator, the run directory, the metrics log and the run's
// policy (each its own type), and printing from rank 0 only. The checkpoint every rank reads comes through here:
// rank 0 reads it and broadcasts the bytes, so ranks need no shared file system.
import Collective
import Datasets
import Foundation
import Report
import Tensor

public final class RunContext {
    public let communicator: Communicator
    public let directory: String
    public let quiet: Bool
    public let files: RunDirectory
    public let metrics: MetricsLog
    public let policy: RunPolicy
    public let startTime = Clock.now
    public let resuming: Bool
    /// Seconds the command took to load its data before this context began (the final record's load_seconds).
    public var loadSeconds: Double?

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

        /// A fresh run's manifest with `flags` appended as if given: defaults the command chose from the data
        /// (Recipe.pretrainEpochs(samples:) and the like), written down so that a resumed run keeps them whatever a
        /// later release's recipe says. Other modes as they are.
        public func recording(_ flags: [(flag: String, value: String)]) -> Mode {
            guard case .fresh(var manifest) = self, !flags.isEmpty else { return self }
            manifest.arguments += flags.flatMap { [$0.flag, $0.value] }
            return .fresh(manifest)
        }
    }

    /// Creates the run directory on rank 0; every rank learns whether that worked, so none hangs.
    public init(communicator: Communicator, directory: String, quiet: Bool = false, mode: Mode = .scratch) throws {
        self.communicator = communicator
        self.directory = directory
        self.quiet = quiet
        let hash: String
        switch mode {
        case .scratch: (hash, resuming) = ("", false)
        case .fresh(let manifest): (hash, resuming) = (manifest.hash, false)
        case .resume(let manifest): (hash, resuming) = (manifest.hash, true)
        }
        policy = RunPolicy(communicator: communicator, configHash: hash)
        var failure = "", made: RunDirectory?
        do {
            made = try RunDirectory(path: directory, writes: communicator.rank == 0, mode: mode)
        } catch let error as RunError {
            failure = error.message
        } catch {
            failure = "output directory \(directory): \(error.localizedDescription)"
        }
        let message = try communicator.broadcast(failure, root: 0)
        if !message.isEmpty { throw RunError(message, everyRank: true) }
        files = made!
        metrics = MetricsLog(path: directory + "/metrics.jsonl", writing: communicator.rank == 0)
        metrics.beforeWrite = { [files] in files.flushPending() }
    }

    /// Prints on rank 0 only.
    public func say(_ line: String) {
        guard isRoot, !quiet else { return }
        print(line)
        fflush(nil)
    }

    public func path(_ name: String) -> String { files.file(name) }
    public func write(_ name: String, _ contents: String) throws { try files.write(name, Array(contents.utf8)) }
    public func writeBytes(_ name: String, _ bytes: [UInt8]) throws { try files.write(name, bytes) }
    public func record(_ record: RunRecord) { metrics.append(record) }
    public var elapsed: Double { Clock.now - startTime }

    /// Notes in `record` the largest peak memory of any rank, resident (shared pages counted in full by every rank
    /// that maps them) and, on several ranks, proportional (`ProportionalMemory`: a shared page split among the
    /// ranks that have touched it) with the sum of every rank's proportional peak (what the ranks held together at
    /// most), and says it on rank 0.
    public func notePeakMemory(_ record: inout RunRecord) throws {
        let resident = try communicator.allreduce(peakMemoryMegabytes(), .max)
        record.peakMemoryMB = resident
        let proportional = ranks > 1 ? ProportionalMemory.peakMegabytes() ?? -1 : -1  // -1: not measured
        guard try communicator.allreduce(proportional, .min) >= 0 else {
            return say(String(format: "peak memory of a rank so far: %.0f MB", resident))
        }
        record.peakProportionalMB = try communicator.allreduce(proportional, .max)
        record.peakProportionalSumMB = try communicator.allreduce(proportional, .sum)
        say(String(format: "peak memory of a rank so far: %.0f MB (proportional: %.0f MB; all %d ranks at most %.0f MB together)",
                   resident, record.peakProportionalMB ?? 0, ranks, record.peakProportionalSumMB ?? 0))
    }
    public func checkEpochBudget() throws { try policy.checkEpochBudget(directory: directory) }
    public func epochFinished() -> Bool { policy.epochFinished() }

    /// metrics.jsonl's complete lines on rank 0, known to every rank (a state's line count is checked against it).
    public func agreedMetricsLines() throws -> Int {
        var lines = [metrics.lines]
        try communicator.broadcast(&lines, root: 0)
        return lines[0]
    }

    /// The metadata every run checkpoint carries.
    public func checkpointMetadata() -> [String: String] {
        ["config": policy.configHash, "metrics_lines": String(metrics.lines)]
    }

    /// Rank 0 reads the newest complete checkpoint `name` (or, when it is missing or damaged, the `.prev` kept
    /// beside it) and every rank receives the same bytes. Nil when neither exists.
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
        if !failure.isEmpty { throw RunError(failure, everyRank: true) }
        if ranks > 1 {
            let count = try communicator.allreduce(isRoot ? bytes.count : 0, .sum)
            var words = [Int](repeating: 0, count: (count + 7) / 8)
            if isRoot { words.withUnsafeMutableBytes { target in bytes.withUnsafeBytes { target.copyMemory(from: $0) } } }
            try communicator.broadcast(&words, root: 0)
            if !isRoot { bytes = words.withUnsafeBytes { Array($0.prefix(count)) } }
        }
        guard !bytes.isEmpty else { return nil }
        return try onEveryRank {
            let checkpoint = try Checkpoint.decode(bytes, path: path)
            try policy.checkConfiguration(of: checkpoint, path: path)
            return checkpoint
        }
    }

    /// Runs `body`, which every rank runs on the same bytes (a broadcast checkpoint) and so fails alike: its error
    /// is marked as every rank's, so rank 0 alone reports it.
    public func onEveryRank<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as RunError {
            throw RunError(error.message, everyRank: true)
        } catch let error as CheckpointError {
            throw RunError(error.description, everyRank: true)
        }
    }

    /// config.json: every setting of the run per phase ("pretrain", "dec", ...), as the flags a user would type.
    public func writeConfiguration(_ phases: [(String, [(flag: String, value: String)])]) throws {
        var object: [String: [String: String]] = [:]
        for (phase, settings) in phases { object[phase] = Dictionary(settings, uniquingKeysWith: { $1 }) }
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        try files.writeOnceResumed("config.json", [UInt8](data))
    }

    /// machine.json: where and how this invocation runs (the report's "Machine" table). A resumed run replaces it
    /// with its own once its checkpoint has loaded.
    public func writeMachineInfo(data: DataSet?) throws {
        guard isRoot else { return }
        let info: [String: Any] = [
            "host": communicator.hostName, "ranks": ranks, "blas_threads": BLAS.threads,
            "cores": ProcessInfo.processInfo.activeProcessorCount,
            "memory_gib": Double(ProcessInfo.processInfo.physicalMemory) / 1_073_741_824,
            "os": ProcessInfo.processInfo.operatingSystemVersionString, "started": ISO8601DateFormatter().string(from: Date()),
            "resumed": resuming, "data": data.map { "\($0.name): \($0.count) x \($0.dimension)" } ?? "generated", "blas": BLAS.configuration,
        ]
        let json = try JSONSerialization.data(withJSONObject: info, options: [.prettyPrinted, .sortedKeys])
        try files.writeOnceResumed("machine.json", [UInt8](json))
    }
}
