import _EdgeCore

/// A solver of the reverse diffusion process, step for step one diffusers scheduler after `set_timesteps(S)`.
///
/// Every sampler runs in diffusers' generic loop:
///
///     x = randn(shape, generator) · initNoiseSigma
///     for i, t in enumerate(modelTimesteps):
///         m = model(scaleModelInput(x, i), t)
///         x = step(i, m, x, generator)            # prev_sample
///
/// A sampler is an immutable value: its tables (timesteps, σ or ᾱ values) are computed in `init`, and
/// whatever it must remember between steps (earlier model outputs, a saved sample) lives in the
/// `SamplerWorkspace` the caller allocates before the loop, so a step allocates nothing. The counters
/// diffusers keeps (step_index, lower_order_nums, PNDM's counter and ets length) are functions of the step
/// index i and are computed from it.
///
/// Arithmetic follows diffusers': scalars that diffusers computes as 0-d float32 tensors are Float here,
/// rounded op by op in the same order; schedule tables that diffusers computes with numpy in float64 are
/// Double here and rounded to Float where diffusers casts.
public protocol Sampler: Sendable {
    /// The timestep the model is called at in each evaluation (Euler's can be fractional); its count is
    /// the number of model evaluations, which is S for most samplers and more for PNDM.
    var modelTimesteps: [Float] { get }
    /// `init_noise_sigma`: x_T is unit Gaussian noise times this.
    var initNoiseSigma: Float { get }
    /// Buffers of `sample.count` floats the sampler keeps between steps (`SamplerWorkspace.history`).
    var historyBuffers: Int { get }
    /// True when `scaleModelInput` is not the identity (the Euler samplers divide by √(σ² + 1)).
    var scalesModelInput: Bool { get }
    /// `scheduler.scale_model_input(sample, t)` for evaluation i, written to `into`.
    func scaleModelInput(step i: Int, sample: UnsafeBufferPointer<Float>, into: UnsafeMutableBufferPointer<Float>)
    /// `scheduler.step(modelOutput, t_i, sample, generator=generator).prev_sample`, in place on `sample`.
    /// Steps must be taken in order 0, 1, 2, … with the same workspace.
    func step(_ i: Int, modelOutput: UnsafeBufferPointer<Float>, sample: UnsafeMutableBufferPointer<Float>,
              generator: inout TorchGenerator, workspace: SamplerWorkspace)
}

extension Sampler {
    public var scalesModelInput: Bool { false }
    public func scaleModelInput(step i: Int, sample: UnsafeBufferPointer<Float>, into: UnsafeMutableBufferPointer<Float>) {
        into.baseAddress!.update(from: sample.baseAddress!, count: sample.count)
    }
}

/// The model evaluation every sampling loop calls: writes the prediction for `xt` at timestep `t` into `out`
/// (both the sample's count of floats). Timesteps are Float because the Euler samplers call the model
/// between integer timesteps, as diffusers' float32 `scheduler.timesteps` do; the UNet embeds them as floats.
public typealias SamplerModel = (_ xt: UnsafeBufferPointer<Float>, _ t: Float, _ out: UnsafeMutableBufferPointer<Float>) throws -> Void

/// Scratch memory of a sampling loop, allocated once before it: the model input and output, the per-step
/// noise, and the sampler's history buffers, each `count` floats. A class only so that it can own and free
/// its memory; nothing is allocated per step.
public final class SamplerWorkspace {
    /// Elements per buffer (N·C·H·W).
    public let count: Int
    /// Where the model callback writes its prediction.
    public let modelOutput: UnsafeMutableBufferPointer<Float>
    /// Where the per-step Gaussian noise is drawn (stochastic samplers).
    public let noise: UnsafeMutableBufferPointer<Float>
    /// The scaled model input of the samplers whose `scale_model_input` is not the identity (else empty).
    public let modelInput: UnsafeMutableBufferPointer<Float>
    /// The sampler's memory between steps: earlier model outputs, a saved sample (`Sampler.historyBuffers`).
    public let history: [UnsafeMutableBufferPointer<Float>]

    public init(count: Int, historyBuffers: Int = 0, scalesModelInput: Bool = false) {
        precondition(count >= 0 && historyBuffers >= 0, "count and historyBuffers must not be negative")
        self.count = count
        func buffer(_ n: Int) -> UnsafeMutableBufferPointer<Float> {
            let b = UnsafeMutableBufferPointer<Float>.allocate(capacity: n)
            b.initialize(repeating: 0)
            return b
        }
        modelOutput = buffer(count)
        noise = buffer(count)
        modelInput = buffer(scalesModelInput ? count : 0)
        history = (0..<historyBuffers).map { _ in buffer(count) }
    }

    /// A workspace for `sampler` on samples of `count` floats.
    public convenience init<S: Sampler>(count: Int, for sampler: S) {
        self.init(count: count, historyBuffers: sampler.historyBuffers, scalesModelInput: sampler.scalesModelInput)
    }

    /// Bytes such a workspace takes.
    public static func bytes(count: Int, historyBuffers: Int, scalesModelInput: Bool) -> Int {
        (2 + historyBuffers + (scalesModelInput ? 1 : 0)) * count * MemoryLayout<Float>.stride
    }

    deinit {
        modelOutput.deallocate()
        noise.deallocate()
        modelInput.deallocate()
        for b in history { b.deallocate() }
    }
}

/// The workspace of the DDIM loops (`ddimSample`, `ddimInvert`), which keep no history.
public typealias DDIMWorkspace = SamplerWorkspace

/// Runs `sampler` on `x` in diffusers' generic loop (see `Sampler`). On entry `x` holds x_T already scaled by
/// `initNoiseSigma`; on return the last step's `prev_sample` (unclamped). The per-step noise of stochastic
/// samplers continues `generator`'s stream, as diffusers' `randn_tensor(shape, generator)` does.
///
/// - Parameters:
///   - progress: called after each model evaluation with (evaluations done, total).
/// - Throws: a usage error for a workspace of the wrong size; whatever `model` throws.
public func runSampler<S: Sampler>(
    _ sampler: S,
    x: UnsafeMutableBufferPointer<Float>,
    generator: inout TorchGenerator,
    workspace: SamplerWorkspace,
    model: SamplerModel,
    progress: ((_ step: Int, _ of: Int) -> Void)? = nil
) throws {
    guard workspace.count == x.count, workspace.history.count >= sampler.historyBuffers,
          !sampler.scalesModelInput || workspace.modelInput.count == x.count else {
        throw EdgeError.usage("sampler workspace holds \(workspace.history.count) history buffers of \(workspace.count) values; the sampler needs \(sampler.historyBuffers) of \(x.count)\(sampler.scalesModelInput ? " and a model input buffer" : "")")
    }
    let timesteps = sampler.modelTimesteps
    let total = timesteps.count
    let scales = sampler.scalesModelInput
    for i in 0..<total {
        let input: UnsafeBufferPointer<Float>
        if scales {
            sampler.scaleModelInput(step: i, sample: UnsafeBufferPointer(x), into: workspace.modelInput)
            input = UnsafeBufferPointer(workspace.modelInput)
        } else {
            input = UnsafeBufferPointer(x)
        }
        try model(input, timesteps[i], workspace.modelOutput)
        sampler.step(i, modelOutput: UnsafeBufferPointer(workspace.modelOutput), sample: x, generator: &generator, workspace: workspace)
        progress?(i + 1, total)
    }
}
