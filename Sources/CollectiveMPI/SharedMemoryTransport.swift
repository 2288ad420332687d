// SharedMemoryTransport: the gradients of every rank of a host live in one shared segment each, so the backward
// pass writes them where the other ranks read them and nothing is copied into or out of MPI.
// Each segment: a cache line with `ready` (buckets this rank completed, over all steps), one with `written` (steps
// whose shares this rank wrote), then the floats. Rank r sums its share of a bucket over every segment, in rank
// order, once all ranks completed that bucket, and writes the sum into every segment; once every rank says its
// shares of the step are written, every segment holds the full sum, bitwise the same on every rank.
// On several hosts with as many ranks each, between the host's sum of a share and its writing back, one allreduce
// of that share with the same local rank of every other host (hierarchical: each host puts one gradient's worth on
// the wire, split over its ranks).
// Every wait gives up with `PeerTimeout` when a rank of the host has not moved for `timeout` seconds.
import CAtomics
import Collective
import Foundation

public struct PeerTimeout: Error, CustomStringConvertible {
    public let localRank: Int
    public let waitingFor: String
    public let seconds: Double
    public var description: String {
        "local rank \(localRank) of this host did not \(waitingFor) within \(Int(seconds)) s: it has stopped or died "
            + "(DC_PEER_TIMEOUT sets the wait)"
    }
}

public final class SharedMemoryTransport: GradientTransport {
    static let line = 64
    static let header = 128       // two cache lines of counters before each segment's floats
    static let shareUnit = 16     // shares are whole cache lines of floats
    static let block = 1024       // floats summed at a time

    static func segmentBytes(count: Int) -> Int { header + (count * 4 + line - 1) / line * line }

    private let segments: SharedSegments
    public let count: Int
    private let slots: [UnsafeMutablePointer<Float>]
    private let ready: [UnsafeMutablePointer<Int64>]
    private let written: [UnsafeMutablePointer<Int64>]
    private let rank: Int, ranks: Int
    private var readyCount: Int64 = 0   // buckets this rank completed, over all steps
    private var stepBase: Int64 = 0     // readyCount when this step began
    private var steps: Int64 = 0
    private var buckets: [Range<Int>] = []
    private let sum: UnsafeMutablePointer<Float>
    /// Seconds a wait for another rank of the host may last (DC_PEER_TIMEOUT, default 600).
    public var timeout: Double
    public private(set) var exposedSeconds = 0.0

    init(_ segments: SharedSegments, count: Int) {
        self.segments = segments
        self.count = count
        rank = segments.localRank
        ranks = segments.localSize
        slots = segments.segments.map { ($0 + Self.header).assumingMemoryBound(to: Float.self) }
        ready = segments.segments.map { $0.assumingMemoryBound(to: Int64.self) }
        written = segments.segments.map { ($0 + Self.line).assumingMemoryBound(to: Int64.self) }
        sum = .allocate(capacity: Self.block)
        buckets.reserveCapacity(64)
        timeout = ProcessInfo.processInfo.environment["DC_PEER_TIMEOUT"].flatMap(Double.init) ?? 600
    }

    deinit { sum.deallocate() }

    public var kind: TransportKind { segments.hosts > 1 ? .hierarchical : .sharedMemory }
    public var gradients: UnsafeMutablePointer<Float> { slots[rank] }

    public func beginStep() {
        exposedSeconds = 0
        buckets.removeAll(keepingCapacity: true)
    }

    public func bucketReady(_ range: Range<Int>) throws {
        precondition(range.upperBound <= count)
        buckets.append(range)
        readyCount += 1
        CAtomics_store_release(ready[rank], readyCount)
    }

    public func finish() throws {
        let started = Clock.now
        defer { exposedSeconds += Clock.now - started }
        for (index, bucket) in buckets.enumerated() {
            try waitForAll(ready, atLeast: stepBase + Int64(index) + 1, "complete bucket \(index) of its step")
            try reduceShare(of: bucket)
        }
        steps += 1
        CAtomics_store_release(written[rank], steps)
        try waitForAll(written, atLeast: steps, "write its shares of the step")
        stepBase += Int64(buckets.count)
    }

    /// Sums this rank's share of `bucket` over the segments in rank order and writes it into every segment (on
    /// several hosts: first the allreduce of the host's sum with the other hosts).
    private func reduceShare(of bucket: Range<Int>) throws {
        let units = (bucket.count + Self.shareUnit - 1) / Self.shareUnit
        let lower = units * rank / ranks * Self.shareUnit
        let upper = min(units * (rank + 1) / ranks * Self.shareUnit, bucket.count)
        guard lower < upper else { return }
        let offset = bucket.lowerBound
        let own = slots[rank] + offset
        let cross = segments.crossHost
        var start = lower
        while start < upper {
            let n = min(upper - start, Self.block)
            sum.update(from: slots[0] + offset + start, count: n)
            for q in 1..<ranks { Self.add(slots[q] + offset + start, into: sum, count: n) }
            if cross != nil {
                (own + start).update(from: sum, count: n)  // the host's sum, to go between hosts first
            } else {
                for q in 0..<ranks { (slots[q] + offset + start).update(from: sum, count: n) }
            }
            start += n
        }
        if let cross {  // the same share bounds on every host, so all of `cross` call or none does
            try cross.allreduce(UnsafeMutableBufferPointer(start: own + lower, count: upper - lower), .sum)
            for q in 0..<ranks where q != rank { (slots[q] + offset + lower).update(from: own + lower, count: upper - lower) }
        }
    }

    /// sum[i] += other[i], eight lanes at a time (unaligned: a bucket starts where its layer does); the same
    /// additions in the same order as one at a time.
    @inline(__always)
    static func add(_ other: UnsafePointer<Float>, into sum: UnsafeMutablePointer<Float>, count n: Int) {
        let source = UnsafeRawPointer(other), target = UnsafeMutableRawPointer(sum)
        var i = 0
        while i + 8 <= n {
            let a = target.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            let b = source.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            target.storeBytes(of: a + b, toByteOffset: i * 4, as: SIMD8<Float>.self)
            i += 8
        }
        while i < n { sum[i] += other[i]; i += 1 }
    }

    /// Spins briefly, then yields (with more ranks than cores the rank waited for needs this core), until every
    /// rank's counter reaches `atLeast`; throws when one has not within `timeout` seconds.
    private func waitForAll(_ counters: [UnsafeMutablePointer<Int64>], atLeast: Int64, _ what: @autoclosure () -> String) throws {
        for q in 0..<ranks {
            var spins = 0
            var deadline = 0.0
            while CAtomics_load_acquire(counters[q]) < atLeast {
                spins += 1
                if spins < 2000 { CAtomics_pause(); continue }
                sched_yield()
                if spins % 1024 == 0 {
                    let now = Clock.now
                    if deadline == 0 { deadline = now + timeout } else if now > deadline {
                        throw PeerTimeout(localRank: q, waitingFor: what(), seconds: timeout)
                    }
                }
            }
        }
    }
}
