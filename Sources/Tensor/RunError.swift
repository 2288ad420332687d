// RunError: the one error a user reads. Every module throws it with a message that says what to fix; the command
// line prints it on one line and exits non-zero.

public struct RunError: Error, CustomStringConvertible {
    public let message: String
    /// Every rank throws this error at the same point (a check of options they all share, or a failure that rank 0
    /// broadcast): rank 0 alone reports it, and the others wait for that at a barrier before they exit.
    public let everyRank: Bool
    public init(_ message: String, everyRank: Bool = false) {
        self.message = message
        self.everyRank = everyRank
    }
    public var description: String { message }
}
