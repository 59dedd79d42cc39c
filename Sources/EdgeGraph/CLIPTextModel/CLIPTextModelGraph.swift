import _EdgeCore

/// transformers' `CLIPTextModel`, written down once: what `CLIPTextModel(input_ids).last_hidden_state`
/// computes with no attention mask, as diffusers' Stable Diffusion pipelines call it.
///
///     h = token_embedding[ids] + position_embedding[0 ..< T]
///     for each layer:  h = h + out_proj(attention(q_proj(LN₁(h)), k_proj(LN₁(h)), v_proj(LN₁(h))))   (causal)
///                      h = h + fc2(act(fc1(LN₂(h))))
///     last_hidden_state = final_layer_norm(h)
///
/// Activations are channel-major, [N, hidden, T], as every other graph here: each `nn.Linear` applied to the
/// tokens is then a 1×1 convolution over a 1 × T image (with the checkpoint's [O, I] weight), and LayerNorm
/// normalises each token's column. Tensor names are the checkpoint's own (`text_model.encoder.layers.0.
/// self_attn.q_proj.weight`) behind `prefix` (`text_encoder.` in a pipeline model file).
public enum CLIPTextModelGraph {
    /// Input `input_ids` [N, T] (token ids as floats: exact below 2²⁴), output `last_hidden_state` [N, hidden, T];
    /// stages `embeddings` and `encoder.layers.i` (the hidden states after each layer, before the final norm).
    /// - tokens: T, at most max_position_embeddings (77: the tokenizer pads every prompt to it).
    public static func graph(_ config: CLIPTextConfig, batch: Int, tokens: Int? = nil, prefix: String = "") -> Graph {
        let c = config
        let t = tokens ?? c.maxPositionEmbeddings
        precondition((1 ... c.maxPositionEmbeddings).contains(t), "CLIPTextModelGraph: \(t) tokens for \(c.maxPositionEmbeddings) positions")
        var g = Graph(batch: batch)
        let d = c.hiddenSize
        let p = "\(prefix)text_model."
        let ids = g.input("input_ids", [batch, t])
        let table = g.parameter("\(p)embeddings.token_embedding.weight", [c.vocabSize, d])
        let positions = g.parameter("\(p)embeddings.position_embedding.weight", [c.maxPositionEmbeddings, d])
        var h = g.value([batch, d, t])
        g.add("\(p)embeddings", .tokenEmbedding(GraphOp.TokenEmbedding(
            ids: ids, output: h, tokens: t, hidden: d, vocabulary: c.vocabSize, table: table, positions: positions)))
        g.markStage("embeddings", h)
        for i in 0 ..< c.numHiddenLayers {
            let l = "\(p)encoder.layers.\(i)."
            let norm1 = g.tokenLayerNorm("\(l)layer_norm1", h, features: d, tokens: t, eps: c.layerNormEps)
            let q = g.tokenLinear("\(l)self_attn.q_proj", norm1, in: d, out: d, tokens: t)
            let k = g.tokenLinear("\(l)self_attn.k_proj", norm1, in: d, out: d, tokens: t)
            let v = g.tokenLinear("\(l)self_attn.v_proj", norm1, in: d, out: d, tokens: t)
            let attended = g.value([batch, d, t])
            g.add("\(l)self_attn", .multiHeadAttention(GraphOp.MultiHeadAttention(
                q: q, k: k, v: v, output: attended, channels: d, heads: c.numAttentionHeads, queries: t, keys: t, causal: true)))
            h = g.tokenLinear("\(l)self_attn.out_proj", attended, in: d, out: d, tokens: t, residual: h)
            let norm2 = g.tokenLayerNorm("\(l)layer_norm2", h, features: d, tokens: t, eps: c.layerNormEps)
            let up = g.tokenLinear("\(l)mlp.fc1", norm2, in: d, out: c.intermediateSize, tokens: t)
            let activated = g.value([batch, c.intermediateSize, t])
            let act: GraphOp.Activation = c.hiddenAct == .gelu ? .gelu : .quickGELU
            g.add("\(l)mlp.activation_fn", .activation(act, input: up, output: activated, count: batch * c.intermediateSize * t))
            h = g.tokenLinear("\(l)mlp.fc2", activated, in: c.intermediateSize, out: d, tokens: t, residual: h)
            g.markStage("encoder.layers.\(i)", h)
        }
        let out = g.tokenLayerNorm("\(p)final_layer_norm", h, features: d, tokens: t, eps: c.layerNormEps)
        g.markOutput("last_hidden_state", out)
        return g
    }
}
