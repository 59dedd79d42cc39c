import XCTest
import _EdgeCore
import EdgeGraph
@_spi(Testing) import EdgeUNet
import EdgeConvert

/// diffusers' UNet2DConditionModel (Stable Diffusion's two layouts) against diffusers on the fixtures of
/// tools/reference/make_conditional_unet_fixtures.py: one evaluation with a text context, both backends.
final class ConditionalUNetFixtureTests: XCTestCase {
    /// The issue's bar for one UNet evaluation (as UNetFixtureTests); measured well under it (printed).
    static let evaluationTolerance: Float = 1e-4

    func folder(_ name: String) -> String { fixturesRoot + "/conditional_unet/\(name)" }

    func config(_ name: String) throws -> DiffusersConfig.Result {
        let path = folder(name) + "/config.json"
        return try DiffusersConfig.conditionalUNet(JSONValue.parse(readWholeFile(path), context: path))
    }

    func testOneEvaluationMatchesDiffusers() throws {
        for name in ["sd1-small", "sd2-small"] {
            let result = try config(name)
            XCTAssertEqual(result.unknownFields, [], name)
            let c = result.config
            let k = try XCTUnwrap(c.conditioning)
            let io = try FixtureIO(folder(name) + "/io.safetensors")
            let weights = try InMemoryWeights(folder: folder(name))
            let context = try io.tensor("encoder_hidden_states")  // [N, T, D]
            let (batch, tokens, width) = (context.shape[0], context.shape[1], context.shape[2])
            XCTAssertEqual([tokens, width], [k.contextTokens, k.crossAttentionDim])
            let channelMajor = transposedImages(context.values, batch: batch, rows: tokens, columns: width)
            for backend in UNetBackend.allCases {
                let unet = try UNet(config: c, weights: weights, batch: batch, threads: Threads(2), backend: backend)
                _ = unet.sample.update(fromContentsOf: try io.tensor("sample").values)
                _ = unet.timesteps.update(fromContentsOf: try io.tensor("timestep").values)
                _ = try XCTUnwrap(unet.context).update(fromContentsOf: channelMajor)
                var stages: [String: [Float]] = [:]
                unet.run { stages[$0] = Array($1) }
                for (stage, values) in stages where stage.hasPrefix("down_blocks") || stage.hasPrefix("up_blocks") || stage == "mid_block" {
                    let e = maxAbsDifference(values, try io.tensor("debug.\(stage)").values)
                    XCTAssertLessThan(e, Self.evaluationTolerance, "\(name) \(backend) \(stage)")
                }
                let e = maxAbsDifference(UnsafeBufferPointer(unet.output), try io.tensor("output").values)
                print("\(name) (\(backend)): output max abs error \(e)")
                XCTAssertLessThan(e, Self.evaluationTolerance, "\(name) \(backend)")
            }
        }
    }

    /// The graph names every tensor of the checkpoint with its shape, and nothing else.
    func testGraphParametersAreTheCheckpoints() throws {
        for name in ["sd1-small", "sd2-small"] {
            let graph = UNet2DModelGraph.build(try config(name).config, batch: 1)
            let checkpoint = try SafetensorsCheckpoint(folder: folder(name))
            let stored = Dictionary(uniqueKeysWithValues: checkpoint.tensors.map { ($0.tensor.name, $0.tensor.shape) })
            let declared = Dictionary(uniqueKeysWithValues: graph.parameters.map { ($0.name, $0.shape) })
            XCTAssertEqual(Set(declared.keys).symmetricDifference(stored.keys), [], name)
            XCTAssertEqual(declared, stored, name)
        }
    }

    func testUnsupportedConfigsAreRefusedByName() throws {
        func refused(_ json: String, _ message: String, line: UInt = #line) {
            XCTAssertThrowsError(try DiffusersConfig.conditionalUNet(JSONValue.parse(Array(json.utf8), context: "config.json")), line: line) {
                XCTAssertTrue("\($0)".contains(message), "\($0)", line: line)
            }
        }
        refused(#"{"sample_size": 64, "addition_embed_type": "text_time"}"#, "addition_embed_type")
        refused(#"{"sample_size": 64, "down_block_types": ["CrossAttnDownBlock2D", "SimpleCrossAttnDownBlock2D", "DownBlock2D", "DownBlock2D"]}"#,
                "SimpleCrossAttnDownBlock2D")
        refused(#"{"sample_size": 64, "mid_block_type": "UNetMidBlock2DSimpleCrossAttn"}"#, "mid_block_type")
        refused(#"{"sample_size": 64, "transformer_layers_per_block": [1, 2, 10, 10]}"#, "transformer_layers_per_block")
        refused(#"{"sample_size": 64, "attention_head_dim": [5, 10, 20]}"#, "attention_head_dim")
        refused(#"{"sample_size": 64, "attention_head_dim": 7}"#, "heads do not divide")
        refused(#"{"sample_size": 64, "only_cross_attention": true}"#, "only_cross_attention")
        refused(#"{"sample_size": 64, "_class_name": "UNet2DModel"}"#, "expected UNet2DConditionModel")
        // SD 1.5's and SD 2.1's own configs (abridged to the fields that matter) are accepted as their layouts.
        let sd15 = try DiffusersConfig.conditionalUNet(JSONValue.parse(Array(#"{"sample_size": 64, "cross_attention_dim": 768, "attention_head_dim": 8}"#.utf8), context: "c")).config
        XCTAssertEqual(sd15.conditioning?.headsPerBlock, [8, 8, 8, 8])
        XCTAssertEqual(sd15.conditioning?.useLinearProjection, false)
        let sd21 = try DiffusersConfig.conditionalUNet(JSONValue.parse(Array(#"{"sample_size": 96, "cross_attention_dim": 1024, "attention_head_dim": [5, 10, 20, 20], "use_linear_projection": true, "upcast_attention": true}"#.utf8), context: "c")).config
        XCTAssertEqual(sd21.conditioning?.headsPerBlock, [5, 10, 20, 20])
    }
}
