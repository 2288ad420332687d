// PrecisionChoice: `--precision auto|float32|bf16` resolved to the arithmetic a run's products use (Precision), the
// same on every rank. `auto` takes bf16 where every rank's CPU multiplies bf16 faster than float32, as measured on
// each kind: AMX tiles (a Xeon with AMX: a step 2.1-2.3x), and AVX-512 BF16 on AMD's cores (Zen 4: 1.7-1.8x), whose
// dot product does twice a float32 FMA's multiplications a cycle; float32 elsewhere: on a Xeon with AVX-512 BF16 but
// no AMX, oneDNN 2.6's bf16 GEMM ran a step at 0.47-0.75x OpenBLAS's float32 rate (its dot product there does no
// more multiplications a cycle than two FMAs), so bf16 would only lose digits there. By the CPU, not by a timing at
// start-up: on this project's shared 2-core VMs a 60 ms measurement of the two GEMMs put bf16 at 1.04x to 2.16x
// float32 from one invocation to the next (the steps: 1.5x), and a choice that flips between two runs of one command
// would make their results differ.
import Collective
import Tensor

/// What `--precision` asks for.
public enum PrecisionSetting: String, Sendable, CaseIterable {
    case auto
    case float32
    case bf16
}

public struct PrecisionChoice: Sendable, CustomStringConvertible {
    public let precision: Precision
    public let setting: PrecisionSetting
    /// Why, in words (printed at start).
    public let reason: String

    /// float32, as asked: the library's default (tests, predict of a float32 model).
    public static let float32 = PrecisionChoice(precision: .float32, setting: .float32, reason: "as asked")

    public init(precision: Precision, setting: PrecisionSetting, reason: String) {
        (self.precision, self.setting, self.reason) = (precision, setting, reason)
    }

    public var description: String { "precision: \(precision.rawValue) (\(reason))" }

    /// The flag's value as config.json shows it: what was asked, and what `auto` became.
    public var flagValue: String { setting == .auto ? "\(precision.rawValue) (auto)" : precision.rawValue }

    /// What a new run's manifest records as if given: what `auto` meant here, so that `--resume` on another CPU goes
    /// on in the precision the checkpoint was trained in (or says why it cannot); nothing for a precision given.
    public var recorded: [(flag: String, value: String)] {
        setting == .auto ? [("--precision", precision.rawValue)] : []
    }

    /// What oneDNN can do with bf16 on a CPU, in order of its bf16 GEMM's speed against float32 (the lowest over the
    /// ranks decides): `native`: AVX-512 BF16 at no more multiplications a cycle than float32 (Intel's cores without
    /// AMX); `fullRateDot`: at twice (AMD's); `matrixUnits`: AMX tiles.
    public enum Support: Int, Sendable, Comparable {
        case none = 0, emulated = 2, native = 3, fullRateDot = 4, matrixUnits = 5
        public static func < (a: Support, b: Support) -> Bool { a.rawValue < b.rawValue }
        /// This CPU's, as oneDNN sees it.
        public static var here: Support {
            BF16.hasMatrixUnits ? .matrixUnits : BF16.hasFullRateDot ? .fullRateDot
                : BF16.isNative ? .native : BF16.isAvailable ? .emulated : .none
        }
    }

    /// Every rank calls it with the same setting (after RunPolicy.verifySameConfiguration): one allreduce whatever
    /// the setting, so ranks agree or fail alike.
    public static func resolve(_ setting: PrecisionSetting, communicator: Communicator) throws -> PrecisionChoice {
        let mine = Support.here
        let least = Support(rawValue: try communicator.allreduce(mine.rawValue, .min)) ?? .none
        return try choose(setting, least: least, mine: mine, isa: BF16.instructionSet)
    }

    /// The rule: `least` is the lowest support over the ranks, `mine` this rank's, `isa` this CPU's in words.
    static func choose(_ setting: PrecisionSetting, least: Support, mine: Support, isa: String) throws -> PrecisionChoice {
        // Which CPU the reason is about: this one (named by its instruction set), or another rank's (which this rank
        // cannot name).
        let whose = mine > least ? "another rank's CPU" : "this CPU (\(isa))"
        switch setting {
        case .float32:
            return PrecisionChoice(precision: .float32, setting: setting, reason: "as asked")
        case .bf16:
            guard least >= .emulated else {
                throw RunError("--precision bf16: oneDNN has no bf16 GEMM for \(whose) (it needs AVX-512); use --precision float32 or auto",
                               everyRank: true)
            }
            switch least {
            case .matrixUnits, .fullRateDot: return PrecisionChoice(precision: .bf16, setting: setting, reason: "as asked; \(isa)")
            case .native:
                return PrecisionChoice(precision: .bf16, setting: setting,
                                       reason: "as asked; on \(whose), without AMX, oneDNN's bf16 GEMM is no faster than float32")
            default:
                return PrecisionChoice(precision: .bf16, setting: setting, reason: "as asked; emulated on \(whose): slower than float32")
            }
        case .auto:
            switch least {
            case .matrixUnits, .fullRateDot:
                return PrecisionChoice(precision: .bf16, setting: setting, reason: "auto: \(isa) multiplies bf16 faster than float32")
            case .native:
                return PrecisionChoice(precision: .float32, setting: setting,
                                       reason: "auto: \(whose) multiplies bf16 without AMX at float32's rate, where oneDNN's bf16 GEMM is no faster; --precision bf16 forces it")
            default:
                return PrecisionChoice(precision: .float32, setting: setting, reason: "auto: no native bf16 on \(whose)")
            }
        }
    }
}
