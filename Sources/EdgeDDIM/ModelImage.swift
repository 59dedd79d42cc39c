import Glibc
import _EdgeCore
import EdgeImageIO

/// One image in the model's space, read from a file for `invert` and `reconstruct`: C×H×W float32 values in
/// [−1, 1], the range diffusers' pipelines train and sample in.
public enum ModelImage {
    // The formats' magic numbers (PNG's 8-byte signature, .npy's 6-byte magic).
    static let pngSignature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
    static let npyMagic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]

    /// Reads `path`, recognised by its first bytes (not its name):
    /// * a PNG, 8-bit gray for a 1-channel model or 8-bit RGB for a 3-channel one, exactly size × size;
    ///   pixel v becomes v/127.5 − 1, the inverse of the pipeline's output mapping up to its rounding;
    /// * a .npy of float32 [1, C, H, W] or [C, H, W] whose values are finite and in [−1, 1].
    /// Anything else throws one line naming the file and what is wrong with it.
    public static func load(path: String, channels: Int, size: Int) throws -> [Float] {
        let bytes = try readWholeFile(path)
        if bytes.starts(with: pngSignature) {
            return try fromPNG(PNG.decode(bytes, context: path), path: path, channels: channels, size: size)
        }
        if bytes.starts(with: npyMagic) {
            return try fromNPY(NPY.decode(bytes, context: path), path: path, channels: channels, size: size)
        }
        throw EdgeError("\(path): not a PNG or .npy file")
    }

    static func fromPNG(_ grid: PixelGrid, path: String, channels: Int, size: Int) throws -> [Float] {
        let kinds = [1: "8-bit gray", 2: "8-bit gray+alpha", 3: "8-bit RGB", 4: "8-bit RGBA"]
        guard grid.channels == channels else {
            throw EdgeError("\(path): the image is \(kinds[grid.channels] ?? "?"), the model needs \(kinds[channels] ?? "\(channels) channels")")
        }
        guard grid.width == size, grid.height == size else {
            throw EdgeError("\(path): the image is \(grid.width)×\(grid.height), the model needs \(size)×\(size)")
        }
        var values = [Float](repeating: 0, count: channels * size * size)
        for y in 0..<size {
            for x in 0..<size {
                for c in 0..<channels {
                    values[(c * size + y) * size + x] = Float(grid[x: x, y: y, channel: c]) / 127.5 - 1
                }
            }
        }
        return values
    }

    static func fromNPY(_ array: NPYArray, path: String, channels: Int, size: Int) throws -> [Float] {
        let shape = [channels, size, size]
        guard array.shape == shape || array.shape == [1] + shape else {
            throw EdgeError("\(path): shape \(NPY.describe(array.shape)), the model needs \(NPY.describe([1] + shape)) or \(NPY.describe(shape))")
        }
        if let i = array.values.firstIndex(where: { !($0 >= -1 && $0 <= 1) }) {
            throw EdgeError("\(path): value \(array.values[i]) at index \(i) is outside [-1, 1] (images are x/127.5 - 1 of 8-bit pixels)")
        }
        return array.values
    }
}

/// Distances between images compared as the pipeline shows them: each value mapped to clamp(x/2 + 0.5, 0, 1)
/// (the diffusers output range [0, 1], before 8-bit rounding), so differences outside the visible range,
/// which every image viewer clips away, do not count.
public enum ImageDistance {
    @inline(__always)
    static func unit(_ x: Float) -> Double { Double(min(max(x / 2 + 0.5, 0), 1)) }

    /// Mean of the squared differences per value (pixel and channel), images in [0, 1].
    public static func meanSquaredError(_ a: UnsafeBufferPointer<Float>, _ b: UnsafeBufferPointer<Float>) -> Double {
        precondition(a.count == b.count && a.count > 0, "images hold \(a.count) and \(b.count) values")
        var sum = 0.0
        for i in 0..<a.count {
            let d = unit(a[i]) - unit(b[i])
            sum += d * d
        }
        return sum / Double(a.count)
    }

    public static func meanSquaredError(_ a: [Float], _ b: [Float]) -> Double {
        a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in meanSquaredError(pa, pb) } }
    }

    /// PSNR in dB for a peak of 1: 10·log10(1/MSE); +∞ for identical images.
    public static func psnr(meanSquaredError mse: Double) -> Double {
        mse > 0 ? -10 * log10(mse) : .infinity
    }
}
