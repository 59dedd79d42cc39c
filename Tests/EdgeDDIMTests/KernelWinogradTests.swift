import XCTest
import _EdgeCore
import _EdgeQuant
import _EdgeKernels

/// How far a Winograd convolution may be from the direct one (and the fast kernel from its plain twin), in units of
/// ε·|Y|, where |Y| is the tile algorithm run on absolute values — |Aᵀ| (Σ_i |G||g_i||Gᵀ| ⊙ |Bᵀ||d_i||B|) |A|
/// (`winogradMagnitude`), plus the epilogue's terms — the a-priori bound of the rounding errors of the transforms
/// and of the products over I. (A bound on the direct convolution's Σ|w||x| alone does not hold: an output at a
/// tile's far corner sees the transforms' largest constants and the whole patch's inputs even where its own taps
/// are padding, and was measured 76× ε·√K·Σ|w||x| with F(6,3).) Measured worst over these tests' shapes (random
/// weights and inputs in [−1, 1), every weight type): 0.87 (F(2,3)), 0.40 (F(4,3)), 0.14 (F(6,3)); the factors
/// allow 2.3–3.6× that. `testErrorBoundIsTight` checks the bound stays below one average term of the sum.
func winogradErrorFactor(_ tile: WinogradTile) -> Float {
    switch tile {
    case .f2x3: 2
    case .f4x3: 1
    case .f6x3: 0.5
    }
}

/// |Y| of `winogradErrorFactor(_:)` for every output of `s` (input [N, I, H, W] and weights [O, I·9] in absolute value;
/// zero padding; the bias and the epilogue's terms added in absolute value by the caller).
func winogradMagnitude(_ tile: WinogradTile, _ s: Conv2DShape, input: [Float], weights: [Float]) -> [Float] {
    let (m, a) = (tile.outputSide, tile.inputSide)
    let bt = tile.inputTransform.map(abs), g = tile.filterTransform.map(abs), at = tile.outputTransform.map(abs)
    let (tilesY, tilesX) = tile.tiles(s)
    let tiles = tilesY * tilesX
    let (ho, wo) = (s.outHeight, s.outWidth)
    /// Σ_{k < n} term(k), in order (written out: Swift 6.0.3 gives up type-checking the equivalent `reduce`).
    func sumOf(_ n: Int, _ term: (Int) -> Float) -> Float {
        var total: Float = 0
        for k in 0 ..< n { total += term(k) }
        return total
    }
    // |U|[o][i][α²] and |V|[n][tile][i][α²].
    var u = [Float](repeating: 0, count: s.outChannels * s.inChannels * a * a)
    var v = [Float](repeating: 0, count: s.batch * tiles * s.inChannels * a * a)
    var t = [Float](repeating: 0, count: a * a), d = [Float](repeating: 0, count: a * a)
    for o in 0 ..< s.outChannels {
        for i in 0 ..< s.inChannels {
            let w = (o * s.inChannels + i) * 9
            for r in 0 ..< a { for c in 0 ..< 3 { t[r * 3 + c] = sumOf(3) { (k: Int) -> Float in g[r * 3 + k] * weights[w + k * 3 + c] } } }
            for r in 0 ..< a { for c in 0 ..< a { u[(o * s.inChannels + i) * a * a + r * a + c] = sumOf(3) { (k: Int) -> Float in t[r * 3 + k] * g[c * 3 + k] } } }
        }
    }
    for n in 0 ..< s.batch {
        for ty in 0 ..< tilesY {
            for tx in 0 ..< tilesX {
                for i in 0 ..< s.inChannels {
                    for r in 0 ..< a {
                        for c in 0 ..< a {
                            let iy = ty * m - s.padTop + r, ix = tx * m - s.padLeft + c
                            d[r * a + c] = iy >= 0 && iy < s.height && ix >= 0 && ix < s.width
                                ? input[((n * s.inChannels + i) * s.height + iy) * s.width + ix] : 0
                        }
                    }
                    for r in 0 ..< a { for c in 0 ..< a { t[r * a + c] = sumOf(a) { (k: Int) -> Float in bt[r * a + k] * d[k * a + c] } } }
                    let base = ((n * tiles + ty * tilesX + tx) * s.inChannels + i) * a * a
                    for r in 0 ..< a { for c in 0 ..< a { v[base + r * a + c] = sumOf(a) { (k: Int) -> Float in t[r * a + k] * bt[c * a + k] } } }
                }
            }
        }
    }
    var out = [Float](repeating: 0, count: s.outputCount)
    var sum = [Float](repeating: 0, count: a * a)
    for n in 0 ..< s.batch {
        for tileIndex in 0 ..< tiles {
            let (ty, tx) = (tileIndex / tilesX, tileIndex % tilesX)
            for o in 0 ..< s.outChannels {
                for k in 0 ..< a * a { sum[k] = 0 }
                for i in 0 ..< s.inChannels {
                    let ub = (o * s.inChannels + i) * a * a, vb = ((n * tiles + tileIndex) * s.inChannels + i) * a * a
                    for k in 0 ..< a * a { sum[k] += u[ub + k] * v[vb + k] }
                }
                for r in 0 ..< m { for c in 0 ..< a { t[r * a + c] = sumOf(a) { (k: Int) -> Float in at[r * a + k] * sum[k * a + c] } } }
                for r in 0 ..< m where ty * m + r < ho {
                    for c in 0 ..< m where tx * m + c < wo {
                        out[((n * s.outChannels + o) * ho + ty * m + r) * wo + tx * m + c] = sumOf(a) { (k: Int) -> Float in t[r * a + k] * at[c * a + k] }
                    }
                }
            }
        }
    }
    return out
}

final class KernelWinogradTests: XCTestCase {
    /// Checks conv2dWinogradF32 with `tile` against conv2dWinogradRef (its twin) and against conv2dRef (the
    /// direct convolution, after upsampleNearest2xRef when `upsampled`), for every weight type; every fast run —
    /// both GEMM tiles, each thread count, weights transformed at load or per call — must agree bitwise. Returns the
    /// worst error seen in units of ε·|Y| and the largest tolerance in units of one average term of the direct sum.
    @discardableResult
    func check(_ tile: WinogradTile, _ s: Conv2DShape, upsampled: Bool = false, seed: UInt64, residual useResidual: Bool = false,
               scale: Float = 1, channelBias useChannelBias: Bool = false, residualAliasesOutput: Bool = false,
               threadCounts: [Int] = kernelThreadCounts, types: [WeightType] = WeightType.allCases,
               file: StaticString = #filePath, line: UInt = #line) -> (error: Float, toleranceInTerms: Float) {
        var ratio: Float = 0, toleranceInTerms: Float = 0
        for type in types {
            var random = TestRandom(seed: seed &+ UInt64(type.rawValue) &* 1000)
            let storedInputCount = upsampled ? s.inputCount / 4 : s.inputCount
            let input = random.floats(storedInputCount)
            let weights = KernelTestWeights(type, rows: s.outChannels, columns: s.fanIn, random: &random)
            let bias = random.floats(s.outChannels)
            let channelBias = useChannelBias ? random.floats(s.batch * s.outChannels) : []
            let residual = useResidual ? random.floats(s.outputCount) : []
            let plane = s.outHeight * s.outWidth
            var full = input
            if upsampled {
                full = [Float](repeating: 0, count: s.inputCount)
                upsampleNearest2xRef(input, planes: s.batch * s.inChannels, height: s.height / 2, width: s.width / 2, into: &full)
            }

            // The direct oracle ((conv2dRef + channelBias) + residual) · scale, and the same with magnitudes.
            func direct(input: [Float], weights: [Float], bias: [Float], channelBias: [Float], residual: [Float]) -> [Float] {
                var out = [Float](repeating: .nan, count: s.outputCount), row = [Float](repeating: 0, count: s.fanIn)
                weights.withUnsafeBytes { w in
                    conv2dRef(s, input: input, weight: WeightMatrix(type: .f32, rows: s.outChannels, columns: s.fanIn, values: w.baseAddress!, scales: nil),
                              bias: bias, output: &out, rowScratch: &row)
                }
                for i in 0 ..< out.count {
                    var v = out[i]
                    if !channelBias.isEmpty { v += channelBias[i / plane] }
                    if !residual.isEmpty { v += residual[i] }
                    out[i] = v * scale
                }
                return out
            }
            let expected = direct(input: full, weights: weights.dequantized, bias: bias, channelBias: channelBias, residual: residual)
            // |Y| plus the epilogue's terms, in absolute value.
            let tileMagnitude = winogradMagnitude(tile, s, input: full.map(abs), weights: weights.dequantized.map(abs))
            var magnitude = [Float](repeating: 0, count: s.outputCount)
            for k in 0 ..< s.outputCount {
                let o = (k / plane) % s.outChannels
                magnitude[k] = (tileMagnitude[k] + abs(bias[o]) + (useChannelBias ? abs(channelBias[k / plane]) : 0)
                                + (useResidual ? abs(residual[k]) : 0)) * abs(scale)
            }
            var twin = [Float](repeating: .nan, count: s.outputCount)
            residual.withUnsafeBufferPointer { res in
                channelBias.withUnsafeBufferPointer { cb in
                    conv2dWinogradRef(tile, s, input: full, weight: weights.matrix, bias: bias, output: &twin,
                                      residual: useResidual ? res.baseAddress! : nil, scale: scale,
                                      channelBias: useChannelBias ? cb.baseAddress! : nil)
                }
            }
            let unit = kernelEpsilon * winogradErrorFactor(tile)
            // The tolerance against one average term of the direct sum, Σ|w||x| / K (what a lost term would cost).
            let directMagnitude = direct(input: full.map(abs), weights: weights.dequantized.map(abs), bias: [Float](repeating: 0, count: s.outChannels),
                                         channelBias: [], residual: []).map(abs)
            for k in 0 ..< s.outputCount where directMagnitude[k] > 0 {
                toleranceInTerms = max(toleranceInTerms, unit * magnitude[k] / (directMagnitude[k] / Float(s.fanIn)))
            }
            let what0 = "\(tile) \(s) upsampled=\(upsampled) \(type)"
            worst(twin, expected, magnitude, unit, factor: winogradErrorFactor(tile), "reference twin vs direct: \(what0)", ratio: &ratio, file: file, line: line)

            // The weights transformed once, as a UNet does at load.
            let transformed = UnsafeMutablePointer<Float>.allocate(capacity: winogradWeightsF32Count(tile, outChannels: s.outChannels, inChannels: s.inChannels))
            defer { transformed.deallocate() }
            let transformScratch = KernelTestScratch(bytes: winogradWeightTransformScratchBytes(inChannels: s.inChannels, threads: Threads(2)))
            packWinogradWeightsF32(tile, weights.matrix, inChannels: s.inChannels, into: transformed, scratch: transformScratch.pointer, threads: Threads(2))
            XCTAssertTrue(transformScratch.canaryIntact, "weight-transform scratch overrun: \(what0)", file: file, line: line)

            var first: [Float]? = nil
            let runs = F32GemmTile.allCases.flatMap { g in threadCounts.map { (g, $0, true) } } + [(F32GemmTile.native, 2, false)]
            for (gemmTile, t, pretransformed) in runs {
                let threads = Threads(t)
                let scratch = KernelTestScratch(bytes: conv2dWinogradF32ScratchBytes(tile, s, threads: threads, pretransformed: pretransformed, gemmTile: gemmTile))
                let guardCount = 19
                let out = UnsafeMutablePointer<Float>.allocate(capacity: s.outputCount + guardCount)
                defer { out.deallocate() }
                out.initialize(repeating: -12345, count: s.outputCount + guardCount)
                if residualAliasesOutput { out.update(from: residual, count: residual.count) }
                input.withUnsafeBufferPointer { inp in
                    residual.withUnsafeBufferPointer { res in
                        channelBias.withUnsafeBufferPointer { cb in
                            conv2dWinogradF32(tile, s, upsampledInput: upsampled, input: inp.baseAddress!, weight: weights.matrix,
                                              transformedWeight: pretransformed ? UnsafePointer(transformed) : nil, bias: bias, output: out,
                                              residual: useResidual ? (residualAliasesOutput ? UnsafePointer(out) : res.baseAddress!) : nil,
                                              scale: scale, channelBias: useChannelBias ? cb.baseAddress! : nil,
                                              scratch: scratch.pointer, threads: threads, gemmTile: gemmTile)
                        }
                    }
                }
                let got = Array(UnsafeBufferPointer(start: out, count: s.outputCount))
                let what = "\(what0) gemm=\(gemmTile) threads=\(t)\(pretransformed ? "" : " per-call weights")"
                XCTAssertTrue(scratch.canaryIntact, "scratch overrun: \(what)", file: file, line: line)
                XCTAssertTrue((0 ..< guardCount).allSatisfy { out[s.outputCount + $0] == -12345 }, "output overrun: \(what)", file: file, line: line)
                if let first {
                    XCTAssertTrue(got.elementsEqual(first) { $0.bitPattern == $1.bitPattern }, "not bitwise equal to the first run: \(what)", file: file, line: line)
                } else {
                    first = got
                    worst(got, twin, magnitude, unit, factor: winogradErrorFactor(tile), "fast vs reference twin: \(what)", ratio: &ratio, file: file, line: line)
                    worst(got, expected, magnitude, unit, factor: winogradErrorFactor(tile), "fast vs direct: \(what)", ratio: &ratio, file: file, line: line)
                }
            }
        }
        return (ratio, toleranceInTerms)
    }

    /// Fails with the worst element if any |got − want| exceeds unit · magnitude; raises `ratio` to the largest
    /// |got − want| / (unit / factor · magnitude) seen.
    private func worst(_ got: [Float], _ want: [Float], _ magnitude: [Float], _ unit: Float, factor: Float, _ what: String, ratio: inout Float,
                       file: StaticString, line: UInt) {
        var worst: (excess: Float, index: Int) = (0, -1)
        for i in 0 ..< got.count {
            let tol = unit * magnitude[i] + 1e-30
            let d = abs(got[i] - want[i])
            ratio = max(ratio, d / tol * factor)
            if !(d <= tol) && (worst.index < 0 || !(d / tol <= worst.excess)) { worst = (d / tol, i) }
        }
        if worst.index >= 0 {
            let i = worst.index
            XCTFail("\(what): element \(i) is \(got[i]), expected \(want[i]) (tolerance \(unit * magnitude[i]))", file: file, line: line)
        }
    }

    func testSamePaddingShapes() {
        // (batch, in, out, side): partial tiles at the right and bottom edges, images smaller than one tile,
        // channel counts that are not multiples of 8, blocks of tiles that straddle two images.
        let shapes: [(n: Int, i: Int, o: Int, h: Int, w: Int)] = [
            (1, 1, 1, 1, 1), (1, 3, 5, 7, 9), (2, 4, 9, 6, 6), (1, 8, 8, 16, 16), (3, 5, 17, 5, 13),
            (1, 16, 7, 24, 11), (2, 2, 3, 2, 17), (1, 9, 12, 13, 13),
        ]
        for tile in WinogradTile.allCases {
            for (index, d) in shapes.enumerated() {
                check(tile, .same(batch: d.n, inChannels: d.i, outChannels: d.o, height: d.h, width: d.w, kernel: 3),
                      seed: 700 + UInt64(index) + 100 * UInt64(tile.rawValue), threadCounts: d.n > 1 ? kernelUnevenThreadCounts : kernelThreadCounts)
            }
        }
    }

    func testDeepAndWideChannels() {
        for tile in WinogradTile.allCases {
            // I = 40: K = 40 (one block of the products); I = 300: two K blocks; O = 130: 17 row panels, the last partial.
            check(tile, .same(batch: 1, inChannels: 40, outChannels: 24, height: 12, width: 12, kernel: 3), seed: 1700 + UInt64(tile.rawValue))
            check(tile, .same(batch: 1, inChannels: 300, outChannels: 9, height: 7, width: 8, kernel: 3), seed: 1710 + UInt64(tile.rawValue),
                  types: [.f32, .q8PerChannel])
            check(tile, .same(batch: 2, inChannels: 6, outChannels: 130, height: 9, width: 9, kernel: 3), seed: 1720 + UInt64(tile.rawValue),
                  types: [.f32])
        }
    }

    func testOtherPaddings() {
        for tile in WinogradTile.allCases {
            let r = UInt64(tile.rawValue)
            // "valid" (no padding), asymmetric, and padding wider than the image.
            check(tile, Conv2DShape(batch: 1, inChannels: 3, outChannels: 5, height: 10, width: 9, kernel: 3, stride: 1,
                                    padTop: 0, padLeft: 0, padBottom: 0, padRight: 0), seed: 1800 + r)
            check(tile, Conv2DShape(batch: 2, inChannels: 3, outChannels: 9, height: 5, width: 8, kernel: 3, stride: 1,
                                    padTop: 2, padLeft: 0, padBottom: 1, padRight: 3), seed: 1810 + r)
            check(tile, Conv2DShape(batch: 1, inChannels: 2, outChannels: 4, height: 2, width: 3, kernel: 3, stride: 1,
                                    padTop: 3, padLeft: 3, padBottom: 3, padRight: 3), seed: 1820 + r)
        }
    }

    func testUpsampledInput() {
        // Shapes give the upsampled size; the stored input is half of it.
        for tile in WinogradTile.allCases {
            let r = UInt64(tile.rawValue)
            check(tile, .same(batch: 1, inChannels: 3, outChannels: 9, height: 8, width: 8, kernel: 3), upsampled: true, seed: 1900 + r)
            check(tile, .same(batch: 2, inChannels: 5, outChannels: 16, height: 14, width: 10, kernel: 3), upsampled: true, seed: 1910 + r)
            check(tile, .same(batch: 1, inChannels: 4, outChannels: 7, height: 32, width: 18, kernel: 3), upsampled: true, seed: 1920 + r,
                  types: [.f32])
        }
    }

    func testEpilogue() {
        let small = Conv2DShape.same(batch: 2, inChannels: 5, outChannels: 9, height: 6, width: 7, kernel: 3)
        for tile in WinogradTile.allCases {
            let r = UInt64(tile.rawValue)
            check(tile, small, seed: 2000 + r, residual: true, types: [.f32])
            check(tile, small, seed: 2010 + r, scale: 1 / 1.41421, types: [.f32])
            check(tile, small, seed: 2020 + r, channelBias: true, types: [.f32])
            check(tile, .same(batch: 2, inChannels: 40, outChannels: 17, height: 13, width: 13, kernel: 3), seed: 2030 + r,
                  residual: true, scale: 0.5, channelBias: true, types: [.f32])
            // In place (residual = output) is allowed for any depth: each element is read just before it is written.
            check(tile, .same(batch: 1, inChannels: 300, outChannels: 8, height: 9, width: 9, kernel: 3), seed: 2040 + r,
                  residual: true, scale: 0.5, residualAliasesOutput: true, types: [.f32])
            check(tile, .same(batch: 2, inChannels: 16, outChannels: 8, height: 12, width: 12, kernel: 3), upsampled: true, seed: 2050 + r,
                  residual: true, channelBias: true, types: [.f32])
        }
    }

    /// A layer whose tiles do not fit one chunk (`WinogradPlan.chunkBudgetBytes`): several chunks, the last one partial.
    func testSeveralChunks() {
        // F(6,3), 16 → 16 channels: 512 tiles per chunk, 625 tiles. F(2,3), 8 → 8: 4096 per chunk, 2 × 33 × 65 tiles.
        check(.f6x3, .same(batch: 1, inChannels: 16, outChannels: 16, height: 150, width: 150, kernel: 3), seed: 2100, threadCounts: [2], types: [.f32])
        check(.f2x3, .same(batch: 2, inChannels: 8, outChannels: 8, height: 66, width: 130, kernel: 3), seed: 2110, threadCounts: [2], types: [.f32])
    }

    /// The bound still catches a lost term: on ordinary layers (K = 9·I of 576 and 2304) every element's tolerance
    /// is below one average term of its direct sum (Σ|w||x| / K). Prints the worst errors, in units of ε·|Y|.
    func testErrorBoundIsTight() {
        var report: [String] = []
        for tile in WinogradTile.allCases {
            for (i, side) in [(64, 24), (256, 12)] {
                let r = check(tile, .same(batch: 1, inChannels: i, outChannels: 8, height: side, width: side, kernel: 3), seed: 2200 + UInt64(i),
                              threadCounts: [2], types: [.f32])
                report.append("\(tile) I=\(i): error \(r.error), tolerance \(r.toleranceInTerms) terms")
                XCTAssertLessThan(r.toleranceInTerms, 1, "\(tile) I=\(i): the tolerance would not see a missing term")
            }
        }
        print("Winograd errors (units of ε·|Y|) and tolerances (units of one term): " + report.joined(separator: "; "))
    }

    func testTileChoice() {
        func choice(_ i: Int, _ o: Int, _ side: Int, perCall: Bool = false, kernel: Int = 3) -> WinogradTile? {
            WinogradTile.preferred(for: .same(batch: 1, inChannels: i, outChannels: o, height: side, width: side, kernel: kernel),
                                   weightsTransformedPerCall: perCall)
        }
        XCTAssertEqual(choice(128, 128, 256), .f6x3)
        XCTAssertEqual(choice(256, 256, 64), .f4x3)
        XCTAssertEqual(choice(256, 256, 16), .f4x3)
        XCTAssertEqual(choice(256, 256, 16, perCall: true), .f2x3)
        XCTAssertNil(choice(512, 512, 8))
        XCTAssertNil(choice(128, 128, 8))
        XCTAssertNil(choice(512, 512, 4))
        XCTAssertNil(choice(3, 128, 256), "conv_in: the transforms cost more than they save")
        XCTAssertNil(choice(128, 128, 32, kernel: 1))
        XCTAssertNil(WinogradTile.preferred(for: Conv2DShape(batch: 1, inChannels: 64, outChannels: 64, height: 32, width: 32, kernel: 3,
                                                             stride: 2, padTop: 0, padLeft: 0, padBottom: 1, padRight: 1),
                                            weightsTransformedPerCall: false))
    }
}
