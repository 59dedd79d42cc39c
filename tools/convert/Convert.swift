import ArgumentParser
import EdgeConvert
import _EdgeQuant
import _EdgeCore

/// `convert INPUT_DIR OUTPUT_FILE --weights fp32|fp16|int8`: a diffusers UNet2DModel folder to an
/// edge-ddim model file. All the work is in EdgeConvert; this file parses arguments and prints.
@main
struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert a diffusers UNet2DModel checkpoint (config.json + safetensors) into an edge-ddim model file.")

    enum Weights: String, ExpressibleByArgument, CaseIterable {
        case fp32, fp16, int8
        var type: WeightType { switch self { case .fp32: .f32; case .fp16: .f16; case .int8: .q8PerChannel } }
    }

    @Argument(help: "Folder holding config.json, scheduler_config.json and diffusion_pytorch_model.safetensors (or shards).")
    var input: String

    @Argument(help: "Model file to write (for example models/NAME.edm).")
    var output: String

    @Option(help: "Storage of convolution and linear weights: fp32, fp16 or int8 (per-output-channel scales). Biases and norms stay fp32.")
    var weights: Weights = .int8

    func run() throws {
        let report: Converter.Report
        do {
            report = try Converter.convert(folder: input, output: output, weights: weights.type)
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
        if let worst = report.worstLayer {
            print("  largest relative weight error from \(weights.rawValue): \(formatted(worst.relativeError)) in \(worst.name)")
        }
    }
}
