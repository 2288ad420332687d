// The plain Swift references of UMAP's fuzzy graph and its breadth-first renumbering, the serial loops that
// Clustering's FuzzyGraph.swift replaced, kept to test it against bit for bit. A graph is (heads, tails, weights): both
// directions of each edge, in head order.
import Foundation

extension Reference {
    /// umap-learn's smooth_knn_dist and fuzzy_simplicial_set over the (N, k) neighbour lists, one point after the other.
    public static func fuzzyGraph(indices: [Int], distances: [Float], count n: Int, k: Int)
        -> (heads: [Int32], tails: [Int32], weights: [Float]) {
        let target = log2(Double(k))
        let meanOfAll = distances.reduce(0.0) { $0 + Double($1) } / Double(distances.count)
        var membership = [Float](repeating: 0, count: n * k)
        for i in 0..<n {
            let row = Array(distances[(i * k)..<((i + 1) * k)])
            let rho = Double(row.dropFirst().first { $0 > 0 } ?? 0)
            var low = 0.0, high = Double.infinity, mid = 1.0
            for _ in 0..<64 {
                var sum = 0.0
                for j in 1..<k {
                    let d = Double(row[j]) - rho
                    sum += d > 0 ? exp(-d / mid) : 1
                }
                if abs(sum - target) < 1e-5 { break }
                if sum > target {
                    high = mid
                    mid = (low + high) / 2
                } else {
                    low = mid
                    mid = high == .infinity ? mid * 2 : (low + high) / 2
                }
            }
            let meanOfRow = row.reduce(0.0) { $0 + Double($1) } / Double(k)
            mid = max(mid, 1e-3 * (rho > 0 ? meanOfRow : meanOfAll))
            for j in 1..<k {
                let d = Double(row[j]) - rho
                membership[i * k + j] = d <= 0 ? 1 : Float(exp(-d / mid))
            }
        }
        func weight(_ from: Int, _ to: Int) -> Float? {
            for slot in 1..<k where indices[from * k + slot] == to { return membership[from * k + slot] }
            return nil
        }
        var lists = [[(Int32, Float)]](repeating: [], count: n)
        for i in 0..<n {
            for slot in 1..<k {
                let j = indices[i * k + slot]
                guard j != i else { continue }
                let a = membership[i * k + slot], reverse = weight(j, i)
                let b = reverse ?? 0
                let w = a + b - a * b
                lists[i].append((Int32(j), w))
                if reverse == nil { lists[j].append((Int32(i), w)) }
            }
        }
        var heads: [Int32] = [], tails: [Int32] = [], weights: [Float] = []
        for i in 0..<n {
            for (j, w) in lists[i].sorted(by: { $0.0 < $1.0 }) where w > 0 {
                heads.append(Int32(i))
                tails.append(j)
                weights.append(w)
            }
        }
        return (heads, tails, weights)
    }

    /// The graph over its points renumbered in breadth-first order (from point 0, then from the lowest point not yet
    /// reached; neighbours in the order the graph lists them), and that order (new number -> point).
    public static func breadthFirst(heads: [Int32], tails: [Int32], weights: [Float], count n: Int)
        -> (heads: [Int32], tails: [Int32], weights: [Float], order: [Int]) {
        var rowStart = [Int](repeating: 0, count: n + 1)
        for h in heads { rowStart[Int(h) + 1] += 1 }
        for i in 0..<n { rowStart[i + 1] += rowStart[i] }
        var order: [Int] = [], reached = [Bool](repeating: false, count: n)
        for root in 0..<n where !reached[root] {
            reached[root] = true
            var next = order.count
            order.append(root)
            while next < order.count {
                let u = order[next]
                next += 1
                for e in rowStart[u]..<rowStart[u + 1] where !reached[Int(tails[e])] {
                    reached[Int(tails[e])] = true
                    order.append(Int(tails[e]))
                }
            }
        }
        var position = [Int32](repeating: 0, count: n)
        for (slot, u) in order.enumerated() { position[u] = Int32(slot) }
        var newHeads: [Int32] = [], newTails: [Int32] = [], newWeights: [Float] = []
        for (slot, u) in order.enumerated() {
            let edges = (rowStart[u]..<rowStart[u + 1]).sorted { position[Int(tails[$0])] < position[Int(tails[$1])] }
            for e in edges {
                newHeads.append(Int32(slot))
                newTails.append(position[Int(tails[e])])
                newWeights.append(weights[e])
            }
        }
        return (newHeads, newTails, newWeights, order)
    }
}
