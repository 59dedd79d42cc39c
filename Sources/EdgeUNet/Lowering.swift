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
}

@_spi(Testing) public struct ConvStep {
    public var shape: Conv2DShape
    public var upsampledInput: Bool
    public var input: BufferID, output: BufferID
    public var weight: WeightMatrix
    public var bias: UnsafePointer<Float>
    public var channelBias: BufferID?, residual: BufferID?
    public var scale: Float
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
    public var plan: MemoryPlan
    /// Index into `plan.offsets` of the scratch all steps share (they run one at a time).
    public var scratchIndex: Int
    public var packed: [PackedWeight]
    public var packedBytes: Int
    /// Graph stages (name, the step after which the value is complete, the buffer).
    public var stages: [(step: Int, name: String, buffer: BufferID, count: Int)]
}

/// Whether the convolutions of `model` run with int8 activations (`conv2dQ8`) on `backend`: for int8 models
/// on the fast backend, by default only where the CPU has a dot-product instruction (VNNI, sdot) —
/// elsewhere the portable int8 kernel is slower than dequantising to fp32.
func usesInt8Activations(model: some WeightSource, backend: UNetBackend, requested: Bool?) -> Bool {
    guard backend == .fast, model.hasInt8Weights else { return false }
    return requested ?? (Q8TileKernel.dotProduct != nil)
}

/// Bytes of the arena (activations and scratch) and of the packed weights `graph` needs on `backend`, without
/// allocating either: what a network's `memory(...)` reports and the memory limit checks.
func plannedMemory(_ graph: Graph, weights: some WeightSource, backend: UNetBackend, threads: Threads,
                   int8Activations: Bool?, winograd: Bool = true) throws -> (arena: Int, packedWeights: Int) {
    let int8 = usesInt8Activations(model: weights, backend: backend, requested: int8Activations)
    let program = try lower(graph, model: weights, backend: backend, threads: threads, int8: int8, winograd: winograd)
    return (program.plan.totalBytes, program.packedBytes)
}

/// Lowers `graph` for `backend`: the fast backend first folds upsampling into convolutions; then each node
/// is bound to the model file's weights (by its checkpoint names) and resolved to one kernel, with the
/// weights that kernel wants packed at load and the scratch it needs; last, buffer lifetimes give the
/// memory plan. A missing or misshapen weight is an error naming it.
///
/// A convolution runs on the first of these that applies: `conv2dQ8` (int8 path); `conv2dWinogradF32` with the
/// tile `WinogradTile.preferred` picks for its shape, when `winograd`; `conv2dF32`.
@_spi(Testing) public func lower(_ source: Graph, model: some WeightSource, backend: UNetBackend, threads: Threads, int8: Bool,
                                 winograd: Bool = true) throws -> Program {
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
    /// fp32 panels packed at load for fp32 and fp16 weights; int8 weights only on the int8 path (for the few
    /// convolutions it leaves to fp32: the stride-2 downsamplers).
    func packsAtLoad(_ weight: WeightMatrix) -> Bool { weight.type != .q8PerChannel || int8 }
    func f32Panels(_ weight: WeightMatrix) -> PackedWeight? {
        packsAtLoad(weight) ? pack(weight, .f32Panels) : nil
    }

    var steps: [Step] = [], scratch: [Int] = []
    for node in graph.nodes {
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
            steps.append(.groupNorm(input: buffer(g.input), output: buffer(g.output), channels: g.channels, pixels: g.pixels, groups: g.groups,
                                    eps: g.eps, gamma: try vector(g.gamma), beta: try vector(g.beta), applySiLU: g.applySiLU, fast: fast))
            scratch.append(0)
        case let .conv2d(c):
            let weight = try matrix(c.weight)
            let kernel: ConvKernel
            let bytes: Int
            if !fast {
                precondition(!c.upsampledInput, "the reference backend materialises upsampling")
                kernel = .reference
                bytes = 4 * weight.columns
            } else if int8, weight.type == .q8PerChannel, conv2dQ8Supports(c.shape) {
                kernel = .q8(packed: pack(weight, .q8(channels: c.shape.inChannels, kernel: c.shape.kernel)))
                bytes = conv2dQ8ScratchBytes(c.shape, threads: threads)
            } else if winograd, let tile = WinogradTile.preferred(for: c.shape, weightsTransformedPerCall: !packsAtLoad(weight)) {
                let transformed = packsAtLoad(weight) ? pack(weight, .winograd(tile, channels: c.shape.inChannels)) : nil
                kernel = .winograd(tile, transformed: transformed)
                bytes = conv2dWinogradF32ScratchBytes(tile, c.shape, threads: threads, pretransformed: transformed != nil)
            } else {
                let panels = f32Panels(weight)
                kernel = .f32(packed: panels)
                bytes = conv2dF32ScratchBytes(c.shape, threads: threads, packedWeight: panels != nil)
            }
            steps.append(.conv2d(ConvStep(shape: c.shape, upsampledInput: c.upsampledInput, input: buffer(c.input), output: buffer(c.output),
                                          weight: weight, bias: try vector(c.bias), channelBias: c.channelBias.map(buffer),
                                          residual: c.residual.map(buffer), scale: c.scale, kernel: kernel)))
            scratch.append(bytes)
        case let .concat(a, ca, b, cb, pixels, o):
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
            } else if int8, [wq, wk, wv, wo].allSatisfy({ $0.type == .q8PerChannel }), conv2dQ8Supports(projection) {
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
        case let .vectorQuantize(i, o, codebook, entries, dimension, pixels):
            let table = try model.floats(graph.parameters[codebook.index].name, shape: graph.parameters[codebook.index].shape,
                                         why: "a VQ codebook must be stored fp32")
            steps.append(.vectorQuantize(input: buffer(i), output: buffer(o), codebook: table, entries: entries, dimension: dimension, pixels: pixels))
            scratch.append(0)
        }
    }

    // Lifetimes: from the first step that touches a buffer to the last. The inputs are written before the
    // program starts and the outputs read after it ends, so they span everything. A buffer no step touches
    // takes no memory.
    let n = bufferFloats.count
    var first = [Int](repeating: Int.max, count: n), last = [Int](repeating: -1, count: n)
    for (i, step) in steps.enumerated() {
        for b in step.buffers { first[b.index] = min(first[b.index], i); last[b.index] = max(last[b.index], i) }
    }
    for (_, v) in graph.inputs { first[v.index] = 0; last[v.index] = max(last[v.index], 0) }
    for (_, v) in graph.outputs { first[v.index] = min(first[v.index], steps.count); last[v.index] = steps.count }
    for i in 0 ..< n where first[i] == Int.max { bufferFloats[i] = 0 }
    var requests = (0 ..< n).map { i -> MemoryPlan.Buffer in
        let start = first[i] == Int.max ? 0 : first[i]
        return MemoryPlan.Buffer(bytes: bufferFloats[i] * 4, first: start, last: max(last[i], start))
    }
    requests.append(MemoryPlan.Buffer(bytes: scratch.max() ?? 0, first: 0, last: steps.count))

    // A stage is complete after the last step that writes its value.
    var writer = [Int](repeating: -1, count: n)
    for (i, step) in steps.enumerated() { writer[step.output.index] = i }
    let stages = graph.stages.map { s in (step: writer[s.value.index], name: s.name, buffer: buffer(s.value), count: bufferFloats[s.value.index]) }

    return Program(steps: steps, names: graph.nodes.map(\.name), kinds: graph.nodes.map(\.op.kind),
                   multiplyAccumulates: graph.nodes.map { Int($0.op.multiplyAccumulates(batch: batch)) },
                   bufferFloats: bufferFloats, plan: MemoryPlan(requests), scratchIndex: n, packed: packed, packedBytes: packedBytes,
                   stages: stages)
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
        case let .conv2d(c): [c.input, c.output] + [c.channelBias, c.residual].compactMap { $0 }
        case let .concat(a, _, b, _, _, o): [a, b, o]
        case let .upsampleNearest2x(i, _, _, _, o): [i, o]
        case let .attention(a):
            switch a.kernel {
            case let .reference(tokens, projected, scores): [a.input, a.output, a.normed, a.q, a.k, a.v, a.attended, tokens, projected, scores]
            case .fast: [a.input, a.output, a.normed, a.q, a.k, a.v, a.attended]
            }
        case let .vectorQuantize(i, o, _, _, _, _): [i, o]
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
        }
    }
}
