// deepcluster: the command line: the root command, the option groups every command shares, and how a command
// starts its world and ends on an error (and, before all, OpenBLAS's kernels where it did not recognise the CPU).
// Argument parsing and validation only; the work is in Training.
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

/// When OpenBLAS did not recognise this CPU and fell back to its generic kernels although the CPU has AVX2 or
/// AVX-512, the process starts again (before MPI or anything else) with OPENBLAS_CORETYPE naming the kernels the
/// flags allow: the library reads it only when it loads. A user's OPENBLAS_CORETYPE is left alone.
func useFasterBLASKernels() {
    guard ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil,
          let cpuinfo = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
          let flagsLine = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return }
    let flags = Set(flagsLine.split(separator: ":").last?.split(separator: " ").map(String.init) ?? [])
    guard let core = BLAS.coreTypeForGenericFallback(coreName: BLAS.coreName, cpuFlags: flags) else { return }
    setenv("OPENBLAS_CORETYPE", core, 1)
    // The binary's own path, not /proc/self/exe, so that ps and top still show its name.
    let path = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "/proc/self/exe"
    execv(path, CommandLine.unsafeArgv)
    // exec failed: go on with the generic kernels.
}

/// The arguments after the subcommand, as typed (negative values joined): a training run keeps them in command.json.
nonisolated(unsafe) var subcommandArguments: [String] = []

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
                      PredictCommand.self, ReportCommand.self, WriteImagesCommand.self, BenchCommand.self, NeighboursCommand.self, PlotScalingCommand.self,
                      SelfTestCommand.self, CompareCommand.self, CompareGradientsCommand.self, ChooseKCommand.self])

    /// ArgumentParser's main, after joining options with negative values (`--lr -1` -> `--lr=-1`) so that they reach
    /// validation instead of reading as flags.
    static func main() {
        // A training command records a stop signal from its first instant (before the OpenBLAS re-exec, and again in
        // the new image), so a scheduler's signal during start-up ends the run after its first step, with a
        // checkpoint: a requeued Slurm job can get its SIGTERM within a second of starting (Tests/slurm.sh saw one
        // killed before its handler was in place, so it ended with 143 and was not requeued).
        if let name = CommandLine.arguments.dropFirst().first,
           configuration.subcommands.contains(where: { ($0 as? any TrainingCommand.Type)?.configuration.commandName == name }) {
            do { try GracefulStop.install() } catch { exit(withError: error) }
        }
        useFasterBLASKernels()
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
    @Option(help: ArgumentHelp("A directory in the MNIST layout (full MNIST, /usr/share/datasets/fashion-mnist); a folder of PNG/JPEG images (root/<class>/<file> gives labels from the class folders, a flat folder none; any depth, files in natural path order); or a file: .npy (uint8, integers, float32/64; samples x features, or samples x height x width) or .csv/.tsv (one sample per line, a header line optional). Default: the embedded 10k MNIST test set.", valueName: "dir-or-file"))
    var data: String?
    @Option(help: ArgumentHelp("Size of the samples of an image folder: S (S x S) or WxH; other images are resized (bilinear, averaging when shrinking). Default: the size most images have (its longer side brought down to \(ImageFolder.defaultLongestSide) when larger).", valueName: "S|WxH"))
    var imageSize: String?
    @Option(help: "Channels of the samples of an image folder: 1 (grey) or 3 (RGB). Default: 1 when every image is grey, else 3.")
    var channels: Int?
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
        if labels != nil, !isFile { throw ValidationError("--labels goes with a .npy or CSV --data (an MNIST-layout directory has its label files; an image folder takes its labels from its class folders).") }
        if let channels, channels != 1 && channels != 3 { throw ValidationError("--channels takes 1 (grey) or 3 (RGB) (got \(channels)).") }
        _ = try imageDimensions()
        if imageSize != nil || channels != nil, data == nil || isFile {
            throw ValidationError("--image-size and --channels go with a --data folder of PNG/JPEG images.")
        }
    }

    /// --image-size as (width, height).
    func imageDimensions() throws -> (Int, Int)? {
        guard let imageSize else { return nil }
        let parts = imageSize.lowercased().split(separator: "x", omittingEmptySubsequences: false).map { Int($0) }
        guard (parts.count == 1 || parts.count == 2), parts.allSatisfy({ $0 != nil && (1...1024).contains($0!) }) else {
            throw ValidationError("--image-size takes S or WxH with sides from 1 to 1024, e.g. 28 or 32x24 (got \(imageSize)).")
        }
        return (parts[0]!, parts.count == 2 ? parts[1]! : parts[0]!)
    }

    var isFile: Bool {
        guard let data else { return false }
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: data, isDirectory: &isDirectory) ? !isDirectory.boolValue
            : DataSet.fileExtensions.contains(URL(fileURLWithPath: data).pathExtension.lowercased())
    }

    /// The data set; rank 0 prints what loading chose (label column, normalisation). The ranks split the reading
    /// of an image folder. `raw`: a file's values as read, not normalised (predict applies the model's
    /// normalisation); `expectedDimension`: a model's input width, which an image folder's default size follows.
    /// Under mpirun the samples are held once per host (`HostData`): one rank of each host reads them.
    func load(_ communicator: Communicator, raw: Bool = false, expectedDimension: Int? = nil) throws -> DataSet {
        let loaded: DataSet
        if let data, isFile {
            loaded = try HostData.load(communicator) {
                try DataSet.load(file: data, labels: labels, labelColumn: CSVTable.LabelColumn(parsing: labelColumn),
                                 normalization: raw ? nil : normalize, limit: limit)
            }
        } else if let data, FileManager.default.fileExists(atPath: data), ImageFolder.isImageFolder(data) {
            loaded = try HostData.load(communicator, everyRankLoads: true) {
                try loadImages(data, communicator, expectedDimension: expectedDimension)
            }
        } else if let data {
            if imageSize != nil || channels != nil {
                throw RunError("\(data) is in the MNIST layout; --image-size and --channels go with a folder of PNG/JPEG images", everyRank: true)
            }
            loaded = try HostData.load(communicator) { try DataSet.load(directory: data, split: split, limit: limit) }
        } else {
            loaded = try HostData.load(communicator) { try DataSet.embeddedMNIST(limit: limit) }
        }
        if communicator.rank == 0 { for note in loaded.notes { print("note: \(note)") } }
        return loaded
    }

    /// A folder of images, the ranks each decoding a share on their threads; progress on rank 0's terminal.
    private func loadImages(_ folder: String, _ communicator: Communicator, expectedDimension: Int?) throws -> DataSet {
        let size = try imageDimensions()
        let started = Date()
        let terminal = communicator.rank == 0 && isatty(1) != 0 && ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_SIZE"] == nil
        var lastLine = Date()
        let options = ImageFolderOptions(width: size?.0, height: size?.1, channels: channels, limit: limit,
                                         expectedDimension: expectedDimension, threads: BLAS.threads) { done, total in
            if terminal {
                print("\rreading images: \(done)/\(total)", terminator: "")
                fflush(nil)
            } else if Date().timeIntervalSince(lastLine) >= 10 {
                lastLine = Date()
                print("reading images: \(done)/\(total) (\(formatDuration(Date().timeIntervalSince(started))))")
                fflush(nil)
            }
        }
        let share = ReadShare(rank: communicator.rank, size: communicator.size, gather: { try communicator.allgatherBytes($0) })
        let data = try ImageFolder.load(directory: folder, options: options, share: share)
        if terminal { print("\r" + String(repeating: " ", count: 40) + "\r", terminator: "") }
        if communicator.rank == 0 {
            print(String(format: "read %d images in %.1f s (%d rank(s) x %d thread(s))", data.count, Date().timeIntervalSince(started),
                         communicator.size, BLAS.threads))
        }
        return data
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
    @Flag(help: "Reduce gradients through MPI even when every rank runs on one host (one blocking allreduce per step, or with --reduction-thread a background thread's), and let every rank load its own copy of the samples. Default there: the gradients live in shared memory and each rank sums its share of every layer straight from the other ranks' buffers (README: Speed), and one rank per host loads the samples into memory the host's ranks share.")
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
        // The stop handler is in place already (DeepCluster.main).
        try withWorld(runtime) { communicator in
            let name = Self.configuration.commandName!
            guard let directory = session.resume else {
                let manifest = RunManifest(command: name, arguments: manifestArguments(subcommandArguments))
                try train(communicator, directory: try agreedDirectory(out, name, communicator), mode: .fresh(manifest))
                return
            }
            let (arguments, manifest) = try RunResumption.prepare(directory: directory, command: name,
                                                                  given: manifestArguments(subcommandArguments),
                                                                  resumable: Self.resumableOptions, communicator: communicator)
            var command: Self
            do { command = try Self.parse(arguments) } catch {
                throw RunError("\(directory)/\(RunManifest.fileName): \(Self.message(for: error))", everyRank: true)
            }
            command.runtime = runtime
            command.session = session
            try command.train(communicator, directory: directory, mode: .resume(manifest))
        }
    }
}

extension Split: ExpressibleByArgument {}
extension NeighbourSearch: ExpressibleByArgument {}
extension OptimizerKind: ExpressibleByArgument {}
extension LearningRateSchedule: ExpressibleByArgument {}
extension WeightInit: ExpressibleByArgument {}
extension PrecisionSetting: ExpressibleByArgument {}
extension ClusterStart: ExpressibleByArgument {}
extension KeptResult: ExpressibleByArgument {}
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
                if communicator.size > 1 { ProportionalMemory.watch() }
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
            // An error every rank reached at the same point is rank 0's to report: the others wait at a barrier until
            // it has, so that none exits (and makes mpirun end the job) before the message is out. Any other error
            // is this rank's own: it reports it at once, and its exit ends the job.
            let everyRank = (error as? RunError)?.everyRank == true && communicator.size > 1
            if !everyRank || communicator.rank == 0 {
                let prefix = communicator.size > 1 && !everyRank ? "error (rank \(communicator.rank)): " : "error: "
                FileHandle.standardError.write(Data((prefix + "\(error)\n").utf8))
            }
            if everyRank { try? communicator.barrier() }
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

