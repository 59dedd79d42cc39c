import XCTest
import _EdgeCore
import _EdgeQuant
import EdgeGraph
import EdgeConvert
import EdgeUNet

/// The autoencoders (VQModel, AutoencoderKL) against diffusers on the fixtures of
/// tools/reference/make_autoencoder_fixtures.py: decoders and encoders, both backends, fp32 weights.
final class AutoencoderFixtureTests: XCTestCase {
    /// The issue's bar for one decoder evaluation; measured: see the printed errors (fp32 rounding of
    /// differently ordered sums through ~20 layers).
    static let networkTolerance: Float = 1e-4

    func folder(_ name: String) -> String { fixturesRoot + "/autoencoder/\(name)" }

    func config(_ name: String) throws -> AutoencoderConfig {
        let path = folder(name) + "/config.json"
        return try DiffusersConfig.autoencoder(JSONValue.parse(readWholeFile(path), context: path)).config
    }

    /// Runs `half` of fixture `name` on `input`, returning the output (and the stages it saw).
    func run(_ name: String, _ half: AutoencoderNetwork.Half, input: [Float], backend: UNetBackend) throws
        -> (output: [Float], stages: [String: [Float]]) {
        let c = try config(name)
        let weights = try InMemoryWeights(folder: folder(name))
        let network = try AutoencoderNetwork(c, half, weights: weights, batch: 2, threads: Threads(2), backend: backend)
        XCTAssertEqual(network.input.count, input.count)
        _ = network.input.update(fromContentsOf: input)
        var stages: [String: [Float]] = [:]
        network.run { stages[$0] = Array($1) }
        return (Array(network.output), stages)
    }

    func testVQDecoderMatchesDiffusers() throws {
        let io = try FixtureIO(folder("vq-small") + "/io.safetensors")
        let latents = try io.tensor("latents").values
        for backend in UNetBackend.allCases {
            let quantized = try run("vq-small", .decoder(quantize: true), input: latents, backend: backend)
            // The same fp32 operations as diffusers' z + (e_k − z): the codebook choice and the values agree exactly.
            XCTAssertEqual(quantized.stages["quantize"], try io.tensor("quantized").values, "\(backend)")
            let e = maxAbsDifference(quantized.output, try io.tensor("decoded").values)
            print("vq-small decoder (\(backend)): max abs error \(e)")
            XCTAssertLessThan(e, Self.networkTolerance, "\(backend)")
            let unquantized = try run("vq-small", .decoder(quantize: false), input: latents, backend: backend)
            XCTAssertNil(unquantized.stages["quantize"])
            XCTAssertLessThan(maxAbsDifference(unquantized.output, try io.tensor("decoded_unquantized").values), Self.networkTolerance, "\(backend)")
        }
    }

    func testKLDecoderMatchesDiffusers() throws {
        let io = try FixtureIO(folder("kl-sd-small") + "/io.safetensors")
        for backend in UNetBackend.allCases {
            let decoded = try run("kl-sd-small", .decoder(quantize: true), input: try io.tensor("latents").values, backend: backend)
            let e = maxAbsDifference(decoded.output, try io.tensor("decoded").values)
            print("kl-sd-small decoder (\(backend)): max abs error \(e)")
            XCTAssertLessThan(e, Self.networkTolerance, "\(backend)")
        }
    }

    func testEncodersMatchDiffusers() throws {
        for backend in UNetBackend.allCases {
            let vq = try FixtureIO(folder("vq-small") + "/io.safetensors")
            let encoded = try run("vq-small", .encoder, input: try vq.tensor("image").values, backend: backend)
            XCTAssertLessThan(maxAbsDifference(encoded.output, try vq.tensor("encoded").values), Self.networkTolerance, "vq \(backend)")

            let kl = try FixtureIO(folder("kl-sd-small") + "/io.safetensors")
            let moments = try run("kl-sd-small", .encoder, input: try kl.tensor("image").values, backend: backend).output
            // [N, 2L, h, w]: the mean's L channels, then logvar's, per image.
            let mean = try kl.tensor("encoded").values, logvar = try kl.tensor("encoded_logvar").values
            let perImage = mean.count / 2
            var gotMean: [Float] = [], gotLogvar: [Float] = []
            for n in 0 ..< 2 {
                gotMean += moments[(2 * n) * perImage ..< (2 * n + 1) * perImage]
                gotLogvar += moments[(2 * n + 1) * perImage ..< (2 * n + 2) * perImage]
            }
            XCTAssertLessThan(maxAbsDifference(gotMean, mean), Self.networkTolerance, "kl mean \(backend)")
            XCTAssertLessThan(maxAbsDifference(gotLogvar, logvar), Self.networkTolerance, "kl logvar \(backend)")
        }
    }

    /// The encoder and decoder graphs together declare exactly the checkpoint's tensors.
    func testGraphsDeclareTheCheckpointsTensors() throws {
        for name in ["vq-small", "kl-sd-small", "ldm-small/vqvae"] {
            let c = try config(name)
            var declared: [String: [Int]] = [:]
            for p in AutoencoderGraph.parameters(c) {
                XCTAssertNil(declared[p.name], "\(name): \(p.name) declared twice")
                declared[p.name] = p.shape
            }
            let checkpoint = try SafetensorsCheckpoint(folder: folder(name))
            let written = Dictionary(uniqueKeysWithValues: checkpoint.tensors.map { (Converter.canonicalName($0.tensor.name), $0.tensor.shape) })
            XCTAssertEqual(declared.count, written.count, name)
            for (n, shape) in written { XCTAssertEqual(declared[n], shape, "\(name): \(n)") }
        }
    }

    func testConfigReaderRefusesWhatItCannotRun() throws {
        func refused(_ json: String, _ words: [String], line: UInt = #line) {
            XCTAssertThrowsError(try DiffusersConfig.autoencoder(JSONValue.parse(Array(json.utf8), context: "config.json")), line: line) { error in
                for w in words { XCTAssertTrue("\(error)".contains(w), "\(error) lacks \(w)", line: line) }
            }
        }
        refused(#"{"sample_size": 32}"#, ["_class_name", "VQModel or AutoencoderKL"])
        refused(#"{"_class_name": "AsymmetricAutoencoderKL", "sample_size": 32}"#, ["_class_name", "AsymmetricAutoencoderKL"])
        refused(#"{"_class_name": "VQModel", "sample_size": 32, "norm_type": "spatial"}"#, ["norm_type", "spatial"])
        refused(#"{"_class_name": "AutoencoderKL", "sample_size": 32, "latents_mean": [0.1, 0.2, 0.3, 0.4]}"#, ["latents_mean"])
        refused(#"{"_class_name": "AutoencoderKL", "sample_size": 32, "up_block_types": ["UpBlock2D"]}"#, ["up_block_types", "UpBlock2D"])
        refused(#"{"_class_name": "VQModel", "sample_size": 32, "block_out_channels": [32, 64]}"#, ["down_block_types", "one entry per"])
        refused(#"{"_class_name": "VQModel", "sample_size": 31, "block_out_channels": [32, 64], "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"], "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"], "norm_num_groups": 8}"#, ["sample_size", "divisible"])
        refused(#"{"_class_name": "AutoencoderKL", "sample_size": 32, "scaling_factor": 0}"#, ["scaling_factor"])
        // Defaults as diffusers': VQ's scaling_factor is 0.18215 when the config lacks it (diffusers issue #6725).
        let vq = try DiffusersConfig.autoencoder(JSONValue.parse(Array(#"{"_class_name": "VQModel", "sample_size": 32, "norm_num_groups": 32}"#.utf8), context: "c"))
        XCTAssertEqual(vq.config.scalingFactor, 0.18215)
        XCTAssertEqual(vq.config.latentChannels, 3)
        let kl = try DiffusersConfig.autoencoder(JSONValue.parse(Array(#"{"_class_name": "AutoencoderKL", "sample_size": 32, "shift_factor": null, "x": 1}"#.utf8), context: "c"))
        XCTAssertEqual(kl.config.latentChannels, 4)
        XCTAssertNil(kl.config.shiftFactor)
        XCTAssertTrue(kl.config.forceUpcast)
        XCTAssertEqual(kl.unknownFields, ["x"])
    }
}

/// A `WeightSource` over a diffusers safetensors folder, every tensor converted to fp32 in memory under its
/// canonical name: lets the runtime be checked on a component before the converter knows its family.
final class InMemoryWeights: WeightSource {
    private var tensors: [String: (shape: [Int], values: UnsafeMutableBufferPointer<Float>)] = [:]

    /// - stem: the weights' file names (see `SafetensorsCheckpoint`).
    init(folder: String, stem: String = "diffusion_pytorch_model") throws {
        for (t, file) in try SafetensorsCheckpoint(folder: folder, stem: stem).tensors {
            let values = try file.floats(t)
            let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: values.count)
            _ = buffer.initialize(from: values)
            tensors[Converter.canonicalName(t.name)] = (t.shape, buffer)
        }
    }

    deinit { for t in tensors.values { t.values.deallocate() } }

    private func tensor(_ name: String, _ shape: [Int]) throws -> UnsafeMutableBufferPointer<Float> {
        guard let t = tensors[name] else { throw EdgeError("no tensor \(name)") }
        guard t.shape == shape else { throw EdgeError("tensor \(name) has shape \(t.shape), expected \(shape)") }
        return t.values
    }

    func matrix(_ name: String, shape: [Int]) throws -> WeightMatrix {
        let values = try tensor(name, shape)
        return WeightMatrix(type: .f32, rows: shape[0], columns: values.count / shape[0], values: UnsafeRawPointer(values.baseAddress!), scales: nil)
    }

    func floats(_ name: String, shape: [Int], why: String) throws -> UnsafePointer<Float> { UnsafePointer(try tensor(name, shape).baseAddress!) }
    var hasInt8Weights: Bool { false }
    func storedBytes(_ name: String) -> Int { 4 * (tensors[name]?.values.count ?? 0) }
    func dropResidentPages(of weight: WeightMatrix) {}
}
