// bench: step throughput against the in-process SGEMM rate.
import ArgumentParser
import Collective
import CollectiveMPI
import Clustering
import Datasets
import NN
import Report
import Tensor
import Training
import Foundation

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time pretraining and DEC steps (median after warm-up) against the SGEMM rate on the same shapes.",
        discussion: "Run under Launch/run -np P to measure P ranks; --no-overlap compares one blocking allreduce, --no-shared-memory MPI's allreduces (on the reduction thread where MPI has threads, else blocking), --reduction-thread the background thread.")
    @OptionGroup var runtime: RuntimeOptions
    @Option(help: "Global batch size.") var batchSize = 256
    @Option(help: "Timed steps (after 3 warm-up steps).") var steps = 20
    @Option(help: "Encoder widths, input first.") var widths = "784-500-500-2000-10"
    @Flag(help: "Print one JSON object instead of a table.") var json = false
    @Option(help: "Time the steps with this augmentation (none, or shift=F,rotate=DEGREES; see pretrain --help): its cost counts in the step, not in the SGEMM work. Default: none, or with --predict-run the recipe's (\(Recipe.augmentation)), as a default run on square images.")
    var augment: String?
    @Option(help: "Arithmetic of the products: float32, bf16 or auto (see dec --help); the fraction is of that precision's own GEMM rate on the same shapes (SGEMM, or oneDNN's bf16 GEMM on operands already rounded; the JSON keeps the key names sgemm_gflops and fraction_of_sgemm, with \"precision\" beside them). Default: \(Recipe.precision.rawValue).")
    var precision = Recipe.precision
    @Flag(help: "Also fit the allreduce cost (latency alpha, inverse bandwidth beta) and predict step time and efficiency for 1 ... --max-ranks ranks.")
    var model = false
    @Option(help: "Model a link of this many Gb/s (e.g. 10, 25, 100) instead of the measured transport.") var linkGbps: Double?
    @Option(help: "Model a per-step link latency in microseconds. Default: the measured one (20 us on a single rank).") var linkLatencyUs: Double?
    @Option(help: "Largest rank count the model predicts (powers of two).") var maxRanks = 1024
    @Option(help: "Where the model's plot goes.") var plot = "runs/cost-model.svg"
    @Option(help: "Also time the N2D start's stages (neighbours, graph, spectral start, layout SGD, mixture) on 10 Gaussian clusters in --start-dims dimensions at 25,000 and 50,000 points on these ranks, and predict each stage's seconds at this many points from its growth between the two (README: Scale). About a minute on 2 cores.")
    var startPoints: Int?
    @Option(help: "Dimensions of the points for --start-points (the neighbour search costs in proportion).") var startDims = 10
    @Option(help: "Also predict a default `dec` run on this many samples on these ranks: the epochs the run would choose for them (README: Accuracy) at the step rates measured here (the steps timed with --augment, by default the recipe's for square images; --augment none for other data), fine-tuning at its epoch cap with the steps 75% of an epoch (the rest: the target and the label-change test, as measured on full MNIST), and the N2D start on the 10-dimension embedding as --start-points predicts it (timed for this many points when --start-points is not given).")
    var predictRun: Int?

    func run() throws {
        if !(1...100_000).contains(steps) { throw ValidationError("--steps must be between 1 and 100000 (got \(steps)).") }
        if let linkGbps, !(linkGbps > 0) || !linkGbps.isFinite { throw ValidationError("--link-gbps must be a positive number.") }
        if let linkLatencyUs, !(linkLatencyUs >= 0) || !linkLatencyUs.isFinite { throw ValidationError("--link-latency-us must be 0 or more.") }
        if !(1...(1 << 20)).contains(maxRanks) { throw ValidationError("--max-ranks must be between 1 and 1048576.") }
        if let startPoints, !(1_000...1_000_000_000).contains(startPoints) {
            throw ValidationError("--start-points must be between 1000 and 1000000000 (got \(startPoints)).")
        }
        if let predictRun, !(1...1_000_000_000).contains(predictRun) {
            throw ValidationError("--predict-run must be between 1 and 1000000000 samples (got \(predictRun)).")
        }
        if predictRun != nil, startDims != 10 {
            throw ValidationError("--predict-run uses the start's stages in 10 dimensions (the embedding's): leave --start-dims out.")
        }
        if !(2...4096).contains(startDims) { throw ValidationError("--start-dims must be between 2 and 4096 (got \(startDims)).") }
        try Limits.batch(batchSize)
        try Limits.memory(widths: try parseWidths(widths), batchSize: batchSize)
        try withWorld(runtime) { communicator in
            try checkBatch(batchSize, ranks: communicator.size)
            let data = try DataSet.embeddedMNIST()
            let context = try RunContext(communicator: communicator, directory: NSTemporaryDirectory() + "deepcluster-bench-\(getpid())", quiet: true)
            let choice = try PrecisionChoice.resolve(precision, communicator: communicator)
            let (pretrain, dec) = try Bench.run(context: context, data: data, batchSize: batchSize, steps: steps,
                                                widths: try parseWidths(widths), overlap: !runtime.noOverlap,
                                                augmentation: try stepAugmentation(), precision: choice.precision)
            try? FileManager.default.removeItem(atPath: context.directory)
            var modelJSON: [String: Any]?
            var modelLines: [String] = []
            if model {
                (modelJSON, modelLines) = try costModel(communicator, pretrain: pretrain, dec: dec)
            }
            var startJSON: [String: Any]?
            var startLines: [String] = []
            if let points = startPoints ?? predictRun {
                (startJSON, startLines) = try startModel(communicator, points: points)
            }
            var forecastJSON: [String: Any]?
            var forecastLines: [String] = []
            if let predictRun, let startJSON {
                let startSeconds = Self.startSeconds(startJSON, points: predictRun)
                let forecast = RunForecast(samples: predictRun, pretrainRate: pretrain.samplesPerSecond, decRate: dec.samplesPerSecond,
                                           startSeconds: startSeconds)
                forecastJSON = forecast.json
                forecastLines = forecast.lines(ranks: communicator.size, threads: BLAS.threads,
                                               startNote: startPoints == nil ? "as above" : "from the stages above, at \(predictRun) points")
            }
            guard communicator.rank == 0 else { return }
            if json {
                var object: [String: Any] = ["ranks": communicator.size, "threads_per_rank": BLAS.threads, "batch_size": batchSize,
                                             "steps": steps, "overlap": !runtime.noOverlap, "precision": choice.precision.rawValue, "reduction": pretrain.reduction.rawValue, "pretrain": pretrain.json, "dec": dec.json]
                if let modelJSON { object["model"] = modelJSON }
                if let startJSON { object["start_stages"] = startJSON }
                if let forecastJSON { object["run_forecast"] = forecastJSON }
                let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            } else {
                print("bench: \(communicator.size) rank(s) x \(BLAS.threads) BLAS thread(s), global batch \(batchSize), median of \(steps) steps, gradient reduction: \(pretrain.reduction.rawValue)")
                print(choice.description)
                let gemmName = choice.precision == .bf16 ? " bf16 GEMM GFLOP/s" : "    SGEMM GFLOP/s"
                print("step       samples/s   step ms   GFLOP/s/rank\(gemmName)   fraction   exposed comm")
                for (name, r) in [("pretrain", pretrain), ("dec", dec)] {
                    print(String(format: "%-9@ %10.0f %9.2f %14.1f %19.1f %10.3f %13.1f%%", name, r.samplesPerSecond, r.stepMilliseconds,
                                 r.gflops, r.sgemmGflops, r.fractionOfSGEMM, 100 * r.allreduceShare))
                }
                modelLines.forEach { print($0) }
                startLines.forEach { print($0) }
                forecastLines.forEach { print($0) }
            }
        }
    }

    /// The augmentation the steps are timed with: --augment, or with --predict-run the recipe's.
    func stepAugmentation() throws -> Augmentation {
        if let augment { return try Augmentation(parsing: augment) }
        return predictRun == nil ? .none : Recipe.augmentation
    }

    /// The start's seconds at `points` from startModel's stages: each stage's 50k seconds grown by its exponent.
    static func startSeconds(_ model: [String: Any], points: Int) -> Double {
        let stages = model["stages"] as? [[String: Any]] ?? []
        return stages.reduce(0) { sum, stage in
            let (seconds, exponent) = (stage["seconds_50k"] as? Double ?? 0, stage["exponent"] as? Double ?? 1)
            return sum + seconds * pow(Double(points) / 50_000, exponent)
        }
    }

    /// Times N2D's start (`raw --method n2d`'s defaults) on 10 Gaussian clusters (unit spread, centres drawn with
    /// spread 3) at 25,000 and 50,000 points, both above the sizes where the neighbour search is exact and the layout
    /// one chunk, so both run the large-N code; each stage's growth exponent between them predicts its seconds at
    /// `points` on this rank count. Collective.
    func startModel(_ communicator: Communicator, points target: Int) throws -> ([String: Any], [String]) {
        let sizes = [25_000, 50_000], dims = startDims, clusters = 10
        let stages = ["neighbours", "graph", "spectral", "sgd", "kmeans", "mixture"]
        var measured: [[String: Double]] = []
        for n in sizes {
            var rng = Xoshiro256(seed: 0, stream: 0x5354_4147)
            let centres = (0..<(clusters * dims)).map { _ in Float(rng.nextNormal() * 3) }
            var points = [Float](repeating: 0, count: n * dims)
            for i in 0..<n {
                let c = rng.nextInt(below: clusters)
                for d in 0..<dims { points[i * dims + d] = centres[c * dims + d] + Float(rng.nextNormal()) }
            }
            var stageSeconds = try N2D.cluster(points: points, count: n, dims: dims, clusters: clusters, umap: Recipe.umap,
                                               restarts: 3, communicator: communicator).stages
            stageSeconds["sgd"] = (stageSeconds["layout"] ?? 0) - (stageSeconds["spectral"] ?? 0)
            measured.append(stageSeconds)
        }
        let scale = Double(target) / Double(sizes[1])
        var lines = ["\nthe N2D start's stages on \(communicator.size) rank(s) x \(BLAS.threads) thread(s), 10 Gaussian clusters in \(dims) dimensions:",
                     "stage           25k s      50k s  exponent  \(target) points s"]
        var rows: [[String: Any]] = []
        var total = 0.0
        for stage in stages {
            let (first, second) = (measured[0][stage] ?? 0, measured[1][stage] ?? 0)
            // Growth between the two sizes, held between N^1 and N^2 (a stage this short is mostly noise: its 1.0
            // is the floor of any stage that touches every point).
            let exponent = min(max(log(max(second, 1e-3) / max(first, 1e-3)) / log(2), 1), 2)
            let predicted = second * pow(scale, exponent)
            total += predicted
            rows.append(["stage": stage, "seconds_25k": first, "seconds_50k": second, "exponent": exponent, "predicted_s": predicted])
            lines.append(stage.padding(toLength: 11, withPad: " ", startingAt: 0) + String(format: " %10.2f %10.2f %9.2f %16.1f", first, second, exponent, predicted))
        }
        lines.append("total      " + String(repeating: " ", count: 33) + String(format: "%16.1f", total))
        lines.append("(a prediction from the growth between 25k and 50k points: Launch/scale-study measures the sizes themselves)")
        return (["ranks": communicator.size, "threads_per_rank": BLAS.threads, "dims": dims, "points": target, "stages": rows,
                 "predicted_s": total], lines)
    }

    /// Fits the link (or takes --link-gbps), predicts both step kinds for 1 ... maxRanks, checks the prediction
    /// at this rank count against the measured step, writes the plot. Every rank takes part in the sweep.
    func costModel(_ communicator: Communicator, pretrain: BenchResult, dec: BenchResult) throws -> ([String: Any], [String]) {
        let p = communicator.size
        let sweep = p > 1 ? try CostModel.sweep(communicator, maxBytes: Int(pretrain.gradientBytes)) : nil
        let measured = sweep?.link
        let latency = linkLatencyUs.map { $0 * 1e-6 } ?? measured?.alpha ?? 20e-6
        let link = linkGbps.map { LinkParameters(gbps: $0, latency: latency) } ?? LinkParameters(alpha: latency, beta: measured?.beta ?? 8 / 10e9)
        let linkName = linkGbps.map { String(format: "%g Gb/s link, %.1f us latency", $0, latency * 1e6) }
            ?? (measured != nil ? "this machine's transport as measured (\(p) ranks)" : "a 10 Gb/s link (no sweep on one rank)")
        var counts: [Int] = []
        var r = 1
        while r <= maxRanks { counts.append(r); r *= 2 }
        var lines: [String] = []
        var out: [String: Any] = ["link": linkName, "alpha_s": link.alpha, "beta_s_per_byte": link.beta, "link_gbps": 8 / link.beta / 1e9]
        if let sweep {
            out["sweep"] = sweep.points.map { ["bytes": $0.bytes, "seconds": $0.seconds] }
            lines.append(String(format: "allreduce sweep on %d ranks: alpha %.2f us, beta %.3f ns/byte (%.2f GB/s effective per link)",
                                p, sweep.link.alpha * 1e6, sweep.link.beta * 1e9, 1 / sweep.link.beta / 1e9))
            var worst = 0.0
            for point in sweep.points {
                let predicted = CostModel.ringAllreduce(bytes: point.bytes, ranks: p, link: sweep.link)
                var line = String(format: "  %10.0f bytes  measured %8.3f ms  fit %8.3f ms", point.bytes, point.seconds * 1000, predicted * 1000)
                if linkGbps != nil {
                    // The link model (--link-gbps) against what this transport measured: the check of a shaped link.
                    let modelled = CostModel.ringAllreduce(bytes: point.bytes, ranks: p, link: link)
                    line += String(format: "  %@ model %8.3f ms (%+.1f%%)", linkName, modelled * 1000, 100 * (modelled - point.seconds) / point.seconds)
                    if point.bytes >= 1_048_576 { worst = max(worst, abs(modelled - point.seconds) / point.seconds) }
                }
                lines.append(line)
            }
            if linkGbps != nil { out["link_model_worst_error_1MiB_up"] = worst }
        }
        var figures: [(String, [ModelRow])] = []
        for (name, result) in [("pretrain", pretrain), ("dec", dec)] {
            // Compute per sample from this run: a rank's step less its exposed communication, over its rows.
            let rowsHere = Double(batchSize) / Double(p)
            let perSample = result.computeSeconds / rowsHere
            let rows = CostModel.predict(ranks: counts, batch: batchSize, weak: false, computePerSample: perSample,
                                         gradientBytes: result.gradientBytes, link: link)
            figures.append((name, rows))
            var entry: [String: Any] = ["compute_s_per_sample": perSample, "gradient_bytes": result.gradientBytes,
                                        "rows": rows.map { ["ranks": $0.ranks, "step_s": $0.step, "step_overlap_s": $0.stepOverlap,
                                                            "efficiency": $0.efficiency, "efficiency_overlap": $0.efficiencyOverlap,
                                                            "allreduce_s": $0.communication] }]
            lines.append("\nmodel, \(name) step, global batch \(batchSize) (strong scaling), \(linkName):")
            lines.append("   ranks  rows/rank  compute ms  allreduce ms   step ms  efficiency   step ms (overlap)  efficiency (overlap)")
            for row in rows {
                lines.append(String(format: "%8d %10.1f %11.3f %13.3f %9.3f %11.3f %19.3f %21.3f", row.ranks, row.rowsPerRank, row.compute * 1000,
                                    row.communication * 1000, row.step * 1000, row.efficiency, row.stepOverlap * 1000, row.efficiencyOverlap))
            }
            if let sweep, p > 1 {
                // The check: this rank count's step from the fitted link against the step measured here.
                let predicted = result.computeSeconds + CostModel.ringAllreduce(bytes: result.gradientBytes, ranks: p, link: sweep.link)
                let predictedOverlap = result.computeSeconds + max(0, CostModel.ringAllreduce(bytes: result.gradientBytes, ranks: p, link: sweep.link)
                                                                   - result.computeSeconds * 2 / 3)
                let measuredStep = result.stepMilliseconds / 1000
                // The check uses the no-overlap model: on these transports the nonblocking allreduce makes progress
                // only inside MPI calls, so overlap hides little (the measured exposed share says how little). On one
                // host the step reduces in shared memory, cheaper than the MPI allreduce the link was fitted on: there
                // the model errs high by the difference.
                entry["check"] = ["ranks": p, "measured_step_s": measuredStep, "predicted_step_s": predicted,
                                  "predicted_step_overlap_s": predictedOverlap, "relative_error": (predicted - measuredStep) / measuredStep]
                lines.append(String(format: "check at %d ranks: measured step %.3f ms; model %.3f ms without overlap (error %+.1f%%), %.3f ms with ideal overlap",
                                    p, measuredStep * 1000, predicted * 1000, 100 * (predicted - measuredStep) / measuredStep, predictedOverlap * 1000))
            }
            out[name] = entry
        }
        if communicator.rank == 0 {
            let folder = (plot as NSString).deletingLastPathComponent
            if !folder.isEmpty { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) }
            let panels = figures.flatMap { name, rows -> [Panel] in
                let x = { (r: ModelRow) in log2(Double(r.ranks)) }
                return [
                    .line(title: "\(name): step time", xLabel: "log2(ranks)", yLabel: "ms", series: [
                        Series(name: "no overlap", points: rows.map { (x($0), $0.step * 1000) }, markers: true),
                        Series(name: "overlap", points: rows.map { (x($0), $0.stepOverlap * 1000) }, dashed: true),
                        Series(name: "allreduce", points: rows.map { (x($0), $0.communication * 1000) }),
                    ]),
                    .line(title: "\(name): parallel efficiency", xLabel: "log2(ranks)", yLabel: "efficiency", series: [
                        Series(name: "no overlap", points: rows.map { (x($0), $0.efficiency) }),
                        Series(name: "overlap", points: rows.map { (x($0), $0.efficiencyOverlap) }, dashed: true),
                    ], yRange: 0...1.05),
                ]
            }
            try AtomicFile.write(Array(SVG.figure(title: "Cost model: global batch \(batchSize), \(linkName)", panels: panels,
                                                        columns: 2, width: 520, height: 360).utf8), to: plot)
            lines.append("wrote \(plot)")
        }
        return (out, lines)
    }
}

/// Draws Launch/scaling-study's scaling.csv: throughput, speedup and efficiency against the rank count.
struct PlotScalingCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plot-scaling", abstract: "Plot a scaling.csv written by Launch/scaling-study.", shouldDisplay: false)
    @Argument(help: "scaling.csv") var csv: String
    @Option(help: "The SVG to write.") var output: String

    func run() throws {
        do {
            guard let text = try? String(contentsOfFile: csv, encoding: .utf8) else { throw RunError("\(csv): cannot read") }
            let lines = text.split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
            guard let header = lines.first, lines.count > 1 else { throw RunError("\(csv): no rows") }
            func column(_ name: String) throws -> Int {
                guard let i = header.firstIndex(of: name) else { throw RunError("\(csv): no column \(name)") }
                return i
            }
            let (mode, transport, ranks, over) = (try column("mode"), try column("transport"), try column("ranks"), try column("oversubscribed"))
            let (throughput, speedup, efficiency) = (try column("pretrain_samples_per_s"), try column("speedup"), try column("efficiency"))
            var groups: [String: [[String]]] = [:]
            for row in lines.dropFirst() where row.count == header.count { groups["\(row[mode]) \(row[transport])", default: []].append(row) }
            func series(_ index: Int) -> [Series] {
                groups.keys.sorted().map { key in
                    Series(name: key, points: groups[key]!.compactMap { r in Double(r[ranks]).flatMap { x in Double(r[index]).map { (x, $0) } } },
                           dashed: key.hasPrefix("weak"), markers: true)
                }
            }
            let oversubscribed = Set(lines.dropFirst().filter { $0.count == header.count && $0[over] == "yes" }.map { $0[ranks] }).sorted()
            let note = oversubscribed.isEmpty ? "" : " (np \(oversubscribed.joined(separator: ", ")) oversubscribed: contention, not speedup)"
            let svg = SVG.figure(title: "Scaling of the pretraining step" + note, panels: [
                .line(title: "Throughput", xLabel: "ranks", yLabel: "samples/s", series: series(throughput)),
                .line(title: "Speedup over 1 rank", xLabel: "ranks", yLabel: "speedup", series: series(speedup)),
                .line(title: "Parallel efficiency", xLabel: "ranks", yLabel: "efficiency", series: series(efficiency), yRange: 0...1.2),
            ], columns: 3, width: 460, height: 340)
            try AtomicFile.write(Array(svg.utf8), to: output)
            print("wrote \(output)")
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}
