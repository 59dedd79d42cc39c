import ArgumentParser
import EdgeConvert
import _EdgeQuant
import _EdgeCore

/// `convert INPUT_DIR OUTPUT_FILE --weights fp32|fp16|int8 [--scaling-factor X]`: a diffusers UNet2DModel
/// folder, or a pipeline folder (LDMPipeline, DDPMPipeline, DDIMPipeline), to an edge-ddim model file. All the
/// work is in EdgeConvert; this file parses arguments and prints.
@main
struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert a diffusers UNet2DModel checkpoint or pipeline folder into an edge-ddim model file.")

    enum Weights: String, ExpressibleByArgument, CaseIterable {
        case fp32, fp16, int8
        var type: WeightType { switch self { case .fp32: .f32; case .fp16: .f16; case .int8: .q8PerChannel } }
    }

    @Argument(help: "Folder holding config.json, scheduler_config.json and diffusion_pytorch_model.safetensors (or shards), or a pipeline folder with model_index.json (LDMPipeline: unet/, vqvae/, scheduler/; StableDiffusionPipeline: unet/, vae/, text_encoder/, tokenizer/, scheduler/).")
    var input: String

    @Argument(help: "Model file to write (for example models/NAME.edm).")
    var output: String

    @Option(help: "Storage of convolution and linear weights: fp32, fp16 or int8 (per-output-channel scales). Biases and norms stay fp32.")
    var weights: Weights = .int8

    @Option(help: "Latent diffusion: the autoencoder's scaling_factor (latents are divided by it before decoding). Default: the config's; a VQModel config without one gets 1.0, not diffusers' 0.18215 (diffusers issue #6725).")
    var scalingFactor: Double?

    func run() throws {
        let report: Converter.Report
        do {
            report = try Converter.convert(folder: input, output: output, weights: weights.type,
                                           options: Converter.Options(scalingFactor: scalingFactor))
        } catch let e as EdgeError {
            printError("convert: \(e.message)")
            throw ExitCode(e.kind == .usage ? 2 : 1)
        }
        for w in report.warnings { printError("convert: warning: \(w)") }
        print("wrote \(output)")
        print("  tensors     \(report.tensors)")
        print("  parameters  \(report.parameters)")
        print("  source      \(report.sourceDTypes.joined(separator: ", "))")
        print("  weights     \(weights.rawValue) (biases and norms fp32), \(report.weightBytes) bytes of weight data, file \(report.fileBytes) bytes")
        for c in report.components {
            let error = c.worstLayer.map { ", largest relative weight error from \(weights.rawValue) \(formatted($0.relativeError)) in \($0.name)" } ?? ""
            print("  \(c.name + String(repeating: " ", count: max(1, 12 - c.name.count)))\(c.tensors) tensors, \(c.parameters) parameters\(error)")
        }
    }
}
