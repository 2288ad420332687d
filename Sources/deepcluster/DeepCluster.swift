// deepcluster: the command line. Argument parsing and validation only; the work is in DeepClustering.
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

@main
struct DeepCluster: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deepcluster",
        abstract: "Data-parallel deep clustering (DEC, IDEC, deep k-means, soft k-means) over MPI.",
        discussion: """
            Run as one process for debugging, or one process per rank under mpirun:
              deepcluster dec                          # the main job on the embedded 10k MNIST
              Launch/run -np 2 dec                     # the same on two ranks
              Launch/run -np 4 --hostfile Hostfiles/localhost info
            --batch-size is the GLOBAL batch: results do not depend on the rank count.
            """,
        subcommands: [InfoCommand.self, PretrainCommand.self, ToyCommand.self, RawCommand.self, DECCommand.self,
                      PredictCommand.self, ReportCommand.self, BenchCommand.self, PlotScalingCommand.self,
                      SelfTestCommand.self, CompareCommand.self, CompareGradientsCommand.self])

    /// ArgumentParser's main, after joining options with negative values (`--lr -1` -> `--lr=-1`) so that they reach
    /// validation instead of reading as flags.
    static func main() {
        let arguments = joiningNegativeValues(Array(CommandLine.arguments.dropFirst()))
        subcommandArguments = Array(arguments.dropFirst())
        do {
            var command = try parseAsRoot(arguments)
            try command.run()
        } catch {
            exit(withError: error)
        }
    }
}

// MARK: - Shared option groups

struct DataOptions: ParsableArguments {
    @Option(help: ArgumentHelp("A directory in the MNIST layout (full MNIST, /usr/share/datasets/fashion-mnist), or a file: .npy (uint8, integers, float32/64; samples x features, or samples x height x width) or .csv/.tsv (one sample per line, a header line optional). Default: the embedded 10k MNIST test set.", valueName: "dir-or-file"))
    var data: String?
    @Option(help: "Labels of a .npy or CSV --data: a .npy of integers, or a text file with one label (number or word) per line. Optional: without labels there is no ACC/NMI/ARI.")
    var labels: String?
    @Option(help: ArgumentHelp("The label column of a CSV --data: its name, its 0-based index (-1 or 'last': the last), 'none', or 'auto' (a column named label/class/target/y/..., else the one column of text).", valueName: "name-or-index"))
    var labelColumn = "auto"
    @Option(help: "Normalisation of a .npy or CSV --data: auto (images to [0,1], feature columns standardised), unit, zscore or none.")
    var normalize: InputNormalization = .auto
    @Option(help: "Which split of an MNIST-layout --data: train, test or all.")
    var split: Split = .all
    @Option(help: "Use only the first N samples.")
    var limit: Int?

    func validate() throws {
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1 (got \(limit)).") }
        if labels != nil, !isFile { throw ValidationError("--labels goes with a .npy or CSV --data (an MNIST-layout directory has its label files).") }
    }

    var isFile: Bool {
        guard let data else { return false }
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: data, isDirectory: &isDirectory) ? !isDirectory.boolValue
            : DataSet.fileExtensions.contains(URL(fileURLWithPath: data).pathExtension.lowercased())
    }

    /// The data set; rank 0 prints what loading chose (label column, normalisation).
    /// `raw`: a file's values as read, not normalised (predict applies the model's normalisation).
    func load(rank: Int = 0, raw: Bool = false) throws -> DataSet {
        let loaded: DataSet
        if let data, isFile {
            loaded = try DataSet.load(file: data, labels: labels, labelColumn: CSVTable.LabelColumn(parsing: labelColumn),
                                      normalization: raw ? nil : normalize, limit: limit)
        } else if let data {
            loaded = try DataSet.load(directory: data, split: split, limit: limit)
        } else {
            loaded = try DataSet.embeddedMNIST(limit: limit)
        }
        if rank == 0 { for note in loaded.notes { print("note: \(note)") } }
        return loaded
    }
}

extension InputNormalization: ExpressibleByArgument {}

struct RuntimeOptions: ParsableArguments {
    @Option(help: "BLAS threads per rank. Default: all cores for a single rank, 1 per rank under mpirun.")
    var threads: Int?
    @Flag(help: "Reduce gradients in one blocking allreduce after the backward pass (for comparison).")
    var noOverlap = false
    @Flag(inversion: .prefixedNo, help: "Reduce each gradient bucket with a blocking allreduce on a background thread while the backward pass goes on. Default: on when the ranks span several hosts (where the link, not the cores, is slow).")
    var reductionThread: Bool?
    @Flag(help: "Reduce gradients through MPI even when every rank runs on one host (one blocking allreduce per step, or with --reduction-thread a background thread's). Default there: the gradients live in shared memory and each rank sums its share of every layer straight from the other ranks' buffers (README: Speed).")
    var noSharedMemory = false

    func validate() throws {
        try Limits.threads(threads)
    }
}

/// Options of the training commands that steer one invocation (left out of the run's command.json).
struct SessionOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Continue the run in this directory from its newest complete checkpoint, with the options it was started with (from its command.json). Given again, the learning rates, epochs and --checkpoint-every change (say so and are remembered); --threads, --no-overlap, --[no-]reduction-thread, --no-shared-memory and --stop-after-epochs steer this invocation; any other option is refused.", valueName: "run-dir"))
    var resume: String?
    @Option(help: "Train at most N epochs in this invocation, write a checkpoint and exit 0; continue later with --resume (for time-limited job slots).")
    var stopAfterEpochs: Int?

    func validate() throws {
        if let stopAfterEpochs, stopAfterEpochs < 1 { throw ValidationError("--stop-after-epochs must be at least 1.") }
    }
}

/// A command that trains: it writes command.json into its run directory and can be continued with --resume.
protocol TrainingCommand: ParsableCommand {
    /// Options a resumed run may change (`--resume DIR --lr 0.0001`).
    static var resumableOptions: [String] { get }
    var runtime: RuntimeOptions { get set }
    var session: SessionOptions { get set }
    var out: String? { get }
    func train(_ communicator: Communicator, directory: String, mode: RunContext.Mode) throws
}

/// Options that steer one invocation only, with a value / without one.
private let invocationOptions: Set = ["--out", "--resume", "--threads", "--stop-after-epochs", "--debug-poison", "--debug-dump-gradients"]
private let invocationFlags: Set = ["--no-overlap", "--reduction-thread", "--no-reduction-thread", "--no-shared-memory"]

/// Options as (name, value) pairs: `--name value` or `--name=value`; a flag gets an empty value.
func optionPairs(_ arguments: [String]) -> [(name: String, value: String)] {
    var pairs: [(name: String, value: String)] = []
    var i = 0
    while i < arguments.count {
        let argument = arguments[i]
        if let equals = argument.firstIndex(of: "="), argument.hasPrefix("--") {
            pairs.append((String(argument[..<equals]), String(argument[argument.index(after: equals)...])))
        } else if i + 1 < arguments.count, !arguments[i + 1].hasPrefix("--") {
            pairs.append((argument, arguments[i + 1]))
            i += 1
        } else {
            pairs.append((argument, ""))
        }
        i += 1
    }
    return pairs
}

/// `base` with every option that `changes` names replaced by its value there, as arguments.
func mergeOptions(_ base: [(name: String, value: String)], _ changes: [(name: String, value: String)]) -> [String] {
    let changed = Set(changes.map(\.name))
    let kept = base.filter { !changed.contains($0.name) }
    var latest: [String: String] = [:]
    var order: [String] = []
    for change in changes {
        if latest[change.name] == nil { order.append(change.name) }
        latest[change.name] = change.value
    }
    return (kept + order.map { ($0, latest[$0]!) }).map { $0.value.isEmpty ? $0.name : "\($0.name)=\($0.value)" }
}

/// The arguments that define a run: those after the subcommand, less the invocation options.
func manifestArguments(_ arguments: [String]) -> [String] {
    var kept: [String] = []
    var skipNext = false
    for argument in arguments {
        if skipNext { skipNext = false; continue }
        let name = String(argument.split(separator: "=", maxSplits: 1).first ?? "")
        if invocationFlags.contains(argument) { continue }
        if invocationOptions.contains(name) { skipNext = !argument.contains("="); continue }
        kept.append(argument)
    }
    return kept
}

extension TrainingCommand {
    func run() throws {
        try withWorld(runtime) { communicator in
            try GracefulStop.install()
            let name = Self.configuration.commandName!
            guard let directory = session.resume else {
                let manifest = RunManifest(command: name, arguments: manifestArguments(subcommandArguments))
                try train(communicator, directory: try agreedDirectory(out, name, communicator), mode: .fresh(manifest))
                return
            }
            // Rank 0 reads the manifest; every rank parses the same arguments.
            var text = "", failure = ""
            if communicator.rank == 0 {
                do {
                    let manifest = try RunManifest.read(from: directory)
                    text = String(decoding: try JSONEncoder().encode(manifest), as: UTF8.self)
                } catch { failure = "\(error)" }
            }
            failure = try communicator.broadcast(failure, root: 0)
            if !failure.isEmpty { throw RunError(failure) }
            let manifest = try JSONDecoder().decode(RunManifest.self, from: Data(try communicator.broadcast(text, root: 0).utf8))
            guard manifest.command == name else {
                throw RunError("\(directory) holds a \(manifest.command) run: continue it with `deepcluster \(manifest.command) --resume \(directory)`")
            }
            // Options given again: those that may change in a continued run are taken (and remembered in command.json
            // as overrides, outside the configuration hash that checkpoints carry); any other is refused.
            let given = optionPairs(manifestArguments(subcommandArguments))
            let refused = given.map(\.name).filter { !Self.resumableOptions.contains($0) }
            if !refused.isEmpty {
                throw RunError("--resume continues \(directory) with the options of its \(RunManifest.fileName); "
                    + "\(Set(refused).sorted().joined(separator: ", ")) cannot change in a continued run. "
                    + "Those that can: \(Self.resumableOptions.joined(separator: ", ")) (and --threads, --stop-after-epochs); "
                    + "for other settings start a new run with --out")
            }
            let overrides = mergeOptions(optionPairs(manifest.overrides ?? []), given)
            var command: Self
            do { command = try Self.parse(mergeOptions(optionPairs(manifest.arguments), optionPairs(overrides))) } catch {
                throw RunError("\(directory)/\(RunManifest.fileName): \(Self.message(for: error))")
            }
            command.runtime = runtime
            command.session = session
            var updated = manifest
            if !given.isEmpty {
                updated.overrides = overrides  // written by the run once its checkpoint has loaded
                var locked = ""
                if communicator.rank == 0 { do { try RunContext.lockDirectory(directory) } catch { locked = "\(error)" } }
                locked = try communicator.broadcast(locked, root: 0)
                if !locked.isEmpty { throw RunError(locked) }
            }
            if !given.isEmpty && communicator.rank == 0 {
                let before = optionPairs(manifest.arguments + (manifest.overrides ?? []))
                let changes = given.map { pair -> String in
                    let old = before.last(where: { $0.name == pair.name })?.value ?? "the default"
                    return "\(pair.name) \(pair.value) (was \(old))"
                }
                print("resuming with " + changes.joined(separator: ", "))
            }
            try command.train(communicator, directory: directory, mode: .resume(updated))
        }
    }
}

extension Split: ExpressibleByArgument {}
extension OptimizerKind: ExpressibleByArgument {}
extension WeightInit: ExpressibleByArgument {}
extension ClusterStart: ExpressibleByArgument {}
extension ShareEmulation.Order: ExpressibleByArgument {}

extension ParsableCommand {
    /// Starts the world (MPI when launched by mpirun), sets the BLAS threads, runs `body`, and turns errors into
    /// one line on stderr and a non-zero exit.
    func withWorld(_ runtime: RuntimeOptions, _ body: (Communicator) throws -> Void) throws {
        let communicator: Communicator
        var mpi: MPICommunicator?
        do {
            if MPICommunicator.launchedByMPI {
                mpi = try MPICommunicator(reductionThread: runtime.noOverlap ? false : runtime.reductionThread,
                                          sharedMemory: !runtime.noSharedMemory)
                communicator = mpi!
            } else {
                communicator = SingleProcessCommunicator()
            }
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(2)
        }
        BLAS.threads = runtime.threads ?? (communicator.size > 1 ? 1 : ProcessInfo.processInfo.activeProcessorCount)
        do {
            try body(communicator)
        } catch let stop as StopRequested {
            if communicator.rank == 0 { print(stop.description) }
            mpi?.finalize()
            return
        } catch let stop as StopSignalled {
            // Every rank is here after the same step, and rank 0's checkpoint is written.
            if communicator.size > 1 { FileHandle.standardError.write(Data((stop.rankLine + "\n").utf8)) }
            if communicator.rank == 0 { print(stop.description); fflush(nil) }
            mpi?.finalize()
            throw ExitCode(GracefulStop.exitStatus)
        } catch {
            GracefulStop.release()
            // Rank 0 speaks at once. Another rank waits a moment first: when every rank hit the same error, rank 0's
            // exit makes mpirun end the job before the others repeat it; when only this rank failed, its message
            // still comes, and its exit then ends the job.
            if communicator.rank != 0 { usleep(2_000_000) }
            let prefix = communicator.size > 1 ? "error (rank \(communicator.rank)): " : "error: "
            FileHandle.standardError.write(Data((prefix + "\(error)\n").utf8))
            // Without MPI_Finalize; mpirun then ends the other ranks too.
            Foundation.exit(1)
        }
        mpi?.finalize()
    }
}

func defaultRunDirectory(_ command: String) -> String {
    let formatter = DateFormatter()
    formatter.dateFormat = "yyyyMMdd-HHmmss"
    return "runs/\(command)-\(formatter.string(from: Date()))"
}

/// The run directory must be agreed by all ranks (timestamps differ by a second between ranks).
func agreedDirectory(_ out: String?, _ command: String, _ communicator: Communicator) throws -> String {
    if let out { return out }
    return try communicator.broadcast(defaultRunDirectory(command), root: 0)
}

// MARK: - info

struct InfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info", abstract: "Show every rank: host, BLAS threads, and the data it loaded. The first thing to run on a new cluster.")
    @OptionGroup var dataOptions: DataOptions
    @OptionGroup var runtime: RuntimeOptions

    func run() throws {
        try withWorld(runtime) { communicator in
            let data = try dataOptions.load(rank: communicator.rank)
            let table = try Info.run(communicator: communicator, data: data, overlap: !runtime.noOverlap)
            if communicator.rank == 0 { print(table, terminator: "") }
        }
    }
}

// MARK: - pretrain

struct PretrainCommand: TrainingCommand {
    static let resumableOptions = ["--lr", "--epochs", "--checkpoint-every"]
    static let configuration = CommandConfiguration(
        commandName: "pretrain", abstract: "Pretrain the autoencoder on reconstruction; writes autoencoder.bin and metrics.jsonl.")
    @OptionGroup var dataOptions: DataOptions
    @OptionGroup var runtime: RuntimeOptions
    @OptionGroup var session: SessionOptions
    @Option(help: "Epochs.") var epochs = 100
    @Option(help: "Global batch size (summed over all ranks).") var batchSize = 256
    @Option(help: "adam or sgd.") var optimizer: OptimizerKind = .adam
    @Option(help: "Learning rate.") var lr: Float = 0.001
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @Option(help: "Encoder widths, input first, e.g. 784-500-500-2000-10.") var widths = "784-500-500-2000-10"
    @Option(help: "Weight initialisation: glorot or fanin (DEC-keras).") var initialization: WeightInit = .glorot
    @Option(help: "Denoising: probability of zeroing each input pixel.") var mask: Float = 0.2
    @Option(help: "Augmentation of every sample (square images): none, or shift=F,rotate=DEGREES for a random shift up to F of the width and height and a rotation up to DEGREES, bilinear, drawn from (seed, epoch, sample), e.g. shift=0.1,rotate=10. The mask applies on top.")
    var augment = "shift=0.1,rotate=10"
    @Option(help: "Write a checkpoint every N epochs (and after the last).") var checkpointEvery = 1
    @Option(help: "Stop after this many steps (for tests).") var maxSteps: Int?
    @Option(help: ArgumentHelp("Fault injection for tests: STEP:RANK makes that rank's gradient NaN at that step.", visibility: .hidden))
    var debugPoison: String?
    @Option(help: ArgumentHelp("Tests: one process computes the shares of N ranks and sums them in rank order (run it with --threads 1).", visibility: .hidden))
    var debugEmulateRanks: Int?
    @Option(help: ArgumentHelp("Tests: how the emulation sums its shares: rank (the contract), reverse or drop-last (mistakes the exact test must catch).", visibility: .hidden))
    var debugEmulateOrder: ShareEmulation.Order = .rank
    @Option(help: ArgumentHelp("Tests: write the first step's reduced gradient to PATH (an emulation also its shares, to PATH.shares).", visibility: .hidden))
    var debugDumpGradients: String?
    @Option(help: "Run directory. Default: runs/pretrain-<time>.") var out: String?

    func validate() throws {
        try validateTraining(epochs: epochs, batchSize: batchSize, lr: lr)
        _ = try parseWidths(widths)
        if !(0..<1).contains(mask) { throw ValidationError("--mask must be in [0, 1).") }
        if checkpointEvery < 1 { throw ValidationError("--checkpoint-every must be at least 1.") }
        if let debugEmulateRanks, !(2...64).contains(debugEmulateRanks) { throw ValidationError("--debug-emulate-ranks must be in 2...64.") }
        if let maxSteps, maxSteps < 1 { throw ValidationError("--max-steps must be at least 1 (got \(maxSteps)).") }
        try Limits.augmentation(augment)
        try Limits.memory(widths: try parseWidths(widths), batchSize: batchSize)
    }

    func train(_ communicator: Communicator, directory: String, mode: RunContext.Mode) throws {
        try checkBatch(batchSize, ranks: communicator.size)
        let data = try dataOptions.load(rank: communicator.rank)
        let batchSize = try Limits.batch(batchSize, samples: data.count, rank: communicator.rank)
        var options = PretrainOptions(epochs: epochs, batchSize: batchSize, optimizer: optimizer, learningRate: lr, seed: seed,
                                      widths: try dataWidths(widths, data), weightInit: initialization, maskRate: mask,
                                      overlap: !runtime.noOverlap)
        options.checkpointEvery = checkpointEvery
        options.maxSteps = maxSteps
        options.augmentation = try Limits.augmentation(augment, data: data, rank: communicator.rank)
        if let parts = debugPoison?.split(separator: ":").compactMap({ Int($0) }), parts.count == 2 { options.poison = (parts[0], parts[1]) }
        options.emulation = debugEmulateRanks.map { ShareEmulation(ranks: $0, order: debugEmulateOrder) }
        options.gradientDump = debugDumpGradients
        if let emulated = debugEmulateRanks { try checkBatch(batchSize, ranks: emulated) }
        guard options.widths[0] == data.dimension else {
            throw RunError("--widths starts at \(options.widths[0]) but the data has \(data.dimension) dimensions")
        }
        let context = try RunContext(communicator: communicator, directory: directory, mode: mode)
        context.epochBudget = session.stopAfterEpochs
        try context.verifySameConfiguration("pretrain \(context.configHash) data \(data.count)x\(data.dimension)")
        try context.writeMachineInfo(data: data)
        try context.writeConfiguration([("pretrain", options)])
        let trainer = try Pretrainer(context: context, data: data, options: options)
        if context.resuming, try trainer.resume() {
            let position = trainer.batchInEpoch > 0 ? "in epoch \(trainer.epoch + 1), after batch \(trainer.batchInEpoch)," : "after epoch \(trainer.epoch)"
            context.say("resuming \(position) of \(epochs) (step \(trainer.step)) from \(trainer.checkpointPath)")
        } else {
            try trainer.initializeWeights()
        }
        context.say("pretraining \(widths) on \(data.name) (\(data.count) samples), \(communicator.size) rank(s), "
                    + "batch \(batchSize), \(optimizer.rawValue) lr \(lr), mask \(mask) -> \(context.directory)")
        try trainer.run()
        if context.isRoot { try RunReport.write(directory: context.directory) }
        context.say("wrote \(trainer.checkpointPath) and report.html")
    }
}

/// `--widths` as given; when not given, the default with the data's width first (784 for MNIST).
func dataWidths(_ text: String, _ data: DataSet) throws -> [Int] {
    var widths = try parseWidths(text)
    if !Limits.given("--widths") { widths[0] = data.dimension }
    return widths
}

/// K by default: the number of classes in the labels.
func classesOf(_ data: DataSet) throws -> Int {
    guard data.hasLabels else {
        throw RunError("\(data.name) has no labels to count classes from: give the number of clusters with --clusters K")
    }
    return data.classCount
}

func validateTraining(epochs: Int, batchSize: Int, lr: Float, prefix: String = "") throws {
    if epochs <= 0 { throw ValidationError("--\(prefix)epochs must be positive (got \(epochs)).") }
    try Limits.batch(batchSize)
    if !(lr > 0) || !lr.isFinite { throw ValidationError("--\(prefix)lr must be a positive number (got \(lr)).") }
}

/// Every rank needs at least one row of each global batch.
func checkBatch(_ batchSize: Int, ranks: Int) throws {
    if batchSize < ranks {
        throw RunError("--batch-size \(batchSize) is smaller than the \(ranks) ranks; every rank needs a row")
    }
}

func parseWidths(_ text: String) throws -> [Int] {
    let parts = text.split(separator: "-", omittingEmptySubsequences: false).map { Int($0) }
    guard parts.count >= 2, parts.allSatisfy({ ($0 ?? 0) > 0 }) else {
        throw ValidationError("--widths must be positive integers joined by '-', e.g. 784-500-500-2000-10 (got \(text)).")
    }
    return parts.map { $0! }
}

// MARK: - report

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Rebuild RUN_DIR/report.html from a run's files, or compare several runs on one page.",
        discussion: """
            One directory: rewrites its report.html (command, machine, final metrics, timings, every figure inline).
            Several: one page with their curves overlaid and a table of final metrics, e.g. a 1-rank and a 4-rank run:
              deepcluster report runs/dec-1rank runs/dec-4ranks --output runs/compare.html
            The pages fetch nothing from the network; open them from the file system.
            """)
    @Argument(help: "Run directories.") var directories: [String]
    @Option(help: "Where the comparison page goes (several directories). Default: runs/compare-<time>.html.") var output: String?

    func validate() throws {
        if directories.isEmpty { throw ValidationError("give at least one run directory.") }
    }

    func run() throws {
        do {
            if directories.count == 1 {
                print("wrote \(try RunReport.write(directory: directories[0]))")
            } else {
                let path = output ?? defaultRunDirectory("compare") + ".html"
                let folder = (path as NSString).deletingLastPathComponent
                if !folder.isEmpty { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) }
                try RunReport.compare(directories: directories, output: path)
                print("wrote \(path)")
            }
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}
