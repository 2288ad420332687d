// `bench`: times pretraining steps and DEC encoder steps (median after warm-up), measures SGEMM GFLOP/s on the
// very matrix shapes of those steps in the same process and thread setting, and reports the fraction of that
// rate each step reaches and the share of step time left exposed in communication.
import Collective
import Foundation

public struct BenchResult: Sendable {
    public var samplesPerSecond: Double      // global samples per second
    public var gflops: Double                // per rank
    public var sgemmGflops: Double           // per rank, same shapes
    public var stepMilliseconds: Double
    public var allreduceShare: Double
    /// Bytes of gradient each step reduces.
    public var gradientBytes: Double = 0
    /// Seconds of one rank's step not spent waiting on communication.
    public var computeSeconds: Double { stepMilliseconds / 1000 * (1 - allreduceShare) }
    public var fractionOfSGEMM: Double { gflops / sgemmGflops }

    public var json: [String: Any] {
        ["samples_per_s": samplesPerSecond, "gflops": gflops, "sgemm_gflops": sgemmGflops, "fraction_of_sgemm": fractionOfSGEMM,
         "allreduce_share": allreduceShare, "step_ms": stepMilliseconds, "gradient_bytes": gradientBytes]
    }
}

public enum Bench {
    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted.isEmpty ? .nan : sorted[sorted.count / 2]
    }

    /// The GEMMs of one step on `rows` rows: forward of every layer; backward dW of every layer and dX of all but the
    /// first encoder layer. Returns GFLOP/s (median of `repeats`).
    public static func sgemmRate(layers: [Dense], rows: Int, skipInputGradientOf first: Dense?, repeats: Int) -> (gflops: Double, flops: Double) {
        let widest = layers.map { max($0.inputs, $0.outputs) }.max()!
        let a = [Float](repeating: 0.01, count: rows * widest), w = [Float](repeating: 0.02, count: widest * widest)
        var c = [Float](repeating: 0, count: max(rows, widest) * widest)
        var flops = 0.0
        for l in layers {
            flops += 2 * Double(rows * l.inputs * l.outputs) * 2
            if l.weight != first?.weight { flops += 2 * Double(rows * l.inputs * l.outputs) }
        }
        func once() {
            for l in layers {
                BLAS.gemm(transposeA: false, transposeB: false, m: rows, n: l.outputs, k: l.inputs, a: a, lda: l.inputs, b: w, ldb: l.outputs, c: &c, ldc: l.outputs)
                BLAS.gemm(transposeA: true, transposeB: false, m: l.inputs, n: l.outputs, k: rows, a: a, lda: l.inputs, b: a, ldb: l.outputs, beta: 1, c: &c, ldc: l.outputs)
                if l.weight != first?.weight {
                    BLAS.gemm(transposeA: false, transposeB: true, m: rows, n: l.inputs, k: l.outputs, a: a, lda: l.outputs, b: w, ldb: l.outputs, c: &c, ldc: l.inputs)
                }
            }
        }
        once(); once()
        var times = [Double]()
        for _ in 0..<repeats {
            let t = Clock.now
            once()
            times.append(Clock.now - t)
        }
        return (flops / median(times) / 1e9, flops)
    }

    public static func run(context: RunContext, data: DataSet, batchSize: Int, steps: Int, widths: [Int], overlap: Bool) throws -> (pretrain: BenchResult, dec: BenchResult) {
        let warmup = 3
        let rows = contiguousShare(total: batchSize, rank: context.rank, size: context.ranks).count
        // Pretraining steps.
        var options = PretrainOptions()
        options.batchSize = batchSize
        options.widths = widths
        options.overlap = overlap
        let pretrainer = Pretrainer(context: context, data: data, options: options)
        try pretrainer.initializeWeights()
        pretrainer.sampler.shuffle(epoch: 0)
        var times = [Double](), exposed = [Double]()
        for s in 0..<(warmup + steps) {
            try context.communicator.barrier()
            let t = Clock.now
            try pretrainer.trainStep(batch: s % pretrainer.sampler.batchesPerEpoch)
            if s >= warmup { times.append(Clock.now - t); exposed.append(pretrainer.lastStepExposed) }
        }
        let ae = pretrainer.model.autoencoder
        let pretrainSGEMM = sgemmRate(layers: ae.encoder + ae.decoder, rows: rows, skipInputGradientOf: ae.encoder[0], repeats: steps)
        let pretrainStep = median(times)
        var pretrain = BenchResult(samplesPerSecond: Double(batchSize) / pretrainStep, gflops: pretrainSGEMM.flops / pretrainStep / 1e9,
                                   sgemmGflops: pretrainSGEMM.gflops, stepMilliseconds: pretrainStep * 1000,
                                   allreduceShare: median(exposed) / pretrainStep)
        pretrain.gradientBytes = Double(pretrainer.model.all.count * 4)
        // DEC steps on the pretrained-shape encoder, with a target from the current soft assignment.
        var decOptions = DECOptions()
        decOptions.batchSize = batchSize
        decOptions.overlap = overlap
        decOptions.restarts = 1
        let decTrainer = DECTrainer(context: context, data: data, options: decOptions, model: pretrainer.model)
        _ = try decTrainer.initializeCentres()
        let pass = try decTrainer.pass()
        decTrainer.setTarget(DEC.target(q: pass.q, clusters: decOptions.clusters))
        times = []; exposed = []
        for s in 0..<(warmup + steps) {
            try context.communicator.barrier()
            let t = Clock.now
            try decTrainer.trainStep(batch: s % pretrainer.sampler.batchesPerEpoch)
            if s >= warmup { times.append(Clock.now - t); exposed.append(decTrainer.lastStepExposed) }
        }
        let decSGEMM = sgemmRate(layers: ae.encoder, rows: rows, skipInputGradientOf: ae.encoder[0], repeats: steps)
        let decStep = median(times)
        var dec = BenchResult(samplesPerSecond: Double(batchSize) / decStep, gflops: decSGEMM.flops / decStep / 1e9,
                              sgemmGflops: decSGEMM.gflops, stepMilliseconds: decStep * 1000, allreduceShare: median(exposed) / decStep)
        dec.gradientBytes = Double(pretrainer.model.encoderSuffix.count * 4)
        return (pretrain, dec)
    }
}
