// Samples: the values of a data set (N x D, row by row), held either as an array of this process's own or in memory
// that every rank of a host maps (one copy per host). Reads are the same either way; it is not a mutable buffer.

/// Memory that outlives the `Samples` reading it (a window that the ranks of a host share); what keeps it mapped.
public final class SharedStorage<Element>: @unchecked Sendable {
    // Immutable once made: the owner filled it before any rank read it, and nobody writes it after.
    let base: UnsafePointer<Element>
    let count: Int
    private let owner: AnyObject

    /// `count` elements at `base`, kept mapped as long as `owner` lives.
    public init(base: UnsafePointer<Element>, count: Int, owner: AnyObject) {
        self.base = base
        self.count = count
        self.owner = owner
    }
}

public struct Samples<Element: Sendable>: RandomAccessCollection, Sendable {
    private var owned: [Element]
    private let shared: SharedStorage<Element>?

    public init(_ array: [Element]) {
        owned = array
        shared = nil
    }

    /// Samples that live in memory shared with the other ranks of this host.
    public init(shared: SharedStorage<Element>) {
        owned = []
        self.shared = shared
    }

    /// Whether the values live in memory shared with the other ranks of this host.
    public var isShared: Bool { shared != nil }

    public var startIndex: Int { 0 }
    public var endIndex: Int { shared?.count ?? owned.count }

    @inline(__always)
    public subscript(position: Int) -> Element {
        if let shared {
            precondition(position >= 0 && position < shared.count, "sample index out of range")
            return shared.base[position]
        }
        return owned[position]
    }

    /// The values as an array of this process's own (no copy unless they are shared).
    public var array: [Element] { shared == nil ? owned : Array(self) }

    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Element>) throws -> R) rethrows -> R {
        if let shared { return try body(UnsafeBufferPointer(start: shared.base, count: shared.count)) }
        return try owned.withUnsafeBufferPointer(body)
    }
}

extension Samples: ExpressibleByArrayLiteral {
    public init(arrayLiteral elements: Element...) { self.init(elements) }
}

extension Samples: Equatable where Element: Equatable {
    public static func == (a: Samples, b: Samples) -> Bool { a.elementsEqual(b) }
}
