import Foundation
import XCTest
import CEdgeDDIM

/// The C API (edgeddim.h) as a C caller meets it: the examples in tools/examples against the command's output,
/// every misuse the header names, and a long-running caller's memory.
final class CAPITests: XCTestCase {
    let defaultModel = repositoryRoot + "/models/ddpm-fashion-32.edm"
    var products: String { URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path }

    // MARK: the examples

    /// tools/examples/c/generate.c, compiled against the header and linked to the built libedgeddim.so, and
    /// tools/examples/python/generate.py through ctypes, write the PNG `edge-ddim --seed 3 --count 2` writes.
    func testExamplesWriteTheCommandsPNG() throws {
        guard let cc = nativeCCompiler() else { throw XCTSkip("no C compiler in PATH builds for this process's architecture") }
        guard let cFlags = cFlagsForThisBuild() else { throw XCTSkip("a C program cannot link this ThreadSanitizer build's libedgeddim.so") }
        let library = products + "/libedgeddim.so"
        guard FileManager.default.fileExists(atPath: library) else { throw XCTSkip("\(library) was not built") }
        let temp = temporaryFolder()
        defer { removeFolder(temp) }
        let command = try runTool("edge-ddim", ["--model", defaultModel, "--seed", "3", "--count", "2", "--output", temp + "/command.png", "--quiet"], in: temp)
        XCTAssertEqual(command.status, 0, command.stderr)
        let expected = try XCTUnwrap(FileManager.default.contents(atPath: temp + "/command.png"))

        let build = try runTool("cc", cFlags + ["-std=c11", "-Wall", "-Wextra", "-Werror", "-I", repositoryRoot + "/Sources/CEdgeDDIM/include",
                                       repositoryRoot + "/tools/examples/c/generate.c", "-L", products, "-ledgeddim",
                                       "-Wl,-rpath," + products, "-o", temp + "/generate"], in: temp, shell: "exec \(cc) \"$@\"")
        XCTAssertEqual(build.status, 0, build.stderr)
        let c = try runTool("generate", [defaultModel, temp + "/c.png", "3", "2"], in: temp, shell: "exec \(temp)/generate \"$@\"")
        XCTAssertEqual(c.status, 0, c.stderr)
        XCTAssertTrue(c.stderr.contains("step 10/10"), c.stderr)
        XCTAssertEqual(FileManager.default.contents(atPath: temp + "/c.png"), expected, "the C example's PNG differs from the command's")

        guard let python = executableInPath("python3") else { throw XCTSkip("python3 is not present; the C example passed") }
        guard testSanitizer() == .none else { throw XCTSkip("a sanitized libedgeddim.so needs its runtime preloaded into Python; the C example passed") }
        let py = try runTool("python3", [repositoryRoot + "/tools/examples/python/generate.py", "--library", library, "--model", defaultModel,
                                         "--seed", "3", "--count", "2", "--output", temp + "/python.png"], in: temp, shell: "exec \(python) \"$@\"")
        XCTAssertEqual(py.status, 0, py.stderr)
        XCTAssertEqual(FileManager.default.contents(atPath: temp + "/python.png"), expected, "the ctypes example's PNG differs from the command's")
    }

    // MARK: misuse: an error code and a one-line message, never a crash

    func testNullArguments() throws {
        var model: OpaquePointer? = nil
        expect(edgeddim_model_open(nil, &model), EDGEDDIM_ERROR_INVALID_ARGUMENT, mentions: "path is NULL")
        XCTAssertNil(model)
        expect(edgeddim_model_open(defaultModel, nil), EDGEDDIM_ERROR_INVALID_ARGUMENT, mentions: "NULL")
        expect(edgeddim_model_close(nil), EDGEDDIM_ERROR_INVALID_ARGUMENT, mentions: "model is NULL")
        var options = defaultOptions()
        var pixels = [UInt8](repeating: 0, count: 4096)
        expect(edgeddim_generate(nil, &options, &pixels, pixels.count), EDGEDDIM_ERROR_INVALID_ARGUMENT, mentions: "model is NULL")
        expect(edgeddim_output_size(nil, &options, nil, nil, nil, nil), EDGEDDIM_ERROR_INVALID_ARGUMENT, mentions: "model is NULL")
        let m = try open(defaultModel)
        defer { XCTAssertEqual(edgeddim_model_close(m), Int32(EDGEDDIM_OK)) }
        expect(edgeddim_generate(m, nil, &pixels, pixels.count), EDGEDDIM_ERROR_INVALID_ARGUMENT, mentions: "options is NULL")
        expect(edgeddim_generate(m, &options, nil, 4096), EDGEDDIM_ERROR_INVALID_ARGUMENT, mentions: "pixels is NULL")
        expect(edgeddim_write_png(nil, pixels, 1, 1, 32, 32), EDGEDDIM_ERROR_INVALID_ARGUMENT, mentions: "path is NULL")
        expect(edgeddim_write_png("x.png", nil, 1, 1, 32, 32), EDGEDDIM_ERROR_INVALID_ARGUMENT, mentions: "pixels is NULL")
        expect(edgeddim_cancel_new(nil), EDGEDDIM_ERROR_INVALID_ARGUMENT, mentions: "NULL")
        expect(edgeddim_cancel_request(nil), EDGEDDIM_ERROR_INVALID_ARGUMENT, mentions: "cancel is NULL")
        expect(edgeddim_cancel_free(nil), EDGEDDIM_ERROR_INVALID_ARGUMENT, mentions: "cancel is NULL")
        edgeddim_options_init(nil)  // documented as doing nothing
    }

    func testBufferTooSmallWritesNothing() throws {
        let m = try open(defaultModel)
        defer { edgeddim_model_close(m) }
        var options = defaultOptions()
        options.count = 2
        var bytes = 0, channels: Int32 = 0, height: Int32 = 0, width: Int32 = 0
        XCTAssertEqual(edgeddim_output_size(m, &options, &bytes, &channels, &height, &width), Int32(EDGEDDIM_OK))
        XCTAssertEqual([bytes, Int(channels), Int(height), Int(width)], [2 * 32 * 32, 1, 32, 32])
        var pixels = [UInt8](repeating: 7, count: bytes)
        expect(edgeddim_generate(m, &options, &pixels, bytes - 1), EDGEDDIM_ERROR_BUFFER_TOO_SMALL, mentions: "need 2048")
        XCTAssertEqual(pixels, [UInt8](repeating: 7, count: bytes))
    }

    func testClosedAndMadeUpHandles() throws {
        let m = try open(defaultModel)
        XCTAssertEqual(edgeddim_model_close(m), Int32(EDGEDDIM_OK))
        var options = defaultOptions()
        var pixels = [UInt8](repeating: 0, count: 1024)
        expect(edgeddim_generate(m, &options, &pixels, pixels.count), EDGEDDIM_ERROR_CLOSED_HANDLE, mentions: "not an open model")
        expect(edgeddim_output_size(m, &options, nil, nil, nil, nil), EDGEDDIM_ERROR_CLOSED_HANDLE, mentions: "not an open model")
        expect(edgeddim_model_close(m), EDGEDDIM_ERROR_CLOSED_HANDLE, mentions: "closed already")
        // Never a dereference: an address that was never a handle is a failed lookup too.
        let madeUp = OpaquePointer(bitPattern: 0xDEAD_BEEF)!
        expect(edgeddim_model_close(madeUp), EDGEDDIM_ERROR_CLOSED_HANDLE, mentions: "not an open model")
        var token: OpaquePointer? = nil
        XCTAssertEqual(edgeddim_cancel_new(&token), Int32(EDGEDDIM_OK))
        // A token is not a model, nor a model a token.
        expect(edgeddim_model_close(token), EDGEDDIM_ERROR_CLOSED_HANDLE, mentions: "not an open model")
        XCTAssertEqual(edgeddim_cancel_free(token), Int32(EDGEDDIM_OK))
        expect(edgeddim_cancel_request(token), EDGEDDIM_ERROR_CLOSED_HANDLE, mentions: "freed already")
        expect(edgeddim_cancel_free(token), EDGEDDIM_ERROR_CLOSED_HANDLE, mentions: "freed already")
    }

    func testBadModelPaths() throws {
        let temp = temporaryFolder()
        defer { removeFolder(temp) }
        var model: OpaquePointer? = nil
        expect(edgeddim_model_open(temp + "/missing.edm", &model), EDGEDDIM_ERROR_MODEL, mentions: "not found")
        XCTAssertNil(model)
        _ = FileManager.default.createFile(atPath: temp + "/text.edm", contents: Data("not a model at all".utf8))
        expect(edgeddim_model_open(temp + "/text.edm", &model), EDGEDDIM_ERROR_MODEL, mentions: "text.edm")
        XCTAssertNil(model)
        // A real model cut short: refused at open, not at the first generation.
        let whole = try XCTUnwrap(FileManager.default.contents(atPath: defaultModel))
        _ = FileManager.default.createFile(atPath: temp + "/cut.edm", contents: whole.prefix(whole.count / 2))
        expect(edgeddim_model_open(temp + "/cut.edm", &model), EDGEDDIM_ERROR_MODEL, mentions: "cut.edm")
        XCTAssertNil(model)
        expect(edgeddim_model_open(temp, &model), EDGEDDIM_ERROR_MODEL, mentions: temp)
        let invalidUTF8: [CChar] = [0x6D, CChar(bitPattern: 0xFF), 0x2E, 0]
        expect(edgeddim_model_open(invalidUTF8, &model), EDGEDDIM_ERROR_INVALID_ARGUMENT, mentions: "UTF-8")
    }

    func testBadOptions() throws {
        let m = try open(defaultModel)
        defer { edgeddim_model_close(m) }
        var pixels = [UInt8](repeating: 0, count: 4096)
        func refused(_ change: (inout edgeddim_options) -> Void, _ fragment: String) {
            var o = defaultOptions()
            change(&o)
            expect(edgeddim_generate(m, &o, &pixels, pixels.count), EDGEDDIM_ERROR_INVALID_ARGUMENT, mentions: fragment)
        }
        refused({ $0.struct_size = 8 }, "struct_size")
        refused({ $0.steps = 0 }, "steps")
        refused({ $0.steps = 1001 }, "steps")
        refused({ $0.count = 0 }, "count")
        refused({ $0.eta = .nan }, "eta")
        refused({ $0.threads = -1 }, "threads")
        refused({ $0.batch = -2 }, "batch")
        refused({ $0.size = 64 }, "not a text-to-image model")
        "euler-x".withCString { name in refused({ $0.sampler = name }, "unknown sampler 'euler-x'") }
        "a cat".withCString { text in refused({ $0.prompt = text }, "no text encoder") }
    }

    /// A raised token stops the run before its first evaluation; a progress callback's non-zero answer stops it
    /// after that evaluation. Either way nothing is written into the caller's buffer.
    func testCancellingWritesNothing() throws {
        let m = try open(defaultModel)
        defer { edgeddim_model_close(m) }
        var token: OpaquePointer? = nil
        XCTAssertEqual(edgeddim_cancel_new(&token), Int32(EDGEDDIM_OK))
        defer { edgeddim_cancel_free(token) }
        XCTAssertEqual(edgeddim_cancel_request(token), Int32(EDGEDDIM_OK))
        var options = defaultOptions()
        options.cancel = token
        var pixels = [UInt8](repeating: 9, count: 1024)
        expect(edgeddim_generate(m, &options, &pixels, pixels.count), EDGEDDIM_ERROR_CANCELLED, mentions: "after 0 UNet evaluations")
        XCTAssertEqual(pixels, [UInt8](repeating: 9, count: 1024))

        var calls: Int32 = 0
        options = defaultOptions()
        options.progress = { done, _, user in
            user!.assumingMemoryBound(to: Int32.self).pointee = done
            return 1
        }
        try withUnsafeMutablePointer(to: &calls) { counter in
            options.progress_user_data = UnsafeMutableRawPointer(counter)
            expect(edgeddim_generate(m, &options, &pixels, pixels.count), EDGEDDIM_ERROR_CANCELLED, mentions: "after 1 UNet evaluation;")
            _ = try XCTUnwrap(options.progress_user_data)
        }
        XCTAssertEqual(calls, 1)
        XCTAssertEqual(pixels, [UInt8](repeating: 9, count: 1024))
    }

    func testWritePNGRefusesBadShapesAndPaths() throws {
        let pixels = [UInt8](repeating: 0, count: 64)
        expect(edgeddim_write_png("x.png", pixels, 1, 2, 8, 8), EDGEDDIM_ERROR_INVALID_ARGUMENT, mentions: "channels")
        expect(edgeddim_write_png("x.png", pixels, 0, 1, 8, 8), EDGEDDIM_ERROR_INVALID_ARGUMENT, mentions: "count 0")
        expect(edgeddim_write_png("/nonexistent-folder/x.png", pixels, 1, 1, 8, 8), EDGEDDIM_ERROR_IO, mentions: "nonexistent-folder")
        XCTAssertEqual(edgeddim_api_version(), Int32(EDGEDDIM_API_VERSION))
        XCTAssertTrue(String(cString: edgeddim_version()).hasPrefix("0."))
    }

    // MARK: a long-running caller

    /// One model, 200 generations and one cancelled run in one process: the resident memory is flat (the
    /// 200th call within `rssGrowthLimit` of the 10th) and every image equals the command's in a fresh process.
    func testTwoHundredCallsHoldMemoryFlat() throws {
        // 3 minutes under ThreadSanitizer (against 11 s, or 22 s under AddressSanitizer), where the resident memory,
        // the point of the test, is the sanitizer's; the threads are those every generation test runs.
        guard testSanitizer() != .thread else { throw XCTSkip("resident memory under ThreadSanitizer is its shadow state's") }
        let temp = temporaryFolder()
        defer { removeFolder(temp) }
        let command = try runTool("edge-ddim", ["--model", defaultModel, "--seed", "5", "--count", "1", "--steps", "2",
                                                "--output", temp + "/command.png", "--quiet"], in: temp)
        XCTAssertEqual(command.status, 0, command.stderr)
        let expected = try XCTUnwrap(FileManager.default.contents(atPath: temp + "/command.png"))
        let m = try open(defaultModel)
        defer { edgeddim_model_close(m) }
        var options = defaultOptions()
        options.seed = 5
        options.steps = 2
        var pixels = [UInt8](repeating: 0, count: 32 * 32)
        var token: OpaquePointer? = nil
        XCTAssertEqual(edgeddim_cancel_new(&token), Int32(EDGEDDIM_OK))
        defer { edgeddim_cancel_free(token) }
        var rssAtTenth = 0
        for call in 1 ... 201 {
            if call == 101 {
                // A cancelled run in the middle: it must give everything back too.
                var cancelled = options
                cancelled.cancel = token
                XCTAssertEqual(edgeddim_cancel_request(token), Int32(EDGEDDIM_OK))
                XCTAssertEqual(edgeddim_generate(m, &cancelled, &pixels, pixels.count), Int32(EDGEDDIM_ERROR_CANCELLED))
                continue
            }
            pixels.withUnsafeMutableBytes { _ = $0.initializeMemory(as: UInt8.self, repeating: 0) }
            XCTAssertEqual(edgeddim_generate(m, &options, &pixels, pixels.count), Int32(EDGEDDIM_OK), String(cString: edgeddim_last_error()))
            let png = temp + "/call.png"
            XCTAssertEqual(edgeddim_write_png(png, pixels, 1, 1, 32, 32), Int32(EDGEDDIM_OK))
            XCTAssertEqual(FileManager.default.contents(atPath: png), expected, "call \(call) differs from a fresh process")
            if call == 10 { rssAtTenth = residentBytes() }
        }
        XCTAssertGreaterThan(rssAtTenth, 0, "VmRSS was not readable")
        let growth = residentBytes() - rssAtTenth
        print("CAPITests: resident memory after the 200th generation − after the 10th: \(growth / 1024) KiB")
        // AddressSanitizer holds freed memory in its quarantine (256 MB) and ThreadSanitizer keeps shadow state:
        // their resident memory says nothing about ours.
        if testSanitizer() == .none { XCTAssertLessThanOrEqual(abs(growth), Self.rssGrowthLimit) }
    }

    /// The bar, either way: a leak of even 5.5 KB per call would show as 1 MB over 190 calls, and a
    /// resident set that wanders (glibc's heap keeping or returning freed networks; see `PageMemory`) fails too.
    static let rssGrowthLimit = 1 << 20

    // MARK: helpers

    func defaultOptions() -> edgeddim_options {
        var o = edgeddim_options()
        edgeddim_options_init(&o)
        return o
    }

    func open(_ path: String) throws -> OpaquePointer {
        var model: OpaquePointer? = nil
        XCTAssertEqual(edgeddim_model_open(path, &model), Int32(EDGEDDIM_OK), String(cString: edgeddim_last_error()))
        return try XCTUnwrap(model)
    }

    /// The status is `status` and the thread's last error is one line that contains `fragment`.
    func expect(_ got: edgeddim_status, _ status: Int, mentions fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got, Int32(status), String(cString: edgeddim_last_error()), file: file, line: line)
        let message = String(cString: edgeddim_last_error())
        XCTAssertTrue(message.contains(fragment), "message \"\(message)\" lacks \"\(fragment)\"", file: file, line: line)
        XCTAssertFalse(message.contains("\n"), "message \"\(message)\" spans lines", file: file, line: line)
    }

    /// VmRSS: the resident set now (the peak, VmHWM, cannot show a leak after a larger earlier peak).
    func residentBytes() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kib = Int(line.filter(\.isNumber)) else { return 0 }
        return kib * 1024
    }

    func executableInPath(_ name: String) -> String? {
        for folder in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let candidate = "\(folder)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }
}
