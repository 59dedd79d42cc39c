import Foundation
import XCTest
import _EdgeCore
import EdgeDDIM
import EdgeImageIO
import EdgeModelFile

/// Interrupted writes and interrupted runs leave nothing behind: no partial output, no temporary file.
final class HardeningInterruptTests: XCTestCase {
    var model: String { repositoryRoot + "/models/ddpm-fashion-32.edm" }

    func contents(_ folder: String) throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: folder).sorted() }

    func testWriterFailingMidwayLeavesNoPartialFile() throws {
        let temp = temporaryFolder()
        defer { removeFolder(temp) }
        struct DiskFull: Error {}
        let chunk = [UInt8](repeating: 7, count: 4096)
        XCTAssertThrowsError(try writeFileAtomically(temp + "/new.bin") { sink in
            try chunk.withUnsafeBytes { try sink($0) }
            try chunk.withUnsafeBytes { try sink($0) }
            throw DiskFull()
        }) { XCTAssertTrue($0 is DiskFull) }
        XCTAssertEqual(try contents(temp), [])

        // Over an existing file: the old contents survive a failed write untouched.
        try writeFileAtomically(temp + "/old.bin", bytes: [1, 2, 3])
        XCTAssertThrowsError(try writeFileAtomically(temp + "/old.bin") { sink in
            try chunk.withUnsafeBytes { try sink($0) }
            throw DiskFull()
        })
        XCTAssertEqual(try readWholeFile(temp + "/old.bin"), [1, 2, 3])
        XCTAssertEqual(try contents(temp), ["old.bin"])
    }

    /// A full disk, simulated with RLIMIT_FSIZE (`ulimit -f`): write(2) fails with EFBIG part way through
    /// the PNG, as it would with ENOSPC, and the command must leave neither the PNG nor its temporary file.
    func testFullDiskDuringOutputLeavesNoPartialFile() throws {
        // ThreadSanitizer's runtime backs its own metadata with files, so under RLIMIT_FSIZE it dies of
        // SIGBUS before edge-ddim runs (seen with tools/sanitize.sh thread). The plain and ASan runs cover this.
        if let me = dlopen(nil, RTLD_NOW), dlsym(me, "__tsan_init") != nil {
            throw XCTSkip("RLIMIT_FSIZE breaks ThreadSanitizer's own runtime")
        }
        let temp = temporaryFolder()
        defer { removeFolder(temp) }
        // SIGXFSZ ignored so the write fails instead of killing the process; 2 blocks is a few KB, less
        // than the 16-image grid.
        let script = "trap '' XFSZ; ulimit -f 2; exec \"$0\" \"$@\""
        let outcome = try runTool("edge-ddim", ["--model", model, "--steps", "1", "--quiet", "--output", "grid.png", "--npy", "x0.npy"],
                                  in: temp, shell: script)
        XCTAssertEqual(outcome.status, 1, outcome.stderr)
        XCTAssertEqual(outcome.stderr.split(separator: "\n").count, 1, outcome.stderr)
        XCTAssertTrue(outcome.stderr.contains("cannot write grid.png"), outcome.stderr)
        XCTAssertEqual(try contents(temp), [])
    }

    func testSignalHandlerOnlySetsAFlag() throws {
        Interruption.reset()
        try Interruption.install()
        XCTAssertNil(Interruption.signal)
        raise(SIGTERM)
        XCTAssertEqual(Interruption.signal, SIGTERM)
        XCTAssertThrowsError(try Interruption.throwIfRequested()) { XCTAssertEqual($0 as? Interrupted, Interrupted(signal: SIGTERM)) }
        Interruption.reset()
        XCTAssertNil(Interruption.signal)
        // SA_RESETHAND put the default action back; leave SIGTERM as the test process found it.
        signal(SIGTERM, SIG_DFL)
    }

    func testPipelineStopsBetweenSteps() throws {
        let file = try ModelFile(path: model)
        var options = SamplingOptions()
        options.count = 1
        options.steps = 5
        options.threads = .single
        let pipeline = try SamplingPipeline(model: file, options: options)
        var steps = 0
        XCTAssertThrowsError(try pipeline.run(progress: { step, _ in steps = step }, stop: { steps >= 2 ? SIGINT : nil })) { error in
            XCTAssertEqual(error as? Interrupted, Interrupted(signal: SIGINT))
        }
        XCTAssertEqual(steps, 2, "the run ends at the step boundary after the signal")
    }

    func testInversionStopsBetweenSteps() throws {
        let file = try ModelFile(path: model)
        var options = SamplingOptions()
        options.count = 1
        options.steps = 5
        options.threads = .single
        let inversion = try DDIMInversion(model: file, options: options)
        let image = [Float](repeating: 0, count: inversion.x.count)
        var steps = 0
        // Reconstruction polls across both halves: stopped in the generation half, after 5 + 2 of 10 steps.
        XCTAssertThrowsError(try inversion.reconstruct(image, progress: { step, _ in steps = step }, stop: { steps >= 7 ? SIGTERM : nil })) { error in
            XCTAssertEqual(error as? Interrupted, Interrupted(signal: SIGTERM))
        }
        XCTAssertEqual(steps, 7, "the run ends at the step boundary after the signal")
    }

    /// Starts `edge-ddim` on a 1000-step run, sends `signal` once sampling has started, and checks the exit
    /// status, the message and that nothing was written.
    func interrupt(with signal: Int32, expectedStatus: Int32, name: String,
                   arguments: [String] = ["--count", "1", "--output", "never.png", "--npy", "never.npy"], total: Int = 1000) throws {
        let temp = temporaryFolder()
        defer { removeFolder(temp) }
        let products = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: products + "/edge-ddim")
        process.arguments = arguments + ["--model", model, "--steps", "1000", "--threads", "1"]
        process.currentDirectoryURL = URL(fileURLWithPath: temp)
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        // A watchdog, so a run that ignores the signal fails the test instead of hanging it.
        let pid = process.processIdentifier
        let watchdog = DispatchWorkItem { kill(pid, SIGKILL) }
        DispatchQueue.global().asyncAfter(deadline: .now() + 300, execute: watchdog)
        defer { watchdog.cancel() }
        var stderr = Data()
        while !String(decoding: stderr, as: UTF8.self).contains("step 1/\(total)") {
            let more = err.fileHandleForReading.availableData
            guard !more.isEmpty else { break }
            stderr += more
        }
        XCTAssertTrue(String(decoding: stderr, as: UTF8.self).contains("step 1/\(total)"), "sampling never started: \(String(decoding: stderr, as: UTF8.self))")
        kill(pid, signal)
        stderr += err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: stderr, as: UTF8.self)
        XCTAssertEqual(process.terminationReason, .exit, text)
        XCTAssertEqual(process.terminationStatus, expectedStatus, text)
        // Progress lines, then exactly one line about the interruption.
        let lines = text.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.filter { !$0.hasPrefix("step ") }.count, 1, text)
        let last = lines.last ?? ""
        XCTAssertTrue(last.hasPrefix("edge-ddim: interrupted by \(name): stopped after step "), last)
        XCTAssertTrue(last.hasSuffix(" of \(total); nothing written"), last)
        XCTAssertEqual(try contents(temp), [], "an interrupted run left files")
    }

    func testSIGINTStopsSamplingAndWritesNothing() throws {
        try interrupt(with: SIGINT, expectedStatus: 130, name: "SIGINT")
    }

    func testSIGTERMStopsSamplingAndWritesNothing() throws {
        try interrupt(with: SIGTERM, expectedStatus: 143, name: "SIGTERM")
    }

    /// `reconstruct` with 1000 steps (2000 UNet evaluations: inversion, then generation): SIGINT stops it between
    /// steps and writes no side-by-side PNG. The input, a 32 × 32 gray PNG the size of the
    /// default model's images (the paper fixtures are smaller), sits outside the folder checked for output.
    func testSIGINTStopsReconstructionAndWritesNothing() throws {
        let inputs = temporaryFolder()
        defer { removeFolder(inputs) }
        let pixels = (0 ..< 32 * 32).map { UInt8(($0 * 7) % 256) }
        try PNG.write(PixelGrid(width: 32, height: 32, channels: 1, pixels: pixels), to: inputs + "/input.png")
        try interrupt(with: SIGINT, expectedStatus: 130, name: "SIGINT",
                      arguments: ["reconstruct", inputs + "/input.png", "--output", "never.png"], total: 2000)
    }
}
