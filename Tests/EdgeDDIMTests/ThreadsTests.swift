import XCTest
import AllocationCounter
import _EdgeCore

final class ThreadsTests: XCTestCase {
    struct Fill: ParallelTask {
        let output: UnsafeMutablePointer<Int>
        func run(_ index: Int) { output[index] = index * index }
    }

    func testEveryIndexRunsOnce() {
        for threads in [1, 2, 3] {
            for n in [0, 1, 2, 5, 64, 1000] {
                let out = UnsafeMutablePointer<Int>.allocate(capacity: max(n, 1))
                defer { out.deallocate() }
                out.initialize(repeating: -1, count: max(n, 1))
                Threads(threads).parallelFor(n, Fill(output: out))
                for i in 0 ..< n { XCTAssertEqual(out[i], i * i, "threads \(threads), n \(n), index \(i)") }
            }
        }
    }

    func testParallelForAllocatesNothing() {
        let out = UnsafeMutablePointer<Int>.allocate(capacity: 64)
        defer { out.deallocate() }
        let threads = Threads(2)
        threads.parallelFor(64, Fill(output: out))  // OpenMP builds its thread team on first use
        let allocations = fewestAllocations { for _ in 0 ..< 100 { threads.parallelFor(64, Fill(output: out)) } }
        XCTAssertEqual(allocations, 0)
    }
}
