import Glibc




/// A whole file mapped read-only into memory. Weights are read in place from the mapping, so a model
/// costs page cache rather than heap, and the kernel can drop and re-read its pages under pressure.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    /// The file's bytes; valid for the lifetime of this object.
    public let bytes: UnsafeRawBufferPointer
    /// Pages come from a file (and can be dropped and re-read), not from an anonymous copy.
    public let isFileBacked: Bool

    public init(path: String) throws {
        self.path = path
        isFileBacked = true
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw EdgeError("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw EdgeError("cannot stat \(path): \(String(cString: strerror(errno)))") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw EdgeError("\(path) is not a regular file") }
        let size = Int(st.st_size)
        if size == 0 {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        guard let base = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), base != MAP_FAILED else {
            throw EdgeError("cannot map \(path): \(String(cString: strerror(errno)))")
        }
        bytes = UnsafeRawBufferPointer(start: base, count: size)
        // Page-cache large folios may be mapped by whole 2 MB PMDs (Linux 6.x), so reading one bias would make
        // the neighbouring, already-repacked weights resident too: 92 MB of dead file pages at 256×256 int8.
        // Asking for base pages keeps residency to what the reader touches. Advice only: failure is harmless.
        _ = madvise(base, size, MADV_NOHUGEPAGE)
    }

    /// A private anonymous mapping holding a copy of `contents`, named `path` in messages: lets the readers
    /// that take a mapped file parse bytes that never were a file (fuzzing, tests).
    public init(copying contents: UnsafeRawBufferPointer, path: String) throws {
        self.path = path
        isFileBacked = false
        guard contents.count > 0 else {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        guard let base = mmap(nil, contents.count, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), base != MAP_FAILED else {
            throw EdgeError("cannot map \(contents.count) bytes for \(path): \(String(cString: strerror(errno)))")
        }
        base.copyMemory(from: contents.baseAddress!, byteCount: contents.count)
        bytes = UnsafeRawBufferPointer(start: base, count: contents.count)
    }

    /// Tells the kernel the whole pages inside `range` (a part of `bytes`) are not needed now, so they stop
    /// counting as this process's resident memory; a later read faults them back in from the page cache.
    /// For weights that were copied elsewhere at load (the int8 kernels' packed panels). No-op for copies.
    public func dropResidentPages(_ range: UnsafeRawBufferPointer) {
        guard isFileBacked, let start = range.baseAddress, range.count > 0 else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let first = (Int(bitPattern: start) + page - 1) / page * page
        let end = (Int(bitPattern: start) + range.count) / page * page
        guard end > first else { return }
        _ = madvise(UnsafeMutableRawPointer(bitPattern: first), end - first, MADV_DONTNEED)
    }

    deinit {
        if let base = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) }
    }
}

/// Reads a whole (small) file into an array: for JSON configs, not for weights. A file larger than
/// `maxBytes` is refused before it is copied (the mapping itself costs no memory).
public func readWholeFile(_ path: String, maxBytes: Int = Int.max) throws -> [UInt8] {
    let file = try MappedFile(path: path)
    guard file.bytes.count <= maxBytes else {
        throw EdgeError("\(path): \(file.bytes.count) bytes is more than the \(maxBytes) such a file may have")
    }
    return Array(file.bytes)
}

/// Config files (config.json, scheduler_config.json, a shard index) are a few kB; anything near this is not one.
public let maxConfigFileBytes = 64 << 20

/// True when `path` names an existing file or folder.
public func fileExists(_ path: String) -> Bool {
    var st = stat()
    return stat(path, &st) == 0
}

/// True when `path` names an existing folder.
public func isDirectory(_ path: String) -> Bool {
    var st = stat()
    return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
}
