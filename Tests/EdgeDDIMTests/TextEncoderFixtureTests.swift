import XCTest
import _EdgeCore
import EdgeGraph
import EdgeConvert
import EdgeUNet

/// The CLIP text encoder (transformers' CLIPTextModel, both Stable Diffusion kinds) against transformers on the
/// fixtures of tools/reference/make_text_encoder_fixtures.py, both backends, from the fp16 files.
final class TextEncoderFixtureTests: XCTestCase {
    /// The issue's bar for the text embeddings. Measured well under it (printed): fp32 sums in another order
    /// through a few layers whose LayerNorms keep every value O(1).
    static let embeddingTolerance: Float = 1e-4

    static let cases = ["clip-l-small", "clip-h-small"]

    func folder(_ name: String) -> String { fixturesRoot + "/text_encoder/\(name)" }

    func config(_ name: String) throws -> CLIPTextConfig {
        let path = folder(name) + "/config.json"
        return try DiffusersConfig.clipText(JSONValue.parse(readWholeFile(path), context: path)).config
    }

    func testLastHiddenStateMatchesTransformers() throws {
        for name in Self.cases {
            let c = try config(name)
            let io = try FixtureIO(folder(name) + "/io.safetensors")
            let ids = try io.tensor("input_ids")
            let (batch, tokens) = (ids.shape[0], ids.shape[1])
            let weights = try InMemoryWeights(folder: folder(name), stem: SafetensorsCheckpoint.transformersStem)
            for backend in UNetBackend.allCases {
                let network = try TextEncoderNetwork(c, weights: weights, batch: batch, tokens: tokens, threads: Threads(2), backend: backend)
                var stages: [String: [Float]] = [:]
                try network.encode(ids.values.map { Int32($0) }) { stage, values in
                    stages[stage] = transposedImages(values, batch: batch, rows: c.hiddenSize, columns: tokens)
                }
                // The embeddings are two fp16-exact rows added in fp32, as torch adds them: bit for bit.
                XCTAssertEqual(stages["embeddings"], try io.tensor("hidden_states.0").values, "\(name) \(backend) embeddings")
                for layer in 0 ..< c.numHiddenLayers {
                    let e = maxAbsDifference(try XCTUnwrap(stages["encoder.layers.\(layer)"]), try io.tensor("hidden_states.\(layer + 1)").values)
                    XCTAssertLessThan(e, Self.embeddingTolerance, "\(name) \(backend) layer \(layer)")
                }
                let out = transposedImages(network.lastHiddenState, batch: batch, rows: c.hiddenSize, columns: tokens)
                let e = maxAbsDifference(out, try io.tensor("last_hidden_state").values)
                print("\(name) (\(backend)): last_hidden_state max abs error \(e)")
                XCTAssertLessThan(e, Self.embeddingTolerance, "\(name) \(backend)")
            }
        }
    }

    /// The graph names every tensor of the checkpoint, in the hub's layout (`text_model.` prefix), with its shape,
    /// and nothing else; its parameter count is torch's.
    func testGraphParametersAreTheCheckpoints() throws {
        for name in Self.cases {
            let c = try config(name)
            let graph = CLIPTextModelGraph.graph(c, batch: 1)
            let checkpoint = try SafetensorsCheckpoint(folder: folder(name), stem: SafetensorsCheckpoint.transformersStem)
            let stored = Dictionary(uniqueKeysWithValues: checkpoint.tensors.map { ($0.tensor.name, $0.tensor.shape) })
            let declared = Dictionary(uniqueKeysWithValues: graph.parameters.map { ($0.name, $0.shape) })
            XCTAssertEqual(declared, stored, name)
            // make_text_encoder_fixtures.py printed torch's numel counts: 144256 and 115656.
            XCTAssertEqual(graph.parameterCount, name == "clip-l-small" ? 144_256 : 115_656, name)
        }
    }

    /// At full size (SD 1.x's CLIP ViT-L/14, SD 2.x's OpenCLIP ViT-H/14) the graph's parameter count is torch's,
    /// from full_size_counts.json (the fixture script builds both models on torch's meta device and counts).
    func testFullSizeParameterCountsAreTorchs() throws {
        let path = fixturesRoot + "/text_encoder/full_size_counts.json"
        let json = try JSONValue.parse(Array(readWholeFile(path)), context: path)
        for name in ["sd1", "sd2"] {
            let entry = try XCTUnwrap(json[name])
            let config = try DiffusersConfig.clipText(try XCTUnwrap(entry["config"]), file: "\(name) config").config
            guard case .int(let expected)? = entry["parameters"] else { return XCTFail("\(path): \(name).parameters") }
            XCTAssertEqual(Int64(CLIPTextModelGraph.graph(config, batch: 1).parameterCount), expected, name)
        }
    }

    func testBadTokenIDsAndConfigsAreRefused() throws {
        let c = try config("clip-l-small")
        let weights = try InMemoryWeights(folder: folder("clip-l-small"), stem: SafetensorsCheckpoint.transformersStem)
        let network = try TextEncoderNetwork(c, weights: weights, batch: 1, tokens: 4, threads: Threads(1))
        XCTAssertThrowsError(try network.encode([1, 2, 3, Int32(c.vocabSize)])) { XCTAssertTrue("\($0)".contains("outside the text encoder's vocabulary"), "\($0)") }
        XCTAssertThrowsError(try network.encode([1, 2, -1, 3]))
        XCTAssertThrowsError(try network.encode([1, 2, 3])) { XCTAssertTrue("\($0)".contains("1 × 4 token ids"), "\($0)") }
        XCTAssertThrowsError(try TextEncoderNetwork(c, weights: weights, batch: 1, tokens: 78))
        func refused(_ json: String, _ message: String, line: UInt = #line) {
            XCTAssertThrowsError(try DiffusersConfig.clipText(JSONValue.parse(Array(json.utf8), context: "config.json")), line: line) {
                XCTAssertTrue("\($0)".contains(message), "\($0)", line: line)
            }
        }
        refused(#"{"hidden_act": "relu"}"#, "hidden_act is \"relu\"")
        refused(#"{"architectures": ["CLIPVisionModel"]}"#, "only CLIPTextModel")
        refused(#"{"hidden_size": 64, "num_attention_heads": 5}"#, "does not divide hidden_size")
        refused(#"{"model_type": "t5"}"#, "model_type")
        refused(#"[1]"#, "not a JSON object")
        let known = try DiffusersConfig.clipText(JSONValue.parse(Array(#"{"hidden_size": 768, "num_attention_heads": 12, "new_field": 1}"#.utf8), context: "c"))
        XCTAssertEqual(known.unknownFields, ["new_field"])
        XCTAssertEqual(known.config.hiddenAct, CLIPTextConfig.Activation.quickGELU)
    }
}
