// How often a training phase writes its checkpoint: every N epochs, or once at least a given time has passed since
// the last one (the default: a 40 MB checkpoint fsynced after every epoch cost the main job about 10% of its time).
// Either way a phase also writes one after its last epoch, and at a stop signal or --stop-after-epochs.
import Foundation
import Tensor

public enum CheckpointCadence: Sendable, Equatable, CustomStringConvertible {
    case epochs(Int)
    case seconds(Double)

    /// "N" (epochs), or "Ns", "Nm", "Nh" (a time).
    public init(parsing text: String) throws {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600]
        if let unit = trimmed.last.flatMap({ units[$0] }), let value = Double(trimmed.dropLast()), value.isFinite,
           value > 0, value * unit <= 7 * 86_400 {
            self = .seconds(value * unit)
        } else if let epochs = Int(trimmed), epochs >= 1 {
            self = .epochs(epochs)
        } else {
            throw RunError("--checkpoint-every takes N epochs (at least 1) or a time such as 90s, 5m or 1h (up to a week); got \(text)")
        }
    }

    public var description: String {
        switch self {
        case .epochs(let n): return "\(n)"
        case .seconds(let s):
            if s >= 3600, s.truncatingRemainder(dividingBy: 3600) == 0 { return "\(Int(s / 3600))h" }
            if s >= 60, s.truncatingRemainder(dividingBy: 60) == 0 { return "\(Int(s / 60))m" }
            return s == s.rounded() ? "\(Int(s))s" : "\(s)s"
        }
    }

    /// Whether a checkpoint is due after `epoch` epochs of the phase, `secondsSinceLast` after the last one.
    public func due(epoch: Int, secondsSinceLast: Double) -> Bool {
        switch self {
        case .epochs(let n): return epoch % max(n, 1) == 0
        case .seconds(let s): return secondsSinceLast >= s
        }
    }
}
