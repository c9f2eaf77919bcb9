// Elementwise.swift: unary maths (activations, exp/log, …), scalar affine maps and binary
// arithmetic with NumPy broadcasting, each with its backward kernel.

// MARK: Unary

enum UnaryOp: String { case silu, sigmoid, tanh, softplus, exp, log, relu, square, sqrt, abs }

@inline(__always)
func sigmoidValue<T: Scalar>(_ x: T) -> T { 1 / (1 + T.exp(-x)) }

@_specialize(where T == Float)
@_specialize(where T == Double)
func unaryForward<T: Scalar>(_ op: UnaryOp, _ x: UnsafeBufferPointer<T>, _ y: UnsafeMutableBufferPointer<T>) {
    let xs = x.baseAddress!, ys = SharedPointer(y.baseAddress!)
    @inline(__always) func map(_ f: (T) -> T) {
        Parallel.forRanges(x.count, grain: 1 << 14) { r in
            let yp = ys.base
            for i in r { yp[i] = f(xs[i]) }
        }
    }
    switch op {
    case .silu: map { $0 / (1 + T.exp(-$0)) }
    case .sigmoid: map { sigmoidValue($0) }
    case .tanh: map { T.tanh($0) }
    case .softplus: map { Swift.max($0, 0) + T.log1p(T.exp(-Swift.abs($0))) }
    case .exp: map { T.exp($0) }
    case .log: map { T.log($0) }
    case .relu: map { $0 > 0 ? $0 : 0 }
    case .square: map { $0 * $0 }
    case .sqrt: map { $0.squareRoot() }
    case .abs: map { Swift.abs($0) }
    }
}

/// One pass for SiLU: s = σ(x) (kept for backward) and y = x·s.
@_specialize(where T == Float)
@_specialize(where T == Double)
func siluForward<T: Scalar>(_ x: UnsafeBufferPointer<T>, sigmoid s: UnsafeMutableBufferPointer<T>, output y: UnsafeMutableBufferPointer<T>) {
    let xp = x.baseAddress!, sp = SharedPointer(s.baseAddress!), yp = SharedPointer(y.baseAddress!)
    Parallel.forRanges(x.count, grain: 1 << 14) { r in
        for i in r {
            let v = sigmoidValue(xp[i])
            sp.base[i] = v
            yp.base[i] = xp[i] * v
        }
    }
}

/// gx += gy · f'(x), using the saved buffer y where that is cheaper: the output, except for SiLU
/// where it is σ(x) (so backward needs no second exponential).
@_specialize(where T == Float)
@_specialize(where T == Double)
func unaryBackward<T: Scalar>(_ op: UnaryOp, x: UnsafeBufferPointer<T>, y: UnsafeBufferPointer<T>,
                              gy: UnsafeBufferPointer<T>, gx: UnsafeMutableBufferPointer<T>, accumulate: Bool) {
    let xs = x.baseAddress!, ys = y.baseAddress!, gys = gy.baseAddress!, gxs = SharedPointer(gx.baseAddress!)
    @inline(__always) func apply(_ d: (T, T) -> T) {
        Parallel.forRanges(x.count, grain: 1 << 14) { r in
            let g = gxs.base
            if accumulate { for i in r { g[i] += gys[i] * d(xs[i], ys[i]) } } else { for i in r { g[i] = gys[i] * d(xs[i], ys[i]) } }
        }
    }
    switch op {
    case .silu: apply { x, s in s * (1 + x * (1 - s)) }
    case .sigmoid: apply { _, y in y * (1 - y) }
    case .tanh: apply { _, y in 1 - y * y }
    case .softplus: apply { x, _ in sigmoidValue(x) }
    case .exp: apply { _, y in y }
    case .log: apply { x, _ in 1 / x }
    case .relu: apply { x, _ in x > 0 ? 1 : 0 }
    case .square: apply { x, _ in 2 * x }
    case .sqrt: apply { _, y in 1 / (2 * y) }
    case .abs: apply { x, _ in x > 0 ? 1 : (x < 0 ? -1 : 0) }
    }
}

extension Tensor {
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func unary(_ op: UnaryOp) -> Tensor {
        var out: [T] = uninitializedArray(count: count)
        var saved: [T]
        if op == .silu {
            // y = x·σ(x); σ(x) is kept for backward.
            saved = uninitializedArray(count: count)
            data.withUnsafeBufferPointer { x in
                saved.withUnsafeMutableBufferPointer { s in
                    out.withUnsafeMutableBufferPointer { y in
                        siluForward(x, sigmoid: s, output: y)
                    }
                }
            }
        } else {
            data.withUnsafeBufferPointer { x in out.withUnsafeMutableBufferPointer { unaryForward(op, x, $0) } }
            saved = out   // copy-on-write: shares storage
        }
        return Tensor.result(out, shape: shape, op: op.rawValue, inputs: [self]) { [unowned(unsafe) self] gy in
            guard self.requiresGrad else { return }
            self.data.withUnsafeBufferPointer { x in
                saved.withUnsafeBufferPointer { y in
                    self.withGradForOverwrite { unaryBackward(op, x: x, y: y, gy: gy, gx: $0, accumulate: $1) }
                }
            }
        }
    }

    /// x·σ(x) (a.k.a. swish).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func silu() -> Tensor { unary(.silu) }
    public func sigmoid() -> Tensor { unary(.sigmoid) }
    public func tanh() -> Tensor { unary(.tanh) }
    /// log(1 + eˣ), computed stably for large |x|.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func softplus() -> Tensor { unary(.softplus) }
    public func exp() -> Tensor { unary(.exp) }
    public func log() -> Tensor { unary(.log) }
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func relu() -> Tensor { unary(.relu) }
    public func square() -> Tensor { unary(.square) }
    public func sqrt() -> Tensor { unary(.sqrt) }
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func abs() -> Tensor { unary(.abs) }

    /// scale·x + shift, elementwise.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func affine(scale: T, shift: T = 0) -> Tensor {
        var out: [T] = uninitializedArray(count: count)
        data.withUnsafeBufferPointer { x in
            out.withUnsafeMutableBufferPointer { y in
                let xs = x.baseAddress!, ys = SharedPointer(y.baseAddress!)
                Parallel.forRanges(x.count, grain: 1 << 15) { r in
                    for i in r { ys.base[i] = scale * xs[i] + shift }
                }
            }
        }
        return Tensor.result(out, shape: shape, op: "affine", inputs: [self]) { [unowned(unsafe) self] gy in
            guard self.requiresGrad else { return }
            self.withGrad { g in for i in 0..<g.count { g[i] += scale * gy[i] } }
        }
    }

    public static prefix func - (x: Tensor) -> Tensor { x.affine(scale: -1) }
    public static func * (x: Tensor, s: T) -> Tensor { x.affine(scale: s) }
    public static func * (s: T, x: Tensor) -> Tensor { x.affine(scale: s) }
    public static func / (x: Tensor, s: T) -> Tensor { x.affine(scale: 1 / s) }
    public static func + (x: Tensor, s: T) -> Tensor { x.affine(scale: 1, shift: s) }
    public static func - (x: Tensor, s: T) -> Tensor { x.affine(scale: 1, shift: -s) }
}

// MARK: Binary with broadcasting

enum BinaryOp: String { case add, sub, mul, div }

/// NumPy broadcasting: shapes align at the right; a dimension of 1 stretches.
func broadcastShape(_ a: [Int], _ b: [Int], op: String) throws -> [Int] {
    let rank = max(a.count, b.count)
    var out = [Int](repeating: 1, count: rank)
    for i in 0..<rank {
        let da = i < rank - a.count ? 1 : a[i - (rank - a.count)]
        let db = i < rank - b.count ? 1 : b[i - (rank - b.count)]
        guard da == db || da == 1 || db == 1 else {
            throw TensorError(op, "shapes \(a) and \(b) do not broadcast (dimension \(i): \(da) vs \(db))")
        }
        out[i] = da == 1 ? db : da
    }
    return out
}

/// Strides of `shape` viewed in the broadcast `outShape` (0 along stretched dimensions).
func broadcastStrides(_ shape: [Int], to outShape: [Int]) -> [Int] {
    let pad = outShape.count - shape.count
    let own = contiguousStrides(shape)
    return (0..<outShape.count).map { i in i < pad || shape[i - pad] == 1 ? 0 : own[i - pad] }
}

/// Calls body(i, ia, ib) for every output element i in row-major order, with the matching
/// offsets of the two broadcast operands. Odometer walk: no division per element.
@inline(__always)
func broadcastWalk(_ outShape: [Int], _ sa: [Int], _ sb: [Int], _ body: (Int, Int, Int) -> Void) {
    let n = outShape.reduce(1, *)
    if n == 0 { return }
    let rank = outShape.count
    if rank == 0 { body(0, 0, 0); return }
    var idx = [Int](repeating: 0, count: rank)
    var oa = 0, ob = 0
    // Innermost dimension unrolled as a plain loop; odometer over the rest.
    let inner = outShape[rank - 1], ia = sa[rank - 1], ib = sb[rank - 1]
    var i = 0
    while i < n {
        var a = oa, b = ob
        for k in 0..<inner { body(i + k, a, b); a += ia; b += ib }
        i += inner
        var d = rank - 2
        while d >= 0 {
            idx[d] += 1; oa += sa[d]; ob += sb[d]
            if idx[d] < outShape[d] { break }
            oa -= sa[d] * outShape[d]; ob -= sb[d] * outShape[d]; idx[d] = 0
            d -= 1
        }
    }
}

@_specialize(where T == Float)
@_specialize(where T == Double)
func binaryForward<T: Scalar>(_ op: BinaryOp, _ a: UnsafeBufferPointer<T>, _ b: UnsafeBufferPointer<T>,
                              _ out: UnsafeMutableBufferPointer<T>, outShape: [Int], sa: [Int], sb: [Int]) {
    let ap = a.baseAddress!, bp = b.baseAddress!, op_ = SharedPointer(out.baseAddress!)
    @inline(__always) func run(_ f: (T, T) -> T) {
        if a.count == out.count && b.count == out.count {
            Parallel.forRanges(out.count, grain: 1 << 15) { r in for i in r { op_.base[i] = f(ap[i], bp[i]) } }
        } else {
            broadcastWalk(outShape, sa, sb) { i, ia, ib in op_.base[i] = f(ap[ia], bp[ib]) }
        }
    }
    switch op {
    case .add: run(+)
    case .sub: run(-)
    case .mul: run(*)
    case .div: run(/)
    }
}

/// ga[ia] += g[i]·∂f/∂a for every output i (sequential over broadcast operands so the sum order is
/// fixed; parallel when the operand is not broadcast).
@_specialize(where T == Float)
@_specialize(where T == Double)
func binaryBackward<T: Scalar>(_ op: BinaryOp, wrtA: Bool, a: UnsafeBufferPointer<T>, b: UnsafeBufferPointer<T>,
                               g: UnsafeBufferPointer<T>, into ga: UnsafeMutableBufferPointer<T>,
                               outShape: [Int], sa: [Int], sb: [Int]) {
    let ap = a.baseAddress!, bp = b.baseAddress!, gp = g.baseAddress!, gap = SharedPointer(ga.baseAddress!)
    @inline(__always) func run(_ d: (T, T, T) -> T) {
        let n = g.count
        if a.count == n && b.count == n {
            Parallel.forRanges(n, grain: 1 << 15) { r in for i in r { gap.base[i] += d(gp[i], ap[i], bp[i]) } }
        } else {
            broadcastWalk(outShape, sa, sb) { i, ia, ib in gap.base[wrtA ? ia : ib] += d(gp[i], ap[ia], bp[ib]) }
        }
    }
    switch (op, wrtA) {
    case (.add, _): run { g, _, _ in g }
    case (.sub, true): run { g, _, _ in g }
    case (.sub, false): run { g, _, _ in -g }
    case (.mul, true): run { g, _, b in g * b }
    case (.mul, false): run { g, a, _ in g * a }
    case (.div, true): run { g, _, b in g / b }
    case (.div, false): run { g, a, b in -g * a / (b * b) }
    }
}

extension Tensor {
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func binary(_ op: BinaryOp, _ other: Tensor) throws -> Tensor {
        let outShape = try broadcastShape(shape, other.shape, op: op.rawValue)
        let sa = broadcastStrides(shape, to: outShape), sb = broadcastStrides(other.shape, to: outShape)
        var out: [T] = uninitializedArray(count: outShape.reduce(1, *))
        data.withUnsafeBufferPointer { a in
            other.data.withUnsafeBufferPointer { b in
                out.withUnsafeMutableBufferPointer { binaryForward(op, a, b, $0, outShape: outShape, sa: sa, sb: sb) }
            }
        }
        return Tensor.result(out, shape: outShape, op: op.rawValue, inputs: [self, other]) { [unowned(unsafe) self, unowned(unsafe) other] g in
            self.data.withUnsafeBufferPointer { a in
                other.data.withUnsafeBufferPointer { b in
                    if self.requiresGrad {
                        self.withGrad { binaryBackward(op, wrtA: true, a: a, b: b, g: g, into: $0, outShape: outShape, sa: sa, sb: sb) }
                    }
                    if other.requiresGrad {
                        other.withGrad { binaryBackward(op, wrtA: false, a: a, b: b, g: g, into: $0, outShape: outShape, sa: sa, sb: sb) }
                    }
                }
            }
        }
    }

    public static func + (a: Tensor, b: Tensor) throws -> Tensor { try a.binary(.add, b) }
    public static func - (a: Tensor, b: Tensor) throws -> Tensor { try a.binary(.sub, b) }
    public static func * (a: Tensor, b: Tensor) throws -> Tensor { try a.binary(.mul, b) }
    public static func / (a: Tensor, b: Tensor) throws -> Tensor { try a.binary(.div, b) }
}
