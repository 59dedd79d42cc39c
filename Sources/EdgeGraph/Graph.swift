import _EdgeCore

/// An activation tensor of a `Graph`, by index into `Graph.values`.
public struct ValueID: Hashable, Sendable {
    public let index: Int
}

/// A weight tensor of a `Graph`, by index into `Graph.parameters`.
public struct ParameterID: Hashable, Sendable {
    public let index: Int
}

/// A network written down once, as a straight-line list of nodes over activation values and named weights,
/// for a fixed batch. Nothing here computes or holds weights: it is the description that everything else is
/// derived from — the parameter list the converter checks a checkpoint against (`parameters`), the compute
/// count (`multiplyAccumulateCount`), and, in EdgeUNet, the fusion pass, the lowering to kernels and the
/// memory plan. One builder per model family produces it (`UNet2DModelGraph`), using the checkpoint's own
/// tensor names, so adding a family is a config reader and a builder.
///
/// Nodes are in execution order; a node reads values written by earlier nodes (or graph inputs) and writes
/// its own output. Values are NCHW-style fp32 tensors; `shape` is for people and for size, never for
/// strides (every value is dense).
public struct Graph: Sendable {
    public struct Value: Sendable {
        public var shape: [Int]
        public var floats: Int { shape.reduce(1, *) }
    }

    public struct Parameter: Sendable {
        /// The checkpoint's tensor name, e.g. `down_blocks.1.resnets.0.conv1.weight`.
        public var name: String
        public var shape: [Int]
        public var count: Int { shape.reduce(1, *) }
    }

    public struct Node: Sendable {
        /// The checkpoint name of the module the node computes (`up_blocks.0.resnets.2.conv2`), for per-layer
        /// timings and error messages.
        public var name: String
        public var op: GraphOp
    }

    /// A named intermediate a caller may observe (`time_embedding`, `down_blocks.2`, ...), for debugging
    /// against diffusers' module outputs.
    public struct Stage: Sendable {
        public var name: String
        public var value: ValueID
    }

    public let batch: Int
    public private(set) var values: [Value] = []
    /// Every weight tensor, in the order the checkpoint's modules declare them.
    public private(set) var parameters: [Parameter] = []
    public internal(set) var nodes: [Node] = []
    public private(set) var stages: [Stage] = []
    /// Values written before the first node (the sample, the timesteps) and read after the last (the output).
    public private(set) var inputs: [(name: String, value: ValueID)] = []
    public private(set) var outputs: [(name: String, value: ValueID)] = []

    public init(batch: Int) {
        precondition(batch >= 1)
        self.batch = batch
    }

    // MARK: building

    /// A new activation value of `shape`.
    public mutating func value(_ shape: [Int]) -> ValueID {
        values.append(Value(shape: shape))
        return ValueID(index: values.count - 1)
    }

    /// Declares the weight tensor `name` of `shape`.
    public mutating func parameter(_ name: String, _ shape: [Int]) -> ParameterID {
        parameters.append(Parameter(name: name, shape: shape))
        return ParameterID(index: parameters.count - 1)
    }

    public mutating func input(_ name: String, _ shape: [Int]) -> ValueID {
        let v = value(shape)
        inputs.append((name, v))
        return v
    }

    public mutating func markOutput(_ name: String, _ v: ValueID) { outputs.append((name, v)) }

    public mutating func add(_ name: String, _ op: GraphOp) { nodes.append(Node(name: name, op: op)) }

    public mutating func markStage(_ name: String, _ v: ValueID) { stages.append(Stage(name: name, value: v)) }

    // MARK: derived

    public func input(named name: String) -> ValueID? { inputs.first { $0.name == name }?.value }
    public func output(named name: String) -> ValueID? { outputs.first { $0.name == name }?.value }

    /// Weight values of all parameters.
    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.count } }

    /// Multiply-accumulates of one evaluation of the whole batch, counted over convolutions, linear layers and
    /// attention matmuls (norms and element-wise work excluded; FLOPs = 2 · MACs). In floating point so that a
    /// hostile config, checked against a limit with this, cannot overflow: exact below 2⁵³.
    public var multiplyAccumulateCount: Double { nodes.reduce(0) { $0 + $1.op.multiplyAccumulates(batch: batch) } }
}

/// What a node computes. Attributes that shape the computation are here; which kernel runs it, with which
/// packed weights and scratch, is the lowering's choice (EdgeUNet), made once per node.
public enum GraphOp: Sendable {
    /// timesteps [N] → sinusoidal embedding [N, dimension] (diffusers `Timesteps`).
    case timestepEmbedding(timesteps: ValueID, output: ValueID, dimension: Int, flipSinToCos: Bool, freqShift: Int)
    /// output [rows, O] = input [rows, I] · Wᵀ + b (weight [O, I], bias [O]), optionally followed by SiLU.
    case linear(Linear)
    /// output = input · scale + shift over `count` values.
    case affine(input: ValueID, output: ValueID, scale: Float, shift: Float, count: Int)
    /// output = SiLU(input) over `count` values.
    case silu(input: ValueID, output: ValueID, count: Int)
    /// [N, C, P] → [N, C, P] (gamma, beta [C]), optionally followed by SiLU.
    case groupNorm(GroupNorm)
    case conv2d(Conv2D)
    /// [N, Ca, P] ++ [N, Cb, P] → [N, Ca + Cb, P].
    case concat(a: ValueID, channelsA: Int, b: ValueID, channelsB: Int, pixels: Int, output: ValueID)
    /// [N·C, H, W] → [N·C, 2H, 2W], nearest neighbour.
    case upsampleNearest2x(input: ValueID, planes: Int, height: Int, width: Int, output: ValueID)
    /// diffusers' `Attention` as built from a deprecated attention block: GroupNorm, Q/K/V projections,
    /// multi-head attention, output projection, residual add, division by `rescale`.
    case attention(Attention)
    /// diffusers' `VectorQuantizer` (VQModel): each pixel's `dimension`-vector z of input [N, E, P] replaced by
    /// its nearest codebook row e_k (Euclidean; the first on a tie, as torch.argmin), written as z + (e_k − z)
    /// as diffusers computes it; codebook [entries, E].
    case vectorQuantize(input: ValueID, output: ValueID, codebook: ParameterID, entries: Int, dimension: Int, pixels: Int)
    /// Token ids [N, T] (as floats) → [N, D, T]: each token's row of the embedding table plus its position's
    /// row (transformers' `CLIPTextEmbeddings`).
    case tokenEmbedding(TokenEmbedding)
    /// [N, C, T] → [N, C, T]: each token normalised over its C channels (`nn.LayerNorm(C)` on token-major
    /// hidden states).
    case layerNorm(LayerNorm)
    /// output = f(input) over `count` values.
    case activation(Activation, input: ValueID, output: ValueID, count: Int)
    /// Multi-head scaled dot-product attention of q [N, C, Tq] over keys k and values v [N, C, Tk], scale 1/√d,
    /// optionally causal (query i sees keys j ≤ i): the core of transformers' `CLIPAttention` and diffusers'
    /// `Attention`, whose projections are separate nodes.
    case multiHeadAttention(MultiHeadAttention)
    /// diffusers' `GEGLU` after its projection: input [N, 2F, T] is [a; g] along channels, output [N, F, T] =
    /// a · gelu(g).
    case geglu(input: ValueID, output: ValueID, features: Int, tokens: Int)

    public enum Activation: String, Sendable {
        /// x · Φ(x), torch's exact GELU.
        case gelu
        /// x · σ(1.702·x), OpenAI CLIP's.
        case quickGELU = "quick_gelu"
    }

    public struct TokenEmbedding: Sendable {
        /// [N, T] ids in 0 ..< vocabulary, stored as floats.
        public var ids: ValueID, output: ValueID
        public var tokens: Int, hidden: Int, vocabulary: Int
        /// [vocabulary, hidden] and [positions ≥ tokens, hidden].
        public var table: ParameterID, positions: ParameterID
    }

    public struct LayerNorm: Sendable {
        public var input: ValueID, output: ValueID
        public var features: Int, tokens: Int
        public var eps: Float
        public var gamma: ParameterID, beta: ParameterID
    }

    public struct MultiHeadAttention: Sendable {
        public var q: ValueID, k: ValueID, v: ValueID, output: ValueID
        public var channels: Int, heads: Int, queries: Int, keys: Int
        public var causal: Bool
    }

    public struct Linear: Sendable {
        public var input: ValueID, output: ValueID
        public var rows: Int, outFeatures: Int, inFeatures: Int
        public var weight: ParameterID, bias: ParameterID
        public var applySiLU: Bool
    }

    public struct GroupNorm: Sendable {
        public var input: ValueID, output: ValueID
        public var channels: Int, pixels: Int, groups: Int
        public var eps: Float
        public var gamma: ParameterID, beta: ParameterID
        public var applySiLU: Bool
    }

    /// output = (conv(input) + bias + channelBias[n, o] + residual) · scale: a convolution with what follows it
    /// in a ResNet block folded in, as diffusers' `ResnetBlock2D` computes it.
    public struct Conv2D: Sendable {
        public var shape: Conv2DShape
        /// With `upsampledInput`, `input` is the half-size image and `shape` describes its 2× nearest-neighbour
        /// upsampling: set only by `foldingUpsampleIntoConvolutions()`, never by a builder.
        public var upsampledInput = false
        public var input: ValueID, output: ValueID
        /// [O, I, k, k] and [O] (nil: a layer without bias, as diffusers' attention projections).
        public var weight: ParameterID, bias: ParameterID?
        /// [N, O], added to every pixel of its channel: a ResNet block's time-embedding projection.
        public var channelBias: ValueID? = nil
        /// [N, O, Ho, Wo]: the ResNet block's shortcut.
        public var residual: ValueID? = nil
        public var scale: Float = 1
    }

    public struct Attention: Sendable {
        /// [N, C, T], T = side².
        public var input: ValueID, output: ValueID
        public var side: Int, channels: Int, heads: Int, groups: Int
        public var eps: Float
        public var rescale: Float
        public var normGamma: ParameterID, normBeta: ParameterID
        /// Each [C, C] with a [C] bias.
        public var toQ: ParameterID, toK: ParameterID, toV: ParameterID, toOut: ParameterID
        public var biasQ: ParameterID, biasK: ParameterID, biasV: ParameterID, biasOut: ParameterID
        public var tokens: Int { side * side }

        /// The Q, K, V and output projections are 1×1 convolutions over the [N, C, T] activations.
        public func projection(batch: Int) -> Conv2DShape {
            Conv2DShape(batch: batch, inChannels: channels, outChannels: channels, height: side, width: side, kernel: 1,
                        padTop: 0, padLeft: 0, padBottom: 0, padRight: 0)
        }
    }
}

extension GraphOp {
    /// Values the node reads.
    public var inputs: [ValueID] {
        switch self {
        case let .timestepEmbedding(t, _, _, _, _): [t]
        case let .linear(l): [l.input]
        case let .affine(i, _, _, _, _): [i]
        case let .silu(i, _, _): [i]
        case let .groupNorm(g): [g.input]
        case let .conv2d(c): [c.input] + [c.channelBias, c.residual].compactMap { $0 }
        case let .concat(a, _, b, _, _, _): [a, b]
        case let .upsampleNearest2x(i, _, _, _, _): [i]
        case let .attention(a): [a.input]
        case let .vectorQuantize(i, _, _, _, _, _): [i]
        case let .tokenEmbedding(e): [e.ids]
        case let .layerNorm(l): [l.input]
        case let .activation(_, i, _, _): [i]
        case let .multiHeadAttention(a): [a.q, a.k, a.v]
        case let .geglu(i, _, _, _): [i]
        }
    }

    /// The value the node writes.
    public var output: ValueID {
        switch self {
        case let .timestepEmbedding(_, o, _, _, _): o
        case let .linear(l): l.output
        case let .affine(_, o, _, _, _): o
        case let .silu(_, o, _): o
        case let .groupNorm(g): g.output
        case let .conv2d(c): c.output
        case let .concat(_, _, _, _, _, o): o
        case let .upsampleNearest2x(_, _, _, _, o): o
        case let .attention(a): a.output
        case let .vectorQuantize(_, o, _, _, _, _): o
        case let .tokenEmbedding(e): e.output
        case let .layerNorm(l): l.output
        case let .activation(_, _, o, _): o
        case let .multiHeadAttention(a): a.output
        case let .geglu(_, o, _, _): o
        }
    }

    /// Weights the node reads.
    public var parameters: [ParameterID] {
        switch self {
        case let .linear(l): [l.weight, l.bias]
        case let .groupNorm(g): [g.gamma, g.beta]
        case let .conv2d(c): [c.weight] + [c.bias].compactMap { $0 }
        case let .attention(a): [a.normGamma, a.normBeta, a.toQ, a.biasQ, a.toK, a.biasK, a.toV, a.biasV, a.toOut, a.biasOut]
        case let .vectorQuantize(_, _, codebook, _, _, _): [codebook]
        case let .tokenEmbedding(e): [e.table, e.positions]
        case let .layerNorm(l): [l.gamma, l.beta]
        default: []
        }
    }

    /// Short name of what the node computes, as `bench --json` reports it.
    public var kind: String {
        switch self {
        case .timestepEmbedding: "timestep_embedding"
        case .linear: "linear"
        case .affine: "affine"
        case .silu: "silu"
        case let .groupNorm(g): g.applySiLU ? "group_norm_silu" : "group_norm"
        case let .conv2d(c):
            c.upsampledInput ? "conv\(c.shape.kernel)x\(c.shape.kernel)_upsampled" : "conv\(c.shape.kernel)x\(c.shape.kernel)_s\(c.shape.stride)"
        case .concat: "concat"
        case .upsampleNearest2x: "upsample_nearest"
        case .attention: "attention"
        case .vectorQuantize: "vector_quantize"
        case .tokenEmbedding: "token_embedding"
        case .layerNorm: "layer_norm"
        case let .activation(f, _, _, _): f.rawValue
        case let .multiHeadAttention(a): a.causal ? "causal_attention" : "multi_head_attention"
        case .geglu: "geglu"
        }
    }

    /// Multiply-accumulates for `batch` images: a convolution's N·O·Ho·Wo·I·k², a linear layer's rows·O·I,
    /// an attention block's N·(4·T·C² + 2·T²·C) (four projections, Q·Kᵀ and the product with V), a bare
    /// multi-head attention's N·2·Tq·Tk·C (causal: N·Tq·(Tq + 1)·C, the pairs j ≤ i it computes), a vector
    /// quantiser's N·P·K·E (every pixel's distance to every codebook row); 0 for element-wise ops, norms and
    /// embedding lookups.
    public func multiplyAccumulates(batch: Int) -> Double {
        switch self {
        case let .linear(l): return Double(l.rows) * Double(l.outFeatures) * Double(l.inFeatures)
        case let .conv2d(c):
            let s = c.shape
            return Double(s.batch) * Double(s.outChannels) * Double(s.outHeight) * Double(s.outWidth) * Double(s.fanIn)
        case let .attention(a):
            let (t, ch) = (Double(a.tokens), Double(a.channels))
            return Double(batch) * (4 * t * ch * ch + 2 * t * t * ch)
        case let .vectorQuantize(_, _, _, entries, dimension, pixels):
            return Double(batch) * Double(pixels) * Double(entries) * Double(dimension)
        case let .multiHeadAttention(a):
            let pairs = a.causal ? Double(a.queries) * Double(a.queries + 1) / 2 : Double(a.queries) * Double(a.keys)
            return Double(batch) * 2 * pairs * Double(a.channels)
        default: return 0
        }
    }
}

extension Graph {
    /// The same graph with every nearest-2× upsampling whose only reader is a convolution folded into that
    /// convolution's reads (`Conv2D.upsampledInput`): the fast backend's convolutions read the half-size image
    /// directly, so the 4×-sized upsampled value is never written. Stages on a folded value move to the
    /// convolution's output.
    public func foldingUpsampleIntoConvolutions() -> Graph {
        var readers = [Int](repeating: 0, count: values.count)
        for node in nodes { for v in node.op.inputs { readers[v.index] += 1 } }
        for o in outputs { readers[o.value.index] += 1 }
        var folded = self
        folded.nodes = []
        var i = 0
        while i < nodes.count {
            if case let .upsampleNearest2x(source, _, _, _, upsampled) = nodes[i].op, i + 1 < nodes.count,
               case var .conv2d(conv) = nodes[i + 1].op, conv.input == upsampled, !conv.upsampledInput,
               readers[upsampled.index] == 1, conv.shape.stride == 1 {
                conv.input = source
                conv.upsampledInput = true
                folded.nodes.append(Node(name: nodes[i + 1].name, op: .conv2d(conv)))
                folded.stages = folded.stages.map { $0.value == upsampled ? Stage(name: $0.name, value: conv.output) : $0 }
                i += 2
            } else {
                folded.nodes.append(nodes[i])
                i += 1
            }
        }
        return folded
    }
}
