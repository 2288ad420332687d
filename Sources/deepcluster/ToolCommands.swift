// info (every rank and what it loaded) and report (a run's page, or several runs compared).
import ArgumentParser
import Collective
import Datasets
import Foundation
import Report
import Tensor
import Training

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
