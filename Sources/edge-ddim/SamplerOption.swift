import ArgumentParser
import _EdgeCore
import EdgeDDIM

/// `--sampler`, `--karras` and `--pndm-prk`, shared by every command that samples
/// (`@OptionGroup var sampling: SamplerOption`). η stays each command's own option.
struct SamplerOption: ParsableArguments {
    @Option(help: ArgumentHelp("Sampler, each one diffusers scheduler: \(SamplerKind.names).", valueName: "name"))
    var sampler: String = SamplerKind.ddim.rawValue

    @Flag(help: "Karras et al.'s σ spacing (use_karras_sigmas): dpmpp-2m, dpmpp-2m-sde, unipc and euler.")
    var karras = false

    @Flag(name: .customLong("pndm-prk"), help: "PNDM with its Runge–Kutta warm-up (skip_prk_steps false; S + 9 UNet evaluations).")
    var pndmPRK = false

    /// The chosen sampler; an unknown name is a one-line usage error that lists the known ones.
    func kind() throws -> SamplerKind {
        guard let kind = SamplerKind(rawValue: sampler) else {
            throw EdgeError.usage("unknown sampler '\(sampler)' (samplers: \(SamplerKind.names))")
        }
        return kind
    }

    /// The settings with DDIM's η; throws the one-line usage error for an option the sampler lacks.
    func settings(eta: Float = 0) throws -> SamplerSettings {
        let s = SamplerSettings(kind: try kind(), eta: eta, karras: karras, pndmPRK: pndmPRK)
        try s.validate()
        return s
    }
}
