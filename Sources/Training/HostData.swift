// HostData: a data set loaded once per host under mpirun. The lowest rank of each host reads it and puts its samples
// in memory that the host's ranks share; the others take the rest (labels, names, notes) by broadcast. Not a cache:
// the copy lives as long as the process.
import Collective
import Datasets
import Foundation
import Tensor

public enum HostData {
    /// The data set that `load` reads, its samples held once per host. `load` runs on one rank per host, or on
    /// every rank with `everyRankLoads` (a loader that splits the reading over the ranks: it must throw alike on
    /// every rank, or before its first collective); a rank alone on its host, a world kept off shared memory
    /// (`--no-shared-memory`), or a host whose shared-memory file system lacks room keeps a copy per rank. A failure
    /// of any rank's `load` is every rank's error, reported once.
    public static func load(_ world: Communicator, everyRankLoads: Bool = false,
                            _ load: () throws -> DataSet) throws -> DataSet {
        let host = try (world as? TransportWorld)?.hostWorld()
        let reads = everyRankLoads || host == nil || host!.rank == 0
        // A reader's data set, and for the host's other ranks what it holds besides samples and labels (JSON).
        var loaded: Result<(DataSet, header: String), Error>?
        if reads {
            loaded = Result {
                let data = try load()
                return (data, host != nil && !everyRankLoads ? try String(decoding: JSONEncoder().encode(Header(data)), as: UTF8.self) : "")
            }
        }
        if world.size > 1 {
            var failure: String?
            if case .failure(let error) = loaded { failure = String(describing: error) }
            let first = try world.allreduce(failure == nil ? Int.max : world.rank, .min)
            if first != Int.max { throw RunError(try world.broadcast(failure ?? "", root: first), everyRank: true) }
        }
        let mine = try loaded?.get()
        guard let host else { return mine!.0 }
        if everyRankLoads { return try sharingSamples(mine!.0, isFloat: mine!.0.isFloat, over: host).data }
        let fields = try JSONDecoder().decode(Header.self, from: Data(try host.broadcast(mine?.header ?? "", root: 0).utf8))
        var (data, placed) = try sharingSamples(mine?.0 ?? fields.dataSet(), isFloat: fields.isFloat, over: host)
        guard placed else { return host.rank == 0 ? data : try load() }  // no room: each rank reads its own copy
        var labels = data.labels.map(Int.init)
        try host.broadcast(&labels, root: 0)
        data.labels = labels.map { Int32(truncatingIfNeeded: $0) }
        return data
    }

    /// `data` with its samples moved into a block that the ranks of `host` share (rank 0's copy; the others' are
    /// dropped), or as it was when the host has no room for them in shared memory; rank 0 notes which. Collective over
    /// `host`.
    private static func sharingSamples(_ data: DataSet, isFloat: Bool, over host: TransportWorld) throws -> (data: DataSet, placed: Bool) {
        var data = data
        let megabytes = Double(data.count * data.dimension * (isFloat ? 4 : 1)) / 1_048_576
        let placed: Bool
        if isFloat {
            let shared = try sharedCopy(data.features, over: host)
            placed = shared != nil
            if let shared { data.features = Samples(shared: shared) }
        } else {
            let shared = try sharedCopy(data.images, over: host)
            placed = shared != nil
            if let shared { data.images = Samples(shared: shared) }
        }
        if host.rank == 0 {
            data.notes.append(placed ? String(format: "the samples (%.1f MB) are held once on this host, in memory its %d ranks share", megabytes, host.size)
                : String(format: "the samples (%.1f MB) do not fit this host's shared-memory file system: each of its %d ranks holds a copy", megabytes, host.size))
        }
        return (data, placed)
    }

    /// Rank 0's `values` in a block that the ranks of `host` share; nil where the host has no room for it. Collective
    /// over `host`.
    private static func sharedCopy<Element>(_ values: Samples<Element>, over host: TransportWorld) throws -> SharedStorage<Element>? {
        let count = try host.allreduce(host.rank == 0 ? values.count : 0, .max)
        guard let block = try host.sharedBlock(bytes: max(count, 1) * MemoryLayout<Element>.stride) else { return nil }
        precondition(Int(bitPattern: block.base) % MemoryLayout<Element>.alignment == 0, "a shared block aligned for its samples")
        let base = block.base.bindMemory(to: Element.self, capacity: max(count, 1))
        if host.rank == 0, count > 0 {
            values.withUnsafeBufferPointer { base.initialize(from: $0.baseAddress!, count: count) }
        }
        try host.barrier()  // filled before anyone reads it
        return SharedStorage(base: UnsafePointer(base), count: count, owner: block)
    }

    /// What a data set holds besides its samples and labels.
    private struct Header: Codable {
        var name: String
        var count, dimension, classCount: Int
        var isFloat, hasLabels, isImage: Bool
        var classNames, sampleNames, notes: [String]
        var imageShape: [Int]?  // width, height, channels
        var shift, scale: [UInt32]?  // bit patterns: the transform exactly

        init(_ data: DataSet) {
            name = data.name
            count = data.count
            dimension = data.dimension
            classCount = data.classCount
            isFloat = data.isFloat
            hasLabels = data.hasLabels
            isImage = data.isImage
            classNames = data.classNames
            sampleNames = data.sampleNames
            notes = data.notes
            imageShape = data.imageShape.map { [$0.width, $0.height, $0.channels] }
            shift = data.inputTransform?.shift.map(\.bitPattern)
            scale = data.inputTransform?.scale.map(\.bitPattern)
        }

        /// The data set without its samples, its labels all 0 until they come.
        func dataSet() -> DataSet {
            var data = DataSet(name: name, images: [], labels: [], dimension: dimension, classCount: classCount)
            data.inputTransform = shift.flatMap { shift in
                scale.map { FeatureTransform(shift: shift.map(Float.init(bitPattern:)), scale: $0.map(Float.init(bitPattern:))) }
            }
            data.labels = [Int32](repeating: 0, count: count)
            data.count = count
            data.hasLabels = hasLabels
            data.isImage = isImage
            data.classNames = classNames
            data.sampleNames = sampleNames
            data.notes = notes
            data.imageShape = imageShape.map { ImageShape(width: $0[0], height: $0[1], channels: $0[2]) }
            return data
        }
    }
}
