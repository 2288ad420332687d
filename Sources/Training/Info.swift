// `info`: every rank loads the data and reports where it runs; rank 0 prints the gathered table.
import Clustering
import Collective
import CollectiveMPI
import Datasets
import Foundation
import NN
import Report
import Tensor

public enum Info {
    public static func run(communicator: Communicator, data: DataSet, overlap: Bool = true) throws -> String {
        // Each rank's line travels as fixed-width bytes through one allgatherv.
        let width = 160
        let line = String(format: "%4d  %-24@ %12d  %8d  %6d  %7@  %@", communicator.rank,
                          String(communicator.hostName.prefix(24)), BLAS.threads, data.count, data.dimension,
                          data.hasLabels ? String(data.classCount) : "-", String(data.name.prefix(50)))
        var bytes = Array(line.utf8.prefix(width)).map { Int($0) }
        bytes += [Int](repeating: 32, count: width - bytes.count)
        let all = try communicator.allgatherv(bytes)
        let here = PrecisionChoice.Support.here
        let auto = (try? PrecisionChoice.choose(.auto, least: here, mine: here, isa: BF16.instructionSet))?.precision ?? .float32
        var out = "DeepClustering info: \(communicator.size) rank(s); BLAS: \(BLAS.configuration); "
            + "elementwise kernels: \(Kernels.vectorised ? "AVX2" : "scalar"); "
            + "bf16 GEMM (oneDNN): \(BF16.instructionSet), so --precision auto means \(auto.rawValue)\n"
        if communicator.size > 1 {
            // The transport a training run would build here (over one float: the same decision, a tiny window).
            let kind = try GradientTransports.make(communicator, count: 1, overlap: overlap).kind
            let why: String
            switch kind {
            case .sharedMemory: why = "every rank on one host; --no-shared-memory for MPI's allreduces"
            case .hierarchical: why = "as many ranks on each host; --reduction-thread for one allreduce over all ranks"
            case .thread: why = "one rank per host or uneven hosts, or --reduction-thread"
            case .blocking: why = "--no-overlap, --no-shared-memory, or MPI kept off shared memory by --mca btl"
            case .single: why = ""
            }
            out += "gradient reduction: \(kind.rawValue) (\(why))\n"
        }
        out += "rank  host                     blas-threads   samples    dims  classes  data\n"
        for r in 0..<communicator.size {
            let row = all[(r * width)..<((r + 1) * width)].map { UInt8($0) }
            out += String(String(decoding: row, as: UTF8.self).reversed().drop(while: { $0 == " " }).reversed()) + "\n"
        }
        return out
    }
}
