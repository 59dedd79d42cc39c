import XCTest
import _EdgeCore
import _EdgeQuant
import _EdgeKernels
import EdgeGraph

/// The measurements in docs/KERNELS.md. Skipped unless asked for, because they take tens of seconds:
///
///     EDGE_DDIM_KERNEL_BENCH=1 swift test -c release --skip-build --filter KernelBenchmarkTests
///
/// EDGE_DDIM_KERNEL_BENCH=full also times conv2dRef and the fp16/int8 weights.
final class KernelBenchmarkTests: XCTestCase {
    func testConv2DThroughput() throws {
        let mode = ProcessInfo.processInfo.environment["EDGE_DDIM_KERNEL_BENCH"] ?? ""
        guard !mode.isEmpty else { throw XCTSkip("set EDGE_DDIM_KERNEL_BENCH=1 to measure kernel throughput") }
        let full = mode == "full"
        // ddpm-fashion-32's layer shapes.
        let layers: [(String, (Int) -> Conv2DShape, Bool)] = [
            ("3x3 64->64 32x32", { .same(batch: $0, inChannels: 64, outChannels: 64, height: 32, width: 32, kernel: 3) }, false),
            ("3x3 128->128 16x16", { .same(batch: $0, inChannels: 128, outChannels: 128, height: 16, width: 16, kernel: 3) }, false),
            ("3x3 256->128 32x32", { .same(batch: $0, inChannels: 256, outChannels: 128, height: 32, width: 32, kernel: 3) }, false),
            ("3x3 128->128 8x8", { .same(batch: $0, inChannels: 128, outChannels: 128, height: 8, width: 8, kernel: 3) }, false),
            ("1x1 128->128 16x16", { .same(batch: $0, inChannels: 128, outChannels: 128, height: 16, width: 16, kernel: 1) }, false),
            ("3x3 s2 (0,0,1,1) 64->64 32x32", { Conv2DShape(batch: $0, inChannels: 64, outChannels: 64, height: 32, width: 32, kernel: 3, stride: 2,
                                                            padTop: 0, padLeft: 0, padBottom: 1, padRight: 1) }, false),
            ("up2x+3x3 128->128 16->32", { .same(batch: $0, inChannels: 128, outChannels: 128, height: 32, width: 32, kernel: 3) }, true),
        ]
        let q8 = Q8TileKernel.preferred
        // The other int8 tiles this CPU runs (the portable Swift one, and NEONMLAL on an ARM with sdot) beside the
        // preferred one show what each microkernel buys.
        let others = Q8TileKernel.allCases.filter { $0.isSupported && $0 != q8 }
        var report = "| layer | batch | ref 1T | fast 1T | fast 2T | fast 2T, prepacked weights | int8×int8 (\(q8)) 1T | int8×int8 2T |"
            + others.map { " int8×int8 (\($0)) 1T |" }.joined() + (full ? " fp16 2T | int8 weights, fp32 activations 2T |" : "") + "\n"
        for (name, make, upsampled) in layers {
            for batch in [1, 4] {
                let shape = make(batch)
                func gflops(_ kernel: KernelBenchmark.ConvKernel, _ threads: Int, _ type: WeightType = .f32) -> String {
                    var isReference = false
                    if case .reference = kernel { isReference = true }  // ~100× slower: fewer runs
                    let r = KernelBenchmark.conv2D(shape, upsampledInput: upsampled, weightType: type, kernel: kernel, threads: Threads(threads),
                                                   repetitions: isReference ? 2 : 10)
                    return String(format: "%.1f", r.gflops)
                }
                let ref = (full || batch == 1) ? gflops(.reference, 1) : "–"
                var line = "| \(name) | \(batch) | \(ref) | \(gflops(.fast(.native), 1)) | \(gflops(.fast(.native), 2)) | \(gflops(.fastPrepacked, 2)) |"
                line += conv2dQ8Supports(shape) ? " \(gflops(.int8(q8), 1)) | \(gflops(.int8(q8), 2)) |" + others.map { " \(gflops(.int8($0), 1)) |" }.joined()
                    : " – | – |" + String(repeating: " – |", count: others.count)
                if full { line += " \(gflops(.fast(.native), 2, .f16)) | \(gflops(.fast(.native), 2, .q8PerChannel)) |" }
                report += line + "\n"
            }
        }
        print(report)
    }

    func testElementwiseThroughput() throws {
        guard !(ProcessInfo.processInfo.environment["EDGE_DDIM_KERNEL_BENCH"] ?? "").isEmpty else {
            throw XCTSkip("set EDGE_DDIM_KERNEL_BENCH=1 to measure kernel throughput")
        }
        var report = "| GroupNorm(32 groups)+SiLU | ref 1T GB/s | fast 1T GB/s | fast 2T GB/s |\n"
        for (n, c, p) in [(1, 64, 1024), (1, 128, 256), (4, 128, 1024), (4, 256, 64)] {
            func gbs(_ reference: Bool, _ t: Int) -> String {
                String(format: "%.1f", KernelBenchmark.groupNorm(batch: n, channels: c, pixels: p, groups: 32, silu: true, reference: reference,
                                                                 threads: Threads(t)).gbPerSecond)
            }
            report += "| [\(n), \(c), \(p)] | \(gbs(true, 1)) | \(gbs(false, 1)) | \(gbs(false, 2)) |\n"
        }
        report += "\n| softmax rows | plain 1T Melem/s | fast 1T Melem/s | fast 2T Melem/s |\n"
        for (r, c) in [(256, 256), (1024, 1024), (64, 64)] {
            func me(_ reference: Bool, _ t: Int) -> String {
                String(format: "%.0f", KernelBenchmark.softmaxRows(rows: r, columns: c, reference: reference, threads: Threads(t)).melementsPerSecond)
            }
            report += "| \(r) × \(c) | \(me(true, 1)) | \(me(false, 1)) | \(me(false, 2)) |\n"
        }
        print(report)
    }
}

/// The measurement behind `WinogradTile.preferred(for:weightsTransformedPerCall:)`: every distinct 3×3 stride-1
/// convolution of ddpm-fashion-32, google/ddpm-cifar10-32 and google/ddpm-celebahq-256 (batch 1, 2 threads),
/// timed with the direct kernel and each Winograd tile, with the weights transformed (or packed) at load and,
/// for int8 weights with fp32 activations, per call. Skipped unless asked for (about two minutes):
///
///     EDGE_DDIM_KERNEL_BENCH=1 swift test -c release --skip-build --filter KernelWinogradBenchmarkTests
final class KernelWinogradBenchmarkTests: XCTestCase {
    static func architectures() -> [(String, UNetConfig)] {
        var fashion = UNetConfig()
        fashion.inChannels = 1; fashion.outChannels = 1; fashion.blockOutChannels = [64, 128, 128, 128]
        fashion.downBlockTypes = [.down, .attnDown, .down, .down]; fashion.upBlockTypes = [.up, .up, .attnUp, .up]
        var cifar = UNetConfig()
        cifar.blockOutChannels = [128, 256, 256, 256]; cifar.downsamplePadding = 0; cifar.attentionHeadDim = nil
        cifar.downBlockTypes = [.down, .attnDown, .down, .down]; cifar.upBlockTypes = [.up, .up, .attnUp, .up]
        var celeba = UNetConfig()
        celeba.sampleSize = 256; celeba.blockOutChannels = [128, 128, 256, 256, 512, 512]; celeba.downsamplePadding = 0
        celeba.attentionHeadDim = nil
        celeba.downBlockTypes = [.down, .down, .down, .down, .attnDown, .down]; celeba.upBlockTypes = [.up, .attnUp, .up, .up, .up, .up]
        return [("ddpm-fashion-32", fashion), ("ddpm-cifar10-32", cifar), ("ddpm-celebahq-256", celeba)]
    }

    func testWinogradTileChoice() throws {
        guard !(ProcessInfo.processInfo.environment["EDGE_DDIM_KERNEL_BENCH"] ?? "").isEmpty else {
            throw XCTSkip("set EDGE_DDIM_KERNEL_BENCH=1 to measure kernel throughput")
        }
        let threads = Threads(2)
        var seen: [String] = []
        var report = "| model | 3×3 conv (in→out, output side) | direct, packed at load | F(2,3) | F(4,3) | F(6,3) | chosen "
            + "| int8 weights per call: direct | F(2,3) | F(4,3) | F(6,3) | chosen |\n" + String(repeating: "| --- ", count: 12) + "|\n"
        for (name, config) in Self.architectures() {
            let graph = UNet2DModelGraph.build(config, batch: 1).foldingUpsampleIntoConvolutions()
            for node in graph.nodes {
                guard case let .conv2d(c) = node.op, WinogradTile.supports(c.shape) else { continue }
                let s = c.shape
                let key = "\(s.inChannels)→\(s.outChannels), \(s.outHeight)\(c.upsampledInput ? " (upsampled input)" : "")"
                if seen.contains(name + key) { continue }
                seen.append(name + key)
                let repetitions = s.multiplyAccumulates > 2_000_000_000 ? 3 : 8
                func ms(_ kernel: KernelBenchmark.ConvKernel, _ type: WeightType) -> Double {
                    KernelBenchmark.conv2D(s, upsampledInput: c.upsampledInput, weightType: type, kernel: kernel, threads: threads,
                                           repetitions: repetitions).seconds * 1000
                }
                func row(perCall: Bool) -> String {
                    let type: WeightType = perCall ? .q8PerChannel : .f32
                    let direct = ms(perCall ? .fast(.native) : .fastPrepacked, type)
                    let tiles = WinogradTile.allCases.map { ms(.winograd($0, pretransformed: !perCall), type) }
                    let chosen = WinogradTile.preferred(for: s, weightsTransformedPerCall: perCall)
                    return String(format: " %.3f | %.3f | %.3f | %.3f | %@ |", direct, tiles[0], tiles[1], tiles[2], chosen?.description ?? "direct")
                }
                report += "| \(name) | \(key) |" + row(perCall: false) + row(perCall: true) + "\n"
            }
        }
        print(report)
    }
}
