import _EdgeCore
import EdgeModelFile
import EdgeUNet

/// A latent diffusion model's autoencoder on its own: latents in the diffusion model's space (what `sample
/// --latents` writes and the UNet denoises) to images and back, with the pipeline's scaling —
/// decode(z) = decoder(z / scaling_factor + shift_factor), encode(x) = (encoder(x) − shift_factor) ·
/// scaling_factor, where a KL encoder's output is its mean (the mode of latent_dist: deterministic, as
/// diffusers' `retrieve_latents(..., sample_mode="argmax")`). One image at a time, like the pipeline's decoder.
public enum Autoencoding {
    /// The model's autoencoder, or a one-line error saying the model has none (`what`: the command).
    public static func component(_ model: ModelFile, _ what: String) throws -> ModelFile.AutoencoderComponent {
        guard let a = model.autoencoder else {
            throw EdgeError.usage("\(what): model \(model.path) has no autoencoder (a pixel-space UNet: its images are its x₀)")
        }
        return a
    }

    /// Channels and side of the model's images: the autoencoder's (the UNet's latents, upsampled by the
    /// decoder) for latent diffusion, else the UNet's own.
    public static func imageShape(model: ModelFile) -> (channels: Int, side: Int) {
        let u = model.unet
        guard let a = model.autoencoder else { return (u.inChannels, u.sampleSize) }
        return (a.config.inChannels, u.sampleSize * a.config.downsampling)
    }

    /// decoder(latents / scaling_factor + shift_factor) for each of `count` latents, one at a time through
    /// `decoder` (batch 1), into `images`; `stop` is polled before each. Allocates nothing: the pipeline's
    /// last step and `decode` both run it.
    static func decode(_ decoder: AutoencoderNetwork, latents: UnsafeBufferPointer<Float>, count: Int,
                       into images: UnsafeMutableBufferPointer<Float>, stop: (() -> Int32?)? = nil) throws {
        let c = decoder.config
        let scale = Float(1 / c.scalingFactor), shift = Float(c.shiftFactor ?? 0)
        let perLatent = decoder.input.count, perImage = decoder.output.count
        precondition(latents.count == count * perLatent && images.count == count * perImage)
        for n in 0 ..< count {
            if let signal = stop?() { throw Interrupted(signal: signal) }
            for i in 0 ..< perLatent { decoder.input[i] = latents[n * perLatent + i] * scale + shift }
            decoder.run()
            (images.baseAddress! + n * perImage).update(from: decoder.output.baseAddress!, count: perImage)
        }
    }

    /// Decodes latents [N, C, h, w] (C: the autoencoder's latent width, h = w) into images [N, out_channels,
    /// H, W] (before /2 + 0.5 and the clamp).
    public static func decode(model: ModelFile, latents: [Float], shape: [Int], threads: Threads = Threads()) throws -> (values: [Float], shape: [Int]) {
        let a = try component(model, "decode")
        let c = a.config
        guard shape.count == 4, shape[1] == c.embedDim, shape[2] == shape[3], shape[0] >= 1, shape[2] >= 1, latents.count == shape.reduce(1, *) else {
            throw EdgeError("latents have shape \(shape); \(c.kind.rawValue) decodes [N, \(c.embedDim), h, h]")
        }
        let side = shape[2]
        guard side <= 4096 / c.downsampling else { throw EdgeError("latents of \(side)×\(side) decode to more than 4096×4096 pixels") }
        let network = try AutoencoderNetwork(c, .decoder(quantize: true), weights: model, prefix: a.prefix, batch: 1, latentSide: side,
                                             threads: threads)
        var out = [Float](repeating: 0, count: shape[0] * network.output.count)
        try latents.withUnsafeBufferPointer { z in
            try out.withUnsafeMutableBufferPointer { try decode(network, latents: z, count: shape[0], into: $0) }
        }
        return (out, [shape[0], c.outChannels, network.outputSide, network.outputSide])
    }

    /// Encodes images [N, in_channels, H, W] in [−1, 1] (H = W, a multiple of 2^(levels − 1)) into latents.
    public static func encode(model: ModelFile, images: [Float], shape: [Int], threads: Threads = Threads()) throws -> (values: [Float], shape: [Int]) {
        let a = try component(model, "encode")
        let c = a.config
        let factor = c.downsampling
        guard shape.count == 4, shape[1] == c.inChannels, shape[2] == shape[3], shape[0] >= 1, shape[2] >= factor, shape[2] % factor == 0,
              images.count == shape.reduce(1, *) else {
            throw EdgeError("images have shape \(shape); \(c.kind.rawValue) encodes [N, \(c.inChannels), H, H] with H a multiple of \(factor)")
        }
        let network = try AutoencoderNetwork(c, .encoder, weights: model, prefix: a.prefix, batch: 1, latentSide: shape[2] / factor,
                                             threads: threads)
        let per = network.input.count
        // KL: the first half of the moments is the mean.
        let latentFloats = c.embedDim * network.outputSide * network.outputSide
        let scale = Float(c.scalingFactor), shift = Float(c.shiftFactor ?? 0)
        var out: [Float] = []
        out.reserveCapacity(shape[0] * latentFloats)
        for n in 0 ..< shape[0] {
            images.withUnsafeBufferPointer { network.input.baseAddress!.update(from: $0.baseAddress! + n * per, count: per) }
            network.run()
            out += network.output.prefix(latentFloats).map { ($0 - shift) * scale }
        }
        return (out, [shape[0], c.embedDim, network.outputSide, network.outputSide])
    }
}
