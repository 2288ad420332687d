import ArgumentParser
struct DECCommand: ParsableCommand { static let configuration = CommandConfiguration(commandName: "dec") }
struct PredictCommand: ParsableCommand { static let configuration = CommandConfiguration(commandName: "predict") }
struct BenchCommand: ParsableCommand { static let configuration = CommandConfiguration(commandName: "bench") }
struct ReportCommand: ParsableCommand { static let configuration = CommandConfiguration(commandName: "report") }
