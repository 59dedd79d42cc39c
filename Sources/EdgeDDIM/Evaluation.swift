import _EdgeCore
import EdgeModelFile
import EdgeImageIO

/// Quality measurements of one model against another conversion of the same checkpoint (int8 against fp32
/// weights, by default): how far quantisation moves the samples, and how well DDIM inversion reconstructs
/// images as the number of steps grows (DDIM paper, Table 2). `edge-ddim eval` prints them as markdown.
public enum Evaluation {
    /// N samples of both models from the same x_T, compared image by image in [0, 1] (`ImageDistance`).
    public struct Comparison: Sendable {
        public var steps: Int
        /// The sampler and its options (`SamplerSettings.label`, η included).
        public var sampler: String
        public var eta: Float
        public var count: Int
        /// PSNR of each image pair, dB.
        public var psnr: [Double]
        /// PSNR of the MSE over all values of all images.
        public var overallPSNR: Double
        public var referenceSecondsPerImage: Double
        public var candidateSecondsPerImage: Double

        public var minimumPSNR: Double { psnr.min() ?? .nan }
        /// The middle value (the mean of the two middle values for an even count).
        public var medianPSNR: Double {
            let s = psnr.sorted()
            guard !s.isEmpty else { return .nan }
            return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
        }
    }

    /// Reconstruction of the same images by one model with S steps.
    public struct ReconstructionRow: Sendable {
        public var steps: Int
        /// MSE per value over all images, in [0, 1].
        public var meanSquaredError: Double
        /// Seconds per image for inversion plus generation (2·S UNet evaluations).
        public var secondsPerImage: Double
        public var psnr: Double { ImageDistance.psnr(meanSquaredError: meanSquaredError) }
    }

    /// `count` samples with `options` (η, seed, steps; x_T drawn once for the whole [count, C, H, W], as
    /// `edge-ddim --count N --seed S` does) and the seconds the sampling loop took; for latent diffusion the
    /// decoded images.
    /// - stop: polled before each step, as in `SamplingPipeline.run` (every function here takes one).
    public static func sample(model: ModelFile, options: SamplingOptions,
                              stop: (() -> Int32?)? = nil) throws -> (x0: [Float], seconds: Double) {
        let pipeline = try SamplingPipeline(model: model, options: options)
        let start = monotonicSeconds()
        try pipeline.run(stop: stop)
        return (Array(pipeline.output), monotonicSeconds() - start)
    }

    /// Samples with both models from the same seed and compares them.
    public static func compare(reference: ModelFile, candidate: ModelFile, options: SamplingOptions,
                               stop: (() -> Int32?)? = nil) throws -> Comparison {
        let a = try sample(model: reference, options: options, stop: stop)
        let b = try sample(model: candidate, options: options, stop: stop)
        let per = a.x0.count / options.count
        guard b.x0.count == a.x0.count else {
            throw EdgeError.usage("\(reference.path) and \(candidate.path) make images of different shapes")
        }
        var psnr: [Double] = []
        for i in 0..<options.count {
            let range = i * per..<(i + 1) * per
            psnr.append(ImageDistance.psnr(meanSquaredError: ImageDistance.meanSquaredError(Array(a.x0[range]), Array(b.x0[range]))))
        }
        return Comparison(steps: options.steps, sampler: options.sampler.kind.rawValue, eta: options.eta, count: options.count, psnr: psnr,
                          overallPSNR: ImageDistance.psnr(meanSquaredError: ImageDistance.meanSquaredError(a.x0, b.x0)),
                          referenceSecondsPerImage: a.seconds / Double(options.count),
                          candidateSecondsPerImage: b.seconds / Double(options.count))
    }

    /// Images to reconstruct: the model's own samples with `options`, rounded to 8-bit pixels and mapped back
    /// to v/127.5 − 1, i.e. exactly what `reconstruct` reads from the PNG tiles `edge-ddim` writes.
    public static func sourceImages(model: ModelFile, options: SamplingOptions, stop: (() -> Int32?)? = nil) throws -> [Float] {
        try sample(model: model, options: options, stop: stop).x0.map { Float(diffusersPixelValue($0)) / 127.5 - 1 }
    }

    /// Inverts and regenerates `images` (`count` of them) with `steps` steps; `clipSample` as `DDIMInversion`
    /// (default off, as `edge-ddim reconstruct` and the DDIM paper's Table 2).
    public static func reconstruction(model: ModelFile, images: [Float], count: Int, steps: Int, batch: Int?, threads: Threads,
                                      clipSample: Bool? = false, stop: (() -> Int32?)? = nil) throws -> ReconstructionRow {
        var options = SamplingOptions()
        options.clipSample = clipSample
        options.steps = steps
        options.count = count
        options.batch = batch
        options.threads = threads
        let inversion = try DDIMInversion(model: model, options: options)
        let start = monotonicSeconds()
        let result = try inversion.reconstruct(images, stop: stop)
        return ReconstructionRow(steps: steps, meanSquaredError: result.meanSquaredError,
                                 secondsPerImage: (monotonicSeconds() - start) / Double(count))
    }

    /// The storage type of a model's convolution and linear weights ("int8", "fp16", "fp32").
    public static func weightType(_ model: ModelFile) -> String {
        model.entries.first { $0.shape.count >= 2 }.map { "\($0.type)" } ?? "?"
    }

    static func decibels(_ x: Double) -> String { x.isFinite ? fixed(x, decimals: 2) : (x > 0 ? "∞" : "n/a") }

    /// The comparison table in markdown.
    public static func comparisonTable(_ rows: [Comparison], referenceName: String, candidateName: String) -> String {
        var lines = [
            "| sampler | steps | η | images | PSNR min (dB) | PSNR median (dB) | PSNR of all-image MSE (dB) | s/image \(referenceName) | s/image \(candidateName) |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in rows {
            lines.append("| \(r.sampler) | \(r.steps) | \(r.eta == r.eta.rounded() ? String(Int(r.eta)) : "\(r.eta)") | \(r.count) | \(decibels(r.minimumPSNR)) | \(decibels(r.medianPSNR)) | \(decibels(r.overallPSNR)) | \(fixed(r.referenceSecondsPerImage, decimals: 3)) | \(fixed(r.candidateSecondsPerImage, decimals: 3)) |")
        }
        return lines.joined(separator: "\n")
    }

    /// The reconstruction table in markdown: one column pair per model, rows by S.
    public static func reconstructionTable(_ columns: [(name: String, rows: [ReconstructionRow])]) -> String {
        var header = "| S (steps each way) |", rule = "| --- |"
        for c in columns {
            header += " MSE \(c.name) | PSNR \(c.name) (dB) | s/image \(c.name) |"
            rule += " --- | --- | --- |"
        }
        var lines = [header, rule]
        let count = columns.first?.rows.count ?? 0
        for i in 0..<count {
            var line = "| \(columns[0].rows[i].steps) |"
            for c in columns {
                let r = c.rows[i]
                line += " \(fixed(r.meanSquaredError, decimals: 5)) | \(decibels(r.psnr)) | \(fixed(r.secondsPerImage, decimals: 3)) |"
            }
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }
}
