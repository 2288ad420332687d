// The run's policies, the same on every rank: the configuration every rank must share (and that checkpoints carry),
// what a non-finite loss or gradient does, and how many epochs this invocation may still train.
import Collective
import Foundation
import Report
import Tensor

public final class RunPolicy {
    let communicator: Communicator
    /// The manifest's hash for training runs: written into every checkpoint and checked on resume ("" for scratch).
    public let configHash: String
    /// Epochs this invocation may still train (`--stop-after-epochs`); nil = no limit.
    public var epochBudget: Int?
    /// What --precision became here (set by the command once resolved): a checkpoint of this run written in the
    /// other arithmetic is not continued (`auto` can resolve differently on another machine).
    public var precision: PrecisionChoice?

    init(communicator: Communicator, configHash: String) {
        self.communicator = communicator
        self.configHash = configHash
    }

    /// Every rank compares a hash of its configuration and data shape with rank 0's. A mismatch is an error
    /// on every rank (rather than a deadlock or a silent divergence).
    public func verifySameConfiguration(_ description: String) throws {
        let hash = Int(bitPattern: UInt(fnv1a(Array(description.utf8)) & 0x7FFF_FFFF_FFFF_FFFF))
        var mine = [hash]
        try communicator.broadcast(&mine, root: 0)
        let mismatch = try communicator.allreduce(mine[0] == hash ? 0 : 1, .max)
        if mismatch != 0 {
            throw RunError("rank \(communicator.rank): the ranks disagree on the configuration or the data they loaded "
                + "(this rank: \(description)); start every rank with the same options and data")
        }
    }

    /// A checkpoint of this run carries this run's configuration hash.
    func checkConfiguration(of checkpoint: Checkpoint, path: String) throws {
        if !configHash.isEmpty, let written = checkpoint.metadata["config"], written != configHash {
            throw RunError("\(path) was written by another configuration than \(RunManifest.fileName) describes; "
                           + "resume with the options the run was started with")
        }
        if let precision, let written = try checkpoint.precision(path: path), written != precision.precision {
            throw RunError("\(path) was trained with \(written.rawValue) products, but here --precision \(precision.setting.rawValue) means "
                           + "\(precision.precision.rawValue) (\(precision.reason)): continue the run on a CPU where it means \(written.rawValue)")
        }
    }

    /// Stops when a reduced quantity is not finite. The loss is a sum over the ranks (it travels in the step's
    /// statistics bucket, reduced with the gradients) and the gradients are the reduced ones, so a NaN or Inf on any
    /// rank is the same NaN or Inf on every rank: the reduction itself is the flag, and all ranks stop at the same
    /// step with no extra collective and no allocation.
    public func requireFinite(_ reduced: Double, quantity: String, step: Int, gradients: Bool = true) throws {
        let ranks = communicator.size
        if !reduced.isFinite {
            throw RunError("non-finite \(quantity) (\(reduced)) at step \(step), seen by all \(ranks) rank(s); stopping. "
                           + "The last good checkpoint is kept: lower the learning rate and resume, or start again")
        }
        if !gradients {
            throw RunError("non-finite gradient at step \(step) (the \(quantity) was finite), seen by all \(ranks) rank(s); stopping. "
                           + "The last good checkpoint is kept: lower the learning rate and resume, or start again")
        }
    }

    /// Throws `StopRequested` when `--stop-after-epochs` allows no further epoch in this invocation.
    public func checkEpochBudget(directory: String) throws {
        if let epochBudget, epochBudget <= 0 { throw StopRequested(directory: directory) }
    }

    /// Counts a finished epoch against `--stop-after-epochs`; true when this invocation should stop now.
    public func epochFinished() -> Bool {
        guard let budget = epochBudget else { return false }
        epochBudget = budget - 1
        return budget - 1 <= 0
    }
}

/// Thrown when `--stop-after-epochs` is used up: the checkpoint is written and the command ends successfully.
public struct StopRequested: Error, CustomStringConvertible {
    public let directory: String
    public var description: String {
        "stopped as asked by --stop-after-epochs; the checkpoint is in \(directory): continue with --resume \(directory)"
    }
}
