import XCTest
import AllocationCounter
import _EdgeCore
import EdgeModelFile
import EdgeDDIM

/// The sampling loop allocates nothing: every buffer is planned and allocated when the pipeline is built.
final class AllocationTests: XCTestCase {
    /// Allocations made while `body` runs.
    func allocations(_ body: () throws -> Void) rethrows -> UInt64 {
        let before = edge_test_allocation_count()
        try body()
        return edge_test_allocation_count() - before
    }

    func testSamplingLoopAllocatesNothing() throws {
        let model = try ModelFile(path: repositoryRoot + "/models/ddpm-fashion-32.edm")
        // The counter must see allocations at all, or a zero below would prove nothing.
        XCTAssertGreaterThan(allocations { _ = [Int](repeating: 1, count: 100) }, 0)
        var counts: [Int: UInt64] = [:]
        for steps in [10, 20] {
            for eta: Float in [0, 1] {
                var options = SamplingOptions()
                options.steps = steps
                options.eta = eta
                options.count = 2
                options.threads = Threads(2)
                let pipeline = try DDIMPipeline(model: model, options: options)
                // One warm-up run starts OpenMP's thread team, which allocates once per process.
                if counts.isEmpty { try pipeline.run() }
                let n = try fewestAllocations(attempts: 2) { try pipeline.run() }
                XCTAssertEqual(n, 0, "\(steps) steps, eta \(eta): \(n) heap allocations inside the sampling loop")
                counts[steps] = n
            }
        }
        XCTAssertEqual(counts[10], counts[20])
    }
}
