import _EdgeCore

/// 8-bit pixels, row-major, channels interleaved: 1 = gray, 2 = gray+alpha, 3 = RGB, 4 = RGBA.
public struct PixelGrid: Equatable, Sendable {
    public var width: Int
    public var height: Int
    public var channels: Int
    /// `height · width · channels` bytes; pixel (x, y) channel c is at (y·width + x)·channels + c.
    public var pixels: [UInt8]

    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        precondition(width >= 0 && height >= 0 && (1...4).contains(channels), "bad pixel grid dimensions")
        precondition(pixels.count == width * height * channels, "pixel count does not match the dimensions")
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }

    public subscript(x x: Int, y y: Int, channel channel: Int) -> UInt8 {
        pixels[(y * width + x) * channels + channel]
    }
}

/// How a batch of images is tiled into one picture.
public struct GridLayout: Equatable, Sendable {
    /// Tiles per row; nil means ⌈√N⌉ (a square-ish grid). More columns than images are capped at N.
    public var columns: Int?
    /// Pixels between neighbouring tiles (not around the border).
    public var gap: Int
    /// The value of every gap pixel and of unused cells in the last row (all channels).
    public var gapValue: UInt8

    /// Default: ⌈√N⌉ columns, 2-pixel mid-grey (128) gaps, which separate tiles both on dark data
    /// (Fashion-MNIST's black background) and on light data (the emoji's white background).
    public init(columns: Int? = nil, gap: Int = 2, gapValue: UInt8 = 128) {
        self.columns = columns
        self.gap = gap
        self.gapValue = gapValue
    }
}

/// The 8-bit value diffusers gives a model-space sample x: `DDIMPipeline` takes clamp(x/2 + 0.5, 0, 1) in
/// float32 and `numpy_to_pil` then does `(images * 255).round().astype("uint8")`, where numpy's round is
/// round-half-to-even. So the value is rint(255·clamp(x/2 + 0.5, 0, 1)), every step in float32.
/// NaN (which diffusers would turn into an unspecified byte) maps to 0.
@inline(__always)
public func diffusersPixelValue(_ x: Float) -> UInt8 {
    let unit = min(max(x / 2 + 0.5, 0), 1)
    guard !unit.isNaN else { return 0 }
    return UInt8((unit * 255).rounded(.toNearestOrEven))
}

/// Converts N images (float32, N×C×H×W, diffusers' model range [−1, 1]) into one 8-bit grid image,
/// pixel values as `diffusersPixelValue`, tiled as `grid(tiles:)` tiles them. C must be 1 (gray) or 3 (RGB).
public func pixels(images: UnsafeBufferPointer<Float>, count n: Int, channels c: Int, height h: Int, width w: Int,
                   layout: GridLayout = GridLayout()) throws -> PixelGrid {
    try checkImageShape(count: n, channels: c, height: h, width: w, values: images.count)
    let tiles = imagePixels(images, count: n, channels: c, height: h, width: w)
    return try tiles.withUnsafeBufferPointer { try grid(tiles: $0, count: n, channels: c, height: h, width: w, layout: layout) }
}

/// N images (float32, N×C×H×W, model range [−1, 1]) as 8-bit pixels, image by image, each H×W×C
/// (interleaved: what an image library expects), values as `diffusersPixelValue`.
public func imagePixels(_ images: UnsafeBufferPointer<Float>, count n: Int, channels c: Int, height h: Int, width w: Int) -> [UInt8] {
    precondition(images.count == n * c * h * w, "imagePixels: \(images.count) values for \(n)×\(c)×\(h)×\(w)")
    var out = [UInt8](repeating: 0, count: n * h * w * c)
    for image in 0 ..< n {
        for y in 0 ..< h {
            for x in 0 ..< w {
                for ch in 0 ..< c {
                    out[((image * h + y) * w + x) * c + ch] = diffusersPixelValue(images[((image * c + ch) * h + y) * w + x])
                }
            }
        }
    }
    return out
}

/// Tiles N 8-bit images (N×H×W×C, as `imagePixels` gives them) into one grid image: left to right, top to
/// bottom, `layout.columns` per row (default ⌈√N⌉), `layout.gap` pixels apart. C must be 1 (gray) or 3 (RGB).
///
/// Width = cols·W + (cols−1)·gap, height = rows·H + (rows−1)·gap with rows = ⌈N/cols⌉.
public func grid(tiles: UnsafeBufferPointer<UInt8>, count n: Int, channels c: Int, height h: Int, width w: Int,
                 layout: GridLayout = GridLayout()) throws -> PixelGrid {
    try checkImageShape(count: n, channels: c, height: h, width: w, values: tiles.count)
    guard layout.gap >= 0 else { throw EdgeError("grid gap must not be negative, got \(layout.gap)") }
    let columns = layout.columns ?? smallestSquareSide(n)
    guard columns >= 1 else { throw EdgeError("grid columns must be at least 1, got \(columns)") }
    let cols = min(columns, n)
    let rows = (n + cols - 1) / cols
    let width = cols * w + (cols - 1) * layout.gap
    let height = rows * h + (rows - 1) * layout.gap
    var out = [UInt8](repeating: layout.gapValue, count: width * height * c)
    for image in 0..<n {
        let x0 = (image % cols) * (w + layout.gap)
        let y0 = (image / cols) * (h + layout.gap)
        for y in 0..<h {
            let o = ((y0 + y) * width + x0) * c, i = (image * h + y) * w * c
            for k in 0 ..< w * c { out[o + k] = tiles[i + k] }
        }
    }
    return PixelGrid(width: width, height: height, channels: c, pixels: out)
}

/// The checks every image entry point makes: 1 or 3 channels, a non-empty batch, and N×C×H×W values
/// (with overflow refused, since the sizes may come from a C caller).
private func checkImageShape(count n: Int, channels c: Int, height h: Int, width w: Int, values: Int) throws {
    guard c == 1 || c == 3 else { throw EdgeError("images must have 1 (gray) or 3 (RGB) channels, got \(c)") }
    guard n >= 1, h >= 1, w >= 1 else { throw EdgeError("image batch must not be empty (N=\(n), H=\(h), W=\(w))") }
    let (nc, o1) = n.multipliedReportingOverflow(by: c), (nch, o2) = nc.multipliedReportingOverflow(by: h)
    let (needed, o3) = nch.multipliedReportingOverflow(by: w)
    guard !o1, !o2, !o3, values == needed else {
        throw EdgeError("image buffer holds \(values) values, N×C×H×W = \(n)×\(c)×\(h)×\(w) needs \(o1 || o2 || o3 ? "more than Int.max" : String(needed))")
    }
}

/// `pixels` for an array.
public func pixels(images: [Float], count n: Int, channels c: Int, height h: Int, width w: Int,
                   layout: GridLayout = GridLayout()) throws -> PixelGrid {
    try images.withUnsafeBufferPointer {
        try pixels(images: $0, count: n, channels: c, height: h, width: w, layout: layout)
    }
}

/// ⌈√n⌉ in integers (no floating-point square root to round the wrong way).
private func smallestSquareSide(_ n: Int) -> Int {
    var side = 1
    while side * side < n { side += 1 }
    return side
}

/// PNG (ISO/IEC 15948) for 8-bit gray, gray+alpha, RGB and RGBA, non-interlaced.
public enum PNG {
    static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    /// A complete PNG file. Each row gets the filter (None, Sub, Up, Average, Paeth) with the smallest sum of
    /// |byte as signed|, the usual heuristic from the PNG specification; the image data is one zlib stream.
    public static func encode(_ grid: PixelGrid, compression: Zlib.Compression = .fixedHuffman) -> [UInt8] {
        let colorType: UInt8 = [0, 4, 2, 6][grid.channels - 1]
        var ihdr: [UInt8] = []
        appendBigEndian(UInt32(grid.width), to: &ihdr)
        appendBigEndian(UInt32(grid.height), to: &ihdr)
        ihdr += [8, colorType, 0, 0, 0]  // bit depth 8, type, deflate, adaptive filtering, no interlace
        var out = signature
        appendChunk("IHDR", ihdr, to: &out)
        appendChunk("IDAT", Zlib.compress(filterRows(grid), compression), to: &out)
        appendChunk("IEND", [], to: &out)
        return out
    }

    /// Writes `grid` as a PNG file, atomically (temporary file in the same folder, then rename).
    public static func write(_ grid: PixelGrid, to path: String, compression: Zlib.Compression = .fixedHuffman) throws {
        try writeFileAtomically(path, bytes: encode(grid, compression: compression))
    }

    /// Tiles N×C×H×W images (see `pixels`) and writes them as one PNG.
    public static func write(images: UnsafeBufferPointer<Float>, count n: Int, channels c: Int, height h: Int, width w: Int,
                             to path: String, layout: GridLayout = GridLayout()) throws {
        try write(pixels(images: images, count: n, channels: c, height: h, width: w, layout: layout), to: path)
    }

    /// Reads and decodes a PNG file.
    public static func read(path: String) throws -> PixelGrid {
        try decode(readWholeFile(path), context: path)
    }

    /// Decodes an 8-bit, non-interlaced gray / gray+alpha / RGB / RGBA PNG: every chunk's CRC is checked,
    /// ancillary chunks are skipped, IDAT chunks are concatenated and inflated (stored, fixed and dynamic
    /// Huffman), and the five scanline filters are undone. Throws a one-line error for anything else
    /// (16-bit or < 8-bit samples, palettes, interlacing, bad CRC, truncation, bad zlib data).
    public static func decode(_ bytes: [UInt8], context: String = "PNG") throws -> PixelGrid {
        guard bytes.count >= 8 else { throw EdgeError("\(context): truncated (\(bytes.count) bytes, no PNG signature)") }
        guard Array(bytes[0..<8]) == signature else { throw EdgeError("\(context): not a PNG file (bad signature)") }
        var position = 8
        var header: (width: Int, height: Int, channels: Int)? = nil
        var compressed: [UInt8] = []
        var sawEnd = false
        while !sawEnd {
            guard position + 8 <= bytes.count else { throw EdgeError("\(context): truncated (chunk header at byte \(position), no IEND)") }
            let length = Int(readBigEndian(bytes, position))
            let typeBytes = Array(bytes[position + 4..<position + 8])
            let type = String(decoding: typeBytes, as: UTF8.self)
            guard length <= 0x7FFF_FFFF else { throw EdgeError("\(context): chunk \(type) has invalid length \(length)") }
            guard position + 12 + length <= bytes.count else {
                throw EdgeError("\(context): truncated (chunk \(type) needs \(length) bytes at byte \(position + 8))")
            }
            let data = bytes[position + 8..<position + 8 + length]
            let stored = readBigEndian(bytes, position + 8 + length)
            let computed = CRC32().updated(with: typeBytes).updated(with: data).value
            guard stored == computed else {
                throw EdgeError("\(context): CRC mismatch in chunk \(type) (stored 0x\(String(stored, radix: 16)), computed 0x\(String(computed, radix: 16)))")
            }
            position += 12 + length
            switch type {
            case "IHDR":
                guard header == nil, length == 13 else { throw EdgeError("\(context): malformed or repeated IHDR") }
                header = try parseHeader(Array(data), context: context)
            case "IDAT":
                guard header != nil else { throw EdgeError("\(context): IDAT before IHDR") }
                compressed += data
            case "IEND":
                sawEnd = true
            case "PLTE":
                break  // a suggested palette for truecolour images: irrelevant here (palette images are refused)
            default:
                // Bit 5 of the first letter clear (uppercase) marks a chunk a decoder must understand.
                guard typeBytes[0] & 0x20 != 0 else { throw EdgeError("\(context): unsupported critical chunk \(type)") }
            }
        }
        guard let (width, height, channels) = header else { throw EdgeError("\(context): no IHDR chunk") }
        guard !compressed.isEmpty else { throw EdgeError("\(context): no image data (IDAT)") }
        let stride = width * channels
        let expected = height * (1 + stride)
        let raw = try Zlib.decompress(compressed, limit: expected, context: "\(context): image data")
        guard raw.count == expected else {
            throw EdgeError("\(context): image data has \(raw.count) bytes, \(width)×\(height)×\(channels) needs \(expected)")
        }
        return PixelGrid(width: width, height: height, channels: channels,
                         pixels: try unfilter(raw, height: height, stride: stride, bytesPerPixel: channels, context: context))
    }

    private static func parseHeader(_ d: [UInt8], context: String) throws -> (Int, Int, Int) {
        let width = Int(readBigEndian(d, 0)), height = Int(readBigEndian(d, 4))
        let depth = d[8], colorType = d[9]
        guard width >= 1, height >= 1, width <= 1 << 24, height <= 1 << 24, width * height <= 1 << 28 else {
            throw EdgeError("\(context): unsupported image size \(width)×\(height)")
        }
        guard colorType != 3 else { throw EdgeError("\(context): palette (indexed-colour) PNGs are not supported") }
        guard let channels = [0: 1, 4: 2, 2: 3, 6: 4][colorType] else {
            throw EdgeError("\(context): invalid PNG colour type \(colorType)")
        }
        guard depth == 8 else {
            throw EdgeError("\(context): \(depth)-bit samples are not supported (only 8-bit)")
        }
        guard d[10] == 0, d[11] == 0 else { throw EdgeError("\(context): unknown compression or filter method") }
        guard d[12] == 0 else { throw EdgeError("\(context): interlaced (Adam7) PNGs are not supported") }
        return (width, height, channels)
    }

    /// Undoes the per-row filters in place. With a = byte to the left, b = above, c = above-left (0 outside):
    /// None: x; Sub: x + a; Up: x + b; Average: x + ⌊(a + b)/2⌋; Paeth: x + the one of a, b, c nearest to
    /// a + b − c (ties prefer a, then b); all mod 256.
    static func unfilter(_ raw: [UInt8], height: Int, stride: Int, bytesPerPixel bpp: Int, context: String) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: height * stride)
        for y in 0..<height {
            let filter = raw[y * (stride + 1)]
            let src = y * (stride + 1) + 1
            let row = y * stride
            let above = row - stride
            for i in 0..<stride {
                let x = raw[src + i]
                let a: UInt8 = i >= bpp ? out[row + i - bpp] : 0
                let b: UInt8 = y > 0 ? out[above + i] : 0
                let c: UInt8 = (i >= bpp && y > 0) ? out[above + i - bpp] : 0
                switch filter {
                case 0: out[row + i] = x
                case 1: out[row + i] = x &+ a
                case 2: out[row + i] = x &+ b
                case 3: out[row + i] = x &+ UInt8((Int(a) + Int(b)) / 2)
                case 4: out[row + i] = x &+ paeth(a, b, c)
                default: throw EdgeError("\(context): invalid filter type \(filter) on row \(y)")
                }
            }
        }
        return out
    }

    @inline(__always)
    static func paeth(_ a: UInt8, _ b: UInt8, _ c: UInt8) -> UInt8 {
        let p = Int(a) + Int(b) - Int(c)
        let pa = abs(p - Int(a)), pb = abs(p - Int(b)), pc = abs(p - Int(c))
        if pa <= pb && pa <= pc { return a }
        return pb <= pc ? b : c
    }

    /// Filtered scanlines: a filter-type byte then the filtered row, for each row.
    static func filterRows(_ grid: PixelGrid) -> [UInt8] {
        let bpp = grid.channels
        let stride = grid.width * bpp
        var out = [UInt8]()
        out.reserveCapacity(grid.height * (stride + 1))
        var candidate = [UInt8](repeating: 0, count: stride)
        var best = [UInt8](repeating: 0, count: stride)
        let p = grid.pixels
        for y in 0..<grid.height {
            let row = y * stride
            var bestCost = Int.max
            var bestFilter: UInt8 = 0
            for filter in UInt8(0)...4 {
                var cost = 0
                for i in 0..<stride {
                    let x = p[row + i]
                    let a: UInt8 = i >= bpp ? p[row + i - bpp] : 0
                    let b: UInt8 = y > 0 ? p[row - stride + i] : 0
                    let c: UInt8 = (i >= bpp && y > 0) ? p[row - stride + i - bpp] : 0
                    let v: UInt8
                    switch filter {
                    case 0: v = x
                    case 1: v = x &- a
                    case 2: v = x &- b
                    case 3: v = x &- UInt8((Int(a) + Int(b)) / 2)
                    default: v = x &- paeth(a, b, c)
                    }
                    candidate[i] = v
                    cost += abs(Int(Int8(bitPattern: v)))
                }
                if cost < bestCost {
                    bestCost = cost
                    bestFilter = filter
                    swap(&candidate, &best)
                }
            }
            out.append(bestFilter)
            out += best
        }
        return out
    }

    private static func appendChunk(_ type: String, _ data: [UInt8], to out: inout [UInt8]) {
        let typeBytes = Array(type.utf8)
        appendBigEndian(UInt32(data.count), to: &out)
        out += typeBytes
        out += data
        appendBigEndian(CRC32().updated(with: typeBytes).updated(with: data).value, to: &out)
    }

    private static func appendBigEndian(_ v: UInt32, to out: inout [UInt8]) {
        out += [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)]
    }

    private static func readBigEndian(_ bytes: [UInt8], _ at: Int) -> UInt32 {
        UInt32(bytes[at]) << 24 | UInt32(bytes[at + 1]) << 16 | UInt32(bytes[at + 2]) << 8 | UInt32(bytes[at + 3])
    }
}
