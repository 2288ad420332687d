// bench: step throughput against the in-process SGEMM rate.
import ArgumentParser
import Collective
import DeepClustering
import Foundation

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time pretraining and DEC steps (median after warm-up) against the SGEMM rate on the same shapes.",
        discussion: "Run under Launch/run -np P to measure P ranks; --no-overlap compares the blocking allreduce.")
    @OptionGroup var runtime: RuntimeOptions
    @Option(help: "Global batch size.") var batchSize = 256
    @Option(help: "Timed steps (after 3 warm-up steps).") var steps = 20
    @Option(help: "Encoder widths, input first.") var widths = "784-500-500-2000-10"
    @Flag(help: "Print one JSON object instead of a table.") var json = false

    func run() throws {
        if steps < 1 { throw ValidationError("--steps must be at least 1.") }
        try withWorld(runtime) { communicator in
            try checkBatch(batchSize, ranks: communicator.size)
            let data = try DataSet.embeddedMNIST()
            let context = try RunContext(communicator: communicator, directory: NSTemporaryDirectory() + "deepcluster-bench-\(getpid())", quiet: true)
            let (pretrain, dec) = try Bench.run(context: context, data: data, batchSize: batchSize, steps: steps,
                                                widths: try parseWidths(widths), overlap: !runtime.noOverlap)
            try? FileManager.default.removeItem(atPath: context.directory)
            guard communicator.rank == 0 else { return }
            if json {
                let object: [String: Any] = ["ranks": communicator.size, "threads_per_rank": BLAS.threads, "batch_size": batchSize,
                                             "steps": steps, "overlap": !runtime.noOverlap, "pretrain": pretrain.json, "dec": dec.json]
                let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            } else {
                print("bench: \(communicator.size) rank(s) x \(BLAS.threads) BLAS thread(s), global batch \(batchSize), median of \(steps) steps, overlap \(runtime.noOverlap ? "off" : "on")")
                print("step       samples/s   step ms   GFLOP/s/rank   SGEMM GFLOP/s   fraction   exposed comm")
                for (name, r) in [("pretrain", pretrain), ("dec", dec)] {
                    print(String(format: "%-9@ %10.0f %9.2f %14.1f %15.1f %10.3f %13.1f%%", name, r.samplesPerSecond, r.stepMilliseconds,
                                 r.gflops, r.sgemmGflops, r.fractionOfSGEMM, 100 * r.allreduceShare))
                }
            }
        }
    }
}
