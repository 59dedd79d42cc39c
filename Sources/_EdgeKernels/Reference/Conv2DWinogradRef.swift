import _EdgeCore
import _EdgeQuant

/// Reference Winograd convolution: the plain-loop twin of `conv2dWinogradF32`, the same algorithm one tile and
/// one output channel at a time, in fp32:
///
///     U_{o,i} = G g_{o,i} Gᵀ,   V_{i,t} = Bᵀ d_{i,t} B,   Y_{o,t} = Aᵀ (Σ_i U_{o,i} ⊙ V_{i,t}) A
///     out[n, o, y, x] = (Y_{o,t}[y mod m, x mod m] + bias[o] + channelBias[n, o] + residual[n, o, y, x]) · scale
///
/// for the tile t containing (y, x), with d_{i,t} the α×α input patch at (ty·m − padTop, tx·m − padLeft), zero
/// outside the image (`shape.kernel` must be 3 and `shape.stride` 1). It differs from `conv2dRef` only by the
/// rounding of the transforms, which grows with the tile (bounded in the tests).
///
/// - input: [N, I, H, W]; output: [N, O, Ho, Wo], must not alias input; residual [N, O, Ho, Wo] or nil (may
///   alias output); weight: O rows of I·9; bias [O]; channelBias [N, O] or nil.
public func conv2dWinogradRef(_ tile: WinogradTile, _ s: Conv2DShape, input: UnsafePointer<Float>, weight: WeightMatrix,
                              bias: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, residual: UnsafePointer<Float>? = nil,
                              scale: Float = 1, channelBias: UnsafePointer<Float>? = nil) {
    precondition(WinogradTile.supports(s), "Winograd needs a 3×3 stride-1 convolution")
    precondition(weight.rows == s.outChannels && weight.columns == s.fanIn)
    let (m, a) = (tile.outputSide, tile.inputSide)
    let (bt, g, at) = (tile.inputTransform, tile.filterTransform, tile.outputTransform)
    let (ho, wo) = (s.outHeight, s.outWidth)
    let (tilesY, tilesX) = tile.tiles(s)
    var row = [Float](repeating: 0, count: s.fanIn)
    var u = [Float](repeating: 0, count: s.inChannels * a * a)   // [I][α][α] of one output channel
    var d = [Float](repeating: 0, count: a * a), v = [Float](repeating: 0, count: a * a)
    var sum = [Float](repeating: 0, count: a * a), y = [Float](repeating: 0, count: m * m)
    var t1 = [Float](repeating: 0, count: a * a)
    /// c[c0 + r·columns + j] = Σ_k A[r, k] · B[k, j], with A[r, k] = x[r·inner + k] and B[k, j] = z[z0 + k·columns + j],
    /// or z[z0 + j·inner + k] when `zTransposed` (a right factor given as the matrix it is the transpose of).
    func multiply(_ x: [Float], by z: [Float], zAt z0: Int = 0, rows: Int, inner: Int, columns: Int, zTransposed: Bool,
                  into c: inout [Float], at c0: Int = 0) {
        for r in 0 ..< rows {
            for j in 0 ..< columns {
                var acc: Float = 0
                for k in 0 ..< inner { acc += x[r * inner + k] * z[zTransposed ? z0 + j * inner + k : z0 + k * columns + j] }
                c[c0 + r * columns + j] = acc
            }
        }
    }

    for o in 0 ..< s.outChannels {
        row.withUnsafeMutableBufferPointer { weight.dequantizeRow(o, into: $0.baseAddress!) }
        for i in 0 ..< s.inChannels {
            // (G g) is α×3, then (G g) Gᵀ is α×α.
            multiply(g, by: row, zAt: i * 9, rows: a, inner: 3, columns: 3, zTransposed: false, into: &t1)
            multiply(t1, by: g, rows: a, inner: 3, columns: a, zTransposed: true, into: &u, at: i * a * a)
        }
        for n in 0 ..< s.batch {
            let combinedBias = bias[o] + (channelBias?[n * s.outChannels + o] ?? 0)
            for ty in 0 ..< tilesY {
                for tx in 0 ..< tilesX {
                    for k in 0 ..< a * a { sum[k] = 0 }
                    for i in 0 ..< s.inChannels {
                        let plane = input + (n * s.inChannels + i) * s.height * s.width
                        for r in 0 ..< a {
                            for c in 0 ..< a {
                                let iy = ty * m - s.padTop + r, ix = tx * m - s.padLeft + c
                                d[r * a + c] = iy >= 0 && iy < s.height && ix >= 0 && ix < s.width ? plane[iy * s.width + ix] : 0
                            }
                        }
                        // Bᵀ d, then (Bᵀ d) B.
                        multiply(bt, by: d, rows: a, inner: a, columns: a, zTransposed: false, into: &t1)
                        multiply(t1, by: bt, rows: a, inner: a, columns: a, zTransposed: true, into: &v)
                        for k in 0 ..< a * a { sum[k] += u[i * a * a + k] * v[k] }
                    }
                    // Aᵀ M (m×α), then (Aᵀ M) A (m×m).
                    multiply(at, by: sum, rows: m, inner: a, columns: a, zTransposed: false, into: &t1)
                    multiply(t1, by: at, rows: m, inner: a, columns: m, zTransposed: true, into: &y)
                    for r in 0 ..< m where ty * m + r < ho {
                        for c in 0 ..< m where tx * m + c < wo {
                            let index = ((n * s.outChannels + o) * ho + ty * m + r) * wo + tx * m + c
                            var value = y[r * m + c] + combinedBias
                            if let residual { value += residual[index] }
                            output[index] = value * scale
                        }
                    }
                }
            }
        }
    }
}
