import Foundation
import XCTest

/// `tools/install.sh` and the installed command as a user outside the repository meets them: the command finds the
/// default model beside itself, then through $EDGE_DDIM_MODEL, and says where it looked when neither has it.
final class InstallTests: XCTestCase {
    var products: String { URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path }

    func testInstalledCommandFindsItsModelFromAnyFolder() throws {
        let temp = temporaryFolder()
        defer { removeFolder(temp) }
        let install = Process()
        install.executableURL = URL(fileURLWithPath: "/bin/bash")
        install.arguments = [repositoryRoot + "/tools/install.sh", "--prefix", temp + "/prefix", "--from", products]
        install.standardOutput = FileHandle.nullDevice
        try install.run()
        install.waitUntilExit()
        XCTAssertEqual(install.terminationStatus, 0)
        for file in ["bin/edge-ddim", "bin/convert", "lib/libedgeddim.so", "include/edgeddim.h", "share/edge-ddim/models/ddpm-fashion-32.edm",
                     "share/doc/edge-ddim/FORMAT.md", "share/doc/edge-ddim/examples/generate.c"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: temp + "/prefix/" + file), file)
        }

        // From an empty folder outside the repository, no --model: the installed default model.
        let empty = temp + "/empty"
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: false)
        let run = try runTool("edge-ddim", ["--steps", "2", "--count", "1", "--quiet"], in: empty, shell: "exec \(temp)/prefix/bin/edge-ddim \"$@\"")
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: empty + "/samples.png"))

        let version = try runTool("edge-ddim", ["--version"], in: empty, shell: "exec \(temp)/prefix/bin/edge-ddim \"$@\"")
        XCTAssertEqual(version.status, 0, version.stderr)
        XCTAssertTrue(version.stdout.hasPrefix("edge-ddim 0."), version.stdout)
        XCTAssertTrue(version.stdout.contains("model format 3"), version.stdout)

        // A C program built against the installed header and library alone.
        // (Skipped where no compiler builds for this architecture, or under ThreadSanitizer: see cFlagsForThisBuild.)
        if let cc = nativeCCompiler(), let cFlags = cFlagsForThisBuild() {
            let p = temp + "/prefix"
            let build = try runTool("cc", cFlags + ["-I", p + "/include", p + "/share/doc/edge-ddim/examples/generate.c", "-L", p + "/lib", "-ledgeddim",
                                           "-Wl,-rpath," + p + "/lib", "-o", empty + "/generate"], in: empty, shell: "exec \(cc) \"$@\"")
            XCTAssertEqual(build.status, 0, build.stderr)
            let c = try runTool("generate", [p + "/share/edge-ddim/models/ddpm-fashion-32.edm", "c.png", "0", "1"], in: empty,
                                shell: "exec ./generate \"$@\"")
            XCTAssertEqual(c.status, 0, c.stderr)
            XCTAssertTrue(FileManager.default.fileExists(atPath: empty + "/c.png"))
        }

        // The build's own command has no installation beside it: $EDGE_DDIM_MODEL, else the current folder's models/.
        let other = temp + "/other"
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: false)
        let named = try runTool("edge-ddim", ["--steps", "1", "--count", "1", "--quiet"], in: other,
                                shell: "EDGE_DDIM_MODEL=\(repositoryRoot)/models/ddpm-fashion-32.edm exec \"$0\" \"$@\"")
        XCTAssertEqual(named.status, 0, named.stderr)
        let missing = try runTool("edge-ddim", ["--steps", "1", "--count", "1"], in: other, shell: "unset EDGE_DDIM_MODEL; rm samples.png; exec \"$0\" \"$@\"")
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("looked for") && missing.stderr.contains("EDGE_DDIM_MODEL"), missing.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: other), [])
    }
}
