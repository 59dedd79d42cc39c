import _EdgeThreads

/// Work split over threads: `run(i)` is called once for each index, possibly on different threads at
/// once, and must only write memory no other index writes.
///
/// Kernels describe their work as a small struct rather than a closure: a closure handed to C has to be
/// made escaping (`withoutActuallyEscaping`), which allocates its context on the heap on every call, and
/// the sampling loop must not allocate. A task of at most three words travels as an inline existential:
/// no allocation; a bigger task stays on the caller's stack and travels by pointer.
public protocol ParallelTask {
    func run(_ index: Int)
}

/// How many threads the kernels split work over. A value passed down the call chain, not global state:
/// each UNet owns one.
public struct Threads: Sendable, Equatable {
    public let count: Int

    /// `count` threads; nil means OpenMP's default (OMP_NUM_THREADS, else every online core).
    public init(_ count: Int? = nil) {
        self.count = max(1, count ?? Int(edge_default_threads()))
    }

    public static let single = Threads(1)

    /// Worker t's share of n items under the static split every kernel uses — [n·t/workers, n·(t+1)/workers) —
    /// so the shares are contiguous, cover 0..<n once, and differ in size by at most one.
    @inlinable
    public static func share(_ t: Int, of n: Int, workers: Int) -> Range<Int> {
        (n * t / workers) ..< (n * (t + 1) / workers)
    }

    /// Calls task.run(i) for i in 0..<n, spread over the threads (a static split: thread t of T gets
    /// indices [n·t/T, n·(t+1)/T)), and returns when all calls are done. Allocates nothing.
    @inlinable
    public func parallelFor<Task: ParallelTask>(_ n: Int, _ task: Task) {
        if count <= 1 || n <= 1 {
            for i in 0 ..< n { task.run(i) }
            return
        }
        if MemoryLayout<Task>.size <= 3 * MemoryLayout<Int>.size {
            var erased: any ParallelTask = task
            dispatch(n, &erased)
        } else {
            // Larger tasks stay where they are; the existential holds a pointer to them.
            withUnsafePointer(to: task) { pointer in
                var erased: any ParallelTask = IndirectTask(task: pointer)
                dispatch(n, &erased)
            }
        }
    }

    @usableFromInline
    func dispatch(_ n: Int, _ task: inout any ParallelTask) {
        withUnsafeMutablePointer(to: &task) { pointer in
            edge_parallel_for(n, Int32(count), { context, index in
                context!.assumingMemoryBound(to: (any ParallelTask).self).pointee.run(index)
            }, pointer)
        }
    }
}

@usableFromInline
struct IndirectTask<Task: ParallelTask>: ParallelTask {
    @usableFromInline let task: UnsafePointer<Task>
    @usableFromInline init(task: UnsafePointer<Task>) { self.task = task }
    @usableFromInline func run(_ index: Int) { task.pointee.run(index) }
}
