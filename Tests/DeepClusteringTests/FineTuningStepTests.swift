// The composed fine-tuning step (DECTrainer.trainStep) of DEC, IDEC and DKM against central differences of a Double
// reference of the whole batch loss (StepReference.swift). The kernels one by one are ClusteringTests' and NNTests'.
// B = batch rows, D = input dims, E = embedding dims, K = clusters, N = samples.
@testable import Datasets
@testable import NN
@testable import Tensor
@testable import Training
import Collective
import Foundation
import TestSupport
import XCTest

final class FineTuningStepTests: XCTestCase {
    // A 6-5-4-3 autoencoder, K = 3, N = 12 seeded samples in batches of B = 4: the batch's rows are not its samples.
    let widths = [6, 5, 4, 3], clusters = 3, samples = 12, batch = 4
    /// SGD with momentum (PyTorch's form) starts with velocity = gradient, so the first step moves the parameters by
    /// exactly lr * g: (before - after) / lr is the averaged gradient the step applied. lr is a power of two, so lr * g
    /// and the division are exact and the only error is the rounding of the updated parameter, u |p| / (2 lr), 2e-9
    /// here, below the float32 gradient's own error. Measured worst differences (DEC): lr 0.01: 2.5e-3, 0.1: 2e-4 (both fail
    /// the 1e-4 check on rounding alone), 1: 3e-5, 4: 8e-6, 16 and 64: 7e-6 (the float32 gradient's error).
    let learningRate: Float = 16
    /// Weights that differ from 1 and from the defaults, so that a term weighted wrongly shows.
    let gamma: Float = 0.25, alphaStart: Float = 2

    func testDECStepGradient() throws { try checkStep(.dec) }
    func testIDECStepGradient() throws { try checkStep(.idec) }
    func testDKMStepGradient() throws { try checkStep(.dkm) }

    /// One `trainStep(batch: 0)` of epoch 0 from a fresh trainer: the gradient it applied against central differences of
    /// the reference over every parameter (decoder, encoder, centres), and the losses it reports against the reference's.
    func checkStep(_ method: DeepMethod, file: StaticString = #filePath, line: UInt = #line) throws {
        let d = widths[0], k = clusters
        let features = seededValues(samples * d, seed: 71).map(Float.init)                 // (N, D)
        let data = DataSet(name: "steps", features: features, labels: (0..<samples).map { Int32($0 % k) }, dimension: d,
                           classCount: k, transform: nil)
        let trainer = try makeTrainer(method, data: data)
        let model = trainer.model

        // Epoch 0 as run() starts it: DKM's alpha = alphaStart, the epoch's permutation.
        trainer.objective.beginEpoch(0, of: trainer.options.epochs)
        trainer.sampler.shuffle(epoch: 0)
        let (global, local) = trainer.sampler.batch(0)
        XCTAssertEqual(global, local, "one rank: its share is the whole batch", file: file, line: line)
        let indices = Array(trainer.sampler.permutation[global])
        XCTAssertNotEqual(indices, (0..<Int32(batch)).map { $0 }, "batch 0 is samples 0..<B: rows and samples agree",
                          file: file, line: line)

        // DEC and IDEC: a target from a pass whose Q is replaced by seeded rows, so that every sample's P differs.
        var pass = try trainer.pass()
        pass.q = seededDistributions(rows: samples, clusters: k, seed: 74)
        trainer.setTarget(pass)
        let target = trainer.objective.state["target"] ?? []                                             // (N, K) or empty
        let p = method == .dkm ? [] : indices.flatMap { target[(Int($0) * k)..<((Int($0) + 1) * k)] }.map(Double.init)
        let x = indices.flatMap { features[(Int($0) * d)..<((Int($0) + 1) * d)] }.map(Double.init)      // (B, D)

        let before = model.store.parameterArray(model.parameterRange)
        let totals = try trainer.trainStep(batch: 0)
        let after = model.store.parameterArray(model.parameterRange)
        let applied = zip(before, after).map { (Double($0) - Double($1)) / Double(learningRate) }

        let params = before.map(Double.init)
        gradientCheck(name: "\(method.rawValue) step", x: params, analytic: applied, h: doubleReferenceStep,
                      tolerance: doubleReferenceTolerance, file: file, line: line) { probe in
            Reference.fineTuningLoss(method, model: model, params: probe, x: x, p: p, rows: batch, globalBatch: batch,
                                     gamma: Double(gamma), alpha: Double(alphaStart))
        }
        let terms = Reference.fineTuningTerms(method, model: model, params: params, x: x, p: p, rows: batch,
                                              alpha: Double(alphaStart))
        assertClose(totals.0, terms.clustering, relative: 1e-5, absolute: 1e-6, "\(method.rawValue) clustering loss",
                    file: file, line: line)
        assertClose(totals.1, terms.reconstruction, relative: 1e-5, absolute: 1e-6, "\(method.rawValue) reconstruction loss",
                    file: file, line: line)

        // DEC trains the encoder and the centres; IDEC and DKM everything. With 4 rows a ReLU unit may be off on every
        // row, which leaves its weights without a gradient, untested: the seeds keep that to a few of them.
        let decoder = model.autoencoder.decoderRange
        let trained = method == .dec ? decoder.upperBound..<before.count : 0..<before.count
        if method == .dec {
            XCTAssert(zip(before[decoder], after[decoder]).allSatisfy { $0.bitPattern == $1.bitPattern },
                      "DEC leaves the decoder bit-identical", file: file, line: line)
        }
        let untouched = trained.filter { applied[$0] == 0 }.count
        XCTAssertLessThanOrEqual(untouched, trained.count / 20, "\(method.rawValue): trained parameters without a gradient",
                                 file: file, line: line)
    }

    /// A DECTrainer of `method` on `data` with SGD at `learningRate`, over a seeded model: Glorot weights, biases 0.2 (most
    /// ReLUs on for some row of the batch), seeded centres. Its run directory goes when the test ends.
    func makeTrainer(_ method: DeepMethod, data: DataSet) throws -> DECTrainer {
        var options = DECOptions()
        options.method = method
        options.clusters = clusters
        options.batchSize = batch
        options.optimizer = .sgd
        options.learningRate = learningRate
        options.gamma = gamma
        options.alphaStart = alphaStart
        options.seed = 5
        let communicator = SingleProcessCommunicator()
        let directory = NSTemporaryDirectory() + "dc-test-step-\(method.rawValue)-\(getpid())"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: directory) }
        let context = try RunContext(communicator: communicator, directory: directory, quiet: true)
        let model = try Model(widths: widths, clusters: clusters, maxRows: batch, communicator: communicator)
        var rng = Xoshiro256(seed: 83)
        model.autoencoder.initialize(model.store, scheme: .glorot, rng: &rng)
        for i in model.autoencoder.range where model.store.parameters[i] == 0 { model.store.parameters[i] = 0.2 }
        model.setCentres(seededValues(clusters * widths[widths.count - 1], seed: 73).map(Float.init))
        return try DECTrainer(context: context, data: data, options: options, model: model)
    }
}
