// Execution.swift: the execution context of numerical work — the thread budget kernels may use and
// whether operations record the graph for backward. It replaces process-wide switches: a context is
// a value, bound for the duration of a call with `run` (a task-local binding, so it is scoped to the
// calling thread or task and never leaks to other work), and read by the ops and kernels below it.
// Trainers, predictors and stages take a context explicitly and bind it around their work; worker
// threads they start bind their own (a binding is not inherited by DispatchQueue threads).
//
// Results never depend on the context's thread budget: kernels give each output element to one
// worker that sums in a fixed order, matrix products are cut into slabs by shape alone (BLAS.swift),
// and OpenBLAS itself always runs single-threaded (its thread count is process-wide state, so
// nothing may change it; see Linalg's BLASThreads).
import Foundation
import Linalg

public struct ExecutionContext: Sendable, Equatable, CustomStringConvertible {
    /// Threads the kernels of one operation may use (≥ 1).
    public var threads: Int
    /// Whether operations record the graph for backward (off for inference and evaluation).
    public var recordsGradients: Bool

    public init(threads: Int = 1, recordsGradients: Bool = true) {
        self.threads = max(1, threads)
        self.recordsGradients = recordsGradients
    }

    /// One thread, gradients recorded: what runs when no context was bound.
    public static let serial = ExecutionContext()

    /// Every core of this machine (the default budget of a standalone command). Only the speed
    /// depends on it, never a result.
    public static var allCores: ExecutionContext {
        ExecutionContext(threads: ProcessInfo.processInfo.activeProcessorCount)
    }

    /// The context bound to the current thread or task (`serial` when none is).
    @TaskLocal public static var current = ExecutionContext.serial

    /// Runs `body` with this context bound.
    public func run<R>(_ body: () throws -> R) rethrows -> R {
        try ExecutionContext.$current.withValue(self, operation: body)
    }

    /// The same context with another thread budget.
    public func with(threads: Int) -> ExecutionContext {
        var c = self
        c.threads = max(1, threads)
        return c
    }

    /// The same context without graph recording.
    public var withoutGradients: ExecutionContext {
        var c = self
        c.recordsGradients = false
        return c
    }

    public var description: String { "\(threads) thread\(threads == 1 ? "" : "s")\(recordsGradients ? "" : ", no grad")" }
}

/// Graph recording of the current execution context.
public enum GradMode {
    /// Whether ops record the graph in the current context.
    public static var isEnabled: Bool { ExecutionContext.current.recordsGradients }

    /// Runs `body` in the current context without recording the graph (inference, EMA updates,
    /// evaluation).
    public static func withoutGrad<R>(_ body: () throws -> R) rethrows -> R {
        try ExecutionContext.current.withoutGradients.run(body)
    }
}
