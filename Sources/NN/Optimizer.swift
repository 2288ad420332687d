// Optimizers over one flat range of a ParameterStore: SGD with momentum (PyTorch's form) and Adam with bias
// correction. One loop each; state buffers of the same layout, sized once.
import Tensor

import Foundation

public enum OptimizerKind: String, Sendable, CaseIterable { case sgd, adam }

public final class Optimizer {
    public let kind: OptimizerKind
    public var learningRate: Float
    public let momentum: Float
    public let beta1: Float, beta2: Float, epsilon: Float
    public let range: Range<Int>
    public private(set) var step = 0
    let first: UnsafeMutablePointer<Float>    // (range.count): SGD velocity, or Adam's m
    let second: UnsafeMutablePointer<Float>   // (range.count): Adam's v

    public init(kind: OptimizerKind, learningRate: Float, range: Range<Int>, momentum: Float = 0.9,
                beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8) {
        self.kind = kind
        self.learningRate = learningRate
        self.momentum = momentum
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.range = range
        first = .allocate(capacity: max(range.count, 1))
        second = .allocate(capacity: max(range.count, 1))
        first.initialize(repeating: 0, count: max(range.count, 1))
        second.initialize(repeating: 0, count: max(range.count, 1))
    }

    deinit {
        first.deallocate()
        second.deallocate()
    }

    /// One update of the range from the (already averaged) gradients, split over the BLAS threads, in the C
    /// kernels (CKernels.h). Returns false when a gradient was NaN or Inf: the check rides on the same pass over
    /// memory (an OR of "exponent bits all set", which vectorises where a float sum would not), so it costs nothing
    /// extra. The caller stops the run then; the checkpoint on disk is good.
    @discardableResult
    public func update(_ store: ParameterStore) -> Bool {
        step += 1
        let p = store.parameters + range.lowerBound, g = store.gradients + range.lowerBound
        let lr = learningRate, n = range.count, parts = Parallel.parts(work: range.count)
        let c1 = 1 / (1 - Float(pow(Double(beta1), Double(step))))
        let c2 = 1 / (1 - Float(pow(Double(beta2), Double(step))))
        switch kind {
        case .sgd:
            return Kernels.sgdUpdate(parameters: p, velocity: first, gradients: g, count: n, learningRate: lr,
                                     momentum: momentum, parts: parts)
        case .adam:
            return Kernels.adamUpdate(parameters: p, first: first, second: second, gradients: g, count: n, learningRate: lr,
                                      beta1: beta1, beta2: beta2, correction1: c1, correction2: c2, epsilon: epsilon, parts: parts)
        }
    }

    /// The state for a checkpoint: step, then both moment buffers.
    public var state: (step: Int, first: [Float], second: [Float]) {
        (step, Array(UnsafeBufferPointer(start: first, count: range.count)),
         Array(UnsafeBufferPointer(start: second, count: range.count)))
    }

    public func restore(step: Int, first values1: [Float], second values2: [Float]) {
        precondition(values1.count == range.count && values2.count == range.count)
        self.step = step
        values1.withUnsafeBufferPointer { first.update(from: $0.baseAddress!, count: range.count) }
        values2.withUnsafeBufferPointer { second.update(from: $0.baseAddress!, count: range.count) }
    }
}
