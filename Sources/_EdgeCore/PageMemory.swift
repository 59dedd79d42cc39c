import Glibc

/// Blocks of whole pages straight from the kernel (anonymous `mmap`), for the few large buffers that live as long
/// as a loaded network: the arena and the repacked weights.
///
/// Why not `malloc`: glibc serves a block this large by `mmap` only until the first one is freed, then raises its
/// mmap threshold (up to 32 MB) and serves the next from its heap, which it gives back to the kernel only when the
/// top of the heap is free. A program that loads and frees networks again and again (a library caller generating
/// 200 times) then sees its resident memory wander by tens of megabytes from call to call (measured: 55–77 MB
/// for the default model). Pages from `mmap` go back whole at `munmap`, and start zeroed and page-aligned.
public enum PageMemory {
    /// `byteCount` bytes (at least one page), zero-filled, page-aligned. Traps if the kernel refuses, as
    /// `UnsafeMutableRawPointer.allocate` does: callers check memory needs against the machine beforehand.
    public static func allocate(byteCount: Int) -> UnsafeMutableRawPointer {
        let p = mmap(nil, max(byteCount, 1), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let p, p != MAP_FAILED else {
            fatalError("cannot map \(byteCount) bytes of memory: \(String(cString: strerror(errno)))")
        }
        return p
    }

    /// Gives back a block from `allocate(byteCount:)`, with the same byte count.
    public static func deallocate(_ block: UnsafeMutableRawPointer, byteCount: Int) {
        munmap(block, max(byteCount, 1))
    }
}
