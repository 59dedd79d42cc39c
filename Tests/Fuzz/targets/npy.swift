// libFuzzer target: the .npy reader; an accepted array must survive a write and a second read bit for bit.
import _EdgeCore
import EdgeImageIO

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNPY(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let array = try? NPY.decode(bytes, context: "fuzz.npy") else { return 0 }
    guard let again = try? NPY.decode(try NPY.encode(array.values, shape: array.shape)) else {
        fatalError("an accepted array does not round-trip: shape \(array.shape)")
    }
    precondition(again.shape == array.shape)
    precondition(zip(again.values, array.values).allSatisfy { $0.bitPattern == $1.bitPattern })
    return 0
}
