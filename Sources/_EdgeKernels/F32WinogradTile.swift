import _EdgeCore

/// A Winograd minimal-filtering algorithm F(m×m, 3×3) (Lavin & Gray, "Fast Algorithms for Convolutional
/// Neural Networks", 2016): an m×m block of a 3×3 stride-1 convolution's output from an α×α input patch,
/// α = m + 2, with α² multiplications per input channel instead of 9·m²:
///
///     Y = Aᵀ [ Σ_i (G g_i Gᵀ) ⊙ (Bᵀ d_i B) ] A          (g_i: the 3×3 filter of input channel i, d_i: its patch)
///
/// The transforms are the classic ones, interpolating at 0, ±1, ±2, ±½ and ∞ (those of ncnn and NNPACK); the
/// larger the tile, the fewer multiplications (9m²/α²: 2.25×, 4×, 5.06×) and the larger the transforms'
/// constants, so the larger the rounding error (measured in `docs/KERNELS.md`, bounded in the tests).
///
/// The matrices are stored row-major in fp32, rounded once from the exact rationals; the fast kernels and the
/// reference `conv2dWinogradRef` use these same values.
public enum WinogradTile: Int, Sendable, CaseIterable, CustomStringConvertible {
    /// F(2×2, 3×3): α = 4, points 0, ±1, ∞.
    case f2x3 = 2
    /// F(4×4, 3×3): α = 6, points 0, ±1, ±2, ∞.
    case f4x3 = 4
    /// F(6×6, 3×3): α = 8, points 0, ±1, ±2, ±½, ∞.
    case f6x3 = 6

    /// Output tile side m.
    public var outputSide: Int { rawValue }
    /// Input patch side α = m + 2 (also the side of a transformed tile).
    public var inputSide: Int { rawValue + 2 }

    public var description: String { "F(\(rawValue)x\(rawValue),3x3)" }

    /// Bᵀ, α × α: V = Bᵀ d B.
    public var inputTransform: [Float] {
        switch self {
        case .f2x3: Self.bt2
        case .f4x3: Self.bt4
        case .f6x3: Self.bt6
        }
    }

    /// G, α × 3: U = G g Gᵀ.
    public var filterTransform: [Float] {
        switch self {
        case .f2x3: Self.g2
        case .f4x3: Self.g4
        case .f6x3: Self.g6
        }
    }

    /// Aᵀ, m × α: Y = Aᵀ M A.
    public var outputTransform: [Float] {
        switch self {
        case .f2x3: Self.at2
        case .f4x3: Self.at4
        case .f6x3: Self.at6
        }
    }

    // The matrices, built once (the kernels read them on every call and must not allocate).
    private static let bt2: [Float] = [
        1, 0, -1, 0,
        0, 1, 1, 0,
        0, -1, 1, 0,
        0, 1, 0, -1,
    ]
    private static let bt4: [Float] = [
        4, 0, -5, 0, 1, 0,
        0, -4, -4, 1, 1, 0,
        0, 4, -4, -1, 1, 0,
        0, -2, -1, 2, 1, 0,
        0, 2, -1, -2, 1, 0,
        0, 4, 0, -5, 0, 1,
    ]
    private static let bt6: [Float] = [
        1, 0, -5.25, 0, 5.25, 0, -1, 0,
        0, 1, 1, -4.25, -4.25, 1, 1, 0,
        0, -1, 1, 4.25, -4.25, -1, 1, 0,
        0, 0.5, 0.25, -2.5, -1.25, 2, 1, 0,
        0, -0.5, 0.25, 2.5, -1.25, -2, 1, 0,
        0, 2, 4, -2.5, -5, 0.5, 1, 0,
        0, -2, 4, 2.5, -5, -0.5, 1, 0,
        0, -1, 0, 5.25, 0, -5.25, 0, 1,
    ]
    private static let g2: [Float] = [
        1, 0, 0,
        0.5, 0.5, 0.5,
        0.5, -0.5, 0.5,
        0, 0, 1,
    ]
    private static let g4: [Float] = [
        1.0 / 4, 0, 0,
        -1.0 / 6, -1.0 / 6, -1.0 / 6,
        -1.0 / 6, 1.0 / 6, -1.0 / 6,
        1.0 / 24, 1.0 / 12, 1.0 / 6,
        1.0 / 24, -1.0 / 12, 1.0 / 6,
        0, 0, 1,
    ]
    private static let g6: [Float] = [
        1, 0, 0,
        -2.0 / 9, -2.0 / 9, -2.0 / 9,
        -2.0 / 9, 2.0 / 9, -2.0 / 9,
        1.0 / 90, 1.0 / 45, 2.0 / 45,
        1.0 / 90, -1.0 / 45, 2.0 / 45,
        32.0 / 45, 16.0 / 45, 8.0 / 45,
        32.0 / 45, -16.0 / 45, 8.0 / 45,
        0, 0, 1,
    ]
    private static let at2: [Float] = [
        1, 1, 1, 0,
        0, 1, -1, -1,
    ]
    private static let at4: [Float] = [
        1, 1, 1, 1, 1, 0,
        0, 1, -1, 2, -2, 0,
        0, 1, 1, 4, 4, 0,
        0, 1, -1, 8, -8, 1,
    ]
    private static let at6: [Float] = [
        1, 1, 1, 1, 1, 1, 1, 0,
        0, 1, -1, 2, -2, 0.5, -0.5, 0,
        0, 1, 1, 4, 4, 0.25, 0.25, 0,
        0, 1, -1, 8, -8, 0.125, -0.125, 0,
        0, 1, 1, 16, 16, 0.0625, 0.0625, 0,
        0, 1, -1, 32, -32, 0.03125, -0.03125, 1,
    ]

    /// Whether a convolution can run as Winograd: 3×3, stride 1 (any padding, any size).
    public static func supports(_ s: Conv2DShape) -> Bool {
        s.kernel == 3 && s.stride == 1 && s.outHeight >= 1 && s.outWidth >= 1
    }

    /// The tile a layer runs with by default, or nil for the direct kernel (`conv2dF32`), from the per-layer
    /// timings of `KernelWinogradBenchmarkTests` (every 3×3 layer of the three published DDPM sizes, each way;
    /// docs/KERNELS.md, "Winograd"):
    /// - fewer than 16 input channels (conv_in): direct — the transforms then cost more than the product saves;
    /// - an output side of 192 or more: F(6,3) (at 128 and below F(4,3) is as fast, and more accurate);
    /// - 12 to 191: F(4,3) with weights transformed at load; with weights transformed per call, F(4,3) from 24 and
    ///   F(2,3) below (from 128 input channels), whose smaller weight transform pays sooner;
    /// - under 12: direct. (F(2,3) on 8×8 images with 256 or more input channels is up to 1.4× faster alone, but
    ///   gained 4% on google/ddpm-cifar10-32, and with it the most error-amplifying fidelity run — ddpm-emoji-32,
    ///   PNDM with Runge–Kutta warm-up, 5 steps — went from 5.5e-4 to 1.3e-3 of diffusers, past its 1e-3 bar.)
    public static func preferred(for s: Conv2DShape, weightsTransformedPerCall perCall: Bool) -> WinogradTile? {
        guard supports(s), s.inChannels >= 16 else { return nil }
        let side = min(s.outHeight, s.outWidth)
        switch side {
        case 192...: return .f6x3
        case 24...: return .f4x3
        case 12...: return !perCall ? .f4x3 : s.inChannels >= 128 ? .f2x3 : nil
        default: return nil
        }
    }

    /// Output tiles of one image: ⌈Ho/m⌉ · ⌈Wo/m⌉.
    public func tiles(_ s: Conv2DShape) -> (rows: Int, columns: Int) {
        ((s.outHeight + outputSide - 1) / outputSide, (s.outWidth + outputSide - 1) / outputSide)
    }
}
