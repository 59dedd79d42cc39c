import Glibc

/// Asks the kernel to back the whole pages of `[start, start + byteCount)` with transparent huge pages.
///
/// For the large blocks that live as long as a model and are read on every evaluation: the arena and the
/// repacked weights (1.3 GB of Winograd panels for a 256×256 fp32 UNet). With 4 KB pages each 4 KB of a
/// streamed weight panel costs a TLB miss, and a miss is a two-dimensional page walk under a hypervisor.
/// Linux's usual THP policies (`enabled=madvise` as on this project's machines, or `always` with
/// `defrag=madvise`, Debian's default) give anonymous memory huge pages only where it was asked for, so
/// without this advice the blocks got none (AnonHugePages 0). Measured with
/// `tools/benchmarks/hugepages_ab.sh` (interleaved against a THP-disabled process, 2 threads, median of 4
/// rounds): 0.88× the time per evaluation at 256×256 fp32 (1.3 GB in huge pages), 0.94× at 256×256 int8.
///
/// Resident memory does not grow: both blocks are written in full when a model is loaded. Advice only: a
/// kernel without THP, or one that refuses, leaves ordinary pages, which is harmless.
public func adviseHugePages(_ start: UnsafeMutableRawPointer, byteCount: Int) {
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    guard page > 0 else { return }
    let first = (Int(bitPattern: start) + page - 1) / page * page
    let end = (Int(bitPattern: start) + byteCount) / page * page
    guard end > first, let aligned = UnsafeMutableRawPointer(bitPattern: first) else { return }
    _ = madvise(aligned, end - first, MADV_HUGEPAGE)
}
