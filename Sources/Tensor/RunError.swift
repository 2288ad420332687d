// RunError: the one error a user reads. Every module throws it with a message that says what to fix; the command
// line prints it on one line and exits non-zero.

public struct RunError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
