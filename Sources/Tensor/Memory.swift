// Memory: what this process holds, as the kernel counts it (Linux /proc), for the runs' peak memory lines. Not an
// allocator and not a limit.
import Foundation

/// This process's largest proportional set size seen so far, in MB: the Pss of /proc/self/smaps_rollup, where a page
/// that n processes map counts 1/n (the samples one host's ranks share count once over the host). The kernel keeps no
/// peak of it, so a background thread samples it every `interval` seconds once `watch()` has started it (and each
/// `peakMegabytes()` takes one more sample); nil where the file is missing.
public final class ProportionalMemory: @unchecked Sendable {
    public static let interval = 0.5
    private let lock = NSLock()
    private var peakKilobytes: Double?
    private static let shared = ProportionalMemory()
    /// Started by its first use (a static's lazy, once-only initialisation).
    private static let sampler: Bool = {
        let thread = Thread {
            while true {
                usleep(UInt32(interval * 1e6))
                shared.sample()
            }
        }
        thread.name = "memory sampler"
        thread.start()
        return true
    }()

    /// Starts the sampling thread (once per process).
    public static func watch() {
        shared.sample()
        _ = sampler
    }

    /// The largest sample so far, MB (one more sample taken now); nil where /proc/self/smaps_rollup is missing.
    public static func peakMegabytes() -> Double? {
        shared.sample()
        return shared.lock.withLock { shared.peakKilobytes }.map { $0 / 1024 }
    }

    private func sample() {
        guard let kilobytes = procKilobytes("/proc/self/smaps_rollup", "Pss:") else { return }
        lock.withLock { peakKilobytes = max(peakKilobytes ?? 0, kilobytes) }
    }
}

/// This process's peak resident memory (VmHWM of /proc/self/status), in MB; 0 where the file is missing.
public func peakMemoryMegabytes() -> Double {
    (procKilobytes("/proc/self/status", "VmHWM:") ?? 0) / 1024
}

/// The value of the line `key  N kB` of a /proc file; nil where the file or the line is missing.
private func procKilobytes(_ path: String, _ key: String) -> Double? {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8),
          let line = text.split(separator: "\n").first(where: { $0.hasPrefix(key) }) else { return nil }
    return Double(line.split(separator: " ").dropFirst().first ?? "")
}
