import Glibc
import _EdgeThreads

/// Thrown by a long loop that stopped because the process received SIGINT or SIGTERM. The command line
/// prints one line and exits with 128 + the signal number (130, 143), as a shell reports a killed job.
public struct Interrupted: Error, Sendable, Equatable {
    public let signal: Int32
    /// What was stopped and what was kept, for the one-line message.
    public let detail: String?

    public init(signal: Int32, detail: String? = nil) {
        self.signal = signal
        self.detail = detail
    }

    /// "interrupted by SIGINT: stopped after step 3 of 1000; nothing written"
    public var message: String { "interrupted by \(signalName)" + (detail.map { ": " + $0 } ?? "") }

    public var signalName: String {
        switch signal {
        case SIGINT: "SIGINT"
        case SIGTERM: "SIGTERM"
        default: "signal \(signal)"
        }
    }

    public var exitStatus: Int32 { 128 + signal }
}

/// SIGINT and SIGTERM turned into a flag that loops poll between steps (see edge_signals.c): stopping at a
/// step boundary lets the process free what it holds and write nothing, instead of dying mid-step.
public enum Interruption {
    /// Installs the handlers; until then the signals keep their default action (end the process).
    public static func install() throws {
        guard edge_stop_signals_install() == 0 else {
            throw EdgeError("cannot install signal handlers: \(String(cString: strerror(errno)))")
        }
    }

    /// The signal received since `install`, or nil. Allocation-free: one load of a sig_atomic_t.
    @inline(__always) public static var signal: Int32? {
        let s = edge_stop_signal()
        return s == 0 ? nil : s
    }

    public static func throwIfRequested() throws {
        if let s = signal { throw Interrupted(signal: s) }
    }

    /// Forgets a received signal (tests).
    public static func reset() { edge_stop_signal_reset() }
}
