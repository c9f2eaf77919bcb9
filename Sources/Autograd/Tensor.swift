// Tensor.swift: the tensor type and the reverse-mode graph walk. A tensor produced by an op while
// GradMode is on and some input requires a gradient remembers its inputs and a backward closure
// (its `Node`). `backward()` orders the graph topologically from the loss — that order is the tape
// — and runs the closures in reverse, accumulating into `grad`.
import Foundation

final class Node<T: Scalar> {
    let op: String
    let inputs: [Tensor<T>]
    /// Receives the output's gradient and accumulates into the inputs' gradients.
    let backward: (UnsafeBufferPointer<T>) -> Void
    init(op: String, inputs: [Tensor<T>], backward: @escaping (UnsafeBufferPointer<T>) -> Void) {
        self.op = op; self.inputs = inputs; self.backward = backward
    }
}

/// A dense row-major tensor with an optional gradient.
public final class Tensor<T: Scalar> {
    public let shape: [Int]
    /// Values in row-major order.
    public var data: [T]
    /// Accumulated gradient (same layout as `data`), allocated on first use; nil until then.
    public var grad: [T]?
    /// Leaves: whether backward should compute `grad` (false = frozen). Results: set by the op.
    public var requiresGrad: Bool
    /// Parameter name or a label for error messages.
    public var name: String
    /// Keep `grad` of a non-leaf after backward (for inspection and gradient checks).
    public var retainsGrad = false
    var node: Node<T>?
    /// Set on results whose graph a backward pass has already consumed.
    var graphReleased = false
    /// Marks the tensors a `topologicalOrder` walk has reached; false outside one.
    var onTopologicalPath = false

    /// A tensor from values; throws if their count does not match the shape.
    public init(_ data: [T], shape: [Int], requiresGrad: Bool = false, name: String = "") throws {
        guard shape.allSatisfy({ $0 >= 0 }) else {
            throw TensorError("Tensor", "negative dimension in shape \(shape)\(name.isEmpty ? "" : " of \(name)")")
        }
        let count = shape.reduce(1, *)
        guard data.count == count else {
            throw TensorError("Tensor", "\(data.count) values do not fill shape \(shape) (needs \(count))\(name.isEmpty ? "" : " for \(name)")")
        }
        self.data = data; self.shape = shape; self.requiresGrad = requiresGrad; self.name = name
    }

    /// Internal constructor for op results whose shape is already known to match.
    init(unchecked data: [T], shape: [Int], name: String = "") {
        self.data = data; self.shape = shape; self.requiresGrad = false; self.name = name
    }

    public convenience init(zeros shape: [Int], requiresGrad: Bool = false, name: String = "") {
        self.init(repeating: 0, shape: shape, requiresGrad: requiresGrad, name: name)
    }

    public init(repeating value: T, shape: [Int], requiresGrad: Bool = false, name: String = "") {
        precondition(shape.allSatisfy { $0 >= 0 }, "Tensor(repeating:): negative dimension in \(shape)")
        self.data = [T](repeating: value, count: shape.reduce(1, *))
        self.shape = shape; self.requiresGrad = requiresGrad; self.name = name
    }

    /// A rank-0 tensor.
    public convenience init(scalar: T, requiresGrad: Bool = false) {
        self.init(repeating: scalar, shape: [], requiresGrad: requiresGrad)
    }

    /// Values drawn from N(0, std²) with the engine's seeded generator (see RNG.swift).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func randomNormal(_ shape: [Int], std: Double = 1, seed: UInt64, requiresGrad: Bool = false) -> Tensor {
        var rng = SplitMix64(seed: seed)
        let t = Tensor(repeating: 0, shape: shape, requiresGrad: requiresGrad)
        for i in 0..<t.count { t.data[i] = T(rng.nextNormal() * std) }
        return t
    }

    /// Values drawn uniformly from [low, high) with the engine's seeded generator.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func randomUniform(_ shape: [Int], low: Double = 0, high: Double = 1, seed: UInt64, requiresGrad: Bool = false) -> Tensor {
        var rng = SplitMix64(seed: seed)
        let t = Tensor(repeating: 0, shape: shape, requiresGrad: requiresGrad)
        for i in 0..<t.count { t.data[i] = T(low + (high - low) * rng.nextUnit()) }
        return t
    }

    public var count: Int { data.count }
    public var rank: Int { shape.count }
    /// The single value of a one-element tensor.
    public var item: T {
        precondition(data.count == 1, "item: tensor of shape \(shape) has \(data.count) values, not 1")
        return data[0]
    }
    /// Whether this tensor was produced by a recorded op (not a leaf).
    public var isLeaf: Bool { node == nil }

    /// A new leaf with the same values, cut from the graph.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func detached() -> Tensor { Tensor(unchecked: data, shape: shape, name: name) }

    public func zeroGrad() { grad = nil }

    /// Throws if any value is NaN or infinite, naming `label` and the first bad position — call it
    /// on losses and inputs so a diverging run stops with a clear message.
    public func checkFinite(_ label: String) throws {
        if let i = data.firstIndex(where: { !$0.isFinite }) {
            throw TensorError("checkFinite", "\(label) has value \(data[i]) at flat index \(i) (shape \(shape))")
        }
    }

    /// Runs `body` on the gradient buffer, allocating it as zeros first if needed.
    @inline(__always)
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func withGrad(_ body: (UnsafeMutableBufferPointer<T>) -> Void) {
        if grad == nil { grad = [T](repeating: 0, count: data.count) }
        grad!.withUnsafeMutableBufferPointer { body($0) }
    }

    /// Like withGrad, but when no gradient exists yet the buffer is left uninitialised and `body`
    /// is told to overwrite it (accumulate == false): saves zero-filling before BLAS with beta 0.
    @inline(__always)
    func withGradForOverwrite(_ body: (UnsafeMutableBufferPointer<T>, _ accumulate: Bool) -> Void) {
        let accumulate = grad != nil
        if !accumulate { grad = uninitializedArray(count: data.count) }
        grad!.withUnsafeMutableBufferPointer { body($0, accumulate) }
    }

    /// Reverse-mode sweep from this tensor. With no `seed` the tensor must hold one value and its
    /// gradient starts at 1. Gradients accumulate into leaves that require them (call zeroGrad
    /// between steps). The graph is released afterwards: intermediate results drop their nodes and,
    /// unless `retainsGrad`, their gradients.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func backward(seed: [T]? = nil) throws {
        if let seed {
            guard seed.count == count else {
                throw TensorError("backward", "seed has \(seed.count) values, tensor shape \(shape) has \(count)")
            }
        } else if count != 1 {
            throw TensorError("backward", "tensor of shape \(shape) is not a scalar; pass a seed gradient")
        }
        guard requiresGrad else {
            throw TensorError("backward", "tensor does not require grad (no parameter requires it, or it was computed in no-grad mode)")
        }
        guard !graphReleased else {
            throw TensorError("backward", "the graph behind this tensor was released by an earlier backward; recompute the forward pass")
        }
        let order = topologicalOrder()
        if let seed, grad == nil {
            grad = seed   // shares the caller's buffer (copy on write): no zero fill and add
        } else {
            withGrad { g in
                if let seed { for i in 0..<g.count { g[i] += seed[i] } } else { g[0] += 1 }
            }
        }
        for t in order.reversed() {
            guard let node = t.node else { continue }
            if let g = t.grad {
                g.withUnsafeBufferPointer { node.backward($0) }
            }
            t.node = nil
            t.graphReleased = true
            if !t.retainsGrad { t.grad = nil }
        }
    }

    /// What `topologicalOrder` does at the next input of a tensor: all inputs done, pass an input
    /// already reached (or without gradient), or descend into a new one.
    private enum TopologicalStep { case finished, skip, descend(Unmanaged<Tensor>) }

    /// Graph nodes reachable from self that require grad, inputs before outputs (iterative DFS so
    /// deep graphs do not exhaust the stack).
    ///
    /// Visited tensors are marked in the tensor itself (`onTopologicalPath`, cleared again before
    /// returning) instead of a hash set of identities, and the walk holds its tensors unretained:
    /// the graph rooted at self keeps every one alive and nothing changes it during the walk. Water's
    /// steps run ~2000 small ops, and the set's hashing and growth with a retain and release per
    /// visit were a quarter of the step's reference counting (issue #14, BENCHMARKS.md). Same
    /// visiting order as before, hence the same gradients bit for bit.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func topologicalOrder() -> [Tensor] {
        var order: [Tensor] = []
        var stack: [(tensor: Unmanaged<Tensor>, next: Int)] = [(Unmanaged.passUnretained(self), 0)]
        onTopologicalPath = true
        while let (u, next) = stack.popLast() {
            let step: TopologicalStep = u._withUnsafeGuaranteedRef { t in
                guard let node = t.node, next < node.inputs.count else { return .finished }
                let child = node.inputs[next]
                guard child.requiresGrad, !child.onTopologicalPath else { return .skip }
                child.onTopologicalPath = true
                return .descend(Unmanaged.passUnretained(child))
            }
            switch step {
            case .finished: order.append(u.takeUnretainedValue())
            case .skip: stack.append((u, next + 1))
            case .descend(let child): stack.append((u, next + 1)); stack.append((child, 0))
            }
        }
        for t in order { t.onTopologicalPath = false }
        return order
    }

    /// Public entry for operations defined outside this module (e.g. SO(3) tensor products):
    /// wraps `values` as the result of op `op` on `inputs`. When recorded, `backward` receives the
    /// output gradient and must add each input's contribution with `accumulateGradient`.
    public static func recorded(_ values: [T], shape: [Int], op: String, inputs: [Tensor],
                                backward: @escaping (UnsafeBufferPointer<T>) -> Void) throws -> Tensor {
        guard shape.allSatisfy({ $0 >= 0 }), values.count == shape.reduce(1, *) else {
            throw TensorError(op, "\(values.count) values do not fill result shape \(shape)")
        }
        return result(values, shape: shape, op: op, inputs: inputs, backward: backward)
    }

    /// Adds into this tensor's gradient (allocated as zeros on first use); a no-op for tensors that
    /// do not require a gradient, so custom backward closures can call it unconditionally.
    public func accumulateGradient(_ body: (UnsafeMutableBufferPointer<T>) -> Void) {
        guard requiresGrad else { return }
        withGrad(body)
    }

    /// Takes a gradient computed in full by a custom backward: becomes the gradient buffer as is
    /// when none exists yet (no zero fill, no copy), else is added to it. A no-op for tensors that
    /// do not require a gradient.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func accumulateGradient(written values: [T]) {
        guard requiresGrad else { return }
        precondition(values.count == data.count, "gradient of \(values.count) values for a tensor of \(data.count)")
        if grad == nil { grad = values; return }
        grad!.withUnsafeMutableBufferPointer { acc in
            values.withUnsafeBufferPointer { src in for i in 0 ..< acc.count { acc[i] += src[i] } }
        }
    }

    /// Wraps an op result: records the node when grad mode is on and an input requires grad.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    static func result(_ data: [T], shape: [Int], op: String, inputs: [Tensor],
                       backward: @escaping (UnsafeBufferPointer<T>) -> Void) -> Tensor {
        let out = Tensor(unchecked: data, shape: shape)
        if GradMode.isEnabled && inputs.contains(where: { $0.requiresGrad }) {
            out.requiresGrad = true
            out.node = Node(op: op, inputs: inputs, backward: backward)
        }
        return out
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let shown = data.prefix(8).map { "\($0)" }.joined(separator: ", ")
        return "Tensor<\(T.typeName)>\(shape)[\(shown)\(count > 8 ? ", …" : "")]\(name.isEmpty ? "" : " \(name)")"
    }
}

/// An array whose values the caller overwrites entirely (skips zero-filling large outputs). Custom
/// ops outside this module allocate their results and gradients with it so they share the
/// allocator set-up below.
@inline(__always)
public func uninitializedArray<T: Scalar>(count: Int) -> [T] {
    _ = Allocator.configured
    return [T](unsafeUninitializedCapacity: count) { _, n in n = count }
}

/// Large tensors are allocated and freed every step. glibc serves blocks above its mmap threshold
/// (at most 32 MiB by default) with fresh mmaps, so each step would page-fault and zero them again;
/// raising the threshold keeps them in the heap for reuse. Process-wide, set once on first use.
enum Allocator {
    static let configured: Bool = {
        #if os(Linux)
        _ = glibcMallopt(-3 /* M_MMAP_THRESHOLD */, 1 << 30)
        _ = glibcMallopt(-1 /* M_TRIM_THRESHOLD */, 1 << 30)
        #endif
        return true
    }()
}

/// Process memory settings a command may choose at its start.
public enum MemoryTuning {
    /// One malloc arena for every thread. glibc gives each thread's arena heaps of at most 64 MiB
    /// and maps anything larger anew (zeroed pages, unmapped again on free), whatever
    /// `Allocator`'s thresholds say; a 10⁴-atom prediction's workers allocate ~10² MB arrays per
    /// chunk (the edge tensor product), so half its kernel time was page faults. In the one (main)
    /// arena they reuse the heap that `Allocator` keeps. Only for commands whose threads allocate
    /// few, large arrays (prediction, measured: system time halved, user time unchanged): threads
    /// allocating many small objects would contend for its lock. Call at the command's start,
    /// before other threads allocate (threads keep the arena they first used).
    public static func useOneArena() {
        #if os(Linux)
        _ = glibcMallopt(-8 /* M_ARENA_MAX */, 1)
        #endif
    }
}

#if os(Linux)
// <malloc.h> is not part of the Glibc module map; mallopt has a plain C signature.
@_silgen_name("mallopt")
func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32
#endif

/// Row-major strides of a shape.
@inline(__always)
func contiguousStrides(_ shape: [Int]) -> [Int] {
    var strides = [Int](repeating: 1, count: shape.count)
    var s = 1
    for i in stride(from: shape.count - 1, through: 0, by: -1) { strides[i] = s; s *= shape[i] }
    return strides
}

/// Resolves a possibly negative axis against a rank.
func normalizeAxis(_ axis: Int, rank: Int, op: String) throws -> Int {
    let a = axis < 0 ? axis + rank : axis
    guard a >= 0 && a < rank else { throw TensorError(op, "axis \(axis) out of range for rank \(rank)") }
    return a
}
