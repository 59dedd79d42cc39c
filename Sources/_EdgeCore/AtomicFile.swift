import Glibc




/// Writes `bytes` to `path` atomically: the data goes to a temporary file in the same folder, is flushed,
/// and is renamed over `path` only when complete, so an interrupted or failed write never leaves a
/// truncated file behind. Throws a one-line error naming the path.
public func writeFileAtomically(_ path: String, _ write: (_ sink: (UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws {
    let temporary = path + ".partial-\(getpid())"
    let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { throw EdgeError("cannot write \(path): \(String(cString: strerror(errno)))") }
    var committed = false
    defer {
        if !committed { close(fd); unlink(temporary) }
    }
    try write { chunk in
        var done = 0
        while done < chunk.count {
            let n = Glibc.write(fd, chunk.baseAddress! + done, chunk.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw EdgeError("cannot write \(path): \(String(cString: strerror(errno)))")
            }
            done += n
        }
    }
    guard fsync(fd) == 0 else { throw EdgeError("cannot write \(path): \(String(cString: strerror(errno)))") }
    committed = true
    guard close(fd) == 0 else { unlink(temporary); throw EdgeError("cannot write \(path): \(String(cString: strerror(errno)))") }
    guard rename(temporary, path) == 0 else {
        let reason = String(cString: strerror(errno))
        unlink(temporary)
        throw EdgeError("cannot write \(path): \(reason)")
    }
}

/// Convenience for a byte array held in memory.
public func writeFileAtomically(_ path: String, bytes: [UInt8]) throws {
    try writeFileAtomically(path) { sink in try bytes.withUnsafeBytes { try sink($0) } }
}
