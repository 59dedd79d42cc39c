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

        var eps: Double { config.normEps }

        mutating func resnet(_ p: String, _ x: ValueID, inChannels: Int, outChannels: Int, side: Int, temb: Graph.TimeEmbedding,
                             scale: Double) -> ValueID {
            graph.resnetBlock2D(p, x, inChannels: inChannels, outChannels: outChannels, side: side, groups: config.normNumGroups, eps: eps,
                                temb: temb, outputScale: scale)
        }

        /// The text encoder's hidden states [N, cross_attention_dim, T] (UNet2DConditionModel only).
        var context: ValueID? = nil

        /// The attention layer of `level`: UNet2DModel's attention block, or UNet2DConditionModel's
        /// Transformer2DModel over the context.
        mutating func attention(_ p: String, _ x: ValueID, level: Int, channels: Int, side: Int, groups: Int, rescale: Double) -> ValueID {
            guard let k = config.conditioning, let context else {
                return graph.attentionBlock(p, x, channels: channels, side: side, heads: config.attentionHeads(channels: channels), groups: groups,
                                            eps: eps, rescale: rescale)
            }
            return graph.transformer2D(p, x, channels: channels, side: side, heads: k.headsPerBlock[level], groups: groups, context: context,
                                       contextChannels: k.crossAttentionDim, contextTokens: k.contextTokens,
                                       linearProjection: k.useLinearProjection, layers: k.transformerLayersPerBlock)
        }

        // MARK: the network

        mutating func build() {
            let c = config
            let ch = c.blockOutChannels
            var side = c.sampleSize
            let sample = graph.input("sample", [batch, c.inChannels, side, side])
            let timesteps = graph.input("timesteps", [batch])
            if let k = c.conditioning { context = graph.input("encoder_hidden_states", [batch, k.crossAttentionDim, k.contextTokens]) }

            // Time embedding: sinusoid [N, ch0] → linear_1 → SiLU → linear_2 → temb [N, D]. Every resnet
            // projects SiLU(temb), so that activation is computed once.
            let sinusoid = graph.value([batch, ch[0]])
            graph.add("time_proj", .timestepEmbedding(timesteps: timesteps, output: sinusoid, dimension: ch[0], flipSinToCos: c.flipSinToCos,
                                                      freqShift: c.freqShift))
            let linear1 = graph.linearParameters("time_embedding.linear_1", out: c.timeEmbedDim, in: ch[0])
            let linear2 = graph.linearParameters("time_embedding.linear_2", out: c.timeEmbedDim, in: c.timeEmbedDim)
            let hidden = graph.linearNode("time_embedding.linear_1", sinusoid, linear1, out: c.timeEmbedDim, in: ch[0], silu: true)
            let temb = graph.linearNode("time_embedding.linear_2", hidden, linear2, out: c.timeEmbedDim, in: c.timeEmbedDim, silu: false)
            graph.markStage("time_embedding", temb)
            let activatedTemb = graph.value([batch, c.timeEmbedDim])
            graph.add("time_embedding.act", .silu(input: temb, output: activatedTemb, count: batch * c.timeEmbedDim))
            let embedding = Graph.TimeEmbedding(activated: activatedTemb, dimension: c.timeEmbedDim)

            var input = sample
            if c.centerInputSample {
                let count = batch * c.inChannels * side * side
                input = graph.value([batch, c.inChannels, side, side])
                graph.add("center_input_sample", .affine(input: sample, output: input, scale: 2, shift: -1, count: count))
            }
            var h = graph.conv2d("conv_in", input, inChannels: c.inChannels, outChannels: ch[0], side: side, kernel: 3)
            graph.markStage("conv_in", h)
            var skips: [(ValueID, Int)] = [(h, ch[0])]

            var channels = ch[0]
            for (i, type) in c.downBlockTypes.enumerated() {
                let p = "down_blocks.\(i)"
                for j in 0 ..< c.layersPerBlock {
                    h = resnet("\(p).resnets.\(j)", h, inChannels: channels, outChannels: ch[i], side: side, temb: embedding, scale: 1)
                    channels = ch[i]
                    if type == .attnDown {
                        h = attention("\(p).attentions.\(j)", h, level: i, channels: channels, side: side, groups: c.normNumGroups, rescale: 1)
                    }
                    skips.append((h, channels))
                }
                if i != ch.count - 1 {
                    let pad = c.downsamplePadding == 1 ? (1, 1, 1, 1) : (0, 0, 1, 1)
                    h = graph.conv2d("\(p).downsamplers.0.conv", h, inChannels: channels, outChannels: channels, side: side, kernel: 3, stride: 2, pad: pad)
                    side /= 2
                    skips.append((h, channels))
                }
                graph.markStage(p, h)
            }

            let mid = ch.last!
            h = resnet("mid_block.resnets.0", h, inChannels: mid, outChannels: mid, side: side, temb: embedding, scale: c.midBlockScaleFactor)
            if c.conditioning != nil {
                // UNetMidBlock2DCrossAttn: the transformer's GroupNorm uses the ResNets' groups; no rescaling.
                h = attention("mid_block.attentions.0", h, level: ch.count - 1, channels: mid, side: side, groups: c.normNumGroups, rescale: 1)
            } else if c.addAttention {
                h = attention("mid_block.attentions.0", h, level: ch.count - 1, channels: mid, side: side, groups: c.midAttentionGroups,
                              rescale: c.midBlockScaleFactor)
            }
            h = resnet("mid_block.resnets.1", h, inChannels: mid, outChannels: mid, side: side, temb: embedding, scale: c.midBlockScaleFactor)
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
                               temb: embedding, scale: 1)
                    channels = out
                    if type == .attnUp {
                        h = attention("\(p).attentions.\(j)", h, level: ch.count - 1 - i, channels: channels, side: side, groups: c.normNumGroups,
                                      rescale: 1)
                    }
                }
                if i != ch.count - 1 {
                    h = graph.upsample2D("\(p).upsamplers.0", h, channels: channels, side: side)
                    side *= 2
                }
                graph.markStage(p, h)
            }

            let normed = graph.groupNorm("conv_norm_out", h, channels: channels, side: side, groups: c.normNumGroups, eps: eps, silu: true)
            graph.markStage("conv_norm_out+silu", normed)
            let output = graph.conv2d("conv_out", normed, inChannels: channels, outChannels: c.outChannels, side: side, kernel: 3)
            graph.markOutput("output", output)
        }
    }
}
