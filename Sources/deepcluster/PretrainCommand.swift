// pretrain: the autoencoder alone, on reconstruction.
import ArgumentParser
import Collective
import Datasets
import Foundation
import Report
import Tensor
import Training

// MARK: - pretrain

struct PretrainCommand: TrainingCommand {
    static let resumableOptions = ["--lr", "--epochs", "--checkpoint-every"]
    static let configuration = CommandConfiguration(
        commandName: "pretrain", abstract: "Pretrain the autoencoder on reconstruction; writes autoencoder.bin and metrics.jsonl.")
    @OptionGroup var dataOptions: DataOptions
    @OptionGroup var runtime: RuntimeOptions
    @OptionGroup var session: SessionOptions
    @Option(help: "Epochs. Default: \(Recipe.pretrainEpochs) up to \(Recipe.fullScheduleSamples) samples, fewer above (\(Recipe.pretrainEpochs(samples: 70_000)) on 70,000; README: Accuracy).") var epochs: Int?
    @Option(help: "Global batch size (summed over all ranks). Default: \(Recipe.batchSize), or the number of samples when there are fewer.") var batchSize: Int?
    @Option(help: "adam or sgd.") var optimizer = Recipe.pretrainOptimizer
    @Option(help: "Learning rate over the epochs: constant, or cosine (from --lr down to 0 over all the epochs).")
    var schedule = Recipe.pretrainSchedule
    @Option(help: "Learning rate.") var lr = Recipe.pretrainLearningRate
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @Option(help: "Encoder widths, input first, e.g. 784-500-500-2000-10. Default: the data's width, then 500-500-2000-10.") var widths: String?
    @Option(help: "Weight initialisation: glorot or fanin (DEC-keras).") var initialization = Recipe.weightInit
    @Option(help: "Denoising: probability of zeroing each input pixel.") var mask = Recipe.maskRate
    @Option(help: "Augmentation of every sample (square images): none, or shift=F,rotate=DEGREES for a random shift up to F of the width and height and a rotation up to DEGREES, bilinear, drawn from (seed, epoch, sample), e.g. shift=0.1,rotate=10. The mask applies on top. Default: shift=0.1,rotate=10 on square images, none on other data.")
    var augment: String?
    @Option(help: ArgumentHelp("Write a checkpoint every N epochs, or once a time such as 90s, 5m or 1h has passed since the last; also after the last epoch and at a stop signal. Default: \(Recipe.checkpointEvery).", valueName: "N|time"))
    var checkpointEvery = Recipe.checkpointEvery.description
    @Option(help: "Stop after this many steps (for tests).") var maxSteps: Int?
    @Option(help: ArgumentHelp(FlagHelp.precision))
    var precision = Recipe.precision
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
        _ = try plannedWidths(widths)
        if !(0..<1).contains(mask) { throw ValidationError("--mask must be in [0, 1).") }
        do { _ = try CheckpointCadence(parsing: checkpointEvery) } catch { throw ValidationError("\(error)") }
        if let debugEmulateRanks, !(2...64).contains(debugEmulateRanks) { throw ValidationError("--debug-emulate-ranks must be in 2...64.") }
        if let maxSteps, maxSteps < 1 { throw ValidationError("--max-steps must be at least 1 (got \(maxSteps)).") }
        try Limits.augmentation(augment)
        try Limits.memory(widths: try plannedWidths(widths), batchSize: batchSize ?? Recipe.batchSize)
    }

    func train(_ communicator: Communicator, directory: String, mode: RunContext.Mode) throws {
        try checkBatch(batchSize, ranks: communicator.size)
        let data = try dataOptions.load(communicator)
        let batchSize = try Limits.batch(batchSize, samples: data.count, rank: communicator.rank)
        var options = PretrainOptions()
        (options.epochs, options.batchSize, options.optimizer, options.learningRate) = (epochs ?? Recipe.pretrainEpochs(samples: data.count), batchSize, optimizer, lr)
        options.schedule = schedule
        (options.seed, options.widths, options.weightInit, options.maskRate) = (seed, try dataWidths(widths, data), initialization, mask)
        options.overlap = !runtime.noOverlap
        options.checkpointEvery = try CheckpointCadence(parsing: checkpointEvery)
        options.maxSteps = maxSteps
        options.augmentation = try Limits.augmentation(augment, data: data, rank: communicator.rank)
        if let parts = debugPoison?.split(separator: ":").compactMap({ Int($0) }), parts.count == 2 { options.poison = (parts[0], parts[1]) }
        options.emulation = debugEmulateRanks.map { ShareEmulation(ranks: $0, order: debugEmulateOrder) }
        options.gradientDump = debugDumpGradients
        if let emulated = debugEmulateRanks { try checkBatch(batchSize, ranks: emulated) }
        guard options.widths[0] == data.dimension else {
            throw RunError("--widths starts at \(options.widths[0]) but the data has \(data.dimension) dimensions")
        }
        options.precision = try PrecisionChoice.resolve(precision, communicator: communicator)
        // Epochs chosen from the data's size and what `auto` meant go into the manifest, so a resumed run keeps them.
        var chosen = epochs == nil && data.count > Recipe.fullScheduleSamples ? [(flag: "--epochs", value: "\(options.epochs)")] : []
        chosen += options.precision.recorded
        let context = try RunContext(communicator: communicator, directory: directory, mode: mode.recording(chosen))
        context.policy.epochBudget = session.stopAfterEpochs
        try context.policy.verifySameConfiguration("pretrain \(context.policy.configHash) data \(data.count)x\(data.dimension)")
        context.policy.precision = options.precision
        context.say(options.precision.description)
        if epochs == nil, let note = Recipe.shrinkNote(samples: data.count, pretrainFlag: "--epochs", hold: false, cap: false) {
            context.say(note)
        }
        try context.writeMachineInfo(data: data)
        try context.writeConfiguration([("pretrain", options.flags())])
        let trainer = try Pretrainer(context: context, data: data, options: options)
        if context.resuming, try trainer.resume() {
            let position = trainer.batchInEpoch > 0 ? "in epoch \(trainer.epoch + 1), after batch \(trainer.batchInEpoch)," : "after epoch \(trainer.epoch)"
            context.say("resuming \(position) of \(options.epochs) (step \(trainer.step)) from \(trainer.checkpointPath)")
        } else {
            try trainer.initializeWeights()
        }
        context.say("pretraining \(options.widths.map(String.init).joined(separator: "-")) on \(data.name) (\(data.count) samples), \(communicator.size) rank(s), "
                    + "batch \(batchSize), \(optimizer.rawValue) lr \(lr), mask \(mask) -> \(context.directory)")
        try trainer.run()
        if context.isRoot { try RunReport.write(directory: context.directory) }
        context.say("wrote \(trainer.checkpointPath) and report.html")
    }
}

