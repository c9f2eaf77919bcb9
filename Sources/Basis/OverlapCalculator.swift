// S of a whole structure from its basis: every atom pair (over periodic images) whose functions
// overlap, plus for a PAW basis the pairs coupled through a third atom's projectors. Rows are
// computed atom by atom (in parallel) and blocks kept where some |S| exceeds the threshold.
import Foundation
import Structures
import Graphs
import Linalg

public struct OverlapCalculator: Sendable {
    public let basis: BasisSet
    public let elements: [Int]
    /// Keep a block when max |S_block| > threshold. The default 0 keeps every block that is not
    /// identically zero: for finite-range orbitals that is the exact sparsity (GPAW's own blocks at
    /// |S| ~ 1e-12 agree only to the tables' ~1e-7 accuracy, so a tiny nonzero threshold would
    /// decide borderline blocks by noise). Gaussian pairs are cut where all |S| < max(threshold, 1e-15).
    public var threshold: Double

    // Numerical basis.
    var orbitalBlocks: [SIMD2<Int>: TwoCenterBlock] = [:]
    var projectorBlocks: [SIMD2<Int>: TwoCenterBlock] = [:]   // [orbital element, projector element]
    var overlapCorrection: [Int: [Double]] = [:]
    var projectorChannels: [Int: Int] = [:]
    var orbitalCutoff: [Int: Double] = [:]
    var projectorCutoff: [Int: Double] = [:]
    // Gaussian basis.
    var gaussian: GaussianOverlap?

    /// Tables for the given elements (all must be in the basis; see `BasisResolver`).
    public init(basis: BasisSet, elements: [Int], threshold: Double = 0) {
        self.basis = basis
        self.elements = elements.sorted()
        self.threshold = threshold
        switch basis {
        case .gaussian(_, _, let e):
            gaussian = GaussianOverlap(elements: e.filter { elements.contains($0.key) })
        case .numerical(_, let e):
            let present = self.elements.map { ($0, e[$0]!) }
            let rcmax = max(1e-3, present.flatMap { $0.1.orbitals.map(\.cutoff) + $0.1.projectors.map(\.cutoff) }.max() ?? 0)
            let grid = FourierBesselGrid(maxCutoff: rcmax)
            var phiq: [Int: [[Double]]] = [:], ptq: [Int: [[Double]]] = [:]
            for (z, b) in present {
                phiq[z] = b.orbitals.map(grid.transform)
                ptq[z] = b.projectors.map(grid.transform)
                overlapCorrection[z] = b.overlapCorrection
                projectorChannels[z] = b.projectorChannelCount
                orbitalCutoff[z] = b.orbitals.map(\.cutoff).max() ?? 0
                projectorCutoff[z] = b.projectors.map(\.cutoff).max() ?? 0
            }
            for (za, ba) in present {
                for (zb, bb) in present {
                    orbitalBlocks[SIMD2(za, zb)] = TwoCenterBlock(grid: grid, rows: ba.orbitals, rowTransforms: phiq[za]!,
                                                                  columns: bb.orbitals, columnTransforms: phiq[zb]!)
                    if !bb.projectors.isEmpty {
                        projectorBlocks[SIMD2(za, zb)] = TwoCenterBlock(grid: grid, rows: ba.orbitals, rowTransforms: phiq[za]!,
                                                                        columns: bb.projectors, columnTransforms: ptq[zb]!)
                    }
                }
            }
        }
    }

    static let bohr = Units.bohrToAngstrom

    /// Largest distance (Å) at which two atoms can have a nonzero block.
    public var pairRange: Double {
        if let g = gaussian {
            return elements.flatMap { a in elements.map { b in g.range(a, b, threshold: max(threshold, 1e-15)) } }.max()! * Self.bohr
        }
        let phi = orbitalCutoff.values.max() ?? 0, pt = projectorCutoff.values.max() ?? 0
        return (2 * phi + 2 * pt) * Self.bohr
    }

    /// Atoms closer than this (Å) are rejected as unphysical input.
    public static let minimumDistance = 0.5

    /// S(R) blocks of the structure, in memory; `progress(done, total)` is called as rows complete.
    public func overlap(of structure: Structure, progress: ((Int, Int) -> Void)? = nil) throws -> BlockOperator {
        let counts = structure.orbitalCounts
        var op = BlockOperator()
        try streamOverlap(of: structure, progress: progress) { key, values in
            op.append(key, rows: counts[key.i], cols: counts[key.j], values: values)
        }
        return op
    }

    /// S block by block in atom order, without holding the whole operator: rows are computed in
    /// parallel batches and handed to `sink` in order, one call at a time, while the next batch
    /// computes (possibly on another thread; the memory is two batches of rows).
    public func streamOverlap(of structure: Structure, progress: ((Int, Int) -> Void)? = nil,
                              sink: (BlockKey, [Double]) throws -> Void) throws {
        let n = structure.atomCount
        let direct = try NeighborGraphBuilder.withinCutoff(structure, cutoff: gaussian != nil ? pairRange : 2 * (orbitalCutoff.values.max() ?? 0) * Self.bohr + 1e-9, includeSelf: true)
        var edgesOf = [[GraphEdge]](repeating: [], count: n)
        for e in direct.edges {
            if e.distance < Self.minimumDistance && !(e.i == e.j && e.shift == .zero) {
                throw BasisError(file: "structure", field: "atoms \(e.i) and \(e.j)",
                                 message: String(format: "are %.3f Å apart (shift %@), closer than %.1f Å", e.distance, "\(e.key)", Self.minimumDistance))
            }
            edgesOf[e.i].append(e)
        }
        var projectorEdgesOf = [[GraphEdge]](repeating: [], count: n)
        var projections = [[Double]](repeating: [], count: n)
        var projectionRows = [[Int]](repeating: [], count: n)
        if !projectorBlocks.isEmpty {
            let cutoff = ((orbitalCutoff.values.max() ?? 0) + (projectorCutoff.values.max() ?? 0)) * Self.bohr
            for e in try NeighborGraphBuilder.withinCutoff(structure, cutoff: cutoff, includeSelf: true).edges { projectorEdgesOf[e.i].append(e) }
            (projections, projectionRows) = computeProjections(structure, projectorEdgesOf: projectorEdgesOf)
        }
        try forEachRow(structure, edgesOf: edgesOf, projectorEdgesOf: projectorEdgesOf, projections: projections,
                       projectionRows: projectionRows, progress: progress, sink: sink)
    }

    func computeProjections(_ structure: Structure, projectorEdgesOf: [[GraphEdge]]) -> ([[Double]], [[Int]]) {
        let n = structure.atomCount, z = structure.atomicNumbers, counts = structure.orbitalCounts
        var projections = [[Double]](repeating: [], count: n)
        var projectionRows = [[Int]](repeating: [], count: n)
        let lock = NSLock()
        ConcurrentLoop.perform(iterations: n) { a in
            let ch = projectorChannels[z[a]]!
            var rows: [Int] = [], total = 0
            for e in projectorEdgesOf[a] { rows.append(total); total += counts[e.j] }
            var p = [Double](repeating: 0, count: total * ch)
            p.withUnsafeMutableBufferPointer { buf in
                for (k, e) in projectorEdgesOf[a].enumerated() {
                    let block = projectorBlocks[SIMD2(z[e.j], z[a])]!
                    block.accumulate(displacement: -e.vector / Self.bohr, into: buf.baseAddress! + rows[k] * ch, ld: ch)
                }
            }
            lock.lock(); projections[a] = p; projectionRows[a] = rows; lock.unlock()
        }
        return (projections, projectionRows)
    }

    func forEachRow(_ structure: Structure, edgesOf: [[GraphEdge]], projectorEdgesOf: [[GraphEdge]], projections: [[Double]],
                    projectionRows: [[Int]], progress: ((Int, Int) -> Void)?, sink: (BlockKey, [Double]) throws -> Void) throws {
        let n = structure.atomCount
        let counts = structure.orbitalCounts
        let batch = 512
        // Batches of rows computed in parallel; the previous batch goes to `sink` (writing and
        // compressing) as one more iteration, first, so the sink overlaps the computation.
        var start = 0
        var previous: [[(BlockKey, [Double])]] = [], previousEnd = 0
        var sinkError: Error? = nil
        while start < n || !previous.isEmpty {
            let end = min(n, start + batch)
            var rows = [[(BlockKey, [Double])]](repeating: [], count: end - start)
            let lock = NSLock()
            let pending = previous
            ConcurrentLoop.perform(iterations: end - start + 1) { k in
                if k == 0 {
                    do { for row in pending { for (key, values) in row { try sink(key, values) } } } catch { sinkError = error }
                    return
                }
                let i = start + k - 1
                let row = rowBlocks(i, structure: structure, edges: edgesOf[i], projectorEdgesOf: projectorEdgesOf,
                                    projections: projections, projectionRows: projectionRows, counts: counts)
                lock.lock(); rows[k - 1] = row; lock.unlock()
            }
            if let sinkError { throw sinkError }
            if !pending.isEmpty { progress?(previousEnd, n) }
            previous = rows
            previousEnd = end
            start = end
        }
    }

    private func rowBlocks(_ i: Int, structure: Structure, edges: [GraphEdge], projectorEdgesOf: [[GraphEdge]],
                           projections: [[Double]], projectionRows: [[Int]], counts: [Int]) -> [(BlockKey, [Double])] {
        let z = structure.atomicNumbers
        // The row's blocks, in the order first made, and where each key's block is (the PAW
        // correction adds into them in place: one look-up per (i, a, j), no block copied).
        var keys: [BlockKey] = [], values: [[Double]] = [], position: [BlockKey: Int] = [:]
        keys.reserveCapacity(edges.count); values.reserveCapacity(edges.count); position.reserveCapacity(edges.count)
        let ni = counts[i]
        for e in edges {
            let nj = counts[e.j]
            var b = [Double](repeating: 0, count: ni * nj)
            let d = e.vector / Self.bohr
            if let g = gaussian {
                b = g.block(z[i], z[e.j], displacement: d)
            } else {
                let t = orbitalBlocks[SIMD2(z[i], z[e.j])]!
                if norm(d) >= t.range { continue }
                b.withUnsafeMutableBufferPointer { t.accumulate(displacement: d, into: $0.baseAddress!, ld: nj) }
            }
            if let k = position[e.key] { values[k] = b; continue }
            position[e.key] = keys.count
            keys.append(e.key); values.append(b)
        }
        if !projectorBlocks.isEmpty {
            // Projector atoms a seen from i: edges i → (a, s_a); the projection of φ_i onto p̃_a is in
            // a's list under the reverse edge a → (i, −s_a).
            for e in projectorEdgesOf[i] {
                let a = e.j
                let sa = e.shift
                let back = LatticeShift.zero &- sa
                guard let k = projectorEdgesOf[a].firstIndex(where: { $0.j == i && $0.shift == back }) else { continue }
                let ch = projectorChannels[z[a]]!
                let total = projections[a].count / ch
                // Q = P_i ΔS (ni × ch), then C = Q · [P_j]ᵀ for all of a's neighbours at once.
                var q = [Double](repeating: 0, count: ni * ch)
                var c = [Double](repeating: 0, count: ni * total)
                projections[a].withUnsafeBufferPointer { pAll in
                    overlapCorrection[z[a]]!.withUnsafeBufferPointer { dS in
                        q.withUnsafeMutableBufferPointer { qp in
                            BLAS.gemm(m: ni, n: ch, k: ch, a: pAll.baseAddress! + projectionRows[a][k] * ch, b: dS.baseAddress!, c: qp.baseAddress!)
                        }
                    }
                    q.withUnsafeBufferPointer { qp in
                        c.withUnsafeMutableBufferPointer { cp in
                            BLAS.gemm(transB: true, m: ni, n: total, k: ch, a: qp.baseAddress!, b: pAll.baseAddress!, c: cp.baseAddress!)
                        }
                    }
                }
                c.withUnsafeBufferPointer { cp in
                    for (k2, f) in projectorEdgesOf[a].enumerated() {
                        let j = f.j
                        let nj = counts[j]
                        let col0 = projectionRows[a][k2]
                        let key = BlockKey(shift: sa &+ f.shift, i: i, j: j)
                        let slot: Int
                        if let found = position[key] { slot = found } else {
                            slot = keys.count
                            position[key] = slot
                            keys.append(key); values.append([Double](repeating: 0, count: ni * nj))
                        }
                        values[slot].withUnsafeMutableBufferPointer { b in
                            for r in 0 ..< ni {
                                for cc in 0 ..< nj { b[r * nj + cc] += cp[r * total + col0 + cc] }
                            }
                        }
                    }
                }
            }
        }
        return keys.indices.filter { values[$0].contains { abs($0) > threshold } }.sorted { keys[$0] < keys[$1] }.map { (keys[$0], values[$0]) }
    }
}


/// Neighbour queries of the estimate (cell lists of the Graphs module).
enum NeighborGraphBuilderProxy {
    static func edges(_ s: Structure, cutoff: Double) throws -> [GraphEdge] {
        try NeighborGraphBuilder.withinCutoff(s, cutoff: cutoff).edges.filter { !($0.i == $0.j && $0.shift == .zero) }
    }

    static func pairSums(_ s: Structure, cutoff: Double, counts: [Int]) throws -> (blocks: Int, entries: Int) {
        let g = try NeighborGraphBuilder.withinCutoff(s, cutoff: cutoff, includeSelf: true)
        return (g.edgeCount, g.edges.reduce(0) { $0 + counts[$1.i] * counts[$1.j] })
    }
}
