// Hidden commands for Launch/test: collectives under mpirun, and checkpoint comparison.
import ArgumentParser
import Collective
import DeepClustering
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
            print(String(format: "largest relative difference %.3e (tolerance %.1e), bitwise identical: %@", relative, tolerance, identical ? "yes" : "no"))
            if bitwise && !identical { throw RunError("checkpoints are not bitwise identical") }
            if relative > tolerance { throw RunError("difference above tolerance") }
        } catch let error as ExitCode { throw error } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}
