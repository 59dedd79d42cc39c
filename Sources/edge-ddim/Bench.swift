import ArgumentParser
import _EdgeCore
import EdgeDDIM
import EdgeModelFile

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Time one UNet evaluation.")

    @Option(help: "Model file.")
    var model: String = defaultModelPath

    @Option(help: "Images per evaluation (the UNet's batch).")
    var count: Int = 1

    @Option(help: "Threads. Default: OMP_NUM_THREADS, else every online core.")
    var threads: Int?

    @Option(help: "Timed evaluations (after one warm-up).")
    var iterations: Int = 10

    @Flag(help: "Print one JSON object on stdout.")
    var json = false

    @Option(help: ArgumentHelp("int8 models: quantise activations to int8 too (auto: where the CPU has a dot-product instruction).",
                               valueName: "auto|on|off"))
    var int8Activations: String = "auto"

    @Option(help: ArgumentHelp("3×3 convolutions with fp32 activations: Winograd where it is faster (on), or the direct kernel (off).",
                               valueName: "on|off"))
    var winograd: String = "on"

    @OptionGroup var memory: MaxMemoryOption

    func run() throws {
        guard (1 ... 4096).contains(count) else { throw EdgeError.usage("--count must be in 1...4096, got \(count)") }
        guard (1 ... 100_000).contains(iterations) else { throw EdgeError.usage("--iterations must be in 1...100000, got \(iterations)") }
        if let t = threads, !(1 ... 1024).contains(t) { throw EdgeError.usage("--threads must be in 1...1024, got \(t)") }
        let int8 = try parseInt8Activations(int8Activations)
        guard winograd == "on" || winograd == "off" else { throw EdgeError.usage("--winograd must be on or off, got \(winograd)") }
        let limit = try memory.limit()
        let file = try openModel(model, limit: limit)
        try limit.check(model: file, batch: count, threads: Threads(threads), winograd: winograd == "on")
        let result = try UNetBenchmark.run(model: file, batch: count, threads: Threads(threads), iterations: iterations, int8Activations: int8,
                                            winograd: winograd == "on")
        if json {
            print(result.json)
        } else {
            print("unet \(model): batch \(count), \(result.threads) threads, \(iterations) iterations, \(result.activations) activations")
            print("  median \(fixed(result.medianMilliseconds, decimals: 2)) ms, min \(fixed(result.minMilliseconds, decimals: 2)) ms, \(fixed(result.gflops, decimals: 1)) GFLOP/s")
            print("  per layer kind (sum of per-layer medians; --json lists every layer):")
            for k in result.millisecondsByKind {
                print("    \(k.kind): \(fixed(k.milliseconds, decimals: 2)) ms in \(k.layers) layers")
            }
        }
    }
}

/// `--int8-activations auto|on|off` → nil (the CPU's default), true, false.
func parseInt8Activations(_ value: String) throws -> Bool? {
    switch value {
    case "auto": return nil
    case "on": return true
    case "off": return false
    default: throw EdgeError.usage("--int8-activations must be auto, on or off, got \(value)")
    }
}
