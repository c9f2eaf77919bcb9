// Differentiable equivariant building blocks on the Autograd tensor engine: channel mixing per
// irrep (`EquivariantLinear`), the channel-wise tensor product with per-edge weights
// (`ChannelwiseTensorProduct`) and the gate non-linearity (`Gate`). Feature tensors are
// [rows, irreps.dim] in e3nn's layout (per entry, `mul` blocks of 2l+1 components). Every block
// is composed of Autograd's public ops, except the tensor product, which is one fused custom op
// (per-edge dense products through T = C·x2, hand-written backward: FusedTensorProduct.swift)
// because composing it from ~5 generic ops per CG path ran at ~1 % of sgemm peak.
import Foundation
import Autograd
import Linalg
import Structures

extension Irreps {
    /// Applies the block-diagonal D(R) of these irreps to every row of a row-major
    /// [rows, dim] array in place (x ↦ x Dᵀ per row): rotates features for tests and augmentation.
    public func rotate<T: BinaryFloatingPoint>(_ data: inout [T], rotation: Rotation) throws {
        let n = dim
        guard n > 0 else { return }
        guard data.count % n == 0 else {
            throw SO3Error.shapeMismatch(context: "features for irreps \(self) (whole rows of \(n))", expected: (data.count / n) * n, got: data.count)
        }
        let improper = rotation.determinant < 0
        let proper = improper ? Rotation(rows: -rotation.rows.0, -rotation.rows.1, -rotation.rows.2) : rotation
        let ds = try WignerD.matrices(lmax: lmax ?? 0, rotation: proper)
        var tmp = [Double](repeating: 0, count: 2 * (lmax ?? 0) + 1)
        for row in 0 ..< data.count / n {
            var o = row * n
            for e in entries {
                let d = e.irrep.dim, sign = improper ? Double(e.irrep.p) : 1, dl = ds[e.irrep.l]
                for _ in 0 ..< e.mul {
                    for i in 0 ..< d {
                        var s = 0.0
                        for j in 0 ..< d { s += dl[i * d + j] * Double(data[o + j]) }
                        tmp[i] = sign * s
                    }
                    for i in 0 ..< d { data[o + i] = T(tmp[i]) }
                    o += d
                }
            }
        }
    }
}

func checkFeatures<T: Scalar>(_ x: Tensor<T>, _ irreps: Irreps, _ what: String) throws {
    guard x.rank == 2, x.shape[1] == irreps.dim else {
        throw TensorError(what, "expected features [rows, \(irreps.dim)] for irreps \(irreps), got shape \(x.shape)")
    }
}

/// Mixes channels of equal irreps: out_o = Σ_{i: irrep_i = irrep_o} x_i · W_io / √(Σ mul_i), plus a
/// bias on 0e outputs. Weights W_io [mul_i, mul_o] start N(0, 1) (e3nn's normalisation, so unit
/// variance inputs give unit variance outputs). Outputs with no matching input are zero.
public struct EquivariantLinear<T: Scalar> {
    public let irrepsIn: Irreps, irrepsOut: Irreps
    /// (input entry, output entry, weight).
    public let weights: [(input: Int, output: Int, weight: Tensor<T>)]
    public let biases: [Int: Tensor<T>]
    /// Per output entry, its terms and fan-in: grouped once, not per call.
    private let termsByOutput: [(terms: [(input: Int, output: Int, weight: Tensor<T>)], fanIn: Int)]

    public init(_ params: ParameterSet<T>, name: String, irrepsIn: Irreps, irrepsOut: Irreps, bias: Bool = true) throws {
        self.irrepsIn = irrepsIn; self.irrepsOut = irrepsOut
        var w: [(input: Int, output: Int, weight: Tensor<T>)] = []
        var b: [Int: Tensor<T>] = [:]
        for (o, eo) in irrepsOut.entries.enumerated() {
            for (i, ei) in irrepsIn.entries.enumerated() where ei.irrep == eo.irrep && ei.mul > 0 && eo.mul > 0 {
                w.append((i, o, try params.create("\(name).w\(i)_\(o)", shape: [ei.mul, eo.mul], initializer: .normal(std: 1))))
            }
            if bias && eo.irrep == Irrep(unchecked: 0, 1) && eo.mul > 0 {
                b[o] = try params.create("\(name).b\(o)", shape: [eo.mul], initializer: .zeros)
            }
        }
        weights = w; biases = b
        termsByOutput = irrepsOut.entries.indices.map { o in
            let terms = w.filter { $0.output == o }
            return (terms, terms.reduce(0) { $0 + irrepsIn.entries[$1.input].mul })
        }
    }

    public func callAsFunction(_ x: Tensor<T>) throws -> Tensor<T> {
        try checkFeatures(x, irrepsIn, "EquivariantLinear")
        let rows = x.shape[0], inSlices = irrepsIn.slices
        var parts: [Tensor<T>] = []
        for (o, eo) in irrepsOut.entries.enumerated() {
            let d = eo.irrep.dim
            let (terms, fanIn) = termsByOutput[o]
            var acc: Tensor<T>? = nil
            for t in terms {
                let mi = irrepsIn.entries[t.input].mul
                var xi = try x.slice(axis: 1, inSlices[t.input])
                if d > 1 { xi = try xi.reshaped([rows, mi, d]).permuted([0, 2, 1]) }
                let y = try xi.reshaped([rows * d, mi]).matmul(t.weight)
                acc = try acc.map { try $0 + y } ?? y
            }
            guard var out = acc else {
                parts.append(Tensor<T>(zeros: [rows, eo.dim]))
                continue
            }
            out = out * T(1 / Double(fanIn).squareRoot())
            if d > 1 { out = try out.reshaped([rows, d, eo.mul]).permuted([0, 2, 1]) }
            out = try out.reshaped([rows, eo.dim])
            if let bias = biases[o] { out = try out + bias }
            parts.append(out)
        }
        return parts.count == 1 ? parts[0] : try Tensor.concat(parts, axis: 1)
    }

    /// The layer on features laid out entry by entry (a tensor product's output for prediction):
    /// each term's input matrix is already the [rows·(2l+1), mul] matrix that the [rows, dim]
    /// path makes by slice + permute, so the same matrix products run on it in place, and the
    /// sums, scaling and bias follow in the same order: bit for bit the same output, without the
    /// input's copies (the input can be 10² MB, the product on 10⁴ edges, and slicing one entry's
    /// columns out of it per term missed the caches on every row). Nothing is recorded.
    public func callAsFunction(_ x: EntryMajorFeatures<T>) throws -> Tensor<T> {
        guard x.irreps == irrepsIn else {
            throw TensorError("EquivariantLinear", "expected features of irreps \(irrepsIn), got \(x.irreps)")
        }
        let rows = x.rows, outWidth = irrepsOut.dim
        let inSlices = irrepsIn.slices, outSlices = irrepsOut.slices
        var out: [T] = uninitializedArray(count: rows * outWidth)
        guard rows > 0 else { return Tensor(zeros: [0, outWidth]) }
        let maxOut = irrepsOut.entries.map(\.dim).max() ?? 0
        let sum = UnsafeMutablePointer<T>.allocate(capacity: max(1, rows * maxOut))
        let product = UnsafeMutablePointer<T>.allocate(capacity: max(1, rows * maxOut))
        defer { sum.deallocate(); product.deallocate() }
        let workers = Parallel.workers
        x.data.withUnsafeBufferPointer { xb in
            out.withUnsafeMutableBufferPointer { ob in
                for (o, eo) in irrepsOut.entries.enumerated() {
                    let d = eo.irrep.dim, mo = eo.mul
                    let (terms, fanIn) = termsByOutput[o]
                    let dst = ob.baseAddress! + outSlices[o].lowerBound
                    guard !terms.isEmpty else {
                        for r in 0 ..< rows { (dst + r * outWidth).initialize(repeating: 0, count: eo.dim) }
                        continue
                    }
                    for (k, t) in terms.enumerated() {
                        t.weight.data.withUnsafeBufferPointer { w in
                            BLAS.gemmBatched(batch: 1, workers: workers, m: rows * d, n: mo, k: irrepsIn.entries[t.input].mul,
                                             a: xb.baseAddress! + rows * inSlices[t.input].lowerBound,
                                             b: w.baseAddress!, c: k == 0 ? sum : product)
                        }
                        if k > 0 { Self.accumulate(product, into: sum, count: rows * eo.dim) }
                    }
                    let scale = T(1 / Double(fanIn).squareRoot())
                    if let bias = biases[o] {
                        bias.data.withUnsafeBufferPointer { b in
                            Self.finish(sum, rows: rows, mul: mo, dim: d, scale: scale, bias: b.baseAddress!, into: dst, stride: outWidth)
                        }
                    } else {
                        Self.finish(sum, rows: rows, mul: mo, dim: d, scale: scale, bias: nil, into: dst, stride: outWidth)
                    }
                }
            }
        }
        return try Tensor(out, shape: [rows, outWidth])
    }

    // This type is generic and not specialised, so its element loops call the kernels below
    // with concrete types (a generic call would run them unspecialised, ~10× slower).
    private static func accumulate(_ product: UnsafePointer<T>, into sum: UnsafeMutablePointer<T>, count: Int) {
        if T.self == Float.self {
            equivariantLinearAccumulate(UnsafeRawPointer(product).assumingMemoryBound(to: Float.self),
                                        into: UnsafeMutableRawPointer(sum).assumingMemoryBound(to: Float.self), count: count)
        } else if T.self == Double.self {
            equivariantLinearAccumulate(UnsafeRawPointer(product).assumingMemoryBound(to: Double.self),
                                        into: UnsafeMutableRawPointer(sum).assumingMemoryBound(to: Double.self), count: count)
        } else {
            equivariantLinearAccumulate(product, into: sum, count: count)
        }
    }

    private static func finish(_ sum: UnsafePointer<T>, rows: Int, mul: Int, dim: Int, scale: T, bias: UnsafePointer<T>?,
                               into dst: UnsafeMutablePointer<T>, stride: Int) {
        if T.self == Float.self {
            equivariantLinearFinish(UnsafeRawPointer(sum).assumingMemoryBound(to: Float.self), rows: rows, mul: mul, dim: dim,
                                    scale: unsafeBitCast(scale, to: Float.self),
                                    bias: bias.map { UnsafeRawPointer($0).assumingMemoryBound(to: Float.self) },
                                    into: UnsafeMutableRawPointer(dst).assumingMemoryBound(to: Float.self), stride: stride)
        } else if T.self == Double.self {
            equivariantLinearFinish(UnsafeRawPointer(sum).assumingMemoryBound(to: Double.self), rows: rows, mul: mul, dim: dim,
                                    scale: unsafeBitCast(scale, to: Double.self),
                                    bias: bias.map { UnsafeRawPointer($0).assumingMemoryBound(to: Double.self) },
                                    into: UnsafeMutableRawPointer(dst).assumingMemoryBound(to: Double.self), stride: stride)
        } else {
            equivariantLinearFinish(sum, rows: rows, mul: mul, dim: dim, scale: scale, bias: bias, into: dst, stride: stride)
        }
    }
}

/// Features of `rows` rows laid out entry by entry: the entry at offset f of a row (mul channels
/// of 2l+1 components) as its [rows·(2l+1), mul] matrix — row r·(2l+1) + m holds component m of
/// every channel of row r — starting at rows·f. `ChannelwiseTensorProduct.entryMajor` writes it
/// and `EquivariantLinear` reads it, so the layer multiplies its input matrices in place.
public struct EntryMajorFeatures<T: Scalar> {
    public let rows: Int
    public let irreps: Irreps
    public let data: [T]
}

/// sum += product, elementwise: the taped path's running `acc + y` over an output entry's terms.
@inline(__always)
func equivariantLinearAccumulate<T: Scalar>(_ product: UnsafePointer<T>, into sum: UnsafeMutablePointer<T>, count: Int) {
    for i in 0 ..< count { sum[i] = sum[i] + product[i] }
}

/// Output entry = sum · scale (+ bias), from [rows·dim, mul] into e3nn's [rows][mul][dim] layout
/// at `stride`: the taped path's `affine(scale:)`, permute and broadcast add, value by value.
@inline(__always)
func equivariantLinearFinish<T: Scalar>(_ sum: UnsafePointer<T>, rows: Int, mul: Int, dim: Int, scale: T, bias: UnsafePointer<T>?,
                                        into dst: UnsafeMutablePointer<T>, stride: Int) {
    for r in 0 ..< rows {
        let o = dst + r * stride
        for m in 0 ..< dim {
            let p = sum + (r * dim + m) * mul
            for v in 0 ..< mul {
                var value = scale * p[v] + 0   // as `affine(scale:)`: the rounded product, then + 0
                if let bias { value = value + bias[v] }
                o[v * dim + m] = value
            }
        }
    }
}

/// One coupling of the channel-wise tensor product: entry `input1` (mul u, l1) of the first
/// irreps with entry `input2` (mul 1, l2) of the second, to L, giving u copies of L with parity
/// p1·p2, each scaled by its own per-edge weight.
public struct TensorProductPath: Equatable, Sendable {
    public let input1: Int, input2: Int
    public let output: Irrep
    public let mul: Int
}

/// out_path[e, u, M] = w[e, path, u] · Σ C[M, m1, m2] x1[e, u, m1] x2[e, m2] / √(paths into the
/// same output irrep), the "uvu" product of DeepH-E3/NequIP edge updates with weights from a
/// radial network. Output irreps are the paths in order (not simplified); follow with an
/// `EquivariantLinear` to mix them.
public struct ChannelwiseTensorProduct<T: Scalar> {
    public let irreps1: Irreps, irreps2: Irreps, irrepsOut: Irreps
    public let paths: [TensorProductPath]
    /// Per-edge weights needed: Σ over paths of their multiplicity.
    public let weightCount: Int
    /// Flat CG non-zeros and offsets for the fused kernel (FusedTensorProduct.swift).
    package let plan: FusedTensorProductPlan

    /// All paths with L ≤ lmaxOut (and, if given, output irreps among `allowedOutputs`).
    public init(irreps1: Irreps, irreps2: Irreps, lmaxOut: Int, allowedOutputs: Set<Irrep>? = nil) throws {
        try self.init(irreps1: irreps1, irreps2: irreps2, lmaxOut: lmaxOut, allowedOutputs: allowedOutputs, mMajorOutput: false)
    }

    /// With `mMajorOutput` (module-internal, for products whose paths all have the same L, as in
    /// `FullyConnectedTensorProduct`), each output row is laid out [2L+1][weightCount] — component
    /// M outermost, then the channels of every path in weight order — instead of e3nn's per-path
    /// [mul][2L+1], so a channel-mixing GEMM can read it without a permute. Same values otherwise.
    init(irreps1: Irreps, irreps2: Irreps, lmaxOut: Int, allowedOutputs: Set<Irrep>?, mMajorOutput: Bool) throws {
        for e in irreps2.entries where e.mul != 1 {
            throw SO3Error.badIrrepsString(irreps2.description, reason: "the channel-wise product needs multiplicity 1 in the second operand (e.g. spherical harmonics), got \(e)")
        }
        self.irreps1 = irreps1; self.irreps2 = irreps2
        var paths: [TensorProductPath] = []
        for (i1, e1) in irreps1.entries.enumerated() where e1.mul > 0 {
            for (i2, e2) in irreps2.entries.enumerated() {
                for out in e1.irrep * e2.irrep where out.l <= lmaxOut && (allowedOutputs?.contains(out) ?? true) {
                    paths.append(TensorProductPath(input1: i1, input2: i2, output: out, mul: e1.mul))
                }
            }
        }
        self.paths = paths
        irrepsOut = Irreps(paths.map { MulIrrep($0.mul, $0.output) })
        weightCount = paths.reduce(0) { $0 + $1.mul }
        plan = try FusedTensorProductPlan(irreps1: irreps1, irreps2: irreps2, paths: paths, mMajorOutput: mMajorOutput)
    }

    /// x1 [E, irreps1.dim], x2 [E, irreps2.dim], weights [E, weightCount] → [E, irrepsOut.dim].
    public func callAsFunction(_ x1: Tensor<T>, _ x2: Tensor<T>, weights: Tensor<T>) throws -> Tensor<T> {
        _ = try checkedEdgeCount(x1, x2, weights: weights)
        return try fusedProduct(x1, x2, weights: weights)
    }

    /// Checks both inputs against their irreps and the weights against the edge count; returns it.
    func checkedEdgeCount(_ x1: Tensor<T>, _ x2: Tensor<T>, weights: Tensor<T>) throws -> Int {
        try checkFeatures(x1, irreps1, "ChannelwiseTensorProduct input 1")
        try checkFeatures(x2, irreps2, "ChannelwiseTensorProduct input 2")
        let edges = x1.shape[0]
        guard x2.shape[0] == edges, weights.shape == [edges, weightCount] else {
            throw TensorError("ChannelwiseTensorProduct", "inputs have \(x1.shape[0]) and \(x2.shape[0]) rows and weights \(weights.shape); expected weights [\(edges), \(weightCount)]")
        }
        return edges
    }
}

/// Gate non-linearity: input = scalars ⊕ gates ⊕ gated, output = act(scalars) ⊕ σ(gates)·gated.
/// Even scalars (0e) pass through SiLU, odd ones (0o) through tanh (odd, so parity is kept);
/// gates must be 0e, one per gated irrep copy.
public struct Gate<T: Scalar> {
    public let scalars: Irreps, gates: Irreps, gated: Irreps
    public var irrepsIn: Irreps { scalars + gates + gated }
    public var irrepsOut: Irreps { scalars + gated }

    public init(scalars: Irreps, gated: Irreps) throws {
        for e in scalars.entries where e.irrep.l != 0 {
            throw SO3Error.badIrrepsString(scalars.description, reason: "gate scalars must have l = 0, got \(e)")
        }
        self.scalars = scalars; self.gated = gated
        gates = gated.count > 0 ? Irreps([MulIrrep(gated.count, Irrep(unchecked: 0, 1))]) : Irreps([])
    }

    public func callAsFunction(_ x: Tensor<T>) throws -> Tensor<T> {
        try checkFeatures(x, irrepsIn, "Gate")
        let rows = x.shape[0]
        var parts: [Tensor<T>] = []
        var o = 0
        for e in scalars.entries where e.mul > 0 {
            let s = try x.slice(axis: 1, o ..< o + e.dim)
            parts.append(e.irrep.p == 1 ? s.silu() : s.tanh())
            o += e.dim
        }
        let nGates = gated.count
        let g = try x.slice(axis: 1, o ..< o + nGates).sigmoid()
        o += nGates
        var gi = 0
        for e in gated.entries where e.mul > 0 {
            let v = try x.slice(axis: 1, o ..< o + e.dim).reshaped([rows, e.mul, e.irrep.dim])
            let gate = try g.slice(axis: 1, gi ..< gi + e.mul).reshaped([rows, e.mul, 1])
            parts.append(try (v * gate).reshaped([rows, e.dim]))
            o += e.dim; gi += e.mul
        }
        if parts.isEmpty { return Tensor<T>(zeros: [rows, 0]) }
        return parts.count == 1 ? parts[0] : try Tensor.concat(parts, axis: 1)
    }
}

/// Equivariant layer norm over each row's channels, per irreps entry: 0e channels are centred and
/// scaled to unit variance (then γ, β); every other entry is divided by the root mean square of
/// its components, √(mean over channels and m of x² + ε), then scaled by a per-channel γ. Norms
/// are rotation invariant and there is no shift on non-scalars, so the map is equivariant.
public struct EquivariantLayerNorm<T: Scalar> {
    public let irreps: Irreps
    public let gammas: [Tensor<T>]
    public let betas: [Int: Tensor<T>]
    public let epsilon: T

    public init(_ params: ParameterSet<T>, name: String, irreps: Irreps, epsilon: T = 1e-5) throws {
        self.irreps = irreps; self.epsilon = epsilon
        var g: [Tensor<T>] = [], b: [Int: Tensor<T>] = [:]
        for (i, e) in irreps.entries.enumerated() {
            g.append(try params.create("\(name).gamma\(i)", shape: [max(e.mul, 0)], initializer: .ones))
            if e.irrep == Irrep(unchecked: 0, 1) { b[i] = try params.create("\(name).beta\(i)", shape: [e.mul], initializer: .zeros) }
        }
        gammas = g; betas = b
    }

    public func callAsFunction(_ x: Tensor<T>) throws -> Tensor<T> {
        try checkFeatures(x, irreps, "EquivariantLayerNorm")
        let rows = x.shape[0]
        var parts: [Tensor<T>] = []
        for (i, (e, range)) in zip(irreps.entries, irreps.slices).enumerated() where e.mul > 0 {
            var v = try x.slice(axis: 1, range).reshaped([rows, e.mul, e.irrep.dim])
            if let beta = betas[i] {
                v = try v - v.mean(axes: [1, 2], keepDims: true)
                let scale = (try v.square().mean(axes: [1, 2], keepDims: true) + epsilon).sqrt()
                v = try (try v / scale) * gammas[i].reshaped([1, e.mul, 1]) + beta.reshaped([1, e.mul, 1])
            } else {
                let scale = (try v.square().mean(axes: [1, 2], keepDims: true) + epsilon).sqrt()
                v = try (try v / scale) * gammas[i].reshaped([1, e.mul, 1])
            }
            parts.append(try v.reshaped([rows, e.dim]))
        }
        if parts.isEmpty { return Tensor<T>(zeros: [rows, 0]) }
        return parts.count == 1 ? parts[0] : try Tensor.concat(parts, axis: 1)
    }
}

extension SphericalHarmonics {
    /// Harmonics of many vectors as a constant tensor [vectors.count, dim] (edge attributes of an
    /// equivariant network), evaluated in Double and rounded once to T.
    public func tensor<T: Scalar>(_ vectors: [Vec3], normalizeInput: Bool = true) throws -> Tensor<T> {
        var values = [Double](repeating: 0, count: vectors.count * dim)
        values.withUnsafeMutableBufferPointer { buf in
            for (k, v) in vectors.enumerated() {
                evaluate(v, normalizeInput: normalizeInput, values: buf.baseAddress! + k * dim, gradients: nil)
            }
        }
        return try Tensor<T>(values.map { T($0) }, shape: [vectors.count, dim])
    }
}
