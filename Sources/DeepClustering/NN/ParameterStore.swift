// ParameterStore: every parameter of a model in one contiguous Float buffer, every gradient in a second
// buffer of the same layout (llm.c style). Layers hold offsets; the allreduce, the optimizer and the
// checkpoint each see one flat range. Not thread-safe; one store per rank.

/// Hands out offsets before the buffers exist.
public struct ParameterLayout: Sendable {
    public private(set) var count = 0
    public init() {}
    public mutating func reserve(_ elements: Int) -> Int {
        defer { count += elements }
        return count
    }
}

public final class ParameterStore {
    public let count: Int
    public let parameters: UnsafeMutablePointer<Float>   // (count)
    /// (count), same layout. Allocated here, or memory that other ranks read too (`placeGradients`).
    public private(set) var gradients: UnsafeMutablePointer<Float>
    /// Who owns `gradients` when they live elsewhere (kept alive with the store); nil while the store owns them.
    public private(set) var gradientOwner: AnyObject?

    public init(layout: ParameterLayout) {
        count = layout.count
        parameters = .allocate(capacity: max(count, 1))
        gradients = .allocate(capacity: max(count, 1))
        parameters.initialize(repeating: 0, count: max(count, 1))
        gradients.initialize(repeating: 0, count: max(count, 1))
    }

    deinit {
        parameters.deallocate()
        if gradientOwner == nil { gradients.deallocate() }
    }

    /// Moves the gradients into `memory` (at least `count` floats, owned by `owner`), e.g. a slot of a window that
    /// every rank of the host can read: the backward pass then writes them where the reduction reads them.
    public func placeGradients(in memory: UnsafeMutablePointer<Float>, owner: AnyObject) {
        memory.update(from: gradients, count: count)
        if gradientOwner == nil { gradients.deallocate() }
        gradients = memory
        gradientOwner = owner
    }

    public func zeroGradients(_ range: Range<Int>) {
        Kernels.zero(gradients + range.lowerBound, count: range.count, parts: Parallel.parts(work: range.count))
    }

    public func parameterBuffer(_ range: Range<Int>) -> UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: parameters + range.lowerBound, count: range.count)
    }

    public func gradientBuffer(_ range: Range<Int>) -> UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: gradients + range.lowerBound, count: range.count)
    }

    public func parameterArray(_ range: Range<Int>) -> [Float] { Array(parameterBuffer(range)) }

    public func setParameters(_ values: [Float], at offset: Int) {
        precondition(offset + values.count <= count)
        values.withUnsafeBufferPointer { (parameters + offset).update(from: $0.baseAddress!, count: values.count) }
    }

    /// FNV-1a over the bit patterns of a range: equal on every rank when parameters agree bitwise.
    public func checksum(_ range: Range<Int>) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for i in range {
            hash = (hash ^ UInt64(parameters[i].bitPattern)) &* 0x100_0000_01b3
        }
        return hash
    }
}
