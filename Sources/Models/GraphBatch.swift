// The network's input: one structure's atoms and off-site edges (`StructureGraph`), and a batch of
// whole structures concatenated into one disjoint graph (`GraphBatch`) with the edge geometry
// already expanded into spherical harmonics and radial bases. Positions enter only here, so the
// forward pass needs no gradient with respect to geometry.
import Autograd
import Foundation
import Graphs
import SO3
import Structures

/// One structure as the model sees it: atoms, and the off-site edges (i → j, R) whose blocks are
/// predicted. On-site blocks (i, i, R = 0) are predicted from node features, one per atom.
public struct StructureGraph: Sendable {
    public let name: String
    public let structure: Structure
    /// Off-site edges (never i = j with R = 0), in graph order.
    public let edges: [GraphEdge]

    /// The graph of the given block keys (on-site keys are dropped: every atom gets its on-site
    /// block anyway). Checks every element against the model's basis.
    public init(name: String, structure: Structure, keys: [BlockKey], config: ModelConfig) throws {
        let shells = config.shells
        for z in structure.species {
            guard let expected = shells[z] else { throw ModelError.unknownElement(structure: name, atomicNumber: z) }
            if let got = structure.basis[z], got != expected {
                throw ModelError.basisMismatch(structure: name, element: Elements.symbol(of: z) ?? "\(z)", expected: expected.ls, got: got.ls)
            }
        }
        let graph = try NeighborGraphBuilder.fromBlocks(structure, keys: keys, includeSelf: false, source: name)
        self.name = name
        self.structure = structure
        self.edges = graph.edges
    }

    /// The graph of every pair within `cutoff` Å (for structures with no DFT blocks to copy).
    public init(name: String, structure: Structure, cutoff: Double, config: ModelConfig) throws {
        let g = try NeighborGraphBuilder.withinCutoff(structure, cutoff: cutoff, includeSelf: false)
        try self.init(name: name, structure: structure, keys: g.keys, config: config)
    }

    /// The block groups this structure's blocks fall into (on-site per element, off-site per
    /// ordered element pair of an edge).
    public var groups: Set<BlockGroup> {
        let z = structure.atomicNumbers
        return Set(structure.species.map { BlockGroup(onsite: true, zi: $0, zj: $0) } + edges.map { BlockGroup(onsite: false, zi: z[$0.i], zj: z[$0.j]) })
    }

    /// Block keys in prediction order: every on-site block, then the edges.
    public var keys: [BlockKey] {
        (0 ..< structure.atomCount).map { BlockKey(shift: .zero, i: $0, j: $0) } + edges.map(\.key)
    }
}

/// Where one predicted block row comes from.
public struct BlockRow: Hashable, Sendable {
    /// Index of the structure in the batch.
    public let structure: Int
    public let key: BlockKey
}

/// One structure's edge geometry computed ahead of time (the `features` artifact): the real
/// spherical harmonics of the edge directions [E, (shLmax+1)²] and the radial basis times the
/// envelope [E, radialCount], row by row in the graph's edge order, as `GraphBatch` computes them.
public struct EdgeFeatures: Sendable {
    public let harmonics: [Double]
    public let radial: [Float]
    public init(harmonics: [Double], radial: [Float]) { self.harmonics = harmonics; self.radial = radial }

    /// Computes them for a graph under a model configuration (what `GraphBatch` would).
    public init(_ graph: StructureGraph, config: ModelConfig) throws {
        let batch = try GraphBatch<Float>([graph], config: config)
        let sh = try SphericalHarmonics(lmax: config.shLmax, normalization: .component)
        var y = [Double](repeating: 0, count: graph.edges.count * sh.dim)
        y.withUnsafeMutableBufferPointer { out in
            for (k, e) in graph.edges.enumerated() { sh.evaluate(e.vector, normalizeInput: true, values: out.baseAddress! + k * sh.dim, gradients: nil) }
        }
        self.init(harmonics: y, radial: batch.radial.data)
    }
}

/// Several structures as one disjoint graph. Node n of the batch is atom n − nodeOffset[s] of
/// structure s; edges keep their structure's order, structure by structure.
public struct GraphBatch<T: Scalar> {
    public let graphs: [StructureGraph]
    public let nodeCount: Int, edgeCount: Int
    public let nodeOffsets: [Int]
    /// One-hot species [N, elements.count].
    public let species: Tensor<T>
    /// Atomic number of each node.
    public let atomicNumbers: [Int]
    /// Source (i) and target (j) node of each edge; source also aggregates messages.
    public let source: RowIndex, target: RowIndex
    /// Real spherical harmonics of the edge direction [E, (lmax+1)²] (component normalisation).
    public let harmonics: Tensor<T>
    /// Radial basis times the smooth cutoff envelope [E, radialCount].
    public let radial: Tensor<T>
    /// For each block group: the rows it predicts (on-site: node indices; off-site: edge
    /// indices) and what they are.
    public let groupRows: [BlockGroup: RowIndex]
    public let groupBlocks: [BlockGroup: [BlockRow]]

    /// `precomputed`: each graph's edge geometry from the features artifact (else computed here).
    public init(_ graphs: [StructureGraph], config: ModelConfig, precomputed: [EdgeFeatures]? = nil) throws {
        let elements = config.elements
        let column = Dictionary(uniqueKeysWithValues: elements.enumerated().map { ($1, $0) })
        var offsets: [Int] = [], zs: [Int] = []
        var src: [Int] = [], dst: [Int] = []
        var vectors: [Vec3] = []
        var rows: [BlockGroup: [Int]] = [:], blocks: [BlockGroup: [BlockRow]] = [:]
        for (s, g) in graphs.enumerated() {
            let base = zs.count
            offsets.append(base)
            for (a, z) in g.structure.atomicNumbers.enumerated() {
                guard column[z] != nil else { throw ModelError.unknownElement(structure: g.name, atomicNumber: z) }
                let group = BlockGroup(onsite: true, zi: z, zj: z)
                rows[group, default: []].append(base + a)
                blocks[group, default: []].append(BlockRow(structure: s, key: BlockKey(shift: .zero, i: a, j: a)))
                zs.append(z)
            }
            for e in g.edges {
                let group = BlockGroup(onsite: false, zi: g.structure.atomicNumbers[e.i], zj: g.structure.atomicNumbers[e.j])
                rows[group, default: []].append(src.count)
                blocks[group, default: []].append(BlockRow(structure: s, key: e.key))
                src.append(base + e.i); dst.append(base + e.j)
                vectors.append(e.vector)
            }
        }
        let n = zs.count, e = src.count
        var oneHot = [T](repeating: 0, count: n * elements.count)
        for (k, z) in zs.enumerated() { oneHot[k * elements.count + column[z]!] = 1 }
        self.graphs = graphs
        nodeCount = n; edgeCount = e; nodeOffsets = offsets; atomicNumbers = zs
        species = try Tensor(oneHot, shape: [n, elements.count])
        source = try RowIndex(src, rowCount: n)
        target = try RowIndex(dst, rowCount: n)
        let sh = try SphericalHarmonics(lmax: config.shLmax, normalization: .component)
        if let precomputed {
            guard precomputed.count == graphs.count,
                  zip(graphs, precomputed).allSatisfy({ $1.harmonics.count == $0.edges.count * sh.dim && $1.radial.count == $0.edges.count * config.radialCount }) else {
                throw ModelError.badInput("precomputed edge features do not match the graphs (\(precomputed.count) for \(graphs.count) structures, or wrong widths for sh_lmax \(config.shLmax), radial_count \(config.radialCount))")
            }
            harmonics = try Tensor(precomputed.flatMap { $0.harmonics.map { T($0) } }, shape: [e, sh.dim])
            radial = try Tensor(precomputed.flatMap { $0.radial.map { T($0) } }, shape: [e, config.radialCount])
        } else {
            var y = [T](repeating: 0, count: e * sh.dim)
            var buffer = [Double](repeating: 0, count: sh.dim)
            for (k, v) in vectors.enumerated() {
                buffer.withUnsafeMutableBufferPointer { sh.evaluate(v, normalizeInput: true, values: $0.baseAddress!, gradients: nil) }
                for c in 0 ..< sh.dim { y[k * sh.dim + c] = T(buffer[c]) }
            }
            harmonics = try Tensor(y, shape: [e, sh.dim])
            let distances = try Tensor<T>(vectors.map { T(norm($0)) }, shape: [e])
            radial = try GraphBatch.radialFeatures(distances, config: config)
        }
        var groupRows: [BlockGroup: RowIndex] = [:]
        for (group, r) in rows { groupRows[group] = try RowIndex(r, rowCount: group.onsite ? n : e) }
        self.groupRows = groupRows
        groupBlocks = blocks
    }

    static func radialFeatures(_ r: Tensor<T>, config: ModelConfig) throws -> Tensor<T> {
        let e = r.count
        guard e > 0 else { return Tensor(zeros: [0, config.radialCount]) }
        let basis: Tensor<T>
        switch config.radialBasis {
        case "gaussian": basis = try RadialBasis.gaussian(r, count: config.radialCount, stop: config.cutoff)
        default: basis = try RadialBasis.bessel(r, count: config.radialCount, cutoff: config.cutoff)
        }
        let envelope = try RadialBasis.cutoffEnvelope(r, cutoff: config.cutoff).reshaped([e, 1])
        return try (basis * envelope).detached()
    }
}

extension GraphBatch {
    /// Per-structure operators (internal order, eV) from per-group block tensors, on-site blocks
    /// first, then off-site edges, in each structure's graph order. H(R, i, j) = H(−R, j, i)ᵀ:
    /// a model predicts both directions independently, so the output is their Hermitian average
    /// (transposition commutes with rotation, so this keeps equivariance).
    public func assembleOperators(_ blocks: [BlockGroup: Tensor<T>]) throws -> [BlockOperator] {
        var perStructure: [[BlockKey: [Double]]] = Array(repeating: [:], count: graphs.count)
        for (g, t) in blocks {
            guard let rows = groupBlocks[g], rows.count == t.shape[0] else {
                throw ModelError.badInput("blocks of \(g): \(t.shape[0]) rows, the batch has \(groupBlocks[g]?.count ?? 0)")
            }
            let width = t.shape[1]
            for (r, row) in rows.enumerated() {
                perStructure[row.structure][row.key] = (0 ..< width).map { Double(t.data[r * width + $0]) }
            }
        }
        return try graphs.enumerated().map { s, graph in
            var op = BlockOperator()
            let blocks = perStructure[s]
            for key in graph.keys {
                let ni = graph.structure.shells(ofAtom: key.i).orbitalCount, nj = graph.structure.shells(ofAtom: key.j).orbitalCount
                guard var values = blocks[key] else { throw ModelError.badInput("\(graph.name): no prediction for block \(key)") }
                if let partner = blocks[key.transposed] {
                    for r in 0 ..< ni { for c in 0 ..< nj { values[r * nj + c] = 0.5 * (values[r * nj + c] + partner[c * ni + r]) } }
                }
                op.append(key, rows: ni, cols: nj, values: values)
            }
            return op
        }
    }
}
