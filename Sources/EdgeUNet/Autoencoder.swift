import _EdgeCore
import _EdgeQuant
import EdgeGraph

/// One half of a diffusers `VQModel` or `AutoencoderKL` ready to run: `AutoencoderGraph.decoder` or
/// `.encoder` lowered to the backend's kernels over one arena, like `UNet`. `run()` allocates nothing.
///
/// Decoder: write latents (what `.decode` receives) into `input` [N, E, h, w], call `run()`, read the image
/// (before `/2 + 0.5` and the clamp) from `output` [N, out_channels, H, W]. Encoder: image [N, in_channels,
/// H, W] in, latents (VQ) or moments (KL: mean, then logvar) out.
public final class AutoencoderNetwork: @unchecked Sendable {
    public enum Half: Sendable {
        /// `quantize` false is VQModel.decode's `force_not_quantize=True`; ignored for KL.
        case decoder(quantize: Bool)
        case encoder
    }

    public let config: AutoencoderConfig
    public let batch: Int
    public let input: UnsafeMutableBufferPointer<Float>
    public let output: UnsafeMutableBufferPointer<Float>
    public let threads: Threads
    public let backend: UNetBackend
    public let int8Activations: Bool
    private let executable: Executable

    /// - latentSide: the latents' h = w (decoder: its input; encoder: its output); nil: the config's.
    static func graph(_ config: AutoencoderConfig, _ half: Half, batch: Int, prefix: String, latentSide: Int?) -> Graph {
        switch half {
        case let .decoder(quantize): AutoencoderGraph.decoder(config, batch: batch, prefix: prefix, quantize: quantize, latentSide: latentSide)
        case .encoder: AutoencoderGraph.encoder(config, batch: batch, prefix: prefix, side: latentSide.map { $0 << (config.levels - 1) })
        }
    }

    /// Bytes of arena and packed weights the network needs, without allocating them.
    public static func workingBytes(_ config: AutoencoderConfig, _ half: Half, weights: some WeightSource, prefix: String = "", batch: Int,
                                    latentSide: Int? = nil, backend: UNetBackend = .fast, threads: Threads = Threads(),
                                    int8Activations: Bool? = nil) throws -> Int {
        let m = try memory(config, half, weights: weights, prefix: prefix, batch: batch, latentSide: latentSide, backend: backend,
                           threads: threads, int8Activations: int8Activations)
        return m.arena + m.packedWeights
    }

    /// The arena's bytes (what `init(arena:)` needs) and the packed weights' bytes.
    public static func memory(_ config: AutoencoderConfig, _ half: Half, weights: some WeightSource, prefix: String = "", batch: Int,
                              latentSide: Int? = nil, backend: UNetBackend = .fast, threads: Threads = Threads(),
                              int8Activations: Bool? = nil) throws -> PlannedMemory {
        guard batch >= 1 else { throw EdgeError.usage("batch size must be at least 1, got \(batch)") }
        return try plannedMemory(graph(config, half, batch: batch, prefix: prefix, latentSide: latentSide), weights: weights, backend: backend,
                                 threads: threads, int8Activations: int8Activations)
    }

    /// - prefix: the component's tensor-name prefix in `weights` (`vqvae.` in a pipeline model file).
    /// - arena: activations placed here (at least `memory(...).arena` bytes) instead of an arena of its own.
    public init(_ config: AutoencoderConfig, _ half: Half, weights: some WeightSource, prefix: String = "", batch: Int,
                latentSide: Int? = nil, threads: Threads = Threads(), backend: UNetBackend = .fast, int8Activations: Bool? = nil,
                arena: Arena? = nil) throws {
        guard batch >= 1 else { throw EdgeError.usage("batch size must be at least 1, got \(batch)") }
        self.config = config
        self.batch = batch
        self.threads = threads
        self.backend = backend
        let int8 = usesInt8Activations(model: weights, backend: backend, requested: int8Activations)
        self.int8Activations = int8
        let graph = Self.graph(config, half, batch: batch, prefix: prefix, latentSide: latentSide)
        let program = try lower(graph, model: weights, backend: backend, threads: threads, int8: int8)
        executable = Executable(program, weights: weights, batch: batch, threads: threads, arena: arena)
        input = executable.buffer(graph.inputs[0].value)
        output = executable.buffer(graph.outputs[0].value)
        let shapes = (graph.values[graph.inputs[0].value.index].shape, graph.values[graph.outputs[0].value.index].shape)
        (inputSide, outputSide) = (shapes.0[2], shapes.1[2])
    }

    /// H = W of `input` and `output`.
    public let inputSide: Int, outputSide: Int

    public var arenaBytes: Int { executable.arenaBytes }
    public var packedWeightBytes: Int { executable.program.packedBytes }
    public var multiplyAccumulates: Int { executable.program.multiplyAccumulates.reduce(0, +) }

    /// Evaluates the network on `input`, writing `output`; `observe` sees the graph's stages
    /// (`quantize`, `decoder.mid_block`, `decoder.up_blocks.i`, `encoder.down_blocks.i`).
    public func run(observe: ((_ name: String, _ values: UnsafeBufferPointer<Float>) -> Void)? = nil) {
        executable.run(observe: observe)
    }
}
