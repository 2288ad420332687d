// Gradient checks for Dense, ReLU, MSE and the whole autoencoder; gemm against the triple loop; optimizers by hand.
@testable import Clustering
@testable import Datasets
@testable import NN
@testable import Report
@testable import Tensor
@testable import Training
import TestSupport
import XCTest

final class NNTests: XCTestCase {
    func testGemmMatchesNaiveForEveryTransposition() {
        let m = 7, n = 5, k = 9
        let a = seededValues(m * k, seed: 1).map(Float.init), b = seededValues(k * n, seed: 2).map(Float.init)
        for ta in [false, true] {
            for tb in [false, true] {
                var fast = [Float](repeating: 0.5, count: m * n), slow = fast
                let lda = ta ? m : k, ldb = tb ? k : n
                BLAS.gemm(transposeA: ta, transposeB: tb, m: m, n: n, k: k, alpha: 1.5, a: a, lda: lda, b: b, ldb: ldb,
                          beta: 0.5, c: &fast, ldc: n)
                BLAS.gemmNaive(transposeA: ta, transposeB: tb, m: m, n: n, k: k, alpha: 1.5, a: a, lda: lda, b: b, ldb: ldb,
                               beta: 0.5, c: &slow, ldc: n)
                for i in 0..<(m * n) { assertClose(Double(fast[i]), Double(slow[i]), relative: 1e-5, absolute: 1e-5) }
            }
        }
    }

    /// Loss = sum(output * weights) for a fixed random `weights`, so dOutput = weights.
    func checkDense(relu: Bool) {
        var layout = ParameterLayout()
        let layer = Dense(inputs: 6, outputs: 4, relu: relu, layout: &layout)
        let store = ParameterStore(layout: layout)
        var rng = Xoshiro256(seed: 5)
        layer.initialize(store, scheme: .glorot, rng: &rng)
        for j in 0..<4 { store.parameters[layer.bias + j] = Float(j) * 0.1 - 0.15 }
        let rows = 3
        let input = seededValues(rows * 6, seed: 7).map(Float.init)
        let probe = seededValues(rows * 4, seed: 8).map(Float.init)
        func loss(_ params: [Double], _ x: [Double]) -> Double {
            zip(Reference.dense(layer, params, x, rows: rows), probe).reduce(0.0) { $0 + $1.0 * Double($1.1) }
        }
        var out = [Float](repeating: 0, count: rows * 4)
        layer.forward(store, input: input, output: &out, rows: rows)
        var dOut = probe, dIn = [Float](repeating: 0, count: rows * 6)
        store.zeroGradients(0..<store.count)
        layer.backward(store, input: input, output: out, dOutput: &dOut, dInput: &dIn, rows: rows)
        let params = store.parameterArray(0..<store.count).map(Double.init)
        let x = input.map(Double.init)
        gradientCheck(name: "Dense relu=\(relu) parameters", x: params,
                      analytic: Array(store.gradientBuffer(0..<store.count)).map(Double.init), h: doubleReferenceStep,
                      tolerance: doubleReferenceTolerance) { loss($0, x) }
        gradientCheck(name: "Dense relu=\(relu) input", x: x, analytic: dIn.map(Double.init),
                      h: doubleReferenceStep, tolerance: doubleReferenceTolerance) { loss(params, $0) }
    }

    /// OpenBLAS's generic fallback on a CPU with AVX-512 or AVX2 is replaced by the kernels the flags allow; a
    /// recognised CPU, or one without AVX, keeps OpenBLAS's choice.
    func testKernelsForOpenBLASGenericFallback() {
        let avx512: Set<String> = ["avx", "avx2", "fma", "avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"]
        XCTAssertEqual(BLAS.coreTypeForGenericFallback(coreName: "Prescott", cpuFlags: avx512), "SkylakeX")
        XCTAssertEqual(BLAS.coreTypeForGenericFallback(coreName: "Prescott", cpuFlags: ["avx", "avx2", "fma", "avx512f"]), "Haswell")
        XCTAssertEqual(BLAS.coreTypeForGenericFallback(coreName: "Prescott", cpuFlags: ["sse2", "avx"]), "Sandybridge")
        XCTAssertNil(BLAS.coreTypeForGenericFallback(coreName: "Prescott", cpuFlags: ["sse2", "sse3"]))
        XCTAssertNil(BLAS.coreTypeForGenericFallback(coreName: "Zen", cpuFlags: avx512))
        XCTAssertNil(BLAS.coreTypeForGenericFallback(coreName: "Cooperlake", cpuFlags: avx512))
    }

    func testDenseGradient() { checkDense(relu: false) }
    func testDenseReLUGradient() { checkDense(relu: true) }

    func testMSEGradient() {
        let rows = 2, dims = 5
        let r = seededValues(rows * dims, seed: 3).map(Float.init), t = seededValues(rows * dims, seed: 4).map(Float.init)
        var d = [Float](repeating: 0, count: rows * dims)
        let loss = MSE.lossAndGradient(reconstruction: r, target: t, dReconstruction: &d, rows: rows, dims: dims, scale: 0.5)
        assertClose(loss, MSE.loss(reconstruction: r, target: t, rows: rows, dims: dims), relative: 1e-6)
        gradientCheck(name: "MSE", x: r.map(Double.init), analytic: d.map { Double($0) / 0.5 }, h: doubleReferenceStep,
                      tolerance: doubleReferenceTolerance) { x in
            Reference.mse(x, t.map(Double.init), rows: rows, dims: dims)
        }
    }

    func testAutoencoderGradient() {
        var layout = ParameterLayout()
        let ae = Autoencoder(widths: [6, 5, 4, 2], maxRows: 3, layout: &layout)
        let store = ParameterStore(layout: layout)
        var rng = Xoshiro256(seed: 11)
        ae.initialize(store, scheme: .glorot, rng: &rng)
        for i in 0..<store.count where store.parameters[i] == 0 { store.parameters[i] = 0.05 }  // biases off zero
        let rows = 3
        let x = seededValues(rows * 6, seed: 12).map { Float(abs($0)) }
        let xd = x.map(Double.init)
        func loss(_ p: [Double]) -> Double {
            Reference.mse(Reference.decode(ae, p, Reference.encode(ae, p, xd, rows: rows), rows: rows), xd, rows: rows, dims: 6)
        }
        let params = store.parameterArray(0..<store.count).map(Double.init)
        ae.forward(store, input: x, rows: rows)
        var d = [Float](repeating: 0, count: rows * 6)
        _ = MSE.lossAndGradient(reconstruction: ae.reconstruction, target: x, dReconstruction: &d, rows: rows, dims: 6, scale: 1)
        store.zeroGradients(0..<store.count)
        let dZ = ae.backwardDecoder(store, dReconstruction: &d, rows: rows) { _ in }
        ae.backwardEncoder(store, input: x, dEmbedding: dZ, rows: rows) { _ in }
        let analytic = Array(store.gradientBuffer(0..<store.count)).map(Double.init)
        gradientCheck(name: "autoencoder", x: params, analytic: analytic, h: doubleReferenceStep, tolerance: doubleReferenceTolerance,
                      loss: loss)
        XCTAssertEqual(ae.flopsPerSample(encoderOnly: false), 3 * 2 * (6 * 5 + 5 * 4 + 4 * 2) * 2 - 2 * 6 * 5)
    }

    func testSGDMomentumByHand() {
        var layout = ParameterLayout()
        _ = layout.reserve(2)
        let store = ParameterStore(layout: layout)
        store.setParameters([1, -2], at: 0)
        let sgd = Optimizer(kind: .sgd, learningRate: 0.1, range: 0..<2, momentum: 0.9)
        store.gradients[0] = 1; store.gradients[1] = -0.5
        sgd.update(store)   // v = g; p = (1 - 0.1, -2 + 0.05)
        assertClose(Double(store.parameters[0]), 0.9); assertClose(Double(store.parameters[1]), -1.95)
        sgd.update(store)   // v = 0.9 g + g = 1.9 g; p -= 0.19 g
        assertClose(Double(store.parameters[0]), 0.71); assertClose(Double(store.parameters[1]), -1.855)
    }

    func testAdamByHand() {
        var layout = ParameterLayout()
        _ = layout.reserve(1)
        let store = ParameterStore(layout: layout)
        store.setParameters([0.5], at: 0)
        let adam = Optimizer(kind: .adam, learningRate: 0.01, range: 0..<1)
        store.gradients[0] = 2
        adam.update(store)  // mhat = 2, vhat = 4: p -= 0.01 * 2 / (2 + 1e-8)
        assertClose(Double(store.parameters[0]), 0.49, relative: 1e-6)
        store.gradients[0] = -1
        adam.update(store)
        // m = 0.9*0.2 - 0.1 = 0.08, mhat = 0.08/0.19; v = 0.999*0.004 + 0.001 = 0.004996, vhat = v/0.001999
        let mhat = 0.08 / 0.19, vhat = 0.004996 / (1 - 0.999 * 0.999)
        assertClose(Double(store.parameters[0]), 0.49 - 0.01 * mhat / (vhat.squareRoot() + 1e-8), relative: 1e-5)
    }

    /// The C kernels (vector bodies, scalar tails, split over threads) against the formulas written out in Swift:
    /// the same bits, since neither fuses multiply-adds. 100,003 elements: two thread chunks and a 3-element tail.
    func testOptimizerKernelsMatchScalarReference() {
        let n = 100_003
        var layout = ParameterLayout()
        _ = layout.reserve(n)
        let saved = BLAS.threads
        BLAS.threads = 2
        defer { BLAS.threads = saved }
        for kind in OptimizerKind.allCases {
            let store = ParameterStore(layout: layout)
            var rng = Xoshiro256(seed: 1, stream: 2)
            for i in 0..<n { store.parameters[i] = 2 * rng.nextUnit() - 1 }
            var p = Array(UnsafeBufferPointer(start: store.parameters, count: n))
            var m = [Float](repeating: 0, count: n), v = [Float](repeating: 0, count: n)
            let optimizer = Optimizer(kind: kind, learningRate: 0.01, range: 0..<n)
            for step in 1...3 {
                for i in 0..<n { store.gradients[i] = 2 * rng.nextUnit() - 1 }
                XCTAssertTrue(optimizer.update(store))
                let b1: Float = 0.9, b2: Float = 0.999
                let c1 = 1 / (1 - Float(pow(Double(b1), Double(step)))), c2 = 1 / (1 - Float(pow(Double(b2), Double(step))))
                for i in 0..<n {
                    let g = store.gradients[i]
                    switch kind {
                    case .sgd:
                        m[i] = 0.9 * m[i] + g
                        p[i] = p[i] - 0.01 * m[i]
                    case .adam:
                        m[i] = b1 * m[i] + (1 - b1) * g
                        v[i] = b2 * v[i] + (1 - b2) * g * g
                        p[i] = p[i] - 0.01 * (m[i] * c1) / ((v[i] * c2).squareRoot() + 1e-8)
                    }
                }
                let mismatches = (0..<n).filter { store.parameters[$0].bitPattern != p[$0].bitPattern }
                XCTAssertEqual(mismatches.count, 0, "\(kind) step \(step): first mismatch at \(mismatches.first ?? -1)")
            }
            // A non-finite gradient is reported wherever it sits: in a vector body, in the other thread's chunk, in the tail.
            for (index, bad) in [(1_000, Float.nan), (90_000, Float.infinity), (n - 1, -Float.infinity)] {
                for i in 0..<n { store.gradients[i] = 0.5 }
                store.gradients[index] = bad
                XCTAssertFalse(optimizer.update(store), "\(kind): \(bad) at \(index) not seen")
            }
        }
    }

    /// Bias + ReLU forward and the ReLU mask + bias gradient backward of Dense, against plain loops, on a layer wide
    /// enough to split over two threads and with a width that leaves vector tails.
    func testDenseElementwiseKernelsMatchScalarReference() {
        let saved = BLAS.threads
        BLAS.threads = 2
        defer { BLAS.threads = saved }
        for (rows, inputs, outputs) in [(256, 3, 517), (5, 4, 37)] {
            for relu in [true, false] {
                var layout = ParameterLayout()
                let layer = Dense(inputs: inputs, outputs: outputs, relu: relu, layout: &layout)
                let store = ParameterStore(layout: layout)
                var rng = Xoshiro256(seed: 3, stream: 4)
                for i in 0..<store.count { store.parameters[i] = 2 * rng.nextUnit() - 1 }
                let x = (0..<(rows * inputs)).map { _ in 2 * rng.nextUnit() - 1 }
                var y = [Float](repeating: 0, count: rows * outputs)
                layer.forward(store, input: x, output: &y, rows: rows)
                var expected = [Float](repeating: 0, count: rows * outputs)
                BLAS.gemm(transposeA: false, transposeB: false, m: rows, n: outputs, k: inputs, a: x, lda: inputs,
                          b: store.parameters + layer.weight, ldb: outputs, c: &expected, ldc: outputs)
                for r in 0..<rows {
                    for j in 0..<outputs {
                        let z = expected[r * outputs + j] + store.parameters[layer.bias + j]
                        expected[r * outputs + j] = relu ? (z > 0 ? z : 0) : z
                    }
                }
                XCTAssertEqual(y, expected, "forward \(rows)x\(outputs) relu \(relu)")

                var dy = (0..<(rows * outputs)).map { _ in 2 * rng.nextUnit() - 1 }
                var maskedDy = dy
                var dBias = [Float](repeating: 0, count: outputs)
                for r in 0..<rows {
                    for j in 0..<outputs {
                        let g = relu && !(y[r * outputs + j] > 0) ? 0 : dy[r * outputs + j]
                        maskedDy[r * outputs + j] = g
                        dBias[j] += g
                    }
                }
                layer.backward(store, input: x, output: y, dOutput: &dy, dInput: nil, rows: rows)
                XCTAssertEqual(dy, maskedDy, "masked dOutput \(rows)x\(outputs) relu \(relu)")
                XCTAssertEqual(Array(UnsafeBufferPointer(start: store.gradients + layer.bias, count: outputs)), dBias,
                               "bias gradient \(rows)x\(outputs) relu \(relu)")
            }
        }
    }

    /// The updates flush subnormals (DAZ/FTZ): a second moment of 1e-40 with a zero gradient becomes exactly 0 (it
    /// would be 0.999e-40, a subnormal every later step must work through slowly), and so does a momentum of 1e-40;
    /// normal values are updated as before. The AVX2 body (the first 16) and the scalar tail (the 17th) alike.
    func testOptimiserUpdatesFlushSubnormals() {
        let n = 17
        var p = [Float](repeating: 1, count: n), g = [Float](repeating: 0, count: n)
        var m = [Float](repeating: 1e-40, count: n), v = [Float](repeating: 1e-40, count: n)
        g[3] = 0.5
        XCTAssertTrue(Kernels.adamUpdate(parameters: &p, first: &m, second: &v, gradients: g, count: n, learningRate: 0.001,
                                         beta1: 0.9, beta2: 0.999, correction1: 1, correction2: 1, epsilon: 1e-7, parts: 1))
        for i in [0, 15, 16] {
            XCTAssertEqual(v[i].bitPattern, 0, "second moment \(i)")
            XCTAssertEqual(m[i].bitPattern, 0, "first moment \(i)")
            XCTAssertEqual(p[i], 1)
        }
        XCTAssertEqual(v[3], 0.001 * 0.25, accuracy: 1e-8)   // (1 - 0.999 in float32) x 0.5^2
        var velocity = [Float](repeating: 1e-40, count: n)
        XCTAssertTrue(Kernels.sgdUpdate(parameters: &p, velocity: &velocity, gradients: g, count: n, learningRate: 0.01,
                                        momentum: 0.9, parts: 1))
        XCTAssertEqual(velocity[16].bitPattern, 0)
        XCTAssertEqual(velocity[0].bitPattern, 0)
    }

    func testAdamConvergesOnAQuadratic() {
        var layout = ParameterLayout()
        _ = layout.reserve(3)
        let store = ParameterStore(layout: layout)
        let target: [Float] = [1, -2, 3]
        let adam = Optimizer(kind: .adam, learningRate: 0.05, range: 0..<3)
        for _ in 0..<2000 {
            for i in 0..<3 { store.gradients[i] = 2 * (store.parameters[i] - target[i]) }
            adam.update(store)
        }
        for i in 0..<3 { assertClose(Double(store.parameters[i]), Double(target[i]), absolute: 1e-2) }
    }

    func testCheckpointRoundTripAndDefects() throws {
        let c = Checkpoint(widths: [4, 3], clusters: 2, sections: ["a": [1, 2, 3], "b": [-1]], metadata: ["epoch": "3"])
        let bytes = c.encoded()
        let back = try Checkpoint.decode(bytes, path: "x")
        XCTAssertEqual(back.widths, [4, 3]); XCTAssertEqual(back.sections["a"], [1, 2, 3]); XCTAssertEqual(back.metadata["epoch"], "3")
        XCTAssertThrowsError(try Checkpoint.decode(Array(bytes.dropLast(5)), path: "x")) { XCTAssert("\($0)".contains("checksum")) }
        var flipped = bytes; flipped[30] ^= 1
        XCTAssertThrowsError(try Checkpoint.decode(flipped, path: "x")) { XCTAssert("\($0)".contains("checksum")) }
        XCTAssertThrowsError(try Checkpoint.decode(Array("garbage!garbage!".utf8), path: "x")) { XCTAssert("\($0)".contains("magic")) }
    }

    /// Crafted files with a valid checksum: sizes that overflow or exceed the file, architectures the sections do not
    /// match, non-finite values. Each is an error before anything is allocated from it.
    func testCraftedCheckpointsAreRefused() throws {
        func resealed(_ bytes: [UInt8]) -> [UInt8] {
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            for b in bytes.dropLast(8) { hash = (hash ^ UInt64(b)) &* 0x100_0000_01b3 }
            return Array(bytes.dropLast(8)) + withUnsafeBytes(of: hash.littleEndian) { Array($0) }
        }
        let weights = [Float](repeating: 0.5, count: Checkpoint.parameterCount(widths: [4, 3])!)
        let good = Checkpoint(widths: [4, 3], clusters: 2, sections: ["autoencoder": weights, "centres": [1, 2, 3, 4, 5, 6]]).encoded()
        XCTAssertNoThrow(try Checkpoint.decode(good, path: "x"))
        // The first section is "autoencoder": its element count (u64) follows the 8 + 4 + 4 + 8 + 4 + 4 header bytes,
        // its name length and name.
        let countAt = 8 + 4 + 4 + 2 * 4 + 4 + 4 + 4 + "autoencoder".utf8.count
        for count: UInt64 in [1 << 61, .max, 1 << 62 + 1, UInt64(weights.count) + 1] {
            var bytes = good
            withUnsafeBytes(of: count.littleEndian) { for (i, b) in $0.enumerated() { bytes[countAt + i] = b } }
            XCTAssertThrowsError(try Checkpoint.decode(resealed(bytes), path: "x"), "count \(count)")
        }
        func refused(_ c: Checkpoint, _ text: String, line: UInt = #line) {
            XCTAssertThrowsError(try Checkpoint.decode(c.encoded(), path: "x"), line: line) {
                XCTAssert("\($0)".contains(text), "\($0) should mention \(text)", line: line)
            }
        }
        refused(Checkpoint(widths: [4, 2_000_000_000], clusters: 0, sections: [:]), "implausible layer widths")
        refused(Checkpoint(widths: [4, 3], clusters: Int(UInt32.max), sections: [:]), "implausible cluster count")
        refused(Checkpoint(widths: [4, 3], clusters: 2, sections: ["autoencoder": [1, 2]]), "autoencoder weights")
        refused(Checkpoint(widths: [4, 3], clusters: 2, sections: ["autoencoder": weights, "centres": [1]]), "centre values")
        refused(Checkpoint(widths: [4, 3], clusters: 2, sections: ["autoencoder": weights, "centres": [Float](repeating: .nan, count: 6)]), "NaN")
    }
}
