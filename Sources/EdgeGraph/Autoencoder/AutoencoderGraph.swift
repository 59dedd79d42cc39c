import _EdgeCore

/// diffusers' `VQModel` and `AutoencoderKL`, written down once: `decode` (what `.decode(h).sample` computes)
/// and `encode` (what `.encode(x)` computes before sampling: VQ latents, KL moments). Both are `Encoder` /
/// `Decoder` of `models/autoencoders/vae.py` (GroupNorm eps 1e-6, ResNet blocks without a time embedding, a
/// mid block of ResNet + single-head attention + ResNet) around the model's own middle: VQ's quant_conv,
/// `VectorQuantizer` and post_quant_conv, KL's quant_conv and post_quant_conv.
///
/// Tensor names are the checkpoint's own (`decoder.up_blocks.0.resnets.1.conv2.weight`) behind `prefix`, the
/// pipeline component's folder and a dot (`vqvae.`, `vae.`) in a pipeline model file.
public enum AutoencoderGraph {
    /// diffusers fixes the autoencoders' GroupNorm eps (Encoder, Decoder and their blocks).
    static let eps = 1e-6

    /// Input `latents` [N, E, h, w] (E = `embedDim`: what `decode` receives, before any quantisation),
    /// output `image` [N, out_channels, H, W]. With `quantize` (VQ only) the latents go through the codebook
    /// first, as `VQModel.decode(h, force_not_quantize=False)`; without, as `force_not_quantize=True`.
    /// - latentSide: h = w of the latents (default: sample_size / 2^(levels − 1)); a pipeline decodes what its
    ///   UNet makes, whatever the autoencoder's config says its sample size is.
    public static func decoder(_ config: AutoencoderConfig, batch: Int, prefix: String = "", quantize: Bool = true,
                               latentSide: Int? = nil) -> Graph {
        var g = Graph(batch: batch)
        let c = config
        let side = latentSide ?? c.latentSide
        var h = g.input("latents", [batch, c.embedDim, side, side])
        if c.kind == .vq && quantize {
            let codebook = g.parameter("\(prefix)quantize.embedding.weight", [c.numVQEmbeddings, c.embedDim])
            let quantized = g.value([batch, c.embedDim, side, side])
            g.add("\(prefix)quantize", .vectorQuantize(input: h, output: quantized, codebook: codebook, entries: c.numVQEmbeddings,
                                                      dimension: c.embedDim, pixels: side * side))
            g.markStage("quantize", quantized)
            h = quantized
        }
        if c.kind == .vq || c.usePostQuantConv {
            h = g.conv2d("\(prefix)post_quant_conv", h, inChannels: c.embedDim, outChannels: c.latentChannels, side: side, kernel: 1)
        }
        h = decoderBody(&g, c, h, prefix: "\(prefix)decoder.", side: side)
        g.markOutput("image", h)
        return g
    }

    /// Input `image` [N, in_channels, H, W]; output `latents`: VQ [N, E, h, w] (`VQModel.encode(x).latents`,
    /// after quant_conv, before quantisation), KL [N, 2·latent_channels, h, w] (the moments: mean, then logvar
    /// before diffusers' clamp to [−30, 20]).
    /// - side: the image's H = W (default: sample_size), a multiple of 2^(levels − 1).
    public static func encoder(_ config: AutoencoderConfig, batch: Int, prefix: String = "", side imageSide: Int? = nil) -> Graph {
        var g = Graph(batch: batch)
        let c = config
        let ch = c.blockOutChannels
        var side = imageSide ?? c.sampleSize
        let image = g.input("image", [batch, c.inChannels, side, side])
        let e = "\(prefix)encoder."
        var h = g.conv2d("\(e)conv_in", image, inChannels: c.inChannels, outChannels: ch[0], side: side, kernel: 3)
        var channels = ch[0]
        for i in ch.indices {
            for j in 0 ..< c.layersPerBlock {
                h = g.resnetBlock2D("\(e)down_blocks.\(i).resnets.\(j)", h, inChannels: channels, outChannels: ch[i], side: side,
                                    groups: c.normNumGroups, eps: eps, temb: nil)
                channels = ch[i]
            }
            if i != ch.count - 1 {
                // Downsample2D(use_conv=True, padding=0) pads right and bottom by one, then a stride-2 conv.
                h = g.conv2d("\(e)down_blocks.\(i).downsamplers.0.conv", h, inChannels: channels, outChannels: channels, side: side,
                             kernel: 3, stride: 2, pad: (0, 0, 1, 1))
                side /= 2
            }
            g.markStage("encoder.down_blocks.\(i)", h)
        }
        h = midBlock(&g, c, h, prefix: "\(e)mid_block", side: side)
        h = g.groupNorm("\(e)conv_norm_out", h, channels: channels, side: side, groups: c.normNumGroups, eps: eps, silu: true)
        let moments = c.kind == .kl ? 2 * c.latentChannels : c.latentChannels
        h = g.conv2d("\(e)conv_out", h, inChannels: channels, outChannels: moments, side: side, kernel: 3)
        if c.kind == .vq || c.useQuantConv {
            let out = c.kind == .vq ? c.embedDim : moments
            h = g.conv2d("\(prefix)quant_conv", h, inChannels: moments, outChannels: out, side: side, kernel: 1)
        }
        g.markOutput("latents", h)
        return g
    }

    /// Every weight of the model (the encoder's, then the decoder's with the codebook), by the checkpoint's
    /// names and shapes: what the converter checks a checkpoint against. The two halves share none.
    public static func parameters(_ config: AutoencoderConfig, prefix: String = "") -> [Graph.Parameter] {
        encoder(config, batch: 1, prefix: prefix).parameters + decoder(config, batch: 1, prefix: prefix).parameters
    }

    /// `UNetMidBlock2D` without a time embedding: ResNet, attention over all channels as one head, ResNet.
    static func midBlock(_ g: inout Graph, _ c: AutoencoderConfig, _ x: ValueID, prefix: String, side: Int) -> ValueID {
        let channels = c.blockOutChannels.last!
        var h = g.resnetBlock2D("\(prefix).resnets.0", x, inChannels: channels, outChannels: channels, side: side, groups: c.normNumGroups,
                                eps: eps, temb: nil)
        if c.midBlockAddAttention {
            h = g.attentionBlock("\(prefix).attentions.0", h, channels: channels, side: side, heads: 1, groups: c.normNumGroups, eps: eps)
        }
        return g.resnetBlock2D("\(prefix).resnets.1", h, inChannels: channels, outChannels: channels, side: side, groups: c.normNumGroups,
                               eps: eps, temb: nil)
    }

    /// `Decoder.forward`: conv_in, mid block, `UpDecoderBlock2D`s (layers_per_block + 1 ResNet blocks, then a
    /// nearest-2× upsampler and conv but in the last), GroupNorm + SiLU, conv_out.
    static func decoderBody(_ g: inout Graph, _ c: AutoencoderConfig, _ x: ValueID, prefix d: String, side latentSide: Int) -> ValueID {
        let reversed = Array(c.blockOutChannels.reversed())
        var side = latentSide
        var h = g.conv2d("\(d)conv_in", x, inChannels: c.latentChannels, outChannels: reversed[0], side: side, kernel: 3)
        h = midBlock(&g, c, h, prefix: "\(d)mid_block", side: side)
        g.markStage("decoder.mid_block", h)
        var channels = reversed[0]
        for i in reversed.indices {
            for j in 0 ... c.layersPerBlock {
                h = g.resnetBlock2D("\(d)up_blocks.\(i).resnets.\(j)", h, inChannels: channels, outChannels: reversed[i], side: side,
                                    groups: c.normNumGroups, eps: eps, temb: nil)
                channels = reversed[i]
            }
            if i != reversed.count - 1 {
                h = g.upsample2D("\(d)up_blocks.\(i).upsamplers.0", h, channels: channels, side: side)
                side *= 2
            }
            g.markStage("decoder.up_blocks.\(i)", h)
        }
        h = g.groupNorm("\(d)conv_norm_out", h, channels: channels, side: side, groups: c.normNumGroups, eps: eps, silu: true)
        return g.conv2d("\(d)conv_out", h, inChannels: channels, outChannels: c.outChannels, side: side, kernel: 3)
    }
}
