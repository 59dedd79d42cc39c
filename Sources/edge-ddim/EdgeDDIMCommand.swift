import ArgumentParser
import Glibc
import _EdgeCore
import EdgeDDIM
import EdgeModelFile

/// Entry point: runs the command and maps every failure to one line on stderr and an exit status —
/// 2 for usage errors (bad options), 1 for runtime errors (bad files, I/O) — instead of a crash or a
/// page of help text.
@main
enum Main {
    static func main() {
        do {
            var command = try EdgeDDIMCommand.parseAsRoot()
            try command.run()
        } catch let error as EdgeError {
            printError("edge-ddim: \(error.message)")
            exit(error.kind == .usage ? 2 : 1)
        } catch let stop as Interrupted {
            printError("edge-ddim: \(stop.message)")
            exit(stop.exitStatus)
        } catch {
            let code = EdgeDDIMCommand.exitCode(for: error)
            if code == .success {  // --help, --version
                EdgeDDIMCommand.exit(withError: error)
            }
            if let exit = error as? ExitCode { Glibc.exit(exit.rawValue) }
            let message = EdgeDDIMCommand.message(for: error).split(whereSeparator: \.isNewline).first.map(String.init) ?? "invalid arguments"
            printError("edge-ddim: \(message)")
            exit(code == .validationFailure ? 2 : code.rawValue)
        }
    }
}

struct EdgeDDIMCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edge-ddim",
        abstract: "Generate images with DDIM (and other samplers) from a converted diffusers UNet2DModel or latent diffusion pipeline.",
        version: "edge-ddim \(EdgeDDIMVersion.version) (model format \(ModelFormat.version), reads \(ModelFormat.readableVersions.lowerBound)–\(ModelFormat.readableVersions.upperBound))",
        subcommands: [Sample.self, Info.self, Bench.self, Interpolate.self, Invert.self, Reconstruct.self, Eval.self, Decode.self, Encode.self],
        defaultSubcommand: Sample.self)
}
