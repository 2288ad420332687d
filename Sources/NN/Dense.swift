// Dense: y = x W + b, with an optional fused ReLU; forward and backward through cblas_sgemm, or oneDNN's bf16 GEMM
// when given bf16 operand buffers (Precision.bf16). B = batch rows, I = inputs, O = outputs. W is (I, O) row-major;
// b is (O). The elementwise work around the GEMMs runs in the C kernels (CKernels.h), split over the BLAS threads.
import Tensor

/// A layer's operands rounded to bf16 for its products: the input as its forward saw it (kept for the weight
/// gradient), the weights as of that forward (the input gradient reuses them), and room for the output gradient.
public struct BF16Operands {
    public let input: UnsafeMutablePointer<UInt16>     // (B, I)
    public let weight: UnsafeMutablePointer<UInt16>    // (I, O)
    public let dOutput: UnsafeMutablePointer<UInt16>   // (B, O), may be shared between layers
}

public struct Dense: Sendable {
    public let inputs: Int
    public let outputs: Int
    public let relu: Bool
    public let weight: Int   // offset of W (I, O) in the store
    public let bias: Int     // offset of b (O)
    public var parameterRange: Range<Int> { weight..<(bias + outputs) }

    public init(inputs: Int, outputs: Int, relu: Bool, layout: inout ParameterLayout) {
        self.inputs = inputs
        self.outputs = outputs
        self.relu = relu
        weight = layout.reserve(inputs * outputs)
        bias = layout.reserve(outputs)
    }

    public var flopsPerRowForward: Int { 2 * inputs * outputs }

    /// output (B, O) = act(input (B, I) W + b). With `bf16`, the product's operands are rounded to bf16 first (the
    /// input unless `inputRounded`: the layer before wrote it there already); `roundOutput` gets the output rounded
    /// to bf16 as well (the next layer's operand).
    public func forward(_ store: ParameterStore, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, rows: Int,
                        bf16: BF16Operands? = nil, inputRounded: Bool = false, roundOutput: UnsafeMutablePointer<UInt16>? = nil) {
        guard rows > 0 else { return }
        if let bf16 {
            if !inputRounded { Kernels.roundToBF16(input, into: bf16.input, count: rows * inputs, parts: Parallel.parts(work: rows * inputs)) }
            Kernels.roundToBF16(store.parameters + weight, into: bf16.weight, count: inputs * outputs,
                       parts: Parallel.parts(work: inputs * outputs))
            BF16.gemm(transposeA: false, transposeB: false, m: rows, n: outputs, k: inputs,
                      a: bf16.input, lda: inputs, b: bf16.weight, ldb: outputs, c: output, ldc: outputs)
        } else {
            BLAS.gemm(transposeA: false, transposeB: false, m: rows, n: outputs, k: inputs,
                      a: input, lda: inputs, b: store.parameters + weight, ldb: outputs, c: output, ldc: outputs)
        }
        // Bias and ReLU over row blocks, one per thread.
        Kernels.biasActivation(output: output, bias: store.parameters + bias, rows: rows, columns: outputs, relu: relu,
                               rounded: roundOutput, parts: Parallel.parts(work: rows * outputs, count: rows))
    }

    /// Accumulates dW += input^T dOutput and db += colsum(dOutput); writes dInput (B, I) = dOutput W^T when asked.
    /// With ReLU, dOutput is masked in place by output > 0 first. `output` is the forward's activated output. With
    /// `bf16`, the products take the bf16 input and weights of this layer's last forward, which must be this one's.
    public func backward(_ store: ParameterStore, input: UnsafePointer<Float>, output: UnsafePointer<Float>,
                         dOutput: UnsafeMutablePointer<Float>, dInput: UnsafeMutablePointer<Float>?, rows: Int,
                         bf16: BF16Operands? = nil) {
        guard rows > 0 else { return }
        // ReLU mask and bias gradient over column blocks, one per thread: each column's sum runs over the rows in
        // order whatever the split.
        // In bf16, the masked dOutput rounded in the same pass.
        Kernels.activationBackward(dOutput: dOutput, dBias: store.gradients + bias, output: output, rows: rows,
                                   columns: outputs, relu: relu, rounded: bf16?.dOutput,
                                   parts: Parallel.parts(work: rows * outputs, count: outputs))
        if let bf16 {
            BF16.gemm(transposeA: true, transposeB: false, m: inputs, n: outputs, k: rows,
                      a: bf16.input, lda: inputs, b: bf16.dOutput, ldb: outputs, beta: 1, c: store.gradients + weight, ldc: outputs)
            if let dInput {
                BF16.gemm(transposeA: false, transposeB: true, m: rows, n: inputs, k: outputs,
                          a: bf16.dOutput, lda: outputs, b: bf16.weight, ldb: outputs, c: dInput, ldc: inputs)
            }
            return
        }
        // dW (I, O) += input^T (I, B) dOutput (B, O)
        BLAS.gemm(transposeA: true, transposeB: false, m: inputs, n: outputs, k: rows,
                  a: input, lda: inputs, b: dOutput, ldb: outputs, beta: 1, c: store.gradients + weight, ldc: outputs)
        if let dInput {
            // dInput (B, I) = dOutput (B, O) W^T (O, I)
            BLAS.gemm(transposeA: false, transposeB: true, m: rows, n: inputs, k: outputs,
                      a: dOutput, lda: outputs, b: store.parameters + weight, ldb: outputs, c: dInput, ldc: inputs)
        }
    }

    /// Glorot uniform: U(-l, l), l = sqrt(6 / (I + O)); or DEC-keras's fan-in variance scaling, l = sqrt(1 / I).
    public func initialize(_ store: ParameterStore, scheme: WeightInit, rng: inout Xoshiro256) {
        let limit: Float = scheme == .glorot ? (6 / Float(inputs + outputs)).squareRoot() : (1 / Float(inputs)).squareRoot()
        for i in 0..<(inputs * outputs) { store.parameters[weight + i] = (2 * rng.nextUnit() - 1) * limit }
        for j in 0..<outputs { store.parameters[bias + j] = 0 }
    }
}

public enum WeightInit: String, Sendable, CaseIterable {
    case glorot
    /// VarianceScaling(scale 1/3, fan_in, uniform), as DEC-keras initialises its autoencoder.
    case fanin
}
