// InProcessCommunicator: a world whose ranks are threads of one process, so that `swift test` runs every gradient
// transport (shared memory, the reduction thread, blocking) against the serial sum. Each collective publishes every
// rank's buffer, meets at a barrier, and each rank reads what it needs from the others; reductions add in rank order.
import Foundation

/// The state the threads of one world share.
public final class InProcessWorld: @unchecked Sendable {
    public let size: Int
    private let condition = NSCondition()
    private var arrived = 0
    private var generation = 0
    /// Each rank's published buffer for the collective in progress.
    fileprivate var published: [UnsafeMutableRawPointer?]
    /// Handed from rank 0 to the others: a shared allocation, a duplicate world.
    fileprivate var handoff: AnyObject?
    /// Seconds a barrier waits for the other threads before it gives up (a test that lost a thread must not hang).
    public var timeout: Double

    public init(size: Int, timeout: Double = 120) {
        precondition(size >= 1)
        self.size = size
        self.timeout = timeout
        published = Array(repeating: nil, count: size)
    }

    /// The communicator of each rank, to be used by one thread each.
    public func communicators() -> [InProcessCommunicator] { (0..<size).map { InProcessCommunicator(world: self, rank: $0) } }

    /// Runs `body` on `size` threads, one per rank, and returns their results in rank order; rethrows the first error.
    public static func run<R>(ranks: Int, _ body: @escaping @Sendable (InProcessCommunicator) throws -> R) throws -> [R] {
        let world = InProcessWorld(size: ranks)
        let box = ResultBox<R>(count: ranks)
        let threads = world.communicators().map { communicator in
            Thread {
                do { box.set(communicator.rank, .success(try body(communicator))) } catch { box.set(communicator.rank, .failure(error)) }
            }
        }
        for thread in threads { thread.stackSize = 8 << 20; thread.start() }
        return try box.wait()
    }

    fileprivate func barrier() throws {
        condition.lock()
        defer { condition.unlock() }
        let mine = generation
        arrived += 1
        if arrived == size {
            arrived = 0
            generation += 1
            condition.broadcast()
            return
        }
        let deadline = Date(timeIntervalSinceNow: timeout)
        while generation == mine {
            if !condition.wait(until: deadline) && generation == mine {
                throw CollectiveTimeout(seconds: timeout)
            }
        }
    }
}

public struct CollectiveTimeout: Error, CustomStringConvertible {
    public let seconds: Double
    public var description: String { "a rank did not reach the collective within \(seconds) s" }
}

private final class ResultBox<R>: @unchecked Sendable {
    private let condition = NSCondition()
    private var results: [Result<R, Error>?]
    init(count: Int) { results = Array(repeating: nil, count: count) }
    func set(_ rank: Int, _ result: Result<R, Error>) {
        condition.lock()
        results[rank] = result
        condition.broadcast()
        condition.unlock()
    }
    func wait() throws -> [R] {
        condition.lock()
        while results.contains(where: { $0 == nil }) { condition.wait() }
        condition.unlock()
        return try results.map { try $0!.get() }
    }
}

/// Memory that every thread of a world reads, freed when the last rank lets go of it.
private final class SharedAllocation {
    let base: UnsafeMutableRawPointer
    init(bytes: Int) { base = .allocate(byteCount: max(bytes, 1), alignment: 4096) }
    deinit { base.deallocate() }
}

public final class InProcessCommunicator: TransportWorld, @unchecked Sendable {
    public let world: InProcessWorld
    public let rank: Int
    public var size: Int { world.size }
    public var hostName: String { "in-process" }
    /// Tests: turns the reduction thread or shared memory off, as the MPI options do.
    public var allowsThread = true
    public var allowsSharedMemory = true
    /// Tests: the bytes a shared block may take (as the room of MPI's shared-memory file system); nil: no limit.
    public var sharedRoom: Int? = nil
    public var prefersReductionThread = false

    init(world: InProcessWorld, rank: Int) {
        self.world = world
        self.rank = rank
    }

    /// Publishes this rank's buffer, meets the others, lets `read` use every rank's buffer, and meets them again
    /// (so no buffer changes while another rank still reads it).
    private func exchange(_ mine: UnsafeMutableRawPointer?, _ read: ([UnsafeMutableRawPointer?]) throws -> Void) throws {
        world.published[rank] = mine
        try world.barrier()
        try read(world.published)
        try world.barrier()
    }

    public func allreduce<T: CollectiveElement>(_ buffer: UnsafeMutableBufferPointer<T>, _ op: ReduceOperation) throws {
        var result = [T](repeating: 0, count: buffer.count)
        try exchange(UnsafeMutableRawPointer(buffer.baseAddress)) { all in
            for (q, pointer) in all.enumerated() {
                let other = pointer!.assumingMemoryBound(to: T.self)
                for i in 0..<buffer.count { result[i] = q == 0 ? other[i] : op.apply(result[i], other[i]) }
            }
        }
        for i in 0..<buffer.count { buffer[i] = result[i] }
    }

    public func allgatherv<T: CollectiveElement>(_ send: UnsafeBufferPointer<T>, into receive: UnsafeMutableBufferPointer<T>,
                                                 counts: [Int]) throws {
        precondition(counts.count == size && send.count == counts[rank], "allgatherv needs one count per rank")
        let sendCopy = UnsafeMutableBufferPointer<T>.allocate(capacity: max(send.count, 1))
        defer { sendCopy.deallocate() }
        for i in 0..<send.count { sendCopy[i] = send[i] }
        try exchange(UnsafeMutableRawPointer(sendCopy.baseAddress)) { all in
            var offset = 0
            for (q, pointer) in all.enumerated() {
                let other = pointer!.assumingMemoryBound(to: T.self)
                for i in 0..<counts[q] { receive[offset + i] = other[i] }
                offset += counts[q]
            }
        }
    }

    public func broadcast<T: CollectiveElement>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int) throws {
        let copy = UnsafeMutableBufferPointer<T>.allocate(capacity: max(buffer.count, 1))
        defer { copy.deallocate() }
        for i in 0..<buffer.count { copy[i] = buffer[i] }
        try exchange(UnsafeMutableRawPointer(copy.baseAddress)) { all in
            let source = all[root]!.assumingMemoryBound(to: T.self)
            for i in 0..<buffer.count { buffer[i] = source[i] }
        }
    }

    public func barrier() throws { try world.barrier() }

    public func abort(code: Int32) -> Never { fatalError("in-process world aborted with code \(code)") }

    /// Rank 0 makes `make()`; every rank gets it.
    private func handedOut<T: AnyObject>(_ make: () -> T) throws -> T {
        if rank == 0 { world.handoff = make() }
        try world.barrier()
        let object = world.handoff as! T
        try world.barrier()
        if rank == 0 { world.handoff = nil }
        return object
    }

    public func shareMemory(bytes: Int) throws -> SharedSegments? {
        let allowed = try allreduce(allowsSharedMemory && size > 1 ? 1 : 0, .min) == 1
        guard allowed else { return nil }
        let slot = (bytes + 4095) / 4096 * 4096
        let allocation = try handedOut { SharedAllocation(bytes: slot * size) }
        let segments = (0..<size).map { allocation.base + $0 * slot }
        segments[rank].initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        try barrier()
        return SharedSegments(localRank: rank, segments: segments, crossHost: nil, local: self) { _ = allocation }
    }

    /// The threads of one process are one host.
    public func hostWorld() throws -> TransportWorld? {
        try allreduce(allowsSharedMemory && size > 1 ? 1 : 0, .min) == 1 ? self : nil
    }

    public func sharedBlock(bytes: Int) throws -> SharedBlock? {
        guard try allreduce(rank == 0 && bytes > (sharedRoom ?? .max) ? 1 : 0, .max) == 0 else { return nil }
        let allocation = try handedOut { SharedAllocation(bytes: bytes) }
        return SharedBlock(base: allocation.base) { _ = allocation }
    }

    public func duplicateForThread() throws -> Communicator? {
        let allowed = try allreduce(allowsThread ? 1 : 0, .min) == 1
        guard allowed else { return nil }
        let twin = try handedOut { InProcessWorld(size: size, timeout: world.timeout) }
        return InProcessCommunicator(world: twin, rank: rank)
    }
}
