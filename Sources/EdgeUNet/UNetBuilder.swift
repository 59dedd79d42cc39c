import _EdgeCore
import _EdgeQuant
import _EdgeKernels
import EdgeModelFile

/// Turns a `UNetConfig` and its weights into a straight-line program of `Op`s, mirroring diffusers'
/// `UNet2DModel.forward` module by module. Weight names are the checkpoint's own.
struct UNetBuilder {
    let model: ModelFile
    let config: UNetConfig
    let batch: Int
    /// The fast backend folds nearest-neighbour upsampling into the next convolution; the reference
    /// backend materialises it.
    let foldUpsampling: Bool
    private(set) var ops: [Op] = []
    /// The checkpoint name of the module each op computes (parallel to `ops`), for per-layer timings.
    private(set) var opNames: [String] = []
    private(set) var labels: [(op: Int, name: String, buffer: BufferID, count: Int)] = []
    /// Floats of every buffer, indexed by BufferID.index.
    private(set) var bufferFloats: [Int] = []

    init(model: ModelFile, batch: Int, foldUpsampling: Bool) {
        self.model = model
        self.config = model.unet
        self.batch = batch
        self.foldUpsampling = foldUpsampling
    }

    mutating func buffer(_ floats: Int) -> BufferID {
        bufferFloats.append(floats)
        return BufferID(index: bufferFloats.count - 1)
    }

    private mutating func emit(_ op: Op, _ name: String) {
        ops.append(op)
        opNames.append(name)
    }

    private mutating func label(_ name: String, _ b: BufferID) {
        labels.append((ops.count - 1, name, b, bufferFloats[b.index]))
    }

    // MARK: modules

    /// A convolution named `prefix` over a `side`×`side` input (or, with `upsampled`, over the 2× upsampled
    /// image of a `side/2` input), with the ResNet block's additions folded in (see `ConvOp`).
    private mutating func conv(_ prefix: String, _ input: BufferID, inChannels: Int, outChannels: Int, side: Int,
                               kernel: Int, stride: Int = 1, pad: (top: Int, left: Int, bottom: Int, right: Int)? = nil,
                               upsampled: Bool = false, channelBias: BufferID? = nil, residual: BufferID? = nil, scale: Float = 1) throws -> BufferID {
        let p = pad ?? (kernel / 2, kernel / 2, kernel / 2, kernel / 2)
        let shape = Conv2DShape(batch: batch, inChannels: inChannels, outChannels: outChannels, height: side, width: side,
                                kernel: kernel, stride: stride, padTop: p.top, padLeft: p.left, padBottom: p.bottom, padRight: p.right)
        let weight = try model.matrix("\(prefix).weight", shape: [outChannels, inChannels, kernel, kernel])
        let bias = try model.vector("\(prefix).bias", count: outChannels)
        let out = buffer(shape.outputCount)
        emit(.conv2d(ConvOp(shape: shape, upsampledInput: upsampled, input: input, weight: weight, bias: bias, output: out,
                            channelBias: channelBias, residual: residual, scale: scale)), prefix)
        return out
    }

    private mutating func groupNorm(_ prefix: String, _ input: BufferID, channels: Int, pixels: Int, groups: Int, silu: Bool) throws -> BufferID {
        let out = buffer(batch * channels * pixels)
        emit(.groupNorm(input: input, output: out, channels: channels, pixels: pixels, groups: groups, eps: Float(config.normEps),
                        gamma: try model.vector("\(prefix).weight", count: channels),
                        beta: try model.vector("\(prefix).bias", count: channels), applySiLU: silu), prefix)
        return out
    }

    /// diffusers `ResnetBlock2D` (time_embedding_norm "default"):
    /// h = conv2(SiLU(GN2(conv1(SiLU(GN1(x))) + proj(SiLU(temb))))); out = (shortcut(x) + h) / scale.
    private mutating func resnet(_ p: String, _ x: BufferID, inChannels: Int, outChannels: Int, side: Int,
                                 activatedTemb: BufferID, scale: Double) throws -> BufferID {
        let pixels = side * side
        let h1 = try groupNorm("\(p).norm1", x, channels: inChannels, pixels: pixels, groups: config.normNumGroups, silu: true)
        let proj = buffer(batch * outChannels)
        emit(.linear(input: activatedTemb, rows: batch,
                     weight: try model.matrix("\(p).time_emb_proj.weight", shape: [outChannels, config.timeEmbedDim]),
                     bias: try model.vector("\(p).time_emb_proj.bias", count: outChannels), output: proj, applySiLU: false), "\(p).time_emb_proj")
        let h2 = try conv("\(p).conv1", h1, inChannels: inChannels, outChannels: outChannels, side: side, kernel: 3, channelBias: proj)
        let h3 = try groupNorm("\(p).norm2", h2, channels: outChannels, pixels: pixels, groups: config.normNumGroups, silu: true)
        let shortcut = inChannels == outChannels ? x
            : try conv("\(p).conv_shortcut", x, inChannels: inChannels, outChannels: outChannels, side: side, kernel: 1)
        return try conv("\(p).conv2", h3, inChannels: outChannels, outChannels: outChannels, side: side, kernel: 3,
                        residual: shortcut, scale: Float(1 / scale))
    }

    /// diffusers `Attention` as built for UNet2DModel (`_from_deprecated_attn_block`, residual connection,
    /// `rescale_output_factor`): out = (x + to_out(MHA(to_q(n), to_k(n), to_v(n)))) / rescale, n = GN(x).
    private mutating func attention(_ p: String, _ x: BufferID, channels: Int, side: Int, groups: Int, rescale: Double) throws -> BufferID {
        let t = side * side
        func lin(_ name: String) throws -> (WeightMatrix, UnsafePointer<Float>) {
            (try model.matrix("\(p).\(name).weight", shape: [channels, channels]), try model.vector("\(p).\(name).bias", count: channels))
        }
        let (wq, bq) = try lin("to_q"), (wk, bk) = try lin("to_k"), (wv, bv) = try lin("to_v"), (wo, bo) = try lin("to_out.0")
        let image = channels * t
        let out = buffer(batch * image)
        let op = AttentionOp(
            input: x, output: out, side: side, channels: channels, tokens: t, heads: config.attentionHeads(channels: channels), groups: groups,
            eps: Float(config.normEps), rescale: Float(rescale),
            normGamma: try model.vector("\(p).group_norm.weight", count: channels), normBeta: try model.vector("\(p).group_norm.bias", count: channels),
            toQ: wq, toK: wk, toV: wv, toOut: wo, biasQ: bq, biasK: bk, biasV: bv, biasOut: bo,
            normed: buffer(batch * image), tokensBuffer: buffer(image), q: buffer(batch * image), k: buffer(batch * image),
            v: buffer(batch * image), attended: buffer(batch * image), projected: buffer(image), scores: buffer(t))
        emit(.attention(op), p)
        return out
    }

    // MARK: the network

    /// Builds the program; returns (input [N, Cin, S, S], timesteps [N], output [N, Cout, S, S]).
    mutating func build() throws -> (sample: BufferID, timesteps: BufferID, output: BufferID) {
        let c = config
        let ch = c.blockOutChannels
        var side = c.sampleSize
        let sample = buffer(batch * c.inChannels * side * side)
        let timesteps = buffer(batch)

        // Time embedding: sinusoid [N, ch0] → linear_1 → SiLU → linear_2 → temb [N, D]. Every resnet
        // projects SiLU(temb), so that activation is computed once.
        let sinusoid = buffer(batch * ch[0])
        emit(.timestepEmbedding(timesteps: timesteps, output: sinusoid, dimension: ch[0], flipSinToCos: c.flipSinToCos, freqShift: c.freqShift),
             "time_proj")
        let hidden = buffer(batch * c.timeEmbedDim)
        emit(.linear(input: sinusoid, rows: batch, weight: try model.matrix("time_embedding.linear_1.weight", shape: [c.timeEmbedDim, ch[0]]),
                     bias: try model.vector("time_embedding.linear_1.bias", count: c.timeEmbedDim), output: hidden, applySiLU: true),
             "time_embedding.linear_1")
        let temb = buffer(batch * c.timeEmbedDim)
        emit(.linear(input: hidden, rows: batch, weight: try model.matrix("time_embedding.linear_2.weight", shape: [c.timeEmbedDim, c.timeEmbedDim]),
                     bias: try model.vector("time_embedding.linear_2.bias", count: c.timeEmbedDim), output: temb, applySiLU: false),
             "time_embedding.linear_2")
        label("time_embedding", temb)
        let activatedTemb = buffer(batch * c.timeEmbedDim)
        emit(.silu(input: temb, output: activatedTemb, count: batch * c.timeEmbedDim), "time_embedding.act")

        var input = sample
        if c.centerInputSample {
            let centered = buffer(batch * c.inChannels * side * side)
            emit(.affine(input: sample, output: centered, scale: 2, shift: -1, count: batch * c.inChannels * side * side), "center_input_sample")
            input = centered
        }
        var h = try conv("conv_in", input, inChannels: c.inChannels, outChannels: ch[0], side: side, kernel: 3)
        label("conv_in", h)
        var skips: [(BufferID, Int)] = [(h, ch[0])]

        var channels = ch[0]
        for (i, type) in c.downBlockTypes.enumerated() {
            let p = "down_blocks.\(i)"
            for j in 0 ..< c.layersPerBlock {
                h = try resnet("\(p).resnets.\(j)", h, inChannels: channels, outChannels: ch[i], side: side, activatedTemb: activatedTemb, scale: 1)
                channels = ch[i]
                if type == .attnDown {
                    h = try attention("\(p).attentions.\(j)", h, channels: channels, side: side, groups: c.normNumGroups, rescale: 1)
                }
                skips.append((h, channels))
            }
            if i != ch.count - 1 {
                let pad = c.downsamplePadding == 1 ? (1, 1, 1, 1) : (0, 0, 1, 1)
                h = try conv("\(p).downsamplers.0.conv", h, inChannels: channels, outChannels: channels, side: side, kernel: 3, stride: 2, pad: pad)
                side /= 2
                skips.append((h, channels))
            }
            label(p, h)
        }

        let mid = ch.last!
        h = try resnet("mid_block.resnets.0", h, inChannels: mid, outChannels: mid, side: side, activatedTemb: activatedTemb, scale: c.midBlockScaleFactor)
        if c.addAttention {
            h = try attention("mid_block.attentions.0", h, channels: mid, side: side, groups: c.midAttentionGroups, rescale: c.midBlockScaleFactor)
        }
        h = try resnet("mid_block.resnets.1", h, inChannels: mid, outChannels: mid, side: side, activatedTemb: activatedTemb, scale: c.midBlockScaleFactor)
        label("mid_block", h)

        let reversed = Array(ch.reversed())
        for (i, type) in c.upBlockTypes.enumerated() {
            let p = "up_blocks.\(i)"
            let out = reversed[i]
            for j in 0 ... c.layersPerBlock {
                let (skip, skipChannels) = skips.removeLast()
                let joined = buffer(batch * (channels + skipChannels) * side * side)
                emit(.concat(a: h, channelsA: channels, b: skip, channelsB: skipChannels, pixels: side * side, output: joined),
                     "\(p).resnets.\(j).concat")
                h = try resnet("\(p).resnets.\(j)", joined, inChannels: channels + skipChannels, outChannels: out, side: side, activatedTemb: activatedTemb, scale: 1)
                channels = out
                if type == .attnUp {
                    h = try attention("\(p).attentions.\(j)", h, channels: channels, side: side, groups: c.normNumGroups, rescale: 1)
                }
            }
            if i != ch.count - 1 {
                var source = h
                if !foldUpsampling {
                    source = buffer(batch * channels * 4 * side * side)
                    emit(.upsampleNearest2x(input: h, planes: batch * channels, height: side, width: side, output: source),
                         "\(p).upsamplers.0.interpolate")
                }
                side *= 2
                h = try conv("\(p).upsamplers.0.conv", source, inChannels: channels, outChannels: channels, side: side, kernel: 3,
                             upsampled: foldUpsampling)
            }
            label(p, h)
        }

        let groupsOut = c.normNumGroups
        let normed = try groupNorm("conv_norm_out", h, channels: channels, pixels: side * side, groups: groupsOut, silu: true)
        label("conv_norm_out+silu", normed)
        let output = try conv("conv_out", normed, inChannels: channels, outChannels: c.outChannels, side: side, kernel: 3)
        return (sample, timesteps, output)
    }
}
