import _EdgeCore

/// The samplers, by the names the command line uses, each one diffusers scheduler.
public enum SamplerKind: String, CaseIterable, Sendable {
    /// `DDIMScheduler` (η from `SamplerSettings.eta`).
    case ddim
    /// `DPMSolverMultistepScheduler`, algorithm_type dpmsolver++, order 2, midpoint.
    case dpmpp2m = "dpmpp-2m"
    /// The same with algorithm_type sde-dpmsolver++.
    case dpmpp2mSDE = "dpmpp-2m-sde"
    /// `UniPCMultistepScheduler` with its defaults (bh2, order 2, predict_x0).
    case unipc
    /// `PNDMScheduler`, skip_prk_steps unless `SamplerSettings.pndmPRK`.
    case pndm
    /// `EulerDiscreteScheduler`.
    case euler
    /// `EulerAncestralDiscreteScheduler`.
    case eulerAncestral = "euler-a"

    /// The diffusers class the sampler follows.
    public var diffusersScheduler: String {
        switch self {
        case .ddim: return "DDIMScheduler"
        case .dpmpp2m, .dpmpp2mSDE: return "DPMSolverMultistepScheduler"
        case .unipc: return "UniPCMultistepScheduler"
        case .pndm: return "PNDMScheduler"
        case .euler: return "EulerDiscreteScheduler"
        case .eulerAncestral: return "EulerAncestralDiscreteScheduler"
        }
    }

    /// Whether the diffusers scheduler has `use_karras_sigmas`.
    public var hasKarrasSigmas: Bool {
        switch self {
        case .dpmpp2m, .dpmpp2mSDE, .unipc, .euler: return true
        case .ddim, .pndm, .eulerAncestral: return false
        }
    }

    /// The scheduler's own `timestep_spacing` default, used when the checkpoint's config does not set it.
    public var defaultSpacing: NoiseScheduleConfig.TimestepSpacing {
        switch self {
        case .ddim, .pndm: return .leading
        case .dpmpp2m, .dpmpp2mSDE, .unipc, .euler, .eulerAncestral: return .linspace
        }
    }

    /// The names, for messages and help.
    public static var names: String { allCases.map(\.rawValue).joined(separator: ", ") }
}

/// What the user chose: a sampler and its options.
public struct SamplerSettings: Sendable, Equatable {
    public var kind: SamplerKind = .ddim
    /// DDIM's η ∈ [0, 1]; the other samplers take none.
    public var eta: Float = 0
    /// `use_karras_sigmas` (samplers whose scheduler has it).
    public var karras = false
    /// PNDM's Runge–Kutta warm-up (`skip_prk_steps` false).
    public var pndmPRK = false

    public init(kind: SamplerKind = .ddim, eta: Float = 0, karras: Bool = false, pndmPRK: Bool = false) {
        self.kind = kind
        self.eta = eta
        self.karras = karras
        self.pndmPRK = pndmPRK
    }

    /// Refuses options the chosen sampler does not have, with the message the command line prints.
    public func validate() throws {
        guard eta.isFinite, eta >= 0, eta <= 1 else { throw EdgeError.usage("--eta must be in [0, 1], got \(eta)") }
        if eta != 0 && kind != .ddim {
            throw EdgeError.usage("--eta is DDIM's; \(kind.rawValue) takes none (its noise, if any, is fixed by the scheduler)")
        }
        if karras && !kind.hasKarrasSigmas {
            throw EdgeError.usage("--karras: \(kind.rawValue) (\(kind.diffusersScheduler)) has no Karras sigmas; samplers with them: "
                + SamplerKind.allCases.filter(\.hasKarrasSigmas).map(\.rawValue).joined(separator: ", "))
        }
        if pndmPRK && kind != .pndm { throw EdgeError.usage("--pndm-prk goes with --sampler pndm, not \(kind.rawValue)") }
    }

    /// True when the same x_T always gives the same x₀ (no per-step noise).
    public var isDeterministic: Bool {
        switch kind {
        case .ddim: return eta == 0
        case .dpmpp2mSDE, .eulerAncestral: return false
        case .dpmpp2m, .unipc, .pndm, .euler: return true
        }
    }

    /// A short description for progress and reports, e.g. "dpmpp-2m (karras)", "ddim η=0.5".
    public var label: String {
        var s = kind.rawValue
        if kind == .ddim && eta != 0 { s += " η=\(eta)" }
        if karras { s += " (karras)" }
        if pndmPRK { s += " (prk)" }
        return s
    }
}

/// A sampler of any kind, built from a model's scheduler config the way `XScheduler.from_config(config)`
/// builds diffusers' schedulers: this is the one place where the sampler is chosen. The cases hold the
/// concrete samplers, so the loop is specialised for each (no existential in the step loop).
public enum AnySampler: Sendable {
    case ddim(DDIMSampler)
    case dpmSolver(DPMSolverSampler)
    case uniPC(UniPCSampler)
    case pndm(PNDMSampler)
    case euler(EulerSampler)

    /// Fields the checkpoint's config does not set take the scheduler's own defaults, as `from_config` gives
    /// them: `timestep_spacing` (leading for DDIM and PNDM, linspace for the others) and `set_alpha_to_one`
    /// (true for DDIM, false for PNDM). Throws a usage error for options or configs the scheduler refuses.
    public init(_ settings: SamplerSettings, schedulerConfig: NoiseScheduleConfig, steps: Int) throws {
        try settings.validate()
        guard (1 ... schedulerConfig.numTrainTimesteps).contains(steps) else {
            throw EdgeError.usage("steps must be in 1...\(schedulerConfig.numTrainTimesteps) (num_train_timesteps), got \(steps)")
        }
        var config = schedulerConfig
        if !config.isGiven("timestep_spacing") { config.timestepSpacing = settings.kind.defaultSpacing }
        if config.timestepSpacing == .quadratic && settings.kind != .ddim {
            throw EdgeError.usage("timestep spacing quadratic is DDIM's only; \(settings.kind.rawValue) takes leading, trailing or linspace (as diffusers' \(settings.kind.diffusersScheduler))")
        }
        switch settings.kind {
        case .ddim:
            if !config.isGiven("set_alpha_to_one") { config.setAlphaToOne = true }
            self = .ddim(try DDIMSampler(schedulerConfig: config, steps: steps, eta: settings.eta))
        case .dpmpp2m, .dpmpp2mSDE:
            self = .dpmSolver(try DPMSolverSampler(schedulerConfig: config, steps: steps, stochastic: settings.kind == .dpmpp2mSDE, karras: settings.karras))
        case .unipc:
            self = .uniPC(try UniPCSampler(schedulerConfig: config, steps: steps, karras: settings.karras))
        case .pndm:
            let setAlphaToOne = config.isGiven("set_alpha_to_one") ? config.setAlphaToOne : false
            self = .pndm(try PNDMSampler(schedulerConfig: config, steps: steps, setAlphaToOne: setAlphaToOne, prk: settings.pndmPRK))
        case .euler, .eulerAncestral:
            self = .euler(try EulerSampler(schedulerConfig: config, steps: steps, ancestral: settings.kind == .eulerAncestral, karras: settings.karras))
        }
        // The σ-space schedulers find their first step with `index_for_timestep`, which takes the second
        // occurrence of a repeated timestep, skips a σ and fails at the last step (IndexError or an assertion):
        // e.g. Karras σ's with the cosine schedule give [998, 998, …]. DDIM and PNDM count steps instead.
        switch self {
        case .dpmSolver, .uniPC, .euler:
            let t = modelTimesteps
            if let first = t.first, t.dropFirst().contains(first) {
                throw EdgeError.usage("\(settings.label): the first timestep \(first) repeats in the schedule \(Array(t.prefix(4)))…, which diffusers' \(settings.kind.diffusersScheduler) cannot run (index_for_timestep starts at its second occurrence)")
            }
        case .ddim, .pndm: break
        }
    }

    /// The concrete sampler as a protocol value, for its tables. Boxing it allocates: nothing in a sampling
    /// loop may call this or the properties below (`run` uses the concrete type).
    public var sampler: any Sampler {
        switch self {
        case .ddim(let s): return s
        case .dpmSolver(let s): return s
        case .uniPC(let s): return s
        case .pndm(let s): return s
        case .euler(let s): return s
        }
    }

    /// The timesteps of the model evaluations, in order.
    public var modelTimesteps: [Float] { sampler.modelTimesteps }
    /// Model evaluations of one run (S, or S + 1 / S + 9 for PNDM).
    public var evaluations: Int { sampler.modelTimesteps.count }
    public var initNoiseSigma: Float { sampler.initNoiseSigma }
    public var historyBuffers: Int { sampler.historyBuffers }
    public var scalesModelInput: Bool { sampler.scalesModelInput }
    /// The σ of each step and after the last, for the σ-space samplers (nil for DDIM and PNDM, which step in ᾱ).
    public var sigmas: [Float]? {
        switch self {
        case .dpmSolver(let s): return s.sigmas
        case .uniPC(let s): return s.sigmas
        case .euler(let s): return s.sigmas
        case .ddim, .pndm: return nil
        }
    }

    /// The workspace `run` needs for samples of `count` floats, and its size in bytes.
    public func makeWorkspace(count: Int) -> SamplerWorkspace {
        SamplerWorkspace(count: count, historyBuffers: historyBuffers, scalesModelInput: scalesModelInput)
    }
    public func workspaceBytes(count: Int) -> Int {
        SamplerWorkspace.bytes(count: count, historyBuffers: historyBuffers, scalesModelInput: scalesModelInput)
    }

    /// `runSampler` with the concrete sampler.
    public func run(x: UnsafeMutableBufferPointer<Float>, generator: inout TorchGenerator, workspace: SamplerWorkspace,
                    model: SamplerModel, progress: ((_ step: Int, _ of: Int) -> Void)? = nil) throws {
        switch self {
        case .ddim(let s): try runSampler(s, x: x, generator: &generator, workspace: workspace, model: model, progress: progress)
        case .dpmSolver(let s): try runSampler(s, x: x, generator: &generator, workspace: workspace, model: model, progress: progress)
        case .uniPC(let s): try runSampler(s, x: x, generator: &generator, workspace: workspace, model: model, progress: progress)
        case .pndm(let s): try runSampler(s, x: x, generator: &generator, workspace: workspace, model: model, progress: progress)
        case .euler(let s): try runSampler(s, x: x, generator: &generator, workspace: workspace, model: model, progress: progress)
        }
    }
}
