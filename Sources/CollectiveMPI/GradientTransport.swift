// GradientTransport: how a step's gradients are summed over the ranks, in the spirit of PyTorch's reducer. The
// transport owns the memory the gradients live in (chosen when the model is built, since shared memory must hold
// them from the start); the step zeroes it, calls `bucketReady` as the backward pass completes each range (the same
// sequence of ranges on every rank), then `finish`, after which every rank holds those ranges summed over the ranks.
// One type per way of reducing:
// - `LocalGradients`: one rank, nothing to do.
// - `SharedMemoryTransport` (every rank on one host; or as many on each host, then hierarchical): the gradients
//   live in memory the host's ranks share; each rank sums its share of each bucket in rank order (same bits on
//   every rank and in a one-process emulation) and, across hosts, allreduces that share with its peers.
// - `ReductionThreadTransport` (one rank per host, uneven hosts, or asked for): a background thread runs each
//   bucket's allreduce while the backward pass goes on.
// - `BlockingTransport` (`--no-overlap`, or no other way): one allreduce after the backward pass; the reference.
// MPI's nonblocking allreduce, progressed between layers, never beat these (README) and is gone.
// Each transport times what it leaves exposed: every moment the step waits for, or itself does, reduction work.
import Collective

public enum TransportKind: String, Sendable {
    case single = "none (one rank)"
    case sharedMemory = "shared memory"
    case hierarchical = "shared memory within each host, allreduce between hosts"
    case thread = "reduction thread"
    case blocking = "one blocking allreduce"
}

public protocol GradientTransport: AnyObject {
    var kind: TransportKind { get }
    /// This rank's gradient memory: `count` floats, zeroed at first, owned by the transport.
    var gradients: UnsafeMutablePointer<Float> { get }
    var count: Int { get }
    /// Seconds spent blocked in, or doing, reduction work since `beginStep`.
    var exposedSeconds: Double { get }
    func beginStep()
    /// `range` of `gradients` is complete on this rank: its reduction may start.
    func bucketReady(_ range: Range<Int>) throws
    /// Returns once every bucket announced since `beginStep` is summed over the ranks.
    func finish() throws
}

public enum GradientTransports {
    /// Collective: every rank builds its transport at the same point. `overlap` false: the blocking reference.
    public static func make(_ communicator: Communicator, count: Int, overlap: Bool) throws -> GradientTransport {
        guard communicator.size > 1 else { return LocalGradients(count: count) }
        guard overlap, let world = communicator as? TransportWorld else {
            return BlockingTransport(communicator, count: count)
        }
        if world.prefersReductionThread, let thread = try world.duplicateForThread() {
            return ReductionThreadTransport(communicator, thread: thread, count: count)
        }
        if let segments = try world.shareMemory(bytes: SharedMemoryTransport.segmentBytes(count: count)) {
            return SharedMemoryTransport(segments, count: count)
        }
        if let thread = try world.duplicateForThread() {
            return ReductionThreadTransport(communicator, thread: thread, count: count)
        }
        return BlockingTransport(communicator, count: count)
    }
}

extension GradientTransports {
    /// Collective. The transport of `kind` where this world can build it, else nil on every rank alike (for the
    /// transport checks and benchmarks). `.hierarchical` and `.sharedMemory` both ask for shared memory.
    public static func make(_ kind: TransportKind, _ communicator: Communicator, count: Int) throws -> GradientTransport? {
        let world = communicator as? TransportWorld
        switch kind {
        case .single:
            return communicator.size == 1 ? LocalGradients(count: count) : nil
        case .blocking:
            return BlockingTransport(communicator, count: count)
        case .sharedMemory, .hierarchical:
            return try world?.shareMemory(bytes: SharedMemoryTransport.segmentBytes(count: count))
                .map { SharedMemoryTransport($0, count: count) }
        case .thread:
            return try world?.duplicateForThread().map { ReductionThreadTransport(communicator, thread: $0, count: count) }
        }
    }
}

/// Gradient memory of the transport's own (the local and blocking transports, the reduction thread).
final class OwnedGradients {
    let pointer: UnsafeMutablePointer<Float>
    init(count: Int) {
        pointer = .allocate(capacity: max(count, 1))
        pointer.initialize(repeating: 0, count: max(count, 1))
    }
    deinit { pointer.deallocate() }
}

public final class LocalGradients: GradientTransport {
    private let memory: OwnedGradients
    public let count: Int
    public init(count: Int) {
        memory = OwnedGradients(count: count)
        self.count = count
    }
    public var kind: TransportKind { .single }
    public var gradients: UnsafeMutablePointer<Float> { memory.pointer }
    public var exposedSeconds: Double { 0 }
    public func beginStep() {}
    public func bucketReady(_ range: Range<Int>) throws {}
    public func finish() throws {}
}

public final class BlockingTransport: GradientTransport {
    private let communicator: Communicator
    private let memory: OwnedGradients
    public let count: Int
    public private(set) var exposedSeconds = 0.0
    /// The span of this step's buckets: reduced as one range.
    private var lower = Int.max, upper = Int.min

    public init(_ communicator: Communicator, count: Int) {
        self.communicator = communicator
        memory = OwnedGradients(count: count)
        self.count = count
    }

    public var kind: TransportKind { .blocking }
    public var gradients: UnsafeMutablePointer<Float> { memory.pointer }
    public func beginStep() {
        exposedSeconds = 0
        (lower, upper) = (.max, .min)
    }

    public func bucketReady(_ range: Range<Int>) throws {
        precondition(range.upperBound <= count)
        lower = min(lower, range.lowerBound)
        upper = max(upper, range.upperBound)
    }

    public func finish() throws {
        guard lower < upper else { return }
        let started = Clock.now
        try communicator.allreduce(UnsafeMutableBufferPointer(start: gradients + lower, count: upper - lower), .sum)
        exposedSeconds += Clock.now - started
    }
}
