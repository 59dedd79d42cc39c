import _EdgeCore
import _EdgeQuant
import _EdgeKernels
import EdgeGraph
import EdgeModelFile

/// Which kernels run a graph. Both execute the same graph; `reference` is the plain-loop oracle the tests
/// compare `fast` against.
public enum UNetBackend: String, Sendable, CaseIterable {
    /// Straightforward loops, fp32 accumulation, one thread: easy to read and check.
    case reference
    /// Packed, register-tiled SIMD kernels on OpenMP threads.
    case fast
}

/// A tensor slot of a `Program`, placed in the arena by its memory plan: a graph value (same index) or a
/// kernel's temporary (after the graph's values).
@_spi(Testing) public struct BufferID: Hashable {
    public let index: Int
}

/// A weight matrix the executable packs once at load, at `offset` bytes into its packed-weight memory.
@_spi(Testing) public struct PackedWeight {
    public enum Layout {
        /// fp32 panels (`packWeightsF32`) for `conv2dF32`.
        case f32Panels
        /// int8 panels (`Q8ConvWeights`) for `conv2dQ8`, of a convolution over `channels` inputs, k×k.
        case q8(channels: Int, kernel: Int)
        /// Winograd-transformed fp32 weights (`packWinogradWeightsF32`) of a 3×3 convolution over `channels` inputs.
        case winograd(WinogradTile, channels: Int)
    }

    public var weight: WeightMatrix
    public var layout: Layout
    public var offset: Int

    public var bytes: Int {
        switch layout {
        case .f32Panels: packedWeightsF32Bytes(rows: weight.rows, columns: weight.columns)
        case let .q8(channels, kernel): Q8ConvWeights.byteCount(rows: weight.rows, channels: channels, kernel: kernel)
        case let .winograd(tile, channels): winogradWeightsF32Bytes(tile, outChannels: weight.rows, inChannels: channels)
        }
    }
}

/// The kernel a convolution runs on, chosen once by `lower`.
@_spi(Testing) public enum ConvKernel {
    /// `conv2dRef` and the reference epilogues, one effect at a time (reference backend).
    case reference
    /// `conv2dF32`; `packed` names its fp32 panels, or nil when the kernel packs per call (int8 weights with
    /// fp32 activations stay int8 in memory: as fp32 panels they would take 4× the memory).
    case f32(packed: PackedWeight?)
    /// `conv2dQ8` on int8 panels.
    case q8(packed: PackedWeight)
    /// `conv2dWinogradF32` with `tile`; `transformed` names the weights transformed at load, or nil when the kernel
    /// transforms them per call (int8 weights with fp32 activations, as for `f32`).
    case winograd(WinogradTile, transformed: PackedWeight?)
}

/// The kernel of one of a fast attention block's four 1×1 projections (Q, K, V, out).
@_spi(Testing) public enum ProjectionKernel {
    /// `conv2dF32` with `weight`, on fp32 panels packed at load or (nil) packed per call.
    case f32(weight: WeightMatrix, packed: PackedWeight?)
    case q8(packed: PackedWeight)
}

@_spi(Testing) public struct ProjectionKernels {
    public var q: ProjectionKernel, k: ProjectionKernel, v: ProjectionKernel, out: ProjectionKernel
}

/// One step of a `Program`: a graph node with its weights bound to the model file, its buffers, and its
/// kernel resolved. The runtime executes steps in order with no choices left to make.
@_spi(Testing) public enum Step {
    case timestepEmbedding(timesteps: BufferID, output: BufferID, dimension: Int, flipSinToCos: Bool, freqShift: Int)
    /// `linearRef` or `linearF32` (`fast`), then SiLU if asked.
    case linear(input: BufferID, rows: Int, weight: WeightMatrix, bias: UnsafePointer<Float>, output: BufferID, applySiLU: Bool, fast: Bool)
    case affine(input: BufferID, output: BufferID, scale: Float, shift: Float, count: Int)
    case silu(input: BufferID, output: BufferID, count: Int)
    /// `groupNormRef` or `groupNormF32` (`fast`).
    case groupNorm(input: BufferID, output: BufferID, channels: Int, pixels: Int, groups: Int, eps: Float,
                   gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, applySiLU: Bool, fast: Bool)
    case conv2d(ConvStep)
    case concat(a: BufferID, channelsA: Int, b: BufferID, channelsB: Int, pixels: Int, output: BufferID)
    case upsampleNearest2x(input: BufferID, planes: Int, height: Int, width: Int, output: BufferID)
    case attention(AttentionStep)
    /// `vectorQuantizeRef` over [N, E, P] with codebook [K, E].
    case vectorQuantize(input: BufferID, output: BufferID, codebook: UnsafePointer<Float>, entries: Int, dimension: Int, pixels: Int)
    /// `tokenEmbeddingRef`: ids [N, T] → [N, D, T].
    case tokenEmbedding(ids: BufferID, output: BufferID, tokens: Int, table: WeightMatrix, positions: WeightMatrix)
    /// `layerNormRef` or `layerNormF32` (`fast`) over the tokens of [N, C, T].
    case layerNorm(input: BufferID, output: BufferID, features: Int, tokens: Int, eps: Float,
                   gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, fast: Bool)
    /// `geluRef` / `quickGELURef` value by value, or `geluF32` / `quickGELUF32` (`fast`).
    case activation(GraphOp.Activation, input: BufferID, output: BufferID, count: Int, fast: Bool)
    case multiHeadAttention(MultiHeadAttentionStep)
    /// `gegluRef` or `gegluF32` (`fast`): [N, 2F, T] → [N, F, T].
    case geglu(input: BufferID, output: BufferID, features: Int, tokens: Int, fast: Bool)
    /// `convertF32ToF16` of `count` values: `output` holds them as binary16 (⌈count/2⌉ floats of arena).
    case toHalf(input: BufferID, output: BufferID, count: Int)
    /// `convertF16ToF32`: the inverse.
    case fromHalf(input: BufferID, output: BufferID, count: Int)
}

extension Step {
    /// The kernel this step runs, as `bench --json` reports it: "q8" (int8 activations, `conv2dQ8`), "f32",
    /// "f32, int8 weights per call" (fp32 activations; the weights stay int8 in memory), "winograd F(m×m,3×3)"
    /// (with ", int8 weights per call" likewise), "f16" (a skip connection's conversion) or "reference".
    public var kernelDescription: String {
        switch self {
        case let .conv2d(c):
            switch c.kernel {
            case .reference: return "reference"
            case let .f32(packed): return packed == nil ? "f32, int8 weights per call" : "f32"
            case .q8: return "q8"
            case let .winograd(tile, transformed): return "winograd \(tile)" + (transformed == nil ? ", int8 weights per call" : "")
            }
        case let .attention(a):
            guard case let .fast(projections) = a.kernel else { return "reference" }
            switch projections.q {
            case .q8: return "q8"
            case let .f32(_, packed): return packed == nil ? "f32, int8 weights per call" : "f32"
            }
        case let .linear(_, _, _, _, _, _, fast), let .groupNorm(_, _, _, _, _, _, _, _, _, fast),
             let .layerNorm(_, _, _, _, _, _, _, fast), let .activation(_, _, _, _, fast), let .geglu(_, _, _, _, fast):
            return fast ? "f32" : "reference"
        case let .multiHeadAttention(a):
            if case .fast = a.kernel { return "f32" } else { return "reference" }
        case .toHalf, .fromHalf: return "f16"
        default: return "f32"
        }
    }
}

@_spi(Testing) public struct ConvStep {
    public var shape: Conv2DShape
    public var upsampledInput: Bool
    public var input: BufferID, output: BufferID
    /// The second half of a concatenation the convolution reads in place of its written value (`conv2dQ8`
    /// only): the input is torch.cat((input, concatenated), dim=1), `concatenatedChannels` of them from here.
    public var concatenated: BufferID?, concatenatedChannels: Int
    public var weight: WeightMatrix
    public var bias: UnsafePointer<Float>?
    public var channelBias: BufferID?, residual: BufferID?
    public var scale: Float
    /// The GroupNorm (+ SiLU) folded into the convolution's input (`conv2dQ8` only): `input` is then the
    /// norm's input, and the normalised tensor is never written.
    public var inputNorm: Q8InputNorm?
    public var kernel: ConvKernel
}

@_spi(Testing) public struct AttentionStep {
    /// [N, C, T]
    public var input: BufferID, output: BufferID
    public var side: Int, channels: Int, tokens: Int, heads: Int, groups: Int
    public var eps: Float, rescale: Float
    public var normGamma: UnsafePointer<Float>, normBeta: UnsafePointer<Float>
    public var toQ: WeightMatrix, toK: WeightMatrix, toV: WeightMatrix, toOut: WeightMatrix
    public var biasQ: UnsafePointer<Float>, biasK: UnsafePointer<Float>, biasV: UnsafePointer<Float>, biasOut: UnsafePointer<Float>
    /// Temporaries, each [N, C, T]: the normed input, Q, K, V, the attended values.
    public var normed: BufferID, q: BufferID, k: BufferID, v: BufferID, attended: BufferID
    public var kernel: Kernel

    public enum Kernel {
        /// Token-major plain loops; `tokensBuffer` and `projected` [T, C] and `scores` [T] are its own (it uses
        /// the first image's worth of q, k, v, attended as [T, C]).
        case reference(tokensBuffer: BufferID, projected: BufferID, scores: BufferID)
        /// Channel-major: projections as 1×1 convolutions, `attentionF32` for the heads.
        case fast(ProjectionKernels)
    }

    public func projection(batch: Int) -> Conv2DShape {
        Conv2DShape(batch: batch, inChannels: channels, outChannels: channels, height: side, width: side, kernel: 1,
                    padTop: 0, padLeft: 0, padBottom: 0, padRight: 0)
    }
}

@_spi(Testing) public struct MultiHeadAttentionStep {
    /// q, output [N, C, Tq]; k, v [N, C, Tk].
    public var q: BufferID, k: BufferID, v: BufferID, output: BufferID
    public var channels: Int, heads: Int, queries: Int, keys: Int
    public var causal: Bool
    public var kernel: Kernel

    public enum Kernel {
        /// `sequenceAttentionRef` on one image's token-major transposes: q and out [Tq, C], k and v [Tk, C],
        /// scores [Tk], its own.
        case reference(q: BufferID, k: BufferID, v: BufferID, output: BufferID, scores: BufferID)
        /// `attentionF32` on the channel-major operands.
        case fast
    }
}

/// A graph lowered for one backend: steps with kernels and weights, the buffers they use, the memory plan,
/// and the weights to pack at load. Computing it reads the model file's tensor table but allocates no
/// arena and packs nothing, so memory can be checked before anything is loaded.
@_spi(Testing) public struct Program {
    public var steps: [Step]
    /// Parallel to `steps`.
    public var names: [String]
    public var kinds: [String]
    public var multiplyAccumulates: [Int]
    /// Floats of every buffer, by BufferID.index (0 for a graph value no step touches, e.g. an upsampled
    /// image folded into the convolution that reads it).
    public var bufferFloats: [Int]
    /// The arena slot of each buffer, by BufferID.index: its own, or the slot of the buffer it overwrites (a
    /// convolution's output written over its dead residual or input, which the kernel allows).
    public var slots: [Int]
    /// Byte offset of each slot; the scratch is slot `scratchSlot`.
    public var plan: MemoryPlan
    /// Index into `plan.offsets` of the scratch all steps share (they run one at a time).
    public var scratchSlot: Int
    public var packed: [PackedWeight]
    public var packedBytes: Int
    /// Graph stages (name, the step after which the value is complete, the buffer).
    public var stages: [(step: Int, name: String, buffer: BufferID, count: Int)]
}

/// Whether the convolutions of `model` run with int8 activations (`conv2dQ8`) on `backend`: for int8 models
/// on the fast backend, by default only where the CPU has a dot-product instruction (VNNI, sdot) —
/// elsewhere the portable int8 kernel is slower than dequantising to fp32, and NEONMLAL (ARMv8.0) has not been
/// measured faster; asked for, the int8 path runs `Q8TileKernel.withoutDotProduct` there.
func usesInt8Activations(model: some WeightSource, backend: UNetBackend, requested: Bool?) -> Bool {
    guard backend == .fast, model.hasInt8Weights else { return false }
    return requested ?? (Q8TileKernel.dotProduct != nil)
}

/// What a lowered network allocates at load, and which mapped weight pages it gives back.
public struct PlannedMemory: Sendable, Equatable {
    /// Activations and scratch.
    public var arena: Int
    /// The weights repacked once at load into the kernels' layouts.
    public var packedWeights: Int
    /// Stored bytes (values and scales) of the network's weights that it reads in place from the source every
    /// evaluation: all its parameters but the repacked ones, whose mapped pages leave resident memory once copied.
    public var readInPlace: Int
    /// What the network allocates: arena and packed weights.
    public var total: Int { arena + packedWeights }
}

/// The arena (activations and scratch) and packed weights `graph` needs on `backend`, without allocating
/// either: what a network's `memory(...)` reports and the memory limit checks.
func plannedMemory(_ graph: Graph, weights: some WeightSource, backend: UNetBackend, threads: Threads,
                   int8Activations: Bool?, winograd: Bool = true) throws -> PlannedMemory {
    let int8 = usesInt8Activations(model: weights, backend: backend, requested: int8Activations)
    let program = try lower(graph, model: weights, backend: backend, threads: threads, int8: int8, winograd: winograd)
    let stored = graph.parameters.reduce(0) { $0 + weights.storedBytes($1.name) }
    let packedSources = program.packed.reduce(0) { sum, p in
        sum + p.weight.rows * p.weight.columns * p.weight.type.elementBytes + (p.weight.scales == nil ? 0 : 4 * p.weight.rows)
    }
    return PlannedMemory(arena: program.plan.totalBytes, packedWeights: program.packedBytes, readInPlace: stored - packedSources)
}

/// Where int8 activations pay on the int8 path, measured layer by layer against the fp32 path
/// (`tools/benchmarks/compare_layers.sh`, 2026-12-03): elsewhere a convolution runs `conv2dF32` on its int8
/// weights, dequantised once at load. Both rules look at one image, so the choice (and every image's result)
/// does not depend on the batch.
public enum Q8Policy {
    /// conv_in (3 channels) took 1.65–1.98× the fp32 time at 32×32: quantising a pixel costs the same for 3
    /// values as for 64, and there are only 27 multiply-adds per output channel to save.
    public static let minimumInputChannels = 8
    /// 1×1 convolutions and attention projections over 8×8 and 4×4 images took 1.2–1.9× the fp32 time: the
    /// quantise pass and two fork/joins outweigh the products, and no 3×3 taps reuse the quantised input.
    public static let minimumPointwisePositions = 256

    public static func pays(_ s: Conv2DShape) -> Bool {
        conv2dQ8Supports(s) && s.inChannels >= minimumInputChannels
            && (s.kernel > 1 || s.outHeight * s.outWidth >= minimumPointwisePositions)
    }
}

/// Skip connections of at least this many values per image wait in binary16 (see `lower`): 2²⁰ (4 MiB in fp32)
/// takes those of 128×128 images and larger, where the memory is (at 256×256 they save 32 MiB), and leaves the
/// 32×32 checkpoints, whose whole arena is a few MB, their fp32 skips and so their results. Per image, so the
/// choice, and every image's result, does not depend on the batch.
public let halfSkipMinimumValuesPerImage = 1 << 20

/// Lowers `graph` for `backend`: the fast backend first folds upsampling into convolutions; then each node
/// is bound to the model file's weights (by its checkpoint names) and resolved to one kernel, with the
/// weights that kernel wants packed at load and the scratch it needs; last, buffer lifetimes give the
/// memory plan. A missing or misshapen weight is an error naming it.
///
/// A convolution runs on the first of these that applies: `conv2dQ8` (int8 path, where `Q8Policy` says it pays); `conv2dWinogradF32` with the
/// tile `WinogradTile.preferred` picks for its shape, when `winograd`; `conv2dF32`.
///
/// On the int8 path five rewrites keep fewer full-size activations alive (at 256×256 each is 32 MiB per 128
/// channels): a GroupNorm (+ SiLU) whose only reader is an int8 convolution is folded into it (`inputNorm`);
/// a concatenation whose readers are all int8 convolutions (or norms folded into them) is not written, they
/// read its two halves (`concatenated`);
/// a 1×1 shortcut convolution runs before the first other reader of its input, so that input can die at the
/// ResNet block's first convolution; and an int8 convolution writes its output over its residual or its input
/// when that tensor dies there (`conv2dQ8` quantises the input whole first, and reads each residual value
/// just before writing the output over it). A large skip connection waiting for its up block (the second half of
/// such a concatenation; `halfSkipMinimumValuesPerImage`) is kept in binary16 meanwhile (`convertF32ToF16`,
/// restored just before its readers): half the bytes, and a rounding (≤ 2⁻¹¹ relative) well under the per-pixel
/// int8 step its readers quantise it to.
@_spi(Testing) public func lower(_ source: Graph, model: some WeightSource, backend: UNetBackend, threads: Threads, int8: Bool,
                                 winograd: Bool = true, halfSkipMinimumValues: Int = halfSkipMinimumValuesPerImage) throws -> Program {
    let graph = backend == .fast ? source.foldingUpsampleIntoConvolutions() : source
    let batch = graph.batch
    let fast = backend == .fast
    var bufferFloats = graph.values.map(\.floats)
    func temporary(_ floats: Int) -> BufferID {
        bufferFloats.append(floats)
        return BufferID(index: bufferFloats.count - 1)
    }
    func buffer(_ v: ValueID) -> BufferID { BufferID(index: v.index) }
    func matrix(_ p: ParameterID) throws -> WeightMatrix {
        let parameter = graph.parameters[p.index]
        return try model.matrix(parameter.name, shape: parameter.shape)
    }
    func vector(_ p: ParameterID) throws -> UnsafePointer<Float> {
        let parameter = graph.parameters[p.index]
        return try model.floats(parameter.name, shape: parameter.shape, why: "biases and norm parameters must be fp32")
    }
    var packed: [PackedWeight] = []
    var packedBytes = 0
    func pack(_ weight: WeightMatrix, _ layout: PackedWeight.Layout) -> PackedWeight {
        let p = PackedWeight(weight: weight, layout: layout, offset: packedBytes)
        packed.append(p)
        packedBytes += p.bytes
        return p
    }
    /// fp32 panels packed at load for fp32 and fp16 weights; int8 weights only on the int8 path, for the
    /// convolutions it leaves to fp32 (`Q8Policy`: conv_in, 1×1 layers of small images).
    func packsAtLoad(_ weight: WeightMatrix) -> Bool { weight.type != .q8PerChannel || int8 }
    func f32Panels(_ weight: WeightMatrix) -> PackedWeight? {
        packsAtLoad(weight) ? pack(weight, .f32Panels) : nil
    }

    // The int8 path's rewrites (see above): which GroupNorm outputs fold into their convolution, and the order.
    var readers = [Int](repeating: 0, count: graph.values.count)
    for node in graph.nodes { for v in node.op.inputs { readers[v.index] += 1 } }
    for v in graph.outputs.map(\.value) + graph.stages.map(\.value) { readers[v.index] += 1 }   // observed: stays written
    func runsQ8(_ c: GraphOp.Conv2D) throws -> Bool {
        guard fast, int8, Q8Policy.pays(c.shape) else { return false }
        return try matrix(c.weight).type == .q8PerChannel
    }
    var norms: [Int: GraphOp.GroupNorm] = [:]   // GroupNorm outputs folded into their reader, by value index
    var virtualConcatenations: [Int: (a: ValueID, b: ValueID, channelsB: Int)] = [:]   // concatenations read in place, by value
    var order = Array(graph.nodes.indices)
    if fast && int8 {
        var producers: [Int: GraphOp.GroupNorm] = [:]
        for node in graph.nodes { if case let .groupNorm(g) = node.op { producers[g.output.index] = g } }
        for node in graph.nodes {
            if case let .conv2d(c) = node.op, !c.upsampledInput, let g = producers[c.input.index], readers[c.input.index] == 1, try runsQ8(c) {
                norms[c.input.index] = g
            }
        }
        var concatenations: [Int: (a: ValueID, b: ValueID, channelsB: Int)] = [:]
        for node in graph.nodes { if case let .concat(a, _, b, cb, _, o) = node.op { concatenations[o.index] = (a, b, cb) } }
        for (value, parts) in concatenations {
            // Every reader must be an int8 convolution taking it as its input, or a norm folded into one.
            var ok = 0
            for node in graph.nodes {
                switch node.op {
                case let .conv2d(c) where c.input.index == value && !c.upsampledInput && c.residual?.index != value && c.channelBias?.index != value:
                    if try runsQ8(c) { ok += 1 }
                case let .groupNorm(g) where g.input.index == value && norms[g.output.index] != nil:
                    ok += 1
                default: break
                }
            }
            if ok == readers[value] { virtualConcatenations[value] = parts }
        }
        for (i, node) in graph.nodes.enumerated() {
            guard case let .conv2d(c) = node.op, c.shape.kernel == 1, c.channelBias == nil, c.residual == nil, try runsQ8(c),
                  let firstReader = graph.nodes.firstIndex(where: { $0.op.inputs.contains(c.input) }), firstReader < i else { continue }
            let at = order.firstIndex(of: firstReader)!
            order.remove(at: order.firstIndex(of: i)!)
            order.insert(i, at: at)
        }
    }

    var steps: [Step] = [], scratch: [Int] = [], names: [String] = [], kinds: [String] = [], macs: [Int] = []
    for index in order {
        let node = graph.nodes[index]
        let stepsBefore = steps.count
        var kind = node.op.kind
        defer {
            if steps.count > stepsBefore {
                names.append(node.name)
                kinds.append(kind)
                macs.append(Int(node.op.multiplyAccumulates(batch: batch)))
            }
        }
        switch node.op {
        case let .timestepEmbedding(t, o, dimension, flip, shift):
            steps.append(.timestepEmbedding(timesteps: buffer(t), output: buffer(o), dimension: dimension, flipSinToCos: flip, freqShift: shift))
            scratch.append(0)
        case let .linear(l):
            let weight = try matrix(l.weight)
            steps.append(.linear(input: buffer(l.input), rows: l.rows, weight: weight, bias: try vector(l.bias), output: buffer(l.output),
                                 applySiLU: l.applySiLU, fast: fast))
            scratch.append(4 * weight.columns)   // one dequantised weight row
        case let .affine(i, o, scale, shift, count):
            steps.append(.affine(input: buffer(i), output: buffer(o), scale: scale, shift: shift, count: count))
            scratch.append(0)
        case let .silu(i, o, count):
            steps.append(.silu(input: buffer(i), output: buffer(o), count: count))
            scratch.append(0)
        case let .groupNorm(g):
            if norms[g.output.index] != nil { continue }   // its convolution applies it
            steps.append(.groupNorm(input: buffer(g.input), output: buffer(g.output), channels: g.channels, pixels: g.pixels, groups: g.groups,
                                    eps: g.eps, gamma: try vector(g.gamma), beta: try vector(g.beta), applySiLU: g.applySiLU, fast: fast))
            scratch.append(0)
        case let .conv2d(c):
            let weight = try matrix(c.weight)
            let kernel: ConvKernel
            let bytes: Int
            let norm = norms[c.input.index]
            var input = buffer(c.input)
            var inputNorm: Q8InputNorm? = nil
            if let norm {
                input = buffer(norm.input)
                inputNorm = Q8InputNorm(groups: norm.groups, eps: norm.eps, gamma: try vector(norm.gamma), beta: try vector(norm.beta),
                                        applySiLU: norm.applySiLU)
                kind = "\(norm.applySiLU ? "group_norm_silu" : "group_norm")+\(kind)"
            }
            var concatenated: (buffer: BufferID, channels: Int)? = nil
            if let parts = virtualConcatenations[input.index] {
                input = buffer(parts.a)
                concatenated = (buffer(parts.b), parts.channelsB)
                kind = "concat+\(kind)"
            }
            if !fast {
                precondition(!c.upsampledInput, "the reference backend materialises upsampling")
                kernel = .reference
                bytes = 4 * weight.columns
            } else if int8, weight.type == .q8PerChannel, Q8Policy.pays(c.shape) {
                kernel = .q8(packed: pack(weight, .q8(channels: c.shape.inChannels, kernel: c.shape.kernel)))
                bytes = conv2dQ8ScratchBytes(c.shape, threads: threads, inputNorm: inputNorm != nil)
            } else if winograd, let tile = WinogradTile.preferred(for: c.shape, weightsTransformedPerCall: !packsAtLoad(weight)) {
                let transformed = packsAtLoad(weight) ? pack(weight, .winograd(tile, channels: c.shape.inChannels)) : nil
                kernel = .winograd(tile, transformed: transformed)
                bytes = conv2dWinogradF32ScratchBytes(tile, c.shape, threads: threads, pretransformed: transformed != nil)
            } else {
                let panels = f32Panels(weight)
                kernel = .f32(packed: panels)
                bytes = conv2dF32ScratchBytes(c.shape, threads: threads, packedWeight: panels != nil)
            }
            precondition(inputNorm == nil && concatenated == nil || { if case .q8 = kernel { true } else { false } }(),
                         "a folded norm or concatenation needs conv2dQ8")
            steps.append(.conv2d(ConvStep(shape: c.shape, upsampledInput: c.upsampledInput, input: input, output: buffer(c.output),
                                          concatenated: concatenated?.buffer, concatenatedChannels: concatenated?.channels ?? 0,
                                          weight: weight, bias: try c.bias.map(vector), channelBias: c.channelBias.map(buffer),
                                          residual: c.residual.map(buffer), scale: c.scale, inputNorm: inputNorm, kernel: kernel)))
            scratch.append(bytes)
        case let .concat(a, ca, b, cb, pixels, o):
            if virtualConcatenations[o.index] != nil { continue }   // its readers read a and b
            steps.append(.concat(a: buffer(a), channelsA: ca, b: buffer(b), channelsB: cb, pixels: pixels, output: buffer(o)))
            scratch.append(0)
        case let .upsampleNearest2x(i, planes, h, w, o):
            steps.append(.upsampleNearest2x(input: buffer(i), planes: planes, height: h, width: w, output: buffer(o)))
            scratch.append(0)
        case let .attention(a):
            let (wq, wk, wv, wo) = (try matrix(a.toQ), try matrix(a.toK), try matrix(a.toV), try matrix(a.toOut))
            let image = a.channels * a.tokens
            let (normed, q, k, v, attended) = (temporary(batch * image), temporary(batch * image), temporary(batch * image),
                                               temporary(batch * image), temporary(batch * image))
            let kernel: AttentionStep.Kernel
            let bytes: Int
            let projection = a.projection(batch: 1)
            if !fast {
                kernel = .reference(tokensBuffer: temporary(image), projected: temporary(image), scores: temporary(a.tokens))
                bytes = 4 * a.channels
            } else if int8, [wq, wk, wv, wo].allSatisfy({ $0.type == .q8PerChannel }), Q8Policy.pays(projection) {
                let layout = PackedWeight.Layout.q8(channels: a.channels, kernel: 1)
                kernel = .fast(ProjectionKernels(q: .q8(packed: pack(wq, layout)), k: .q8(packed: pack(wk, layout)),
                                                 v: .q8(packed: pack(wv, layout)), out: .q8(packed: pack(wo, layout))))
                bytes = max(conv2dQ8ScratchBytes(projection, threads: threads), attentionF32ScratchBytes(tokens: a.tokens, threads: threads))
            } else {
                let (pq, pk, pv, po) = (f32Panels(wq), f32Panels(wk), f32Panels(wv), f32Panels(wo))
                kernel = .fast(ProjectionKernels(q: .f32(weight: wq, packed: pq), k: .f32(weight: wk, packed: pk),
                                                 v: .f32(weight: wv, packed: pv), out: .f32(weight: wo, packed: po)))
                bytes = max(conv2dF32ScratchBytes(projection, threads: threads, packedWeight: pq != nil),
                            attentionF32ScratchBytes(tokens: a.tokens, threads: threads))
            }
            steps.append(.attention(AttentionStep(
                input: buffer(a.input), output: buffer(a.output), side: a.side, channels: a.channels, tokens: a.tokens, heads: a.heads,
                groups: a.groups, eps: a.eps, rescale: a.rescale, normGamma: try vector(a.normGamma), normBeta: try vector(a.normBeta),
                toQ: wq, toK: wk, toV: wv, toOut: wo, biasQ: try vector(a.biasQ), biasK: try vector(a.biasK), biasV: try vector(a.biasV),
                biasOut: try vector(a.biasOut), normed: normed, q: q, k: k, v: v, attended: attended, kernel: kernel)))
            scratch.append(bytes)
        case let .tokenEmbedding(e):
            let (table, positions) = (try matrix(e.table), try matrix(e.positions))
            steps.append(.tokenEmbedding(ids: buffer(e.ids), output: buffer(e.output), tokens: e.tokens, table: table, positions: positions))
            scratch.append(4 * e.hidden)   // one dequantised row
        case let .layerNorm(l):
            steps.append(.layerNorm(input: buffer(l.input), output: buffer(l.output), features: l.features, tokens: l.tokens, eps: l.eps,
                                    gamma: try vector(l.gamma), beta: try vector(l.beta), fast: fast))
            scratch.append(0)
        case let .activation(f, i, o, count):
            steps.append(.activation(f, input: buffer(i), output: buffer(o), count: count, fast: fast))
            scratch.append(0)
        case let .geglu(i, o, features, tokens):
            steps.append(.geglu(input: buffer(i), output: buffer(o), features: features, tokens: tokens, fast: fast))
            scratch.append(0)
        case let .multiHeadAttention(a):
            let kernel: MultiHeadAttentionStep.Kernel
            if fast {
                kernel = .fast
                scratch.append(attentionF32ScratchBytes(tokens: a.keys, threads: threads))
            } else {
                let (queries, keys) = (a.queries * a.channels, a.keys * a.channels)
                kernel = .reference(q: temporary(queries), k: temporary(keys), v: temporary(keys), output: temporary(queries),
                                    scores: temporary(a.keys))
                scratch.append(0)
            }
            steps.append(.multiHeadAttention(MultiHeadAttentionStep(
                q: buffer(a.q), k: buffer(a.k), v: buffer(a.v), output: buffer(a.output), channels: a.channels, heads: a.heads,
                queries: a.queries, keys: a.keys, causal: a.causal, kernel: kernel)))
        case let .vectorQuantize(i, o, codebook, entries, dimension, pixels):
            let table = try model.floats(graph.parameters[codebook.index].name, shape: graph.parameters[codebook.index].shape,
                                         why: "a VQ codebook must be stored fp32")
            steps.append(.vectorQuantize(input: buffer(i), output: buffer(o), codebook: table, entries: entries, dimension: dimension, pixels: pixels))
            scratch.append(0)
        }
    }

    // Skips in binary16 while they wait (int8 path): a virtual concatenation's second half whose other readers
    // are done long before the convolutions that read it.
    if fast && int8 {
        var consumers: [Int: [Int]] = [:]   // buffer index → the convolution steps reading it as `concatenated`
        for (i, step) in steps.enumerated() { if case let .conv2d(c) = step, let b = c.concatenated { consumers[b.index, default: []].append(i) } }
        var halfAfter: [Int: [(input: BufferID, half: BufferID, count: Int)]] = [:]
        var restoreBefore: [Int: [(half: BufferID, output: BufferID, count: Int)]] = [:]
        for (b, readers) in consumers.sorted(by: { $0.key < $1.key }) {
            let others = steps.indices.filter { !readers.contains($0) && steps[$0].buffers.contains(BufferID(index: b)) }
            let count = bufferFloats[b]
            guard count / batch >= halfSkipMinimumValues, let lastOther = others.max(), readers.min()! > lastOther + 2 else { continue }
            let half = temporary((count + 1) / 2), restored = temporary(count)
            halfAfter[lastOther, default: []].append((BufferID(index: b), half, count))
            restoreBefore[readers.min()!, default: []].append((half, restored, count))
            for r in readers {
                guard case var .conv2d(c) = steps[r] else { continue }
                c.concatenated = restored
                steps[r] = .conv2d(c)
            }
        }
        var (s2, sc2, n2, k2, m2): ([Step], [Int], [String], [String], [Int]) = ([], [], [], [], [])
        for i in steps.indices {
            for r in restoreBefore[i] ?? [] {
                s2.append(.fromHalf(input: r.half, output: r.output, count: r.count)); sc2.append(0)
                n2.append("\(names[i]) (skip from fp16)"); k2.append("from_fp16"); m2.append(0)
            }
            s2.append(steps[i]); sc2.append(scratch[i]); n2.append(names[i]); k2.append(kinds[i]); m2.append(macs[i])
            for h in halfAfter[i] ?? [] {
                s2.append(.toHalf(input: h.input, output: h.half, count: h.count)); sc2.append(0)
                n2.append("\(names[i]) (skip to fp16)"); k2.append("to_fp16"); m2.append(0)
            }
        }
        (steps, scratch, names, kinds, macs) = (s2, sc2, n2, k2, m2)
    }

    // Lifetimes: from the first step that touches a buffer to the last. The inputs are written before the
    // program starts and the outputs read after it ends, so they span everything: no step may reuse an input's
    // memory, because a caller may write an input once for many runs (a text-to-image UNet's context is written
    // once per generation). A buffer no step touches takes no memory.
    let n = bufferFloats.count
    var first = [Int](repeating: Int.max, count: n), last = [Int](repeating: -1, count: n)
    for (i, step) in steps.enumerated() {
        for b in step.buffers { first[b.index] = min(first[b.index], i); last[b.index] = max(last[b.index], i) }
    }
    for (_, v) in graph.inputs { first[v.index] = 0; last[v.index] = steps.count }
    for (_, v) in graph.outputs { first[v.index] = min(first[v.index], steps.count); last[v.index] = steps.count }
    for i in 0 ..< n where first[i] == Int.max { bufferFloats[i] = 0 }

    // Slots: an int8 convolution's output goes over its residual, or else an input (either half of a virtual
    // concatenation), when that tensor dies at this step and is at least as large — for an input, image by image
    // (conv2dQ8's aliasing contract: each image is quantised before its outputs are written).
    var slots = Array(0 ..< n)
    for (i, step) in steps.enumerated() {
        guard case let .conv2d(c) = step, case .q8 = c.kernel, first[c.output.index] == i else { continue }
        let out = c.output.index
        let outputPerImage = c.shape.outputCount / batch
        let candidates = [c.residual].compactMap { $0 }.filter { bufferFloats[$0.index] >= bufferFloats[out] }
            + (c.upsampledInput ? [] : [c.input, c.concatenated].compactMap { $0 }.filter { bufferFloats[$0.index] / batch >= outputPerImage })
        let readOnce = { (b: BufferID) in [c.input, c.concatenated, c.residual, c.channelBias].filter { $0 == b }.count == 1 }
        if let dying = candidates.first(where: { last[$0.index] == i && readOnce($0) }) { slots[out] = slots[dying.index] }
    }
    var slotFloats = [Int](repeating: 0, count: n), slotFirst = [Int](repeating: Int.max, count: n), slotLast = [Int](repeating: -1, count: n)
    for i in 0 ..< n where bufferFloats[i] > 0 {
        let s = slots[i]
        slotFloats[s] = max(slotFloats[s], bufferFloats[i])
        slotFirst[s] = min(slotFirst[s], first[i])
        slotLast[s] = max(slotLast[s], last[i])
    }
    var requests = (0 ..< n).map { s -> MemoryPlan.Buffer in
        let start = slotFirst[s] == Int.max ? 0 : slotFirst[s]
        return MemoryPlan.Buffer(bytes: slotFloats[s] * 4, first: start, last: max(slotLast[s], start))
    }
    requests.append(MemoryPlan.Buffer(bytes: scratch.max() ?? 0, first: 0, last: steps.count))

    // A stage is complete after the last step that writes its value.
    var writer = [Int](repeating: -1, count: n)
    for (i, step) in steps.enumerated() { writer[step.output.index] = i }
    let stages = graph.stages.map { s in (step: writer[s.value.index], name: s.name, buffer: buffer(s.value), count: bufferFloats[s.value.index]) }

    return Program(steps: steps, names: names, kinds: kinds, multiplyAccumulates: macs, bufferFloats: bufferFloats, slots: slots,
                   plan: MemoryPlan(requests), scratchSlot: n, packed: packed, packedBytes: packedBytes, stages: stages)
}

@_spi(Testing) extension Step {
    /// Every buffer the step reads or writes, for lifetime analysis.
    public var buffers: [BufferID] {
        switch self {
        case let .timestepEmbedding(t, o, _, _, _): [t, o]
        case let .linear(i, _, _, _, o, _, _): [i, o]
        case let .silu(i, o, _): [i, o]
        case let .affine(i, o, _, _, _): [i, o]
        case let .groupNorm(i, o, _, _, _, _, _, _, _, _): [i, o]
        case let .conv2d(c): [c.input, c.output] + [c.concatenated, c.channelBias, c.residual].compactMap { $0 }
        case let .concat(a, _, b, _, _, o): [a, b, o]
        case let .upsampleNearest2x(i, _, _, _, o): [i, o]
        case let .attention(a):
            switch a.kernel {
            case let .reference(tokens, projected, scores): [a.input, a.output, a.normed, a.q, a.k, a.v, a.attended, tokens, projected, scores]
            case .fast: [a.input, a.output, a.normed, a.q, a.k, a.v, a.attended]
            }
        case let .vectorQuantize(i, o, _, _, _, _): [i, o]
        case let .tokenEmbedding(i, o, _, _, _): [i, o]
        case let .layerNorm(i, o, _, _, _, _, _, _): [i, o]
        case let .activation(_, i, o, _, _): [i, o]
        case let .geglu(i, o, _, _, _): [i, o]
        case let .multiHeadAttention(a):
            switch a.kernel {
            case let .reference(q, k, v, o, scores): [a.q, a.k, a.v, a.output, q, k, v, o, scores]
            case .fast: [a.q, a.k, a.v, a.output]
            }
        case let .toHalf(i, o, _), let .fromHalf(i, o, _): [i, o]
        }
    }

    /// The buffer the step writes.
    public var output: BufferID {
        switch self {
        case let .timestepEmbedding(_, o, _, _, _): o
        case let .linear(_, _, _, _, o, _, _): o
        case let .silu(_, o, _): o
        case let .affine(_, o, _, _, _): o
        case let .groupNorm(_, o, _, _, _, _, _, _, _, _): o
        case let .conv2d(c): c.output
        case let .concat(_, _, _, _, _, o): o
        case let .upsampleNearest2x(_, _, _, _, o): o
        case let .attention(a): a.output
        case let .vectorQuantize(_, o, _, _, _, _): o
        case let .tokenEmbedding(_, o, _, _, _): o
        case let .layerNorm(_, o, _, _, _, _, _, _): o
        case let .activation(_, _, o, _, _): o
        case let .geglu(_, o, _, _, _): o
        case let .multiHeadAttention(a): a.output
        case let .toHalf(_, o, _), let .fromHalf(_, o, _): o
        }
    }
}
