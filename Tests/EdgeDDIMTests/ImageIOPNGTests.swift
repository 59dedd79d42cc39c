import Foundation
import XCTest
import _EdgeCore
import EdgeImageIO

/// PNG encoding and decoding, and the diffusers-compatible float → 8-bit conversion.
final class ImageIOPNGTests: XCTestCase {
    struct Manifest: Decodable {
        struct Case: Decodable {
            let file: String
            let width: Int
            let height: Int
            let channels: Int
            let pixels: [UInt8]
            let how: String
        }
        struct Bad: Decodable {
            let file: String
            let expect: String
        }
        let cases: [Case]
        let bad: [Bad]
    }

    func testDecodesPillowAndReferencePNGs() throws {
        let manifest = try SamplerFixtures.json("png.json", as: Manifest.self)
        XCTAssertEqual(manifest.cases.count, 8)
        for c in manifest.cases {
            let grid = try PNG.read(path: SamplerFixtures.path(c.file))
            XCTAssertEqual(grid, PixelGrid(width: c.width, height: c.height, channels: c.channels, pixels: c.pixels),
                           "\(c.file) (\(c.how))")
        }
    }

    func testRefusesMalformedPNGs() throws {
        let manifest = try SamplerFixtures.json("png.json", as: Manifest.self)
        XCTAssertEqual(manifest.bad.count, 6)
        for b in manifest.bad {
            XCTAssertThrowsError(try PNG.read(path: SamplerFixtures.path(b.file)), b.file) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains(b.expect), "\(b.file): \(text)")
                XCTAssertFalse(text.contains("\n"), "errors are one line")
            }
        }
    }

    func testRoundTrip() throws {
        var state: UInt32 = 12345
        func next() -> UInt8 {
            state = state &* 1_664_525 &+ 1_013_904_223
            return UInt8(state >> 24)
        }
        for channels in 1...4 {
            for (w, h) in [(1, 1), (3, 2), (17, 5), (64, 40)] {
                // Half noise, half smooth ramps, so every filter type gets chosen somewhere.
                let pixels = (0..<(w * h * channels)).map { i in i % 7 < 3 ? next() : UInt8(truncatingIfNeeded: i / channels) }
                let grid = PixelGrid(width: w, height: h, channels: channels, pixels: pixels)
                for mode in [Zlib.Compression.stored, .fixedHuffman] {
                    XCTAssertEqual(try PNG.decode(PNG.encode(grid, compression: mode)), grid, "\(w)×\(h)×\(channels) \(mode)")
                }
            }
        }
    }

    func testEncoderOutputStructure() throws {
        let grid = PixelGrid(width: 3, height: 2, channels: 3, pixels: Array(0..<18))
        let png = PNG.encode(grid)
        XCTAssertEqual(Array(png.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        XCTAssertEqual(Array(png[12..<16]), Array("IHDR".utf8))
        XCTAssertEqual(Array(png[16..<29]), [0, 0, 0, 3, 0, 0, 0, 2, 8, 2, 0, 0, 0])
        XCTAssertEqual(Array(png.suffix(12)), [0, 0, 0, 0, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82])
        // Flipping a data bit is caught by the CRC, truncation by the chunk walk.
        var corrupt = png
        corrupt[40] ^= 0x10
        XCTAssertThrowsError(try PNG.decode(corrupt)) { XCTAssertTrue("\($0)".contains("CRC"), "\($0)") }
        for cut in [7, 20, 33, png.count - 1] {
            XCTAssertThrowsError(try PNG.decode(Array(png.prefix(cut)))) { XCTAssertTrue("\($0)".contains("truncated"), "\($0)") }
        }
    }

    func testPixelValuesFollowDiffusers() {
        // rint(255·clamp(x/2 + 0.5, 0, 1)) with numpy's round-half-to-even.
        XCTAssertEqual(diffusersPixelValue(-1), 0)
        XCTAssertEqual(diffusersPixelValue(-7), 0)
        XCTAssertEqual(diffusersPixelValue(1), 255)
        XCTAssertEqual(diffusersPixelValue(3), 255)
        XCTAssertEqual(diffusersPixelValue(0), 128)  // 127.5 → 128 (even)
        XCTAssertEqual(diffusersPixelValue(.nan), 0)
        // Float32 inputs whose 255·u is exactly k + 0.5 (found with numpy): ties go to the even neighbour.
        XCTAssertEqual(diffusersPixelValue(-0.4000000059604645), 76)  // 76.5
        XCTAssertEqual(diffusersPixelValue(-0.34509798884391785), 84)  // 83.5
        XCTAssertEqual(diffusersPixelValue(0.05490199849009514), 134)  // 134.5
    }

    func testGridLayout() throws {
        // 5 gray 2×2 images, values distinguishing image and pixel: ⌈√5⌉ = 3 columns, 2 rows.
        let n = 5, h = 2, w = 2
        var images = [Float]()
        for i in 0..<n { for p in 0..<(h * w) { images.append(Float(i * 4 + p) / 10 - 1) } }
        let grid = try pixels(images: images, count: n, channels: 1, height: h, width: w,
                              layout: GridLayout(gap: 1, gapValue: 9))
        XCTAssertEqual(grid.width, 3 * 2 + 2)
        XCTAssertEqual(grid.height, 2 * 2 + 1)
        XCTAssertEqual(grid[x: 0, y: 0, channel: 0], diffusersPixelValue(images[0]))
        XCTAssertEqual(grid[x: 1, y: 1, channel: 0], diffusersPixelValue(images[3]))
        XCTAssertEqual(grid[x: 2, y: 0, channel: 0], 9)  // gap column
        XCTAssertEqual(grid[x: 3, y: 0, channel: 0], diffusersPixelValue(images[4]))  // image 1, pixel (0, 0)
        XCTAssertEqual(grid[x: 0, y: 3, channel: 0], diffusersPixelValue(images[12]))  // image 3 starts row 2
        XCTAssertEqual(grid[x: 7, y: 4, channel: 0], 9)  // the unused sixth cell
        XCTAssertEqual(grid[x: 0, y: 2, channel: 0], 9)  // gap row

        let row = try pixels(images: images, count: n, channels: 1, height: h, width: w, layout: GridLayout(columns: 5, gap: 0))
        XCTAssertEqual(row.width, 10)
        XCTAssertEqual(row.height, 2)

        XCTAssertThrowsError(try pixels(images: images, count: n, channels: 2, height: h, width: w))
        XCTAssertThrowsError(try pixels(images: images, count: n + 1, channels: 1, height: h, width: w))
    }

    struct Pipeline: Decodable {
        struct Checkpoint: Decodable {
            struct Run: Decodable {
                let steps: Int
                let eta: Double
                let x0: String
                let image: String
            }
            let shape: [Int]
            let runs: [Run]
            let pil_strip: String
        }
        let checkpoints: [String: Checkpoint]
    }

    /// The pipeline fixtures: Swift's conversion of the final x₀ equals diffusers' float image
    /// (clamp(x/2 + 0.5, 0, 1), bit for bit) and `numpy_to_pil`'s bytes (as Pillow wrote them).
    func testMatchesDiffusersImageOutput() throws {
        let manifest = try SamplerFixtures.json("pipeline/pipeline.json", as: Pipeline.self)
        XCTAssertEqual(manifest.checkpoints.count, 2)
        for (name, ckpt) in manifest.checkpoints {
            let (n, c, h, w) = (ckpt.shape[0], ckpt.shape[1], ckpt.shape[2], ckpt.shape[3])
            for run in ckpt.runs {
                let x0 = try NPY.read(path: SamplerFixtures.path("pipeline/" + run.x0), expectedShape: ckpt.shape)
                let image = try NPY.read(path: SamplerFixtures.path("pipeline/" + run.image), expectedShape: [n, h, w, c])
                for i in 0..<n { for ch in 0..<c { for y in 0..<h { for x in 0..<w {
                    let v = x0[((i * c + ch) * h + y) * w + x]
                    XCTAssertEqual(min(max(v / 2 + 0.5, 0), 1), image[((i * h + y) * w + x) * c + ch], "\(name) \(run.x0)")
                } } } }
                if run.steps == 10 && run.eta == 0 {
                    let strip = try PNG.read(path: SamplerFixtures.path("pipeline/" + ckpt.pil_strip))
                    let mine = try pixels(images: x0, count: n, channels: c, height: h, width: w,
                                          layout: GridLayout(columns: n, gap: 0))
                    XCTAssertEqual(mine, strip, "\(name): pixels differ from diffusers' numpy_to_pil")
                }
            }
        }
    }

    func testWriteIsAtomicAndReportsUnwritablePaths() throws {
        let dir = try SamplerFixtures.temporaryDirectory(self)
        let path = dir + "/grid.png"
        let images = [Float](repeating: 0.25, count: 4 * 3 * 8 * 8)
        try images.withUnsafeBufferPointer {
            try PNG.write(images: $0, count: 4, channels: 3, height: 8, width: 8, to: path)
        }
        let grid = try PNG.read(path: path)
        XCTAssertEqual(grid.width, 2 * 8 + 2)
        XCTAssertEqual(grid.pixels[0], diffusersPixelValue(0.25))
        // Overwrite in place; only the final file remains in the folder, no temporary.
        try PNG.write(PixelGrid(width: 1, height: 1, channels: 1, pixels: [7]), to: path)
        XCTAssertEqual(try PNG.read(path: path).pixels, [7])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["grid.png"])

        for bad in ["/nonexistent-edge-ddim-dir/x.png", dir] {
            XCTAssertThrowsError(try PNG.write(PixelGrid(width: 1, height: 1, channels: 1, pixels: [0]), to: bad)) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains(bad), text)
                XCTAssertFalse(text.contains("\n"), text)
            }
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["grid.png"], "a failed write leaves nothing")
    }
}
