// How long work shows on a terminal: durations in words and a live progress bar (rank 0, terminals only).
import Foundation

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
