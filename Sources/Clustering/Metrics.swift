// Clustering metrics against true labels: accuracy under the best one-to-one matching (Hungarian algorithm),
// NMI (arithmetic-mean normalisation, scikit-learn's default) and ARI. Not for soft assignments.
import Foundation
import Tensor

public struct ClusteringScores: Sendable, Equatable {
    public var accuracy: Double
    public var nmi: Double
    public var ari: Double

    public init(accuracy: Double, nmi: Double, ari: Double) {
        self.accuracy = accuracy
        self.nmi = nmi
        self.ari = ari
    }

    /// Scores of data without labels: not a number, left out of metrics.jsonl and the printed lines.
    public static let unknown = ClusteringScores(accuracy: .nan, nmi: .nan, ari: .nan)
    public var known: Bool { accuracy.isFinite }
    /// "ACC 0.8430  NMI 0.7811  ARI 0.7102", or "(no labels)".
    public var text: String {
        known ? String(format: "ACC %.4f  NMI %.4f  ARI %.4f", accuracy, nmi, ari) : "(no labels)"
    }
}

public enum Metrics {
    /// contingency[c][l]: how many samples of cluster c carry label l.
    public static func contingency(predicted: [Int32], labels: [Int32], clusters: Int, classes: Int) -> [[Int]] {
        var table = [[Int]](repeating: [Int](repeating: 0, count: classes), count: clusters)
        for (p, l) in zip(predicted, labels) { table[Int(p)][Int(l)] += 1 }
        return table
    }

    public static func scores(predicted: [Int32], labels: [Int32], clusters: Int, classes: Int) -> ClusteringScores {
        let table = contingency(predicted: predicted, labels: labels, clusters: clusters, classes: classes)
        return ClusteringScores(accuracy: accuracy(table), nmi: nmi(table), ari: ari(table))
    }

    /// Cluster -> label of the best matching (unmatched clusters map to -1).
    public static func matching(_ table: [[Int]]) -> [Int] {
        let rows = table.count, columns = table.first?.count ?? 0
        let n = max(rows, columns)
        let largest = table.flatMap { $0 }.max() ?? 0
        // Minimise cost = largest - count on the square padding of the table.
        var cost = [[Double]](repeating: [Double](repeating: Double(largest), count: n), count: n)
        for r in 0..<rows { for c in 0..<columns { cost[r][c] = Double(largest - table[r][c]) } }
        let assignment = Hungarian.solve(cost)
        return (0..<rows).map { assignment[$0] < columns ? assignment[$0] : -1 }
    }

    public static func accuracy(_ table: [[Int]]) -> Double {
        let total = table.flatMap { $0 }.reduce(0, +)
        guard total > 0 else { return 0 }
        let match = matching(table)
        var hits = 0
        for (r, c) in match.enumerated() where c >= 0 { hits += table[r][c] }
        return Double(hits) / Double(total)
    }

    public static func nmi(_ table: [[Int]]) -> Double {
        let n = Double(table.flatMap { $0 }.reduce(0, +))
        guard n > 0 else { return 0 }
        let rowSums = table.map { Double($0.reduce(0, +)) }
        let columnSums = (0..<(table.first?.count ?? 0)).map { c in Double(table.reduce(0) { $0 + $1[c] }) }
        func entropy(_ sums: [Double]) -> Double { sums.filter { $0 > 0 }.reduce(0) { $0 - $1 / n * log($1 / n) } }
        var mutual = 0.0
        for (r, row) in table.enumerated() {
            for (c, count) in row.enumerated() where count > 0 {
                let p = Double(count) / n
                mutual += p * log(p * n * n / (rowSums[r] * columnSums[c]))
            }
        }
        let hr = entropy(rowSums), hc = entropy(columnSums)
        if hr == 0 && hc == 0 { return 1 }   // both trivial: identical partitions
        let denominator = (hr + hc) / 2
        return denominator > 0 ? max(0, mutual) / denominator : 0
    }

    public static func ari(_ table: [[Int]]) -> Double {
        func pairs(_ x: Double) -> Double { x * (x - 1) / 2 }
        let n = Double(table.flatMap { $0 }.reduce(0, +))
        let index = table.flatMap { $0 }.reduce(0.0) { $0 + pairs(Double($1)) }
        let a = table.map { pairs(Double($0.reduce(0, +))) }.reduce(0, +)
        let b = (0..<(table.first?.count ?? 0)).map { c in pairs(Double(table.reduce(0) { $0 + $1[c] })) }.reduce(0, +)
        let expected = a * b / max(pairs(n), 1)
        let maximum = (a + b) / 2
        if maximum == expected { return 1 }
        return (index - expected) / (maximum - expected)
    }
}

/// The Hungarian algorithm (Kuhn-Munkres with potentials), O(n^3): the assignment of rows to columns of a
/// square cost matrix with the least total cost.
public enum Hungarian {
    public static func solve(_ cost: [[Double]]) -> [Int] {
        let n = cost.count
        guard n > 0 else { return [] }
        // 1-based arrays; u, v potentials; p[j] = row matched to column j; way = predecessor columns.
        var u = [Double](repeating: 0, count: n + 1), v = u
        var p = [Int](repeating: 0, count: n + 1), way = p
        for i in 1...n {
            p[0] = i
            var j0 = 0
            var minv = [Double](repeating: .infinity, count: n + 1)
            var used = [Bool](repeating: false, count: n + 1)
            repeat {
                used[j0] = true
                let i0 = p[j0]
                var delta = Double.infinity, j1 = 0
                for j in 1...n where !used[j] {
                    let current = cost[i0 - 1][j - 1] - u[i0] - v[j]
                    if current < minv[j] { minv[j] = current; way[j] = j0 }
                    if minv[j] < delta { delta = minv[j]; j1 = j }
                }
                for j in 0...n {
                    if used[j] { u[p[j]] += delta; v[j] -= delta } else { minv[j] -= delta }
                }
                j0 = j1
            } while p[j0] != 0
            repeat {
                let j1 = way[j0]
                p[j0] = p[j1]
                j0 = j1
            } while j0 != 0
        }
        var assignment = [Int](repeating: 0, count: n)
        for j in 1...n where p[j] > 0 { assignment[p[j] - 1] = j - 1 }
        return assignment
    }
}
