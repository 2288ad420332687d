// bf16: the rounding of operands, oneDNN's bf16 GEMM against a float32 reference within a bound derived from bf16's
// 8 significant bits, its independence of the thread split, and an autoencoder in bf16 against one in float32. The
// GEMM tests skip where oneDNN has no bf16 kernels (no AVX-512; they cannot run there). The rule of `--precision` for
// every support level runs everywhere (PrecisionRuleTests); Tests/fuzz.sh checks it end to end under DNNL_MAX_CPU_ISA.
@testable import NN
@testable import Tensor
@testable import Training
import Collective
import TestSupport
import XCTest

final class PrecisionTests: XCTestCase {
    func rounded(_ values: [Float], parts: Int = 1) -> [UInt16] {
        var out = [UInt16](repeating: 0, count: values.count)
        Kernels.roundToBF16(values, into: &out, count: values.count, parts: parts)
        return out
    }

    /// Round to nearest, ties to even: bit patterns worked out by hand.
    func testRoundingToNearestEven() {
        let cases: [(UInt32, UInt16)] = [
            (0x3F80_0000, 0x3F80),   // 1
            (0x3F80_7FFF, 0x3F80),   // just below half an ulp: down
            (0x3F80_8000, 0x3F80),   // a tie, even below: down
            (0x3F81_8000, 0x3F82),   // a tie, odd below: up to even
            (0x3F80_8001, 0x3F81),   // just above half: up
            (0x8000_0000, 0x8000),   // -0
            (0xBF7F_FFFF, 0xBF80),   // -(1 - 2^-24): up in magnitude to -1
            (0x7F7F_FFFF, 0x7F80),   // the largest float: past the largest bf16, Inf
            (0x7F80_0000, 0x7F80),   // Inf
            (0xFF80_0000, 0xFF80),   // -Inf
            (0x0000_0001, 0x0000),   // the smallest subnormal: 0
            (0x7F80_0001, 0x7FC0),   // a signalling NaN whose payload would round away: a quiet NaN
            (0xFFC0_0000, 0xFFC0),   // a quiet NaN stays
        ]
        let out = rounded(cases.map { Float(bitPattern: $0.0) })
        for (i, (input, expected)) in cases.enumerated() {
            XCTAssertEqual(out[i], expected, String(format: "%08x -> %04x, expected %04x", input, out[i], expected))
        }
    }

    /// The vector path (the first 16 of every 16) and the scalar tail agree, whatever the split.
    func testRoundingDoesNotDependOnTheSplit() {
        var rng = Xoshiro256(seed: 3)
        let values = (0..<(1 << 17) + 37).map { _ in Float(bitPattern: UInt32(truncatingIfNeeded: rng.next())) }
        let one = rounded(values, parts: 1)
        XCTAssertEqual(rounded(values, parts: 3), one)
        // Each against the scalar definition.
        for (x, h) in zip(values, one) where !x.isNaN {
            let bits = x.bitPattern
            XCTAssertEqual(h, UInt16((bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16))
        }
    }

    /// C = op(A) op(B) in bf16 against the exact product of the float32 operands. Each operand is off by at most
    /// u = 2^-8 relative (8 significant bits, to nearest), so each term a b by at most 2u + u^2; oneDNN sums the K
    /// terms in float32, at most K 2^-24 (1 + small) of the sum of |a b| more. So |C - exact| <= (2u + u^2 +
    /// 1.01 K 2^-24) sum_k |a_ik b_kj|, per element. And the product is that of the rounded operands: C is ten times
    /// nearer (in L2) to the exact product of the bf16 values than that is to the exact product of the float32 ones,
    /// which a float32 GEMM of the unrounded operands would not be.
    func testBF16GemmWithinTheDerivedBound() throws {
        guard BF16.isAvailable else { throw XCTSkip("oneDNN has no bf16 GEMM on this CPU (\(BF16.instructionSet))") }
        let u = pow(2.0, -8.0)
        for (m, n, k) in [(85, 500, 784), (33, 17, 256), (256, 10, 2000), (1, 40, 30)] {
            for ta in [false, true] {
                for tb in [false, true] {
                    let a = seededValues(m * k, seed: 11).map(Float.init), b = seededValues(k * n, seed: 12).map(Float.init)
                    let lda = ta ? m : k, ldb = tb ? k : n
                    let ha = rounded(a), hb = rounded(b)
                    let start = seededValues(m * n, seed: 13).map(Float.init)
                    var c = start
                    BF16.gemm(transposeA: ta, transposeB: tb, m: m, n: n, k: k, alpha: 1, a: ha, lda: lda, b: hb, ldb: ldb,
                              beta: 1, c: &c, ldc: n, parts: 2)
                    var offRounded = 0.0, roundingEffect = 0.0
                    for i in 0..<m {
                        for j in 0..<n {
                            var exact = Double(start[i * n + j]), exactRounded = exact, magnitude = 0.0
                            for p in 0..<k {
                                let (ia, ib) = (ta ? p * lda + i : i * lda + p, tb ? j * ldb + p : p * ldb + j)
                                let x = Double(a[ia]), y = Double(b[ib])
                                exact += x * y
                                exactRounded += Double(BF16.value(ha[ia])) * Double(BF16.value(hb[ib]))
                                magnitude += abs(x * y)
                            }
                            offRounded += pow(Double(c[i * n + j]) - exactRounded, 2)
                            roundingEffect += pow(exact - exactRounded, 2)
                            let bound = (2 * u + u * u + 1.01 * Double(k + 1) * pow(2.0, -24)) * magnitude + abs(exact) * pow(2.0, -24)
                            let error = abs(Double(c[i * n + j]) - exact)
                            XCTAssertLessThanOrEqual(error, bound, "\(m)x\(n)x\(k) ta \(ta) tb \(tb) at (\(i), \(j))")
                        }
                    }
                    XCTAssertLessThan(offRounded.squareRoot(), 0.1 * roundingEffect.squareRoot(),
                                      "\(m)x\(n)x\(k) ta \(ta) tb \(tb): not the product of the bf16 operands")
                }
            }
        }
    }

    /// The pieces the pool runs (the larger of M and N cut on multiples of 16) give every element the same bits as
    /// one product: the model's shapes, odd ones, and one whose cut would leave a piece one wide.
    func testBF16GemmDoesNotDependOnTheThreads() throws {
        guard BF16.isAvailable else { throw XCTSkip("oneDNN has no bf16 GEMM on this CPU (\(BF16.instructionSet))") }
        for (m, n, k) in [(256, 500, 784), (256, 10, 2000), (500, 2000, 85), (85, 784, 500), (33, 20, 64), (20, 33, 64)] {
            for (ta, tb) in [(false, false), (true, false), (false, true)] {
                let a = rounded(seededValues(m * k, seed: 21).map(Float.init)), b = rounded(seededValues(k * n, seed: 22).map(Float.init))
                let lda = ta ? m : k, ldb = tb ? k : n
                var results: [[Float]] = []
                for parts in [1, 2, 3, 5] {
                    var c = [Float](repeating: 0, count: m * n)
                    BF16.gemm(transposeA: ta, transposeB: tb, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, c: &c, ldc: n, parts: parts)
                    results.append(c)
                }
                for r in results.dropFirst() { XCTAssertEqual(r, results[0], "\(m)x\(n)x\(k) ta \(ta) tb \(tb)") }
            }
        }
    }

    /// One pretraining step's gradient in bf16 against float32's, same weights and batch: close (bf16's rounding,
    /// relative L2 under 2%), not equal (the bf16 path ran), and the same on 1 and 2 threads.
    func testAutoencoderGradientInBF16() throws {
        guard BF16.isAvailable else { throw XCTSkip("oneDNN has no bf16 GEMM on this CPU (\(BF16.instructionSet))") }
        let saved = BLAS.threads
        defer { BLAS.threads = saved }
        let widths = [784, 500, 500, 2000, 10], rows = 64
        let input = seededValues(rows * 784, seed: 31).map { Float(abs($0)) }
        func gradient(_ precision: Precision, threads: Int) -> [Float] {
            BLAS.threads = threads
            var layout = ParameterLayout()
            let ae = Autoencoder(widths: widths, maxRows: rows, layout: &layout, precision: precision)
            let store = ParameterStore(layout: layout)
            var rng = Xoshiro256(seed: 9)
            ae.initialize(store, scheme: .glorot, rng: &rng)
            let out = ae.forward(store, input: input, rows: rows)
            let dOut = UnsafeMutablePointer<Float>.allocate(capacity: rows * 784)
            defer { dOut.deallocate() }
            for i in 0..<(rows * 784) { dOut[i] = 2 * (out[i] - input[i]) / Float(rows * 784) }
            let dz = ae.backwardDecoder(store, dReconstruction: dOut, rows: rows) { _ in }
            ae.backwardEncoder(store, input: input, dEmbedding: dz, rows: rows) { _ in }
            return Array(UnsafeBufferPointer(start: store.gradients + ae.range.lowerBound, count: ae.range.count))
        }
        let single = gradient(.float32, threads: 1), half = gradient(.bf16, threads: 1)
        XCTAssertEqual(gradient(.bf16, threads: 2), half)
        var difference = 0.0, norm = 0.0
        for (x, y) in zip(single, half) { difference += Double(x - y) * Double(x - y); norm += Double(x) * Double(x) }
        let relative = (difference / norm).squareRoot()
        print("bf16 against float32, one pretraining gradient: relative L2 difference \(relative)")
        XCTAssertLessThan(relative, 0.02)
        XCTAssertGreaterThan(relative, 1e-5)
    }
}

/// `--precision`'s rule, for every support level and a world whose ranks differ: bf16 under auto only where every
/// rank's CPU has AMX or AMD's full-rate bf16 dot product; bf16 as asked wherever oneDNN has a bf16 GEMM, an error
/// where it has none.
final class PrecisionRuleTests: XCTestCase {
    typealias Support = PrecisionChoice.Support

    func testAutoTakesBF16OnlyWhereEveryRankMultipliesItFaster() throws {
        let expected: [(Support, Precision)] = [(.none, .float32), (.emulated, .float32), (.native, .float32),
                                                (.fullRateDot, .bf16), (.matrixUnits, .bf16)]
        for (least, precision) in expected {
            let choice = try PrecisionChoice.choose(.auto, least: least, mine: least, isa: "test")
            XCTAssertEqual(choice.precision, precision, "\(least)")
            XCTAssertEqual(choice.flagValue, "\(precision.rawValue) (auto)")
        }
        let mixed = try PrecisionChoice.choose(.auto, least: .native, mine: .matrixUnits, isa: "AMX")
        XCTAssertEqual(mixed.precision, .float32, "one rank without AMX holds the world to float32")
        XCTAssert(mixed.reason.contains("another rank's CPU"), mixed.reason)
        let amdAndAMX = try PrecisionChoice.choose(.auto, least: .fullRateDot, mine: .matrixUnits, isa: "AMX")
        XCTAssertEqual(amdAndAMX.precision, .bf16, "AMX and AMD's AVX-512 BF16 both multiply bf16 faster")
        let amdAndIntel = try PrecisionChoice.choose(.auto, least: .native, mine: .fullRateDot, isa: "AVX-512 BF16 (AMD)")
        XCTAssertEqual(amdAndIntel.precision, .float32, "an Intel rank without AMX holds the world to float32")
    }

    func testExplicitSettings() throws {
        for least in [Support.none, .emulated, .native, .fullRateDot, .matrixUnits] {
            XCTAssertEqual(try PrecisionChoice.choose(.float32, least: least, mine: least, isa: "test").precision, .float32)
        }
        XCTAssertThrowsError(try PrecisionChoice.choose(.bf16, least: .none, mine: .none, isa: "no AVX-512"))
        XCTAssertThrowsError(try PrecisionChoice.choose(.bf16, least: .none, mine: .native, isa: "AVX-512 BF16"))
        for least in [Support.emulated, .native, .fullRateDot, .matrixUnits] {
            XCTAssertEqual(try PrecisionChoice.choose(.bf16, least: least, mine: least, isa: "test").precision, .bf16, "\(least)")
        }
        XCTAssert(try PrecisionChoice.choose(.bf16, least: .native, mine: .native, isa: "AVX-512 BF16").reason.contains("no faster"))
    }
}
