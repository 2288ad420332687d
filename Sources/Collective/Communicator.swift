// Communicator: the collective operations the trainer needs, independent of MPI.
// Not a general MPI binding: only in-place reductions, gathers and broadcasts over one world.

/// An element type that can travel through a collective.
public protocol CollectiveElement: Numeric, Sendable {
    static var collectiveTypeCode: Int32 { get }
}
extension Float: CollectiveElement { public static var collectiveTypeCode: Int32 { 0 } }
extension Double: CollectiveElement { public static var collectiveTypeCode: Int32 { 1 } }
extension Int: CollectiveElement { public static var collectiveTypeCode: Int32 { 2 } }

public enum ReduceOperation: Int32, Sendable { case sum = 0, max = 1, min = 2 }

/// A pending nonblocking reduction; `SingleProcessCommunicator` returns already-completed ones.
public struct PendingReduction: Sendable {
    public let handle: Int32
    public init(handle: Int32) { self.handle = handle }
    public static let completed = PendingReduction(handle: -1)
}

public protocol Communicator: AnyObject {
    var rank: Int { get }
    var size: Int { get }
    /// The host this rank runs on, as MPI names it.
    var hostName: String { get }
    func allreduce<T: CollectiveElement>(_ buffer: UnsafeMutableBufferPointer<T>, _ op: ReduceOperation) throws
    /// Gathers every rank's `send` block into `receive`, rank r's block at the sum of counts[0..<r].
    func allgatherv<T: CollectiveElement>(_ send: UnsafeBufferPointer<T>, into receive: UnsafeMutableBufferPointer<T>,
                                          counts: [Int]) throws
    func broadcast<T: CollectiveElement>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int) throws
    func barrier() throws
    /// Ends every rank of the job (MPI_Abort); never returns.
    func abort(code: Int32) -> Never
    /// Starts an in-place SUM allreduce of floats that completes in the background.
    func startAllreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws -> PendingReduction
    /// Lets MPI progress a pending reduction; true once it completed.
    func test(_ pending: PendingReduction) throws -> Bool
    func wait(_ pending: PendingReduction) throws
    /// True when a background thread can reduce buckets (`submitAllreduceSum`) while this thread computes.
    var hasReductionThread: Bool { get }
    /// Queues an in-place SUM allreduce for the reduction thread; the buffer is off limits until `drainReductions`.
    func submitAllreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws
    /// Waits until every queued reduction is done.
    func drainReductions() throws
    /// Collective. A reduction through memory that the ranks of a host share (one slot of `count` floats each), when
    /// every rank runs on one host, or every host runs as many ranks (>= 2; then hierarchical: shared memory inside
    /// a host, an allreduce of each share between hosts), and it was not turned off; nil otherwise (on every rank alike).
    func makeSharedReduction(count: Int) throws -> SharedReduction?
}

/// Gradient reduction through shared memory: `slot` is this rank's gradient buffer, which the host's other ranks read.
/// A step calls `bucketReady` after each completed bucket (the same sequence of buckets on every rank), then
/// `reduce(_:bucket:)` for each of them in that order, then `endStep`; after it every rank's slot holds the sum over
/// the ranks, added in rank order (so bitwise equal everywhere).
public protocol SharedReduction: AnyObject {
    var slot: UnsafeMutablePointer<Float> { get }
    /// Hosts taking part: 1, or several for the hierarchical reduction.
    var hosts: Int { get }
    func bucketReady()
    /// Sums this rank's share of `range` over the slots once every rank marked bucket `bucket` of this step ready
    /// (and, on several hosts, over the hosts).
    func reduce(_ range: Range<Int>, bucket: Int) throws
    /// Returns once every rank wrote its shares of this step's `buckets` buckets.
    func endStep(buckets: Int)
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

/// The contiguous share of `total` items that `rank` of `size` takes; shares differ by at most one.
public func contiguousShare(total: Int, rank: Int, size: Int) -> Range<Int> {
    let lower = total * rank / size
    let upper = total * (rank + 1) / size
    return lower..<upper
}

/// The largest count of `contiguousShare` over the ranks: what a per-rank batch buffer must hold.
public func largestShare(total: Int, size: Int) -> Int { (total + size - 1) / size }

/// The counts of `contiguousShare` for every rank.
public func shareCounts(total: Int, size: Int) -> [Int] {
    (0..<size).map { contiguousShare(total: total, rank: $0, size: size).count }
}
