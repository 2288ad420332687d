// Whole pipelines in one process: the toy alpha sweep, free weights that do not collapse, pretraining that learns.
@testable import Clustering
@testable import Datasets
@testable import NN
@testable import Report
@testable import Tensor
@testable import Training
import Collective
import MallocCounter
import TestSupport
import XCTest

final class PipelineTests: XCTestCase {
    func context(_ name: String) throws -> RunContext {
        let dir = NSTemporaryDirectory() + "dc-test-\(name)-\(getpid())"
        return try RunContext(communicator: SingleProcessCommunicator(), directory: dir, quiet: true)
    }

    func testToyStaysFiniteAndAccurateForEveryAlpha() throws {
        var options = InputClusteringOptions()
        options.epochs = 40
        options.batchSize = 256
        options.optimizer = .adam
        options.learningRate = 0.05
        let ctx = try context("toy")
        let results = try ToyExperiment.run(context: ctx, alphas: [0.1, 1, 10, 100, 1000], perBlob: 200, spread: 1, options: options)
        for (alpha, accuracy, finite) in results {
            print("toy alpha \(alpha): ACC \(accuracy), finite \(finite)")
            XCTAssert(finite, "loss finite at every epoch, alpha \(alpha)")
            // At alpha 0.1 the objective itself merges centres on z-scored data: squared distances between blobs are
            // at most about 6, so the weights stay near uniform and the minimum of sum_k w_k d_k pulls the centres
            // together. The contract there is a finite loss; the clustering contract starts at alpha 1.
            if alpha >= 1 { XCTAssertGreaterThanOrEqual(accuracy, 0.95, "alpha \(alpha)") }
        }
        let svg = try String(contentsOfFile: ctx.path("figure1.svg"), encoding: .utf8)
        XCTAssert(svg.contains("<svg") && svg.contains("alpha = 1000"))
        XCTAssertNoThrow(try XMLDocument(xmlString: svg))
    }

    func testFreeWeightsDoNotCollapse() throws {
        var options = InputClusteringOptions()
        options.method = .free
        options.optimizer = .adam
        options.learningRate = 0.05
        options.clusters = 3
        options.epochs = 10
        options.batchSize = 32
        let (points, labels) = gaussianBlobs(perBlob: 100, spread: 1, seed: 4)
        let clusterer = try InputClusterer(context: try context("free"), points: points, labels: labels, classes: 3, dims: 2, options: options)
        try clusterer.run(label: "free")
        let used = Set(clusterer.assignments).count
        print("free weights: \(used) clusters used, ACC \(clusterer.history.last!.scores.accuracy)")
        XCTAssertEqual(used, 3, "every cluster keeps samples")
        XCTAssertGreaterThan(clusterer.history.last!.scores.accuracy, 0.95)
    }

    /// Once warmed up, a training step allocates nothing: pretraining (Adam, denoising) and DEC, IDEC and DKM steps on
    /// the full-size autoencoder at batch 256. Counted by MallocCounter, which the test binary links in place of
    /// glibc's malloc family, over every thread of the process. With one BLAS thread (each rank under mpirun) the
    /// count is zero; with two, OpenBLAS's threaded GEMM driver mallocs one job array per call (its own design),
    /// and everything else still allocates nothing. In bf16 (where the CPU has AVX-512) oneDNN's GEMM mallocs a
    /// packing buffer per call on each thread (its design as well: 23 per pretraining step and thread), nothing else.
    func testTrainingStepsAllocateNothing() throws {
        #if DEBUG
        throw XCTSkip("allocation counts mean something in optimised builds only; Launch/test runs this test with -c release")
        #endif
        let data = try DataSet.embeddedMNIST(limit: 1024)
        let saved = BLAS.threads
        defer { BLAS.threads = saved }
        let precisions: [Precision] = BF16.isAvailable ? [.float32, .bf16] : [.float32]
        for (threads, precision) in [1, 2].flatMap({ t in precisions.map { (t, $0) } }) {
            BLAS.threads = threads
            func check(_ name: String, gemmsPerStep: Int, _ step: (Int) throws -> Void) rethrows {
                let name = "\(name) (\(precision.rawValue))"
                for b in 0..<3 { try step(b) }
                MallocCounter_counting(1)
                for b in 0..<8 { try step(b % 4) }
                MallocCounter_counting(0)
                let all = MallocCounter_count(), blas = MallocCounter_count_openblas(), dnnl = MallocCounter_count_dnnl()
                print("allocations in 8 \(name) steps on \(threads) thread(s): \(all) (OpenBLAS's: \(blas), oneDNN's: \(dnnl))")
                XCTAssertEqual(all - blas - dnnl, 0, "\(name) steps, \(threads) thread(s): allocations outside OpenBLAS and oneDNN")
                XCTAssertLessThanOrEqual(dnnl, precision == .bf16 ? 8 * gemmsPerStep * threads : 0, "\(name), \(threads) thread(s): oneDNN")
                XCTAssertLessThanOrEqual(blas, threads == 1 || precision == .bf16 ? 0 : 8 * gemmsPerStep, "\(name), \(threads) thread(s): OpenBLAS")
            }
            var options = PretrainOptions()
            options.batchSize = 256
            options.maskRate = 0.2
            options.augmentation = .none
            let model = try Model(widths: options.widths, clusters: DECOptions().clusters, maxRows: 257,
                                  communicator: SingleProcessCommunicator(), precision: precision)
            let pretrainer = try Pretrainer(context: try context("alloc"), data: data, options: options, model: model)
            try pretrainer.initializeWeights()
            pretrainer.sampler.shuffle(epoch: 0)
            try check("pretraining", gemmsPerStep: 23) { _ = try pretrainer.trainStep(batch: $0) }
            for method in [DeepMethod.dec, .idec, .dkm] {
                var decOptions = DECOptions()
                decOptions.method = method
                decOptions.batchSize = 256
                decOptions.restarts = 1
                decOptions.start = .kmeans
                decOptions.augmentation = .none
                let trainer = try DECTrainer(context: pretrainer.context, data: data, options: decOptions, model: model)
                try trainer.startClusters()
                trainer.setTarget(try trainer.pass())
                try check(method.rawValue, gemmsPerStep: method == .dec ? 11 : 23) { _ = try trainer.trainStep(batch: $0) }
            }
        }
    }

    /// 60 steps of Adam at batch 128 on 2,000 images. The bound: predicting every pixel's mean intensity gives an MSE
    /// equal to the pixel variance, about 0.095 for MNIST in [0,1]; an autoencoder that learned anything beats 0.06.
    func testShortPretrainingReducesReconstructionLoss() throws {
        let data = try DataSet.embeddedMNIST(limit: 2000)
        var options = PretrainOptions()
        options.epochs = 4
        options.batchSize = 128
        options.maskRate = 0
        options.augmentation = .none
        let trainer = try Pretrainer(context: try context("pretrain"), data: data, options: options)
        try trainer.initializeWeights()
        try trainer.run()
        trainer.sampler.shuffle(epoch: 99)
        let loss = try trainer.trainStep(batch: 0) / 128
        print("reconstruction MSE after \(trainer.step) steps: \(loss)")
        XCTAssertLessThan(loss, 0.06)
    }
}

import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
