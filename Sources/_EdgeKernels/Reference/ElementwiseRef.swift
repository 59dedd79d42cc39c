#if canImport(Glibc)
import Glibc
#endif

/// GELU as torch.nn.functional.gelu (approximate="none"), in Double: x · Φ(x) = x/2 · (1 + erf(x/√2)),
/// computed as x/2 · erfc(−x/√2), which keeps its relative accuracy where 1 + erf cancels (x ≪ 0).
/// CLIP ViT-H (SD 2.x's text encoder) and the GEGLU feed-forwards of diffusers' transformer blocks use it.
@inlinable public func geluRef(_ x: Float) -> Float {
    let d = Double(x)
    return Float(0.5 * d * erfc(-d / 2.0.squareRoot()))
}

/// CLIP's quick_gelu (OpenAI CLIP ViT-L/14, SD 1.x's text encoder), in Double: x · σ(1.702·x).
@inlinable public func quickGELURef(_ x: Float) -> Float {
    let d = Double(x)
    return Float(d / (1 + exp(-1.702 * d)))
}

/// diffusers' GEGLU gate over channel-major tokens: out[n, f, t] = x[n, f, t] · gelu(x[n, F + f, t]), with
/// x [N, 2F, T] the projection's [a; g] halves along channels and out [N, F, T]; `geluRef` then one product.
public func gegluRef(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, batch: Int, features: Int, tokens: Int) {
    let run = features * tokens
    for n in 0 ..< batch {
        let a = input + 2 * n * run, g = a + run, o = output + n * run
        for i in 0 ..< run { o[i] = a[i] * geluRef(g[i]) }
    }
}

/// out = (a + b) · scale, element-wise over `count` values; out may alias a or b.
public func addScaledRef(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, scale: Float, count: Int, into out: UnsafeMutablePointer<Float>) {
    for i in 0 ..< count { out[i] = (a[i] + b[i]) * scale }
}

/// x[n, c, p] += v[n, c]: adds the time embedding projection to every pixel of its channel.
public func addChannelVectorRef(_ x: UnsafeMutablePointer<Float>, batch: Int, channels: Int, pixels: Int, vector: UnsafePointer<Float>) {
    for n in 0 ..< batch {
        for c in 0 ..< channels {
            let v = vector[n * channels + c]
            let plane = x + (n * channels + c) * pixels
            for p in 0 ..< pixels { plane[p] += v }
        }
    }
}

/// Channel concatenation of [N, Ca, P] and [N, Cb, P] into [N, Ca + Cb, P] (the UNet's skip connections).
public func concatChannelsRef(_ a: UnsafePointer<Float>, channelsA: Int, _ b: UnsafePointer<Float>, channelsB: Int,
                              batch: Int, pixels: Int, into out: UnsafeMutablePointer<Float>) {
    for n in 0 ..< batch {
        let dst = out + n * (channelsA + channelsB) * pixels
        dst.update(from: a + n * channelsA * pixels, count: channelsA * pixels)
        (dst + channelsA * pixels).update(from: b + n * channelsB * pixels, count: channelsB * pixels)
    }
}

/// Nearest-neighbour 2× upsampling of [N·C, H, W] planes into [N·C, 2H, 2W].
public func upsampleNearest2xRef(_ x: UnsafePointer<Float>, planes: Int, height: Int, width: Int, into out: UnsafeMutablePointer<Float>) {
    for p in 0 ..< planes {
        let src = x + p * height * width
        let dst = out + p * 4 * height * width
        for y in 0 ..< 2 * height {
            for xx in 0 ..< 2 * width { dst[y * 2 * width + xx] = src[(y / 2) * width + xx / 2] }
        }
    }
}

/// diffusers' sinusoidal timestep embedding (`get_timestep_embedding`):
///
///     f_j = exp(−ln(10000) · j / (D/2 − freqShift)),  j < D/2
///     emb = [sin(t·f), cos(t·f)], or [cos(t·f), sin(t·f)] when flipSinToCos; a zero column pads odd D.
///
/// Computed in float64 and rounded to float32, unlike diffusers, which builds it in float32 even for a float64
/// model: at t ≈ 500 the float32 phase t·f is off by up to 3e-5 rad, and at full size (SD 1.5) that alone is
/// torch float32's whole error against float64 on one UNet evaluation (relative L2 5.7e-6 of 5.7e-6; see
/// tools/reference/make_full_size_sd.py's errors.json). It costs D/2 sine–cosine pairs per image per step.
///
/// - timesteps: [N]; out: [N, D].
public func timestepEmbeddingRef(timesteps: UnsafePointer<Float>, batch: Int, dimension: Int, flipSinToCos: Bool, freqShift: Int,
                                 into out: UnsafeMutablePointer<Float>) {
    let half = dimension / 2
    let logMaxPeriod = -9.210340371976184  // −ln(10000)
    for n in 0 ..< batch {
        let row = out + n * dimension
        let t = Double(timesteps[n])
        for j in 0 ..< half {
            let arg = t * exp(logMaxPeriod * Double(j) / Double(half - freqShift))
            let (first, second) = flipSinToCos ? (cos(arg), sin(arg)) : (sin(arg), cos(arg))
            row[j] = Float(first)
            row[half + j] = Float(second)
        }
        if dimension % 2 == 1 { row[dimension - 1] = 0 }
    }
}

/// out = x · scale + shift over `count` values; out may alias x.
public func affineRef(_ x: UnsafePointer<Float>, scale: Float, shift: Float, count: Int, into out: UnsafeMutablePointer<Float>) {
    for i in 0 ..< count { out[i] = x[i] * scale + shift }
}

/// out = SiLU(x) over `count` values; out may alias x.
public func siluRef(_ x: UnsafePointer<Float>, count: Int, into out: UnsafeMutablePointer<Float>) {
    for i in 0 ..< count { out[i] = silu(x[i]) }
}

/// `convertF32ToF16`'s format, one value at a time: the nearest binary16 (ties to even) of x clamped to
/// ±65504, with |x| < 2⁻¹⁴ stored as ±0 (the stored bits of a NaN are unspecified).
public func convertF32ToF16Ref(_ x: UnsafePointer<Float>, count: Int, into out: UnsafeMutablePointer<UInt16>) {
    for i in 0 ..< count {
        let m = min(abs(x[i]), 65504)
        let h = m < 0x1p-14 ? Float16(0) : Float16(m)
        out[i] = h.bitPattern | (x[i].sign == .minus ? 0x8000 : 0)
    }
}

/// The fp32 value of each binary16 `x[i]`.
public func convertF16ToF32Ref(_ x: UnsafePointer<UInt16>, count: Int, into out: UnsafeMutablePointer<Float>) {
    for i in 0 ..< count { out[i] = Float(Float16(bitPattern: x[i])) }
}
