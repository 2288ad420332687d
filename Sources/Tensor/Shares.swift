// How N items (a batch's rows, the samples of a whole-data pass) split over p ranks: contiguous shares that differ
// by at most one, rank r's after rank r-1's (DESIGN.md: distributed semantics).

/// The contiguous share of `total` items that `rank` of `size` takes; shares differ by at most one.
public func contiguousShare(total: Int, rank: Int, size: Int) -> Range<Int> {
    let lower = total * rank / size
    let upper = total * (rank + 1) / size
    return lower..<upper
}

/// The largest count of `contiguousShare` over the ranks: what a per-rank batch buffer must hold.
public func largestShare(total: Int, size: Int) -> Int { (total + size - 1) / size }

/// The counts of `contiguousShare` for every rank.
public func shareCounts(total: Int, size: Int) -> [Int] {
    (0..<size).map { contiguousShare(total: total, rank: $0, size: size).count }
}
