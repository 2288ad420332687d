// Communicator: the collective operations the trainer needs, independent of MPI.
// Not a general MPI binding: only in-place reductions, gathers and broadcasts over one world.
import Foundation

/// An element type that can travel through a collective.
public protocol CollectiveElement: Numeric, Comparable, Sendable {
    static var elementKind: ElementKind { get }
}
public enum ElementKind: Sendable { case float, double, int64, int32 }
extension Float: CollectiveElement { public static var elementKind: ElementKind { .float } }
extension Double: CollectiveElement { public static var elementKind: ElementKind { .double } }
extension Int: CollectiveElement { public static var elementKind: ElementKind { .int64 } }
extension Int32: CollectiveElement { public static var elementKind: ElementKind { .int32 } }

public enum ReduceOperation: Sendable {
    case sum, max, min

    /// `a op b`, for worlds that reduce by hand.
    @inline(__always)
    public func apply<T: CollectiveElement>(_ a: T, _ b: T) -> T {
        switch self {
        case .sum: return a + b
        case .max: return Swift.max(a, b)
        case .min: return Swift.min(a, b)
        }
    }
}

/// The collectives of one world of ranks. Every call is collective: all ranks make it, in the same order.
public protocol Communicator: AnyObject {
    var rank: Int { get }
    var size: Int { get }
    /// The host this rank runs on, as the world names it.
    var hostName: String { get }
    func allreduce<T: CollectiveElement>(_ buffer: UnsafeMutableBufferPointer<T>, _ op: ReduceOperation) throws
    /// Gathers every rank's `send` block into `receive`, rank r's block at the sum of counts[0..<r]. `send` may be this
    /// rank's own block of `receive`.
    func allgatherv<T: CollectiveElement>(_ send: UnsafeBufferPointer<T>, into receive: UnsafeMutableBufferPointer<T>,
                                          counts: [Int]) throws
    func broadcast<T: CollectiveElement>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int) throws
    func barrier() throws
    /// Ends every rank of the job; never returns.
    func abort(code: Int32) -> Never
}

/// What the gradient transports (GradientTransport.swift) need beyond the collectives. MPI provides it, and so
/// does the in-process world of the tests; the single-process world needs none of it.
public protocol TransportWorld: Communicator {
    /// Collective. Memory that the ranks of this rank's host all map: one segment of `bytes` (zeroed) per rank of
    /// the host, with, when the job spans several hosts, a communicator of this rank's peers (the ranks of the same
    /// local rank) on the other hosts. Nil on every rank alike when the ranks cannot share memory this way (kept
    /// off shared memory, or hosts with different numbers of ranks, or one rank per host).
    func shareMemory(bytes: Int) throws -> SharedSegments?
    /// A second communicator over the same ranks whose collectives a background thread may run while this one's
    /// thread computes; nil when the library cannot (MPI without MPI_THREAD_MULTIPLE).
    func duplicateForThread() throws -> Communicator?
    /// Whether the user asked for the reduction thread by name (it then wins over shared memory).
    var prefersReductionThread: Bool { get }
    /// Collective. The ranks of this rank's host as a world of their own (in world rank order), or nil where they
    /// keep off shared memory or this rank is alone on its host. Each host answers for itself.
    func hostWorld() throws -> TransportWorld?
    /// Collective over a `hostWorld()`: `bytes` of memory that its rank 0 allocates and every rank maps, contents
    /// undefined; nil on every rank alike when the host's shared-memory file system has no room for them.
    func sharedBlock(bytes: Int) throws -> SharedBlock?
}

/// One block of memory that the ranks of a host all map (`TransportWorld.sharedBlock`). MPI returns it to the system
/// at MPI_Finalize; until then it stays mapped.
public final class SharedBlock: @unchecked Sendable {
    public let base: UnsafeMutableRawPointer
    private let release: () -> Void

    public init(base: UnsafeMutableRawPointer, release: @escaping () -> Void) {
        self.base = base
        self.release = release
    }

    deinit { release() }
}

/// Segments of memory that the ranks of one host share (`TransportWorld.shareMemory`). Lives as long as its owner.
public final class SharedSegments {
    /// This rank's place among the ranks of its host.
    public let localRank: Int
    /// The start of every local rank's segment, in local rank order.
    public let segments: [UnsafeMutableRawPointer]
    /// This rank's peers on the other hosts (nil on one host).
    public let crossHost: Communicator?
    /// The ranks of this host, for the barrier after the segments are zeroed.
    public let local: Communicator
    private let release: () -> Void

    public init(localRank: Int, segments: [UnsafeMutableRawPointer], crossHost: Communicator?, local: Communicator,
                release: @escaping () -> Void) {
        self.localRank = localRank
        self.segments = segments
        self.crossHost = crossHost
        self.local = local
        self.release = release
    }

    deinit { release() }

    public var localSize: Int { segments.count }
    public var hosts: Int { crossHost?.size ?? 1 }
}

// MARK: - Conveniences over arrays and scalars

extension Communicator {
    public var isRoot: Bool { rank == 0 }

    public func allreduce<T: CollectiveElement>(_ array: inout [T], _ op: ReduceOperation) throws {
        try array.withUnsafeMutableBufferPointer { try allreduce($0, op) }
    }

    public func allreduce<T: CollectiveElement>(_ value: T, _ op: ReduceOperation) throws -> T {
        var array = [value]
        try allreduce(&array, op)
        return array[0]
    }

    public func broadcast<T: CollectiveElement>(_ array: inout [T], root: Int) throws {
        try array.withUnsafeMutableBufferPointer { try broadcast($0, root: root) }
    }

    /// Gathers variable-length arrays from every rank, concatenated in rank order.
    public func allgatherv<T: CollectiveElement>(_ local: [T]) throws -> [T] {
        var counts = [Int](repeating: 0, count: size)
        counts[rank] = local.count
        try allreduce(&counts, .sum)
        var result = [T](repeating: 0, count: counts.reduce(0, +))
        try local.withUnsafeBufferPointer { send in
            try result.withUnsafeMutableBufferPointer { try allgatherv(send, into: $0, counts: counts) }
        }
        return result
    }

    /// Gathers variable-length byte arrays from every rank, concatenated in rank order (packed eight to an Int on the
    /// way, as the collectives carry no bytes).
    public func allgatherBytes(_ local: [UInt8]) throws -> [UInt8] {
        var counts = [Int](repeating: 0, count: size)
        counts[rank] = local.count
        try allreduce(&counts, .sum)
        var words = [Int](repeating: 0, count: (local.count + 7) / 8)
        words.withUnsafeMutableBytes { raw in local.withUnsafeBytes { raw.copyMemory(from: $0) } }
        let gathered = try allgatherv(words)
        var result = [UInt8](repeating: 0, count: counts.reduce(0, +))
        guard !result.isEmpty else { return result }
        result.withUnsafeMutableBytes { out in
            gathered.withUnsafeBytes { source in
                var from = 0, to = 0
                for count in counts {
                    out.baseAddress!.advanced(by: to).copyMemory(from: source.baseAddress!.advanced(by: from), byteCount: count)
                    from += (count + 7) / 8 * 8
                    to += count
                }
            }
        }
        return result
    }

    /// Broadcasts a string from `root` (its UTF-8 bytes, as Ints).
    public func broadcast(_ string: String, root: Int) throws -> String {
        var length = try allreduce(rank == root ? string.utf8.count : 0, .sum)
        if length < 0 { length = 0 }
        var bytes = [Int](repeating: 0, count: length)
        if rank == root { bytes = string.utf8.map { Int($0) } }
        try broadcast(&bytes, root: root)
        return String(decoding: bytes.map { UInt8(truncatingIfNeeded: $0) }, as: UTF8.self)
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
