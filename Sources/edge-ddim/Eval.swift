import ArgumentParser
import _EdgeCore
import EdgeDDIM
import EdgeModelFile

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare a model with a reference conversion of the same checkpoint, and measure DDIM reconstruction; prints markdown.")

    @Option(help: "Model to evaluate.")
    var model: String = defaultModelPath

    @Option(help: "Reference model, e.g. an fp32 conversion of the same checkpoint (convert ... --weights fp32).")
    var reference: String = "models/ddpm-fashion-32-fp32.edm"

    @Option(help: "Comma-separated step counts for the sample comparison.")
    var steps: String = "10,20"

    @OptionGroup var sampling: SamplerOption

    @Option(help: "Comma-separated η values for the sample comparison (DDIM only). Default: 0,1 for ddim, 0 for the other samplers.")
    var eta: String?

    @Option(help: "Samples per comparison (one x_T draw of [N,C,H,W], as sample --count N).")
    var count: Int = 64

    @Option(help: "Seed of the comparison samples.")
    var seed: UInt64 = 0

    @Option(name: .customLong("recon-steps"), help: "Comma-separated S for reconstruction (invert with S steps, generate back with S).")
    var reconSteps: String = "10,20,50,100"

    @Option(name: .customLong("recon-count"), help: "Images to reconstruct (0: skip): the reference model's samples, rounded to 8 bits.")
    var reconCount: Int = 16

    @Option(name: .customLong("recon-seed"), help: "Seed of the images to reconstruct.")
    var reconSeed: UInt64 = 1

    @Option(name: .customLong("recon-source-steps"), help: "Steps used to sample the images to reconstruct (with η = 1).")
    var reconSourceSteps: Int = 100

    @Option(help: "Threads. Default: OMP_NUM_THREADS, else every online core.")
    var threads: Int?

    @Option(help: "Images per UNet evaluation. Default: 4.")
    var batch: Int?

    @Option(help: "Also write the markdown to this file.")
    var output: String?

    @OptionGroup var memory: MaxMemoryOption

    static func list<T>(_ text: String, _ name: String, _ parse: (String) -> T?) throws -> [T] {
        let items = text.split(separator: ",").map { String($0.filter { $0 != " " }) }
        let values = items.compactMap { parse($0) }
        guard !items.isEmpty, values.count == items.count else { throw EdgeError.usage("--\(name) must be a comma-separated list, got '\(text)'") }
        return values
    }

    func run() throws {
        if let t = threads, !(1 ... 1024).contains(t) { throw EdgeError.usage("--threads must be in 1...1024, got \(t)") }
        let stepList = try Self.list(steps, "steps") { Int($0) }
        let etaList = try Self.list(eta ?? (try sampling.kind() == .ddim ? "0,1" : "0"), "eta") { Float($0) }
        let reconList = try Self.list(reconSteps, "recon-steps") { Int($0) }
        if let bad = etaList.first(where: { !($0 >= 0 && $0 <= 1) }) { throw EdgeError.usage("--eta values must be in [0, 1], got \(bad)") }
        for e in etaList { _ = try sampling.settings(eta: e) }
        guard (1 ... SamplingOptions.maxCount).contains(count) else { throw EdgeError.usage("--count must be in 1...\(SamplingOptions.maxCount), got \(count)") }
        guard (0 ... SamplingOptions.maxCount).contains(reconCount) else { throw EdgeError.usage("--recon-count must be in 0...\(SamplingOptions.maxCount), got \(reconCount)") }
        if let output { try checkWritable(output) }
        let limit = try memory.limit()
        // From here on SIGINT / SIGTERM stop the run at the next step boundary instead of killing it.
        try Interruption.install()
        let candidate = try openModel(model, limit: limit)
        try refuseTextToImage(candidate, command: "evaluation")
        guard fileExists(reference) else {
            throw EdgeError("reference model \(reference) not found (make it with: swift run -c release convert ../shared/models/ddpm-fashion-32 \(reference) --weights fp32)")
        }
        let base = try openModel(reference, limit: limit)
        let trainSteps = min(candidate.schedule.numTrainTimesteps, base.schedule.numTrainTimesteps)
        for s in stepList + reconList + [reconSourceSteps] where !(1 ... trainSteps).contains(s) {
            throw EdgeError.usage("steps must be in 1...\(trainSteps), got \(s)")
        }
        let threads = Threads(threads)
        // The largest runs: `count` samples, and `reconCount` images sampled then reconstructed, in batches of
        // `batch`; one model's pipeline at a time, so each model is checked on its own.
        for file in [base, candidate] {
            var options = SamplingOptions()
            options.count = count
            options.batch = batch
            options.threads = threads
            try limit.check(model: file, options: options)
            if reconCount > 0 {
                options.count = reconCount
                try limit.check(model: file, options: options, task: "reconstructing")
            }
        }
        // Which run a signal stopped, for the one-line message; nothing is printed on stdout or written before the end.
        var running = ""
        let text: String
        do {
            text = try evaluate(candidate: candidate, base: base, threads: threads, stepList: stepList, etaList: etaList, reconList: reconList,
                                running: &running)
            try Interruption.throwIfRequested()
        } catch let stop as Interrupted {
            throw Interrupted(signal: stop.signal, detail: "stopped while \(running); nothing written")
        }
        print(text, terminator: "")
        if let output { try writeFileAtomically(output, bytes: Array(text.utf8)) }
    }

    /// Runs the comparisons and reconstructions and returns the markdown; `running` names the run in progress.
    func evaluate(candidate: ModelFile, base: ModelFile, threads: Threads, stepList: [Int], etaList: [Float], reconList: [Int],
                  running: inout String) throws -> String {
        let stop: () -> Int32? = { Interruption.signal }
        let refName = Evaluation.weightType(base), candName = Evaluation.weightType(candidate)
        let refLabel = refName == candName ? "reference" : refName
        let candLabel = refName == candName ? "model" : candName

        var comparisons: [Evaluation.Comparison] = []
        for s in stepList {
            for e in etaList {
                var options = SamplingOptions()
                options.steps = s
                options.sampler = try sampling.settings(eta: e)
                options.seed = seed
                options.count = count
                options.batch = batch
                options.threads = threads
                running = "comparing \(count) samples, \(options.sampler.label), \(s) steps"
                let row = try Evaluation.compare(reference: base, candidate: candidate, options: options, stop: stop)
                printError("compared \(count) samples, \(options.sampler.label), \(s) steps: median PSNR \(fixed(row.medianPSNR)) dB")
                comparisons.append(row)
            }
        }
        var text = "\(candidate.path) (\(candName) weights) against \(base.path) (\(refName) weights), \(threads.count) thread\(threads.count == 1 ? "" : "s"), batch \(batch ?? SamplingOptions.defaultBatch).\n\n"
        text += "Samples: \(count) images from seed \(seed) (x_T as `edge-ddim --count \(count) --seed \(seed)`), each model from the same x_T; images compared in [0, 1].\n\n"
        text += Evaluation.comparisonTable(comparisons, referenceName: refLabel, candidateName: candLabel) + "\n"
        if reconCount > 0 {
            var options = SamplingOptions()
            options.steps = reconSourceSteps
            options.eta = 1
            options.seed = reconSeed
            options.count = reconCount
            options.batch = batch
            options.threads = threads
            running = "sampling the \(reconCount) images to reconstruct"
            let images = try Evaluation.sourceImages(model: base, options: options, stop: stop)
            var columns: [(name: String, rows: [Evaluation.ReconstructionRow])] = []
            for (name, file) in [(refLabel, base), (candLabel, candidate)] {
                var rows: [Evaluation.ReconstructionRow] = []
                for s in reconList {
                    running = "reconstructing \(reconCount) images with \(name), S = \(s)"
                    let row = try Evaluation.reconstruction(model: file, images: images, count: reconCount, steps: s, batch: batch, threads: threads,
                                                            stop: stop)
                    printError("reconstructed \(reconCount) images with \(name), S = \(s): MSE \(formatted(row.meanSquaredError))")
                    rows.append(row)
                }
                columns.append((name, rows))
            }
            text += "\nReconstruction: \(reconCount) images (the \(refLabel) model's samples: \(reconSourceSteps) steps, η = 1, seed \(reconSeed), rounded to 8-bit pixels) inverted with S steps and generated back with S steps, η = 0; MSE per pixel in [0, 1].\n\n"
            text += Evaluation.reconstructionTable(columns) + "\n"
        }
        return text
    }
}
