import _EdgeCore
import _EdgeQuant
import _EdgeKernels
import EdgeModelFile

/// A diffusers `UNet2DModel` ready to run: the program built from the model file's config, every
/// intermediate placed in one arena sized at load. `run()` allocates nothing.
///
/// Usage: write x_t into `sample` and t into `timesteps`, call `run()`, read ε (or v, or x₀) from `output`.
public final class UNet: @unchecked Sendable {
    public let config: UNetConfig
    public let batch: Int
    /// Bytes of the arena holding every activation and scratch buffer.
    public let arenaBytes: Int
    /// [N, in_channels, S, S]
    public let sample: UnsafeMutableBufferPointer<Float>
    /// [N]
    public let timesteps: UnsafeMutableBufferPointer<Float>
    /// [N, out_channels, S, S]
    public let output: UnsafeMutableBufferPointer<Float>

    private let model: ModelFile  // keeps the mapping (and so every weight pointer in `ops`) alive
    private let arena: Arena
    private let ops: [Op]
    private let pointers: [UnsafeMutablePointer<Float>]
    /// Shared by the ops, which run one at a time.
    private let scratch: UnsafeMutableRawPointer
    private var rowScratch: UnsafeMutablePointer<Float> { scratch.assumingMemoryBound(to: Float.self) }
    private let labels: [(op: Int, name: String, buffer: BufferID, count: Int)]
    private let opNames: [String]

    /// The program and memory plan for `batch` images, computed without allocating the arena.
    struct Program {
        var builder: UNetBuilder
        var io: (sample: BufferID, timesteps: BufferID, output: BufferID)
        var plan: MemoryPlan
        /// Index into `plan.offsets` of the shared weight-row scratch.
        var scratchIndex: Int
    }

    static func program(model: ModelFile, batch: Int, backend: UNetBackend, threads: Threads, int8: Bool) throws -> Program {
        guard batch >= 1 else { throw EdgeError.usage("batch size must be at least 1, got \(batch)") }
        var builder = UNetBuilder(model: model, batch: batch, foldUpsampling: backend == .fast)
        let io = try builder.build()
        let ops = builder.ops
        // Lifetimes: from the first op that touches a buffer to the last. The inputs are written before
        // the program starts and the output read after it ends, so they span everything.
        let n = builder.bufferFloats.count
        var first = [Int](repeating: Int.max, count: n), last = [Int](repeating: -1, count: n)
        for (i, op) in ops.enumerated() {
            for b in op.buffers { first[b.index] = min(first[b.index], i); last[b.index] = max(last[b.index], i) }
        }
        for b in [io.sample, io.timesteps] { first[b.index] = 0 }
        last[io.output.index] = ops.count
        var requests = (0 ..< n).map { i -> MemoryPlan.Buffer in
            let start = first[i] == Int.max ? 0 : first[i]
            return MemoryPlan.Buffer(bytes: builder.bufferFloats[i] * 4, first: start, last: max(last[i], start))
        }
        let scratchBytes = ops.map { $0.scratchBytes(backend, threads: threads, int8: int8) }.max() ?? 0
        requests.append(MemoryPlan.Buffer(bytes: scratchBytes, first: 0, last: ops.count))
        return Program(builder: builder, io: io, plan: MemoryPlan(requests), scratchIndex: n)
    }

    /// Bytes of arena a UNet of `model` needs for `batch` images, without allocating it.
    public static func arenaBytes(model: ModelFile, batch: Int, backend: UNetBackend = .fast, threads: Threads = Threads(),
                                  int8Activations: Bool? = nil) throws -> Int {
        let int8 = usesInt8Activations(model: model, backend: backend, requested: int8Activations)
        let program = try program(model: model, batch: batch, backend: backend, threads: threads, int8: int8)
        return program.plan.totalBytes + packedWeightBytes(program.builder.ops, backend: backend, int8: int8)
    }

    /// Whether convolutions run with int8 activations (`conv2dQ8`): for int8 models on the fast backend, by
    /// default only where the CPU has a dot-product instruction (VNNI, sdot) — elsewhere the portable int8
    /// kernel is slower than dequantising to fp32.
    static func usesInt8Activations(model: ModelFile, backend: UNetBackend, requested: Bool?) -> Bool {
        guard backend == .fast, model.entries.contains(where: { $0.type == .q8PerChannel }) else { return false }
        return requested ?? (Q8TileKernel.dotProduct != nil)
    }

    /// Bytes of the weights packed at load: int8 panels for the convolutions on the int8 path, fp32 panels
    /// (`packWeightsF32`) for fp32 and fp16 weights on the fast backend.
    static func packedWeightBytes(_ ops: [Op], backend: UNetBackend, int8: Bool) -> Int {
        guard backend == .fast else { return 0 }
        return ops.reduce(0) { total, op in
            if int8, !op.int8Convolutions.isEmpty {
                return total + op.int8Convolutions.reduce(0) { $0 + Q8ConvWeights.byteCount(rows: $1.weight.rows, channels: $1.shape.inChannels, kernel: $1.shape.kernel) }
            }
            return total + op.prepackableConvolutions(includeInt8: int8).reduce(0) { $0 + packedWeightsF32Bytes(rows: $1.rows, columns: $1.columns) }
        }
    }

    /// Threads the kernels split work over.
    public let threads: Threads

    public let backend: UNetBackend

    /// Whether convolutions quantise their activations to int8 (see `usesInt8Activations`).
    public let int8Activations: Bool
    /// "int8 (avx512vnni)", "int8 (neondot)", "int8 (simd)" or "fp32": what the convolutions compute with.
    public var activationDescription: String {
        int8Activations ? "int8 (\((Q8TileKernel.dotProduct ?? .simd).rawValue))" : "fp32"
    }

    /// Weights packed once here, by op index: one per convolution of the op (a conv: 1; an attention block:
    /// Q, K, V, out) — int8 panels on the int8 path, fp32 panels for fp32/fp16 weights — or none (the kernels
    /// then pack per call: int8 weights with fp32 activations, which stay int8 in memory).
    private let packedWeights: [[Q8ConvWeights]]
    private let packedF32: [[UnsafePointer<Float>]]
    private let packedMemory: UnsafeMutableRawPointer?
    /// Bytes of `packedMemory`.
    public let packedWeightBytes: Int

    /// - int8Activations: nil picks the default (`usesInt8Activations`); true forces the int8 path for an int8
    ///   model (with the portable kernel where no dot-product instruction exists), false keeps fp32 activations.
    public init(model: ModelFile, batch: Int, threads: Threads = Threads(), backend: UNetBackend = .fast, int8Activations: Bool? = nil) throws {
        self.threads = threads
        self.backend = backend
        let int8 = Self.usesInt8Activations(model: model, backend: backend, requested: int8Activations)
        self.int8Activations = int8
        let program = try Self.program(model: model, batch: batch, backend: backend, threads: threads, int8: int8)
        let builder = program.builder, io = program.io, plan = program.plan
        self.model = model
        self.config = model.unet
        self.batch = batch
        self.ops = builder.ops
        self.labels = builder.labels
        self.opNames = builder.opNames
        let arena = Arena(byteCount: plan.totalBytes)
        self.arena = arena
        arenaBytes = plan.totalBytes
        pointers = (0 ..< builder.bufferFloats.count).map { arena.floats(at: plan.offsets[$0]) }
        scratch = arena.base + plan.offsets[program.scratchIndex]
        sample = UnsafeMutableBufferPointer(start: pointers[io.sample.index], count: builder.bufferFloats[io.sample.index])
        timesteps = UnsafeMutableBufferPointer(start: pointers[io.timesteps.index], count: batch)
        output = UnsafeMutableBufferPointer(start: pointers[io.output.index], count: builder.bufferFloats[io.output.index])
        // Pack every eligible weight once, then let the mapped originals leave resident memory.
        let packedBytes = Self.packedWeightBytes(builder.ops, backend: backend, int8: int8)
        packedWeightBytes = packedBytes
        let memory = packedBytes > 0 ? UnsafeMutableRawPointer.allocate(byteCount: packedBytes, alignment: 64) : nil
        packedMemory = memory
        var packed: [[Q8ConvWeights]] = [], packedF32: [[UnsafePointer<Float>]] = []
        var at = 0
        for op in builder.ops {
            guard backend == .fast else { packed.append([]); packedF32.append([]); continue }
            if int8, !op.int8Convolutions.isEmpty {
                packed.append(op.int8Convolutions.map { conv in
                    let w = Q8ConvWeights(packing: conv.weight, channels: conv.shape.inChannels, kernel: conv.shape.kernel, into: memory! + at)
                    at += Q8ConvWeights.byteCount(rows: conv.weight.rows, channels: conv.shape.inChannels, kernel: conv.shape.kernel)
                    model.dropResidentPages(of: conv.weight)
                    return w
                })
                packedF32.append([])
            } else {
                packed.append([])
                packedF32.append(op.prepackableConvolutions(includeInt8: int8).map { weight in
                    let floats = (memory! + at).bindMemory(to: Float.self, capacity: packedWeightsF32Count(rows: weight.rows, columns: weight.columns))
                    packWeightsF32(weight, into: floats, threads: threads)
                    at += packedWeightsF32Bytes(rows: weight.rows, columns: weight.columns)
                    model.dropResidentPages(of: weight)
                    return UnsafePointer(floats)
                })
            }
        }
        precondition(at == packedBytes)
        packedWeights = packed
        self.packedF32 = packedF32
    }

    deinit { packedMemory?.deallocate() }

    /// Multiply-accumulates of one `run()` (all images of the batch).
    public var multiplyAccumulates: Int { config.multiplyAccumulates() * batch }

    /// Evaluates the UNet on `sample` and `timesteps`, writing `output`.
    /// - observe: called after named stages (`time_embedding`, `conv_in`, `down_blocks.i`, `mid_block`,
    ///   `up_blocks.i`) with their output, for debugging against diffusers' intermediates.
    public func run(observe: ((_ name: String, _ values: UnsafeBufferPointer<Float>) -> Void)? = nil) {
        var nextLabel = 0
        for index in ops.indices {
            execute(index)
            if let observe {
                while nextLabel < labels.count && labels[nextLabel].op == index {
                    let l = labels[nextLabel]
                    observe(l.name, UnsafeBufferPointer(start: pointers[l.buffer.index], count: l.count))
                    nextLabel += 1
                }
            }
        }
    }

    /// One step of the program as `bench --json` reports it: the checkpoint's module name, what kind of
    /// op, and its multiply-accumulates for the whole batch.
    public struct Layer: Sendable {
        public var name: String
        public var kind: String
        public var multiplyAccumulates: Int
    }

    /// The program's steps, in execution order (parallel to `runTimed`'s seconds).
    public var layers: [Layer] {
        zip(ops, opNames).map { op, name in Layer(name: name, kind: op.kind, multiplyAccumulates: op.multiplyAccumulates(batch: batch)) }
    }

    /// `run()` that adds each step's wall time to `seconds[i]` (`layers.count` slots), for per-layer profiles.
    public func runTimed(addingSecondsTo seconds: UnsafeMutableBufferPointer<Double>) {
        precondition(seconds.count == ops.count, "runTimed needs one slot per layer (\(ops.count)), got \(seconds.count)")
        var t0 = monotonicSeconds()
        for index in ops.indices {
            execute(index)
            let t1 = monotonicSeconds()
            seconds[index] += t1 - t0
            t0 = t1
        }
    }

    @inline(__always) private func p(_ b: BufferID) -> UnsafeMutablePointer<Float> { pointers[b.index] }

    private func execute(_ index: Int) {
        switch ops[index] {
        case let .timestepEmbedding(t, o, dimension, flip, shift):
            timestepEmbeddingRef(timesteps: p(t), batch: batch, dimension: dimension, flipSinToCos: flip, freqShift: shift, into: p(o))
        case let .linear(i, rows, w, b, o, applySiLU):
            // Linear layers act on the time embedding only: a few rows, negligible next to the convolutions.
            switch backend {
            case .reference: linearRef(x: p(i), rows: rows, weight: w, bias: b, output: p(o), rowScratch: rowScratch)
            case .fast: linearF32(x: p(i), rows: rows, weight: w, bias: b, output: p(o), rowScratch: rowScratch)
            }
            if applySiLU { siluRef(p(o), count: rows * w.rows, into: p(o)) }
        case let .silu(i, o, count):
            siluRef(p(i), count: count, into: p(o))
        case let .affine(i, o, scale, shift, count):
            affineRef(p(i), scale: scale, shift: shift, count: count, into: p(o))
        case let .groupNorm(i, o, channels, pixels, groups, eps, gamma, beta, applySiLU):
            switch backend {
            case .reference:
                groupNormRef(input: p(i), output: p(o), batch: batch, channels: channels, pixels: pixels, groups: groups, eps: eps,
                             gamma: gamma, beta: beta, applySiLU: applySiLU)
            case .fast:
                groupNormF32(input: p(i), output: p(o), batch: batch, channels: channels, pixels: pixels, groups: groups, eps: eps,
                             gamma: gamma, beta: beta, applySiLU: applySiLU, threads: threads)
            }
        case let .conv2d(c):
            switch backend {
            case .reference: convReference(c)
            case .fast where !packedWeights[index].isEmpty:
                conv2dQ8(c.shape, upsampledInput: c.upsampledInput, input: p(c.input), weights: packedWeights[index][0], bias: c.bias,
                         output: p(c.output), residual: c.residual.map { UnsafePointer(p($0)) }, scale: c.scale,
                         channelBias: c.channelBias.map { UnsafePointer(p($0)) }, scratch: scratch, threads: threads)
            case .fast:
                conv2dF32(c.shape, upsampledInput: c.upsampledInput, input: p(c.input), weight: c.weight, packedWeight: packedF32[index].first,
                          bias: c.bias, output: p(c.output),
                          residual: c.residual.map { UnsafePointer(p($0)) }, scale: c.scale,
                          channelBias: c.channelBias.map { UnsafePointer(p($0)) }, scratch: scratch, threads: threads)
            }
        case let .upsampleNearest2x(i, planes, h, w, o):
            upsampleNearest2xRef(p(i), planes: planes, height: h, width: w, into: p(o))
        case let .concat(a, ca, b, cb, pixels, o):
            concatChannelsRef(p(a), channelsA: ca, p(b), channelsB: cb, batch: batch, pixels: pixels, into: p(o))
        case let .attention(a):
            switch backend {
            case .reference: attentionReference(a)
            case .fast: attentionFast(a, packed: packedWeights[index], packedF32: packedF32[index])
            }
        }
    }

    /// A fused convolution composed from the reference kernels, one effect at a time.
    private func convReference(_ c: ConvOp) {
        precondition(!c.upsampledInput, "the reference backend materialises upsampling")
        let s = c.shape
        conv2dRef(s, input: p(c.input), weight: c.weight, bias: c.bias, output: p(c.output), rowScratch: rowScratch)
        let pixels = s.outHeight * s.outWidth
        if let v = c.channelBias { addChannelVectorRef(p(c.output), batch: batch, channels: s.outChannels, pixels: pixels, vector: p(v)) }
        if let r = c.residual {
            addScaledRef(p(c.output), p(r), scale: c.scale, count: s.outputCount, into: p(c.output))
        } else if c.scale != 1 {
            affineRef(p(c.output), scale: c.scale, shift: 0, count: s.outputCount, into: p(c.output))
        }
    }

    /// Token-major reference: transpose each image to [T, C], project, attend, project, transpose back.
    private func attentionReference(_ a: AttentionOp) {
        let (c, t) = (a.channels, a.tokens)
        groupNormRef(input: p(a.input), output: p(a.normed), batch: batch, channels: c, pixels: t, groups: a.groups, eps: a.eps,
                     gamma: a.normGamma, beta: a.normBeta, applySiLU: false)
        for n in 0 ..< batch {
            let image = n * c * t
            transposeRef(p(a.normed) + image, rows: c, columns: t, into: p(a.tokensBuffer))          // [T, C]
            linearRef(x: p(a.tokensBuffer), rows: t, weight: a.toQ, bias: a.biasQ, output: p(a.q), rowScratch: rowScratch)
            linearRef(x: p(a.tokensBuffer), rows: t, weight: a.toK, bias: a.biasK, output: p(a.k), rowScratch: rowScratch)
            linearRef(x: p(a.tokensBuffer), rows: t, weight: a.toV, bias: a.biasV, output: p(a.v), rowScratch: rowScratch)
            attentionRef(q: p(a.q), k: p(a.k), v: p(a.v), tokens: t, channels: c, heads: a.heads, output: p(a.attended), scores: p(a.scores))
            linearRef(x: p(a.attended), rows: t, weight: a.toOut, bias: a.biasOut, output: p(a.projected), rowScratch: rowScratch)
            transposeRef(p(a.projected), rows: t, columns: c, into: p(a.normed) + image)           // back to [C, T]
        }
        // (x + attention) / rescale
        addScaledRef(p(a.input), p(a.normed), scale: 1 / a.rescale, count: batch * c * t, into: p(a.output))
    }

    /// Channel-major: the projections are 1×1 convolutions over [N, C, T]; the heads' softmax(Q_hᵀ·K_h / √d)
    /// and its product with V_h are one fused kernel; no transposes or score matrices are materialised.
    private func attentionFast(_ a: AttentionOp, packed: [Q8ConvWeights], packedF32: [UnsafePointer<Float>]) {
        let f32 = packedF32.count == 4 ? packedF32 : nil
        let (c, t) = (a.channels, a.tokens)
        let projection = a.projection(batch: batch)
        groupNormF32(input: p(a.input), output: p(a.normed), batch: batch, channels: c, pixels: t, groups: a.groups, eps: a.eps,
                     gamma: a.normGamma, beta: a.normBeta, applySiLU: false, threads: threads)
        project(0, packed, f32, projection, input: a.normed, weight: a.toQ, bias: a.biasQ, output: a.q)
        project(1, packed, f32, projection, input: a.normed, weight: a.toK, bias: a.biasK, output: a.k)
        project(2, packed, f32, projection, input: a.normed, weight: a.toV, bias: a.biasV, output: a.v)
        attentionF32(q: p(a.q), k: p(a.k), v: p(a.v), output: p(a.attended), batch: batch, channels: c, tokens: t, heads: a.heads,
                     scratch: scratch, threads: threads)
        project(3, packed, f32, projection, input: a.attended, weight: a.toOut, bias: a.biasOut, output: a.output,
                residual: a.input, scale: 1 / a.rescale)
    }

    /// Projection `i` (Q, K, V, out) of an attention block as a 1×1 convolution: int8 panels when the block
    /// is on the int8 path, else fp32 (prepacked panels when there are).
    private func project(_ i: Int, _ packed: [Q8ConvWeights], _ f32: [UnsafePointer<Float>]?, _ shape: Conv2DShape, input: BufferID,
                         weight: WeightMatrix, bias: UnsafePointer<Float>, output: BufferID, residual: BufferID? = nil, scale: Float = 1) {
        let r = residual.map { UnsafePointer(p($0)) }
        if packed.count == 4 {
            conv2dQ8(shape, input: p(input), weights: packed[i], bias: bias, output: p(output), residual: r, scale: scale,
                     scratch: scratch, threads: threads)
        } else {
            conv2dF32(shape, input: p(input), weight: weight, packedWeight: f32?[i], bias: bias, output: p(output), residual: r, scale: scale,
                      scratch: scratch, threads: threads)
        }
    }
}
