import Glibc

/// The random stream of `torch.Generator().manual_seed(seed)` on the CPU, so that a seed gives the same
/// x_T (and the same DDIM variance noise) as a diffusers pipeline run with that generator.
///
/// The engine is the standard 32-bit Mersenne Twister (MT19937, Matsumoto & Nishimura) seeded with
/// `init_genrand(seed mod 2³²)`: torch keeps only the low 32 bits of the 64-bit seed.
///
/// `torch.randn` of a float32 tensor with n elements takes one of two paths, both reproduced here:
///
/// * **n ≥ 16** (`normal_fill` in ATen): n uniforms u_k = (w_k & 0xFFFFFF)·2⁻²⁴ are drawn first, one 32-bit word
///   w_k each. Every block of 16 is then transformed in place by Box–Muller, pairing u_j with u_{j+8}
///   (j < 8): r = √(−2 ln(1 − u_j)), θ = 2π·u_{j+8}, out_j = r cos θ, out_{j+8} = r sin θ. When 16 ∤ n, 16
///   *fresh* uniforms are drawn into the last 16 slots (overwriting finished values) and transformed the same
///   way. The x86-64 torch wheels compute ln, sin and cos with the AVX2 Cephes polynomials of
///   `avx_mathfun.h` compiled with fused multiply-adds; they are replicated operation for operation in
///   `cephesLog` / `cephesSinCos`, so the results match torch bit for bit, not just to an ulp.
/// * **n < 16**: each element is `Float(normal_distribution<double>)`: u₁, u₂ are 53-bit uniforms
///   ((hi·2³² + lo) & (2⁵³−1))·2⁻⁵³ from two words each, r = √(−2·log1p(−u₂)), θ = 2π·u₁; the value is r cos θ
///   and r sin θ is cached *in the generator* and returned by the next n < 16 draw (a n ≥ 16 draw neither
///   uses nor clears it). This path is double precision through libm, as in torch.
///
/// A value type: copying it forks the stream. The 624-word state lives in an array, so the first mutation
/// of a copy pays one allocation (copy-on-write); a generator passed `inout` never allocates while drawing.
public struct TorchGenerator: Sendable {
    private static let stateSize = 624

    private var state: [UInt32]
    /// Index of the next state word to temper; `stateSize` means the state must be regenerated first.
    private var index: Int
    /// The second value of the last double-precision Box–Muller pair (torch's `next_double_normal_sample`).
    private var cachedNormal: Double?

    /// The seed as given (torch reports the full 64 bits; only the low 32 reach the twister).
    public let seed: UInt64

    /// Same stream as `torch.Generator().manual_seed(seed)`. Negative torch seeds are their two's complement,
    /// e.g. `UInt64(bitPattern: -1)`.
    public init(seed: UInt64) {
        self.seed = seed
        var s = [UInt32](repeating: 0, count: Self.stateSize)
        s[0] = UInt32(truncatingIfNeeded: seed)
        for i in 1..<Self.stateSize {
            s[i] = 1_812_433_253 &* (s[i - 1] ^ (s[i - 1] >> 30)) &+ UInt32(i)
        }
        state = s
        index = Self.stateSize
        cachedNormal = nil
    }

    // MARK: Raw and uniform draws

    /// The next 32-bit output of MT19937 (what torch's `CPUGeneratorImpl::random()` returns).
    public mutating func nextUInt32() -> UInt32 {
        if index >= Self.stateSize { regenerate() }
        var y = state[index]
        index += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C_5680
        y ^= (y << 15) & 0xEFC6_0000
        y ^= y >> 18
        return y
    }

    /// A float32 uniform in [0, 1) as `torch.rand` makes it: the low 24 bits of one word times 2⁻²⁴.
    public mutating func nextFloatUniform() -> Float {
        Float(nextUInt32() & 0xFF_FFFF) * 0x1p-24
    }

    /// A float64 uniform in [0, 1): the low 53 bits of (first word · 2³² + second word) times 2⁻⁵³.
    public mutating func nextDoubleUniform() -> Double {
        let hi = UInt64(nextUInt32())
        let lo = UInt64(nextUInt32())
        return Double(((hi << 32) | lo) & ((1 << 53) - 1)) * 0x1p-53
    }

    mutating func regenerate() {
        // The textbook in-place twist: word i mixes with i+1 and i+397 (mod 624), the later words already
        // updated when they wrap around, exactly as genrand_int32 and torch's mt19937 do.
        let n = Self.stateSize
        state.withUnsafeMutableBufferPointer { mt in
            for i in 0..<n {
                let y = (mt[i] & 0x8000_0000) | (mt[(i + 1) % n] & 0x7FFF_FFFF)
                var v = mt[(i + 397) % n] ^ (y >> 1)
                if y & 1 != 0 { v ^= 0x9908_B0DF }
                mt[i] = v
            }
        }
        index = 0
    }

    // MARK: Normal draws

    /// Fills `out` exactly as `torch.randn(out.count, generator: self)` would (float32), advancing the stream
    /// by the same amount. The ≥ 16 path uses `out` itself as the uniform scratch, as torch does; nothing is
    /// allocated.
    public mutating func fillNormal(_ out: UnsafeMutableBufferPointer<Float>) {
        let n = out.count
        guard n > 0, let base = out.baseAddress else { return }
        if n < 16 {
            for i in 0..<n { out[i] = Float(nextDoubleNormal()) }
            return
        }
        for i in 0..<n { out[i] = nextFloatUniform() }
        var start = 0
        while start + 16 <= n {
            Self.boxMuller16(base + start)
            start += 16
        }
        if n % 16 != 0 {
            // torch redraws the whole tail block rather than reusing the leftover uniforms.
            let tail = base + (n - 16)
            for k in 0..<16 { tail[k] = nextFloatUniform() }
            Self.boxMuller16(tail)
        }
    }

    /// `torch.randn(count)` as a new array (allocates; use `fillNormal` in loops).
    public mutating func normal(count: Int) -> [Float] {
        precondition(count >= 0, "count must not be negative")
        var result = [Float](repeating: 0, count: count)
        result.withUnsafeMutableBufferPointer { fillNormal($0) }
        return result
    }

    /// One sample of torch's `at::normal_distribution<double>` (mean 0, std 1), with its cached pair value.
    public mutating func nextDoubleNormal() -> Double {
        if let cached = cachedNormal {
            cachedNormal = nil
            return cached
        }
        let u1 = nextDoubleUniform()
        let u2 = nextDoubleUniform()
        // log1p(−u₂) rather than log(1 − u₂): that is torch's expression, and u₂ ∈ [0, 1) keeps it finite.
        let r = (-2.0 * log1p(-u2)).squareRoot()
        let theta = 2.0 * Double.pi * u1
        cachedNormal = r * sin(theta)
        return r * cos(theta)
    }

    // MARK: torch's vectorised Box–Muller (avx_mathfun.h)

    /// 2π rounded to float, as `_mm256_set1_ps(2.0f * c10::pi<double>)` gives it.
    private static let twoPi = Float(2.0 * Double.pi)

    /// In-place Box–Muller on 16 uniforms: d[j], d[j+8] ← r cos θ, r sin θ with r = √(−2 ln(1 − d[j])),
    /// θ = 2π·d[j+8], for j in 0..<8.
    @inline(__always)
    private static func boxMuller16(_ d: UnsafeMutablePointer<Float>) {
        for j in 0..<8 {
            let u1 = 1 - d[j]  // [0, 1) → (0, 1], so the logarithm is finite
            let u2 = d[j + 8]
            let radius = (-2 * cephesLog(u1)).squareRoot()
            let theta = twoPi * u2
            let (s, c) = cephesSinCos(theta)
            d[j] = radius * c
            d[j + 8] = radius * s
        }
    }

    /// a·b + c with a single rounding. The torch build contracts these multiply-adds into FMA instructions;
    /// rounding them separately would move about one value in 500 by an ulp.
    @inline(__always)
    private static func fma(_ a: Float, _ b: Float, _ c: Float) -> Float { c.addingProduct(a, b) }

    // The Cephes constants are C double literals converted to float, so they are written the same way here
    // (a Swift Float literal rounds once from decimal, which can differ from the double-then-float rounding).
    private static let sqrtHalf = Float(0.707106781186547524 as Double)
    private static let logP: (Float, Float, Float, Float, Float, Float, Float, Float, Float) = (
        Float(7.0376836292E-2 as Double), Float(-1.1514610310E-1 as Double), Float(1.1676998740E-1 as Double),
        Float(-1.2420140846E-1 as Double), Float(1.4249322787E-1 as Double), Float(-1.6668057665E-1 as Double),
        Float(2.0000714765E-1 as Double), Float(-2.4999993993E-1 as Double), Float(3.3333331174E-1 as Double))
    private static let logQ1 = Float(-2.12194440e-4 as Double)
    private static let logQ2 = Float(0.693359375 as Double)

    /// Natural logarithm of x > 0 as torch's `log256_ps`: x = m·2ᵉ with m ∈ [√½, √2), then
    /// ln x = (m−1) − (m−1)²/2 + (m−1)³·P(m−1) + e·ln 2, ln 2 split as q2 − q1 for extra precision.
    @inline(__always)
    static func cephesLog(_ input: Float) -> Float {
        var x = max(input, Float.leastNormalMagnitude)
        let bits = x.bitPattern
        var e = Float(Int32(bitPattern: bits >> 23) - 0x7F) + 1
        x = Float(bitPattern: (bits & ~UInt32(0x7F80_0000)) | Float(0.5).bitPattern)
        if x < sqrtHalf {
            e -= 1
            x = (x - 1) + x
        } else {
            x = x - 1
        }
        let z = x * x
        var y = logP.0
        y = fma(y, x, logP.1)
        y = fma(y, x, logP.2)
        y = fma(y, x, logP.3)
        y = fma(y, x, logP.4)
        y = fma(y, x, logP.5)
        y = fma(y, x, logP.6)
        y = fma(y, x, logP.7)
        y = fma(y, x, logP.8)
        y = y * x
        y = fma(y, z, e * logQ1)
        y = fma(-z, 0.5, y)
        x = x + y
        return fma(e, logQ2, x)
    }

    private static let fourOverPi = Float(1.27323954473516 as Double)
    private static let minusDP1 = Float(-0.78515625 as Double)
    private static let minusDP2 = Float(-2.4187564849853515625e-4 as Double)
    private static let minusDP3 = Float(-3.77489497744594108e-8 as Double)
    private static let sinP0 = Float(-1.9515295891E-4 as Double)
    private static let sinP1 = Float(8.3321608736E-3 as Double)
    private static let sinP2 = Float(-1.6666654611E-1 as Double)
    private static let cosP0 = Float(2.443315711809948E-005 as Double)
    private static let cosP1 = Float(-1.388731625493765E-003 as Double)
    private static let cosP2 = Float(4.166664568298827E-002 as Double)

    /// (sin x, cos x) as torch's `sincos256_ps`: j = the even integer nearest above ⌊|x|·4/π⌋, reduce
    /// r = |x| − j·π/4 in three parts (Cody–Waite), evaluate the sine and cosine polynomials on r and pick
    /// and sign them by octant j.
    @inline(__always)
    static func cephesSinCos(_ input: Float) -> (sin: Float, cos: Float) {
        var signSin = input.sign == .minus
        var x = abs(input)
        var j = Int32(x * fourOverPi)  // truncation, as _mm256_cvttps_epi32
        j = (j &+ 1) & ~1
        let y = Float(j)
        let swapSin = j & 4 != 0
        let cosineFirst = j & 2 == 0
        x = fma(y, minusDP1, x)
        x = fma(y, minusDP2, x)
        x = fma(y, minusDP3, x)
        let signCos = ~(j &- 2) & 4 != 0
        signSin = signSin != swapSin

        let z = x * x
        var yc = cosP0
        yc = fma(yc, z, cosP1)
        yc = fma(yc, z, cosP2)
        yc = yc * z
        yc = fma(yc, z, -(z * 0.5))
        yc = yc + 1

        var ys = sinP0
        ys = fma(ys, z, sinP1)
        ys = fma(ys, z, sinP2)
        ys = ys * z
        ys = fma(ys, x, x)

        var s = cosineFirst ? ys : yc
        var c = cosineFirst ? yc : ys
        if signSin { s = -s }
        if signCos { c = -c }
        return (s, c)
    }
}
