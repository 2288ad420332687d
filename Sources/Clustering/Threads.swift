// Work split over the threads of a rank: contiguous parts, each computed by the same expressions whatever the split.
import Foundation
import Tensor

/// A value handed to the threads of `DispatchQueue.concurrentPerform`.
struct UncheckedBox<T>: @unchecked Sendable { let value: T }

/// `body(part)` for contiguous parts of `range`, one on each of at most `threads` threads (work whose result does not
/// depend on the split).
func inParts(_ range: Range<Int>, threads: Int, _ body: (Range<Int>) -> Void) {
    let workers = max(1, min(threads, range.count))
    withoutActuallyEscaping(body) { body in
        let call = UncheckedBox(value: body)
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            let part = contiguousShare(total: range.count, rank: w, size: workers)
            call.value((range.lowerBound + part.lowerBound)..<(range.lowerBound + part.upperBound))
        }
    }
}
