// Graphs: the neighbor graphs the models run on. Owns two ways to choose edges for one structure:
// every atom pair (over periodic images) within a cutoff radius, found in O(N) with cell lists that
// stay exact for skewed cells and for cutoffs longer than the cell; or exactly the blocks a DFT
// Hamiltonian file stores (DeepH-E3's default). Edges come out in one deterministic order. Each
// call works on one structure alone, so a dataset can be split across MPI ranks by structure.
import Structures

/// A directed edge i → (j, R): atom j in the cell translated by the lattice shift R, seen from
/// atom i in the home cell — the same pairing as the operator block ⟨i, 0|O|j, R⟩.
public struct GraphEdge: Equatable, Hashable, Sendable {
    public var i: Int
    public var j: Int
    public var shift: LatticeShift
    /// r_j + R·a − r_i in Å (Cartesian).
    public var vector: Vec3
    public var distance: Double

    public init(i: Int, j: Int, shift: LatticeShift, vector: Vec3, distance: Double) {
        self.i = i; self.j = j; self.shift = shift; self.vector = vector; self.distance = distance
    }

    public var key: BlockKey { BlockKey(shift: shift, i: i, j: j) }

    /// The order every graph is returned in: by source atom, target atom, then shift.
    static func precedes(_ a: GraphEdge, _ b: GraphEdge) -> Bool {
        (a.i, a.j, a.shift.x, a.shift.y, a.shift.z) < (b.i, b.j, b.shift.x, b.shift.y, b.shift.z)
    }
}

public struct NeighborGraph: Equatable, Sendable {
    public var atomCount: Int
    /// Sorted by (i, j, R).
    public var edges: [GraphEdge]
    /// The cutoff used, or nil for a graph taken from a file's blocks.
    public var cutoff: Double?

    public init(atomCount: Int, edges: [GraphEdge], cutoff: Double?) {
        self.atomCount = atomCount; self.edges = edges; self.cutoff = cutoff
    }

    public var edgeCount: Int { edges.count }
    public var keys: [BlockKey] { edges.map(\.key) }

    /// Flat arrays in edge order, the layout message-passing kernels consume: source atoms,
    /// target atoms, shifts (3 per edge), vectors (3 per edge, Å), distances.
    public var sources: [Int] { edges.map(\.i) }
    public var targets: [Int] { edges.map(\.j) }
    public var flatShifts: [Int] { edges.flatMap { [$0.shift.x, $0.shift.y, $0.shift.z] } }
    public var flatVectors: [Double] { edges.flatMap { [$0.vector.x, $0.vector.y, $0.vector.z] } }
    public var distances: [Double] { edges.map(\.distance) }

    /// Index of the reverse edge j → (i, −R) for every edge (nil when absent, e.g. a file storing
    /// one triangle); cutoff graphs always contain every reverse edge.
    public var reverseEdgeIndex: [Int?] {
        let index = Dictionary(uniqueKeysWithValues: edges.enumerated().map { ($1.key, $0) })
        return edges.map { index[$0.key.transposed] }
    }
}

public enum GraphError: Error, CustomStringConvertible, Equatable {
    case invalidCutoff(Double)
    case degenerateLattice(volume: Double)
    case atomIndexOutOfRange(key: BlockKey, atomCount: Int, source: String)
    case nonFinitePosition(atom: Int)

    public var description: String {
        switch self {
        case .invalidCutoff(let c): return "neighbor graph: cutoff must be a positive finite number of Å, got \(c)"
        case .degenerateLattice(let v):
            return "neighbor graph: lattice vectors are (nearly) linearly dependent (volume \(v) Å³) but the structure is periodic"
        case .atomIndexOutOfRange(let k, let n, let s):
            return "\(s): block \(k) refers to an atom outside 0..<\(n)"
        case .nonFinitePosition(let a): return "neighbor graph: atom \(a) has a non-finite position"
        }
    }
}

public enum NeighborGraphBuilder {
    /// All edges i → (j, R) with |r_j + R·a − r_i| ≤ cutoff, R ranging over the periodic
    /// directions only. `includeSelf` adds the on-site edges (i → i, R = 0).
    public static func withinCutoff(_ structure: Structure, cutoff: Double, includeSelf: Bool = false) throws -> NeighborGraph {
        guard cutoff > 0, cutoff.isFinite else { throw GraphError.invalidCutoff(cutoff) }
        let n = structure.atomCount
        for (a, p) in structure.positions.enumerated() where !(p.x.isFinite && p.y.isFinite && p.z.isFinite) {
            throw GraphError.nonFinitePosition(atom: a)
        }
        if n == 0 { return NeighborGraph(atomCount: 0, edges: [], cutoff: cutoff) }

        let lattice = structure.lattice
        let anyPeriodic = lattice.periodic.contains(true)
        // Binning frame: the lattice when any direction repeats (bins must tile the cell so that
        // wrapping a bin index is a lattice translation); Cartesian axes for a molecule, whose
        // vacuum box may be arbitrary or even degenerate.
        let frame: [Vec3]
        let periodic: [Bool]
        if anyPeriodic {
            guard lattice.volume > 1e-8 else { throw GraphError.degenerateLattice(volume: lattice.volume) }
            frame = lattice.vectors
            periodic = lattice.periodic
        } else {
            frame = [Vec3(1, 0, 0), Vec3(0, 1, 0), Vec3(0, 0, 1)]
            periodic = [false, false, false]
        }
        let v = dot(frame[0], cross(frame[1], frame[2]))
        let dual = [cross(frame[1], frame[2]) / v, cross(frame[2], frame[0]) / v, cross(frame[0], frame[1]) / v]
        // Spacing between the lattice planes of each direction: a bin of fractional width w along
        // d spans w·spacing[d] Å perpendicular to its faces, whatever the skew.
        let spacing = dual.map { 1 / norm($0) }

        // Fractional coordinates, wrapped into [0, 1) along periodic directions; `wrap` is the
        // lattice shift removed, so results can be reported against the original positions.
        var frac = [Vec3](repeating: .zero, count: n)
        var wrap = [LatticeShift](repeating: .zero, count: n)
        for a in 0 ..< n {
            let r = structure.positions[a]
            var f = Vec3(dot(dual[0], r), dot(dual[1], r), dot(dual[2], r))
            var w = LatticeShift.zero
            for d in 0 ..< 3 where periodic[d] {
                let fl = f[d].rounded(.down)
                f[d] -= fl
                w[d] = Int(fl)
            }
            frac[a] = f
            wrap[a] = w
        }

        // Bin grid: along a periodic direction the bins tile [0, 1); along an open one they cover
        // the atoms' extent. Bins are at least `cutoff` thick where the cell allows it.
        var lower = Vec3.zero, extent = Vec3(1, 1, 1)
        var bins = SIMD3<Int>(1, 1, 1)
        for d in 0 ..< 3 {
            if !periodic[d] {
                let values = frac.map { $0[d] }
                lower[d] = values.min()!
                extent[d] = max(values.max()! - lower[d], 1e-12)
            }
            let thickness = extent[d] * spacing[d]
            bins[d] = max(1, Int((thickness / cutoff).rounded(.down)))
        }
        // A sparse molecule in a huge box must not allocate a huge grid: coarser bins stay exact.
        while bins.x * bins.y * bins.z > 8 * n + 27 {
            let d = bins.x >= bins.y && bins.x >= bins.z ? 0 : (bins.y >= bins.z ? 1 : 2)
            bins[d] = max(1, bins[d] / 2)
        }
        var reach = SIMD3<Int>.zero
        for d in 0 ..< 3 {
            let binThickness = extent[d] * spacing[d] / Double(bins[d])
            reach[d] = Int((cutoff / binThickness).rounded(.up))
            // Open directions cannot wrap, so looking past the grid is pointless.
            if !periodic[d] { reach[d] = min(reach[d], bins[d] - 1) }
        }

        // Counting sort of atoms into bins (atoms stay in index order inside a bin).
        func binIndex(_ f: Vec3) -> SIMD3<Int> {
            var b = SIMD3<Int>.zero
            for d in 0 ..< 3 {
                let t = (f[d] - lower[d]) / extent[d] * Double(bins[d])
                b[d] = min(max(Int(t.rounded(.down)), 0), bins[d] - 1)
            }
            return b
        }
        let binCount = bins.x * bins.y * bins.z
        func flat(_ b: SIMD3<Int>) -> Int { (b.x * bins.y + b.y) * bins.z + b.z }
        var atomBin = [SIMD3<Int>](repeating: .zero, count: n)
        var start = [Int](repeating: 0, count: binCount + 1)
        for a in 0 ..< n {
            atomBin[a] = binIndex(frac[a])
            start[flat(atomBin[a]) + 1] += 1
        }
        for b in 0 ..< binCount { start[b + 1] += start[b] }
        var members = [Int](repeating: 0, count: n)
        var fill = start
        for a in 0 ..< n {
            let b = flat(atomBin[a])
            members[fill[b]] = a
            fill[b] += 1
        }

        let cutoff2 = cutoff * cutoff
        var edges: [GraphEdge] = []
        edges.reserveCapacity(n * 16)
        var local: [GraphEdge] = []
        for i in 0 ..< n {
            local.removeAll(keepingCapacity: true)
            let home = atomBin[i]
            let ri = structure.positions[i]
            for ox in -reach.x ... reach.x {
                guard let (bx, sx) = neighborBin(home.x + ox, bins.x, periodic[0]) else { continue }
                for oy in -reach.y ... reach.y {
                    guard let (by, sy) = neighborBin(home.y + oy, bins.y, periodic[1]) else { continue }
                    for oz in -reach.z ... reach.z {
                        guard let (bz, sz) = neighborBin(home.z + oz, bins.z, periodic[2]) else { continue }
                        let b = flat(SIMD3(bx, by, bz))
                        let binShift = LatticeShift(sx, sy, sz)
                        for m in start[b] ..< start[b + 1] {
                            let j = members[m]
                            // Shift against the original (unwrapped) positions.
                            let shift = binShift &+ wrap[i] &- wrap[j]
                            if i == j && shift == .zero && !includeSelf { continue }
                            let t = Vec3(Double(shift.x), Double(shift.y), Double(shift.z))
                            let vector = structure.positions[j] + frame[0] * t.x + frame[1] * t.y + frame[2] * t.z - ri
                            let d2 = dot(vector, vector)
                            if d2 <= cutoff2 {
                                local.append(GraphEdge(i: i, j: j, shift: shift, vector: vector, distance: d2.squareRoot()))
                            }
                        }
                    }
                }
            }
            local.sort(by: GraphEdge.precedes)
            edges.append(contentsOf: local)
        }
        return NeighborGraph(atomCount: n, edges: edges, cutoff: cutoff)
    }

    /// Bin index along one direction after wrapping, and the lattice shift the wrap implies;
    /// nil when an open direction runs off the grid.
    @inline(__always)
    private static func neighborBin(_ t: Int, _ count: Int, _ periodic: Bool) -> (Int, Int)? {
        if periodic {
            let q = t >= 0 ? t / count : -((-t + count - 1) / count)
            return (t - q * count, q)
        }
        return t >= 0 && t < count ? (t, 0) : nil
    }

    /// The edges a DFT operator stores: one per block key (i, j, R), in graph order.
    /// `includeSelf: false` drops the on-site blocks (i = j, R = 0). `source` names the file for
    /// errors.
    public static func fromBlocks(_ structure: Structure, keys: [BlockKey], includeSelf: Bool = true,
                                  source: String = "operator") throws -> NeighborGraph {
        let n = structure.atomCount
        var edges: [GraphEdge] = []
        edges.reserveCapacity(keys.count)
        for key in keys {
            guard key.i >= 0, key.i < n, key.j >= 0, key.j < n else {
                throw GraphError.atomIndexOutOfRange(key: key, atomCount: n, source: source)
            }
            if key.i == key.j && key.shift == .zero && !includeSelf { continue }
            let vector = structure.positions[key.j] + structure.lattice.translation(key.shift) - structure.positions[key.i]
            edges.append(GraphEdge(i: key.i, j: key.j, shift: key.shift, vector: vector, distance: norm(vector)))
        }
        edges.sort(by: GraphEdge.precedes)
        return NeighborGraph(atomCount: n, edges: edges, cutoff: nil)
    }

    /// Convenience: the graph of the blocks present in a Hamiltonian (or overlap) operator.
    public static func fromBlocks(_ structure: Structure, operator op: BlockOperator, includeSelf: Bool = true,
                                  source: String = "operator") throws -> NeighborGraph {
        try fromBlocks(structure, keys: op.keys, includeSelf: includeSelf, source: source)
    }
}
