// GradientReducer: sums the gradient buffer over the ranks. Either one blocking allreduce of the whole range,
// or (overlap) one allreduce per bucket, started as soon as the backward pass has filled that bucket and waited
// for before the update: nonblocking (MPI_Iallreduce, progressed between layers) or, with --reduction-thread,
// blocking on a background thread that progresses it all along. Times what it leaves exposed.
import Collective
import Foundation

public final class GradientReducer {
    public let communicator: Communicator
    public let overlap: Bool
    private var pending: [PendingReduction] = []
    /// Seconds spent blocked in communication during the last step (exposed time).
    public private(set) var exposedSeconds: Double = 0

    /// Overlap through the communicator's reduction thread (`--reduction-thread`; implies `overlap`), else through
    /// nonblocking allreduces progressed between layers.
    public let threaded: Bool

    public init(communicator: Communicator, overlap: Bool) {
        self.communicator = communicator
        self.overlap = overlap && communicator.size > 1
        threaded = self.overlap && communicator.hasReductionThread
        pending.reserveCapacity(64)
    }

    public func beginStep() {
        exposedSeconds = 0
        pending.removeAll(keepingCapacity: true)
    }

    /// A bucket is complete: start reducing it now (overlap) or leave it for `finish`.
    public func bucketReady(_ store: ParameterStore, _ range: Range<Int>) throws {
        guard overlap else { return }
        if threaded { return try communicator.submitAllreduceSum(store.gradientBuffer(range)) }
        let started = Clock.now
        pending.append(try communicator.startAllreduceSum(store.gradientBuffer(range)))
        for p in pending where p.handle >= 0 { _ = try communicator.test(p) }
        exposedSeconds += Clock.now - started
    }

    /// Completes the reduction of `range` (every bucket of it when overlapping).
    public func finish(_ store: ParameterStore, _ range: Range<Int>) throws {
        let started = Clock.now
        if threaded {
            try communicator.drainReductions()
        } else if overlap {
            for p in pending { try communicator.wait(p) }
            pending.removeAll(keepingCapacity: true)
        } else if communicator.size > 1 {
            try communicator.allreduce(store.gradientBuffer(range), .sum)
        }
        exposedSeconds += Clock.now - started
    }
}

/// Monotonic seconds.
public enum Clock {
    public static var now: Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }
}
