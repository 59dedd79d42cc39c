import Glibc

/// Seconds on a monotonic clock, for timing (never goes backwards when the wall clock is set).
public func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// The process's peak resident set size so far, in bytes (getrusage's ru_maxrss, which Linux reports in KiB).
public func peakResidentBytes() -> Int {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    return Int(usage.ru_maxrss) * 1024
}

/// Throws unless a file can be created at `path`: its folder exists and is writable, and `path` is not a
/// folder. Checked before long work, so a bad output path fails in a second, not after sampling.
public func checkWritable(_ path: String) throws {
    if isDirectory(path) { throw EdgeError.usage("cannot write \(path): it is a folder") }
    let slash = path.lastIndex(of: "/")
    let folder = slash.map { String(path[..<$0]) } ?? "."
    let dir = folder.isEmpty ? "/" : folder
    guard isDirectory(dir) else { throw EdgeError("cannot write \(path): folder \(dir) does not exist") }
    guard access(dir, W_OK) == 0 else { throw EdgeError("cannot write \(path): folder \(dir) is not writable") }
}

/// Megabytes (10^6 bytes) with one decimal, for summaries.
public func megabytes(_ bytes: Int) -> String { fixed(Double(bytes) / 1e6, decimals: 1) + " MB" }
