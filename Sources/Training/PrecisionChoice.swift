// PrecisionChoice: `--precision auto|float32|bf16` resolved to the arithmetic a run's products use (Precision), the
// same on every rank. `auto` takes bf16 where every rank's CPU multiplies bf16 on AMX tiles (as oneDNN sees it),
// float32 elsewhere: on a Xeon with AVX-512 BF16 but no AMX, oneDNN 2.6's bf16 GEMM ran a step at 0.47-0.75x
// OpenBLAS's float32 rate (its dot-product instruction there does no more multiplications a cycle than two FMAs), so
// bf16 would only lose digits there. By the instruction set, not by a timing at start-up: on this project's shared
// 2-core VMs a 60 ms measurement of the two GEMMs put bf16 at 1.04x to 2.16x float32 from one invocation to the next
// (the steps: 1.5x), and a choice that flips between two runs of one command would make their results differ.
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

    /// Every rank calls it with the same setting (after RunPolicy.verifySameConfiguration): one allreduce whatever
    /// the setting, so ranks agree or fail alike.
    public static func resolve(_ setting: PrecisionSetting, communicator: Communicator) throws -> PrecisionChoice {
        let isa = BF16.instructionSet
        // The least over the ranks of: 2 (has oneDNN's bf16 GEMM) + 1 (multiplies bf16 natively) + 1 (on AMX).
        let mine = (BF16.isAvailable ? 2 : 0) + (BF16.isNative ? 1 : 0) + (BF16.hasMatrixUnits ? 1 : 0)
        let support = try communicator.allreduce(mine, .min)
        let whose = mine > support ? "another rank's CPU" : "this CPU"
        switch setting {
        case .float32:
            return PrecisionChoice(precision: .float32, setting: setting, reason: "as asked")
        case .bf16:
            guard support >= 2 else {
                throw RunError("--precision bf16: oneDNN has no bf16 GEMM for \(whose) (it needs AVX-512; here: \(isa)); use --precision float32 or auto",
                               everyRank: true)
            }
            return PrecisionChoice(precision: .bf16, setting: setting,
                                   reason: support >= 3 ? "as asked; \(isa)" : "as asked; emulated on \(whose) (\(isa)): slower than float32")
        case .auto:
            if support == 4 { return PrecisionChoice(precision: .bf16, setting: setting, reason: "auto: \(isa) multiplies bf16 natively") }
            if support == 3 {
                return PrecisionChoice(precision: .float32, setting: setting,
                                       reason: "auto: \(whose) multiplies bf16 without AMX (\(isa)), where oneDNN's bf16 GEMM is no faster than float32; --precision bf16 forces it")
            }
            return PrecisionChoice(precision: .float32, setting: setting, reason: "auto: no native bf16 on \(whose) (oneDNN: \(isa))")
        }
    }
}
