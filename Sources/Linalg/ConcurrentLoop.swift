// ConcurrentLoop.swift: the one parallel loop of the numeric modules, DispatchQueue.concurrentPerform
// behind a body that need not be @Sendable.
//
// Why: data-parallel kernels hand raw pointers (or captured buffers) to their iterations, and each
// iteration writes a disjoint part of the output. Swift's type system cannot express "disjoint
// writes", so in Swift 6 mode every such capture would need its own unchecked wrapper. The contract
// is stated once, here, and every kernel loop goes through this function instead.
import Dispatch

public enum ConcurrentLoop {
    /// Runs `body(i)` for i in 0..<iterations on up to that many threads and returns when all are
    /// done (DispatchQueue.concurrentPerform). Contract of the caller: iterations may run at the same
    /// time, so each writes only memory no other iteration reads or writes, and everything `body`
    /// captures outlives the call (it does: the call returns only after the last iteration).
    public static func perform(iterations: Int, _ body: (Int) -> Void) {
        guard iterations > 1 else {
            if iterations == 1 { body(0) }
            return
        }
        withoutActuallyEscaping(body) { body in
            let shared = UncheckedBody(body: body)
            DispatchQueue.concurrentPerform(iterations: iterations) { shared.body($0) }
        }
    }

    /// The body crossing into the worker threads under the contract above.
    private struct UncheckedBody: @unchecked Sendable {
        let body: (Int) -> Void
    }
}
