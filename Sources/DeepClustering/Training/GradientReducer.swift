// GradientReducer: sums the gradient buffer over the ranks, one bucket (a layer's gradients) at a time in the
// order the backward pass completes them. Four ways, one per situation:
// - shared memory (every rank on one host, the default there): the gradients live in a window every rank reads;
//   after its backward pass each rank sums its share of each bucket, as soon as all ranks completed that bucket,
//   and writes the sum into every rank's buffer. Nothing goes through MPI's copies.
// - hierarchical (several hosts with as many ranks each, >= 2, the default there): the same inside each host, and
//   between summing a share and writing it back an allreduce of that share with the other hosts.
// - reduction thread (one rank per host or uneven hosts, or --reduction-thread): each bucket's blocking allreduce
//   runs on a background thread while the backward pass goes on.
// - nonblocking (--no-shared-memory on one host): MPI_Iallreduce per bucket, progressed between layers.
// - blocking (--no-overlap): one allreduce of the whole range after the backward pass.
// Times what it leaves exposed: every moment the step waits for, or itself does, reduction work.
import Collective
import Foundation

public enum ReductionMode: String, Sendable {
    case single = "none (one rank)"
    case sharedMemory = "shared memory"
    case hierarchical = "shared memory within each host, allreduce between hosts"
    case thread = "reduction thread"
    case nonblocking = "nonblocking allreduces"
    case blocking = "one blocking allreduce"
}

public final class GradientReducer {
    public let communicator: Communicator
    public let mode: ReductionMode
    private let shared: SharedReduction?
    private var pending: [PendingReduction] = []
    private var buckets: [Range<Int>] = []
    /// Seconds spent blocked in communication during the last step (exposed time).
    public private(set) var exposedSeconds: Double = 0

    /// Collective: every rank constructs its reducer at the same point (a shared window may be set up, once per
    /// store: a second reducer of the same store reuses it).
    public init(communicator: Communicator, store: ParameterStore, overlap: Bool) throws {
        self.communicator = communicator
        var shared: SharedReduction?
        if communicator.size == 1 {
            mode = .single
        } else if !overlap {
            mode = .blocking
        } else if let reduction = try Self.sharedReduction(communicator, store) {
            shared = reduction
            mode = reduction.hosts > 1 ? .hierarchical : .sharedMemory
        } else if communicator.hasReductionThread {
            mode = .thread
        } else {
            mode = .nonblocking
        }
        self.shared = shared
        pending.reserveCapacity(64)
        buckets.reserveCapacity(64)
    }

    /// The store's shared-memory reduction: the one its gradients already live in, or a new one they move into.
    private static func sharedReduction(_ communicator: Communicator, _ store: ParameterStore) throws -> SharedReduction? {
        if let existing = store.gradientOwner as? SharedReduction { return existing }
        guard let created = try communicator.makeSharedReduction(count: store.count) else { return nil }
        store.placeGradients(in: created.slot, owner: created)
        return created
    }

    public func beginStep() {
        exposedSeconds = 0
        pending.removeAll(keepingCapacity: true)
        buckets.removeAll(keepingCapacity: true)
    }

    /// A bucket is complete: start reducing it now (overlap) or leave it for `finish`.
    public func bucketReady(_ store: ParameterStore, _ range: Range<Int>) throws {
        switch mode {
        case .single, .blocking:
            return
        case .sharedMemory, .hierarchical:
            buckets.append(range)
            shared!.bucketReady()
        case .thread:
            try communicator.submitAllreduceSum(store.gradientBuffer(range))
        case .nonblocking:
            let started = Clock.now
            pending.append(try communicator.startAllreduceSum(store.gradientBuffer(range)))
            for p in pending where p.handle >= 0 { _ = try communicator.test(p) }
            exposedSeconds += Clock.now - started
        }
    }

    /// Completes the reduction of `range` (every bucket of it when overlapping).
    public func finish(_ store: ParameterStore, _ range: Range<Int>) throws {
        let started = Clock.now
        switch mode {
        case .single:
            break
        case .sharedMemory, .hierarchical:
            if buckets.isEmpty {
                buckets.append(range)
                shared!.bucketReady()
            }
            for (index, bucket) in buckets.enumerated() { try shared!.reduce(bucket, bucket: index) }
            shared!.endStep(buckets: buckets.count)
        case .thread:
            try communicator.drainReductions()
        case .nonblocking:
            for p in pending { try communicator.wait(p) }
            pending.removeAll(keepingCapacity: true)
        case .blocking:
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
