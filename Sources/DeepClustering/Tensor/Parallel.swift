// Elementwise work over long flat ranges (the optimizer update, zeroing gradients) split into contiguous chunks,
// one per thread. Every element is computed by the same expression whatever the split, so results do not depend
// on the thread count.
import Dispatch

/// A pointer handed to the threads of `concurrentPerform`; each thread touches a disjoint part.
struct SharedPointer<T>: @unchecked Sendable {
    let base: UnsafeMutablePointer<T>
    init(_ base: UnsafeMutablePointer<T>) { self.base = base }
    init(_ base: UnsafePointer<T>) { self.base = UnsafeMutablePointer(mutating: base) }
}

enum Parallel {
    /// Below this many elements a range is done on the calling thread.
    static let minimumPerThread = 1 << 16

    /// Calls `body(chunk)` for `threads` contiguous chunks of 0..<count (boundaries on multiples of 16).
    static func chunks(_ count: Int, threads: Int = BLAS.threads, _ body: @Sendable (Range<Int>) -> Void) {
        let parts = max(1, min(threads, count / minimumPerThread))
        if parts == 1 { body(0..<count); return }
        DispatchQueue.concurrentPerform(iterations: parts) { t in
            let lower = t == 0 ? 0 : (count * t / parts) & ~15
            let upper = t == parts - 1 ? count : (count * (t + 1) / parts) & ~15
            body(lower..<upper)
        }
    }

    /// Calls `body(block)` for contiguous blocks of 0..<count (rows or columns), one per thread when `work`
    /// elements in all make that worth it.
    static func blocks(_ count: Int, work: Int, threads: Int = BLAS.threads, _ body: @Sendable (Range<Int>) -> Void) {
        let parts = max(1, min(threads, count, work / minimumPerThread))
        if parts == 1 { body(0..<count); return }
        DispatchQueue.concurrentPerform(iterations: parts) { t in body((count * t / parts)..<(count * (t + 1) / parts)) }
    }
}
