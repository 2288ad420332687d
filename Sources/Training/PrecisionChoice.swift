// PrecisionChoice: `--precision auto|float32|bf16` resolved to the arithmetic a run's products use (Precision), the
// same on every rank. `auto` takes bf16 where every rank's CPU multiplies bf16 natively (AVX-512 BF16 or AMX, as
// oneDNN sees it), float32 elsewhere. Not by a timing at start-up: on this project's shared 2-core VMs a 60 ms
// measurement of the two GEMMs put bf16 at 1.04x to 2.16x float32 from one invocation to the next (the steps: 1.5x),
// and a choice that flips between two runs of one command would make their results differ.
import Collective
import Foundation
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

    public static func resolve(_ setting: PrecisionSetting, communicator: Communicator) throws -> PrecisionChoice {
        let isa = BF16.instructionSet
        switch setting {
        case .float32:
            return PrecisionChoice(precision: .float32, setting: setting, reason: "as asked")
        case .bf16:
            // Every rank's CPU must have the kernels; one that has none says so on every rank.
            let missing = try communicator.allreduce(BF16.isAvailable ? 0 : 1, .max)
            guard missing == 0 else {
                throw RunError("--precision bf16: oneDNN has no bf16 GEMM for \(BF16.isAvailable ? "another rank's" : "this") CPU (it needs AVX-512; here: \(isa)); use --precision float32 or auto",
                               everyRank: true)
            }
            let native = try communicator.allreduce(BF16.isNative ? 1 : 0, .min) == 1
            return PrecisionChoice(precision: .bf16, setting: setting,
                                   reason: native ? "as asked; \(isa)" : "as asked; \(isa): slower than float32 on this CPU")
        case .auto:
            let native = try communicator.allreduce(BF16.isNative ? 1 : 0, .min) == 1
            if native { return PrecisionChoice(precision: .bf16, setting: setting, reason: "auto: \(isa) multiplies bf16 natively") }
            return PrecisionChoice(precision: .float32, setting: setting,
                                   reason: "auto: no native bf16 on \(BF16.isNative ? "another rank's" : "this") CPU (oneDNN: \(isa))")
        }
    }
}
