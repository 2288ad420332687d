// The report's Task 0 (toy: three blobs, an alpha sweep, Figure 1) and Task 1 (raw MNIST pixels, Figure 2).
import Clustering
import Collective
import Datasets
import Foundation
import NN
import Report
import Tensor

public enum ToyExperiment {
    /// Runs every alpha; writes figure1.svg; returns (alpha, final ACC, all losses finite).
    public static func run(context: RunContext, alphas: [Float], perBlob: Int, spread: Double,
                           options base: InputClusteringOptions) throws -> [(Float, Double, Bool)] {
        let (points, labels) = gaussianBlobs(perBlob: perBlob, spread: spread, seed: base.seed)
        var panels = [Panel]()
        var results = [(Float, Double, Bool)]()
        for alpha in alphas {
            var options = base
            options.alpha = alpha
            options.clusters = 3
            let clusterer = try InputClusterer(context: context, points: points, labels: labels, classes: 3, dims: 2, options: options)
            try clusterer.run(label: "toy alpha=\(alpha)")
            let final = clusterer.history.last!
            let finite = clusterer.history.dropFirst().allSatisfy { $0.loss.isFinite }
            results.append((alpha, final.scores.accuracy, finite))
            context.say(String(format: "toy alpha=%g: ACC %.4f, loss finite at every epoch: %@", alpha, final.scores.accuracy, finite ? "yes" : "NO"))
            let c = clusterer.centres
            panels.append(.scatter(title: "alpha = \(alpha): clusters (ACC \(String(format: "%.3f", final.scores.accuracy)))",
                                   xLabel: "x1 (z-scored)", yLabel: "x2 (z-scored)",
                                   points: (0..<labels.count).map { (Double(points[2 * $0]), Double(points[2 * $0 + 1]), Int(clusterer.assignments[$0])) },
                                   centres: (0..<3).map { (Double(c[2 * $0]), Double(c[2 * $0 + 1])) },
                                   classNames: ["cluster 0", "cluster 1", "cluster 2"]))
            panels.append(.line(title: "alpha = \(alpha): loss over epochs", xLabel: "epoch", yLabel: "loss per sample",
                                series: [Series(name: "loss", points: clusterer.history.dropFirst().map { (Double($0.epoch), $0.loss) })]))
        }
        try context.write("figure1.svg", SVG.figure(title: "Figure 1: soft k-means on three blobs, by alpha", panels: panels, columns: 2))
        context.say("wrote \(context.path("figure1.svg"))")
        return results
    }
}

public enum RawExperiment {
    /// Runs k-means (the reference) and each soft method on z-scored pixels; writes figure2.svg. `chooseClusters`:
    /// K is chosen first, on the UMAP layout of those pixels (`--clusters auto`).
    public static func run(context: RunContext, data: DataSet, methods: [InputMethod], restarts: Int,
                           options given: InputClusteringOptions, chooseClusters: ClusterCountOptions? = nil) throws -> [InputMethod: ClusteringScores] {
        // The points as the choice of K, k-means and the soft methods read them: Float samples (already standardised)
        // where they lie, which may be the host's shared block; bytes z-scored into one Float copy, made when one of
        // them first needs it and kept for the soft methods (N2D reads the bytes themselves).
        var zscored: [Float]? = nil
        func withPoints<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
            if data.isFloat { return try data.withFloats(.zscore, body) }
            if zscored == nil { zscored = data.floats(.zscore) }
            return try zscored!.withUnsafeBufferPointer(body)
        }
        var base = given
        if let count = chooseClusters {
            var umap = Recipe.umap
            umap.seed = given.seed
            let choice = try withPoints {
                try ClusterChoice.choose($0, count: data.count, dims: data.dimension, umap: umap, options: count,
                                         communicator: context.communicator)
            }
            context.say(choice.summary.replacingOccurrences(of: "the embedding", with: "the input"))
            context.record(choice.record)
            base.clusters = choice.clusters
        }
        var results = [InputMethod: ClusteringScores]()
        let started = Clock.now
        // k-means, the reference, as every `dec` run's baseline: on at most `ClusterStarts.baselineSamples` evenly
        // spaced samples, scored on those (a million MNIST images z-scored would be a 3.1 GB Float copy a rank).
        let reference = data.evenlySpaced(ClusterStarts.baselineSamples(dimension: data.dimension))
        let fit = { (p: UnsafeBufferPointer<Float>) in
            try KMeans.fit(points: p.baseAddress!, count: reference.count, dims: data.dimension, clusters: base.clusters,
                           restarts: restarts, seed: base.seed, communicator: context.communicator, spreadRestarts: false)
        }
        let kmeans = try reference.count == data.count ? withPoints(fit) : reference.floats(.zscore).withUnsafeBufferPointer(fit)
        let kScores = Metrics.scores(predicted: kmeans.assignments, labels: reference.labels, clusters: base.clusters,
                                     classes: data.classCount)
        results[.kmeans] = kScores
        let share = reference.count < data.count ? "\(reference.count) of the \(data.count) samples, evenly spaced; " : ""
        context.say(String(format: "k-means (%@%d restarts, %d iterations, inertia %.4g, %.1fs): ACC %.4f  NMI %.4f  ARI %.4f", share,
                           restarts, kmeans.iterations, kmeans.inertia, Clock.now - started, kScores.accuracy, kScores.nmi,
                           kScores.ari))
        var record = RunRecord(phase: "kmeans")
        record.setScores(accuracy: kScores.accuracy, nmi: kScores.nmi, ari: kScores.ari)
        record.inertia = kmeans.inertia
        context.record(record)
        var series = [Series]()
        if !methods.contains(.softmax) && !methods.contains(.free) { zscored = nil }  // N2D's peak without it
        if methods.contains(.n2d) {
            let scores = try n2d(context: context, data: data, restarts: restarts, options: base)
            results[.n2d] = scores
            series.append(Series(name: "N2D (UMAP + mixture)", points: [(0, scores.accuracy), (Double(base.epochs), scores.accuracy)], dashed: true))
        }
        for method in methods where method != .kmeans && method != .n2d {
            var options = base
            options.method = method
            let clusterer = try InputClusterer(context: context, points: zscored ?? data.floats(.zscore), labels: data.labels,
                                               classes: data.classCount, dims: data.dimension, options: options)
            try clusterer.run(label: method == .softmax ? "softmax weights" : "free weights")
            results[method] = clusterer.history.last!.scores
            series.append(Series(name: method == .softmax ? "softmax w (alpha \(options.alpha))" : "free w",
                                 points: clusterer.history.map { (Double($0.epoch), $0.scores.accuracy) }))
        }
        let epochs = Double(base.epochs)
        series.append(Series(name: "k-means", points: [(0, kScores.accuracy), (epochs, kScores.accuracy)], dashed: true))
        try context.write("figure2.svg", SVG.figure(title: "Figure 2: accuracy in pixel space",
                                                    panels: [.line(title: "accuracy over epochs", xLabel: "epoch", yLabel: "ACC",
                                                                   series: series, yRange: 0...1)], columns: 1, width: 720, height: 400))
        context.say("wrote \(context.path("figure2.svg"))")
        return results
    }

    /// N2D on the input as the autoencoder would see it (pixels in [0, 1], features standardised): UMAP, k-means on
    /// the layout, the Gaussian mixture; the stages' seconds printed and recorded.
    static func n2d(context: RunContext, data: DataSet, restarts: Int, options: InputClusteringOptions) throws -> ClusteringScores {
        let started = Clock.now
        var umap = Recipe.umap
        umap.seed = options.seed
        let found = try data.isFloat
            ? data.features.withUnsafeBufferPointer { points in  // where they lie: no copy
                try N2D.cluster(points: points, count: data.count, dims: data.dimension, clusters: options.clusters, umap: umap,
                                restarts: restarts, communicator: context.communicator)
            }
            : data.images.withUnsafeBufferPointer { pixels in  // the bytes themselves: no Float copy
                try N2D.cluster(pixels: pixels, count: data.count, dims: data.dimension, clusters: options.clusters, umap: umap,
                                restarts: restarts, communicator: context.communicator)
            }
        let scores = data.scores(found.mixture.assignments, clusters: options.clusters)
        let seconds = Clock.now - started
        context.say(String(format: "N2D on the input (UMAP to %d dimensions, %d neighbours; Gaussian mixture; %.1fs: %@): %@", umap.components,
                           umap.neighbors, seconds, found.timings, scores.text))
        var record = RunRecord(phase: "n2d-input")
        record.setScores(accuracy: scores.accuracy, nmi: scores.nmi, ari: scores.ari)
        record.seconds = seconds
        record.stageSeconds = found.stages
        try context.notePeakMemory(&record)
        context.record(record)
        return scores
    }
}
