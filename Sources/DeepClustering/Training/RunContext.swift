// RunContext: what every pipeline shares: the communicator, the run directory, printing and metrics from
// rank 0 only, and the configuration check that all ranks run before their first collective.
import Collective
import Foundation

public struct RunError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

public final class RunContext {
    public let communicator: Communicator
    public let directory: String
    public let quiet: Bool
    private var metricsHandle: FileHandle?
    public let startTime = Clock.now

    public var rank: Int { communicator.rank }
    public var ranks: Int { communicator.size }
    public var isRoot: Bool { communicator.rank == 0 }

    /// Creates the run directory on rank 0; every rank learns whether that worked, so none hangs.
    public init(communicator: Communicator, directory: String, quiet: Bool = false) throws {
        self.communicator = communicator
        self.directory = directory
        self.quiet = quiet
        var failure = ""
        if communicator.rank == 0 {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                let probe = directory + "/.write-test"
                guard FileManager.default.createFile(atPath: probe, contents: Data()) else {
                    throw RunError("cannot write in \(directory)")
                }
                try? FileManager.default.removeItem(atPath: probe)
                let path = directory + "/metrics.jsonl"
                if !FileManager.default.fileExists(atPath: path) { FileManager.default.createFile(atPath: path, contents: nil) }
                metricsHandle = FileHandle(forWritingAtPath: path)
                metricsHandle?.seekToEndOfFile()
            } catch {
                failure = "output directory \(directory): \(error.localizedDescription)"
            }
        }
        let message = try communicator.broadcast(failure, root: 0)
        if !message.isEmpty { throw RunError(message) }
    }

    /// Prints on rank 0 only.
    public func say(_ line: String) {
        guard isRoot, !quiet else { return }
        print(line)
        fflush(nil)
    }

    /// Appends one JSON object per line to metrics.jsonl (rank 0).
    public func record(_ object: [String: Any]) {
        guard isRoot, let metricsHandle else { return }
        if let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) {
            metricsHandle.write(data)
            metricsHandle.write(Data("\n".utf8))
        }
    }

    /// Writes a file into the run directory (rank 0), atomically.
    public func write(_ name: String, _ contents: String) throws {
        guard isRoot else { return }
        try Checkpoint.atomicWrite(Array(contents.utf8), to: directory + "/" + name)
    }

    public func path(_ name: String) -> String { directory + "/" + name }

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

    /// Stops when a reduced quantity is not finite. The value is a sum over the ranks (it travels in the gradient
    /// buffer's statistics slot), so a NaN or Inf on any rank is the same NaN or Inf on every rank: all of them stop
    /// at the same step, with no extra collective and no allocation.
    public func requireFinite(_ reduced: Double, quantity: String, step: Int) throws {
        if !reduced.isFinite {
            throw RunError("non-finite \(quantity) at step \(step); stopping (the last good checkpoint is kept)")
        }
    }

    public var elapsed: Double { Clock.now - startTime }
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
