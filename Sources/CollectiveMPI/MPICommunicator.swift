// MPICommunicator: the Communicator over MPI_COMM_WORLD. The one Swift file that imports CMPI and CMPIShims; every
// MPI call of the program is here. MPI return codes become thrown `MPIError`s carrying MPI's own error string.
import Collective
import Foundation
internal import CMPI
internal import CMPIShims

public struct MPIError: Error, CustomStringConvertible {
    public let operation: String
    public let code: Int32
    public let message: String
    public var description: String { "MPI \(operation) failed (code \(code)): \(message)" }
}

@inline(__always)
private func check(_ code: Int32, _ operation: @autoclosure () -> String) throws {
    guard code != 0 else { return }
    var text = [CChar](repeating: 0, count: Int(MPI_MAX_ERROR_STRING) + 1)
    var length: Int32 = 0
    if MPI_Error_string(code, &text, &length) != 0 { length = 0 }
    let message = String(decoding: text.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    throw MPIError(operation: operation(), code: code, message: message)
}

private func datatype(_ kind: ElementKind) -> MPI_Datatype {
    switch kind {
    case .float: return CMPIShims_FLOAT()
    case .double: return CMPIShims_DOUBLE()
    case .int64: return CMPIShims_INT64()
    case .int32: return CMPIShims_INT32()
    }
}

private func operation(_ op: ReduceOperation) -> MPI_Op {
    switch op {
    case .sum: return CMPIShims_SUM()
    case .max: return CMPIShims_MAX()
    case .min: return CMPIShims_MIN()
    }
}

/// MPI counts are Int32: larger buffers go in chunks of at most Int32.max elements.
private func chunks(_ count: Int) -> StrideTo<Int> { stride(from: 0, to: count, by: Int(Int32.max)) }

public final class MPICommunicator: TransportWorld {
    public let rank: Int
    public let size: Int
    public let hostName: String
    let comm: MPI_Comm
    /// Whether `shareMemory` may use shared memory (not turned off by --no-shared-memory or by --mca btl).
    private let sharedMemory: Bool
    public let prefersReductionThread: Bool
    /// MPI granted MPI_THREAD_MULTIPLE (asked for when a reduction thread may run).
    private let threadsAllowed: Bool

    /// Initialises MPI (once per process) and reads this rank's place in the world. `reductionThread` asks for
    /// MPI_THREAD_MULTIPLE, so that a background thread can reduce gradients: true, false, or nil = when the job
    /// spans several hosts (where the wire, not the cores, is slow). Otherwise MPI runs at MPI_THREAD_FUNNELED.
    public init(reductionThread: Bool? = false, sharedMemory: Bool = true) throws {
        let threads = reductionThread ?? MPICommunicator.spansSeveralHosts
        prefersReductionThread = reductionThread == true
        // A thread that waits in a collective while its peer still computes must yield the core to this rank's own
        // compute (unless the user set mpi_yield_when_idle).
        if threads { setenv("OMPI_MCA_mpi_yield_when_idle", "1", 0) }
        var initialized: Int32 = 0
        try check(MPI_Initialized(&initialized), "initialized")
        var provided: Int32 = 0
        if initialized == 0 {
            let level = Int32(threads ? MPI_THREAD_MULTIPLE : MPI_THREAD_FUNNELED)
            try check(MPI_Init_thread(nil, nil, level, &provided), "init")
        } else {
            try check(MPI_Query_thread(&provided), "query_thread")
        }
        threadsAllowed = threads && provided >= Int32(MPI_THREAD_MULTIPLE)
        comm = CMPIShims_COMM_WORLD()
        // Errors come back as codes, so Swift can throw them instead of MPI aborting silently.
        try check(MPI_Comm_set_errhandler(comm, CMPIShims_ERRORS_RETURN()), "comm_set_errhandler")
        var r: Int32 = 0, s: Int32 = 0
        try check(MPI_Comm_rank(comm, &r), "comm_rank")
        try check(MPI_Comm_size(comm, &s), "comm_size")
        var name = [CChar](repeating: 0, count: Int(MPI_MAX_PROCESSOR_NAME) + 1)
        var length: Int32 = 0
        try check(MPI_Get_processor_name(&name, &length), "get_processor_name")
        rank = Int(r)
        size = Int(s)
        hostName = String(decoding: name.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        self.sharedMemory = sharedMemory && !MPICommunicator.sharedMemoryTransportExcluded
    }

    /// A communicator of the same process over another MPI communicator (duplicates and splits of the world).
    private init(comm: MPI_Comm, hostName: String) throws {
        self.comm = comm
        try check(MPI_Comm_set_errhandler(comm, CMPIShims_ERRORS_RETURN()), "comm_set_errhandler")
        var r: Int32 = 0, s: Int32 = 0
        try check(MPI_Comm_rank(comm, &r), "comm_rank")
        try check(MPI_Comm_size(comm, &s), "comm_size")
        rank = Int(r)
        size = Int(s)
        self.hostName = hostName
        sharedMemory = false
        prefersReductionThread = false
        threadsAllowed = false
    }

    deinit {
        guard comm != CMPIShims_COMM_WORLD() else { return }
        var finalized: Int32 = 0
        MPI_Finalized(&finalized)
        var c: MPI_Comm? = comm
        if finalized == 0 { MPI_Comm_free(&c) }
    }

    /// True when this process was started by mpirun (OpenMPI or a PMIx launcher).
    public static var launchedByMPI: Bool {
        let env = ProcessInfo.processInfo.environment
        return env["OMPI_COMM_WORLD_SIZE"] != nil || env["PMIX_RANK"] != nil || env["PMI_RANK"] != nil
    }

    /// Whether the job spans several hosts, from what mpirun tells each rank before MPI_Init.
    private static var spansSeveralHosts: Bool {
        let env = ProcessInfo.processInfo.environment
        guard let size = env["OMPI_COMM_WORLD_SIZE"].flatMap(Int.init),
              let local = env["OMPI_COMM_WORLD_LOCAL_SIZE"].flatMap(Int.init) else { return false }
        return local < size
    }

    /// Whether the user kept MPI off shared memory (`--mca btl tcp,self`, to emulate a network, or `^vader`): then the
    /// gradient reduction keeps off it too. mpirun hands --mca settings to each rank as OMPI_MCA_* variables, the
    /// same on every rank.
    private static var sharedMemoryTransportExcluded: Bool {
        guard let btl = ProcessInfo.processInfo.environment["OMPI_MCA_btl"], !btl.isEmpty else { return false }
        let named = btl.contains("vader") || btl.contains("sm")
        return btl.hasPrefix("^") ? named : !named
    }

    public func finalize() {
        var finalized: Int32 = 0
        MPI_Finalized(&finalized)
        if finalized == 0 && comm == CMPIShims_COMM_WORLD() { MPI_Finalize() }
    }

    public func allreduce<T: CollectiveElement>(_ buffer: UnsafeMutableBufferPointer<T>, _ op: ReduceOperation) throws {
        guard let base = buffer.baseAddress else { return }
        for start in chunks(buffer.count) {
            let n = Int32(min(buffer.count - start, Int(Int32.max)))
            try check(MPI_Allreduce(CMPIShims_IN_PLACE(), base + start, n, datatype(T.elementKind), operation(op), comm),
                      "allreduce")
        }
    }

    public func allgatherv<T: CollectiveElement>(_ send: UnsafeBufferPointer<T>, into receive: UnsafeMutableBufferPointer<T>,
                                                 counts: [Int]) throws {
        precondition(counts.count == size, "allgatherv needs one count per rank")
        var displacements = [Int](repeating: 0, count: size)
        for r in 1..<max(size, 1) { displacements[r] = displacements[r - 1] + counts[r - 1] }
        precondition(displacements[size - 1] + counts[size - 1] <= receive.count, "allgatherv receive buffer too small")
        precondition(send.count == counts[rank], "allgatherv: this rank sends what its count says")
        guard let out = receive.baseAddress else { return }
        if let source = send.baseAddress, send.count > 0, source != out + displacements[rank] {  // else sent in place
            (out + displacements[rank]).update(from: source, count: send.count)
        }
        if displacements[size - 1] + counts[size - 1] <= Int(Int32.max) {
            let intCounts = counts.map(Int32.init), intDisplacements = displacements.map(Int32.init)
            try check(MPI_Allgatherv(CMPIShims_IN_PLACE(), 0, CMPIShims_DATATYPE_NULL(), out, intCounts, intDisplacements,
                                     datatype(T.elementKind), comm), "allgatherv")
        } else {  // too large for Int32 displacements: each rank broadcasts its block, in chunks
            for r in 0..<size {
                try broadcast(UnsafeMutableBufferPointer(start: out + displacements[r], count: counts[r]), root: r)
            }
        }
    }

    public func broadcast<T: CollectiveElement>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int) throws {
        guard let base = buffer.baseAddress else { return }
        for start in chunks(buffer.count) {
            let n = Int32(min(buffer.count - start, Int(Int32.max)))
            try check(MPI_Bcast(base + start, n, datatype(T.elementKind), Int32(root), comm), "broadcast")
        }
    }

    public func barrier() throws { try check(MPI_Barrier(comm), "barrier") }

    public func abort(code: Int32) -> Never {
        MPI_Abort(comm, code)
        exit(code)
    }

    /// MPI's wall clock, for timing collectives.
    public static func wallTime() -> Double { MPI_Wtime() }

    // MARK: - For the gradient transports

    public func hostWorld() throws -> TransportWorld? {
        guard sharedMemory else { return nil }  // the same on every rank
        var splitComm: MPI_Comm?
        try check(MPI_Comm_split_type(comm, Int32(MPI_COMM_TYPE_SHARED), Int32(rank), CMPIShims_INFO_NULL(), &splitComm),
                  "comm_split_type")
        let local = try MPICommunicator(comm: splitComm!, hostName: hostName)
        return local.size > 1 ? local : nil
    }

    public func sharedBlock(bytes: Int) throws -> SharedBlock? {
        // The window's memory is a file in osc/sm's backing directory (/dev/shm on Linux). Where that file system is
        // smaller than the block (a container's 64 MB /dev/shm), the first touch past its room would end the rank
        // (SIGBUS), so rank 0 looks first and the host follows its answer.
        let fits = rank == 0 && MPICommunicator.sharedMemoryRoom() >= bytes + bytes / 8 + (64 << 20)
        guard try allreduce(fits ? 1 : 0, .max) == 1 else { return nil }
        var window = OpaquePointer(bitPattern: 0) as MPI_Win?
        var mine: UnsafeMutableRawPointer?
        let code = withUnsafeMutablePointer(to: &mine) { pointer in
            MPI_Win_allocate_shared(MPI_Aint(rank == 0 ? bytes : 0), 1, CMPIShims_INFO_NULL(), comm,
                                    UnsafeMutableRawPointer(pointer), &window)
        }
        try check(code, "win_allocate_shared (\(bytes) bytes)")
        try check(MPI_Win_set_errhandler(window, CMPIShims_ERRORS_RETURN()), "win_set_errhandler")
        var size: MPI_Aint = 0
        var unit: Int32 = 0
        var base: UnsafeMutableRawPointer?
        try check(withUnsafeMutablePointer(to: &base) { MPI_Win_shared_query(window, 0, &size, &unit, UnsafeMutableRawPointer($0)) },
                  "win_shared_query")
        guard let base, Int(size) >= bytes else {
            throw MPIError(operation: "win_shared_query", code: -1, message: "no block of \(bytes) bytes on local rank 0")
        }
        // As with `shareMemory`: the window is collective to free, so it stays until MPI_Finalize frees it on every
        // rank together.
        return SharedBlock(base: base) {}
    }

    /// Bytes free for shared windows: in osc/sm's backing directory (`--mca osc_sm_backing_directory`, default
    /// /dev/shm); 0 where it cannot be read.
    private static func sharedMemoryRoom() -> Int {
        let directory = ProcessInfo.processInfo.environment["OMPI_MCA_osc_sm_backing_directory"] ?? "/dev/shm"
        var info = statvfs()
        guard statvfs(directory, &info) == 0 else { return 0 }
        return Int(info.f_bavail) * Int(info.f_frsize)
    }

    public func duplicateForThread() throws -> Communicator? {
        guard threadsAllowed else { return nil }
        var duplicate: MPI_Comm?
        try check(MPI_Comm_dup(comm, &duplicate), "comm_dup")
        return try MPICommunicator(comm: duplicate!, hostName: hostName)
    }

    public func shareMemory(bytes: Int) throws -> SharedSegments? {
        guard sharedMemory, size > 1 else { return nil }  // the same on every rank
        var splitComm: MPI_Comm?
        try check(MPI_Comm_split_type(comm, Int32(MPI_COMM_TYPE_SHARED), 0, CMPIShims_INFO_NULL(), &splitComm), "comm_split_type")
        let localComm = splitComm!
        let local = try MPICommunicator(comm: localComm, hostName: hostName)
        var cross: MPICommunicator?
        if local.size != size {
            // Several hosts: shares line up across hosts only when every host runs as many ranks (>= 2; with one
            // rank per host there is nothing to share). Every rank decides alike from the world's minimum and maximum.
            let smallest = try allreduce(local.size, .min), largest = try allreduce(local.size, .max)
            guard smallest == largest, local.size >= 2 else { return nil }
            var crossComm: MPI_Comm?
            try check(MPI_Comm_split(comm, Int32(local.rank), Int32(rank), &crossComm), "comm_split")
            cross = try MPICommunicator(comm: crossComm!, hostName: hostName)
        }
        var info: MPI_Info? = CMPIShims_INFO_NULL()
        try check(MPI_Info_create(&info), "info_create")
        defer { MPI_Info_free(&info) }
        MPI_Info_set(info, "alloc_shared_noncontig", "true")
        var window = OpaquePointer(bitPattern: 0) as MPI_Win?
        var mine: UnsafeMutableRawPointer?
        let code = withUnsafeMutablePointer(to: &mine) { pointer in
            MPI_Win_allocate_shared(MPI_Aint(bytes), 1, info, localComm, UnsafeMutableRawPointer(pointer), &window)
        }
        try check(code, "win_allocate_shared (\(bytes) bytes)")
        var segments: [UnsafeMutableRawPointer] = []
        for q in 0..<local.size {
            var qBytes: MPI_Aint = 0
            var unit: Int32 = 0
            var base: UnsafeMutableRawPointer?
            try check(withUnsafeMutablePointer(to: &base) { MPI_Win_shared_query(window, Int32(q), &qBytes, &unit, UnsafeMutableRawPointer($0)) },
                      "win_shared_query")
            guard let base else { throw MPIError(operation: "win_shared_query", code: -1, message: "no segment for local rank \(q)") }
            segments.append(base)
        }
        segments[local.rank].initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        try local.barrier()  // every segment zeroed before anyone reads one
        // The window is collective to free, and a model may go on one rank while another fails: it stays until
        // MPI_Finalize, which frees it on every rank together.
        return SharedSegments(localRank: local.rank, segments: segments, crossHost: cross, local: local) {}
    }
}
