import Foundation
import XCTest
import _EdgeCore
import _EdgeQuant
import EdgeGraph
import EdgeConvert
import EdgeModelFile
import EdgeDDIM
import EdgeImageIO

/// LDMPipeline end to end: a diffusers pipeline folder (Tests/Fixtures/autoencoder/ldm-small, written by
/// tools/reference/make_autoencoder_fixtures.py) converted into one model file, sampled from the same seed as
/// diffusers, decoded; the autoencoder on its own; and the bad input around them.
final class LatentDiffusionTests: XCTestCase {
    /// The bar for a 10-step run (x₀ and the image), fp32 weights.
    static let pipelineTolerance: Float = 1e-3
    /// One decoder evaluation, fp32 weights.
    static let networkTolerance: Float = 1e-4

    var pipelineFolder: String { fixturesRoot + "/autoencoder/ldm-small" }

    func converted(_ weights: WeightType, folder: String? = nil, options: Converter.Options = Converter.Options(), in temp: String) throws
        -> (ModelFile, Converter.Report) {
        let path = temp + "/ldm-\(weights).edm"
        let report = try Converter.convert(folder: folder ?? pipelineFolder, output: path, weights: weights, options: options)
        return (try ModelFile(path: path), report)
    }

    func testTenStepLDMPipelineMatchesDiffusers() throws {
        let temp = temporaryFolder()
        defer { removeFolder(temp) }
        let (model, report) = try converted(.f32, in: temp)
        XCTAssertEqual(model.pipeline, "LDMPipeline")
        XCTAssertEqual(model.autoencoder?.name, "vqvae")
        XCTAssertEqual(model.autoencoder?.config.scalingFactor, 1)
        XCTAssertEqual(report.components.map(\.name), ["unet", "vqvae"])
        let io = try FixtureIO(pipelineFolder + "/io.safetensors")
        var options = SamplingOptions()
        options.steps = 10
        options.count = 2
        options.seed = 0
        options.threads = Threads(2)
        for batch in [1, 2] {
            options.batch = batch
            let pipeline = try SamplingPipeline(model: model, options: options)
            // The plan the memory limit checks is what the pipeline allocates (UNet and decoder share one arena).
            XCTAssertEqual(try SamplingPipeline.workingBytes(model: model, options: options), pipeline.workingBytes)
            XCTAssertEqual(maxAbsDifference(Array(pipeline.x), try io.tensor("xT").values), 0, "x_T is torch.randn's")
            try pipeline.run()
            let latents = maxAbsDifference(Array(pipeline.x), try io.tensor("latents").values)
            let image = maxAbsDifference(pipeline.output.map { min(max($0 / 2 + 0.5, 0), 1) }, try io.tensor("image").values)
            print("ldm-small, 10 DDIM steps, batch \(batch): latents max abs error \(latents), image \(image)")
            XCTAssertLessThan(latents, Self.pipelineTolerance)
            XCTAssertLessThan(image, Self.pipelineTolerance)
            XCTAssertEqual(pipeline.outputShape, [2, 3, 16, 16])
        }
    }

    /// fp16 and int8 weights for both components, each with its error reported; the images stay close.
    func testEveryComponentConvertsToFP16AndInt8() throws {
        let temp = temporaryFolder()
        defer { removeFolder(temp) }
        var options = SamplingOptions()
        options.steps = 10
        options.count = 2
        func image(_ model: ModelFile) throws -> [Float] {
            let pipeline = try SamplingPipeline(model: model, options: options)
            try pipeline.run()
            return pipeline.output.map { min(max($0 / 2 + 0.5, 0), 1) }
        }
        let reference = try image(converted(.f32, in: temp).0)
        XCTAssertTrue(try converted(.f32, in: temp).1.components.allSatisfy { $0.worstLayer == nil })
        for weights in [WeightType.f16, .q8PerChannel] {
            let (model, report) = try converted(weights, in: temp)
            for c in report.components {
                let worst = try XCTUnwrap(c.worstLayer, "\(weights) \(c.name)")
                XCTAssertTrue(worst.name.hasPrefix(c.name == "unet" ? "" : c.name + "."), worst.name)
                XCTAssertLessThan(worst.relativeError, weights == .f16 ? 1e-3 : 2e-2, "\(weights) \(c.name)")
            }
            // The codebook stays fp32 whatever the weights (nearest-entry search, not a product).
            XCTAssertEqual(try model.entry("vqvae.quantize.embedding.weight").type, .f32)
            let e = relativeL2(try image(model), reference)
            print("ldm-small \(weights): image relative L2 \(e) vs fp32 weights")
            // Measured: 0 for fp16 (the fixture's weights are fp16 values), 0.053 for int8 (about 1% per layer, as
            // convert reports, compounded over 10 UNet steps and the decoder of a random-weight model). The bound
            // catches a broken path (errors of order 1), not precision.
            XCTAssertLessThan(e, weights == .f16 ? 1e-3 : 0.1, "\(weights)")
        }
    }

    /// `decode` of the fixture's latents is diffusers' VQModel.decode (the ldm-small vqvae is vq-small, with
    /// scaling_factor 1); `encode` is VQModel.encode.
    func testAutoencodingMatchesDiffusers() throws {
        let temp = temporaryFolder()
        defer { removeFolder(temp) }
        let (model, _) = try converted(.f32, in: temp)
        let io = try FixtureIO(fixturesRoot + "/autoencoder/vq-small/io.safetensors")
        let latents = try io.tensor("latents")
        let decoded = try Autoencoding.decode(model: model, latents: latents.values, shape: latents.shape, threads: Threads(2))
        XCTAssertEqual(decoded.shape, [2, 3, 16, 16])
        XCTAssertLessThan(maxAbsDifference(decoded.values, try io.tensor("decoded").values), Self.networkTolerance)
        let image = try io.tensor("image")
        let encoded = try Autoencoding.encode(model: model, images: image.values, shape: image.shape, threads: Threads(2))
        XCTAssertEqual(encoded.shape, [2, 3, 8, 8])
        XCTAssertLessThan(maxAbsDifference(encoded.values, try io.tensor("encoded").values), Self.networkTolerance)
        XCTAssertThrowsError(try Autoencoding.decode(model: model, latents: [Float](repeating: 0, count: 2 * 4 * 8 * 8), shape: [2, 4, 8, 8])) {
            XCTAssertTrue("\($0)".contains("[2, 4, 8, 8]"), "\($0)")
        }
        let pixel = try ModelFile(path: repositoryRoot + "/models/ddpm-fashion-32.edm")
        XCTAssertNil(pixel.autoencoder)
        XCTAssertThrowsError(try Autoencoding.decode(model: pixel, latents: latents.values, shape: latents.shape)) {
            XCTAssertTrue("\($0)".contains("has no autoencoder"), "\($0)")
        }
    }

    // MARK: bad pipeline folders

    func copy(_ edit: (String) throws -> Void) throws -> (folder: String, temp: String) {
        let temp = temporaryFolder()
        let folder = temp + "/pipeline"
        try FileManager.default.copyItem(atPath: pipelineFolder, toPath: folder)
        try edit(folder)
        return (folder, temp)
    }

    func editJSON(_ path: String, _ edit: (inout [String: Any]) -> Void) throws {
        var object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
        edit(&object)
        try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: path))
    }

    func assertRefused(_ fragments: [String], file: StaticString = #filePath, line: UInt = #line, _ edit: (String) throws -> Void) throws {
        let (folder, temp) = try copy(edit)
        defer { removeFolder(temp) }
        let output = temp + "/out.edm"
        XCTAssertThrowsError(try Converter.convert(folder: folder, output: output, weights: .q8PerChannel), file: file, line: line) { error in
            let message = "\(error)"
            for f in fragments { XCTAssertTrue(message.contains(f), "\"\(message)\" lacks \"\(f)\"", file: file, line: line) }
            XCTAssertFalse(message.contains("\n"), file: file, line: line)
        }
        XCTAssertFalse(fileExists(output), file: file, line: line)
    }

    func testBadPipelineFoldersAreRefusedByName() throws {
        try assertRefused(["needs a vqvae component"]) { try self.editJSON($0 + "/model_index.json") { $0["vqvae"] = nil } }
        try assertRefused(["component tokenizer", "CLIPTokenizer", "not part of LDMPipeline"]) {
            try self.editJSON($0 + "/model_index.json") { $0["tokenizer"] = ["transformers", "CLIPTokenizer"] }
        }
        try assertRefused(["StableDiffusionXLPipeline is not supported"]) {
            try self.editJSON($0 + "/model_index.json") { $0["_class_name"] = "StableDiffusionXLPipeline" }
        }
        // An LDM folder relabelled: Stable Diffusion's components are checked by name, first the missing one.
        try assertRefused(["StableDiffusionPipeline needs a vae component, which is missing"]) {
            try self.editJSON($0 + "/model_index.json") { $0["_class_name"] = "StableDiffusionPipeline" }
        }
        try assertRefused(["the vqvae folder is missing"]) { try FileManager.default.removeItem(atPath: $0 + "/vqvae") }
        try assertRefused(["vqvae is VQModel", "describes a AutoencoderKL"]) {
            try self.editJSON($0 + "/vqvae/config.json") { $0["_class_name"] = "AutoencoderKL" }
        }
        try assertRefused(["norm_type", "spatial"]) { try self.editJSON($0 + "/vqvae/config.json") { $0["norm_type"] = "spatial" } }
        // A latent-channel mismatch is found from the configs, before any tensor is read.
        try assertRefused(["the UNet has 4 input and 4 output channels", "latents have 3"]) {
            try self.editJSON($0 + "/unet/config.json") { $0["in_channels"] = 4; $0["out_channels"] = 4 }
        }
        try assertRefused(["vqvae", "tensor decoder.conv_in.bias is missing"]) { folder in
            // Drop one tensor of the autoencoder: rewrite its safetensors without it.
            let path = folder + "/vqvae/" + SafetensorsCheckpoint.singleFile
            let file = try SafetensorsFile(path: path)
            var header: [String: Any] = [:]
            var data = Data()
            for t in file.tensors where t.name != "decoder.conv_in.bias" {
                let values = try file.floats(t)
                header[t.name] = ["dtype": "F32", "shape": t.shape, "data_offsets": [data.count, data.count + 4 * values.count]]
                values.withUnsafeBytes { data.append(contentsOf: $0) }
            }
            var json = try JSONSerialization.data(withJSONObject: header)
            json.append(contentsOf: [UInt8](repeating: 0x20, count: (8 - json.count % 8) % 8))
            var bytes = Data(withUnsafeBytes(of: UInt64(json.count).littleEndian) { Array($0) })
            bytes.append(json)
            bytes.append(data)
            try bytes.write(to: URL(fileURLWithPath: path))
        }
    }

    /// The decision on a VQModel config without scaling_factor, and the override.
    func testScalingFactorDefaultsAndOverride() throws {
        let (folder, temp) = try copy { try self.editJSON($0 + "/vqvae/config.json") { $0["scaling_factor"] = nil } }
        defer { removeFolder(temp) }
        let (model, report) = try converted(.f32, folder: folder, in: temp)
        XCTAssertEqual(model.autoencoder?.config.scalingFactor, 1)
        XCTAssertTrue(report.warnings.contains { $0.contains("no scaling_factor") && $0.contains("0.18215") }, "\(report.warnings)")
        let (overridden, _) = try converted(.f32, folder: folder, options: Converter.Options(scalingFactor: 0.18215), in: temp)
        XCTAssertEqual(overridden.autoencoder?.config.scalingFactor, 0.18215)
        XCTAssertThrowsError(try converted(.f32, folder: folder, options: Converter.Options(scalingFactor: 0), in: temp))
        XCTAssertThrowsError(try converted(.f32, folder: fixturesRoot + "/unet/cifar10-like", options: Converter.Options(scalingFactor: 1), in: temp)) {
            XCTAssertTrue("\($0)".contains("--scaling-factor"), "\($0)")
        }
    }

    /// A version-1 file (the default model) still loads; version 2 files carry their components.
    func testFormatVersions() throws {
        let v1 = try ModelFile(path: repositoryRoot + "/models/ddpm-fashion-32.edm")
        XCTAssertNil(v1.pipeline)
        let seed = try ModelFile(path: repositoryRoot + "/Tests/Fuzz/corpus/modelfile/ldm-v2.edm")
        XCTAssertEqual(seed.pipeline, "LDMPipeline")
        XCTAssertEqual(seed.autoencoder?.config.numVQEmbeddings, 4)
    }

    // MARK: the command line

    func testCommandLine() throws {
        let temp = temporaryFolder()
        defer { removeFolder(temp) }
        let model = temp + "/ldm.edm"
        try Converter.convert(folder: pipelineFolder, output: model, weights: .q8PerChannel)
        let sample = try runTool("edge-ddim", ["--model", model, "--steps", "4", "--count", "2", "--quiet", "--output", "s.png",
                                               "--latents", "z.npy", "--npy", "x.npy"], in: temp)
        XCTAssertEqual(sample.status, 0, sample.stderr)
        let image = try PNG.read(path: temp + "/s.png")
        XCTAssertEqual(image.height, 16)
        let decode = try runTool("edge-ddim", ["decode", "z.npy", "--model", model, "--npy", "d.npy", "--output", "d.png"], in: temp)
        XCTAssertEqual(decode.status, 0, decode.stderr)
        XCTAssertEqual(try NPY.read(path: temp + "/d.npy"), try NPY.read(path: temp + "/x.npy"), "decode of sample's latents is sample's image")
        let info = try runTool("edge-ddim", ["info", model], in: temp)
        XCTAssertTrue(info.stdout.contains("LDMPipeline: VQModel vqvae"), info.stdout)
        XCTAssertTrue(info.stdout.contains("decoder"), info.stdout)

        // invert, reconstruct and interpolate work in latent space: x_T has the latents' shape, frames the images'.
        try NPY.write(try FixtureIO(fixturesRoot + "/autoencoder/vq-small/io.safetensors").tensor("image").values.prefix(3 * 16 * 16).map { $0 },
                      shape: [1, 3, 16, 16], to: temp + "/image.npy")
        let invert = try runTool("edge-ddim", ["invert", "image.npy", "--model", model, "--steps", "4", "--quiet", "--output", "xT.npy"], in: temp)
        XCTAssertEqual(invert.status, 0, invert.stderr)
        XCTAssertEqual(try NPY.read(path: temp + "/xT.npy").shape, [1, 3, 8, 8])
        let reconstruct = try runTool("edge-ddim", ["reconstruct", "image.npy", "--model", model, "--steps", "4", "--quiet", "--output", "r.png"], in: temp)
        XCTAssertEqual(reconstruct.status, 0, reconstruct.stderr)
        XCTAssertTrue(reconstruct.stdout.contains("psnr"), reconstruct.stdout)
        XCTAssertEqual(try PNG.read(path: temp + "/r.png").height, 16)
        let interpolate = try runTool("edge-ddim", ["interpolate", "--model", model, "--seed-a", "0", "--seed-b", "1", "--frames", "3", "--steps", "4",
                                                    "--quiet", "--output", "i.png"], in: temp)
        XCTAssertEqual(interpolate.status, 0, interpolate.stderr)
        XCTAssertEqual(try PNG.read(path: temp + "/i.png").height, 16)

        // Bad input: one line, non-zero, nothing written.
        try NPY.write([Float](repeating: 0, count: 4 * 8 * 8), shape: [1, 4, 8, 8], to: temp + "/wrong.npy")
        let fashion = repositoryRoot + "/models/ddpm-fashion-32.edm"
        for (arguments, status, mention) in [
            (["decode", "wrong.npy", "--model", model, "--output", "w.png"], Int32(1), "latents have shape [1, 4, 8, 8]"),
            (["decode", "z.npy", "--model", fashion, "--output", "w.png"], 2, "has no autoencoder"),
            (["encode", "s.png", "--model", model, "--output", "w.npy"], 1, "the model needs 16×16"),
            (["--model", fashion, "--steps", "2", "--count", "1", "--latents", "w.npy", "--output", "w.png"], 2, "--latents"),
        ] {
            let outcome = try runTool("edge-ddim", arguments, in: temp)
            XCTAssertEqual(outcome.status, status, "\(arguments): \(outcome.stderr)")
            XCTAssertEqual(outcome.stderr.split(separator: "\n").count, 1, "\(arguments): \(outcome.stderr)")
            XCTAssertTrue(outcome.stderr.contains(mention), "\(arguments): \(outcome.stderr)")
            XCTAssertFalse(fileExists(temp + "/w.png") || fileExists(temp + "/w.npy"), "\(arguments) wrote a file")
        }
    }
}
