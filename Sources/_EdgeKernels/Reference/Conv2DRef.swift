import _EdgeCore
import _EdgeQuant

/// Reference 2-D convolution: the oracle every fast convolution is tested against.
///
///     out[n, o, y, x] = bias[o] + Σ_{i, ky, kx} W[o, i, ky, kx] · in[n, i, y·s + ky − padTop, x·s + kx − padLeft]
///
/// with zeros outside the input. Weights are dequantised one output channel at a time into `rowScratch`
/// (fanIn floats), so fp32, fp16 and int8 models share one definition; accumulation is fp32.
///
/// - input: [N, I, H, W]; output: [N, O, Ho, Wo]; weight: O rows of I·k·k; bias: [O].
public func conv2dRef(_ s: Conv2DShape, input: UnsafePointer<Float>, weight: WeightMatrix, bias: UnsafePointer<Float>?,
                      output: UnsafeMutablePointer<Float>, rowScratch: UnsafeMutablePointer<Float>) {
    precondition(weight.rows == s.outChannels && weight.columns == s.fanIn, "weight is \(weight.rows)×\(weight.columns), conv needs \(s.outChannels)×\(s.fanIn)")
    let (ho, wo, k) = (s.outHeight, s.outWidth, s.kernel)
    let inPlane = s.height * s.width, outPlane = ho * wo
    for o in 0 ..< s.outChannels {
        weight.dequantizeRow(o, into: rowScratch)
        for n in 0 ..< s.batch {
            let out = output + (n * s.outChannels + o) * outPlane
            out.initialize(repeating: bias?[o] ?? 0, count: outPlane)
            for i in 0 ..< s.inChannels {
                let plane = input + (n * s.inChannels + i) * inPlane
                for ky in 0 ..< k {
                    for kx in 0 ..< k {
                        let w = rowScratch[(i * k + ky) * k + kx]
                        // Output columns whose input column x·s + kx − padLeft lies inside [0, W).
                        // (Division truncates toward zero, so a tap entirely right of the image, whose
                        // numerator is negative, must be caught before dividing.)
                        let last = s.width - 1 + s.padLeft - kx
                        let x0 = max(0, (s.padLeft - kx + s.stride - 1) / s.stride)
                        let x1 = last < 0 ? 0 : min(wo, last / s.stride + 1)
                        if x0 >= x1 { continue }
                        for y in 0 ..< ho {
                            let iy = y * s.stride + ky - s.padTop
                            if iy < 0 || iy >= s.height { continue }
                            let src = plane + iy * s.width + kx - s.padLeft
                            let dst = out + y * wo
                            for x in x0 ..< x1 { dst[x] += w * src[x * s.stride] }
                        }
                    }
                }
            }
        }
    }
}
