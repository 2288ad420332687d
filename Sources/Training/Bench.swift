// `bench`: times pretraining steps and DEC encoder steps (median after warm-up), measures the GEMM's GFLOP/s (SGEMM,
// or the bf16 GEMM in bf16) on the very matrix shapes of those steps in the same process and thread setting, and
// reports the fraction of that rate each step reaches and the share of step time left exposed in communication.
import Clustering
import Collective
import CollectiveMPI
import Datasets
import Foundation
import NN
import Report
import Tensor

public struct BenchResult: Sendable {
    public var samplesPerSecond: Double      // global samples per second
    public var gflops: Double                // per rank
    public var sgemmGflops: Double           // per rank, same shapes
    public var stepMilliseconds: Double
    public var allreduceShare: Double
    /// Bytes of gradient each step reduces.
    public var gradientBytes: Double = 0
    /// How the step reduced its gradients.
    public var reduction = TransportKind.single
    /// Seconds of one rank's step not spent waiting on communication.
    public var computeSeconds: Double { stepMilliseconds / 1000 * (1 - allreduceShare) }
    public var fractionOfSGEMM: Double { gflops / sgemmGflops }

    public var json: [String: Any] {
        ["samples_per_s": samplesPerSecond, "gflops": gflops, "sgemm_gflops": sgemmGflops, "fraction_of_sgemm": fractionOfSGEMM,
         "allreduce_share": allreduceShare, "step_ms": stepMilliseconds, "gradient_bytes": gradientBytes,
         "reduction": reduction.rawValue]
    }
}

public enum Bench {
    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted.isEmpty ? .nan : sorted[sorted.count / 2]
    }

    /// The GEMMs of one step on `rows` rows: forward of every layer; backward dW of every layer and dX of all but the
    /// first encoder layer, each layer on matrices of its own (as in the model: the same shapes and the same memory
    /// footprint, so the caches see what the step sees), in `precision`'s own GEMM (bf16: operands already rounded,
    /// so the probe is that GEMM's peak on these shapes). Returns their flop count and a function that runs them once
    /// and returns its seconds.
    public static func gemmProbe(layers: [Dense], rows: Int, skipInputGradientOf first: Dense?,
                                 precision: Precision = .float32) -> (flops: Double, time: () -> Double) {
        struct Buffers { var x, w, dy: [Float]; var hx, hw, hdy: [UInt16]; var y, dw, dx: [Float] }
        func half(_ value: Float, _ count: Int) -> [UInt16] { [UInt16](repeating: UInt16(value.bitPattern >> 16), count: count) }
        var buffers = layers.map { l in
            Buffers(x: [Float](repeating: 0.01, count: rows * l.inputs), w: [Float](repeating: 0.02, count: l.inputs * l.outputs),
                    dy: [Float](repeating: 0.01, count: rows * l.outputs),
                    hx: half(0.01, rows * l.inputs), hw: half(0.02, l.inputs * l.outputs), hdy: half(0.01, rows * l.outputs),
                    y: [Float](repeating: 0, count: rows * l.outputs), dw: [Float](repeating: 0, count: l.inputs * l.outputs),
                    dx: [Float](repeating: 0, count: rows * l.inputs))
        }
        var flops = 0.0
        for l in layers {
            flops += 2 * Double(rows * l.inputs * l.outputs) * 2
            if l.weight != first?.weight { flops += 2 * Double(rows * l.inputs * l.outputs) }
        }
        let time = { () -> Double in
            let t = Clock.now
            for (i, l) in layers.enumerated() {
                if precision == .bf16 {
                    BF16.gemm(transposeA: false, transposeB: false, m: rows, n: l.outputs, k: l.inputs, a: buffers[i].hx, lda: l.inputs,
                              b: buffers[i].hw, ldb: l.outputs, c: &buffers[i].y, ldc: l.outputs)
                } else {
                    BLAS.gemm(transposeA: false, transposeB: false, m: rows, n: l.outputs, k: l.inputs, a: buffers[i].x, lda: l.inputs,
                              b: buffers[i].w, ldb: l.outputs, c: &buffers[i].y, ldc: l.outputs)
                }
            }
            for (i, l) in layers.enumerated().reversed() {
                let inputGradient = l.weight != first?.weight
                if precision == .bf16 {
                    BF16.gemm(transposeA: true, transposeB: false, m: l.inputs, n: l.outputs, k: rows, a: buffers[i].hx, lda: l.inputs,
                              b: buffers[i].hdy, ldb: l.outputs, beta: 1, c: &buffers[i].dw, ldc: l.outputs)
                    if inputGradient {
                        BF16.gemm(transposeA: false, transposeB: true, m: rows, n: l.inputs, k: l.outputs, a: buffers[i].hdy, lda: l.outputs,
                                  b: buffers[i].hw, ldb: l.outputs, c: &buffers[i].dx, ldc: l.inputs)
                    }
                } else {
                    BLAS.gemm(transposeA: true, transposeB: false, m: l.inputs, n: l.outputs, k: rows, a: buffers[i].x, lda: l.inputs,
                              b: buffers[i].dy, ldb: l.outputs, beta: 1, c: &buffers[i].dw, ldc: l.outputs)
                    if inputGradient {
                        BLAS.gemm(transposeA: false, transposeB: true, m: rows, n: l.inputs, k: l.outputs, a: buffers[i].dy, lda: l.outputs,
                                  b: buffers[i].w, ldb: l.outputs, c: &buffers[i].dx, ldc: l.inputs)
                    }
                }
            }
            return Clock.now - t
        }
        return (flops, time)
    }

    /// Times `step` and the SGEMM probe alternately, so that both see the same machine (a shared host drifts by
    /// 10-20% over seconds); medians after `warmup` rounds.
    static func interleaved(warmup: Int, steps: Int, communicator: Communicator, probe: () -> Double,
                            step: (Int) throws -> Double) throws -> (step: Double, exposed: Double, sgemm: Double) {
        var times = [Double](), exposed = [Double](), sgemm = [Double]()
        for s in 0..<(warmup + steps) {
            try communicator.barrier()
            let t = Clock.now
            let e = try step(s)
            let elapsed = Clock.now - t
            try communicator.barrier()
            let g = probe()
            if s >= warmup { times.append(elapsed); exposed.append(e); sgemm.append(g) }
        }
        return (median(times), median(exposed), median(sgemm))
    }

    public static func run(context: RunContext, data: DataSet, batchSize: Int, steps: Int, widths: [Int], overlap: Bool,
                           augmentation: Augmentation = .none, precision: Precision = .float32) throws -> (pretrain: BenchResult, dec: BenchResult) {
        let warmup = 3
        let rows = contiguousShare(total: batchSize, rank: context.rank, size: context.ranks).count
        // Pretraining steps.
        var options = PretrainOptions()
        options.batchSize = batchSize
        options.widths = widths
        options.overlap = overlap
        options.augmentation = augmentation
        options.maskRate = 0
        options.precision = PrecisionChoice(precision: precision, setting: precision == .bf16 ? .bf16 : .float32, reason: "bench")
        // One model for both step kinds, with the centres of the DEC steps below (DECOptions' default K).
        let maxRows = largestShare(total: batchSize, size: context.ranks)
        let model = try Model(widths: widths, clusters: DECOptions().clusters, maxRows: maxRows,
                              communicator: context.communicator, overlap: overlap, precision: precision)
        let pretrainer = try Pretrainer(context: context, data: data, options: options, model: model)
        try pretrainer.initializeWeights()
        pretrainer.sampler.shuffle(epoch: 0)
        let ae = pretrainer.model.autoencoder
        let pretrainProbe = gemmProbe(layers: ae.encoder + ae.decoder, rows: rows, skipInputGradientOf: ae.encoder[0], precision: precision)
        let p = try interleaved(warmup: warmup, steps: steps, communicator: context.communicator, probe: pretrainProbe.time) {
            try pretrainer.trainStep(batch: $0 % pretrainer.sampler.batchesPerEpoch)
            return pretrainer.lastStepExposed
        }
        var pretrain = BenchResult(samplesPerSecond: Double(batchSize) / p.step, gflops: pretrainProbe.flops / p.step / 1e9,
                                   sgemmGflops: pretrainProbe.flops / p.sgemm / 1e9, stepMilliseconds: p.step * 1000,
                                   allreduceShare: p.exposed / p.step)
        pretrain.gradientBytes = Double(pretrainer.model.all.count * 4)
        pretrain.reduction = model.transport.kind
        // DEC steps on the pretrained-shape encoder, with a target from the current soft assignment.
        var decOptions = DECOptions()
        decOptions.batchSize = batchSize
        decOptions.restarts = 1
        decOptions.start = .kmeans
        decOptions.augmentation = augmentation
        let decTrainer = try DECTrainer(context: context, data: data, options: decOptions, model: pretrainer.model)
        try decTrainer.startClusters()
        let pass = try decTrainer.pass()
        decTrainer.setTarget(pass)
        let decProbe = gemmProbe(layers: ae.encoder, rows: rows, skipInputGradientOf: ae.encoder[0], precision: precision)
        let d = try interleaved(warmup: warmup, steps: steps, communicator: context.communicator, probe: decProbe.time) {
            try decTrainer.trainStep(batch: $0 % pretrainer.sampler.batchesPerEpoch)
            return decTrainer.lastStepExposed
        }
        var dec = BenchResult(samplesPerSecond: Double(batchSize) / d.step, gflops: decProbe.flops / d.step / 1e9,
                              sgemmGflops: decProbe.flops / d.sgemm / 1e9, stepMilliseconds: d.step * 1000, allreduceShare: d.exposed / d.step)
        dec.gradientBytes = Double(pretrainer.model.encoderSuffix.count * 4)
        dec.reduction = model.transport.kind
        return (pretrain, dec)
    }
}

// MARK: - A whole run, predicted (bench --predict-run)

/// What a default `dec` run on `samples` would take, from measured step rates (global samples per second) and the
/// start's predicted seconds: the epochs the recipe chooses for that many samples (Recipe.pretrainEpochs(samples:),
/// Recipe.epochs(samples:)), pretraining's epochs all steps, fine-tuning's at its cap with the steps `stepShare` of
/// an epoch (full MNIST's fine-tuning epochs: steps 74-81%; the rest is the target and the label-change test).
public struct RunForecast: Sendable {
    public let samples: Int
    public let pretrainEpochs: Int, fineTuningEpochs: Int
    public let pretrainSeconds: Double, startSeconds: Double, fineTuningSeconds: Double
    public static let stepShare = 0.75

    public init(samples: Int, pretrainRate: Double, decRate: Double, startSeconds: Double) {
        self.samples = samples
        pretrainEpochs = Recipe.pretrainEpochs(samples: samples)
        fineTuningEpochs = Recipe.epochs(samples: samples)
        pretrainSeconds = Double(pretrainEpochs * samples) / pretrainRate
        self.startSeconds = startSeconds
        fineTuningSeconds = Double(fineTuningEpochs * samples) / decRate / Self.stepShare
    }

    public var totalSeconds: Double { pretrainSeconds + startSeconds + fineTuningSeconds }

    public var json: [String: Any] {
        ["samples": samples, "pretrain_epochs": pretrainEpochs, "pretrain_s": pretrainSeconds, "start_s": startSeconds,
         "finetune_epochs_cap": fineTuningEpochs, "finetune_s_cap": fineTuningSeconds, "total_s": totalSeconds]
    }

    public func lines(ranks: Int, threads: Int, startNote: String) -> [String] {
        func seconds(_ s: Double) -> String { String(format: "%7.1f s  (%@)", s, formatDuration(s)) }
        return ["\na default dec run on \(samples) samples, \(ranks) rank(s) x \(threads) thread(s), at the step rates above:",
                String(format: "pretraining   %4d epochs  ", pretrainEpochs) + seconds(pretrainSeconds),
                "N2D start                 " + seconds(startSeconds) + "  \(startNote)",
                String(format: "fine-tuning <=%4d epochs  ", fineTuningEpochs) + seconds(fineTuningSeconds),
                "total                     " + seconds(totalSeconds),
                "(fine-tuning at its cap: a run that --tol stops takes less; not counted: k-means on the input, the guard, t-SNE: 30-40 s on full MNIST)"]
    }
}
