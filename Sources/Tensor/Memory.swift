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
    private var started = false
    private static let shared = ProportionalMemory()

    /// Starts the sampling thread (once per process).
    public static func watch() {
        let first = shared.lock.withLock { () -> Bool in
            defer { shared.started = true }
            return !shared.started
        }
        guard first else { return }
        shared.sample()
        let thread = Thread {
            while true {
                usleep(UInt32(interval * 1e6))
                shared.sample()
            }
        }
        thread.name = "memory sampler"
        thread.start()
    }

    /// The largest sample so far, MB (one more sample taken now); nil where /proc/self/smaps_rollup is missing.
    public static func peakMegabytes() -> Double? {
        shared.sample()
        return shared.lock.withLock { shared.peakKilobytes }.map { $0 / 1024 }
    }

    private func sample() {
        guard let text = try? String(contentsOfFile: "/proc/self/smaps_rollup", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("Pss:") }),
              let kilobytes = Double(line.split(separator: " ").dropFirst().first ?? "") else { return }
        lock.withLock { peakKilobytes = max(peakKilobytes ?? 0, kilobytes) }
    }
}

/// This process's peak resident memory (VmHWM of /proc/self/status), in MB; 0 where the file is missing.
public func peakMemoryMegabytes() -> Double {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
          let kilobytes = Double(line.split(separator: " ").dropFirst().first ?? "") else { return 0 }
    return kilobytes / 1024
}
