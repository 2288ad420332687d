// Diagnostics used by Launch/test under mpirun: collectives against serial results, and checkpoint comparison.
import Collective
import Foundation

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
        // Nonblocking sum.
        var pendingBuffer = (0..<777).map { Float(value(r, $0)) }
        try pendingBuffer.withUnsafeMutableBufferPointer { buffer in
            let pending = try c.startAllreduceSum(buffer)
            try c.wait(pending)
        }
        if pendingBuffer != (0..<777).map({ i in Float((0..<p).map { value($0, i) }.reduce(0, +)) }) { failures.append("iallreduce") }
        failures += try checkSharedReduction(c)
        try c.barrier()
        return failures
    }

    /// The shared-memory reduction: three steps with different bucket lists (buckets smaller than one rank's share,
    /// one bucket of everything, a gap no bucket covers). On one host, values whose sum depends on the order, so the
    /// result must equal the serial sum in rank order bit for bit, on every rank; across hosts (hierarchical, where
    /// MPI adds the hosts' sums) small integers, whose sums are exact in any order.
    static func checkSharedReduction(_ c: Communicator) throws -> [String] {
        let count = 5003
        guard let shared = try c.makeSharedReduction(count: count) else { return [] }
        let exact = shared.hosts > 1
        func value(_ rank: Int, _ i: Int, _ step: Int) -> Float {
            exact ? Float((i * 31 + rank * 7 + step * 101) % 1999 - 999)
                : Float(sin(Double(i * 31 + rank * 7 + step * 101))) * Float(1 + i % 13) * 1e-3 + Float(rank) * 0.1
        }
        var failures = [String]()
        let steps: [[Range<Int>]] = [[4990..<5003, 1000..<4990, 17..<1000], [0..<count], [4000..<5003, 3..<4000, 0..<3, 2000..<2000]]
        for (step, buckets) in steps.enumerated() {
            for i in 0..<count { shared.slot[i] = value(c.rank, i, step) }
            for _ in buckets { shared.bucketReady() }
            for (index, bucket) in buckets.enumerated() { try shared.reduce(bucket, bucket: index) }
            shared.endStep(buckets: buckets.count)
            var covered = [Bool](repeating: false, count: count)
            for bucket in buckets { for i in bucket { covered[i] = true } }
            let wrong = (0..<count).filter { i in
                var expected = value(c.rank, i, step)
                if covered[i] {
                    expected = value(0, i, step)
                    for q in 1..<c.size { expected += value(q, i, step) }
                }
                return shared.slot[i].bitPattern != expected.bitPattern
            }
            if !wrong.isEmpty { failures.append("shared-memory reduction step \(step + 1): \(wrong.count) elements wrong, first at \(wrong[0])") }
            try c.barrier()  // nobody rewrites its slot for the next step while another still checks its own
        }
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
