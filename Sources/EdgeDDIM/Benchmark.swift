import _EdgeCore
import EdgeModelFile
import EdgeUNet
import EdgeSampler

/// Times UNet evaluations the way `edge-ddim bench` reports them.
public struct UNetBenchmark: Sendable {
    public var medianMilliseconds: Double
    public var minMilliseconds: Double
    /// 2 · multiply-accumulates per evaluation / median time.
    public var gflops: Double
    public var threads: Int
    public var batch: Int
    public var iterations: Int

    public static func run(model: ModelFile, batch: Int, threads: Threads, iterations: Int) throws -> UNetBenchmark {
        let unet = try UNet(model: model, batch: batch, threads: threads)
        var generator = TorchGenerator(seed: 0)
        generator.fillNormal(unet.sample)
        unet.timesteps.update(repeating: 500)
        unet.run()  // warm-up: first touch of the weights' pages
        var times: [Double] = []
        for _ in 0 ..< iterations {
            let t0 = monotonicSeconds()
            unet.run()
            times.append(monotonicSeconds() - t0)
        }
        times.sort()
        let median = times.count % 2 == 1 ? times[times.count / 2] : (times[times.count / 2 - 1] + times[times.count / 2]) / 2
        return UNetBenchmark(medianMilliseconds: median * 1e3, minMilliseconds: times[0] * 1e3,
                             gflops: 2 * Double(unet.multiplyAccumulates) / median / 1e9,
                             threads: threads.count, batch: batch, iterations: iterations)
    }

    public var json: String {
        "{\"unet_ms_median\": \(fixed(medianMilliseconds, decimals: 3)), \"unet_ms_min\": \(fixed(minMilliseconds, decimals: 3)), "
            + "\"gflops\": \(fixed(gflops, decimals: 2)), \"threads\": \(threads), \"batch\": \(batch), \"iterations\": \(iterations)}"
    }
}
