import Glibc

/// ∏ values, or nil when a factor is negative or the product overflows `Int`. For sizes that come from a
/// file: a hostile shape must be refused with a message, not trap on overflow.
public func checkedProduct<S: Sequence>(_ values: S) -> Int? where S.Element == Int {
    var product = 1
    for v in values {
        guard v >= 0 else { return nil }
        let (p, overflow) = product.multipliedReportingOverflow(by: v)
        if overflow { return nil }
        product = p
    }
    return product
}

/// a + b, or nil on overflow.
public func checkedSum(_ a: Int, _ b: Int) -> Int? {
    let (s, overflow) = a.addingReportingOverflow(b)
    return overflow ? nil : s
}

/// The machine's physical memory in bytes (sysconf), or nil where the system does not say.
public func physicalMemoryBytes() -> Int? {
    let pages = sysconf(Int32(_SC_PHYS_PAGES)), size = sysconf(Int32(_SC_PAGESIZE))
    guard pages > 0, size > 0 else { return nil }
    return checkedProduct([pages, size])
}

/// A byte count as a person writes it: `1048576`, `512K`, `300M`, `2G` (binary multiples: K = 1024,
/// M = 1024², G = 1024³, T = 1024⁴; a trailing `B` or `iB` is allowed: `300MB`, `2GiB`). Nil for anything
/// else, zero, or more than `Int.max`.
public func parseByteCount(_ text: String) -> Int? {
    var s = Substring(text.uppercased())
    if s.hasSuffix("IB") { s = s.dropLast(2) } else if s.hasSuffix("B") { s = s.dropLast() }
    var shift = 0
    if let last = s.last, let i = ["K", "M", "G", "T"].firstIndex(of: String(last)) {
        shift = 10 * (i + 1)
        s = s.dropLast()
    }
    guard !s.isEmpty, s.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(s), n > 0 else { return nil }
    guard n <= Int.max >> shift else { return nil }
    return n << shift
}
