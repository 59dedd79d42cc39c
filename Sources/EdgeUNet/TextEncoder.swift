import _EdgeCore
import _EdgeQuant
import EdgeGraph

/// A transformers `CLIPTextModel` ready to run: `CLIPTextModelGraph` lowered to the backend's kernels over
/// one arena, like `UNet`. `encode` allocates nothing.
///
/// Write token ids (a tokenizer's output: start token, words, end token, padding to T) with `encode`, then read
/// `lastHiddenState` [N, hidden, T], channel-major: the layout the conditional UNet's cross-attention
/// projections read, and the transpose of transformers' [N, T, hidden] `last_hidden_state`.
public final class TextEncoderNetwork: @unchecked Sendable {
    public let config: CLIPTextConfig
    public let batch: Int
    /// T: tokens per sequence.
    public let tokens: Int
    public let threads: Threads
    public let backend: UNetBackend
    /// [N, T] ids as floats, written by `encode`.
    private let ids: UnsafeMutableBufferPointer<Float>
    /// [N, hidden, T].
    public let lastHiddenState: UnsafeMutableBufferPointer<Float>
    private let executable: Executable

    /// The arena's bytes (what `init(arena:)` needs) and the packed weights' bytes, without allocating them.
    public static func memory(_ config: CLIPTextConfig, weights: some WeightSource, prefix: String = "", batch: Int, tokens: Int? = nil,
                              backend: UNetBackend = .fast, threads: Threads = Threads(),
                              int8Activations: Bool? = nil) throws -> PlannedMemory {
        let t = try checkedTokens(config, batch: batch, tokens: tokens)
        return try plannedMemory(CLIPTextModelGraph.graph(config, batch: batch, tokens: t, prefix: prefix), weights: weights, backend: backend,
                                 threads: threads, int8Activations: int8Activations)
    }

    /// - prefix: the component's tensor-name prefix in `weights` (`text_encoder.` in a pipeline model file).
    /// - tokens: T, at most max_position_embeddings (default: all of them, 77 for Stable Diffusion).
    /// - arena: activations placed here (at least `memory(...).arena` bytes) instead of an arena of its own.
    public init(_ config: CLIPTextConfig, weights: some WeightSource, prefix: String = "", batch: Int, tokens: Int? = nil,
                threads: Threads = Threads(), backend: UNetBackend = .fast, int8Activations: Bool? = nil, arena: Arena? = nil) throws {
        let t = try Self.checkedTokens(config, batch: batch, tokens: tokens)
        self.config = config
        self.batch = batch
        self.tokens = t
        self.threads = threads
        self.backend = backend
        let int8 = usesInt8Activations(model: weights, backend: backend, requested: int8Activations)
        let graph = CLIPTextModelGraph.graph(config, batch: batch, tokens: t, prefix: prefix)
        let program = try lower(graph, model: weights, backend: backend, threads: threads, int8: int8)
        executable = Executable(program, weights: weights, batch: batch, threads: threads, arena: arena)
        ids = executable.buffer(graph.inputs[0].value)
        lastHiddenState = executable.buffer(graph.outputs[0].value)
    }

    private static func checkedTokens(_ config: CLIPTextConfig, batch: Int, tokens: Int?) throws -> Int {
        guard batch >= 1 else { throw EdgeError.usage("batch size must be at least 1, got \(batch)") }
        let t = tokens ?? config.maxPositionEmbeddings
        guard (1 ... config.maxPositionEmbeddings).contains(t) else {
            throw EdgeError.usage("a text encoder with \(config.maxPositionEmbeddings) positions cannot read \(t) tokens")
        }
        return t
    }

    public var arenaBytes: Int { executable.arenaBytes }
    public var packedWeightBytes: Int { executable.program.packedBytes }
    public var multiplyAccumulates: Int { executable.program.multiplyAccumulates.reduce(0, +) }

    /// Encodes N sequences of T token ids (row-major [N, T]) into `lastHiddenState`; `observe` sees the graph's
    /// stages (`embeddings`, `encoder.layers.i`). An id outside the vocabulary is an error, before anything runs.
    public func encode(_ tokenIDs: some Collection<Int32>,
                       observe: ((_ name: String, _ values: UnsafeBufferPointer<Float>) -> Void)? = nil) throws {
        guard tokenIDs.count == batch * tokens else {
            throw EdgeError.usage("the text encoder reads \(batch) × \(tokens) token ids, got \(tokenIDs.count)")
        }
        for (i, id) in tokenIDs.enumerated() {
            guard id >= 0 && Int(id) < config.vocabSize else {
                throw EdgeError("token id \(id) is outside the text encoder's vocabulary of \(config.vocabSize)")
            }
            ids[i] = Float(id)
        }
        executable.run(observe: observe)
    }
}
