/// One block of memory allocated once, when a model is loaded, and carved into tensors at fixed offsets
/// by a `MemoryPlan`. Nothing is allocated while sampling: every intermediate lives here.
public final class Arena: @unchecked Sendable {
    /// Offsets handed out by the plan are multiples of this, so every tensor starts on a cache line
    /// and SIMD loads of up to 64 bytes are aligned.
    public static let alignment = 64

    public let byteCount: Int
    public let base: UnsafeMutableRawPointer

    public init(byteCount: Int) {
        self.byteCount = byteCount
        // Page-aligned, so also aligned to `alignment`.
        base = PageMemory.allocate(byteCount: max(byteCount, Arena.alignment))
        adviseHugePages(base, byteCount: byteCount)
        // Touch every page now, so the first step does not pay for page faults and peak memory shows at load.
        base.initializeMemory(as: UInt8.self, repeating: 0, count: max(byteCount, Arena.alignment))
    }

    deinit { PageMemory.deallocate(base, byteCount: max(byteCount, Arena.alignment)) }

    /// The float tensor placed at `offset` bytes.
    @inlinable public func floats(at offset: Int) -> UnsafeMutablePointer<Float> {
        (base + offset).assumingMemoryBound(to: Float.self)
    }
}

/// Places buffers with known sizes and lifetimes at offsets in one arena, so that buffers whose
/// lifetimes overlap never share bytes and the total stays small.
///
/// Lifetimes are closed intervals of step indices [first, last] over a straight-line program (the UNet
/// graph in execution order). Placement is greedy by decreasing size, each buffer at the lowest offset
/// that does not collide with an already placed buffer live at the same time — the usual heuristic of
/// TFLite's and ONNX Runtime's arena planners; it is not optimal, but close on UNet-shaped graphs.
public struct MemoryPlan: Sendable {
    public struct Buffer: Sendable {
        public var bytes: Int
        public var first: Int
        public var last: Int
        public init(bytes: Int, first: Int, last: Int) {
            precondition(bytes >= 0 && first <= last)
            self.bytes = bytes; self.first = first; self.last = last
        }
    }

    /// Byte offset of each buffer, in the order they were given.
    public let offsets: [Int]
    /// Size of the arena the plan needs.
    public let totalBytes: Int

    public init(_ buffers: [Buffer]) {
        var offsets = [Int](repeating: 0, count: buffers.count)
        var placed: [(offset: Int, end: Int, first: Int, last: Int)] = []
        let order = buffers.indices.sorted { buffers[$0].bytes != buffers[$1].bytes ? buffers[$0].bytes > buffers[$1].bytes : $0 < $1 }
        var total = 0
        for i in order {
            let b = buffers[i]
            let size = alignUp(b.bytes, Arena.alignment)
            // Collisions are the placed buffers live at the same time, by increasing offset.
            let live = placed.filter { $0.first <= b.last && b.first <= $0.last }.sorted { $0.offset < $1.offset }
            var candidate = 0
            for p in live {
                if candidate + size <= p.offset { break }
                candidate = max(candidate, p.end)
            }
            offsets[i] = candidate
            placed.append((candidate, candidate + size, b.first, b.last))
            total = max(total, candidate + size)
        }
        self.offsets = offsets
        self.totalBytes = total
    }
}
