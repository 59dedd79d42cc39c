import _EdgeQuant

/// A convolution's int8 weights repacked once, at model load, into the layout the q8 tile kernels read
/// (`Q8Conv_8x16_*`). Memory comes from the caller (the UNet's weight arena) and must outlive this view.
///
/// Layout (O output channels, C input channels, T = k·k taps, C4 = ⌈C/4⌉, panels of 8 output channels):
/// - `values`: Int8 [⌈O/8⌉][T][C4][8][4] — for panel p, tap t, channel block b: the 8 rows' weights of
///   channels 4b…4b+3 at that tap, 4 bytes per row (what one `vpdpbusd` broadcast / `sdot` lane takes).
///   Rows ≥ O and channels ≥ C are 0.
/// - `sums`: Int32 [⌈O/8⌉][T][8] — Σ_c W[o, c, t], for the activations' zero-point correction.
/// - `scales`: Float [⌈O/8⌉·8] — the per-row int8 scales (0 past O).
public struct Q8ConvWeights: @unchecked Sendable {
    public let rows: Int, channels: Int, kernel: Int
    public let values: UnsafePointer<Int8>
    public let sums: UnsafePointer<Int32>
    public let scales: UnsafePointer<Float>

    public var taps: Int { kernel * kernel }
    public var panels: Int { (rows + 7) / 8 }
    public var channelBlocks: Int { (channels + 3) / 4 }

    /// Bytes `init(packing:…)` needs (64-byte aligned parts).
    public static func byteCount(rows: Int, channels: Int, kernel: Int) -> Int {
        let (panels, taps, blocks) = ((rows + 7) / 8, kernel * kernel, (channels + 3) / 4)
        return roundUp64(panels * taps * blocks * 32) + roundUp64(panels * taps * 8 * 4) + roundUp64(panels * 8 * 4)
    }

    /// Repacks `weight` (`.q8PerChannel`, rows O of C·k·k in PyTorch order c, ky, kx) into `memory`
    /// (`byteCount` bytes, 64-byte aligned).
    public init(packing weight: WeightMatrix, channels: Int, kernel: Int, into memory: UnsafeMutableRawPointer) {
        precondition(weight.type == .q8PerChannel && weight.columns == channels * kernel * kernel)
        precondition(Int(bitPattern: memory) % 64 == 0, "Q8ConvWeights: memory must be 64-byte aligned")
        let (panels, taps, blocks) = ((weight.rows + 7) / 8, kernel * kernel, (channels + 3) / 4)
        let v = memory.bindMemory(to: Int8.self, capacity: panels * taps * blocks * 32)
        let sumsAt = memory + roundUp64(panels * taps * blocks * 32)
        let s = sumsAt.bindMemory(to: Int32.self, capacity: panels * taps * 8)
        let sc = (sumsAt + roundUp64(panels * taps * 8 * 4)).bindMemory(to: Float.self, capacity: panels * 8)
        self.init(viewing: UnsafeRawPointer(memory), rows: weight.rows, channels: channels, kernel: kernel)
        v.initialize(repeating: 0, count: panels * taps * blocks * 32)
        s.initialize(repeating: 0, count: panels * taps * 8)
        sc.initialize(repeating: 0, count: panels * 8)
        let q = weight.values.assumingMemoryBound(to: Int8.self)
        for o in 0 ..< rows {
            let (p, r) = (o / 8, o % 8)
            sc[o] = weight.scales![o]
            for t in 0 ..< taps {
                var sum: Int32 = 0
                for c in 0 ..< channels {
                    let w = q[o * weight.columns + c * taps + t]
                    v[(((p * taps + t) * blocks + c / 4) * 8 + r) * 4 + c % 4] = w
                    sum += Int32(w)
                }
                s[(p * taps + t) * 8 + r] = sum
            }
        }
    }

    /// The weights `init(packing:…)` wrote at `memory` for a convolution of `rows` outputs, `channels` inputs
    /// and a `kernel`×`kernel` window: a view, nothing is read or copied.
    public init(viewing memory: UnsafeRawPointer, rows: Int, channels: Int, kernel: Int) {
        self.rows = rows
        self.channels = channels
        self.kernel = kernel
        let (panels, taps, blocks) = ((rows + 7) / 8, kernel * kernel, (channels + 3) / 4)
        let sumsAt = memory + roundUp64(panels * taps * blocks * 32)
        values = memory.assumingMemoryBound(to: Int8.self)
        sums = sumsAt.assumingMemoryBound(to: Int32.self)
        scales = (sumsAt + roundUp64(panels * taps * 8 * 4)).assumingMemoryBound(to: Float.self)
    }
}

@inline(__always) func roundUp64(_ x: Int) -> Int { (x + 63) / 64 * 64 }
