/// The transformer activations, element-wise over `count` floats: the same functions as `geluRef` and
/// `quickGELURef`.
///
///     gelu(x)      = x · Φ(x) = x/2 · erfc(−x/√2)        (torch's exact GELU: CLIP ViT-H, GEGLU)
///     quickGELU(x) = x · σ(1.702·x) = x / (1 + e^(−1.702·x))   (OpenAI CLIP ViT-L/14)
///
/// GELU's erfc is the Chebyshev-fitted form erfc(z) ≈ t · e^(−z² + P(t)), t = 1/(1 + z/2), z ≥ 0, with
/// P of degree 9 (Press et al., Numerical Recipes §6.2: fractional error below 1.2e−7 for every z ≥ 0),
/// using `expVector` (2 ulp); erfc(−z) = 2 − erfc(z). Written through erfc rather than 1 + erf so that
/// large negative inputs keep their relative accuracy instead of cancelling to 0.
///
/// Contract: input and output [count]; may alias (in place); any alignment; the `count % lanes` tail goes
/// through the same vector code with partial loads and stores.
public func geluF32(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, count: Int) {
    mapVectors(input, output, count) { geluVector($0) }
}

/// See `geluF32`.
public func quickGELUF32(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, count: Int) {
    mapVectors(input, output, count) { quickGELUVector($0) }
}

@inline(__always) private func mapVectors(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, _ count: Int,
                                          _ f: (F32Vector) -> F32Vector) {
    let lanes = F32Vector.scalarCount
    var i = 0
    while i + lanes <= count { storeVector(f(loadVector(input + i)), output + i); i += lanes }
    if i < count { storePartialVector(f(loadPartialVector(input + i, count - i, fill: 0)), output + i, count - i) }
}

/// x · σ(1.702·x) per lane. Below x = −51 the true value is under 1e−36 but the clamped exp would give
/// x / 2.2e38 (−4.5e−9 at x = −1e30), so those lanes are −0 instead.
@inline(__always) func quickGELUVector(_ x: F32Vector) -> F32Vector {
    (x / (1 + expVector(x * -1.702))).replacing(with: -0.0, where: x .< -51)
}

/// x/2 · erfc(−x/√2) per lane.
@inline(__always) func geluVector(_ x: F32Vector) -> F32Vector {
    let z = x * -0.707_106_781_186_547_5  // −x/√2: erfc's argument
    let a = vmax(z, -z)  // |z|
    let u = 1 / (a * 0.5 + 1)
    var p = F32Vector(repeating: 0.170_872_77)
    p = F32Vector(repeating: -0.822_152_23).addingProduct(p, u)
    p = F32Vector(repeating: 1.488_515_87).addingProduct(p, u)
    p = F32Vector(repeating: -1.135_203_98).addingProduct(p, u)
    p = F32Vector(repeating: 0.278_868_07).addingProduct(p, u)
    p = F32Vector(repeating: -0.186_288_06).addingProduct(p, u)
    p = F32Vector(repeating: 0.096_784_18).addingProduct(p, u)
    p = F32Vector(repeating: 0.374_091_96).addingProduct(p, u)
    p = F32Vector(repeating: 1.000_023_68).addingProduct(p, u)
    p = F32Vector(repeating: -1.265_512_23).addingProduct(p, u)
    let erfcOfMagnitude = u * expVector(p - a * a)  // erfc(|z|)
    // erfc(z) = erfc(|z|) for z ≥ 0, 2 − erfc(|z|) for z < 0.
    let erfc = erfcOfMagnitude.replacing(with: 2 - erfcOfMagnitude, where: z .< 0)
    // Below x = −14 the value is under 1e−43 (a subnormal or 0); z² could overflow to ∞ on the way.
    return (x * 0.5 * erfc).replacing(with: -0.0, where: x .< -14)
}
