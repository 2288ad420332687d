// ParameterStore: every parameter of a model in one contiguous Float buffer, every gradient in a second
// buffer of the same layout (llm.c style). Layers hold offsets; the allreduce, the optimizer and the
// checkpoint each see one flat range. Not thread-safe; one store per rank.
import Tensor

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
    /// (count), same layout: the store's own, or memory a gradient transport owns (the model keeps it alive).
    public let gradients: UnsafeMutablePointer<Float>
    private let ownsGradients: Bool

    /// A store with gradient memory of its own (one rank, tests).
    public convenience init(layout: ParameterLayout) {
        let gradients = UnsafeMutablePointer<Float>.allocate(capacity: max(layout.count, 1))
        gradients.initialize(repeating: 0, count: max(layout.count, 1))
        self.init(layout: layout, gradients: gradients, owned: true)
    }

    /// A store whose gradients live in `gradients` (at least `layout.count` floats, zeroed), which outlives it.
    public convenience init(layout: ParameterLayout, gradients: UnsafeMutablePointer<Float>) {
        self.init(layout: layout, gradients: gradients, owned: false)
    }

    private init(layout: ParameterLayout, gradients: UnsafeMutablePointer<Float>, owned: Bool) {
        count = layout.count
        parameters = .allocate(capacity: max(count, 1))
        parameters.initialize(repeating: 0, count: max(count, 1))
        self.gradients = gradients
        ownsGradients = owned
    }

    deinit {
        parameters.deallocate()
        if ownsGradients { gradients.deallocate() }
    }

    public func zeroGradients(_ range: Range<Int>) {
        precondition(range.upperBound <= count)
        Kernels.zero(gradients + range.lowerBound, count: range.count, parts: Parallel.parts(work: range.count))
    }

    public func parameterBuffer(_ range: Range<Int>) -> UnsafeMutableBufferPointer<Float> {
        precondition(range.upperBound <= count)
        return UnsafeMutableBufferPointer(start: parameters + range.lowerBound, count: range.count)
    }

    public func gradientBuffer(_ range: Range<Int>) -> UnsafeMutableBufferPointer<Float> {
        precondition(range.upperBound <= count)
        return UnsafeMutableBufferPointer(start: gradients + range.lowerBound, count: range.count)
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
