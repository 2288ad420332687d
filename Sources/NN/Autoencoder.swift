// Autoencoder: a stack of Dense layers, encoder widths w0-w1-...-wL, decoder mirrored. ReLU after every
// hidden layer; the embedding and the reconstruction are linear. Buffers are sized once for `maxRows`; in bf16
// (`precision`), each layer also holds its operands rounded to bf16 (BF16Operands).
// B = batch rows, D = input dims, E = embedding dims.
import Tensor

public final class Autoencoder {
    public let widths: [Int]
    public let encoder: [Dense]
    public let decoder: [Dense]
    public let maxRows: Int
    /// The arithmetic of the products (Precision); fixed for the autoencoder's life.
    public let precision: Precision
    /// Parameter ranges: the decoder is laid out first, so the encoder and whatever follows it are one suffix.
    public let decoderRange: Range<Int>
    public let encoderRange: Range<Int>
    public var range: Range<Int> { decoderRange.lowerBound..<encoderRange.upperBound }
    public var inputDimension: Int { widths[0] }
    public var embeddingDimension: Int { widths[widths.count - 1] }

    // Activations: encoderOut[l] (B, widths[l+1]); decoderOut[l] (B, reversed widths[l+1]).
    let encoderOut: [UnsafeMutablePointer<Float>]
    let decoderOut: [UnsafeMutablePointer<Float>]
    // Ping-pong gradient buffers, (B, max width) each.
    let gradientA: UnsafeMutablePointer<Float>
    let gradientB: UnsafeMutablePointer<Float>
    // bf16 operands per layer (empty in float32); the output-gradient scratch is one (B, max width) buffer for all.
    let encoderBF16: [BF16Operands]
    let decoderBF16: [BF16Operands]
    let bf16Buffers: [UnsafeMutablePointer<UInt16>]

    public init(widths: [Int], maxRows: Int, layout: inout ParameterLayout, precision: Precision = .float32) {
        precondition(widths.count >= 2 && widths.allSatisfy { $0 > 0 }, "autoencoder widths must be positive")
        self.widths = widths
        self.maxRows = max(maxRows, 1)
        let depth = widths.count - 1
        let mirrored = Array(widths.reversed())
        let decoderStart = layout.count
        decoder = (0..<depth).map { l in
            Dense(inputs: mirrored[l], outputs: mirrored[l + 1], relu: l < depth - 1, layout: &layout)
        }
        decoderRange = decoderStart..<layout.count
        let encoderStart = layout.count
        encoder = (0..<depth).map { l in
            Dense(inputs: widths[l], outputs: widths[l + 1], relu: l < depth - 1, layout: &layout)
        }
        encoderRange = encoderStart..<layout.count
        let rows = self.maxRows
        encoderOut = encoder.map { UnsafeMutablePointer<Float>.allocate(capacity: rows * $0.outputs) }
        decoderOut = decoder.map { UnsafeMutablePointer<Float>.allocate(capacity: rows * $0.outputs) }
        let widest = widths.max()!
        gradientA = .allocate(capacity: rows * widest)
        gradientB = .allocate(capacity: rows * widest)
        self.precision = precision
        var buffers: [UnsafeMutablePointer<UInt16>] = []
        func bf16Operands(_ layers: [Dense], scratch: UnsafeMutablePointer<UInt16>) -> [BF16Operands] {
            guard precision == .bf16 else { return [] }
            return layers.map { layer in
                let input = UnsafeMutablePointer<UInt16>.allocate(capacity: rows * layer.inputs)
                let weight = UnsafeMutablePointer<UInt16>.allocate(capacity: layer.inputs * layer.outputs)
                buffers += [input, weight]
                return BF16Operands(input: input, weight: weight, dOutput: scratch)
            }
        }
        let scratch = UnsafeMutablePointer<UInt16>.allocate(capacity: precision == .bf16 ? rows * widest : 0)
        buffers.append(scratch)
        encoderBF16 = bf16Operands(encoder, scratch: scratch)
        decoderBF16 = bf16Operands(decoder, scratch: scratch)
        bf16Buffers = buffers
    }

    deinit {
        bf16Buffers.forEach { $0.deallocate() }
        (encoderOut + decoderOut).forEach { $0.deallocate() }
        gradientA.deallocate()
        gradientB.deallocate()
    }

    public func initialize(_ store: ParameterStore, scheme: WeightInit, rng: inout Xoshiro256) {
        for layer in encoder + decoder { layer.initialize(store, scheme: scheme, rng: &rng) }
    }

    /// The embedding (B, E) of the last `encode` or `forward`.
    public var embedding: UnsafeMutablePointer<Float> { encoderOut[encoderOut.count - 1] }
    /// The reconstruction (B, D) of the last `forward`.
    public var reconstruction: UnsafeMutablePointer<Float> { decoderOut[decoderOut.count - 1] }

    /// Encoder only: input (B, D) -> embedding (B, E).
    @discardableResult
    public func encode(_ store: ParameterStore, input: UnsafePointer<Float>, rows: Int) -> UnsafeMutablePointer<Float> {
        precondition(rows <= maxRows)
        forward(encoder, bf16: encoderBF16, input: input, outputs: encoderOut, store: store, rows: rows)
        return embedding
    }

    /// Decoder only, from the current embedding (B, E) -> reconstruction (B, D).
    @discardableResult
    public func decode(_ store: ParameterStore, rows: Int) -> UnsafeMutablePointer<Float> {
        forward(decoder, bf16: decoderBF16, input: UnsafePointer(embedding), outputs: decoderOut, store: store, rows: rows)
        return reconstruction
    }

    /// `layers` in turn from `input`; in bf16 each layer's epilogue rounds its output into the next one's operand
    /// (the first layer rounds its input itself, so no rounding outlives the call).
    private func forward(_ layers: [Dense], bf16: [BF16Operands], input: UnsafePointer<Float>,
                         outputs: [UnsafeMutablePointer<Float>], store: ParameterStore, rows: Int) {
        var x = input
        for (l, layer) in layers.enumerated() {
            let next = l + 1 < bf16.count ? bf16[l + 1].input : nil
            layer.forward(store, input: x, output: outputs[l], rows: rows, bf16: bf16.isEmpty ? nil : bf16[l],
                          inputRounded: l > 0, roundOutput: next)
            x = UnsafePointer(outputs[l])
        }
    }

    @discardableResult
    public func forward(_ store: ParameterStore, input: UnsafePointer<Float>, rows: Int) -> UnsafeMutablePointer<Float> {
        encode(store, input: input, rows: rows)
        return decode(store, rows: rows)
    }

    /// Backward through the decoder from dReconstruction (B, D); returns dEmbedding (B, E) in scratch space.
    /// `afterLayer` is called after each layer's gradients are complete (for overlapping their allreduce); an error it
    /// throws ends the backward pass and reaches the caller.
    public func backwardDecoder(_ store: ParameterStore, dReconstruction: UnsafeMutablePointer<Float>, rows: Int,
                                afterLayer: (Dense) throws -> Void) rethrows -> UnsafeMutablePointer<Float> {
        var dOut = dReconstruction
        for l in stride(from: decoder.count - 1, through: 0, by: -1) {
            let input = l == 0 ? UnsafePointer(embedding) : UnsafePointer(decoderOut[l - 1])
            let dInput = dOut == gradientA ? gradientB : gradientA
            decoder[l].backward(store, input: input, output: decoderOut[l], dOutput: dOut, dInput: dInput, rows: rows,
                                bf16: decoderBF16.isEmpty ? nil : decoderBF16[l])
            try afterLayer(decoder[l])
            dOut = dInput
        }
        return dOut
    }

    /// Backward through the encoder from dEmbedding (B, E); the input's gradient is not formed.
    public func backwardEncoder(_ store: ParameterStore, input: UnsafePointer<Float>,
                                dEmbedding: UnsafeMutablePointer<Float>, rows: Int,
                                afterLayer: (Dense) throws -> Void) rethrows {
        var dOut = dEmbedding
        for l in stride(from: encoder.count - 1, through: 0, by: -1) {
            let layerInput = l == 0 ? input : UnsafePointer(encoderOut[l - 1])
            let dInput = dOut == gradientA ? gradientB : gradientA
            encoder[l].backward(store, input: layerInput, output: encoderOut[l], dOutput: dOut,
                                dInput: l == 0 ? nil : dInput, rows: rows, bf16: encoderBF16.isEmpty ? nil : encoderBF16[l])
            try afterLayer(encoder[l])
            dOut = dInput
        }
    }

    /// Scratch (B, E) where a loss writes dEmbedding before `backwardEncoder`.
    public var embeddingGradientScratch: UnsafeMutablePointer<Float> { gradientA }

    /// FLOPs per sample: forward and backward (2x forward) of every layer, less the input gradient of layer 0.
    public func flopsPerSample(encoderOnly: Bool) -> Int {
        let encoderForward = encoder.reduce(0) { $0 + $1.flopsPerRowForward }
        let decoderForward = decoder.reduce(0) { $0 + $1.flopsPerRowForward }
        let first = encoder[0].flopsPerRowForward
        return encoderOnly ? 3 * encoderForward - first : 3 * (encoderForward + decoderForward) - first
    }
}
