// Stage 2 of the HarmoSE hybrid: a graph Transformer that refines stage 1's baseline Hamiltonian.
// Owns `Stage2Config` (JSON, documented defaults), the input featurisation of stage 1's outputs
// (`Stage2Inputs`: invariants per l and channel, raw components, radial basis, spherical
// harmonics of r̂ up to `sh_lmax`), the Transformer blocks (`Stage2Network`) and the two ways of
// producing ΔH:
//   - `empirical` (the paper's): every input, raw equivariant components included, goes through
//     ordinary non-linear layers and a per-group linear read-out gives ΔH. Nothing makes it
//     equivariant; it learns equivariance from stage 1's features (and rotation augmentation).
//   - `strict`: the Transformer only ever sees invariants, and ΔH's irreps are invariant-weighted
//     combinations of stage 1's equivariant vectors of the same L (hidden node/edge features,
//     the baseline H irreps, Y_L(r̂)), mapped to blocks by the same Clebsch–Gordan matrix as
//     stage 1. Equivariance then holds by construction, to rounding.
// The hybrid model, targets and the frozen-stage-1 fitting loop are in Stage2Hybrid.swift.
import Autograd
import Foundation
import SO3
import Structures

public enum Stage2Mode: String, Codable, Sendable, CaseIterable {
    case empirical, strict
}

/// Hyper-parameters of stage 2. JSON keys are the property names in snake_case; every key has a
/// default.
public struct Stage2Config: Codable, Equatable, Sendable {
    public var mode: Stage2Mode = .empirical
    /// Spherical harmonics of the edge direction, l = 0…shLmax (the paper uses 7; SO3 allows 8).
    public var shLmax = 7
    /// Bessel radial basis of |r| (times the smooth envelope), own to stage 2.
    public var radialCount = 16
    /// Cutoff of the radial basis in Å; nil takes stage 1's.
    public var cutoff: Double?
    /// Width of node and edge hidden vectors.
    public var width = 64
    /// Attention heads; must divide `width`.
    public var heads = 4
    /// Transformer blocks.
    public var layers = 2
    /// Hidden width of the feed-forward and edge-update MLPs.
    public var feedForward = 128
    /// Bound of the uniform initialisation of the ΔH read-out, relative to 1/√fan-in. Small, so
    /// the hybrid starts as stage 1 and stage 2 learns a correction.
    public var outputInit = 0.1
    /// Training only: rotate each structure (and its target blocks) at random every epoch.
    public var augmentRotations = false
    public var seed: UInt64 = 0
    /// The block groups stage 2 corrects ("on:C", "off:C-N"); blocks of the other groups keep
    /// stage 1's prediction (ΔH = 0). nil: every group stage 1 has. `harmose refine` sets it to the
    /// groups of its training data: a group no training structure has would only get untrained
    /// read-out weights (a random ΔH) and half of a five-element model's parameters.
    public var groups: [String]?

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable {
        case mode, shLmax = "sh_lmax", radialCount = "radial_count", cutoff, width, heads, layers
        case feedForward = "feed_forward", outputInit = "output_init", augmentRotations = "augment_rotations", seed, groups
    }

    /// The JSON keys a configuration file may use (unknown ones are rejected).
    public static var jsonKeys: [String] { CodingKeys.allCases.map(\.rawValue) }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = Stage2Config()
        if let raw = try c.decodeIfPresent(String.self, forKey: .mode) {
            guard let m = Stage2Mode(rawValue: raw) else {
                throw ModelError.badConfig(field: "stage2.mode", message: "must be \"empirical\" or \"strict\", got \"\(raw)\"")
            }
            mode = m
        }
        shLmax = try c.decodeIfPresent(Int.self, forKey: .shLmax) ?? d.shLmax
        radialCount = try c.decodeIfPresent(Int.self, forKey: .radialCount) ?? d.radialCount
        cutoff = try c.decodeIfPresent(Double.self, forKey: .cutoff)
        width = try c.decodeIfPresent(Int.self, forKey: .width) ?? d.width
        heads = try c.decodeIfPresent(Int.self, forKey: .heads) ?? d.heads
        layers = try c.decodeIfPresent(Int.self, forKey: .layers) ?? d.layers
        feedForward = try c.decodeIfPresent(Int.self, forKey: .feedForward) ?? d.feedForward
        outputInit = try c.decodeIfPresent(Double.self, forKey: .outputInit) ?? d.outputInit
        augmentRotations = try c.decodeIfPresent(Bool.self, forKey: .augmentRotations) ?? d.augmentRotations
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? d.seed
        groups = try c.decodeIfPresent([String].self, forKey: .groups)
    }

    /// Checks ranges; names the offending key (prefixed "stage2.").
    public func validate() throws {
        func bad(_ f: String, _ m: String) -> ModelError { .badConfig(field: "stage2.\(f)", message: m) }
        guard (0 ... so3MaxL).contains(shLmax) else { throw bad("sh_lmax", "must be 0…\(so3MaxL), got \(shLmax)") }
        guard radialCount >= 1 else { throw bad("radial_count", "must be ≥ 1, got \(radialCount)") }
        if let c = cutoff, !(c > 0 && c.isFinite) { throw bad("cutoff", "must be a positive number of Å, got \(c)") }
        guard width >= 1 else { throw bad("width", "must be ≥ 1, got \(width)") }
        guard heads >= 1, width % heads == 0 else { throw bad("heads", "must be ≥ 1 and divide width \(width), got \(heads)") }
        guard layers >= 0 else { throw bad("layers", "must be ≥ 0, got \(layers)") }
        guard feedForward >= 1 else { throw bad("feed_forward", "must be ≥ 1, got \(feedForward)") }
        guard outputInit >= 0, outputInit.isFinite else { throw bad("output_init", "must be ≥ 0, got \(outputInit)") }
        for name in groups ?? [] where BlockGroup(name: name) == nil {
            throw bad("groups", "\"\(name)\" is not a block group: write \"on:C\" (on-site blocks of C) or \"off:C-N\" (C–N blocks)")
        }
    }

    /// Whether stage 2 corrects the blocks of `group`.
    public func corrects(_ group: BlockGroup) -> Bool {
        groups.map { $0.contains(group.description) } ?? true
    }
}

// MARK: - Invariants of irreps features

/// Rotation-invariant functions of irreps features, per channel: squared norms of l > 0
/// channels, inner products of matching channels of two feature sets, and projections onto the
/// edge harmonics Y_l(r̂). Inputs are [rows, irreps.dim].
enum IrrepsInvariants {
    /// The l = 0 components as they are: [rows, Σ mul of l = 0].
    static func scalars<T>(_ x: Tensor<T>, _ irreps: Irreps) throws -> Tensor<T>? {
        let parts = try zip(irreps.entries, irreps.slices).filter { $0.0.irrep.l == 0 && $0.0.mul > 0 }.map { try x.slice(axis: 1, $0.1) }
        return parts.isEmpty ? nil : try Tensor.concat(parts, axis: 1)
    }

    /// Per l > 0 channel: Σ_m a_m b_m (b = a gives the squared norm). [rows, Σ mul of l > 0].
    static func products<T>(_ a: Tensor<T>, _ b: Tensor<T>, _ irreps: Irreps) throws -> Tensor<T>? {
        let rows = a.shape[0]
        var parts: [Tensor<T>] = []
        for (e, r) in zip(irreps.entries, irreps.slices) where e.irrep.l > 0 && e.mul > 0 {
            let p = a === b ? try a.slice(axis: 1, r).square() : try a.slice(axis: 1, r) * b.slice(axis: 1, r)
            parts.append(try p.reshaped([rows, e.mul, e.irrep.dim]).sum(axes: [2]))
        }
        return parts.isEmpty ? nil : try Tensor.concat(parts, axis: 1)
    }

    /// √(|x_c|² + ε) per l > 0 channel: norms that stay differentiable at zero.
    static func norms<T>(_ x: Tensor<T>, _ irreps: Irreps) throws -> Tensor<T>? {
        try products(x, x, irreps).map { ($0 + T(1e-6)).sqrt() }
    }

    /// Per l > 0 channel with l ≤ lmax of `harmonics` [rows, (lmax+1)²]: Σ_m x_m Y_lm(r̂).
    static func projections<T>(_ x: Tensor<T>, _ irreps: Irreps, harmonics y: Tensor<T>, lmax: Int) throws -> Tensor<T>? {
        let rows = x.shape[0]
        var parts: [Tensor<T>] = []
        for (e, r) in zip(irreps.entries, irreps.slices) where e.irrep.l > 0 && e.irrep.l <= lmax && e.mul > 0 {
            let l = e.irrep.l
            let yl = try y.slice(axis: 1, l * l ..< (l + 1) * (l + 1)).reshaped([rows, 1, 2 * l + 1])
            parts.append(try (try x.slice(axis: 1, r).reshaped([rows, e.mul, 2 * l + 1]) * yl).sum(axes: [2]))
        }
        return parts.isEmpty ? nil : try Tensor.concat(parts, axis: 1)
    }
}

// MARK: - Geometry

/// Stage 2's view of the edge geometry: harmonics of r̂ up to its own lmax and its own radial
/// basis, recomputed from the batch's edge vectors (stage 1's harmonics stop at its sh_lmax).
public struct Stage2Geometry<T: Scalar> {
    /// [E, (shLmax+1)²], component normalisation like stage 1.
    public let harmonics: Tensor<T>
    /// [E, radialCount].
    public let radial: Tensor<T>

    public init(harmonics: Tensor<T>, radial: Tensor<T>) { self.harmonics = harmonics; self.radial = radial }

    /// The geometry of several single-structure batches as that of their concatenated batch.
    public static func concatenated(_ parts: [Stage2Geometry]) throws -> Stage2Geometry {
        if parts.count == 1 { return parts[0] }
        return Stage2Geometry(harmonics: try Tensor.concat(parts.map(\.harmonics), axis: 0), radial: try Tensor.concat(parts.map(\.radial), axis: 0))
    }

    public init(_ batch: GraphBatch<T>, shLmax: Int, radialCount: Int, cutoff: Double) throws {
        var vectors: [Vec3] = []
        vectors.reserveCapacity(batch.edgeCount)
        for g in batch.graphs { for e in g.edges { vectors.append(e.vector) } }
        guard vectors.count == batch.edgeCount else {
            throw ModelError.badInput("stage 2: batch has \(batch.edgeCount) edges but its graphs list \(vectors.count)")
        }
        try self.init(vectors: vectors, shLmax: shLmax, radialCount: radialCount, cutoff: cutoff)
    }

    /// The geometry of edges with these vectors (r_j + R − r_i), row by row.
    public init(vectors: [Vec3], shLmax: Int, radialCount: Int, cutoff: Double) throws {
        let sh = try SphericalHarmonics(lmax: shLmax, normalization: .component)
        var y = [T](repeating: 0, count: vectors.count * sh.dim)
        var buffer = [Double](repeating: 0, count: sh.dim)
        for (k, v) in vectors.enumerated() {
            buffer.withUnsafeMutableBufferPointer { sh.evaluate(v, normalizeInput: true, values: $0.baseAddress!, gradients: nil) }
            for c in 0 ..< sh.dim { y[k * sh.dim + c] = T(buffer[c]) }
        }
        harmonics = try Tensor(y, shape: [vectors.count, sh.dim])
        if vectors.isEmpty {
            radial = Tensor(zeros: [0, radialCount])
        } else {
            let r = try Tensor<T>(vectors.map { T(norm($0)) }, shape: [vectors.count])
            let basis = try RadialBasis.bessel(r, count: radialCount, cutoff: cutoff)
            let envelope = try RadialBasis.cutoffEnvelope(r, cutoff: cutoff).reshaped([vectors.count, 1])
            radial = try (basis * envelope).detached()
        }
    }

    /// Stage 2's geometry for `stage2`'s configuration.
    public init(vectors: [Vec3], for stage2: Stage2Network<T>) throws {
        try self.init(vectors: vectors, shLmax: stage2.config.shLmax, radialCount: stage2.config.radialCount, cutoff: stage2.cutoff)
    }
}

// MARK: - Network

struct Stage2Attention<T: Scalar> {
    let query: Linear<T>, key: Linear<T>, value: Linear<T>, output: Linear<T>
    let norm1: LayerNorm<T>, feedForward: MLP<T>, norm2: LayerNorm<T>
    let edgeUpdate: MLP<T>, edgeNorm: LayerNorm<T>
    let heads: Int

    init(_ p: ParameterSet<T>, name: String, width d: Int, heads: Int, hidden: Int) throws {
        query = try Linear(p, name: "\(name).query", inFeatures: d, outFeatures: d)
        key = try Linear(p, name: "\(name).key", inFeatures: 2 * d, outFeatures: d)
        value = try Linear(p, name: "\(name).value", inFeatures: 2 * d, outFeatures: d)
        output = try Linear(p, name: "\(name).out", inFeatures: d, outFeatures: d)
        norm1 = try LayerNorm(p, name: "\(name).norm1", features: d)
        feedForward = try MLP(p, name: "\(name).ff", widths: [d, hidden, d])
        norm2 = try LayerNorm(p, name: "\(name).norm2", features: d)
        edgeUpdate = try MLP(p, name: "\(name).edge", widths: [3 * d, hidden, d])
        edgeNorm = try LayerNorm(p, name: "\(name).edge_norm", features: d)
        self.heads = heads
    }

    /// One block: every node attends over its incoming edges (i → j delivers to j); queries
    /// from j, keys and values from i together with the edge. Then residual + LayerNorm, a
    /// feed-forward residual + LayerNorm, and the edge update from both ends.
    func callAsFunction(nodes h: Tensor<T>, edges z: Tensor<T>, source: RowIndex, target: RowIndex) throws -> (Tensor<T>, Tensor<T>) {
        let nodes = try attend(nodes: h, sources: z.shape[0] > 0 ? try h.gatherRows(source) : h, edges: z, target: target)
        guard z.shape[0] > 0 else { return (nodes, z) }
        return (nodes, try updateEdges(z, source: try nodes.gatherRows(source), target: try nodes.gatherRows(target)))
    }

    /// The node half of the block for some nodes h [n, d] (a chunk, or all): `z` [e, d] are the
    /// edges entering them, `sources` [e, d] the features of those edges' source nodes and
    /// `target` the position in `h` of each edge's target. A node's edges are reduced in their
    /// order in `z`. Returns the nodes' new features.
    func attend(nodes h: Tensor<T>, sources hs: Tensor<T>, edges z: Tensor<T>, target: RowIndex) throws -> Tensor<T> {
        let n = h.shape[0], e = z.shape[0], d = h.shape[1], dk = d / heads
        var nodes = h
        if e > 0 {
            let q = try query(h).gatherRows(target)
            let sourceAndEdge = try Tensor.concat([hs, z], axis: 1)
            let k = try key(sourceAndEdge), v = try value(sourceAndEdge)
            let scores = try (try q * k).reshaped([e, heads, dk]).sum(axes: [2]) * T(1 / Double(dk).squareRoot())
            let alpha = try scores.segmentSoftmax(target)
            let messages = try (try v.reshaped([e, heads, dk]) * alpha.reshaped([e, heads, 1])).reshaped([e, d])
            nodes = try norm1(try nodes + output(try messages.segmentSum(target)))
        } else {
            nodes = try norm1(try nodes + output(Tensor(zeros: [n, d])))
        }
        return try norm2(try nodes + feedForward(nodes))
    }

    /// The edge half: edges z [e, d] updated from their ends' new node features.
    func updateEdges(_ z: Tensor<T>, source: Tensor<T>, target: Tensor<T>) throws -> Tensor<T> {
        try edgeNorm(try z + edgeUpdate(try Tensor.concat([source, target, z], axis: 1)))
    }
}

/// How stage 1's outputs for one block group feed stage 2 and how ΔH is read out for it.
struct Stage2Group<T: Scalar> {
    let group: BlockGroup
    /// Stage 1's head: its irreps, CG compose matrix and output scaling.
    let irreps: Irreps
    let compose: Tensor<T>
    let scale: Tensor<T>, shift: Tensor<T>
    /// Baseline-H features → hidden width (added to the row's embedding).
    let embed: Linear<T>
    /// Empirical read-out: hidden → irreps coefficients.
    let readout: Linear<T>?
    /// Strict read-out: per output entry, hidden → mul_out × (channels of that L).
    let weights: [Linear<T>]
}

public final class Stage2Network<T: Scalar> {
    public let config: Stage2Config
    public let parameters: ParameterSet<T>
    /// Stage 1's hidden irreps (the features stage 2 reads).
    public let hiddenIrreps: Irreps
    public let cutoff: Double
    let nodeEmbed: Linear<T>, nodeEmbed2: Linear<T>, nodeEmbedNorm: LayerNorm<T>
    let edgeEmbed: Linear<T>, edgeEmbed2: Linear<T>, edgeEmbedNorm: LayerNorm<T>
    let blocks: [Stage2Attention<T>]
    let groups: [BlockGroup: Stage2Group<T>]

    /// Builds stage 2 on top of `stage1` (its irreps, block groups, compose matrices and output
    /// statistics are shared, not copied: later changes to stage 1's statistics apply).
    public init(config: Stage2Config, stage1: HamiltonianModel<T>) throws {
        try config.validate()
        self.config = config
        let p = ParameterSet<T>(seed: config.seed)
        parameters = p
        hiddenIrreps = stage1.hiddenIrreps
        cutoff = config.cutoff ?? stage1.config.cutoff
        let d = config.width
        let hidden = hiddenIrreps
        let strict = config.mode == .strict
        let scalarCount = hidden.entries.filter { $0.irrep.l == 0 }.reduce(0) { $0 + $1.mul }
        let vectorCount = hidden.count - scalarCount
        let projectable = hidden.entries.filter { $0.irrep.l > 0 && $0.irrep.l <= config.shLmax }.reduce(0) { $0 + $1.mul }
        let shDim = (config.shLmax + 1) * (config.shLmax + 1)
        // Node: scalars + norms of x (+ raw x). Edge: radial, scalars of e/xi/xj, norms of
        // e/xi/xj, pairwise products e·xi, e·xj, xi·xj, projections on Y (+ raw e/xi/xj/Y).
        let nodeIn = scalarCount + vectorCount + (strict ? 0 : hidden.dim)
        let edgeIn = config.radialCount + 3 * scalarCount + 6 * vectorCount + 3 * projectable + (strict ? 0 : 3 * hidden.dim + shDim)
        nodeEmbed = try Linear(p, name: "embed.node", inFeatures: nodeIn, outFeatures: d)
        nodeEmbed2 = try Linear(p, name: "embed.node2", inFeatures: d, outFeatures: d)
        nodeEmbedNorm = try LayerNorm(p, name: "embed.node_norm", features: d)
        edgeEmbed = try Linear(p, name: "embed.edge", inFeatures: edgeIn, outFeatures: d)
        edgeEmbed2 = try Linear(p, name: "embed.edge2", inFeatures: d, outFeatures: d)
        edgeEmbedNorm = try LayerNorm(p, name: "embed.edge_norm", features: d)
        blocks = try (0 ..< config.layers).map {
            try Stage2Attention(p, name: "block\($0)", width: d, heads: config.heads, hidden: config.feedForward)
        }

        var groups: [BlockGroup: Stage2Group<T>] = [:]
        for g in stage1.groups where config.corrects(g) {
            let h = stage1.heads[g]!
            let tag = g.onsite ? "on_\(Elements.symbol(of: g.zi)!)" : "off_\(Elements.symbol(of: g.zi)!)_\(Elements.symbol(of: g.zj)!)"
            let irreps = h.irreps
            let hScalars = irreps.entries.filter { $0.irrep.l == 0 }.reduce(0) { $0 + $1.mul }
            let hVectors = irreps.count - hScalars
            let hProjectable = irreps.entries.filter { $0.irrep.l > 0 && $0.irrep.l <= config.shLmax }.reduce(0) { $0 + $1.mul }
            let embedIn = hScalars + hVectors + (g.onsite ? 0 : hProjectable) + (strict ? 0 : irreps.dim)
            let embed = try Linear(p, name: "group.\(tag).embed", inFeatures: embedIn, outFeatures: d)
            let bound = config.outputInit / Double(d).squareRoot()
            var readout: Linear<T>? = nil
            var weights: [Linear<T>] = []
            if strict {
                for (k, entry) in irreps.entries.enumerated() {
                    let channels = Stage2Network.channelCount(l: entry.irrep.l, onsite: g.onsite, hidden: hidden, block: irreps, shLmax: config.shLmax)
                    weights.append(try Linear(p, name: "group.\(tag).weights\(k)", inFeatures: d, outFeatures: entry.mul * channels,
                                              initializer: .uniform(bound: bound)))
                }
            } else {
                readout = try Linear(p, name: "group.\(tag).readout", inFeatures: d, outFeatures: irreps.dim, initializer: .uniform(bound: bound))
            }
            // Zero read-out biases: with small weights, ΔH starts near zero.
            for layer in weights + [readout].compactMap({ $0 }) { layer.bias?.data = [T](repeating: 0, count: layer.bias!.count) }
            groups[g] = Stage2Group(group: g, irreps: irreps, compose: h.compose, scale: h.scale, shift: h.shift,
                                    embed: embed, readout: readout, weights: weights)
        }
        self.groups = groups
    }

    /// Channels of degree l that strict mode combines: stage 1's hidden channels of that l (node
    /// features for on-site blocks; edge, source and target features for off-site ones), the
    /// baseline block's own irreps of that l, and Y_l(r̂) for off-site blocks.
    static func channelCount(l: Int, onsite: Bool, hidden: Irreps, block: Irreps, shLmax: Int) -> Int {
        let h = hidden.entries.filter { $0.irrep.l == l }.reduce(0) { $0 + $1.mul }
        let b = block.entries.filter { $0.irrep.l == l }.reduce(0) { $0 + $1.mul }
        return (onsite ? h : 3 * h) + b + (!onsite && l <= shLmax ? 1 : 0)
    }

    public var trainableCount: Int { parameters.trainable.reduce(0) { $0 + $1.count } }

    /// ΔH per block group, rows in `batch.groupBlocks` order, in eV (the stage-1 layout).
    public func callAsFunction(_ batch: GraphBatch<T>, stage1 out: ModelOutput<T>) throws -> [BlockGroup: Tensor<T>] {
        let geometry = try Stage2Geometry<T>(batch, shLmax: config.shLmax, radialCount: config.radialCount, cutoff: cutoff)
        return try callAsFunction(batch, stage1: out, geometry: geometry)
    }

    public func callAsFunction(_ batch: GraphBatch<T>, stage1 out: ModelOutput<T>, geometry: Stage2Geometry<T>) throws -> [BlockGroup: Tensor<T>] {
        let hidden = hiddenIrreps
        let n = batch.nodeCount, e = batch.edgeCount, d = config.width
        let x = out.nodeFeatures, ef = out.edgeFeatures
        let y = geometry.harmonics
        guard x.shape == [n, hidden.dim], ef.shape == [e, hidden.dim], y.shape[0] == e else {
            throw ModelError.badInput("stage 2: stage-1 features \(x.shape)/\(ef.shape) do not fit the batch (\(n) nodes, \(e) edges, irreps dim \(hidden.dim))")
        }
        var baseline: [BlockGroup: Tensor<T>] = [:]
        for (g, blocksTensor) in out.blocks {
            // A group stage 2 does not correct keeps stage 1's blocks and feeds nothing in.
            if groups[g] != nil { baseline[g] = try normalizedBaseline(g, blocksTensor) }
        }
        var xi: Tensor<T> = Tensor(zeros: [0, hidden.dim]), xj = xi
        if e > 0 { xi = try x.gatherRows(batch.source); xj = try x.gatherRows(batch.target) }
        var nodePre = try nodeInput(x)
        var edgePre = e > 0 ? try edgeInput(edge: ef, source: xi, target: xj, geometry: geometry) : Tensor<T>(zeros: [0, d])
        // Per-group baseline-H features, scattered onto their rows (each row is in one group).
        for g in baseline.keys.sorted() {
            guard let rows = batch.groupRows[g] else { continue }
            let contribution = try groupInput(g, baseline: baseline[g]!, harmonics: g.onsite ? nil : try y.gatherRows(rows)).scatterAdd(rows)
            if g.onsite { nodePre = try nodePre + contribution } else { edgePre = try edgePre + contribution }
        }
        var h = try embedNodes(nodePre)
        var z = e > 0 ? try embedEdges(edgePre) : Tensor<T>(zeros: [0, d])
        for block in blocks {
            (h, z) = try block(nodes: h, edges: z, source: batch.source, target: batch.target)
        }
        var delta: [BlockGroup: Tensor<T>] = [:]
        for g in baseline.keys.sorted() {
            guard let rows = batch.groupRows[g] else { continue }
            let equivariant = g.onsite ? [try x.gatherRows(rows)] : [try ef.gatherRows(rows), try xi.gatherRows(rows), try xj.gatherRows(rows)]
            delta[g] = try readout(g, features: try (g.onsite ? h : z).gatherRows(rows), baseline: baseline[g]!,
                                   equivariant: equivariant, harmonics: g.onsite ? nil : try y.gatherRows(rows))
        }
        return delta
    }

    // The pieces of the forward pass, each on any subset of rows (the whole structure above, a
    // chunk of atoms in `predictLayerwise`): every row's result depends only on that row's inputs.

    /// Baseline H irreps normalised back to stage 1's head output y = (B·Cᵀ − shift)/scale
    /// (C is orthogonal), so stage 2 reads order-one numbers whatever the energy scale.
    func normalizedBaseline(_ g: BlockGroup, _ blocks: Tensor<T>) throws -> Tensor<T> {
        let sg = groups[g]!
        return try (try blocks.matmul(sg.compose, transposeB: true) - sg.shift) / sg.scale
    }

    /// Node embedding before its group term: invariants of stage 1's node features x [rows, hidden].
    func nodeInput(_ x: Tensor<T>) throws -> Tensor<T> {
        var parts: [Tensor<T>] = []
        if let s = try IrrepsInvariants.scalars(x, hiddenIrreps) { parts.append(s) }
        if let v = try IrrepsInvariants.norms(x, hiddenIrreps) { parts.append(v) }
        if config.mode != .strict { parts.append(x) }
        return try nodeEmbed(try Tensor.concat(parts, axis: 1))
    }

    /// Edge embedding before its group term, from stage 1's edge features and the features of the
    /// edge's source and target nodes (rows: edges) and stage 2's geometry of those edges.
    func edgeInput(edge ef: Tensor<T>, source xi: Tensor<T>, target xj: Tensor<T>, geometry: Stage2Geometry<T>) throws -> Tensor<T> {
        let hidden = hiddenIrreps, y = geometry.harmonics
        var parts: [Tensor<T>] = [geometry.radial]
        for f in [ef, xi, xj] { if let s = try IrrepsInvariants.scalars(f, hidden) { parts.append(s) } }
        for f in [ef, xi, xj] { if let v = try IrrepsInvariants.norms(f, hidden) { parts.append(v) } }
        for (a, b) in [(ef, xi), (ef, xj), (xi, xj)] { if let v = try IrrepsInvariants.products(a, b, hidden) { parts.append(v) } }
        for f in [ef, xi, xj] {
            if let v = try IrrepsInvariants.projections(f, hidden, harmonics: y, lmax: config.shLmax) { parts.append(v) }
        }
        if config.mode != .strict { parts += [ef, xi, xj, y] }
        return try edgeEmbed(try Tensor.concat(parts, axis: 1))
    }

    /// The baseline-H term of the embedding of rows of group g (its normalised baseline; the
    /// edge harmonics for off-site groups).
    func groupInput(_ g: BlockGroup, baseline b: Tensor<T>, harmonics y: Tensor<T>?) throws -> Tensor<T> {
        let sg = groups[g]!
        var parts: [Tensor<T>] = []
        if let s = try IrrepsInvariants.scalars(b, sg.irreps) { parts.append(s) }
        if let v = try IrrepsInvariants.norms(b, sg.irreps) { parts.append(v) }
        if let y, let v = try IrrepsInvariants.projections(b, sg.irreps, harmonics: y, lmax: config.shLmax) { parts.append(v) }
        if config.mode != .strict { parts.append(b) }
        return try sg.embed(try Tensor.concat(parts, axis: 1))
    }

    func embedNodes(_ pre: Tensor<T>) throws -> Tensor<T> { try nodeEmbedNorm(try nodeEmbed2(pre.silu())) }
    func embedEdges(_ pre: Tensor<T>) throws -> Tensor<T> { try edgeEmbedNorm(try edgeEmbed2(pre.silu())) }

    /// ΔH [rows, n_i·n_j] (eV) of rows of group g from stage 2's final features of those rows,
    /// their normalised baseline, stage 1's equivariant features (on-site: [x]; off-site:
    /// [edge, source node, target node]) and, off-site, the edge harmonics.
    func readout(_ g: BlockGroup, features: Tensor<T>, baseline: Tensor<T>, equivariant: [Tensor<T>], harmonics y: Tensor<T>?) throws -> Tensor<T> {
        let sg = groups[g]!
        let coefficients = try sg.readout.map { try $0(features) }
            ?? strictCoefficients(sg, features: features, baseline: baseline, equivariant: equivariant, harmonics: y)
        return try (try coefficients * sg.scale).matmul(sg.compose)
    }

    /// Strict mode: for each output entry (mul_o, L), out[r, u, :] = Σ_c w[r, u, c] F[r, c, :] / √C
    /// with F the channels of degree L listed in `channelCount` and w from invariant features.
    func strictCoefficients(_ sg: Stage2Group<T>, features: Tensor<T>, baseline: Tensor<T>, equivariant equivariantSources: [Tensor<T>],
                            harmonics y: Tensor<T>?) throws -> Tensor<T> {
        let r = features.shape[0]
        let hidden = hiddenIrreps
        var channelsOfL: [Int: Tensor<T>] = [:]
        func channels(_ l: Int) throws -> Tensor<T> {
            if let c = channelsOfL[l] { return c }
            var parts: [Tensor<T>] = []
            for f in equivariantSources {
                for (entry, range) in zip(hidden.entries, hidden.slices) where entry.irrep.l == l && entry.mul > 0 {
                    parts.append(try f.slice(axis: 1, range).reshaped([r, entry.mul, 2 * l + 1]))
                }
            }
            for (entry, range) in zip(sg.irreps.entries, sg.irreps.slices) where entry.irrep.l == l && entry.mul > 0 {
                parts.append(try baseline.slice(axis: 1, range).reshaped([r, entry.mul, 2 * l + 1]))
            }
            if let y, l <= config.shLmax {
                parts.append(try y.slice(axis: 1, l * l ..< (l + 1) * (l + 1)).reshaped([r, 1, 2 * l + 1]))
            }
            let c = try Tensor.concat(parts, axis: 1)
            channelsOfL[l] = c
            return c
        }
        var outputs: [Tensor<T>] = []
        for (k, entry) in sg.irreps.entries.enumerated() {
            let l = entry.irrep.l
            let f = try channels(l)
            let count = f.shape[1]
            let w = try sg.weights[k](features).reshaped([r, entry.mul, count]) * T(1 / Double(count).squareRoot())
            outputs.append(try w.bmm(f).reshaped([r, entry.mul * (2 * l + 1)]))
        }
        return try Tensor.concat(outputs, axis: 1)
    }
}
