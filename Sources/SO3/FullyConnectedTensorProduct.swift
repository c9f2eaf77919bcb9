// The fully connected ("uvw") tensor product, e3nn's FullyConnectedTensorProduct: every channel
// of every x1 entry couples with every channel of every x2 entry into every channel of each output
// entry whose irrep the product contains, with its own weight. Built from two stages that already
// run near their best here: the per-path CG products come from `ChannelwiseTensorProduct` (the
// fused sparse kernel) with constant weights, one such product per output irrep so that all the
// channels feeding one output irrep land contiguously; the channel mixing is then one BLAS GEMM per
// output entry (shared weights) or one batched GEMM (per-edge weights from a radial network).
import Foundation
import Autograd

/// One path of a fully connected product: entry `input1` of the first irreps (mul1 channels u)
/// ⊗ entry `input2` of the second (mul2 channels v) → entry `output` of the output irreps (mulOut
/// channels w), with mul1·mul2·mulOut weights starting at `weightOffset` (layout in
/// `FullyConnectedTensorProduct`).
public struct FullyConnectedPath: Equatable, Sendable {
    public let input1: Int, input2: Int, output: Int
    public let mul1: Int, mul2: Int, mulOut: Int
    public let weightOffset: Int
    public var weightCount: Int { mul1 * mul2 * mulOut }
}

/// out[e, w, M] of output entry o = 1/√fan(o) · Σ_{paths (i1, i2) into o} Σ_{u,v} W[path, v, u, w]
/// · Σ_{m1,m2} C[M, m1, m2] x1[e, i1, u, m1] x2[e, i2, v, m2], with fan(o) = Σ over the paths into
/// o of mul1·mul2 (e3nn's "component" irrep and "element" path normalisation: unit-variance
/// inputs and N(0, 1) weights give unit-variance outputs). Paths are every (x1 entry, x2 entry,
/// output entry) whose output irrep occurs in ir1 ⊗ ir2 (|l1−l2| ≤ L ≤ l1+l2 and p1·p2 = p);
/// output entries no path reaches are zero.
///
/// **Weight layout** (the same for the internal parameter, external shared weights [weightCount]
/// and per-edge weights [edges, weightCount]): output entries in order; within one, its paths in
/// order (x1 entry outer, x2 entry inner, as `paths` lists them); within a path, index
/// ((v·mul1 + u)·mulOut + w) from the path's `weightOffset`. So each output entry owns one
/// contiguous row-major [fan(o), mulOut] matrix whose row k = (earlier paths' mul1·mul2) + v·mul1 + u.
/// For the common x2 of multiplicity 1 (spherical harmonics) a path's block is e3nn's [u, w]; the
/// path order differs from e3nn's (grouped by output entry here).
///
/// Weight modes, like e3nn's `internal_weights` / `shared_weights`: built with a `ParameterSet`,
/// the product owns one N(0, 1) parameter "<name>.weight" [weightCount] and is called as
/// `tp(x1, x2)`; built without one, weights are passed at call time, either [weightCount] (shared
/// by all edges) or [edges, weightCount] (per edge, e.g. from a radial MLP).
public struct FullyConnectedTensorProduct<T: Scalar> {
    public let irreps1: Irreps, irreps2: Irreps, irrepsOut: Irreps
    public let paths: [FullyConnectedPath]
    /// Σ over paths of mul1·mul2·mulOut.
    public let weightCount: Int
    /// The internal shared weights [weightCount]; nil when weights are passed at call time.
    public let weight: Tensor<T>?

    /// All CG products into one output irrep: a channel-wise product over x1 and the x2 entries
    /// split into single channels (same data layout), so its output is fan × (2L+1), mul-major,
    /// in weight-row order. `scale` is its constant per-edge weight (see init).
    struct Group {
        let irrep: Irrep
        let product: ChannelwiseTensorProduct<T>
        /// The same product writing [2L+1][fan] rows: the shared-weight GEMM's layout, no permute.
        let mMajorProduct: ChannelwiseTensorProduct<T>
        let fan: Int
        let scale: T
    }
    let groups: [Group]
    /// Per output entry: its group (nil: no path reaches it, the entry is zero) and weight offset.
    let outputs: [(group: Int?, weightOffset: Int)]

    /// Weights passed at call time ([weightCount] shared or [edges, weightCount] per edge).
    public init(irreps1: Irreps, irreps2: Irreps, irrepsOut: Irreps) throws {
        try self.init(irreps1: irreps1, irreps2: irreps2, irrepsOut: irrepsOut, parameters: nil)
    }

    /// Internal shared weights: one parameter "<name>.weight" [weightCount], N(0, 1).
    public init(_ params: ParameterSet<T>, name: String, irreps1: Irreps, irreps2: Irreps, irrepsOut: Irreps) throws {
        try self.init(irreps1: irreps1, irreps2: irreps2, irrepsOut: irrepsOut, parameters: (params, name))
    }

    private init(irreps1: Irreps, irreps2: Irreps, irrepsOut: Irreps, parameters: (ParameterSet<T>, String)?) throws {
        for (irreps, which) in [(irreps1, "irreps1"), (irreps2, "irreps2"), (irrepsOut, "irrepsOut")] {
            if let l = irreps.lmax, l > so3MaxL {
                throw SO3Error.angularMomentumOutOfRange(l: l, max: so3MaxL, context: "FullyConnectedTensorProduct \(which) \(irreps)")
            }
        }
        self.irreps1 = irreps1; self.irreps2 = irreps2; self.irrepsOut = irrepsOut
        // "3x1o" and "1o+1o+1o" have the same data layout, so x2 channels become single-channel
        // entries and the channel-wise kernel covers general mul2. `owner[j]` = (x2 entry, v).
        var split: [MulIrrep] = [], owner: [(entry: Int, v: Int)] = []
        for (i, e) in irreps2.entries.enumerated() {
            for v in 0 ..< max(e.mul, 0) { split.append(MulIrrep(1, e.irrep)); owner.append((i, v)) }
        }
        let irreps2Split = Irreps(split)
        var groups: [Group] = [], groupOf: [Irrep: Int] = [:], unreached: Set<Irrep> = []
        var outputs: [(group: Int?, weightOffset: Int)] = [], paths: [FullyConnectedPath] = []
        var offset = 0
        for (o, eo) in irrepsOut.entries.enumerated() {
            if groupOf[eo.irrep] == nil && !unreached.contains(eo.irrep) {
                let product = try ChannelwiseTensorProduct<T>(irreps1: irreps1, irreps2: irreps2Split, lmaxOut: eo.irrep.l,
                                                              allowedOutputs: [eo.irrep])
                if product.paths.isEmpty {
                    unreached.insert(eo.irrep)
                } else {
                    // The channel-wise product divides each path by √(its paths into this irrep)
                    // (n single-channel paths here); a constant weight √(n / fan) turns that into
                    // this product's 1/√fan, at no extra pass over the data.
                    let n = product.paths.count, fan = product.weightCount
                    let mMajor = try ChannelwiseTensorProduct<T>(irreps1: irreps1, irreps2: irreps2Split, lmaxOut: eo.irrep.l,
                                                                 allowedOutputs: [eo.irrep], mMajorOutput: true)
                    groups.append(Group(irrep: eo.irrep, product: product, mMajorProduct: mMajor, fan: fan,
                                        scale: T((Double(n) / Double(fan)).squareRoot())))
                    groupOf[eo.irrep] = groups.count - 1
                }
            }
            let g = groupOf[eo.irrep]
            outputs.append((g, offset))
            guard let g, eo.mul > 0 else { continue }
            // Consecutive single-channel paths from one (x1 entry, x2 entry) form one path.
            for p in groups[g].product.paths {
                let (i2, v) = owner[p.input2]
                if v == 0 {
                    let mul2 = irreps2.entries[i2].mul
                    paths.append(FullyConnectedPath(input1: p.input1, input2: i2, output: o, mul1: p.mul, mul2: mul2,
                                                    mulOut: eo.mul, weightOffset: offset))
                    offset += p.mul * mul2 * eo.mul
                }
            }
        }
        self.groups = groups; self.outputs = outputs; self.paths = paths
        weightCount = offset
        weight = try parameters.map { params, name in
            try params.create("\(name).weight", shape: [offset], initializer: .normal(std: 1))
        }
    }

    /// Uses the internal shared weights.
    public func callAsFunction(_ x1: Tensor<T>, _ x2: Tensor<T>) throws -> Tensor<T> {
        guard let weight else {
            throw TensorError("FullyConnectedTensorProduct", "built without internal weights: pass weights [\(weightCount)] (shared) or [edges, \(weightCount)] (per edge)")
        }
        return try self(x1, x2, weights: weight)
    }

    /// x1 [E, irreps1.dim], x2 [E, irreps2.dim], weights [weightCount] (shared by all edges) or
    /// [E, weightCount] (per edge) → [E, irrepsOut.dim].
    public func callAsFunction(_ x1: Tensor<T>, _ x2: Tensor<T>, weights: Tensor<T>) throws -> Tensor<T> {
        let op = "FullyConnectedTensorProduct"
        guard x1.rank == 2, x1.shape[1] == irreps1.dim else {
            throw TensorError(op, "input 1: expected features [rows, \(irreps1.dim)] for irreps \(irreps1), got shape \(x1.shape)")
        }
        let edges = x1.shape[0]
        guard x2.rank == 2, x2.shape == [edges, irreps2.dim] else {
            throw TensorError(op, "input 2: expected [\(edges), \(irreps2.dim)] for irreps \(irreps2) (rows as input 1), got shape \(x2.shape)")
        }
        let perEdge = weights.rank == 2
        guard weights.shape == [weightCount] || weights.shape == [edges, weightCount] else {
            throw TensorError(op, "weights: expected [\(weightCount)] (shared) or [\(edges), \(weightCount)] (per edge), got shape \(weights.shape)")
        }
        guard edges > 0 else { return Tensor<T>(zeros: [0, irrepsOut.dim]) }
        // Per group, the unmixed products in the layout the mixing GEMM wants: [E, fan, 2L+1] for
        // the batched per-edge product, [E·(2L+1), fan] for the shared one.
        var mixed: [Tensor<T>?] = Array(repeating: nil, count: groups.count)
        func products(_ g: Int) throws -> Tensor<T> {
            if let y = mixed[g] { return y }
            let group = groups[g], d = group.irrep.dim
            let unit = Tensor<T>(repeating: group.scale, shape: [edges, group.product.weightCount])
            let y = perEdge ? try group.product(x1, x2, weights: unit).reshaped([edges, group.fan, d])
                            : try group.mMajorProduct(x1, x2, weights: unit).reshaped([edges * d, group.fan])
            mixed[g] = y
            return y
        }
        var parts: [Tensor<T>] = []
        for (eo, out) in zip(irrepsOut.entries, outputs) where eo.mul > 0 {
            let d = eo.irrep.dim
            guard let g = out.group else {
                parts.append(Tensor<T>(zeros: [edges, eo.dim]))
                continue
            }
            let y = try products(g), fan = groups[g].fan
            let range = out.weightOffset ..< out.weightOffset + fan * eo.mul
            var z: Tensor<T>
            if perEdge {
                // [E, fan, mulOut]ᵀ · [E, fan, 2L+1] → [E, mulOut, 2L+1], already e3nn's layout.
                let w = try weights.slice(axis: 1, range).reshaped([edges, fan, eo.mul])
                z = try w.bmm(y, transposeA: true)
            } else {
                z = try y.matmul(try weights.slice(axis: 0, range).reshaped([fan, eo.mul]))
                if d > 1 { z = try z.reshaped([edges, d, eo.mul]).permuted([0, 2, 1]) }
            }
            parts.append(try z.reshaped([edges, eo.dim]))
        }
        if parts.isEmpty { return Tensor<T>(zeros: [edges, 0]) }
        return parts.count == 1 ? parts[0] : try Tensor.concat(parts, axis: 1)
    }

    /// FLOPs per edge of one forward pass by the conventional count: 2 per CG non-zero per
    /// (u, v) channel pair (the products) and 2 per multiply-add of the mixing, 2·fan·(2L+1)·mulOut
    /// per output entry. The constant scaling inside the channel-wise stage is not counted.
    public func forwardFlopsPerEdge() throws -> (products: Double, mixing: Double) {
        var products = 0.0, mixing = 0.0
        for group in groups {
            for p in group.product.paths {
                let l1 = irreps1.entries[p.input1].irrep.l, l2 = group.product.irreps2.entries[p.input2].irrep.l
                products += Double(2 * (try ClebschGordan.real(l1, l2, p.output.l)).nonZeros.count * p.mul)
            }
        }
        for (eo, out) in zip(irrepsOut.entries, outputs) {
            if let g = out.group { mixing += Double(2 * groups[g].fan * eo.irrep.dim * eo.mul) }
        }
        return (products, mixing)
    }
}
