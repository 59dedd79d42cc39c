import _EdgeCore
import _EdgeQuant
import _EdgeKernels
import EdgeGraph
import EdgeModelFile

/// A diffusers `UNet2DModel` ready to run: `UNet2DModelGraph` for the model file's config, lowered to the
/// backend's kernels (`lower`), every intermediate placed in one arena sized at load. `run()` allocates
/// nothing.
///
/// Usage: write x_t into `sample` and t into `timesteps`, call `run()`, read ε (or v, or x₀) from `output`.
///
/// Not re-entrant: every run writes the one arena, so one `run()` at a time per UNet. It is `Sendable` so that
/// it can be handed to another thread, not so that two may run it at once; make one UNet per thread.
public final class UNet: @unchecked Sendable {
    public let config: UNetConfig
    public let batch: Int
    /// [N, in_channels, S, S]
    public let sample: UnsafeMutableBufferPointer<Float>
    /// [N]
    public let timesteps: UnsafeMutableBufferPointer<Float>
    /// [N, out_channels, S, S]
    public let output: UnsafeMutableBufferPointer<Float>
    /// Threads the kernels split work over.
    public let threads: Threads
    public let backend: UNetBackend
    /// Whether convolutions quantise their activations to int8 (see `usesInt8Activations`).
    public let int8Activations: Bool

    private let executable: Executable

    /// The graph of `model`'s UNet for `batch` images, lowered for `backend`: no arena, nothing packed.
    static func program(config: UNetConfig, weights: some WeightSource, batch: Int, backend: UNetBackend, threads: Threads, int8: Bool,
                        winograd: Bool, halfSkipMinimumValues: Int = halfSkipMinimumValuesPerImage) throws -> (Program, Graph) {
        guard batch >= 1 else { throw EdgeError.usage("batch size must be at least 1, got \(batch)") }
        let graph = UNet2DModelGraph.build(config, batch: batch)
        return (try lower(graph, model: weights, backend: backend, threads: threads, int8: int8, winograd: winograd,
                          halfSkipMinimumValues: halfSkipMinimumValues), graph)
    }

    /// The arena's bytes (activations and scratch: what `init(arena:)` needs) and the packed weights' bytes.
    /// - sampleSize: the latents' side when it is not the config's (text to image at another `--width`).
    public static func memory(model: ModelFile, batch: Int, backend: UNetBackend = .fast, threads: Threads = Threads(),
                              int8Activations: Bool? = nil, winograd: Bool = true, sampleSize: Int? = nil) throws -> PlannedMemory {
        guard batch >= 1 else { throw EdgeError.usage("batch size must be at least 1, got \(batch)") }
        return try plannedMemory(UNet2DModelGraph.build(try config(model, sampleSize: sampleSize), batch: batch), weights: model, backend: backend,
                                 threads: threads, int8Activations: int8Activations, winograd: winograd)
    }

    /// The model's config, at another sample size if given.
    static func config(_ model: ModelFile, sampleSize: Int?) throws -> UNetConfig {
        guard let sampleSize, sampleSize != model.unet.sampleSize else { return model.unet }
        var c = model.unet
        c.sampleSize = sampleSize
        try c.validate()
        return c
    }

    /// - int8Activations: nil picks the default (`usesInt8Activations`); true forces the int8 path for an int8
    ///   model (with `Q8TileKernel.withoutDotProduct` where no dot-product instruction exists), false keeps fp32 activations.
    /// - winograd: run 3×3 convolutions with fp32 activations as Winograd convolutions where that is faster
    ///   (`WinogradTile.preferred`); false keeps the direct kernel, whose packed fp32 weights are smaller (the
    ///   transformed weights of F(4,3) take 4× the fp32 weights' memory).
    /// - arena: activations placed here (at least `memory(...).arena` bytes) instead of an arena of its own,
    ///   for a pipeline whose UNet and decoder never run at once.
    /// - sampleSize: the latents' side when it is not the config's (text to image at another `--width`).
    public convenience init(model: ModelFile, batch: Int, threads: Threads = Threads(), backend: UNetBackend = .fast, int8Activations: Bool? = nil,
                            winograd: Bool = true, arena: Arena? = nil, sampleSize: Int? = nil) throws {
        try self.init(config: Self.config(model, sampleSize: sampleSize), weights: model, batch: batch, threads: threads, backend: backend,
                      int8Activations: int8Activations, winograd: winograd, arena: arena, halfSkipMinimumValues: halfSkipMinimumValuesPerImage)
    }

    /// For tests: skip connections of at least `halfSkipMinimumValues` values per image are kept in binary16 (the
    /// int8 path; see `lower`), so fixture-sized models can take the path that only large images take by default.
    @_spi(Testing) public convenience init(model: ModelFile, batch: Int, threads: Threads = Threads(), backend: UNetBackend = .fast,
                                           int8Activations: Bool? = nil, winograd: Bool = true, arena: Arena? = nil,
                                           halfSkipMinimumValues: Int) throws {
        try self.init(config: model.unet, weights: model, batch: batch, threads: threads, backend: backend, int8Activations: int8Activations,
                      winograd: winograd, arena: arena, halfSkipMinimumValues: halfSkipMinimumValues)
    }

    /// A UNet over any weight source (tests: a diffusers folder read into memory, before the converter knows
    /// the family); `config` says which graph.
    @_spi(Testing) public init(config: UNetConfig, weights: some WeightSource, batch: Int, threads: Threads = Threads(),
                               backend: UNetBackend = .fast, int8Activations: Bool? = nil, winograd: Bool = true, arena: Arena? = nil,
                               halfSkipMinimumValues: Int = halfSkipMinimumValuesPerImage) throws {
        self.threads = threads
        self.backend = backend
        let int8 = usesInt8Activations(model: weights, backend: backend, requested: int8Activations)
        self.int8Activations = int8
        let (program, graph) = try Self.program(config: config, weights: weights, batch: batch, backend: backend, threads: threads, int8: int8,
                                                winograd: winograd, halfSkipMinimumValues: halfSkipMinimumValues)
        self.config = config
        self.batch = batch
        let executable = Executable(program, weights: weights, batch: batch, threads: threads, arena: arena)
        self.executable = executable
        sample = executable.buffer(graph.input(named: "sample")!)
        timesteps = executable.buffer(graph.input(named: "timesteps")!)
        context = graph.input(named: "encoder_hidden_states").map { executable.buffer($0) }
        output = executable.buffer(graph.output(named: "output")!)
    }

    /// UNet2DConditionModel only: the text encoder's hidden states [N, cross_attention_dim, T], channel-major
    /// (`TextEncoderNetwork.lastHiddenState`'s layout), written before `run()`.
    public let context: UnsafeMutableBufferPointer<Float>?

    /// Bytes of the arena holding every activation and scratch buffer.
    public var arenaBytes: Int { executable.arenaBytes }

    /// Bytes of the weights packed once at load: int8 panels for the convolutions on the int8 path, fp32
    /// panels for fp32 and fp16 weights on the fast backend.
    public var packedWeightBytes: Int { executable.program.packedBytes }

    /// "int8 (avx512vnni)", "int8 (neondot)", "int8 (neonmlal)", "int8 (simd)" or "fp32": what the convolutions compute with.
    public var activationDescription: String {
        int8Activations ? "int8 (\(Q8TileKernel.preferred.rawValue))" : "fp32"
    }

    /// Multiply-accumulates of one `run()` (all images of the batch).
    public var multiplyAccumulates: Int { executable.program.multiplyAccumulates.reduce(0, +) }

    /// Evaluates the UNet on `sample` and `timesteps`, writing `output`.
    /// - observe: called after named stages (`time_embedding`, `conv_in`, `down_blocks.i`, `mid_block`,
    ///   `up_blocks.i`, `conv_norm_out+silu`) with their output, for debugging against diffusers' intermediates.
    public func run(observe: ((_ name: String, _ values: UnsafeBufferPointer<Float>) -> Void)? = nil) {
        executable.run(observe: observe)
    }

    /// One step of the program as `bench --json` reports it: the checkpoint's module name, what kind of
    /// op, and its multiply-accumulates for the whole batch.
    public struct Layer: Sendable {
        public var name: String
        public var kind: String
        /// The kernel the step runs (`Step.kernelDescription`).
        public var kernel: String
        public var multiplyAccumulates: Int
    }

    /// The program's steps, in execution order (parallel to `runTimed`'s seconds).
    public var layers: [Layer] {
        let p = executable.program
        return p.steps.indices.map { Layer(name: p.names[$0], kind: p.kinds[$0], kernel: p.steps[$0].kernelDescription,
                                              multiplyAccumulates: p.multiplyAccumulates[$0]) }
    }

    /// `run()` that adds each step's wall time to `seconds[i]` (`layers.count` slots), for per-layer profiles.
    public func runTimed(addingSecondsTo seconds: UnsafeMutableBufferPointer<Double>) {
        executable.runTimed(addingSecondsTo: seconds)
    }
}
