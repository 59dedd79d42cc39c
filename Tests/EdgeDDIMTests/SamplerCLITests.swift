import Foundation
import XCTest
import EdgeImageIO

/// `--sampler` and its options as a user meets them: every sampler writes its image; an unknown sampler, an
/// option the sampler lacks, and a spacing or prediction type its diffusers scheduler refuses get one line
/// on stderr, exit status 2 and no file.
final class SamplerCLITests: XCTestCase {
    var model: String { repositoryRoot + "/models/ddpm-fashion-32.edm" }

    /// Runs edge-ddim in an empty folder and checks the one-line refusal and that nothing was written.
    func assertRefused(_ arguments: [String], mentions: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let temp = temporaryFolder()
        defer { removeFolder(temp) }
        let outcome = try runTool("edge-ddim", arguments, in: temp)
        XCTAssertEqual(outcome.status, 2, "\(arguments): \(outcome.stderr)", file: file, line: line)
        XCTAssertEqual(outcome.stderr.split(separator: "\n").count, 1, "\(arguments): stderr was \(outcome.stderr)", file: file, line: line)
        XCTAssertTrue(outcome.stderr.contains(mentions), "\(arguments): \(outcome.stderr) lacks \(mentions)", file: file, line: line)
        let left = try FileManager.default.contentsOfDirectory(atPath: temp)
        XCTAssertEqual(left, [], "\(arguments) left \(left)", file: file, line: line)
    }

    func testUnknownSamplerAndMisplacedOptions() throws {
        let m = ["--model", model, "--steps", "4", "--count", "1"]
        try assertRefused(m + ["--sampler", "heun"], mentions: "unknown sampler 'heun' (samplers: ddim, dpmpp-2m")
        try assertRefused(["interpolate", "--seed-a", "0", "--seed-b", "1", "--sampler", "lms"] + m.dropLast(2), mentions: "unknown sampler 'lms'")
        try assertRefused(["eval", "--sampler", "dpm++"] + m.dropLast(2), mentions: "unknown sampler 'dpm++'")
        for sampler in ["ddim", "pndm", "euler-a"] {
            try assertRefused(m + ["--sampler", sampler, "--karras"], mentions: "--karras: \(sampler)")
        }
        try assertRefused(m + ["--sampler", "euler", "--pndm-prk"], mentions: "--pndm-prk goes with --sampler pndm")
        try assertRefused(m + ["--sampler", "dpmpp-2m", "--eta", "0.5"], mentions: "--eta is DDIM's")
        try assertRefused(m + ["--sampler", "pndm", "--pndm-prk", "--steps", "3"], mentions: "at least 4 steps")
        for sampler in ["dpmpp-2m", "unipc", "pndm", "euler", "euler-a"] {
            try assertRefused(m + ["--sampler", sampler, "--schedule", "quadratic"], mentions: "quadratic is DDIM's only")
        }
    }

    /// Prediction types diffusers' scheduler refuses: `sample` for PNDMScheduler and EulerAncestralDiscreteScheduler.
    func testRefusedPredictionType() throws {
        let temp = temporaryFolder()
        defer { removeFolder(temp) }
        let converted = try paperModel("two-level-midscale", overrides: ["prediction_type": .string("sample")], in: temp)
        for sampler in ["pndm", "euler-a"] {
            try assertRefused(["--model", converted.path, "--sampler", sampler, "--steps", "4", "--count", "1"], mentions: "not sample")
        }
    }

    /// Each sampler, by its command-line name, writes a PNG and the x₀ .npy (the numbers are checked against
    /// diffusers in SamplerFixtureTests; this is the command's path). A small fixture UNet keeps it quick
    /// under qemu too.
    func testEverySamplerWritesItsImage() throws {
        let temp = temporaryFolder()
        defer { removeFolder(temp) }
        // two-level-midscale: scaled_linear betas (Karras σ's on single-level-attn's cosine schedule repeat the
        // first timestep, which is refused).
        let model = try paperModel("two-level-midscale", in: temp).path
        let runs: [[String]] = [["ddim", "--eta", "1"], ["dpmpp-2m", "--karras"], ["dpmpp-2m-sde"], ["unipc"], ["pndm"],
                                ["pndm", "--pndm-prk"], ["euler"], ["euler-a"]]
        for (k, run) in runs.enumerated() {
            let outcome = try runTool("edge-ddim", ["--model", model, "--steps", "4", "--count", "1", "--quiet", "--sampler"] + run
                                      + ["--output", "s\(k).png", "--npy", "s\(k).npy"], in: temp)
            XCTAssertEqual(outcome.status, 0, "\(run): \(outcome.stderr)")
            XCTAssertTrue(outcome.stderr.contains(run[0]), "\(run): the summary line names the sampler: \(outcome.stderr)")
            let x0 = try NPY.read(path: temp + "/s\(k).npy", expectedShape: [1, 3, 8, 8])
            XCTAssertTrue(x0.allSatisfy(\.isFinite), "\(run): x₀ has non-finite values")
            XCTAssertTrue(FileManager.default.fileExists(atPath: temp + "/s\(k).png"), "\(run): no PNG")
        }
    }
}
