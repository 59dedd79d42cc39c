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

    /// The program and memory plan for `batch` images, computed without allocating the arena.
    struct Program {
        var builder: UNetBuilder
        var io: (sample: BufferID, timesteps: BufferID, output: BufferID)
        var plan: MemoryPlan
        /// Index into `plan.offsets` of the shared weight-row scratch.
        var scratchIndex: Int
    }

    static func program(model: ModelFile, batch: Int, backend: UNetBackend, threads: Threads) throws -> Program {
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
        let scratchBytes = ops.map { $0.scratchBytes(backend, threads: threads) }.max() ?? 0
        requests.append(MemoryPlan.Buffer(bytes: scratchBytes, first: 0, last: ops.count))
        return Program(builder: builder, io: io, plan: MemoryPlan(requests), scratchIndex: n)
    }

    /// Bytes of arena a UNet of `model` needs for `batch` images, without allocating it.
    public static func arenaBytes(model: ModelFile, batch: Int, backend: UNetBackend = .fast, threads: Threads = Threads()) throws -> Int {
        try program(model: model, batch: batch, backend: backend, threads: threads).plan.totalBytes
    }

    /// Threads the kernels split work over.
    public let threads: Threads

    public let backend: UNetBackend

    public init(model: ModelFile, batch: Int, threads: Threads = Threads(), backend: UNetBackend = .fast) throws {
        self.threads = threads
        self.backend = backend
        let program = try Self.program(model: model, batch: batch, backend: backend, threads: threads)
        let builder = program.builder, io = program.io, plan = program.plan
        self.model = model
        self.config = model.unet
        self.batch = batch
        self.ops = builder.ops
        self.labels = builder.labels
        let arena = Arena(byteCount: plan.totalBytes)
        self.arena = arena
        arenaBytes = plan.totalBytes
        pointers = (0 ..< builder.bufferFloats.count).map { arena.floats(at: plan.offsets[$0]) }
        scratch = arena.base + plan.offsets[program.scratchIndex]
        sample = UnsafeMutableBufferPointer(start: pointers[io.sample.index], count: builder.bufferFloats[io.sample.index])
        timesteps = UnsafeMutableBufferPointer(start: pointers[io.timesteps.index], count: batch)
        output = UnsafeMutableBufferPointer(start: pointers[io.output.index], count: builder.bufferFloats[io.output.index])
    }

    /// Multiply-accumulates of one `run()` (all images of the batch).
    public var multiplyAccumulates: Int { config.multiplyAccumulates() * batch }

    /// Evaluates the UNet on `sample` and `timesteps`, writing `output`.
    /// - observe: called after named stages (`time_embedding`, `conv_in`, `down_blocks.i`, `mid_block`,
    ///   `up_blocks.i`) with their output, for debugging against diffusers' intermediates.
    public func run(observe: ((_ name: String, _ values: UnsafeBufferPointer<Float>) -> Void)? = nil) {
        var nextLabel = 0
        for (index, op) in ops.enumerated() {
            execute(op)
            if let observe {
                while nextLabel < labels.count && labels[nextLabel].op == index {
                    let l = labels[nextLabel]
                    observe(l.name, UnsafeBufferPointer(start: pointers[l.buffer.index], count: l.count))
                    nextLabel += 1
                }
            }
        }
    }

    @inline(__always) private func p(_ b: BufferID) -> UnsafeMutablePointer<Float> { pointers[b.index] }

    private func execute(_ op: Op) {
        switch op {
        case let .timestepEmbedding(t, o, dimension, flip, shift):
            timestepEmbeddingRef(timesteps: p(t), batch: batch, dimension: dimension, flipSinToCos: flip, freqShift: shift, into: p(o))
        case let .linear(i, rows, w, b, o, applySiLU):
            // Linear layers act on the time embedding only: a few rows, negligible next to the convolutions.
            linearRef(x: p(i), rows: rows, weight: w, bias: b, output: p(o), rowScratch: rowScratch)
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
            case .fast:
                conv2dF32(c.shape, upsampledInput: c.upsampledInput, input: p(c.input), weight: c.weight, bias: c.bias, output: p(c.output),
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
            case .fast: attentionFast(a)
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

    /// Channel-major: the projections are 1×1 convolutions over [N, C, T]; per image and head,
    /// S = Q_hᵀ·K_h / √d, softmax over rows, out_h = V_h·Sᵀ; no transposes are materialised.
    private func attentionFast(_ a: AttentionOp) {
        let (c, t) = (a.channels, a.tokens)
        let d = c / a.heads
        let projection = a.projection(batch: batch)
        groupNormF32(input: p(a.input), output: p(a.normed), batch: batch, channels: c, pixels: t, groups: a.groups, eps: a.eps,
                     gamma: a.normGamma, beta: a.normBeta, applySiLU: false, threads: threads)
        conv2dF32(projection, input: p(a.normed), weight: a.toQ, bias: a.biasQ, output: p(a.q), scratch: scratch, threads: threads)
        conv2dF32(projection, input: p(a.normed), weight: a.toK, bias: a.biasK, output: p(a.k), scratch: scratch, threads: threads)
        conv2dF32(projection, input: p(a.normed), weight: a.toV, bias: a.biasV, output: p(a.v), scratch: scratch, threads: threads)
        let scores = p(a.scores)
        for n in 0 ..< batch {
            for h in 0 ..< a.heads {
                let head = n * c * t + h * d * t
                gemmF32(m: t, n: t, k: d, a: p(a.q) + head, aRowStride: 1, aColumnStride: t,
                        b: p(a.k) + head, bRowStride: t, bColumnStride: 1, c: scores, ldc: t,
                        alpha: 1 / Float(d).squareRoot(), scratch: scratch, threads: threads)
                softmaxRowsF32(scores, rows: t, columns: t, rowStride: t, threads: threads)
                gemmF32(m: d, n: t, k: t, a: p(a.v) + head, aRowStride: t, aColumnStride: 1,
                        b: scores, bRowStride: 1, bColumnStride: t, c: p(a.attended) + head, ldc: t,
                        scratch: scratch, threads: threads)
            }
        }
        conv2dF32(projection, input: p(a.attended), weight: a.toOut, bias: a.biasOut, output: p(a.output),
                  residual: p(a.input), scale: 1 / a.rescale, scratch: scratch, threads: threads)
    }
}
