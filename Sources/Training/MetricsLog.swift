// metrics.jsonl of a run: one RunRecord a line, appended by rank 0, read back by resume, reports and figures, and
// cut back to a checkpoint's line count when a run continues from it. Not the other files of the run directory.
import Foundation
import Report

public final class MetricsLog {
    public let path: String
    private let handle: FileHandle?
    /// Complete lines in the file; a checkpoint stores it so that a resumed run can drop what came after.
    public private(set) var lines = 0
    /// Runs before every write: a resumed run's held-back files go out with its first record.
    var beforeWrite: () -> Void = {}

    /// Opens (creating) `path` for appending; nil handle on the ranks that do not write.
    init(path: String, writing: Bool) {
        self.path = path
        guard writing else { handle = nil; return }
        if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil) }
        handle = FileHandle(forWritingAtPath: path)
        lines = RunFiles.completeLines(path).count
        handle?.seekToEndOfFile()
    }

    public func append(_ record: RunRecord) {
        guard let handle else { return }
        beforeWrite()
        if var data = try? record.jsonLine() {
            data.append(10)
            handle.write(data)
            lines += 1
        }
    }

    /// The records (empty on the ranks that do not write).
    public func read() -> [RunRecord] { handle == nil ? [] : RunRecord.read(path) }

    /// Drops the records written after a checkpoint (a resumed run writes them again).
    public func truncate(to count: Int) {
        guard let handle else { return }
        beforeWrite()
        let kept = RunFiles.completeLines(path).prefix(max(count, 0))
        handle.truncateFile(atOffset: UInt64(kept.map { $0 + "\n" }.joined().utf8.count))
        handle.seekToEndOfFile()
        lines = kept.count
    }
}
