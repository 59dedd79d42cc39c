import _EdgeCore

/// Runs a loop of `total` steps the way `sample` does: `body` gets a progress callback (which prints the
/// progress line unless `quiet`) and the stop poll `{ Interruption.signal }`, both allocation-free per call.
/// A SIGINT / SIGTERM (after `Interruption.install()`) ends the run at the next step boundary, or after the
/// last step, with `Interrupted` carrying "stopped after step k of total; nothing written"; callers write
/// their outputs only after this returns.
func interruptible<T>(total: Int, quiet: Bool,
                      _ body: (_ progress: @escaping (Int, Int) -> Void, _ stop: @escaping () -> Int32?) throws -> T) throws -> T {
    let printer = progressPrinter(quiet: quiet)
    var done = 0
    do {
        let result = try body({ step, of in
            done = step
            printer?(step, of)
        }, { Interruption.signal })
        // A signal during the last step: the result is complete, but the user asked to stop.
        try Interruption.throwIfRequested()
        return result
    } catch let stop as Interrupted {
        throw Interrupted(signal: stop.signal, detail: "stopped after step \(done) of \(total); nothing written")
    }
}
