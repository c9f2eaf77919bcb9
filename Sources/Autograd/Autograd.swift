// Autograd: HarmoSE's tensor and reverse-mode automatic-differentiation engine. It owns dense
// row-major tensors over Float (training) and Double (gradient checks), the operations with their
// hand-written backward kernels, the graph walk that runs them in reverse (Tensor.backward),
// no-grad mode and the thread budget (an explicit `ExecutionContext`, Execution.swift), named and seeded parameters, optimisers and learning-rate schedules, and
// checkpoints in HDF5. Matrix products go to OpenBLAS through Linalg; everything else is a plain
// loop over unsafe buffers, parallelised with DispatchQueue.concurrentPerform.
//
// Conventions (see docs/autograd.md):
// - Shape errors throw `TensorError` naming the operation and the shapes; every op that can see a
//   bad shape or index is `throws`. Ops that cannot fail (unary maths) do not throw.
// - Every op is written once, generic over `Scalar`; hot kernels carry @_specialize for Float and
//   Double so that calls from other modules run specialised code.
// - Results never depend on the number of threads: reductions give each output element to one
//   worker, which sums in a fixed order.
// - Backward closures capture their op's tensors `unowned(unsafe)`: the node that holds a closure
//   holds the same tensors strongly as its inputs, and only `backward()` calls the closure, through
//   that node. A checked `unowned` costs atomic reference-count operations at every capture and
//   call (about 60 k per water training step; issue #14, BENCHMARKS.md).
import Foundation
import HDF5Kit
import Linalg
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The element type of a tensor: Float for training, Double for finite-difference checks.
public protocol Scalar: BLASScalar, SIMDScalar, Codable, CustomStringConvertible {
    static func exp(_ x: Self) -> Self
    static func log(_ x: Self) -> Self
    static func log1p(_ x: Self) -> Self
    static func tanh(_ x: Self) -> Self
    static func sin(_ x: Self) -> Self
    static func cos(_ x: Self) -> Self
    static func readArray(_ file: HDF5File, _ name: String) throws -> HDF5Array<Self>
    static func writeArray(_ file: HDF5File, _ name: String, _ values: [Self], shape: [Int]) throws
    /// Name used in error messages and checkpoints ("float32"/"float64").
    static var typeName: String { get }
}

extension Float: Scalar {
    /// Pure-Swift exp so loops over it vectorise (glibc's expf is an opaque call per element):
    /// e^x = 2ⁿ·e^r with n = round(x/ln2), |r| ≤ ln2/2, e^r by its degree-7 Taylor polynomial
    /// (truncation < 2e-8 relative; measured error ≤ 2 ulp, see EngineTests.testFastExp). Inputs
    /// are clamped to [−87, 88] (results stay finite and normal); NaN passes through.
    @inline(__always)
    public static func exp(_ x: Float) -> Float {
        let c = x.isNaN ? 0 : Swift.min(Swift.max(x, -87), 88)
        // Round to nearest by adding 1.5·2²³: the integer lands in the low mantissa bits, with no
        // trapping Float→Int conversion in the loop (that check would stop vectorisation).
        let shifted = c * 1.442_695_04 + 12_582_912
        let n = shifted - 12_582_912
        let r = (c - n * 0.693_145_75) - n * 1.428_606_8e-6   // ln2 split hi + lo
        var p: Float = 1.0 / 5040
        p = p * r + 1.0 / 720
        p = p * r + 1.0 / 120
        p = p * r + 1.0 / 24
        p = p * r + 1.0 / 6
        p = p * r + 0.5
        p = p * r + 1
        p = p * r + 1
        let scale = Float(bitPattern: (shifted.bitPattern &- 0x4B40_0000 &+ 127) << 23)
        return x.isNaN ? x : p * scale
    }
    public static func log(_ x: Float) -> Float { logf(x) }
    public static func log1p(_ x: Float) -> Float { log1pf(x) }
    public static func tanh(_ x: Float) -> Float { tanhf(x) }
    public static func sin(_ x: Float) -> Float { sinf(x) }
    public static func cos(_ x: Float) -> Float { cosf(x) }
    public static func readArray(_ file: HDF5File, _ name: String) throws -> HDF5Array<Float> { try file.readFloats(name) }
    public static func writeArray(_ file: HDF5File, _ name: String, _ values: [Float], shape: [Int]) throws {
        try file.write(name, floats: values, shape: shape)
    }
    public static var typeName: String { "float32" }
}

extension Double: Scalar {
    #if canImport(Glibc)
    public static func exp(_ x: Double) -> Double { Glibc.exp(x) }
    public static func log(_ x: Double) -> Double { Glibc.log(x) }
    public static func log1p(_ x: Double) -> Double { Glibc.log1p(x) }
    public static func tanh(_ x: Double) -> Double { Glibc.tanh(x) }
    public static func sin(_ x: Double) -> Double { Glibc.sin(x) }
    public static func cos(_ x: Double) -> Double { Glibc.cos(x) }
    #else
    public static func exp(_ x: Double) -> Double { Darwin.exp(x) }
    public static func log(_ x: Double) -> Double { Darwin.log(x) }
    public static func log1p(_ x: Double) -> Double { Darwin.log1p(x) }
    public static func tanh(_ x: Double) -> Double { Darwin.tanh(x) }
    public static func sin(_ x: Double) -> Double { Darwin.sin(x) }
    public static func cos(_ x: Double) -> Double { Darwin.cos(x) }
    #endif
    public static func readArray(_ file: HDF5File, _ name: String) throws -> HDF5Array<Double> { try file.readDoubles(name) }
    public static func writeArray(_ file: HDF5File, _ name: String, _ values: [Double], shape: [Int]) throws {
        try file.write(name, doubles: values, shape: shape)
    }
    public static var typeName: String { "float64" }
}

/// A bad shape, index or argument given to a tensor operation.
public struct TensorError: Error, CustomStringConvertible, Equatable {
    public var op: String
    public var message: String
    public init(_ op: String, _ message: String) { self.op = op; self.message = message }
    public var description: String { "\(op): \(message)" }
}

/// Parallel loops and products for kernels, on the thread budget of the current execution context
/// (`ExecutionContext.current.threads`, read once on the calling thread per call).
public enum Parallel {
    /// Threads the current context allows a kernel.
    public static var workers: Int { ExecutionContext.current.threads }

    /// The engine's product path, exposed for benchmarks (Float, dense row-major operands).
    public static func gemmForBenchmark(transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
                                        a: UnsafePointer<Float>, b: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>) {
        gemm(transA: transA, transB: transB, m: m, n: n, k: k, a: a, b: b, c: c)
    }

    /// C = op(A)·op(B) + beta·C cut into slabs by shape (BLAS.gemmSplit) on the context's threads:
    /// the same bits for any budget.
    @inline(__always)
    static func gemm<T: Scalar>(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                                a: UnsafePointer<T>, b: UnsafePointer<T>, beta: T = 0, c: UnsafeMutablePointer<T>) {
        BLAS.gemmSplit(transA: transA, transB: transB, m: m, n: n, k: k, a: a, b: b, beta: beta, c: c, workers: workers)
    }

    /// Splits 0..<count into contiguous ranges of at least `grain` items and runs them on up to
    /// `workers` threads. Callers must only write disjoint outputs per range (custom ops in other
    /// modules use it too, e.g. the SO3 tensor-product kernels).
    @inline(__always)
    public static func forRanges(_ count: Int, grain: Int, _ body: (Range<Int>) -> Void) {
        let chunks = min(workers, count / max(grain, 1))
        if chunks <= 1 {
            if count > 0 { body(0..<count) }
            return
        }
        ConcurrentLoop.perform(iterations: chunks) { c in
            let lo = count * c / chunks, hi = count * (c + 1) / chunks
            body(lo..<hi)
        }
    }

    /// Splits items 0..<sizes.count (tensors of `sizes` elements) into runs of consecutive items
    /// of about equal element count, at least `grain` elements each, and runs them on up to
    /// `workers` threads: the optimiser's elementwise work on many tensors of very different sizes.
    /// Callers must compute each item the same way whichever run holds it (elementwise work, or
    /// one result per item), so that the bits do not depend on the thread budget.
    public static func forRuns(sizes: [Int], grain: Int = 1 << 15, _ body: (Range<Int>) -> Void) {
        let total = sizes.reduce(0, +)
        let chunks = max(1, min(workers, total / max(grain, 1)))
        guard chunks > 1 else {
            if !sizes.isEmpty { body(0 ..< sizes.count) }
            return
        }
        var bounds = [0], start = 0
        for (i, n) in sizes.enumerated() {
            if start >= total * bounds.count / chunks, bounds.count < chunks, i > 0 { bounds.append(i) }
            start += n
        }
        bounds.append(sizes.count)
        let cuts = bounds
        ConcurrentLoop.perform(iterations: cuts.count - 1) { c in body(cuts[c] ..< cuts[c + 1]) }
    }
}

/// A raw pointer shared by the iterations of a parallel loop, which write disjoint ranges of it
/// (ConcurrentLoop's contract); unchecked because Swift cannot express disjoint writes.
struct SharedPointer<T>: @unchecked Sendable {
    let base: UnsafeMutablePointer<T>
    init(_ base: UnsafeMutablePointer<T>) { self.base = base }
}
