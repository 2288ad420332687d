// MPICommunicator: the Communicator over MPI_COMM_WORLD. The one Swift file that imports CMPI and CMPIShims.
// It turns MPI return codes into thrown `MPIError`s carrying MPI's own error string.
import Foundation
internal import CMPI
internal import CMPIShims

public struct MPIError: Error, CustomStringConvertible {
    public let operation: String
    public let code: Int32
    public let message: String
    public var description: String { "MPI \(operation) failed (code \(code)): \(message)" }
}

private func string(from cString: [CChar]) -> String {
    String(decoding: cString.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

@inline(__always)
private func check(_ code: Int32, _ operation: String) throws {
    guard code != 0 else { return }
    var text = [CChar](repeating: 0, count: 512)
    CMPIShims_error_string(code, &text, 512)
    throw MPIError(operation: operation, code: code, message: string(from: text))
}

public final class MPICommunicator: Communicator {
    public let rank: Int
    public let size: Int
    public let hostName: String
    /// Whether `makeSharedReduction` may use shared memory (every rank on one host, or as many on each host).
    public let sharedMemory: Bool
    /// The reduction thread was asked for by name (--reduction-thread): it then wins over shared memory.
    private let threadRequested: Bool

    /// Initialises MPI (once per process) and reads this rank's place in the world. `reductionThread` asks for the
    /// background thread of `submitAllreduceSum` (MPI_THREAD_MULTIPLE); nil: when the job spans several hosts.
    /// Without it, MPI runs at MPI_THREAD_FUNNELED.
    public init(reductionThread: Bool? = false, sharedMemory: Bool = true) throws {
        self.sharedMemory = sharedMemory
        threadRequested = reductionThread == true
        let mode: Int32 = reductionThread.map { $0 ? 1 : 0 } ?? -1
        if CMPIShims_is_initialized() == 0 { try check(CMPIShims_init(mode), "init") }
        var r: Int32 = 0, s: Int32 = 0
        try check(CMPIShims_rank(&r), "comm_rank")
        try check(CMPIShims_size(&s), "comm_size")
        var name = [CChar](repeating: 0, count: 256)
        try check(CMPIShims_processor_name(&name, 256), "get_processor_name")
        rank = Int(r)
        size = Int(s)
        hostName = string(from: name)
    }

    /// True when this process was started by mpirun (OpenMPI or a PMIx launcher).
    public static var launchedByMPI: Bool {
        let env = ProcessInfo.processInfo.environment
        return env["OMPI_COMM_WORLD_SIZE"] != nil || env["PMIX_RANK"] != nil || env["PMI_RANK"] != nil
    }

    public func finalize() { _ = CMPIShims_finalize() }

    public func allreduce<T: CollectiveElement>(_ buffer: UnsafeMutableBufferPointer<T>, _ op: ReduceOperation) throws {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        try check(CMPIShims_allreduce(base, Int64(buffer.count), T.collectiveTypeCode, op.rawValue), "allreduce")
    }

    public func allgatherv<T: CollectiveElement>(_ send: UnsafeBufferPointer<T>, into receive: UnsafeMutableBufferPointer<T>,
                                                 counts: [Int]) throws {
        precondition(counts.count == size, "allgatherv needs one count per rank")
        var displacements = [Int64](repeating: 0, count: size)
        for r in 1..<max(size, 1) { displacements[r] = displacements[r - 1] + Int64(counts[r - 1]) }
        precondition(Int(displacements[size - 1]) + counts[size - 1] <= receive.count, "allgatherv receive buffer too small")
        let counts64 = counts.map { Int64($0) }
        let dummy = UnsafeMutablePointer<T>.allocate(capacity: 1)
        defer { dummy.deallocate() }
        try check(CMPIShims_allgatherv(send.baseAddress ?? UnsafePointer(dummy), Int64(send.count),
                                       receive.baseAddress ?? dummy, counts64, displacements, T.collectiveTypeCode),
                  "allgatherv")
    }

    public func broadcast<T: CollectiveElement>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int) throws {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        try check(CMPIShims_broadcast(base, Int64(buffer.count), T.collectiveTypeCode, Int32(root)), "broadcast")
    }

    public func barrier() throws { try check(CMPIShims_barrier(), "barrier") }

    public func abort(code: Int32) -> Never {
        CMPIShims_abort(code)
        exit(code)
    }

    public func startAllreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws -> PendingReduction {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return .completed }
        precondition(buffer.count <= Int(Int32.max), "a nonblocking bucket must fit in an Int32 count")
        var handle: Int32 = -1
        try check(CMPIShims_iallreduce_sum_f32(base, Int32(buffer.count), &handle), "iallreduce")
        return PendingReduction(handle: handle)
    }

    public func test(_ pending: PendingReduction) throws -> Bool {
        guard pending.handle >= 0 else { return true }
        var done: Int32 = 0
        try check(CMPIShims_test(pending.handle, &done), "test")
        return done != 0
    }

    public func wait(_ pending: PendingReduction) throws {
        guard pending.handle >= 0 else { return }
        try check(CMPIShims_wait(pending.handle), "wait")
    }

    public var hasReductionThread: Bool { CMPIShims_worker_available() != 0 }

    public func submitAllreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        precondition(buffer.count <= Int(Int32.max), "a bucket must fit in an Int32 count")
        try check(CMPIShims_worker_submit(base, Int32(buffer.count)), "submit to the reduction thread")
    }

    public func drainReductions() throws { try check(CMPIShims_worker_drain(), "allreduce (reduction thread)") }

    public func makeSharedReduction(count: Int) throws -> SharedReduction? {
        guard sharedMemory, !threadRequested, size > 1 else { return nil }
        var slot: UnsafeMutablePointer<Float>?
        var handle: Int32 = -1
        try check(CMPIShims_shm_create(Int64(count), 1, &slot, &handle), "shared-memory window")
        guard handle >= 0, let slot else { return nil }
        return MPISharedReduction(handle: handle, slot: slot)
    }

    /// MPI's wall clock, for timing collectives.
    public static func wallTime() -> Double { CMPI.MPI_Wtime() }
}

/// The shared-memory reduction of CMPIShims (an MPI shared window); lives as long as the process.
final class MPISharedReduction: SharedReduction {
    let handle: Int32
    let slot: UnsafeMutablePointer<Float>
    init(handle: Int32, slot: UnsafeMutablePointer<Float>) {
        self.handle = handle
        self.slot = slot
    }
    var hosts: Int { Int(CMPIShims_shm_hosts(handle)) }
    func bucketReady() { CMPIShims_shm_bucket_ready(handle) }
    func reduce(_ range: Range<Int>, bucket: Int) throws {
        try check(CMPIShims_shm_reduce_bucket(handle, Int64(range.lowerBound), Int64(range.count), Int64(bucket)),
                  "allreduce between hosts")
    }
    func endStep(buckets: Int) { CMPIShims_shm_end_step(handle, Int64(buckets)) }
}
