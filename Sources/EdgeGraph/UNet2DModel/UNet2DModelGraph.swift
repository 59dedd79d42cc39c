import _EdgeCore

/// diffusers' `UNet2DModel`, written down once: the only walk of its topology in edge-ddim. The converter
/// checks checkpoints against this graph's parameters, `info` and `bench` count its multiply-accumulates, and
/// EdgeUNet lowers it to kernels and plans its memory.
///
/// Module by module as `UNet2DModel.forward` runs: time embedding, optional input centring, conv_in, the down
/// blocks (ResNet blocks, attention in `AttnDownBlock2D`, a stride-2 downsampler but at the last level), the
/// mid block, the up blocks (each ResNet block fed the concatenation with a skip connection, attention in
/// `AttnUpBlock2D`, a nearest-2× upsampler and conv but at the last level), GroupNorm + SiLU, conv_out. Each
/// block declares its weights under the checkpoint's names, in the order diffusers' modules define them,
/// before it adds its nodes.
///
/// Inputs `sample` [N, in_channels, S, S] and `timesteps` [N]; output `output` [N, out_channels, S, S].
public enum UNet2DModelGraph {
    /// The graph for `batch` images. `config` must be valid (`UNetConfig.validate()`): shapes are computed
    /// from it unchecked.
    public static func build(_ config: UNetConfig, batch: Int) -> Graph {
        var b = Builder(config: config, graph: Graph(batch: batch))
        b.build()
        return b.graph
    }

    private struct Builder {
        let config: UNetConfig
        var graph: Graph
        var batch: Int { graph.batch }

        // MARK: blocks

        /// A convolution named `prefix` from `inChannels` to `outChannels` over a `side`×`side` input, with the
        /// ResNet block's additions folded in (see `GraphOp.Conv2D`). Padding k/2 on every side unless `pad`.
        mutating func conv(_ prefix: String, _ input: ValueID, inChannels: Int, outChannels: Int, side: Int, kernel: Int,
                           stride: Int = 1, pad: (top: Int, left: Int, bottom: Int, right: Int)? = nil,
                           channelBias: ValueID? = nil, residual: ValueID? = nil, scale: Float = 1) -> ValueID {
            let p = pad ?? (kernel / 2, kernel / 2, kernel / 2, kernel / 2)
            let shape = Conv2DShape(batch: batch, inChannels: inChannels, outChannels: outChannels, height: side, width: side,
                                    kernel: kernel, stride: stride, padTop: p.top, padLeft: p.left, padBottom: p.bottom, padRight: p.right)
            let weight = graph.parameter("\(prefix).weight", [outChannels, inChannels, kernel, kernel])
            let bias = graph.parameter("\(prefix).bias", [outChannels])
            return convNode(prefix, shape, input, weight: weight, bias: bias, channelBias: channelBias, residual: residual, scale: scale)
        }

        mutating func convNode(_ name: String, _ shape: Conv2DShape, _ input: ValueID, weight: ParameterID, bias: ParameterID,
                               channelBias: ValueID? = nil, residual: ValueID? = nil, scale: Float = 1) -> ValueID {
            let out = graph.value([batch, shape.outChannels, shape.outHeight, shape.outWidth])
            graph.add(name, .conv2d(GraphOp.Conv2D(shape: shape, input: input, output: out, weight: weight, bias: bias,
                                                   channelBias: channelBias, residual: residual, scale: scale)))
            return out
        }

        mutating func norm(_ prefix: String, channels: Int) -> (gamma: ParameterID, beta: ParameterID) {
            (graph.parameter("\(prefix).weight", [channels]), graph.parameter("\(prefix).bias", [channels]))
        }

        mutating func linear(_ prefix: String, out: Int, in inFeatures: Int) -> (weight: ParameterID, bias: ParameterID) {
            (graph.parameter("\(prefix).weight", [out, inFeatures]), graph.parameter("\(prefix).bias", [out]))
        }

        mutating func groupNormNode(_ name: String, _ input: ValueID, _ p: (gamma: ParameterID, beta: ParameterID), channels: Int,
                                    side: Int, groups: Int, silu: Bool) -> ValueID {
            let out = graph.value([batch, channels, side, side])
            graph.add(name, .groupNorm(GraphOp.GroupNorm(input: input, output: out, channels: channels, pixels: side * side, groups: groups,
                                                         eps: Float(config.normEps), gamma: p.gamma, beta: p.beta, applySiLU: silu)))
            return out
        }

        mutating func linearNode(_ name: String, _ input: ValueID, _ p: (weight: ParameterID, bias: ParameterID), out: Int, in inFeatures: Int,
                                 silu: Bool) -> ValueID {
            let o = graph.value([batch, out])
            graph.add(name, .linear(GraphOp.Linear(input: input, output: o, rows: batch, outFeatures: out, inFeatures: inFeatures,
                                                   weight: p.weight, bias: p.bias, applySiLU: silu)))
            return o
        }

        /// diffusers `ResnetBlock2D` (time_embedding_norm "default"):
        /// h = conv2(SiLU(GN2(conv1(SiLU(GN1(x))) + proj(SiLU(temb))))); out = (shortcut(x) + h) / scale.
        mutating func resnet(_ p: String, _ x: ValueID, inChannels: Int, outChannels: Int, side: Int, activatedTemb: ValueID,
                             scale: Double) -> ValueID {
            let c = config
            // Declared as ResnetBlock2D.__init__ defines them.
            let norm1 = norm("\(p).norm1", channels: inChannels)
            let conv1 = (graph.parameter("\(p).conv1.weight", [outChannels, inChannels, 3, 3]), graph.parameter("\(p).conv1.bias", [outChannels]))
            let proj = linear("\(p).time_emb_proj", out: outChannels, in: c.timeEmbedDim)
            let norm2 = norm("\(p).norm2", channels: outChannels)
            let conv2 = (graph.parameter("\(p).conv2.weight", [outChannels, outChannels, 3, 3]), graph.parameter("\(p).conv2.bias", [outChannels]))
            let shortcut = inChannels == outChannels ? nil
                : (graph.parameter("\(p).conv_shortcut.weight", [outChannels, inChannels, 1, 1]), graph.parameter("\(p).conv_shortcut.bias", [outChannels]))

            let h1 = groupNormNode("\(p).norm1", x, norm1, channels: inChannels, side: side, groups: c.normNumGroups, silu: true)
            let projected = linearNode("\(p).time_emb_proj", activatedTemb, proj, out: outChannels, in: c.timeEmbedDim, silu: false)
            let h2 = convNode("\(p).conv1", .same(batch: batch, inChannels: inChannels, outChannels: outChannels, height: side, width: side, kernel: 3),
                              h1, weight: conv1.0, bias: conv1.1, channelBias: projected)
            let h3 = groupNormNode("\(p).norm2", h2, norm2, channels: outChannels, side: side, groups: c.normNumGroups, silu: true)
            var residual = x
            if let (w, b) = shortcut {
                residual = convNode("\(p).conv_shortcut", .same(batch: batch, inChannels: inChannels, outChannels: outChannels, height: side, width: side, kernel: 1),
                                    x, weight: w, bias: b)
            }
            return convNode("\(p).conv2", .same(batch: batch, inChannels: outChannels, outChannels: outChannels, height: side, width: side, kernel: 3),
                            h3, weight: conv2.0, bias: conv2.1, residual: residual, scale: Float(1 / scale))
        }

        /// diffusers `Attention` as built for UNet2DModel (`_from_deprecated_attn_block`, residual connection,
        /// `rescale_output_factor`): out = (x + to_out(MHA(to_q(n), to_k(n), to_v(n)))) / rescale, n = GN(x).
        mutating func attention(_ p: String, _ x: ValueID, channels: Int, side: Int, groups: Int, rescale: Double) -> ValueID {
            let n = norm("\(p).group_norm", channels: channels)
            let q = linear("\(p).to_q", out: channels, in: channels), k = linear("\(p).to_k", out: channels, in: channels)
            let v = linear("\(p).to_v", out: channels, in: channels), o = linear("\(p).to_out.0", out: channels, in: channels)
            let out = graph.value([batch, channels, side * side])
            graph.add(p, .attention(GraphOp.Attention(
                input: x, output: out, side: side, channels: channels, heads: config.attentionHeads(channels: channels), groups: groups,
                eps: Float(config.normEps), rescale: Float(rescale), normGamma: n.gamma, normBeta: n.beta,
                toQ: q.weight, toK: k.weight, toV: v.weight, toOut: o.weight, biasQ: q.bias, biasK: k.bias, biasV: v.bias, biasOut: o.bias)))
            return out
        }

        // MARK: the network

        mutating func build() {
            let c = config
            let ch = c.blockOutChannels
            var side = c.sampleSize
            let sample = graph.input("sample", [batch, c.inChannels, side, side])
            let timesteps = graph.input("timesteps", [batch])

            // Time embedding: sinusoid [N, ch0] → linear_1 → SiLU → linear_2 → temb [N, D]. Every resnet
            // projects SiLU(temb), so that activation is computed once.
            let sinusoid = graph.value([batch, ch[0]])
            graph.add("time_proj", .timestepEmbedding(timesteps: timesteps, output: sinusoid, dimension: ch[0], flipSinToCos: c.flipSinToCos,
                                                      freqShift: c.freqShift))
            let linear1 = linear("time_embedding.linear_1", out: c.timeEmbedDim, in: ch[0])
            let linear2 = linear("time_embedding.linear_2", out: c.timeEmbedDim, in: c.timeEmbedDim)
            let hidden = linearNode("time_embedding.linear_1", sinusoid, linear1, out: c.timeEmbedDim, in: ch[0], silu: true)
            let temb = linearNode("time_embedding.linear_2", hidden, linear2, out: c.timeEmbedDim, in: c.timeEmbedDim, silu: false)
            graph.markStage("time_embedding", temb)
            let activatedTemb = graph.value([batch, c.timeEmbedDim])
            graph.add("time_embedding.act", .silu(input: temb, output: activatedTemb, count: batch * c.timeEmbedDim))

            var input = sample
            if c.centerInputSample {
                let count = batch * c.inChannels * side * side
                input = graph.value([batch, c.inChannels, side, side])
                graph.add("center_input_sample", .affine(input: sample, output: input, scale: 2, shift: -1, count: count))
            }
            var h = conv("conv_in", input, inChannels: c.inChannels, outChannels: ch[0], side: side, kernel: 3)
            graph.markStage("conv_in", h)
            var skips: [(ValueID, Int)] = [(h, ch[0])]

            var channels = ch[0]
            for (i, type) in c.downBlockTypes.enumerated() {
                let p = "down_blocks.\(i)"
                for j in 0 ..< c.layersPerBlock {
                    h = resnet("\(p).resnets.\(j)", h, inChannels: channels, outChannels: ch[i], side: side, activatedTemb: activatedTemb, scale: 1)
                    channels = ch[i]
                    if type == .attnDown {
                        h = attention("\(p).attentions.\(j)", h, channels: channels, side: side, groups: c.normNumGroups, rescale: 1)
                    }
                    skips.append((h, channels))
                }
                if i != ch.count - 1 {
                    let pad = c.downsamplePadding == 1 ? (1, 1, 1, 1) : (0, 0, 1, 1)
                    h = conv("\(p).downsamplers.0.conv", h, inChannels: channels, outChannels: channels, side: side, kernel: 3, stride: 2, pad: pad)
                    side /= 2
                    skips.append((h, channels))
                }
                graph.markStage(p, h)
            }

            let mid = ch.last!
            h = resnet("mid_block.resnets.0", h, inChannels: mid, outChannels: mid, side: side, activatedTemb: activatedTemb, scale: c.midBlockScaleFactor)
            if c.addAttention {
                h = attention("mid_block.attentions.0", h, channels: mid, side: side, groups: c.midAttentionGroups, rescale: c.midBlockScaleFactor)
            }
            h = resnet("mid_block.resnets.1", h, inChannels: mid, outChannels: mid, side: side, activatedTemb: activatedTemb, scale: c.midBlockScaleFactor)
            graph.markStage("mid_block", h)

            let reversed = Array(ch.reversed())
            for (i, type) in c.upBlockTypes.enumerated() {
                let p = "up_blocks.\(i)"
                let out = reversed[i]
                for j in 0 ... c.layersPerBlock {
                    let (skip, skipChannels) = skips.removeLast()
                    let joined = graph.value([batch, channels + skipChannels, side, side])
                    graph.add("\(p).resnets.\(j).concat", .concat(a: h, channelsA: channels, b: skip, channelsB: skipChannels,
                                                                  pixels: side * side, output: joined))
                    h = resnet("\(p).resnets.\(j)", joined, inChannels: channels + skipChannels, outChannels: out, side: side,
                               activatedTemb: activatedTemb, scale: 1)
                    channels = out
                    if type == .attnUp {
                        h = attention("\(p).attentions.\(j)", h, channels: channels, side: side, groups: c.normNumGroups, rescale: 1)
                    }
                }
                if i != ch.count - 1 {
                    let upsampled = graph.value([batch, channels, 2 * side, 2 * side])
                    graph.add("\(p).upsamplers.0.interpolate", .upsampleNearest2x(input: h, planes: batch * channels, height: side, width: side,
                                                                                  output: upsampled))
                    side *= 2
                    h = conv("\(p).upsamplers.0.conv", upsampled, inChannels: channels, outChannels: channels, side: side, kernel: 3)
                }
                graph.markStage(p, h)
            }

            let normOut = norm("conv_norm_out", channels: channels)
            let normed = groupNormNode("conv_norm_out", h, normOut, channels: channels, side: side, groups: c.normNumGroups, silu: true)
            graph.markStage("conv_norm_out+silu", normed)
            let output = conv("conv_out", normed, inChannels: channels, outChannels: c.outChannels, side: side, kernel: 3)
            graph.markOutput("output", output)
        }
    }
}
