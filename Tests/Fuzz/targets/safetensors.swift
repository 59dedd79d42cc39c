// libFuzzer target: the safetensors reader (header JSON, shapes, offsets) and its fp32 conversion.
import _EdgeCore
import EdgeConvert

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafetensors(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    guard let mapped = try? MappedFile(copying: input, path: "fuzz.safetensors"),
          let file = try? SafetensorsFile(mapped: mapped) else { return 0 }
    // Reading every accepted tensor is what the converter does next: an offset the reader let through
    // that points outside the file shows up here as an AddressSanitizer report.
    for t in file.tensors {
        precondition(file.tensor(t.name) != nil)
        if let values = try? file.floats(t) { precondition(values.count == t.elementCount) }
    }
    return 0
}
