// TransportCheck: every gradient transport this world can build, against the serial sum. Three steps with different
// bucket lists (buckets smaller than one rank's share, one bucket of everything, a gap no bucket covers). Where the
// order is fixed (shared memory on one host, and every reduction of the in-process world) the values' sum depends
// on the order, so the result must equal the sum in rank order bit for bit; where MPI picks the order, small
// integers, whose sums are exact in any order. Run by `swift test` on the in-process world and under mpirun by
// `deepcluster diagnose`.
import Collective
import Foundation

public enum TransportCheck {
    /// The failures, one line each; empty when every transport summed right. Collective.
    public static func run(_ c: Communicator, exactOrder: Bool) throws -> [String] {
        var failures = [String]()
        for kind in [TransportKind.sharedMemory, .thread, .blocking] {
            guard let transport = try GradientTransports.make(kind, c, count: 5003) else { continue }
            failures += try check(transport, c, orderFixed: exactOrder || transport.kind == .sharedMemory)
        }
        return failures
    }

    static func check(_ transport: GradientTransport, _ c: Communicator, orderFixed: Bool) throws -> [String] {
        let count = transport.count, slot = transport.gradients
        func value(_ rank: Int, _ i: Int, _ step: Int) -> Float {
            orderFixed ? Float(sin(Double(i * 31 + rank * 7 + step * 101))) * Float(1 + i % 13) * 1e-3 + Float(rank) * 0.1
                : Float((i * 31 + rank * 7 + step * 101) % 1999 - 999)
        }
        var failures = [String]()
        let steps: [[Range<Int>]] = [[4990..<5003, 1000..<4990, 17..<1000], [0..<count], [4000..<5003, 3..<4000, 0..<3, 2000..<2000]]
        for (step, buckets) in steps.enumerated() {
            for i in 0..<count { slot[i] = value(c.rank, i, step) }
            transport.beginStep()
            for bucket in buckets { try transport.bucketReady(bucket) }
            try transport.finish()
            var covered = [Bool](repeating: false, count: count)
            for bucket in buckets { for i in bucket { covered[i] = true } }
            let wrong = (0..<count).filter { i in
                var expected = value(c.rank, i, step)
                if covered[i] {
                    expected = value(0, i, step)
                    for q in 1..<c.size { expected += value(q, i, step) }
                }
                return slot[i].bitPattern != expected.bitPattern
            }
            if !wrong.isEmpty {
                failures.append("\(transport.kind.rawValue), step \(step + 1): \(wrong.count) elements wrong, first at \(wrong[0])")
            }
            try c.barrier()  // nobody rewrites its memory for the next step while another still checks its own
        }
        return failures
    }
}
