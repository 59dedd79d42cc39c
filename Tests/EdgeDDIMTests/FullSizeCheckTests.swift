import XCTest
import _EdgeCore
import EdgeModelFile
import EdgeUNet

/// The one-off check at full size (CompVis/ldm-celebahq-256's architecture with random weights, against
/// diffusers): run by tools/benchmarks/ldm_celebahq256.sh, which writes the checkpoints, diffusers' outputs and
/// the fp32 conversion into $EDGE_DDIM_FULL_SIZE; skipped otherwise (a gigabyte of weights is no fixture).
final class FullSizeCheckTests: XCTestCase {
    /// One evaluation of a 274 M-parameter UNet (about 200 GFLOP in fp32, sums of up to 8064 products per
    /// output) and of the 33 M-parameter decoder at 256×256, fp32 weights: relative L2 to diffusers. Measured
    /// 1.3e-6 and 1.5e-6 with the direct kernel, 2.6e-6 and 8.0e-6 with the Winograd convolutions (F(4,3) in the
    /// UNet, F(6,3) in the decoder's 256×256 layers) (2026-12-02; see the printed values); the bar is 1e-4 per
    /// evaluation, relative.
    static let relativeTolerance = 1e-4

    func folder() throws -> String {
        guard let path = ProcessInfo.processInfo.environment["EDGE_DDIM_FULL_SIZE"] else {
            throw XCTSkip("EDGE_DDIM_FULL_SIZE is not set (tools/benchmarks/ldm_celebahq256.sh sets it)")
        }
        return path
    }

    func testFullSizeLDMMatchesDiffusers() throws {
        let root = try folder()
        let model = try ModelFile(path: root + "/ldm-fp32.edm")
        let io = try FixtureIO(root + "/io.safetensors")
        let unet = try UNet(model: model, batch: 1, threads: Threads())
        _ = unet.sample.update(fromContentsOf: try io.tensor("unet_sample").values)
        unet.timesteps[0] = try io.tensor("unet_timestep").values[0]
        unet.run()
        let expected = try io.tensor("unet_output").values
        let unetError = relativeL2(Array(unet.output), expected)
        print("ldm-celebahq-256 UNet (274 M parameters), fp32: relative L2 \(unetError), max abs \(maxAbsDifference(Array(unet.output), expected))")
        XCTAssertLessThan(unetError, Self.relativeTolerance)

        let a = try XCTUnwrap(model.autoencoder)
        let decoder = try AutoencoderNetwork(a.config, .decoder(quantize: true), weights: model, prefix: a.prefix, batch: 1, latentSide: 64)
        _ = decoder.input.update(fromContentsOf: try io.tensor("decoder_latents").values)
        decoder.run()
        let image = try io.tensor("decoder_image").values
        let decoderError = relativeL2(Array(decoder.output), image)
        print("ldm-celebahq-256 VQ decoder (8192 codebook entries, 256×256), fp32: relative L2 \(decoderError), max abs \(maxAbsDifference(Array(decoder.output), image))")
        XCTAssertLessThan(decoderError, Self.relativeTolerance)
    }
}
