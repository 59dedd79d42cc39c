import _EdgeCore

/// diffusers' building blocks, each declaring its weights under the checkpoint's names (in the order the
/// module's `__init__` defines them) and then adding its nodes. The model families compose these; a block
/// is written once for all of them, as stable-diffusion.cpp's `ResBlock` or `AttnBlock` are.
extension Graph {
    /// `nn.Conv2d` named `prefix`, k×k over a square `side`×`side` input, padding k/2 on every side unless
    /// `pad`, with a ResNet block's additions folded in (see `GraphOp.Conv2D`). Returns [N, O, Ho, Wo].
    public mutating func conv2d(_ prefix: String, _ input: ValueID, inChannels: Int, outChannels: Int, side: Int, kernel: Int,
                                stride: Int = 1, pad: (top: Int, left: Int, bottom: Int, right: Int)? = nil,
                                channelBias: ValueID? = nil, residual: ValueID? = nil, scale: Float = 1) -> ValueID {
        let weight = parameter("\(prefix).weight", [outChannels, inChannels, kernel, kernel])
        let bias = parameter("\(prefix).bias", [outChannels])
        return conv2dNode(prefix, input, inChannels: inChannels, outChannels: outChannels, side: side, kernel: kernel, stride: stride, pad: pad,
                          weight: weight, bias: bias, channelBias: channelBias, residual: residual, scale: scale)
    }

    /// The node of a convolution whose weights are already declared.
    mutating func conv2dNode(_ name: String, _ input: ValueID, inChannels: Int, outChannels: Int, side: Int, kernel: Int, stride: Int = 1,
                             pad: (top: Int, left: Int, bottom: Int, right: Int)? = nil, weight: ParameterID, bias: ParameterID,
                             channelBias: ValueID? = nil, residual: ValueID? = nil, scale: Float = 1) -> ValueID {
        let p = pad ?? (kernel / 2, kernel / 2, kernel / 2, kernel / 2)
        let shape = Conv2DShape(batch: batch, inChannels: inChannels, outChannels: outChannels, height: side, width: side,
                                kernel: kernel, stride: stride, padTop: p.top, padLeft: p.left, padBottom: p.bottom, padRight: p.right)
        let out = value([batch, outChannels, shape.outHeight, shape.outWidth])
        add(name, .conv2d(GraphOp.Conv2D(shape: shape, input: input, output: out, weight: weight, bias: bias,
                                         channelBias: channelBias, residual: residual, scale: scale)))
        return out
    }

    /// Declares `nn.GroupNorm` `prefix`'s weight and bias [C].
    mutating func normParameters(_ prefix: String, channels: Int) -> (gamma: ParameterID, beta: ParameterID) {
        (parameter("\(prefix).weight", [channels]), parameter("\(prefix).bias", [channels]))
    }

    /// Declares `nn.Linear` `prefix`'s weight [O, I] and bias [O].
    mutating func linearParameters(_ prefix: String, out: Int, in inFeatures: Int) -> (weight: ParameterID, bias: ParameterID) {
        (parameter("\(prefix).weight", [out, inFeatures]), parameter("\(prefix).bias", [out]))
    }

    /// Declares a convolution's weight [O, I, k, k] and bias [O].
    mutating func convParameters(_ prefix: String, out: Int, in inChannels: Int, kernel: Int) -> (weight: ParameterID, bias: ParameterID) {
        (parameter("\(prefix).weight", [out, inChannels, kernel, kernel]), parameter("\(prefix).bias", [out]))
    }

    /// GroupNorm (then SiLU if `silu`) over [N, C, side, side].
    mutating func groupNormNode(_ name: String, _ input: ValueID, _ p: (gamma: ParameterID, beta: ParameterID), channels: Int, side: Int,
                                groups: Int, eps: Double, silu: Bool) -> ValueID {
        let out = value([batch, channels, side, side])
        add(name, .groupNorm(GraphOp.GroupNorm(input: input, output: out, channels: channels, pixels: side * side, groups: groups,
                                               eps: Float(eps), gamma: p.gamma, beta: p.beta, applySiLU: silu)))
        return out
    }

    /// `nn.GroupNorm` named `prefix`, then SiLU if `silu`.
    public mutating func groupNorm(_ prefix: String, _ input: ValueID, channels: Int, side: Int, groups: Int, eps: Double, silu: Bool) -> ValueID {
        let p = normParameters(prefix, channels: channels)
        return groupNormNode(prefix, input, p, channels: channels, side: side, groups: groups, eps: eps, silu: silu)
    }

    /// [rows, I] · Wᵀ + b, then SiLU if `silu`.
    mutating func linearNode(_ name: String, _ input: ValueID, _ p: (weight: ParameterID, bias: ParameterID), out: Int, in inFeatures: Int,
                             silu: Bool) -> ValueID {
        let o = value([batch, out])
        add(name, .linear(GraphOp.Linear(input: input, output: o, rows: batch, outFeatures: out, inFeatures: inFeatures,
                                         weight: p.weight, bias: p.bias, applySiLU: silu)))
        return o
    }

    /// The time embedding a ResNet block projects: SiLU(temb) [N, D], computed once for every block.
    public struct TimeEmbedding {
        public var activated: ValueID
        public var dimension: Int
    }

    /// diffusers `ResnetBlock2D` (time_embedding_norm "default", 1×1 conv_shortcut when the widths differ):
    /// h = conv2(SiLU(GN2(conv1(SiLU(GN1(x))) + time_emb_proj(SiLU(temb))))); out = (shortcut(x) + h) / outputScale.
    /// Without `temb` (the autoencoders' blocks) there is no time_emb_proj.
    public mutating func resnetBlock2D(_ p: String, _ x: ValueID, inChannels: Int, outChannels: Int, side: Int, groups: Int, eps: Double,
                                       temb: TimeEmbedding?, outputScale: Double = 1) -> ValueID {
        let norm1 = normParameters("\(p).norm1", channels: inChannels)
        let conv1 = convParameters("\(p).conv1", out: outChannels, in: inChannels, kernel: 3)
        let proj = temb.map { linearParameters("\(p).time_emb_proj", out: outChannels, in: $0.dimension) }
        let norm2 = normParameters("\(p).norm2", channels: outChannels)
        let conv2 = convParameters("\(p).conv2", out: outChannels, in: outChannels, kernel: 3)
        let shortcut = inChannels == outChannels ? nil : convParameters("\(p).conv_shortcut", out: outChannels, in: inChannels, kernel: 1)

        let h1 = groupNormNode("\(p).norm1", x, norm1, channels: inChannels, side: side, groups: groups, eps: eps, silu: true)
        var projected: ValueID? = nil
        if let temb, let proj {
            projected = linearNode("\(p).time_emb_proj", temb.activated, proj, out: outChannels, in: temb.dimension, silu: false)
        }
        let h2 = conv2dNode("\(p).conv1", h1, inChannels: inChannels, outChannels: outChannels, side: side, kernel: 3,
                            weight: conv1.weight, bias: conv1.bias, channelBias: projected)
        let h3 = groupNormNode("\(p).norm2", h2, norm2, channels: outChannels, side: side, groups: groups, eps: eps, silu: true)
        var residual = x
        if let shortcut {
            residual = conv2dNode("\(p).conv_shortcut", x, inChannels: inChannels, outChannels: outChannels, side: side, kernel: 1,
                                  weight: shortcut.weight, bias: shortcut.bias)
        }
        return conv2dNode("\(p).conv2", h3, inChannels: outChannels, outChannels: outChannels, side: side, kernel: 3,
                          weight: conv2.weight, bias: conv2.bias, residual: residual, scale: Float(1 / outputScale))
    }

    /// diffusers `Attention` as built from a deprecated attention block (`_from_deprecated_attn_block`: UNet2DModel's
    /// attention layers, the autoencoders' mid block), with its residual connection and `rescale_output_factor`:
    /// out = (x + to_out(MHA(to_q(n), to_k(n), to_v(n)))) / rescale, n = GroupNorm(x), over [N, C, side²].
    public mutating func attentionBlock(_ p: String, _ x: ValueID, channels: Int, side: Int, heads: Int, groups: Int, eps: Double,
                                        rescale: Double = 1) -> ValueID {
        let n = normParameters("\(p).group_norm", channels: channels)
        let q = linearParameters("\(p).to_q", out: channels, in: channels), k = linearParameters("\(p).to_k", out: channels, in: channels)
        let v = linearParameters("\(p).to_v", out: channels, in: channels), o = linearParameters("\(p).to_out.0", out: channels, in: channels)
        let out = value([batch, channels, side * side])
        add(p, .attention(GraphOp.Attention(
            input: x, output: out, side: side, channels: channels, heads: heads, groups: groups, eps: Float(eps), rescale: Float(rescale),
            normGamma: n.gamma, normBeta: n.beta, toQ: q.weight, toK: k.weight, toV: v.weight, toOut: o.weight,
            biasQ: q.bias, biasK: k.bias, biasV: v.bias, biasOut: o.bias)))
        return out
    }

    /// diffusers `Upsample2D` with a convolution: nearest-neighbour 2× of [N, C, side, side], then the 3×3
    /// conv `prefix.conv`. Returns [N, C, 2·side, 2·side].
    public mutating func upsample2D(_ prefix: String, _ x: ValueID, channels: Int, side: Int) -> ValueID {
        let upsampled = value([batch, channels, 2 * side, 2 * side])
        add("\(prefix).interpolate", .upsampleNearest2x(input: x, planes: batch * channels, height: side, width: side, output: upsampled))
        return conv2d("\(prefix).conv", upsampled, inChannels: channels, outChannels: channels, side: 2 * side, kernel: 3)
    }

    /// `nn.Linear` named `prefix` applied to each of the T tokens of channel-major [N, I, T] activations: a 1×1
    /// convolution over a 1 × T image with the checkpoint's [O, I] weight, plus `residual` [N, O, T] if given.
    /// Without `bias` the layer has none (diffusers' attention projections: `bias=False`).
    public mutating func tokenLinear(_ prefix: String, _ input: ValueID, in inFeatures: Int, out: Int, tokens: Int,
                                     residual: ValueID? = nil, bias hasBias: Bool = true) -> ValueID {
        let p: (weight: ParameterID, bias: ParameterID?) = hasBias ? linearParameters(prefix, out: out, in: inFeatures)
            : (parameter("\(prefix).weight", [out, inFeatures]), nil)
        let shape = Conv2DShape(batch: batch, inChannels: inFeatures, outChannels: out, height: 1, width: tokens, kernel: 1,
                                padTop: 0, padLeft: 0, padBottom: 0, padRight: 0)
        let o = value([batch, out, tokens])
        add(prefix, .conv2d(GraphOp.Conv2D(shape: shape, input: input, output: o, weight: p.weight, bias: p.bias, residual: residual)))
        return o
    }

    /// `nn.LayerNorm` named `prefix` over each token of channel-major [N, C, T] activations.
    public mutating func tokenLayerNorm(_ prefix: String, _ input: ValueID, features: Int, tokens: Int, eps: Double) -> ValueID {
        let p = normParameters(prefix, channels: features)
        let o = value([batch, features, tokens])
        add(prefix, .layerNorm(GraphOp.LayerNorm(input: input, output: o, features: features, tokens: tokens, eps: Float(eps),
                                                 gamma: p.gamma, beta: p.beta)))
        return o
    }

    /// diffusers `Transformer2DModel` with continuous input, as Stable Diffusion's UNet uses it, over [N, C, side²]
    /// and a context [N, D_ctx, T_ctx]:
    ///
    ///     h = proj_in(GroupNorm(x))          (eps 1e-6; a 1×1 conv, or with `linearProjection` an nn.Linear)
    ///     for each block: h = BasicTransformerBlock(h, context)
    ///     out = proj_out(h) + x
    public mutating func transformer2D(_ p: String, _ x: ValueID, channels: Int, side: Int, heads: Int, groups: Int, context: ValueID,
                                       contextChannels: Int, contextTokens: Int, linearProjection: Bool, layers: Int) -> ValueID {
        let tokens = side * side
        let normed = groupNorm("\(p).norm", x, channels: channels, side: side, groups: groups, eps: 1e-6, silu: false)
        var h = linearProjection ? tokenLinear("\(p).proj_in", normed, in: channels, out: channels, tokens: tokens)
            : conv2d("\(p).proj_in", normed, inChannels: channels, outChannels: channels, side: side, kernel: 1)
        for j in 0 ..< layers {
            h = basicTransformerBlock("\(p).transformer_blocks.\(j)", h, channels: channels, tokens: tokens, heads: heads, context: context,
                                      contextChannels: contextChannels, contextTokens: contextTokens)
        }
        return linearProjection ? tokenLinear("\(p).proj_out", h, in: channels, out: channels, tokens: tokens, residual: x)
            : conv2d("\(p).proj_out", h, inChannels: channels, outChannels: channels, side: side, kernel: 1, residual: x)
    }

    /// diffusers `BasicTransformerBlock` (norm_type "layer_norm", GEGLU feed-forward) over channel-major tokens:
    ///
    ///     h = h + attn1(LN₁(h))              self-attention; q, k, v without bias
    ///     h = h + attn2(LN₂(h), context)     cross-attention: keys and values projected from the context
    ///     h = h + ff(LN₃(h))                 ff.net.0.proj → [a, g] → a · gelu(g) → ff.net.2 (inner 4C)
    mutating func basicTransformerBlock(_ p: String, _ x: ValueID, channels c: Int, tokens t: Int, heads: Int, context: ValueID,
                                        contextChannels: Int, contextTokens: Int) -> ValueID {
        func attend(_ name: String, _ q: ValueID, _ k: ValueID, _ v: ValueID, keys: Int) -> ValueID {
            let o = value([batch, c, t])
            add(name, .multiHeadAttention(GraphOp.MultiHeadAttention(q: q, k: k, v: v, output: o, channels: c, heads: heads, queries: t,
                                                                     keys: keys, causal: false)))
            return o
        }
        var h = x
        let n1 = tokenLayerNorm("\(p).norm1", h, features: c, tokens: t, eps: 1e-5)
        let selfAttended = attend("\(p).attn1", tokenLinear("\(p).attn1.to_q", n1, in: c, out: c, tokens: t, bias: false),
                                  tokenLinear("\(p).attn1.to_k", n1, in: c, out: c, tokens: t, bias: false),
                                  tokenLinear("\(p).attn1.to_v", n1, in: c, out: c, tokens: t, bias: false), keys: t)
        h = tokenLinear("\(p).attn1.to_out.0", selfAttended, in: c, out: c, tokens: t, residual: h)
        let n2 = tokenLayerNorm("\(p).norm2", h, features: c, tokens: t, eps: 1e-5)
        let crossAttended = attend("\(p).attn2", tokenLinear("\(p).attn2.to_q", n2, in: c, out: c, tokens: t, bias: false),
                                   tokenLinear("\(p).attn2.to_k", context, in: contextChannels, out: c, tokens: contextTokens, bias: false),
                                   tokenLinear("\(p).attn2.to_v", context, in: contextChannels, out: c, tokens: contextTokens, bias: false),
                                   keys: contextTokens)
        h = tokenLinear("\(p).attn2.to_out.0", crossAttended, in: c, out: c, tokens: t, residual: h)
        let n3 = tokenLayerNorm("\(p).norm3", h, features: c, tokens: t, eps: 1e-5)
        let inner = 4 * c
        let projected = tokenLinear("\(p).ff.net.0.proj", n3, in: c, out: 2 * inner, tokens: t)
        let gated = value([batch, inner, t])
        add("\(p).ff.net.0", .geglu(input: projected, output: gated, features: inner, tokens: t))
        return tokenLinear("\(p).ff.net.2", gated, in: inner, out: c, tokens: t, residual: h)
    }
}
