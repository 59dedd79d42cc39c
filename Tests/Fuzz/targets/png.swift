// libFuzzer target: the PNG decoder (chunks, CRCs, zlib/DEFLATE, filters); an accepted image must survive
// an encode and a second decode unchanged.
import _EdgeCore
import EdgeImageIO

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPNG(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let grid = try? PNG.decode(bytes, context: "fuzz.png") else { return 0 }
    guard let again = try? PNG.decode(PNG.encode(grid, compression: .stored)) else {
        fatalError("an accepted \(grid.width)×\(grid.height)×\(grid.channels) image does not round-trip")
    }
    precondition(again == grid)
    return 0
}
