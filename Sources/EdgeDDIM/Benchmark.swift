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
    /// The convolutions' activation type: "int8 (avx512vnni)" style, or "fp32".
    public var activations: String
    /// Per-layer medians over `iterations` separately timed runs, in program order.
    public var layers: [LayerTime]

    public struct LayerTime: Sendable {
        public var name: String
        public var kind: String
        /// What computed it: "q8" (int8 activations), "f32", "f32, int8 weights per call", "winograd F(m×m,3×3)" …
        public var kernel: String
        public var milliseconds: Double
        public var gflops: Double
    }

    /// - int8Activations, winograd: as `UNet.init`'s (nil: the default for this CPU).
    public static func run(model: ModelFile, batch: Int, threads: Threads, iterations: Int, int8Activations: Bool? = nil,
                           winograd: Bool = true) throws -> UNetBenchmark {
        let unet = try UNet(model: model, batch: batch, threads: threads, int8Activations: int8Activations, winograd: winograd)
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
        let median = Self.median(times)
        // Per-layer times come from separate runs, so reading the clock between layers cannot move the totals.
        let layers = unet.layers
        var perLayer = [[Double]](repeating: [], count: layers.count)
        let seconds = UnsafeMutableBufferPointer<Double>.allocate(capacity: layers.count)
        defer { seconds.deallocate() }
        for _ in 0 ..< iterations {
            seconds.update(repeating: 0)
            unet.runTimed(addingSecondsTo: seconds)
            for i in layers.indices { perLayer[i].append(seconds[i]) }
        }
        let layerTimes = layers.indices.map { i -> LayerTime in
            let m = Self.median(perLayer[i])
            return LayerTime(name: layers[i].name, kind: layers[i].kind, kernel: layers[i].kernel, milliseconds: m * 1e3,
                             gflops: m > 0 ? 2 * Double(layers[i].multiplyAccumulates) / m / 1e9 : 0)
        }
        return UNetBenchmark(medianMilliseconds: median * 1e3, minMilliseconds: times.min()! * 1e3,
                             gflops: 2 * Double(unet.multiplyAccumulates) / median / 1e9,
                             threads: threads.count, batch: batch, iterations: iterations,
                             activations: unet.activationDescription,
                             layers: layerTimes)
    }

    static func median(_ values: [Double]) -> Double {
        let v = values.sorted()
        return v.count % 2 == 1 ? v[v.count / 2] : (v[v.count / 2 - 1] + v[v.count / 2]) / 2
    }

    /// Per-layer medians summed by kind, largest first: where the time goes.
    public var millisecondsByKind: [(kind: String, milliseconds: Double, layers: Int)] {
        var totals: [String: (Double, Int)] = [:]
        for l in layers { totals[l.kind, default: (0, 0)].0 += l.milliseconds; totals[l.kind, default: (0, 0)].1 += 1 }
        return totals.map { ($0.key, $0.value.0, $0.value.1) }.sorted { $0.milliseconds > $1.milliseconds }
    }

    public var json: String {
        "{\"unet_ms_median\": \(fixed(medianMilliseconds, decimals: 3)), \"unet_ms_min\": \(fixed(minMilliseconds, decimals: 3)), "
            + "\"gflops\": \(fixed(gflops, decimals: 2)), \"threads\": \(threads), \"batch\": \(batch), \"iterations\": \(iterations), \"activations\": \"\(activations)\", "
            + "\"layers\": [" + layers.map { l in
                "{\"name\": \"\(l.name)\", \"kind\": \"\(l.kind)\", \"kernel\": \"\(l.kernel)\", \"ms\": \(fixed(l.milliseconds, decimals: 4)), \"gflops\": \(fixed(l.gflops, decimals: 1))}"
            }.joined(separator: ", ") + "]}"
    }
}
