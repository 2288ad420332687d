// Hidden commands: for Launch/test (collectives under mpirun, checkpoint comparison) and for measuring the choice of
// K on a saved layout (choose-k).
import ArgumentParser
import Collective
import Clustering
import Datasets
import NN
import Report
import Tensor
import Training
import Foundation

struct SelfTestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "selftest", abstract: "Check the collectives against serial results (run under mpirun).", shouldDisplay: false)
    @OptionGroup var runtime: RuntimeOptions
    func run() throws {
        try withWorld(runtime) { communicator in
            let failures = try Diagnostics.checkCollectives(communicator)
            let count = try communicator.allreduce(failures.count, .sum)
            if !failures.isEmpty { FileHandle.standardError.write(Data("rank \(communicator.rank) FAILED: \(failures)\n".utf8)) }
            if count > 0 { throw RunError("\(count) collective check(s) failed") }
            if communicator.rank == 0 { print("collectives OK on \(communicator.size) rank(s)") }
        }
    }
}

struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "compare", abstract: "Compare two checkpoints: largest relative difference.", shouldDisplay: false)
    @Argument var first: String
    @Argument var second: String
    @Option(help: "Fail above this relative difference.") var tolerance: Double = 1e-4
    @Flag(help: "Require bitwise equality.") var bitwise = false
    func run() throws {
        do {
            let (relative, identical) = try Diagnostics.compare(try Checkpoint.load(first), try Checkpoint.load(second))
            let margin = relative > 0 ? String(format: ", margin %.1fx", tolerance / relative) : ""
            print(String(format: "largest relative difference %.3e (tolerance %.1e%@), bitwise identical: %@", relative, tolerance,
                         margin, identical ? "yes" : "no"))
            if bitwise && !identical { throw RunError("checkpoints are not bitwise identical") }
            if relative > tolerance { throw RunError("difference above tolerance") }
        } catch let error as ExitCode { throw error } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}

struct CompareGradientsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare-gradients",
        abstract: "Check a reduced gradient against the sum of its shares within float32 rounding (gamma_(p-1) sum |g_r|).",
        shouldDisplay: false)
    @Argument(help: "The shares: p gradients, one after the other (pretrain --debug-emulate-ranks P --debug-dump-gradients G writes G.shares).")
    var shares: String
    @Argument(help: "The reduced gradient of a p-rank run (pretrain --debug-dump-gradients).") var reduced: String
    func run() throws {
        do {
            let parts = try GradientDump.read(shares), sum = try GradientDump.read(reduced)
            guard !sum.isEmpty, parts.count % sum.count == 0 else {
                throw RunError("\(shares) holds \(parts.count) values, not a multiple of the \(sum.count) of \(reduced)")
            }
            let p = parts.count / sum.count
            let check = try ReductionBound(shares: parts, ranks: p, reduced: sum)
            print(String(format: "worst ratio to the float32 bound %.3f over %d elements of %d shares (largest difference %.3e at element %d)",
                         check.worstRatio, check.elements, p, check.largestDifference, check.worstIndex))
            if !(check.worstRatio <= 1) { throw RunError("the reduced gradient lies outside the rounding bound of a sum of its shares") }
        } catch let error as ExitCode { throw error } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}

/// The choice of K on a layout already made (an (N, D) float .npy): the sweep's values with other settings, to
/// measure the criterion without the autoencoder and UMAP in front of it (README: When nobody knows K).
struct ChooseKCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "choose-k", abstract: "The ICL sweep of --clusters auto on an (N, D) float .npy layout.", shouldDisplay: false)
    @OptionGroup var runtime: RuntimeOptions
    @Argument var layout: String
    @Option var largest = Recipe.largestClusters
    @Option var fits = ClusterCountOptions().fits
    @Option var regularization = ClusterCountOptions().regularization
    @Option var sample = ClusterCountOptions().sample
    @Option var restarts = ClusterCountOptions().restarts
    @Option var screenIterations = ClusterCountOptions().screenIterations
    @Option var seed: UInt64 = 0

    func validate() throws {
        if largest < 2 || fits < 1 || sample < 1 || restarts < 1 || screenIterations < 0 || !(regularization > 0) || !regularization.isFinite {
            throw ValidationError("choose-k needs --largest >= 2, --fits, --sample and --restarts >= 1, --screen-iterations >= 0, and a positive --regularization.")
        }
    }

    func run() throws {
        try withWorld(runtime) { communicator in
            let array = try NumPyArray.read(layout)
            guard case .floats(let values) = array.values, array.shape.count == 2, array.count >= 20, array.shape[1] >= 1,
                  values.allSatisfy(\.isFinite) else {
                throw RunError("\(layout): want an (N, D) float array of finite values, N >= 20 and D >= 1")
            }
            var options = Recipe.clusterCount(largest: largest, seed: seed)
            (options.fits, options.regularization, options.sample, options.restarts, options.screenIterations) =
                (fits, regularization, sample, restarts, screenIterations)
            let started = Clock.now
            let choice = try ClusterCount.choose(layout: values, count: array.count, dims: array.shape[1], options: options,
                                                 threads: BLAS.threads, communicator: communicator)
            guard communicator.rank == 0 else { return }
            print(String(format: "K = %d (%.2fs) ", choice.clusters, Clock.now - started)
                  + choice.criterion.map { String(format: "%d:%.4f", $0.clusters, $0.icl) }.joined(separator: " "))
        }
    }
}

/// NN-descent against the exact search (README: Scale): its rounds, time and recall on a sample of points.
struct NeighboursCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "neighbours",
        abstract: "UMAP's neighbour search on --data: time, and recall against the exact search on a sample of points.",
        discussion: """
            The points are the input as the autoencoder sees it (pixels in [0, 1], features standardised), or a float \
            .npy such as a saved embedding. Images are searched as their bytes (distances summed exactly, no Float \
            copy). Recall: the share of each checked point's true k - 1 nearest others that the search lists (ties at \
            the k-th distance count). The exact search of the checked points alone costs sample x N x D; the whole \
            exact search N^2 x D.
            """)
    @OptionGroup var dataOptions: DataOptions
    @OptionGroup var runtime: RuntimeOptions
    @Option(help: "Neighbours per point, the point itself included (as UMAP counts).") var neighbours = Recipe.umap.neighbors
    @Option(help: "auto, exact or descent.") var search: NeighbourSearch = .descent
    @Option(help: "Points whose exact neighbours are computed for the recall (0: none).") var check = 1000
    @Option(help: "Random seed (the forest's trees, the checked points).") var seed: UInt64 = 0

    func validate() throws {
        if neighbours < 2 { throw ValidationError("--neighbours must be at least 2 (got \(neighbours)).") }
        if check < 0 { throw ValidationError("--check must be 0 or more (got \(check)).") }
    }

    func run() throws {
        try withWorld(runtime) { communicator in
            let data = try dataOptions.load(communicator)
            let n = data.count, dims = data.dimension
            guard n > neighbours else { throw RunError("--neighbours \(neighbours) needs more points than that (got \(n))") }
            var options = NNDescentOptions()
            options.seed = seed
            /// The search's neighbours and what it was, and the recall of neighbours, on `points`.
            func measure(search find: () throws -> (indices: [Int], detail: String), recall: ([Int]) throws -> Double) throws {
                let started = Clock.now
                let (indices, detail) = try find()
                let seconds = Clock.now - started
                if communicator.rank == 0 {
                    print(String(format: "%d points x %d dims, %d neighbours: %.2fs (%@) on %d rank(s) x %d thread(s)", n, dims,
                                 neighbours, seconds, detail, communicator.size, BLAS.threads))
                }
                guard check > 0 else { return }
                let checkStarted = Clock.now
                let share = try recall(indices)
                let checkSeconds = Clock.now - checkStarted
                if communicator.rank == 0 {
                    print(String(format: "recall %.4f on %d points (their exact search %.2fs; all %d points' would take about %.0fs)",
                                 share, min(check, n), checkSeconds, n, checkSeconds * Double(n) / Double(min(check, n))))
                }
            }
            func describe(_ found: NNDescent.Result, bytes: Bool) -> String {
                "NN-descent\(bytes ? " of the bytes" : ""), \(found.rounds) rounds, entries changed per round "
                    + found.updates.map(String.init).joined(separator: " ")
            }
            let exact = search.resolved(count: n) == .exact
            if data.isFloat {
                try data.features.withUnsafeBufferPointer { points in  // where they lie
                    try measure {
                        guard !exact else {
                            return (try UMAP.nearestNeighbours(points: points, count: n, dims: dims, k: neighbours,
                                                               communicator: communicator).indices, "exact")
                        }
                        let found = try NNDescent.neighbours(points: points, count: n, dims: dims, k: neighbours, options: options,
                                                             communicator: communicator)
                        return (found.indices, describe(found, bytes: false))
                    } recall: {
                        try NNDescent.recall(points: points, count: n, dims: dims, k: neighbours, indices: $0, sample: check, seed: seed,
                                             communicator: communicator)
                    }
                }
            } else {
                // The bytes themselves, their distances summed exactly.
                try data.images.withUnsafeBufferPointer { points in
                    try measure {
                        guard !exact else {
                            return (try UMAP.nearestNeighbours(points: points, count: n, dims: dims, k: neighbours,
                                                               communicator: communicator).indices, "exact, of the bytes")
                        }
                        let found = try NNDescent.neighbours(points: points, count: n, dims: dims, k: neighbours, options: options,
                                                             communicator: communicator)
                        return (found.indices, describe(found, bytes: true))
                    } recall: {
                        try NNDescent.recall(points: points, count: n, dims: dims, k: neighbours, indices: $0, sample: check, seed: seed,
                                             communicator: communicator)
                    }
                }
            }
        }
    }
}
