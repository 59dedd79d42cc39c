import XCTest
import _EdgeCore
import EdgeConvert
import EdgeModelFile
import EdgeDDIM
import EdgeUNet

/// The one-off check of Stable Diffusion at full size (runwayml/stable-diffusion-v1-5's and
/// stabilityai/stable-diffusion-2-1's architectures with random weights, against diffusers and transformers): run
/// by tools/benchmarks/sd_full_size.sh, which writes the pipelines and their references
/// (tools/reference/make_full_size_sd.py) and the fp32 conversions `<name>-fp32.edm` into $EDGE_DDIM_FULL_SIZE_SD;
/// skipped otherwise (2–2.5 GB of fp16 weights per pipeline is no fixture). Each pipeline whose model file is there is
/// checked: the tokenizer, the text embeddings, one UNet evaluation against float64 and the decoder.
final class FullSizeSDCheckTests: XCTestCase {
    static let pipelines = ["sd15", "sd21"]
    static let prompt = "a photograph of an astronaut riding a horse"

    /// The text embeddings (12 or 23 transformer layers, fp32 weights), max abs against transformers in float32:
    /// the bar of TextToImageTests.
    static let embeddingTolerance: Float = 1e-4

    /// One UNet evaluation, relative L2 against torch's float64 evaluation of the same weights and inputs (with the
    /// float64 sinusoid): at most torch's own float32 error against the same float64 result (errors.json), the
    /// text-to-image issue's "within diffusers' own fp32-vs-fp64 error". edge-ddim sums in other orders (Winograd
    /// convolutions, blocked GEMMs, its own softmax and GroupNorm) and rounds about as much as torch does; it meets
    /// the bar because it builds the sinusoidal time embedding in float64, which is most of torch's error at t = 500
    /// (errors.json's sinusoid_float32_vs_float64).
    static let unetErrorFactorOverTorch = 1.0
    /// The floor of that bar, should a checkpoint's torch error be tiny: float32 rounding over sums of up to 11,520
    /// products (the 3×3 convolutions of 1280 channels) does not stay below ~2e-6 relative. Below both SD errors
    /// (5.7e-6, 5.1e-6), so it does not decide them.
    static let unetErrorFloor = 2e-6

    /// The decoder (83 M-parameter AutoencoderKL's decoder path, 512×512 or 768×768), fp32 weights, relative L2
    /// against diffusers in float32: the bar of FullSizeCheckTests.
    static let decoderTolerance = 1e-4

    func folder() throws -> String {
        guard let path = ProcessInfo.processInfo.environment["EDGE_DDIM_FULL_SIZE_SD"] else {
            throw XCTSkip("EDGE_DDIM_FULL_SIZE_SD is not set (tools/benchmarks/sd_full_size.sh sets it)")
        }
        return path
    }

    /// errors.json's torch float32-vs-float64 relative L2 of the UNet evaluation.
    func torchRelativeError(_ path: String) throws -> Double {
        let json = try JSONValue.parse(readWholeFile(path), context: path)
        switch json["unet_fp32_vs_fp64"]?["relative_l2"] {
        case .double(let d)?: return d
        case .int(let i)?: return Double(i)
        default: throw EdgeError("\(path): no unet_fp32_vs_fp64.relative_l2")
        }
    }

    func testFullSizeStableDiffusionMatchesDiffusers() throws {
        let root = try folder()
        var checked = 0
        for name in Self.pipelines where fileExists(root + "/\(name)-fp32.edm") {
            try check(name, root: root)
            checked += 1
        }
        XCTAssertGreaterThan(checked, 0, "no <name>-fp32.edm for \(Self.pipelines) in \(root)")
    }

    func check(_ name: String, root: String) throws {
        let model = try ModelFile(path: root + "/\(name)-fp32.edm")
        let io = try FixtureIO(root + "/\(name)/io.safetensors")
        let threads = Threads()

        // The tokenizer and the text encoder.
        let tokenizer = try XCTUnwrap(model.tokenizer, name)
        XCTAssertEqual(tokenizer.encode(Self.prompt).map(Float.init), try io.tensor("prompt_ids").values, "\(name): token ids")
        let d = try XCTUnwrap(model.textEncoder, name).config.hiddenSize
        let embeddings = try PromptEmbeddings.encode(model: model, prompt: Self.prompt, negativePrompt: nil, guided: false, threads: threads)
        XCTAssertNil(embeddings.unconditional, name)
        let embeddingError = maxAbsDifference(transposedImages(embeddings.conditional, batch: 1, rows: d, columns: 77),
                                              try io.tensor("prompt_embeds").values)
        print("\(name) text encoder (hidden \(d)), fp32: prompt embeddings max abs error \(embeddingError)")
        XCTAssertLessThan(embeddingError, Self.embeddingTolerance, "\(name): prompt embeddings")

        // One UNet evaluation, batch 1, on diffusers' context (not edge-ddim's own embeddings: this checks the UNet alone).
        let side = try io.tensor("unet_sample").shape[2]
        do {
            let context = try io.tensor("unet_encoder_hidden_states")   // [1, 77, D]
            // EDGE_DDIM_WINOGRAD=off checks the direct 3×3 kernel instead of the default Winograd convolutions.
            let unet = try UNet(model: model, batch: 1, threads: threads, winograd: ProcessInfo.processInfo.environment["EDGE_DDIM_WINOGRAD"] != "off")
            _ = unet.sample.update(fromContentsOf: try io.tensor("unet_sample").values)
            unet.timesteps[0] = try io.tensor("unet_timestep").values[0]
            _ = try XCTUnwrap(unet.context, name).update(fromContentsOf: transposedImages(context.values, batch: 1, rows: 77, columns: context.shape[2]))
            unet.run()
            let output = Array(unet.output)
            let fp64 = try io.tensor("unet_output_fp64").values
            let error = relativeL2(output, fp64)
            let torchError = try torchRelativeError(root + "/\(name)/errors.json")
            let bar = max(Self.unetErrorFactorOverTorch * torchError, Self.unetErrorFloor)
            let againstTorch = relativeL2(output, try io.tensor("unet_output").values)
            print("\(name) UNet (4×\(side)×\(side) latents), fp32: relative L2 to torch float64 \(error) "
                  + "(torch float32's own: \(torchError), ratio \(error / torchError); bar \(bar)), max abs \(maxAbsDifference(output, fp64)); "
                  + "relative L2 to torch float32 \(againstTorch)")
            XCTAssertLessThanOrEqual(error, bar, "\(name): UNet against float64")
        }

        // The decoder alone (no scaling_factor: diffusers' vae.decode(latents)).
        do {
            let a = try XCTUnwrap(model.autoencoder, name)
            let decoder = try AutoencoderNetwork(a.config, .decoder(quantize: true), weights: model, prefix: a.prefix, batch: 1,
                                                 latentSide: side, threads: threads)
            _ = decoder.input.update(fromContentsOf: try io.tensor("decoder_latents").values)
            decoder.run()
            let image = try io.tensor("decoder_image").values
            let output = Array(decoder.output)
            let error = relativeL2(output, image)
            print("\(name) VAE decoder (\(side)×\(side) → \(8 * side)×\(8 * side)), fp32: relative L2 \(error), max abs \(maxAbsDifference(output, image))")
            XCTAssertLessThan(error, Self.decoderTolerance, "\(name): decoder")
        }
    }
}
