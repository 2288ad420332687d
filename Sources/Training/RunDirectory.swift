// A run's directory: made and locked by rank 0 (flock, so two processes never write one run), and the one writer of
// its files (atomically: temporary file, fsync, rename). A resumed run holds its new command.json, config.json and
// machine.json back until its checkpoint has loaded, so a resume that fails leaves the directory as it was.
// Not metrics.jsonl (MetricsLog) and not checkpoints' contents (Checkpoint, RunState).
import Foundation
import Report
import Tensor

public final class RunDirectory {
    public let path: String
    let writes: Bool
    let resuming: Bool
    private var pending: [(name: String, bytes: [UInt8])] = []

    /// Rank 0 (`writes`) creates and locks the directory; a fresh run's must hold no run yet.
    init(path: String, writes: Bool, mode: RunContext.Mode) throws {
        self.path = path
        self.writes = writes
        if case .resume = mode { resuming = true } else { resuming = false }
        guard writes else { return }
        let files = FileManager.default
        if case .scratch = mode {} else {
            try files.createDirectory(atPath: path, withIntermediateDirectories: true)
            try RunDirectory.lock(path)
        }
        if case .fresh = mode, files.fileExists(atPath: path + "/" + RunManifest.fileName)
            || !RunFiles.completeLines(path + "/metrics.jsonl").isEmpty {
            throw RunError("\(path) already holds a run; continue it with --resume \(path) or choose another --out")
        }
        try files.createDirectory(atPath: path, withIntermediateDirectories: true)
        let probe = path + "/.write-test"
        guard files.createFile(atPath: probe, contents: Data()) else { throw RunError("cannot write in \(path)") }
        try? files.removeItem(atPath: probe)
        switch mode {
        case .fresh(let manifest): try manifest.write(to: path)
        case .resume(let manifest) where manifest.overrides != nil:
            pending.append((RunManifest.fileName, try manifest.encoded()))  // options changed by this resume
        default: break
        }
    }

    public func file(_ name: String) -> String { path + "/" + name }

    /// Writes a file into the directory (rank 0), atomically.
    public func write(_ name: String, _ bytes: [UInt8]) throws {
        guard writes else { return }
        try AtomicFile.write(bytes, to: file(name))
    }

    /// Writes now, or in a resumed run once its checkpoint has loaded (`flushPending`, at the first record after it).
    func writeOnceResumed(_ name: String, _ bytes: [UInt8]) throws {
        guard writes else { return }
        if resuming { pending.append((name, bytes)) } else { try write(name, bytes) }
    }

    func flushPending() {
        let files = pending
        pending = []
        for file in files { try? AtomicFile.write(file.bytes, to: self.file(file.name)) }
    }

    /// Locks this process holds, by directory: taken once, kept until the process ends (the kernel releases them
    /// however it ends).
    nonisolated(unsafe) private static var held: [String: Int32] = [:]

    /// Takes DIR/.lock (flock, exclusive, without waiting) and writes this process's id into it; a directory that
    /// another live process holds is an error naming that process. Taking it again in the same process is a no-op.
    @discardableResult
    public static func lock(_ directory: String) throws -> Int32 {
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
}
