// Diagnostics used by Launch/test under mpirun: collectives against serial results, and checkpoint comparison.
import Clustering
import Collective
import CollectiveMPI
import Datasets
import Foundation
import NN
import Report
import Tensor

public enum Diagnostics {
    /// Allreduce (sum, max, min over Float, Double, Int), allgatherv with uneven counts and broadcast, each
    /// compared exactly with what one process computes from every rank's deterministic inputs.
    public static func checkCollectives(_ c: Communicator) throws -> [String] {
        var failures = [String]()
        let p = c.size, r = c.rank
        func value(_ rank: Int, _ i: Int) -> Int { (rank + 1) * 1000 + (i * 7919) % 997 - 500 }
        // Int
        for op in [ReduceOperation.sum, .max, .min] {
            var ints = (0..<1000).map { value(r, $0) }
            try c.allreduce(&ints, op)
            let expected = (0..<1000).map { i -> Int in
                let all = (0..<p).map { value($0, i) }
                return op == .sum ? all.reduce(0, +) : op == .max ? all.max()! : all.min()!
            }
            if ints != expected { failures.append("allreduce Int \(op)") }
        }
        // Float and Double hold small integers, so sums are exact in any order.
        var floats = (0..<4099).map { Float(value(r, $0)) }
        try c.allreduce(&floats, .sum)
        if floats != (0..<4099).map({ i in Float((0..<p).map { value($0, i) }.reduce(0, +)) }) { failures.append("allreduce Float sum") }
        var doubles = (0..<513).map { Double(value(r, $0)) / 4 }
        try c.allreduce(&doubles, .max)
        if doubles != (0..<513).map({ i in Double((0..<p).map { value($0, i) }.max()!) / 4 }) { failures.append("allreduce Double max") }
        // Allgatherv: rank k contributes 2k + 1 elements.
        let mine = (0..<(2 * r + 1)).map { Float(r * 100 + $0) }
        let gathered = try c.allgatherv(mine)
        let expectedGather = (0..<p).flatMap { k in (0..<(2 * k + 1)).map { Float(k * 100 + $0) } }
        if gathered != expectedGather { failures.append("allgatherv uneven") }
        // Broadcast from the last rank.
        var block = r == p - 1 ? (0..<333).map { Double($0) * 1.5 } : [Double](repeating: -1, count: 333)
        try c.broadcast(&block, root: p - 1)
        if block != (0..<333).map({ Double($0) * 1.5 }) { failures.append("broadcast") }
        // Every gradient transport this world can build, against the serial sum (exact where MPI picks the order).
        failures += try TransportCheck.run(c, exactOrder: false)
        try c.barrier()
        return failures
    }

    /// Largest relative difference between two checkpoints' sections: max |a - b| / max(max |b|, 1e-12) per section.
    public static func compare(_ a: Checkpoint, _ b: Checkpoint) throws -> (relative: Double, bitwise: Bool) {
        guard a.widths == b.widths, Set(a.sections.keys) == Set(b.sections.keys) else {
            throw RunError("checkpoints have different architectures or sections")
        }
        var worst = 0.0
        var identical = true
        for (name, x) in a.sections where !name.hasPrefix("optimizer") {
            let y = b.sections[name]!
            guard x.count == y.count else { throw RunError("section \(name) differs in size") }
            var diff = 0.0, scale = 0.0
            for i in 0..<x.count {
                if x[i].bitPattern != y[i].bitPattern { identical = false }
                diff = max(diff, Double(abs(x[i] - y[i])))
                scale = max(scale, Double(abs(y[i])))
            }
            worst = max(worst, diff / max(scale, 1e-12))
        }
        return (worst, identical)
    }
}
