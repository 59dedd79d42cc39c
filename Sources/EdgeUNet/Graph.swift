import _EdgeCore
import _EdgeQuant
import _EdgeKernels

/// Which kernels run the UNet. Both execute the same program; `reference` is the plain-loop oracle the
/// tests compare `fast` against.
public enum UNetBackend: String, Sendable, CaseIterable {
    /// Straightforward loops, fp32 accumulation, one thread: easy to read and check.
    case reference
    /// Packed, register-tiled SIMD kernels on OpenMP threads.
    case fast
}

/// A tensor slot of the UNet program; its bytes are placed in the arena by the memory plan.
struct BufferID: Hashable {
    let index: Int
}

/// One step of the UNet program. Weights point into the mapped model file; buffers into the arena.
/// Shapes are fixed at build time, so running the program only reads this list.
enum Op {
    /// timesteps [N] → sinusoidal embedding [N, D].
    case timestepEmbedding(timesteps: BufferID, output: BufferID, dimension: Int, flipSinToCos: Bool, freqShift: Int)
    /// output [M, N] = input [M, K] · Wᵀ + b, optionally followed by SiLU.
    case linear(input: BufferID, rows: Int, weight: WeightMatrix, bias: UnsafePointer<Float>, output: BufferID, applySiLU: Bool)
    /// output = input · scale + shift over `count` values.
    case affine(input: BufferID, output: BufferID, scale: Float, shift: Float, count: Int)
    /// output = SiLU(input) over `count` values.
    case silu(input: BufferID, output: BufferID, count: Int)
    /// [N, C, P] → [N, C, P], optionally followed by SiLU.
    case groupNorm(input: BufferID, output: BufferID, channels: Int, pixels: Int, groups: Int, eps: Float,
                   gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, applySiLU: Bool)
    case conv2d(ConvOp)
    /// [N, Ca, P] ++ [N, Cb, P] → [N, Ca + Cb, P].
    case concat(a: BufferID, channelsA: Int, b: BufferID, channelsB: Int, pixels: Int, output: BufferID)
    /// [N·C, H, W] → [N·C, 2H, 2W].
    case upsampleNearest2x(input: BufferID, planes: Int, height: Int, width: Int, output: BufferID)
    /// A diffusers `Attention` block from a deprecated attention block: GroupNorm, Q/K/V projections,
    /// multi-head attention, output projection, residual add, division by `rescale`.
    case attention(AttentionOp)
}

/// output = (conv(input) + bias + channelBias[n, o] + residual) · scale: a convolution with what follows it
/// in a ResNet block folded in, so the fast backend does it in one pass over the output.
struct ConvOp {
    var shape: Conv2DShape
    /// With `upsampledInput`, `input` is the half-size image and `shape` describes the 2× upsampled one
    /// (nearest neighbour): the upsampling is folded into the convolution's reads (fast backend only).
    var upsampledInput = false
    var input: BufferID
    var weight: WeightMatrix
    var bias: UnsafePointer<Float>
    var output: BufferID
    /// [N, O], added to every pixel of its channel: a ResNet block's time-embedding projection.
    var channelBias: BufferID? = nil
    /// [N, O, Ho, Wo]: the ResNet block's shortcut, or the attention block's input.
    var residual: BufferID? = nil
    var scale: Float = 1
}

struct AttentionOp {
    var input: BufferID           // [N, C, T]
    var output: BufferID          // [N, C, T]
    var side: Int                 // T = side²
    var channels: Int, tokens: Int, heads: Int, groups: Int
    var eps: Float
    var rescale: Float
    var normGamma: UnsafePointer<Float>, normBeta: UnsafePointer<Float>
    var toQ: WeightMatrix, toK: WeightMatrix, toV: WeightMatrix, toOut: WeightMatrix
    var biasQ: UnsafePointer<Float>, biasK: UnsafePointer<Float>, biasV: UnsafePointer<Float>, biasOut: UnsafePointer<Float>
    // Scratch: normed, q, k, v, attended [N, C, T] (the reference backend uses the first image's worth of
    // q, k, v, attended as token-major [T, C]); tokens, projected [T, C]; scores [T] (reference only: the fast kernel's score rows live in scratch).
    var normed: BufferID, tokensBuffer: BufferID, q: BufferID, k: BufferID, v: BufferID, attended: BufferID, projected: BufferID, scores: BufferID
}

extension Op {
    /// Every buffer the op reads or writes, for lifetime analysis.
    var buffers: [BufferID] {
        switch self {
        case let .timestepEmbedding(t, o, _, _, _): [t, o]
        case let .linear(i, _, _, _, o, _): [i, o]
        case let .silu(i, o, _): [i, o]
        case let .affine(i, o, _, _, _): [i, o]
        case let .groupNorm(i, o, _, _, _, _, _, _, _): [i, o]
        case let .conv2d(c): [c.input, c.output] + [c.channelBias, c.residual].compactMap { $0 }
        case let .concat(a, _, b, _, _, o): [a, b, o]
        case let .upsampleNearest2x(i, _, _, _, o): [i, o]
        case let .attention(a): [a.input, a.output, a.normed, a.tokensBuffer, a.q, a.k, a.v, a.attended, a.projected, a.scores]
        }
    }

    var kind: String {
        switch self {
        case .timestepEmbedding: "timestep_embedding"
        case .linear: "linear"
        case .affine: "affine"
        case .silu: "silu"
        case let .groupNorm(_, _, _, _, _, _, _, _, silu): silu ? "group_norm_silu" : "group_norm"
        case let .conv2d(c): c.upsampledInput ? "conv\(c.shape.kernel)x\(c.shape.kernel)_upsampled" : "conv\(c.shape.kernel)x\(c.shape.kernel)_s\(c.shape.stride)"
        case .concat: "concat"
        case .upsampleNearest2x: "upsample_nearest"
        case .attention: "attention"
        }
    }

    /// Multiply-accumulates of the op's matrix products for `batch` images (0 for element-wise ops).
    func multiplyAccumulates(batch: Int) -> Int {
        switch self {
        case let .linear(_, rows, w, _, _, _): rows * w.rows * w.columns
        case let .conv2d(c): c.shape.multiplyAccumulates
        case let .attention(a): batch * (4 * a.tokens * a.channels * a.channels + 2 * a.tokens * a.tokens * a.channels)
        default: 0
        }
    }

    /// Bytes of shared scratch the op needs on `backend` (the reference kernels' dequantised weight row,
    /// the fast kernels' packed panels).
    func scratchBytes(_ backend: UNetBackend, threads: Threads, int8: Bool) -> Int {
        if int8, backend == .fast {
            let q8 = int8Convolutions.map { conv2dQ8ScratchBytes($0.shape, threads: threads) }.max() ?? 0
            if case let .attention(a) = self { return max(q8, attentionF32ScratchBytes(tokens: a.tokens, threads: threads)) }
            if q8 > 0 { return q8 }
        }
        return switch (self, backend) {
        case let (.linear(_, _, w, _, _, _), _): 4 * w.columns
        case let (.conv2d(c), .reference): 4 * c.weight.columns
        case let (.conv2d(c), .fast): conv2dF32ScratchBytes(c.shape, threads: threads)
        case let (.attention(a), .reference): 4 * a.channels
        case let (.attention(a), .fast):
            max(conv2dF32ScratchBytes(a.projection(batch: 1), threads: threads), attentionF32ScratchBytes(tokens: a.tokens, threads: threads))
        default: 0
        }
    }
}

extension Op {
    /// The convolutions (shape, weights) the int8 path runs for this op: an int8 conv `conv2dQ8` supports, or
    /// all four projections of an attention block with int8 weights (per image: `conv2dQ8` takes the batch
    /// from the shape). Empty otherwise.
    var int8Convolutions: [(shape: Conv2DShape, weight: WeightMatrix)] {
        switch self {
        case let .conv2d(c) where c.weight.type == .q8PerChannel && conv2dQ8Supports(c.shape):
            [(c.shape, c.weight)]
        case let .attention(a) where [a.toQ, a.toK, a.toV, a.toOut].allSatisfy({ $0.type == .q8PerChannel }):
            [a.toQ, a.toK, a.toV, a.toOut].map { (a.projection(batch: 1), $0) }
        default: []
        }
    }
}

extension Op {
    /// The weight matrices the fast backend packs once at load into fp32 panels (`packWeightsF32`): a conv's,
    /// or an attention block's Q, K, V and out projections, when stored fp32 or fp16. int8 weights only with
    /// `includeInt8` — for the few convolutions the int8 path leaves to fp32 (the stride-2 downsamplers):
    /// as fp32 panels every int8 model's weights would take 4× their memory.
    func prepackableConvolutions(includeInt8: Bool) -> [WeightMatrix] {
        let eligible: (WeightMatrix) -> Bool = { includeInt8 || $0.type != .q8PerChannel }
        switch self {
        case let .conv2d(c) where eligible(c.weight): return [c.weight]
        case let .attention(a) where [a.toQ, a.toK, a.toV, a.toOut].allSatisfy(eligible): return [a.toQ, a.toK, a.toV, a.toOut]
        default: return []
        }
    }
}

extension AttentionOp {
    /// The Q, K, V and output projections are 1×1 convolutions over the [N, C, T] activations.
    func projection(batch: Int) -> Conv2DShape {
        Conv2DShape(batch: batch, inChannels: channels, outChannels: channels, height: side, width: side, kernel: 1,
                    padTop: 0, padLeft: 0, padBottom: 0, padRight: 0)
    }
}
