// ReductionThreadTransport: a background thread reduces the buckets in the order they were announced, each with a
// blocking allreduce on a communicator of its own (its collectives never interleave with the main thread's), while
// the main thread goes on with the backward pass. For one rank per host, where the wire, not the cores, is slow.
import Collective
import Foundation

public final class ReductionThreadTransport: GradientTransport {
    private let thread: Communicator
    private let memory: OwnedGradients
    public let count: Int
    public private(set) var exposedSeconds = 0.0
    private let queue: Queue

    /// `thread`: a duplicate of `communicator` that the background thread may use.
    init(_ communicator: Communicator, thread: Communicator, count: Int) {
        self.thread = thread
        memory = OwnedGradients(count: count)
        self.count = count
        queue = Queue(thread)
        let worker = Thread { [queue] in queue.serve() }
        worker.name = "gradient reduction"
        worker.start()
    }

    deinit { queue.stop() }

    public var kind: TransportKind { .thread }
    public var gradients: UnsafeMutablePointer<Float> { memory.pointer }
    public func beginStep() { exposedSeconds = 0 }

    public func bucketReady(_ range: Range<Int>) throws {
        precondition(range.upperBound <= count)
        queue.submit(gradients + range.lowerBound, range.count)
    }

    public func finish() throws {
        let started = Clock.now
        defer { exposedSeconds += Clock.now - started }
        try queue.drain()
    }

    /// The buckets waiting for the thread: a fixed ring, so a step allocates nothing.
    private final class Queue: @unchecked Sendable {
        private let communicator: Communicator
        private let condition = NSCondition()
        private var buffers = [UnsafeMutablePointer<Float>?](repeating: nil, count: 256)
        private var counts = [Int](repeating: 0, count: 256)
        private var submitted = 0, completed = 0
        private var stopping = false
        private var error: Error?

        init(_ communicator: Communicator) { self.communicator = communicator }

        func submit(_ buffer: UnsafeMutablePointer<Float>, _ count: Int) {
            condition.lock()
            while submitted - completed >= buffers.count { condition.wait() }
            buffers[submitted % buffers.count] = buffer
            counts[submitted % buffers.count] = count
            submitted += 1
            condition.broadcast()
            condition.unlock()
        }

        /// Waits until every submitted bucket is reduced; throws the first error among them.
        func drain() throws {
            condition.lock()
            while completed != submitted { condition.wait() }
            let failure = error
            error = nil
            condition.unlock()
            if let failure { throw failure }
        }

        func stop() {
            condition.lock()
            stopping = true
            condition.broadcast()
            condition.unlock()
        }

        func serve() {
            condition.lock()
            while true {
                while !stopping && completed == submitted { condition.wait() }
                if completed == submitted { break }  // stopping, nothing left
                let slot = completed % buffers.count
                let buffer = UnsafeMutableBufferPointer(start: buffers[slot], count: counts[slot])
                let failed = error != nil
                condition.unlock()
                var failure: Error?
                if !failed {  // after an error the rest are skipped (the step fails anyway)
                    do { try communicator.allreduce(buffer, .sum) } catch { failure = error }
                }
                condition.lock()
                if let failure, error == nil { error = failure }
                completed += 1
                condition.broadcast()
            }
            condition.unlock()
        }
    }
}
