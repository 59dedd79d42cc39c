import _EdgeCore
import _EdgeQuant

/// Reference int8 convolution (stride 1 or 2): int8 per-row weights × u8 per-pixel activations (`U8PixelQuant`),
/// exact int32 sums per kernel tap, combined in fp32. The fast int8 kernels compute bit-for-bit this:
///
///     for each tap t = (ky, kx), with input pixel p = (oy·stride + ky − padTop, ox·stride + kx − padLeft):
///         d_t   = Σ_c W[o, c, t] · u[c, p] − zero[p] · Σ_c W[o, c, t]          (int32, exact)
///         acc   = fma(Float(d_t), scale[p], acc)                                (taps in order ky, kx; acc starts at 0)
///     y = acc · wscale[o];  y = y + bias[o];  y = y + channelBias[n, o];  y = y + residual;  y = y · outScale
///
/// (the last three only when given). A tap outside the image uses u = 0, zero = 0, scale = 0, as the padded
/// storage does. With `upsampledInput`, `shape` describes the 2× nearest-upsampled image and `input` holds
/// the half-size one; each virtual pixel reads its source pixel, so duplicates quantise identically.
///
/// - weight: `.q8PerChannel`, O rows of C·k·k in PyTorch order (c, ky, kx).
/// - input [N, C, H, W] (or [N, C, H/2, W/2] upsampled), output / residual [N, O, Ho, Wo]; channelBias [N, O].
public func conv2dQ8Ref(_ s: Conv2DShape, upsampledInput: Bool = false, input: UnsafePointer<Float>, weight: WeightMatrix,
                        bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, residual: UnsafePointer<Float>? = nil,
                        scale outScale: Float = 1, channelBias: UnsafePointer<Float>? = nil) {
    precondition(weight.type == .q8PerChannel && (s.stride == 1 || !upsampledInput), "conv2dQ8Ref: q8 weights; upsampled input at stride 1")
    precondition(weight.rows == s.outChannels && weight.columns == s.fanIn)
    let (k, ci, h, w) = (s.kernel, s.inChannels, s.height, s.width)
    let (sh, sw) = upsampledInput ? (h / 2, w / 2) : (h, w)
    let (ho, wo) = (s.outHeight, s.outWidth)
    let q = weight.values.assumingMemoryBound(to: Int8.self)
    var u = [UInt8](repeating: 0, count: ci * h * w)
    var pixelScale = [Float](repeating: 0, count: h * w), pixelZero = [Int32](repeating: 0, count: h * w)
    for n in 0 ..< s.batch {
        let image = input + n * ci * sh * sw
        for y in 0 ..< h {
            for x in 0 ..< w {
                let src = upsampledInput ? (y / 2) * sw + x / 2 : y * sw + x
                var lo = Float.infinity, hi = -Float.infinity
                for c in 0 ..< ci { lo = min(lo, image[c * sh * sw + src]); hi = max(hi, image[c * sh * sw + src]) }
                let p = U8PixelQuant.parameters(minimum: lo, maximum: hi)
                pixelScale[y * w + x] = p.scale
                pixelZero[y * w + x] = p.zero
                for c in 0 ..< ci { u[c * h * w + y * w + x] = U8PixelQuant.quantize(image[c * sh * sw + src], inverse: p.inverse, zero: p.zero) }
            }
        }
        for o in 0 ..< s.outChannels {
            let row = q + o * s.fanIn
            for oy in 0 ..< ho {
                for ox in 0 ..< wo {
                    var acc: Float = 0
                    for ky in 0 ..< k {
                        for kx in 0 ..< k {
                            let iy = oy * s.stride + ky - s.padTop, ix = ox * s.stride + kx - s.padLeft
                            let inside = iy >= 0 && iy < h && ix >= 0 && ix < w
                            var dot: Int32 = 0, sum: Int32 = 0
                            for c in 0 ..< ci {
                                let wq = Int32(row[(c * k + ky) * k + kx])
                                sum += wq
                                if inside { dot += wq * Int32(u[c * h * w + iy * w + ix]) }
                            }
                            let zero = inside ? pixelZero[iy * w + ix] : 0, scale = inside ? pixelScale[iy * w + ix] : 0
                            acc = acc.addingProduct(Float(dot - zero * sum), scale)
                        }
                    }
                    var y = acc * weight.scales![o]
                    if let bias { y = y + bias[o] }
                    if let channelBias { y = y + channelBias[n * s.outChannels + o] }
                    let at = ((n * s.outChannels + o) * ho + oy) * wo + ox
                    if let residual { y = y + residual[at] }
                    output[at] = y * outScale
                }
            }
        }
    }
}
