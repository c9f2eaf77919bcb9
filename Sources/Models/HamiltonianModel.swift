// The stage-1 network (DeepH-E3 design): species embedding; edge embedding = radial basis × spherical
// harmonics through a channel-wise tensor product; `layers` interaction blocks, each an edge update
// (mix both end nodes with the edge, tensor product with the edge harmonics weighted by a radial
// MLP, gate, residual, equivariant layer norm) and a node update (sum of edge messages, gate,
// residual, layer norm); one equivariant head per block group mapping features to the group's
// irreps, then the fixed Clebsch–Gordan map to the block.
//
// Parity (E(3) equivariance): orbital parities multiply, so the irreps of an (l1, l2) block are
// L = |l1−l2|…l1+l2, each with parity (−1)^(l1+l2) (s–p: 1o; p–p: 0e+1e+2e; p–d: 1o+2o+3o).
// The heads output exactly those irreps, so a mirror image of the structure gives the mirrored
// Hamiltonian, not just a rotated one. Hidden irreps may hold both parities; the tensor products
// keep every path the product rules allow (1o ⊗ 1o → 1e, …), and an irrep a head needs whose L is
// in the configured hidden irreps only with the other parity is added to the hidden irreps with
// that entry's multiplicity (DeepH-E3 likewise widens its last irreps to the needed parities), so
// older SH-parity-only configs still build.
import Autograd
import Foundation
import SO3
import Structures

/// What one forward pass produces.
public struct ModelOutput<T: Scalar> {
    /// Per group: predicted blocks [rows, n_i·n_j], row-major in the internal orbital order, in
    /// the order of `GraphBatch.groupBlocks[group]`. In eV.
    public let blocks: [BlockGroup: Tensor<T>]
    /// Final equivariant node features [N, hiddenIrreps.dim] (stage 2 consumes them).
    public let nodeFeatures: Tensor<T>
    /// Final equivariant edge features [E, hiddenIrreps.dim], in the batch's edge order.
    public let edgeFeatures: Tensor<T>

    public init(blocks: [BlockGroup: Tensor<T>], nodeFeatures: Tensor<T>, edgeFeatures: Tensor<T>) {
        self.blocks = blocks; self.nodeFeatures = nodeFeatures; self.edgeFeatures = edgeFeatures
    }

    /// The outputs of several single-structure batches as those of their concatenated batch
    /// (`GraphBatch` orders nodes, edges and each group's rows structure by structure).
    public static func concatenated(_ parts: [ModelOutput]) throws -> ModelOutput {
        if parts.count == 1 { return parts[0] }
        var blocks: [BlockGroup: Tensor<T>] = [:]
        for g in Set(parts.flatMap { $0.blocks.keys }) {
            blocks[g] = try Tensor.concat(parts.compactMap { $0.blocks[g] }, axis: 0)
        }
        return ModelOutput(blocks: blocks, nodeFeatures: try Tensor.concat(parts.map(\.nodeFeatures), axis: 0),
                           edgeFeatures: try Tensor.concat(parts.map(\.edgeFeatures), axis: 0))
    }
}

/// Fixed output scaling of one block group: prediction = compose(scale · y + shift), with shift
/// nonzero only on L = 0 irreps (so it cannot break equivariance).
public struct GroupStatistics: Equatable, Sendable {
    public var scale: Double
    public var shift: [Double]
    public init(scale: Double, shift: [Double]) { self.scale = scale; self.shift = shift }
}

/// One block group's head: features → irreps (equivariant linear) → block (fixed CG matrix).
struct BlockHead<T: Scalar> {
    let group: BlockGroup
    let decomposition: AtomPairDecomposition
    let irreps: Irreps
    let linear: EquivariantLinear<T>
    /// [irreps.dim, n_i·n_j]: row f is the block of the f-th unit irreps vector.
    let compose: Tensor<T>
    let scale: Tensor<T>, shift: Tensor<T>
    /// Indices of L = 0 components within the irreps vector.
    let scalarComponents: [Int]
}

struct Interaction<T: Scalar> {
    let edgeMix: EquivariantLinear<T>
    let edgeProduct: ChannelwiseTensorProduct<T>
    let edgeRadial: MLP<T>
    let edgeOut: EquivariantLinear<T>
    let edgeGate: Gate<T>
    let edgeNorm: EquivariantLayerNorm<T>
    let nodeMessage: EquivariantLinear<T>
    let nodeMix: EquivariantLinear<T>
    let nodeGate: Gate<T>
    let nodeNorm: EquivariantLayerNorm<T>
}

public final class HamiltonianModel<T: Scalar> {
    public let config: ModelConfig
    public let parameters: ParameterSet<T>
    /// Hidden irreps of nodes and edges: the configured irreps with scalars first.
    public let hiddenIrreps: Irreps
    public let shIrreps: Irreps
    public let groups: [BlockGroup]
    let nodeEmbedding: EquivariantLinear<T>
    let edgeEmbedProduct: ChannelwiseTensorProduct<T>
    let edgeEmbedRadial: MLP<T>
    let edgeEmbedLinear: EquivariantLinear<T>
    let interactions: [Interaction<T>]
    let heads: [BlockGroup: BlockHead<T>]

    public init(config: ModelConfig) throws {
        try config.validate()
        guard !config.basis.isEmpty else { throw ModelError.badConfig(field: "basis", message: "no elements (it is filled in from the training data)") }
        self.config = config
        let params = ParameterSet<T>(seed: config.seed)
        parameters = params
        let parsed: Irreps
        do { parsed = try Irreps(config.irreps) } catch {
            throw ModelError.badConfig(field: "irreps", message: "\(error)")
        }
        let shells = config.shells
        let elements = config.elements
        groups = BlockGroup.all(elements: elements)
        var decompositions: [BlockGroup: AtomPairDecomposition] = [:]
        for g in groups { decompositions[g] = try AtomPairDecomposition(rows: shells[g.zi]!, cols: shells[g.zj]!) }
        let completed = try HamiltonianModel.completingParity(parsed, for: decompositions, configured: config.irreps)
        let scalars = Irreps(completed.entries.filter { $0.irrep.l == 0 && $0.mul > 0 })
        let gated = Irreps(completed.entries.filter { $0.irrep.l > 0 && $0.mul > 0 })
        guard scalars.entries.contains(where: { $0.irrep == (try! Irrep(0, 1)) }) else {
            throw ModelError.badConfig(field: "irreps", message: "needs scalar (0e) channels for the gates, got \(config.irreps)")
        }
        hiddenIrreps = scalars + gated
        let hidden = hiddenIrreps
        shIrreps = Irreps.sphericalHarmonics(lmax: config.shLmax)
        let allowed = Set(hidden.entries.map(\.irrep))
        let lmax = hidden.lmax ?? 0
        let speciesIrreps = try Irreps("\(elements.count)x0e")

        nodeEmbedding = try EquivariantLinear(params, name: "embed.node", irrepsIn: speciesIrreps, irrepsOut: hidden)
        let pairIrreps = try Irreps("\(2 * elements.count)x0e")
        edgeEmbedProduct = try ChannelwiseTensorProduct(irreps1: pairIrreps, irreps2: shIrreps, lmaxOut: lmax, allowedOutputs: allowed)
        edgeEmbedRadial = try MLP(params, name: "embed.edge.radial", widths: [config.radialCount, config.radialHidden, edgeEmbedProduct.weightCount])
        edgeEmbedLinear = try EquivariantLinear(params, name: "embed.edge.linear", irrepsIn: edgeEmbedProduct.irrepsOut, irrepsOut: hidden)

        var blocks: [Interaction<T>] = []
        for k in 0 ..< config.layers {
            let p = "layer\(k)"
            let edgeGate = try Gate<T>(scalars: scalars, gated: gated)
            // In the first block every edge input (edge embedding, scalar node embeddings) is a
            // function of that edge's vector u alone, and no pseudo-tensor (parity −(−1)^L: 1e,
            // 2o, 0o, …) can be built from one vector: those paths are zero up to round-off, and the
            // layer norm would blow that round-off up by 1/√ε into non-equivariant noise. So the
            // first block keeps only the harmonics' parities; later blocks see several directions
            // through the aggregated node features and use every path the product rules allow.
            let outputs = k == 0 ? allowed.filter { $0.p == ($0.l % 2 == 0 ? 1 : -1) } : allowed
            let product = try ChannelwiseTensorProduct<T>(irreps1: hidden, irreps2: shIrreps, lmaxOut: lmax, allowedOutputs: outputs)
            let nodeGate = try Gate<T>(scalars: scalars, gated: gated)
            blocks.append(Interaction(
                edgeMix: try EquivariantLinear(params, name: "\(p).edge.mix", irrepsIn: hidden + hidden + hidden, irrepsOut: hidden),
                edgeProduct: product,
                edgeRadial: try MLP(params, name: "\(p).edge.radial", widths: [config.radialCount, config.radialHidden, product.weightCount]),
                edgeOut: try EquivariantLinear(params, name: "\(p).edge.out", irrepsIn: product.irrepsOut, irrepsOut: edgeGate.irrepsIn),
                edgeGate: edgeGate,
                edgeNorm: try EquivariantLayerNorm(params, name: "\(p).edge.norm", irreps: hidden),
                nodeMessage: try EquivariantLinear(params, name: "\(p).node.message", irrepsIn: hidden, irrepsOut: hidden),
                nodeMix: try EquivariantLinear(params, name: "\(p).node.mix", irrepsIn: hidden + hidden, irrepsOut: nodeGate.irrepsIn),
                nodeGate: nodeGate,
                nodeNorm: try EquivariantLayerNorm(params, name: "\(p).node.norm", irreps: hidden)))
        }
        interactions = blocks

        var heads: [BlockGroup: BlockHead<T>] = [:]
        for g in groups {
            let d = decompositions[g]!
            // The decomposition's irreps carry the physical parity (−1)^(l1+l2) per shell pair.
            let outIrreps = d.irreps
            for e in outIrreps.entries where !allowed.contains(e.irrep) {
                throw ModelError.badConfig(field: "irreps", message: "blocks \(g) need irrep \(e.irrep), absent from \(config.irreps)")
            }
            var c = [T](repeating: 0, count: d.dim * d.dim)
            var unit = [Double](repeating: 0, count: d.dim)
            for f in 0 ..< d.dim {
                unit[f] = 1
                let block = try d.compose(unit)
                for k in 0 ..< d.dim { c[f * d.dim + k] = T(block[k]) }
                unit[f] = 0
            }
            var scalarComponents: [Int] = []
            for (e, r) in zip(outIrreps.entries, outIrreps.slices) where e.irrep.l == 0 { scalarComponents += Array(r) }
            let tag = g.onsite ? "on_\(Elements.symbol(of: g.zi)!)" : "off_\(Elements.symbol(of: g.zi)!)_\(Elements.symbol(of: g.zj)!)"
            let scale = try params.create("stats.\(tag).scale", shape: [1], initializer: .ones)
            let shift = try params.create("stats.\(tag).shift", shape: [d.dim], initializer: .zeros)
            scale.requiresGrad = false; shift.requiresGrad = false
            // Heads start small so the untrained model predicts about the per-group mean
            // (the statistics' shift) instead of noise of size σ.
            let head = try EquivariantLinear<T>(params, name: "head.\(tag)", irrepsIn: hidden, irrepsOut: outIrreps)
            for w in head.weights { w.weight.data = w.weight.data.map { $0 * T(config.headInitScale) } }
            heads[g] = BlockHead(group: g, decomposition: d, irreps: outIrreps,
                                 linear: head,
                                 compose: try Tensor(c, shape: [d.dim, d.dim]), scale: scale, shift: shift,
                                 scalarComponents: scalarComponents)
        }
        self.heads = heads
    }

    /// The configured hidden irreps plus, for every irrep the blocks need that is present only
    /// with the other parity, a copy of that entry with the needed parity (same multiplicity),
    /// inserted right after it. Irreps whose L is absent altogether are left for the heads'
    /// check to report.
    static func completingParity(_ irreps: Irreps, for decompositions: [BlockGroup: AtomPairDecomposition], configured: String) throws -> Irreps {
        let present = Set(irreps.entries.filter { $0.mul > 0 }.map(\.irrep))
        var needed = Set<Irrep>()
        for d in decompositions.values { for e in d.irreps.entries { needed.insert(e.irrep) } }
        var out: [MulIrrep] = []
        var added = Set<Irrep>()
        for e in irreps.entries {
            out.append(e)
            guard e.mul > 0 else { continue }
            let mirror = try Irrep(e.irrep.l, -e.irrep.p)
            if needed.contains(mirror), !present.contains(mirror), !added.contains(mirror) {
                out.append(MulIrrep(e.mul, mirror))
                added.insert(mirror)
            }
        }
        return Irreps(out)
    }

    /// Number of trainable scalars.
    public var trainableCount: Int { parameters.trainable.reduce(0) { $0 + $1.count } }

    /// The orbital-pair decomposition of a group's blocks (internal order).
    public func decomposition(of group: BlockGroup) -> AtomPairDecomposition? { heads[group]?.decomposition }

    public func statistics(of group: BlockGroup) -> GroupStatistics? {
        heads[group].map { GroupStatistics(scale: Double($0.scale.data[0]), shift: $0.shift.data.map { Double($0) }) }
    }

    /// Sets a group's output scaling; `shift` may only be nonzero on L = 0 components.
    public func setStatistics(_ stats: GroupStatistics, for group: BlockGroup) throws {
        guard let h = heads[group] else { throw ModelError.badInput("no block group \(group) in this model") }
        guard stats.shift.count == h.shift.count, stats.scale > 0, stats.scale.isFinite else {
            throw ModelError.badInput("statistics of \(group): need a positive scale and \(h.shift.count) shifts, got scale \(stats.scale) and \(stats.shift.count) shifts")
        }
        let scalar = Set(h.scalarComponents)
        for (k, v) in stats.shift.enumerated() where v != 0 && !scalar.contains(k) {
            throw ModelError.badInput("statistics of \(group): shift component \(k) is not an L = 0 irrep; shifting it would break equivariance")
        }
        h.scale.data = [T(stats.scale)]
        h.shift.data = stats.shift.map { T($0) }
    }

    /// Per-group statistics from target blocks (internal order, row-major, each n_i·n_j long):
    /// shift = mean of the L = 0 irreps, scale = root mean square of the remaining irreps values.
    public func estimateStatistics(_ targets: [BlockGroup: [[Double]]]) throws -> [BlockGroup: GroupStatistics] {
        var out: [BlockGroup: GroupStatistics] = [:]
        for (g, blocks) in targets where !blocks.isEmpty {
            guard let h = heads[g] else { continue }
            var sum = [Double](repeating: 0, count: h.decomposition.dim)
            let irreps = try blocks.map { try h.decomposition.decompose($0) }
            for x in irreps { for k in h.scalarComponents { sum[k] += x[k] } }
            var shift = [Double](repeating: 0, count: sum.count)
            for k in h.scalarComponents { shift[k] = sum[k] / Double(blocks.count) }
            var ss = 0.0
            for x in irreps { for k in 0 ..< x.count { let d = x[k] - shift[k]; ss += d * d } }
            let rms = (ss / Double(blocks.count * sum.count)).squareRoot()
            out[g] = GroupStatistics(scale: rms > 1e-8 ? rms : 1, shift: shift)
        }
        return out
    }

    /// The forward pass over a batch.
    public func callAsFunction(_ batch: GraphBatch<T>) throws -> ModelOutput<T> {
        let hdim = hiddenIrreps.dim
        var x = try nodeEmbedding(batch.species)
        var e: Tensor<T> = Tensor(zeros: [0, hdim])
        let hasEdges = batch.edgeCount > 0
        let normalizer = T(1 / (config.avgNeighbors ?? 1).squareRoot())
        if hasEdges {
            let ends = try Tensor.concat([try batch.species.gatherRows(batch.source), try batch.species.gatherRows(batch.target)], axis: 1)
            e = try edgeEmbedLinear(try edgeEmbedProduct(ends, batch.harmonics, weights: try edgeEmbedRadial(batch.radial)))
        }
        for layer in interactions {
            var aggregated: Tensor<T>
            if hasEdges {
                let mixed = try layer.edgeMix(try Tensor.concat([try x.gatherRows(batch.source), try x.gatherRows(batch.target), e], axis: 1))
                let product = try layer.edgeProduct(mixed, batch.harmonics, weights: try layer.edgeRadial(batch.radial))
                let update = try layer.edgeGate(try layer.edgeOut(product))
                e = try layer.edgeNorm(try e + update)
                aggregated = try layer.nodeMessage(e).scatterAdd(batch.source) * normalizer
            } else {
                aggregated = Tensor(zeros: [batch.nodeCount, hdim])
            }
            let update = try layer.nodeGate(try layer.nodeMix(try Tensor.concat([x, aggregated], axis: 1)))
            x = try layer.nodeNorm(try x + update)
        }
        var blocks: [BlockGroup: Tensor<T>] = [:]
        for (g, rows) in batch.groupRows {
            blocks[g] = try headBlocks(g, try (g.onsite ? x : e).gatherRows(rows))
        }
        return ModelOutput(blocks: blocks, nodeFeatures: x, edgeFeatures: e)
    }

    /// Predicted real-space Hamiltonians, one per structure of the batch (internal order, eV),
    /// Hermitian wherever both partners of a block are predicted (`GraphBatch.assembleOperators`).
    public func predictOperators(_ batch: GraphBatch<T>) throws -> [BlockOperator] {
        let out = try GradMode.withoutGrad { try self(batch) }
        return try batch.assembleOperators(out.blocks)
    }
}
