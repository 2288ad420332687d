// How many threads the elementwise passes of a step get: the BLAS threads, fewer when the work is too small to
// pay for waking them. The passes themselves (CKernels' *_parallel functions) split their range into that many
// contiguous pieces on CKernels' thread pool; every element is computed by the same expression whatever the split,
// so results do not depend on the thread count. The pool allocates nothing (Dispatch's concurrentPerform and Swift
// closures handed to C do), which keeps a training step free of heap allocations.

/// A pointer handed to other threads; each touches a disjoint part.
public struct SharedPointer<T>: @unchecked Sendable {
    public let base: UnsafeMutablePointer<T>
    public init(_ base: UnsafeMutablePointer<T>) { self.base = base }
    public init(_ base: UnsafePointer<T>) { self.base = UnsafeMutablePointer(mutating: base) }
}

public enum Parallel {
    /// Below this many elements a piece is not worth a thread.
    public static let minimumPerThread = 1 << 16

    /// Pieces for `work` elements over at most `count` units (rows or columns), one per BLAS thread at most.
    public static func parts(work: Int, count: Int = .max, threads: Int = BLAS.threads) -> Int {
        max(1, min(threads, count, work / minimumPerThread))
    }
}
