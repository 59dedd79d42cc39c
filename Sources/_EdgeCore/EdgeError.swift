/// The one error type the engine throws. `description` is a single line meant for a person: it names the
/// file, field or tensor at fault, so the command-line tools can print it as it is and exit non-zero.
public struct EdgeError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Kind: Sendable, Equatable {
        /// The caller asked for something invalid (bad option values): exit status 2 in the CLI.
        case usage
        /// Input data is wrong or unreadable, or the system refused (I/O): exit status 1 in the CLI.
        case runtime
    }

    public let kind: Kind
    public let message: String

    public init(_ message: String, kind: Kind = .runtime) {
        // One line: a message that spans lines would break the "one clear line on stderr" contract.
        self.message = message.split(whereSeparator: \.isNewline).joined(separator: " ")
        self.kind = kind
    }

    public static func usage(_ message: String) -> EdgeError { EdgeError(message, kind: .usage) }

    public var description: String { message }
}
