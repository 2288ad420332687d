// Graceful stop, for schedulers (Slurm's time limit and preemption, scancel) and Ctrl-C: a signal is only recorded;
// the ranks agree on it through the statistics bucket that every step reduces anyway (no extra collective), finish
// that step together, rank 0 writes a checkpoint at it, mid-epoch included, and the command exits with
// `GracefulStop.exitStatus`. Resuming from that checkpoint is bitwise the uninterrupted run: the sampler, the
// augmentation and the mask are functions of (seed, epoch, sample), and the epoch's position and loss sum are saved.
internal import CKernels
import Clustering
import Collective
import Datasets
import Foundation
import NN
import Report
import Tensor

public enum GracefulStop {
    /// The signals that ask for a graceful stop: Slurm's default (TERM), Ctrl-C (INT), and USR1, which `sbatch --signal`
    /// users often pick and mpirun forwards to the ranks unchanged.
    public static let signals: [Int32] = [SIGTERM, SIGINT, SIGUSR1]
    /// EX_TEMPFAIL: "stopped, resumable"; a batch script requeues on it.
    public static let exitStatus: Int32 = 75

    /// From now on the first stop signal is recorded, a second one ends the process at once.
    public static func install() throws {
        let result = signals.withUnsafeBufferPointer { CKernels_stop_install($0.baseAddress, Int32($0.count)) }
        if result != 0 { throw RunError("cannot install the stop signal handlers: \(String(cString: strerror(errno)))") }
    }

    /// Default actions again, for a process that ends on an error: mpirun's SIGTERM to the other ranks must end
    /// them at once, as it did before any handler.
    public static func release() {
        signals.withUnsafeBufferPointer { CKernels_stop_release($0.baseAddress, Int32($0.count)) }
    }

    /// The first stop signal this process received, or 0.
    public static var received: Int32 { CKernels_stop_received() }
    /// Seconds since that signal came, or 0.
    public static var secondsSinceSignal: Double { CKernels_stop_seconds_since() }

    public static func name(_ signal: Int32) -> String {
        switch signal {
        case SIGTERM: "SIGTERM"
        case SIGINT: "SIGINT"
        case SIGUSR1: "SIGUSR1"
        case 0: "a signal to another rank"
        default: "signal \(signal)"
        }
    }
}

/// One rank's part in the agreement: its vote goes into the step's statistics bucket, and the reduced tally is the
/// same on every rank, so all stop after the same step however the signal reached them (one rank or all, at
/// different steps).
public final class StopAgreement {
    /// The step during which this rank first saw a stop signal (its vote went into that step's reduction).
    public private(set) var seenAtStep: Int?
    /// The step after which the ranks stop (set on every rank by the same reduced tally).
    public private(set) var agreedAtStep: Int?
    public var agreed: Bool { agreedAtStep != nil }

    public init() {}

    /// Before the statistics bucket is reduced: this rank's vote (1 = stop) into its slot.
    func vote(_ model: Model, step: Int) {
        let signalled = GracefulStop.received != 0
        if signalled && seenAtStep == nil { seenAtStep = step }
        model.statistics[Model.stopSlot] = signalled ? 1 : 0
    }

    /// After the reduction: the sum of the votes (exact in float: a count of ranks).
    func tally(_ model: Model, step: Int) {
        if agreedAtStep == nil && model.statistics[Model.stopSlot] > 0 { agreedAtStep = step }
    }

    /// Rank 0 saves (`save` runs on every rank and writes on rank 0 only); every rank learns whether that worked, then
    /// throws `StopSignalled`, so no rank exits while rank 0 still writes.
    func stop(_ context: RunContext, phase: String, epoch: Int, batch: Int, batches: Int, checkpoint: String,
              save: () throws -> Void) throws -> Never {
        var failure = ""
        do { try save() } catch { failure = "\(error)" }
        failure = try context.communicator.broadcast(failure, root: 0)
        if !failure.isEmpty { throw RunError("stopping on a signal, the checkpoint could not be written: \(failure)") }
        throw StopSignalled(signal: GracefulStop.received, rank: context.rank, ranks: context.ranks, seenAtStep: seenAtStep,
                            stoppedAfterStep: agreedAtStep ?? -1, phase: phase, epoch: epoch, batch: batch, batches: batches,
                            checkpoint: checkpoint, directory: context.directory)
    }
}

/// Thrown on every rank once the checkpoint at the agreed step is written; the command exits with
/// `GracefulStop.exitStatus`.
public struct StopSignalled: Error, CustomStringConvertible {
    public let signal: Int32
    public let rank: Int, ranks: Int
    public let seenAtStep: Int?
    /// The last step trained (0-based), the same on every rank.
    public let stoppedAfterStep: Int
    public let phase: String
    /// The epoch in progress (0-based) and the batches of it that are done.
    public let epoch: Int, batch: Int, batches: Int
    public let checkpoint: String
    public let directory: String
    /// Seconds from the signal (on this rank) to the written checkpoint; 0 on a rank that got none.
    public let secondsSinceSignal = GracefulStop.secondsSinceSignal

    /// Rank 0's summary.
    public var description: String {
        let position = batch == 0 ? "after \(phase) epoch \(epoch)" : "in \(phase) epoch \(epoch + 1), after batch \(batch) of \(batches)"
        let since = signal != 0 ? String(format: ", %.2f s after the signal", secondsSinceSignal) : ""
        return "stopped on \(GracefulStop.name(signal)) after step \(stoppedAfterStep + 1) (\(position)); checkpoint \(checkpoint)\(since). "
            + "Continue with --resume \(directory) (exit status \(GracefulStop.exitStatus): stopped, resumable)"
    }

    /// Each rank's line: when it saw the signal and where it stopped.
    public var rankLine: String {
        let seen = seenAtStep.map { "\(GracefulStop.name(signal)) seen during step \($0 + 1)" }
            ?? (signal != 0 ? "\(GracefulStop.name(signal)) came after this rank's vote" : "no signal here")
        let since = signal != 0 ? String(format: ", checkpoint written %.2f s after the signal", secondsSinceSignal) : ""
        return "rank \(rank)/\(ranks): \(seen); stopped after step \(stoppedAfterStep + 1) with the other ranks\(since)"
    }
}
