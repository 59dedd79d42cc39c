import Foundation
import XCTest
import AllocationCounter
import _EdgeCore
import _EdgeQuant
import _EdgeKernels
import EdgeConvert
import EdgeModelFile

/// Where the committed fixtures live: Tests/Fixtures, next to this folder.
let fixturesRoot: String = {
    let file = "\(#filePath)"
    let testsFolder = file.split(separator: "/", omittingEmptySubsequences: false).dropLast(2).joined(separator: "/")
    return testsFolder + "/Fixtures"
}()

/// The repository root (for models/ and tools/).
let repositoryRoot: String = {
    String(fixturesRoot.split(separator: "/", omittingEmptySubsequences: false).dropLast(2).joined(separator: "/"))
}()

/// The two real checkpoints are too large to commit twice; tests read them from the team's shared folder
/// (`../shared/models` beside the clone, as CI lays it out) or from EDGE_DDIM_SHARED_MODELS.
/// Tests that need them are skipped, saying why, when neither exists; `.ci/run` checks it exists.
func sharedCheckpoint(_ name: String) throws -> String {
    let base = ProcessInfo.processInfo.environment["EDGE_DDIM_SHARED_MODELS"] ?? repositoryRoot + "/../shared/models"
    let folder = base + "/" + name
    guard isDirectory(folder) else {
        if ProcessInfo.processInfo.environment["EDGE_DDIM_REQUIRE_CHECKPOINTS"] == "1" {
            throw EdgeError("reference checkpoint \(folder) is missing and EDGE_DDIM_REQUIRE_CHECKPOINTS=1")
        }
        throw XCTSkip("reference checkpoint \(folder) is not present (set EDGE_DDIM_SHARED_MODELS)")
    }
    return folder
}

/// A fresh empty folder under /tmp, removed by the caller's `defer`.
func temporaryFolder() -> String {
    var template = Array("/tmp/edge-ddim-test-XXXXXX".utf8CString)
    // The path must be read while the template's storage is alive: mkdtemp returns a pointer into it.
    return template.withUnsafeMutableBufferPointer { buffer -> String in
        guard let path = mkdtemp(buffer.baseAddress!) else { preconditionFailure("mkdtemp failed") }
        return String(cString: path)
    }
}

func removeFolder(_ path: String) {
    try? FileManager.default.removeItem(atPath: path)
}

/// Converts a diffusers folder and opens the result, as a user would with `convert` then `edge-ddim`.
func convertedModel(_ folder: String, weights: WeightType, into temp: String) throws -> ModelFile {
    let path = temp + "/model-\(weights).edm"
    try Converter.convert(folder: folder, output: path, weights: weights)
    return try ModelFile(path: path)
}

/// Tensors of a fixture's io.safetensors as fp32 arrays.
struct FixtureIO {
    let file: SafetensorsFile
    init(_ path: String) throws { file = try SafetensorsFile(path: path) }
    func tensor(_ name: String) throws -> (shape: [Int], values: [Float]) {
        guard let t = file.tensor(name) else { throw EdgeError("fixture \(file.path) has no tensor \(name)") }
        return (t.shape, try file.floats(t))
    }
    var metadata: [String: String] { file.metadata }
}

/// Each of `batch` [rows, columns] matrices transposed (`transposeRef` image by image): [N, T, C] ↔ [N, C, T].
func transposedImages(_ x: some Collection<Float>, batch: Int, rows: Int, columns: Int) -> [Float] {
    let source = Array(x)
    precondition(source.count == batch * rows * columns, "transposedImages: \(source.count) values for \(batch) × \(rows) × \(columns)")
    var out = [Float](repeating: 0, count: source.count)
    source.withUnsafeBufferPointer { s in
        out.withUnsafeMutableBufferPointer { o in
            for n in 0 ..< batch {
                transposeRef(s.baseAddress! + n * rows * columns, rows: rows, columns: columns, into: o.baseAddress! + n * rows * columns)
            }
        }
    }
    return out
}

func maxAbsDifference(_ a: UnsafeBufferPointer<Float>, _ b: [Float]) -> Float {
    precondition(a.count == b.count, "sizes differ: \(a.count) vs \(b.count)")
    var m: Float = 0
    for i in 0 ..< b.count { m = max(m, abs(a[i] - b[i])) }
    return m.isNaN ? .infinity : m
}

func maxAbsDifference(_ a: [Float], _ b: [Float]) -> Float {
    a.withUnsafeBufferPointer { maxAbsDifference($0, b) }
}

/// ‖a − b‖ / ‖b‖.
func relativeL2(_ a: [Float], _ b: [Float]) -> Double {
    precondition(a.count == b.count)
    var num = 0.0, den = 0.0
    for i in 0 ..< a.count { let d = Double(a[i]) - Double(b[i]); num += d * d; den += Double(b[i]) * Double(b[i]) }
    return (num / den).squareRoot()
}

/// A deterministic pseudo-random stream for test inputs (SplitMix64): the same numbers on every run.
struct TestRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    mutating func float() -> Float { Float(next() >> 40) / Float(1 << 23) - 1 }
    mutating func floats(_ n: Int) -> [Float] { (0 ..< n).map { _ in float() } }
    mutating func int(_ range: ClosedRange<Int>) -> Int { range.lowerBound + Int(next() % UInt64(range.count)) }
}


/// Heap allocations made while `body` runs, the fewest over `attempts` runs. The counter is process-wide, so a
/// background thread of the test process (Foundation reaping a child process an earlier test spawned, XCTest's
/// own) can allocate during any one run — seen once under AddressSanitizer, where the whole suite shares one
/// long process. Code that allocates on every call shows up in every attempt, so the minimum still catches it.
func fewestAllocations(attempts: Int = 3, _ body: () throws -> Void) rethrows -> UInt64 {
    var fewest = UInt64.max
    for _ in 0 ..< attempts {
        let before = edge_test_allocation_count()
        try body()
        fewest = min(fewest, edge_test_allocation_count() - before)
    }
    return fewest
}

struct ToolOutcome { let status: Int32; let stdout: String; let stderr: String }

/// Runs a built command-line tool (they sit beside the test bundle) to completion.
func runTool(_ tool: String, _ arguments: [String], in folder: String, shell: String? = nil) throws -> ToolOutcome {
    let products = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
    let process = Process()
    if let shell {
        // `sh -c SCRIPT TOOL ARGS...`: the script ends in `exec "$0" "$@"`.
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", shell, products + "/" + tool] + arguments
    } else {
        process.executableURL = URL(fileURLWithPath: products + "/" + tool)
        process.arguments = arguments
    }
    process.currentDirectoryURL = URL(fileURLWithPath: folder)
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let stdout = out.fileHandleForReading.readDataToEndOfFile(), stderr = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return ToolOutcome(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self), stderr: String(decoding: stderr, as: UTF8.self))
}

/// Which sanitizer this test process was built with: tools/sanitize.sh says so in $EDGE_DDIM_SANITIZER, and
/// AddressSanitizer's runtime is also found by its exported entry point (ThreadSanitizer's exports none).
enum TestSanitizer { case none, address, thread }

func testSanitizer() -> TestSanitizer {
    switch ProcessInfo.processInfo.environment["EDGE_DDIM_SANITIZER"] {
    case "address": return .address
    case "thread": return .thread
    default: break
    }
    if dlsym(UnsafeMutableRawPointer(bitPattern: 0), "__asan_init") != nil { return .address }
    if dlsym(UnsafeMutableRawPointer(bitPattern: 0), "__tsan_init") != nil { return .thread }
    return .none
}

/// The flags a C program linked to this build's libedgeddim.so needs, or nil when it cannot link one here.
/// Under tools/sanitize.sh the library is instrumented and calls into the sanitizer's runtime: AddressSanitizer's
/// links with -fsanitize=address; ThreadSanitizer's (the Swift toolchain's) also wants libdispatch and the
/// blocks runtime, so the C examples are left to the plain and AddressSanitizer runs.
func cFlagsForThisBuild() -> [String]? {
    switch testSanitizer() {
    case .none: []
    case .address: ["-fsanitize=address"]
    case .thread: nil
    }
}

/// A C compiler in PATH (clang, else cc) that builds for this process's architecture, or nil. Under the aarch64
/// CI run the tests are an emulated aarch64 process in an x86-64 chroot, whose compilers build x86-64 programs.
func nativeCCompiler() -> String? {
    #if arch(arm64)
    let arch = "aarch64"
    #else
    let arch = "x86_64"
    #endif
    for name in ["clang", "cc"] {
        for folder in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let path = "\(folder)/\(name)"
            guard FileManager.default.isExecutableFile(atPath: path),
                  let machine = try? runTool(name, ["-dumpmachine"], in: "/", shell: "exec \(path) \"$@\""),
                  machine.status == 0 else { continue }
            if machine.stdout.hasPrefix(arch) { return path }
        }
    }
    return nil
}
