// libFuzzer target: the C API (edgeddim.h) as a C caller can misuse it. An input is a 16-byte header of options
// (below), a prompt, then a model file, which is opened by path (a file in /dev/shm) as a C caller would open
// it. With an open model: the output size for the options, a generation with a raised cancel
// token (which validates the options, checks the memory, loads and lowers the whole network, and stops before
// the first UNet evaluation), closing twice; and optionally a PNG of the input's own bytes.
//
// Header: [0] steps  [1] count + 1  [2] sampler (0: NULL, 1-7: the names, 8: the prompt's bytes as a name)
// [3] eta·200  [4] threads + 1 (mod 4)  [5] batch + 1 (mod 6)  [6] size / 8  [7] flags: 1 prompt, 2 negative
// prompt, 4 wrong struct_size, 8 generate, 16 write a PNG  [8-11] seed  [12] guidance·10  [13] prompt length
// [14] PNG width − 1 (mod 8)  [15] PNG height − 1 (mod 8), and its channels: 1 if even, 3 if odd.
import Glibc
import CEdgeDDIM

private let samplerNames = ["ddim", "dpmpp-2m", "dpmpp-2m-sde", "unipc", "pndm", "euler", "euler-a"]
private let ok = Int32(EDGEDDIM_OK), closedHandle = Int32(EDGEDDIM_ERROR_CLOSED_HANDLE)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCAPI(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size >= 16 else { return 0 }
    let h = UnsafeBufferPointer(start: data, count: 16)
    let promptLength = min(Int(h[13]), size - 16)
    // The prompt as a NUL-terminated C string (its own bytes may hold NULs or invalid UTF-8: both are inputs).
    var prompt = [CChar](repeating: 0, count: promptLength + 1)
    for i in 0 ..< promptLength { prompt[i] = CChar(bitPattern: data[16 + i]) }
    let model = UnsafeRawBufferPointer(start: data + 16 + promptLength, count: size - 16 - promptLength)

    if h[7] & 16 != 0 { writePNG(h, data: UnsafeBufferPointer(start: data, count: size)) }

    // In /dev/shm (memory): Swift's Glibc module does not declare memfd_create.
    let path = "/dev/shm/edgeddim-fuzz-\(getpid()).edm"
    let fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0o600)
    guard fd >= 0 else { fatalError("cannot create \(path)") }
    defer { close(fd); unlink(path) }
    var written = 0
    while written < model.count {
        let n = write(fd, model.baseAddress! + written, model.count - written)
        guard n > 0 else { fatalError("write to the memfd failed") }
        written += n
    }
    var handle: OpaquePointer? = nil
    guard edgeddim_model_open(path, &handle) == ok else {
        precondition(handle == nil && strlen(edgeddim_last_error()) > 0, "a failed open must leave no handle and a message")
        return 0
    }
    var options = edgeddim_options()
    edgeddim_options_init(&options)
    options.steps = Int32(h[0])
    options.count = Int32(h[1]) - 1
    options.eta = Float(h[3]) / 200
    options.threads = Int32(h[4] % 4) - 1
    options.batch = Int32(h[5] % 6) - 1
    options.size = Int32(h[6]) * 8
    if h[7] & 4 != 0 { options.struct_size -= 8 }
    options.seed = UInt64(h[8]) | UInt64(h[9]) << 8 | UInt64(h[10]) << 16 | UInt64(h[11]) << 24
    options.guidance = Float(h[12]) / 10
    let choice = Int(h[2] % 9)
    samplerNames.withUnsafeCStrings { names in
        prompt.withUnsafeBufferPointer { text in
            options.sampler = choice == 0 ? nil : choice <= samplerNames.count ? names[choice - 1] : text.baseAddress
            if h[7] & 1 != 0 { options.prompt = text.baseAddress }
            if h[7] & 2 != 0 { options.negative_prompt = text.baseAddress }
            run(handle!, &options, generate: h[7] & 8 != 0)
        }
    }
    precondition(edgeddim_model_close(handle) == ok)
    precondition(edgeddim_model_close(handle) == closedHandle, "a closed handle must be refused")
    return 0
}

private func run(_ model: OpaquePointer, _ options: inout edgeddim_options, generate: Bool) {
    var bytes = 0, channels: Int32 = 0, height: Int32 = 0, width: Int32 = 0
    let status = edgeddim_output_size(model, &options, &bytes, &channels, &height, &width)
    guard status == ok else {
        precondition(strlen(edgeddim_last_error()) > 0, "status \(status) without a message")
        return
    }
    precondition(bytes == Int(options.count) * Int(channels) * Int(height) * Int(width))
    guard generate, bytes <= 1 << 20 else { return }
    var token: OpaquePointer? = nil
    precondition(edgeddim_cancel_new(&token) == ok && edgeddim_cancel_request(token) == ok)
    defer { precondition(edgeddim_cancel_free(token) == ok) }
    options.cancel = token
    let pixels = UnsafeMutablePointer<UInt8>.allocate(capacity: bytes)
    defer { pixels.deallocate() }
    let result = edgeddim_generate(model, &options, pixels, bytes)
    precondition(result != ok, "a raised token must stop the run before it produces anything")
    precondition(strlen(edgeddim_last_error()) > 0)
}

/// edgeddim_write_png of up to 8×8 pixels of the input itself, to a file in /dev/shm.
private func writePNG(_ h: UnsafeBufferPointer<UInt8>, data: UnsafeBufferPointer<UInt8>) {
    let width = Int32(h[14] % 8) + 1, height = Int32(h[15] % 8) + 1, channels: Int32 = h[15] & 1 == 0 ? 1 : 3
    var count = Int32(max(1, data.count / Int(width * height * channels)))
    count = min(count, 4)
    guard Int(count * width * height * channels) <= data.count else { return }
    let path = "/dev/shm/edgeddim-fuzz-\(getpid()).png"
    precondition(edgeddim_write_png(path, data.baseAddress, count, channels, height, width) == ok, String(cString: edgeddim_last_error()))
    unlink(path)
}

extension Array where Element == String {
    /// The strings as C strings for the closure's duration.
    func withUnsafeCStrings<R>(_ body: ([UnsafePointer<CChar>]) -> R) -> R {
        let copies = map { strdup($0)! }
        defer { copies.forEach { free($0) } }
        return body(copies.map { UnsafePointer($0) })
    }
}
