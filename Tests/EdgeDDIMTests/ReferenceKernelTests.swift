import XCTest
import _EdgeCore
import _EdgeQuant
import _EdgeKernels

/// The reference kernels are the oracles; these tests check them against the textbook formula written
/// as directly as possible (one output element at a time), on odd shapes.
final class ReferenceKernelTests: XCTestCase {
    /// Both sides sum the same products in different orders in fp32.
    static let summationOrderTolerance: Float = 1e-5

    func testConv2DMatchesDirectFormula() {
        var random = TestRandom(seed: 3)
        let shapes = [
            Conv2DShape.same(batch: 2, inChannels: 3, outChannels: 5, height: 7, width: 6, kernel: 3),
            Conv2DShape.same(batch: 1, inChannels: 4, outChannels: 3, height: 5, width: 5, kernel: 1),
            Conv2DShape(batch: 1, inChannels: 2, outChannels: 3, height: 8, width: 8, kernel: 3, stride: 2, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1),
            Conv2DShape(batch: 2, inChannels: 3, outChannels: 2, height: 6, width: 6, kernel: 3, stride: 2, padTop: 0, padLeft: 0, padBottom: 1, padRight: 1),
            // A tap entirely right of a 2-wide image at stride 2: it must contribute nothing.
            Conv2DShape(batch: 1, inChannels: 2, outChannels: 2, height: 2, width: 2, kernel: 3, stride: 2, padTop: 0, padLeft: 0, padBottom: 1, padRight: 1),
        ]
        for s in shapes {
            let input = random.floats(s.inputCount), weights = random.floats(s.outChannels * s.fanIn), bias = random.floats(s.outChannels)
            var out = [Float](repeating: .nan, count: s.outputCount), scratch = [Float](repeating: 0, count: s.fanIn)
            weights.withUnsafeBytes { w in
                conv2dRef(s, input: input, weight: WeightMatrix(type: .f32, rows: s.outChannels, columns: s.fanIn, values: w.baseAddress!, scales: nil),
                          bias: bias, output: &out, rowScratch: &scratch)
            }
            for n in 0 ..< s.batch { for o in 0 ..< s.outChannels { for y in 0 ..< s.outHeight { for x in 0 ..< s.outWidth {
                var acc = bias[o]
                for i in 0 ..< s.inChannels { for ky in 0 ..< s.kernel { for kx in 0 ..< s.kernel {
                    let iy = y * s.stride + ky - s.padTop, ix = x * s.stride + kx - s.padLeft
                    if iy >= 0, iy < s.height, ix >= 0, ix < s.width {
                        acc += weights[((o * s.inChannels + i) * s.kernel + ky) * s.kernel + kx] * input[((n * s.inChannels + i) * s.height + iy) * s.width + ix]
                    }
                }}}
                let got = out[((n * s.outChannels + o) * s.outHeight + y) * s.outWidth + x]
                XCTAssertEqual(got, acc, accuracy: Self.summationOrderTolerance, "\(s) at \(n),\(o),\(y),\(x)")
            }}}}
        }
    }

    func testGroupNormNormalises() {
        var random = TestRandom(seed: 4)
        let (n, c, p, g) = (2, 6, 5, 3)
        let x = random.floats(n * c * p).map { $0 * 4 + 1 }
        let ones = [Float](repeating: 1, count: c), zeros = [Float](repeating: 0, count: c)
        var y = [Float](repeating: 0, count: x.count)
        groupNormRef(input: x, output: &y, batch: n, channels: c, pixels: p, groups: g, eps: 0, gamma: ones, beta: zeros, applySiLU: false)
        for b in 0 ..< n { for group in 0 ..< g {
            let slice = (0 ..< (c / g) * p).map { y[(b * c + group * (c / g)) * p + $0] }
            let mean = slice.reduce(0, +) / Float(slice.count)
            let variance = slice.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Float(slice.count)
            XCTAssertEqual(mean, 0, accuracy: Self.summationOrderTolerance)
            XCTAssertEqual(variance, 1, accuracy: 1e-4)
        }}
    }

    func testAttentionWithOneKeyReturnsItsValue() {
        // One token: softmax over a single score is 1, so the output is V whatever Q and K are.
        let q: [Float] = [3, -1, 2, 5], k: [Float] = [0.5, 1, -2, 4], v: [Float] = [7, 8, 9, 10]
        var out = [Float](repeating: 0, count: 4), scores = [Float](repeating: 0, count: 1)
        attentionRef(q: q, k: k, v: v, tokens: 1, channels: 4, heads: 2, output: &out, scores: &scores)
        XCTAssertEqual(out, v)
    }

    func testTimestepEmbeddingMatchesFormula() {
        let t: [Float] = [0, 999]
        var out = [Float](repeating: 0, count: 2 * 8)
        timestepEmbeddingRef(timesteps: t, batch: 2, dimension: 8, flipSinToCos: false, freqShift: 1, into: &out)
        for j in 0 ..< 4 {
            let f = exp(-log(10000.0) * Double(j) / Double(4 - 1))
            XCTAssertEqual(Double(out[8 + j]), sin(999 * f), accuracy: 1e-3)
            XCTAssertEqual(Double(out[8 + 4 + j]), cos(999 * f), accuracy: 1e-3)
            XCTAssertEqual(out[j], 0)
            XCTAssertEqual(out[4 + j], 1)
        }
    }
}
