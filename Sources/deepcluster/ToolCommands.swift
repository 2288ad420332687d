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
            let data = try dataOptions.load(communicator)
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

// MARK: - write-images

struct WriteImagesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "write-images",
        abstract: "Write a data set of images as a folder of PNG (or JPEG) files: one subfolder per label, or one flat folder.",
        discussion: """
            The other way round from `--data FOLDER`: for trying the image reader on
            data you know, or for looking at a data set. Files are named by the
            sample's index (0.png, 1.png, ...), which the reader's natural order puts
            back in order, so a flat folder reads back as the same samples.
              deepcluster write-images --out mnist-png     # embedded 10k, by label
              deepcluster write-images --layout flat --out mnist-flat
              deepcluster write-images --data runs/mnist-full --split all \\
                  --out mnist70k-png
            """)
    @OptionGroup var dataOptions: DataOptions
    @Option(help: "The folder to write (created; it must not hold images already).") var out: String
    @Option(help: "classes (one subfolder per label; the default when the data has labels) or flat.") var layout: String?
    @Option(help: "png (lossless) or jpeg.") var format = "png"
    @Option(help: "JPEG quality, 1-100.") var quality = 95

    func validate() throws {
        if let layout, layout != "classes" && layout != "flat" { throw ValidationError("--layout takes classes or flat (got \(layout)).") }
        if format != "png" && format != "jpeg" { throw ValidationError("--format takes png or jpeg (got \(format)).") }
        if !(1...100).contains(quality) { throw ValidationError("--quality takes 1 to 100 (got \(quality)).") }
        if let existing = try? FileManager.default.contentsOfDirectory(atPath: out), !existing.isEmpty {
            throw ValidationError("\(out) exists and is not empty; give a new folder.")
        }
    }

    func run() throws {
        let started = Date()
        let data: DataSet
        do { data = try dataOptions.load(SingleProcessCommunicator()) } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(1)
        }
        guard data.count > 0, PNG.picture(data, 0) != nil else {
            FileHandle.standardError.write(Data("error: \(data.name) holds no images as bytes (IDX, a uint8 .npy of square images, or an image folder)\n".utf8))
            throw ExitCode(1)
        }
        let byClass = (layout ?? (data.hasLabels ? "classes" : "flat")) == "classes"
        if byClass && !data.hasLabels {
            FileHandle.standardError.write(Data("error: \(data.name) has no labels: use --layout flat\n".utf8))
            throw ExitCode(1)
        }
        let suffix = format == "png" ? "png" : "jpg"
        do {
            var folders = Set<String>()
            for i in 0..<data.count {
                let picture = PNG.picture(data, i)!
                let folder = byClass ? out + "/" + data.labelName(i).replacingOccurrences(of: "/", with: "_") : out
                if folders.insert(folder).inserted { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) }
                let bytes = format == "png"
                    ? PNG.encode(width: picture.width, height: picture.height, channels: picture.channels, pixels: picture.pixels)
                    : try ImageFolder.jpeg(width: picture.width, height: picture.height, channels: picture.channels, pixels: picture.pixels,
                                           quality: quality)
                guard FileManager.default.createFile(atPath: "\(folder)/\(i).\(suffix)", contents: Data(bytes)) else {
                    throw RunError("\(folder)/\(i).\(suffix): cannot be written")
                }
            }
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(1)
        }
        print(String(format: "wrote %d %@ files to %@ (%@) in %.1f s", data.count, format.uppercased(), out,
                     byClass ? "one folder per label" : "flat", Date().timeIntervalSince(started)))
    }
}
