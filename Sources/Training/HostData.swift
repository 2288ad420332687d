// HostData: a data set loaded once per host under mpirun. The lowest rank of each host reads it and puts its samples
// in memory that the host's ranks share; the others take the rest (labels, names, notes) by broadcast. Not a cache:
// the copy lives as long as the process.
import Collective
import Datasets
import Foundation
import Tensor

public enum HostData {
    /// The data set that `load` reads, its samples held once per host. `load` runs on one rank per host, or on
    /// every rank with `everyRankLoads` (a loader that splits the reading over the ranks); a rank alone on its host,
    /// or a world kept off shared memory (`--no-shared-memory`), keeps a copy of its own. A failure of any rank's
    /// `load` is every rank's error, reported once.
    public static func load(_ world: Communicator, everyRankLoads: Bool = false,
                            _ load: () throws -> DataSet) throws -> DataSet {
        let host = try (world as? TransportWorld)?.hostWorld()
        let reads = everyRankLoads || host == nil || host!.rank == 0
        var loaded: Result<DataSet, Error>?
        if reads { loaded = Result { try load() } }
        if world.size > 1 {
            var failure: String?
            if case .failure(let error) = loaded { failure = String(describing: error) }
            let first = try world.allreduce(failure == nil ? Int.max : world.rank, .min)
            if first != Int.max { throw RunError(try world.broadcast(failure ?? "", root: first), everyRank: true) }
        }
        guard let host else { return try loaded!.get() }
        if everyRankLoads { let data = try loaded!.get(); return try sharingSamples(data, isFloat: data.isFloat, over: host) }
        let (data, isFloat) = try received(try? loaded?.get(), over: host)
        return try sharingSamples(data, isFloat: isFloat, over: host)
    }

    /// Rank 0's data set on every rank of `host`, without its samples (those come after), and whether they are Float.
    private static func received(_ data: DataSet?, over host: Communicator) throws -> (DataSet, isFloat: Bool) {
        let header = try host.broadcast(data.map { try String(decoding: JSONEncoder().encode(Header($0)), as: UTF8.self) } ?? "",
                                        root: 0)
        let fields = try JSONDecoder().decode(Header.self, from: Data(header.utf8))
        var labels = data?.labels.map(Int.init) ?? [Int](repeating: 0, count: fields.count)
        try host.broadcast(&labels, root: 0)
        return (data ?? fields.dataSet(labels: labels.map { Int32(truncatingIfNeeded: $0) }), fields.isFloat)
    }

    /// `data` with its samples moved into a block that the ranks of `host` share: rank 0's copy, the others' dropped.
    private static func sharingSamples(_ data: DataSet, isFloat: Bool, over host: TransportWorld) throws -> DataSet {
        var data = data
        if isFloat {
            guard let shared = try shared(data.features, over: host) else { return data }
            data.features = Samples(shared: shared)
        } else {
            guard let shared = try shared(data.images, over: host) else { return data }
            data.images = Samples(shared: shared)
        }
        if host.rank == 0 {
            let megabytes = Double(data.count * data.dimension * (isFloat ? 4 : 1)) / 1_048_576
            data.notes.append(String(format: "the samples (%.0f MB) are held once on this host, in memory its %d ranks share",
                                     megabytes, host.size))
        }
        return data
    }

    /// Rank 0's `values` in a shared block (nil for none: nothing to share).
    private static func shared<Element>(_ values: Samples<Element>, over host: TransportWorld) throws -> SharedStorage<Element>? {
        let count = try host.allreduce(host.rank == 0 ? values.count : 0, .max)
        guard count > 0 else { return nil }
        let block = try host.sharedBlock(bytes: count * MemoryLayout<Element>.stride)
        let base = block.base.bindMemory(to: Element.self, capacity: count)
        if host.rank == 0 {
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
        var shift, scale: [Float]?

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
            shift = data.inputTransform?.shift
            scale = data.inputTransform?.scale
        }

        func dataSet(labels: [Int32]) -> DataSet {
            let transform = shift.flatMap { shift in scale.map { FeatureTransform(shift: shift, scale: $0) } }
            var data = isFloat
                ? DataSet(name: name, features: [], labels: [], dimension: dimension, classCount: classCount, transform: transform)
                : DataSet(name: name, images: [], labels: [], dimension: dimension, classCount: classCount)
            data.labels = labels
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
