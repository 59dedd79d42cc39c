import Glibc

/// Writes one line to standard error (the tools' diagnostics; standard output stays for results).
public func printError(_ line: String) {
    var bytes = Array(line.utf8)
    bytes.append(0x0A)
    bytes.withUnsafeBytes { raw in
        var done = 0
        while done < raw.count {
            let n = write(2, raw.baseAddress! + done, raw.count - done)
            if n <= 0 { return }
            done += n
        }
    }
}

private func cFormat(_ format: String, _ x: Double) -> String {
    var buffer = [CChar](repeating: 0, count: 64)
    _ = withVaList([x]) { vsnprintf(&buffer, 64, format, $0) }
    return buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}

/// A number in the short scientific form used in summaries, e.g. 2.31e-03.
public func formatted(_ x: Double, digits: Int = 3) -> String { cFormat("%.\(digits - 1)e", x) }

/// A number with a fixed number of decimals, e.g. 12.35.
public func fixed(_ x: Double, decimals: Int = 2) -> String { cFormat("%.\(decimals)f", x) }
