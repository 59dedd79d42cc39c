import _EdgeCore
import _EdgeQuant
import _EdgeKernels
import EdgeGraph
import EdgeModelFile

/// A lowered graph ready to run, whatever model family it came from: every intermediate placed in one arena
/// sized at load, every weight the kernels want repacked once. `run()` allocates nothing and decides
/// nothing: each step's kernel was chosen by `lower`.
final class Executable: @unchecked Sendable {
    let program: Program
    let batch: Int
    let threads: Threads
    private let weights: any WeightSource   // keeps the mapping (and so every weight pointer in the steps) alive
    private let arena: Arena
    /// By BufferID.index.
    private let pointers: [UnsafeMutablePointer<Float>]
    /// Shared by the steps, which run one at a time.
    private let scratch: UnsafeMutableRawPointer
    private var rowScratch: UnsafeMutablePointer<Float> { scratch.assumingMemoryBound(to: Float.self) }
    /// `program.packedBytes` bytes: the packed weights at their `PackedWeight.offset`s.
    private let packedMemory: UnsafeMutableRawPointer?

    /// - arena: memory to place the activations in, at least `program.plan.totalBytes`, shared with other
    ///   executables that never run at the same time (a pipeline's UNet and decoder); nil allocates its own.
    init(_ program: Program, weights: any WeightSource, batch: Int, threads: Threads, arena shared: Arena? = nil) {
        self.program = program
        self.weights = weights
        self.batch = batch
        self.threads = threads
        let arena = shared ?? Arena(byteCount: program.plan.totalBytes)
        precondition(arena.byteCount >= program.plan.totalBytes, "a shared arena of \(arena.byteCount) bytes for a plan of \(program.plan.totalBytes)")
        self.arena = arena
        pointers = program.slots.map { arena.floats(at: program.plan.offsets[$0]) }
        scratch = arena.base + program.plan.offsets[program.scratchSlot]
        // Pack every weight the kernels asked for once, then let the mapped originals leave resident memory.
        let memory = program.packedBytes > 0 ? PageMemory.allocate(byteCount: program.packedBytes) : nil
        packedMemory = memory
        if let memory { adviseHugePages(memory, byteCount: program.packedBytes) }
        // The Winograd weight transform's panels, for the load only.
        let transformBytes = program.packed.map { p -> Int in
            if case let .winograd(_, channels) = p.layout { return winogradWeightTransformScratchBytes(inChannels: channels, threads: threads) }
            return 0
        }.max() ?? 0
        let transformScratch = transformBytes > 0 ? UnsafeMutableRawPointer.allocate(byteCount: transformBytes, alignment: 64) : nil
        defer { transformScratch?.deallocate() }
        for p in program.packed {
            switch p.layout {
            case .f32Panels:
                let floats = (memory! + p.offset).bindMemory(to: Float.self, capacity: packedWeightsF32Count(rows: p.weight.rows, columns: p.weight.columns))
                packWeightsF32(p.weight, into: floats, threads: threads)
            case let .q8(channels, kernel):
                _ = Q8ConvWeights(packing: p.weight, channels: channels, kernel: kernel, into: memory! + p.offset)
            case let .winograd(tile, channels):
                let floats = (memory! + p.offset).bindMemory(to: Float.self, capacity: winogradWeightsF32Count(tile, outChannels: p.weight.rows, inChannels: channels))
                packWinogradWeightsF32(tile, p.weight, inChannels: channels, into: floats, scratch: transformScratch!, threads: threads)
            }
            weights.dropResidentPages(of: p.weight)
        }
    }

    deinit { packedMemory.map { PageMemory.deallocate($0, byteCount: program.packedBytes) } }

    var arenaBytes: Int { program.plan.totalBytes }

    func buffer(_ v: ValueID) -> UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: pointers[v.index], count: program.bufferFloats[v.index])
    }

    /// Runs every step; `observe` sees each graph stage when it is complete.
    func run(observe: ((_ name: String, _ values: UnsafeBufferPointer<Float>) -> Void)? = nil) {
        var nextStage = 0
        let stages = program.stages
        for index in program.steps.indices {
            execute(index)
            if let observe {
                while nextStage < stages.count && stages[nextStage].step == index {
                    let s = stages[nextStage]
                    observe(s.name, UnsafeBufferPointer(start: pointers[s.buffer.index], count: s.count))
                    nextStage += 1
                }
            }
        }
    }

    /// `run()` that adds each step's wall time to `seconds[i]`.
    func runTimed(addingSecondsTo seconds: UnsafeMutableBufferPointer<Double>) {
        precondition(seconds.count == program.steps.count, "runTimed needs one slot per layer (\(program.steps.count)), got \(seconds.count)")
        var t0 = monotonicSeconds()
        for index in program.steps.indices {
            execute(index)
            let t1 = monotonicSeconds()
            seconds[index] += t1 - t0
            t0 = t1
        }
    }

    @inline(__always) private func p(_ b: BufferID) -> UnsafeMutablePointer<Float> { pointers[b.index] }
    @inline(__always) private func p(_ b: BufferID?) -> UnsafePointer<Float>? { b.map { UnsafePointer(pointers[$0.index]) } }

    @inline(__always) private func f32Panels(_ w: PackedWeight?) -> UnsafePointer<Float>? {
        w.map { UnsafePointer((packedMemory! + $0.offset).assumingMemoryBound(to: Float.self)) }
    }

    @inline(__always) private func q8Panels(_ w: PackedWeight) -> Q8ConvWeights {
        guard case let .q8(channels, kernel) = w.layout else { preconditionFailure("q8 kernel with a non-q8 packing") }
        return Q8ConvWeights(viewing: UnsafeRawPointer(packedMemory! + w.offset), rows: w.weight.rows, channels: channels, kernel: kernel)
    }

    private func execute(_ index: Int) {
        switch program.steps[index] {
        case let .timestepEmbedding(t, o, dimension, flip, shift):
            timestepEmbeddingRef(timesteps: p(t), batch: batch, dimension: dimension, flipSinToCos: flip, freqShift: shift, into: p(o))
        case let .linear(i, rows, w, b, o, applySiLU, fast):
            // Linear layers act on the time embedding only: a few rows, negligible next to the convolutions.
            if fast {
                linearF32(x: p(i), rows: rows, weight: w, bias: b, output: p(o), rowScratch: rowScratch)
            } else {
                linearRef(x: p(i), rows: rows, weight: w, bias: b, output: p(o), rowScratch: rowScratch)
            }
            if applySiLU { siluRef(p(o), count: rows * w.rows, into: p(o)) }
        case let .silu(i, o, count):
            siluRef(p(i), count: count, into: p(o))
        case let .affine(i, o, scale, shift, count):
            affineRef(p(i), scale: scale, shift: shift, count: count, into: p(o))
        case let .groupNorm(i, o, channels, pixels, groups, eps, gamma, beta, applySiLU, fast):
            if fast {
                groupNormF32(input: p(i), output: p(o), batch: batch, channels: channels, pixels: pixels, groups: groups, eps: eps,
                             gamma: gamma, beta: beta, applySiLU: applySiLU, threads: threads)
            } else {
                groupNormRef(input: p(i), output: p(o), batch: batch, channels: channels, pixels: pixels, groups: groups, eps: eps,
                             gamma: gamma, beta: beta, applySiLU: applySiLU)
            }
        case let .conv2d(c):
            switch c.kernel {
            case .reference: convReference(c)
            case let .q8(packed):
                conv2dQ8(c.shape, upsampledInput: c.upsampledInput, input: p(c.input),
                         concatenated: p(c.concatenated).map { ($0, c.concatenatedChannels) }, weights: q8Panels(packed), bias: c.bias,
                         output: p(c.output), residual: p(c.residual), scale: c.scale, channelBias: p(c.channelBias), inputNorm: c.inputNorm,
                         scratch: scratch, threads: threads)
            case let .f32(packed):
                conv2dF32(c.shape, upsampledInput: c.upsampledInput, input: p(c.input), weight: c.weight, packedWeight: f32Panels(packed),
                          bias: c.bias, output: p(c.output), residual: p(c.residual), scale: c.scale, channelBias: p(c.channelBias),
                          scratch: scratch, threads: threads)
            case let .winograd(tile, transformed):
                conv2dWinogradF32(tile, c.shape, upsampledInput: c.upsampledInput, input: p(c.input), weight: c.weight,
                                  transformedWeight: f32Panels(transformed), bias: c.bias, output: p(c.output), residual: p(c.residual),
                                  scale: c.scale, channelBias: p(c.channelBias), scratch: scratch, threads: threads)
            }
        case let .upsampleNearest2x(i, planes, h, w, o):
            upsampleNearest2xRef(p(i), planes: planes, height: h, width: w, into: p(o))
        case let .concat(a, ca, b, cb, pixels, o):
            concatChannelsRef(p(a), channelsA: ca, p(b), channelsB: cb, batch: batch, pixels: pixels, into: p(o))
        case let .attention(a):
            switch a.kernel {
            case let .reference(tokens, projected, scores): attentionReference(a, tokensBuffer: tokens, projected: projected, scores: scores)
            case let .fast(projections): attentionFast(a, projections)
            }
        case let .toHalf(i, o, count):
            convertF32ToF16(p(i), count: count, into: UnsafeMutableRawPointer(p(o)).assumingMemoryBound(to: UInt16.self), threads: threads)
        case let .fromHalf(i, o, count):
            convertF16ToF32(UnsafeRawPointer(p(i)).assumingMemoryBound(to: UInt16.self), count: count, into: p(o), threads: threads)
        case let .tokenEmbedding(ids, o, tokens, table, positions):
            tokenEmbeddingRef(ids: p(ids), batch: batch, tokens: tokens, table: table, positions: positions, output: p(o), rowScratch: rowScratch)
        case let .layerNorm(i, o, features, tokens, eps, gamma, beta, fast):
            if fast {
                layerNormF32(input: p(i), output: p(o), batch: batch, features: features, tokens: tokens, eps: eps, gamma: gamma, beta: beta,
                             threads: threads)
            } else {
                layerNormRef(input: p(i), output: p(o), batch: batch, features: features, tokens: tokens, eps: eps, gamma: gamma, beta: beta)
            }
        case let .activation(f, i, o, count, fast):
            switch (f, fast) {
            case (.gelu, true): geluF32(input: p(i), output: p(o), count: count)
            case (.quickGELU, true): quickGELUF32(input: p(i), output: p(o), count: count)
            case (.gelu, false): for j in 0 ..< count { p(o)[j] = geluRef(p(i)[j]) }
            case (.quickGELU, false): for j in 0 ..< count { p(o)[j] = quickGELURef(p(i)[j]) }
            }
        case let .geglu(i, o, features, tokens, fast):
            if fast {
                gegluF32(input: p(i), output: p(o), batch: batch, features: features, tokens: tokens, threads: threads)
            } else {
                gegluRef(input: p(i), output: p(o), batch: batch, features: features, tokens: tokens)
            }
        case let .multiHeadAttention(a):
            switch a.kernel {
            case .fast:
                attentionF32(q: p(a.q), k: p(a.k), v: p(a.v), output: p(a.output), batch: batch, channels: a.channels, tokens: a.queries,
                             keys: a.keys, heads: a.heads, causal: a.causal, scratch: scratch, threads: threads)
            case let .reference(q, k, v, o, scores):
                let (c, tq, tk) = (a.channels, a.queries, a.keys)
                for n in 0 ..< batch {
                    transposeRef(p(a.q) + n * c * tq, rows: c, columns: tq, into: p(q))
                    transposeRef(p(a.k) + n * c * tk, rows: c, columns: tk, into: p(k))
                    transposeRef(p(a.v) + n * c * tk, rows: c, columns: tk, into: p(v))
                    sequenceAttentionRef(q: p(q), k: p(k), v: p(v), batch: 1, queries: tq, keys: tk, channels: c, heads: a.heads,
                                         causal: a.causal, output: p(o), scores: p(scores))
                    transposeRef(p(o), rows: tq, columns: c, into: p(a.output) + n * c * tq)
                }
            }
        case let .vectorQuantize(i, o, codebook, entries, dimension, pixels):
            vectorQuantizeRef(input: p(i), codebook: codebook, batch: batch, entries: entries, dimension: dimension, pixels: pixels, output: p(o))
        }
    }

    /// A fused convolution composed from the reference kernels, one effect at a time.
    private func convReference(_ c: ConvStep) {
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
    private func attentionReference(_ a: AttentionStep, tokensBuffer: BufferID, projected: BufferID, scores: BufferID) {
        let (c, t) = (a.channels, a.tokens)
        groupNormRef(input: p(a.input), output: p(a.normed), batch: batch, channels: c, pixels: t, groups: a.groups, eps: a.eps,
                     gamma: a.normGamma, beta: a.normBeta, applySiLU: false)
        for n in 0 ..< batch {
            let image = n * c * t
            transposeRef(p(a.normed) + image, rows: c, columns: t, into: p(tokensBuffer))          // [T, C]
            linearRef(x: p(tokensBuffer), rows: t, weight: a.toQ, bias: a.biasQ, output: p(a.q), rowScratch: rowScratch)
            linearRef(x: p(tokensBuffer), rows: t, weight: a.toK, bias: a.biasK, output: p(a.k), rowScratch: rowScratch)
            linearRef(x: p(tokensBuffer), rows: t, weight: a.toV, bias: a.biasV, output: p(a.v), rowScratch: rowScratch)
            attentionRef(q: p(a.q), k: p(a.k), v: p(a.v), tokens: t, channels: c, heads: a.heads, output: p(a.attended), scores: p(scores))
            linearRef(x: p(a.attended), rows: t, weight: a.toOut, bias: a.biasOut, output: p(projected), rowScratch: rowScratch)
            transposeRef(p(projected), rows: t, columns: c, into: p(a.normed) + image)           // back to [C, T]
        }
        // (x + attention) / rescale
        addScaledRef(p(a.input), p(a.normed), scale: 1 / a.rescale, count: batch * c * t, into: p(a.output))
    }

    /// Channel-major: the projections are 1×1 convolutions over [N, C, T]; the heads' softmax(Q_hᵀ·K_h / √d)
    /// and its product with V_h are one fused kernel; no transposes or score matrices are materialised.
    private func attentionFast(_ a: AttentionStep, _ projections: ProjectionKernels) {
        let (c, t) = (a.channels, a.tokens)
        let shape = a.projection(batch: batch)
        groupNormF32(input: p(a.input), output: p(a.normed), batch: batch, channels: c, pixels: t, groups: a.groups, eps: a.eps,
                     gamma: a.normGamma, beta: a.normBeta, applySiLU: false, threads: threads)
        project(projections.q, shape, input: a.normed, bias: a.biasQ, output: a.q)
        project(projections.k, shape, input: a.normed, bias: a.biasK, output: a.k)
        project(projections.v, shape, input: a.normed, bias: a.biasV, output: a.v)
        attentionF32(q: p(a.q), k: p(a.k), v: p(a.v), output: p(a.attended), batch: batch, channels: c, tokens: t, heads: a.heads,
                     scratch: scratch, threads: threads)
        project(projections.out, shape, input: a.attended, bias: a.biasOut, output: a.output, residual: a.input, scale: 1 / a.rescale)
    }

    /// One projection of an attention block as a 1×1 convolution over [N, C, T].
    private func project(_ kernel: ProjectionKernel, _ shape: Conv2DShape, input: BufferID, bias: UnsafePointer<Float>, output: BufferID,
                         residual: BufferID? = nil, scale: Float = 1) {
        switch kernel {
        case let .q8(packed):
            conv2dQ8(shape, input: p(input), weights: q8Panels(packed), bias: bias, output: p(output), residual: p(residual), scale: scale,
                     scratch: scratch, threads: threads)
        case let .f32(weight, packed):
            conv2dF32(shape, input: p(input), weight: weight, packedWeight: f32Panels(packed), bias: bias, output: p(output),
                      residual: p(residual), scale: scale, scratch: scratch, threads: threads)
        }
    }
}
