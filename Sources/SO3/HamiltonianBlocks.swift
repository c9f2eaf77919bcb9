// Orbital-pair operator blocks ↔ irreps, and the orbital-order tables of the conventions files
// use. Whole operators of a structure (BlockOperator, one block per atom pair) are Models' side
// (OperatorBlocks.swift): SO3 knows orbital shells, not atoms. A block ⟨l1 m1|O|l2 m2⟩ rotates as D(l1) B D(l2)ᵀ, i.e. its row-major vector rotates by
// D(l1) ⊗ D(l2), which the real Clebsch–Gordan coefficients split into L = |l1−l2|…l1+l2.
import Foundation
import Structures

/// Orbital order within a shell.
public enum OrbitalConvention: String, Sendable, CaseIterable {
    /// The internal / DeepH-dock order m = −l…l (p = y, z, x; d = xy, yz, z², xz, x²−y²).
    case dock
    /// DeepH legacy files written from OpenMX: p = (x, y, z); d = (z², x²−y², xy, xz, yz);
    /// l ≥ 3 in the order m = 0, +1, −1, +2, −2, … (OpenMX manual, Table 9; the same table as
    /// DeepH-dock's OpenMX translator). No sign changes relative to the internal harmonics.
    case openMX

    /// `internalIndex(l)[k]` is the internal index (m + l) of the orbital at position k of a
    /// shell in this convention: orbital_this[k] = sign[k] · orbital_internal[perm[k]].
    public func internalIndex(_ l: Int) -> [Int] {
        guard l >= 0 else { return [] }
        switch self {
        case .dock: return Array(0 ... 2 * l)
        case .openMX:
            // The inverse of Structures' OrbitalOrder table (internal k sits at OpenMX position p[k]).
            let positions = OrbitalOrder.openMXIndex(l: l)
            var out = [Int](repeating: 0, count: positions.count)
            for (k, p) in positions.enumerated() { out[p] = k }
            return out
        }
    }

    /// Signs in `orbital_this[k] = sign[k] · orbital_internal[perm[k]]` (all +1 for the
    /// conventions supported so far; kept so a convention with sign flips needs no new API).
    public func signs(_ l: Int) -> [Double] { [Double](repeating: 1, count: max(0, 2 * l + 1)) }

    /// Orthogonal matrix P (row-major, n×n, n = orbital count) with v_this = P v_internal over
    /// all shells of an atom.
    public func matrix(for shells: OrbitalShells) -> [Double] {
        let n = shells.orbitalCount
        var p = [Double](repeating: 0, count: n * n)
        for (l, o) in zip(shells.ls, shells.shellOffsets) {
            let perm = internalIndex(l), sign = signs(l)
            for k in 0 ..< perm.count { p[(o + k) * n + o + perm[k]] = sign[k] }
        }
        return p
    }

    /// Re-expresses an atom-pair block (rows × cols, row-major) given in this convention in the
    /// internal one: B_internal = Pᵢᵀ B Pⱼ.
    public func toInternal(block: [Double], rows: OrbitalShells, cols: OrbitalShells) throws -> [Double] {
        try convert(block, rows: rows, cols: cols, toInternal: true)
    }

    /// The inverse of `toInternal`: B_this = Pᵢ B_internal Pⱼᵀ.
    public func fromInternal(block: [Double], rows: OrbitalShells, cols: OrbitalShells) throws -> [Double] {
        try convert(block, rows: rows, cols: cols, toInternal: false)
    }

    private func convert(_ block: [Double], rows: OrbitalShells, cols: OrbitalShells, toInternal: Bool) throws -> [Double] {
        let nr = rows.orbitalCount, nc = cols.orbitalCount
        guard block.count == nr * nc else {
            throw SO3Error.shapeMismatch(context: "\(rawValue) block for shells [\(rows)] × [\(cols)]", expected: nr * nc, got: block.count)
        }
        // Position maps: this-convention index k ↔ internal index, with sign.
        func map(_ shells: OrbitalShells) -> (internalOf: [Int], sign: [Double]) {
            var idx: [Int] = [], sg: [Double] = []
            for (l, o) in zip(shells.ls, shells.shellOffsets) {
                idx += internalIndex(l).map { $0 + o }
                sg += signs(l)
            }
            return (idx, sg)
        }
        let r = map(rows), c = map(cols)
        var out = [Double](repeating: 0, count: nr * nc)
        for i in 0 ..< nr {
            for j in 0 ..< nc {
                let s = r.sign[i] * c.sign[j]
                if toInternal { out[r.internalOf[i] * nc + c.internalOf[j]] = s * block[i * nc + j] }
                else { out[i * nc + j] = s * block[r.internalOf[i] * nc + c.internalOf[j]] }
            }
        }
        return out
    }
}

/// One shell pair (l1, l2): a (2l1+1)×(2l2+1) block ↔ irreps L = |l1−l2|…l1+l2, parity
/// (−1)^(l1+l2), features concatenated in increasing L. The map is orthogonal, so the inverse is
/// the transpose and norms are preserved.
public struct ShellPairDecomposition: Sendable {
    public let l1: Int, l2: Int
    public let irreps: Irreps
    private let tensors: [CGTensor]

    public init(_ l1: Int, _ l2: Int) throws {
        for l in [l1, l2] where !(0 ... so3MaxL).contains(l) {
            throw SO3Error.angularMomentumOutOfRange(l: l, max: so3MaxL, context: "orbital shell pair (\(l1), \(l2))")
        }
        self.l1 = l1; self.l2 = l2
        let p = (l1 + l2) % 2 == 0 ? 1 : -1
        tensors = try (abs(l1 - l2) ... (l1 + l2)).map { try ClebschGordan.real(l1, l2, $0) }
        irreps = Irreps(tensors.map { MulIrrep(1, Irrep(unchecked: $0.l, p)) })
    }

    public var dim: Int { (2 * l1 + 1) * (2 * l2 + 1) }

    /// x_L[M] = Σ C[M,m1,m2] B[m1,m2] for the row-major block B (length `dim`).
    public func decompose(_ block: UnsafeBufferPointer<Double>, rowStride: Int, into out: UnsafeMutablePointer<Double>) {
        var o = 0
        for t in tensors {
            for i in 0 ..< 2 * t.l + 1 { out[o + i] = 0 }
            for e in t.nonZeros { out[o + e.M] += e.value * block[e.m1 * rowStride + e.m2] }
            o += 2 * t.l + 1
        }
    }

    /// B[m1,m2] = Σ_L Σ_M C[M,m1,m2] x_L[M], accumulated into a block with the given row stride
    /// (the block must be zero where it is written).
    public func compose(_ features: UnsafePointer<Double>, into block: UnsafeMutablePointer<Double>, rowStride: Int) {
        var o = 0
        for t in tensors {
            for e in t.nonZeros { block[e.m1 * rowStride + e.m2] += e.value * features[o + e.M] }
            o += 2 * t.l + 1
        }
    }

    public func decompose(_ block: [Double]) throws -> [Double] {
        guard block.count == dim else { throw SO3Error.shapeMismatch(context: "block for l1 = \(l1), l2 = \(l2)", expected: dim, got: block.count) }
        var out = [Double](repeating: 0, count: dim)
        block.withUnsafeBufferPointer { b in out.withUnsafeMutableBufferPointer { decompose(b, rowStride: 2 * l2 + 1, into: $0.baseAddress!) } }
        return out
    }

    public func compose(_ features: [Double]) throws -> [Double] {
        guard features.count == dim else { throw SO3Error.shapeMismatch(context: "irreps \(irreps) for l1 = \(l1), l2 = \(l2)", expected: dim, got: features.count) }
        var out = [Double](repeating: 0, count: dim)
        features.withUnsafeBufferPointer { f in out.withUnsafeMutableBufferPointer { compose(f.baseAddress!, into: $0.baseAddress!, rowStride: 2 * l2 + 1) } }
        return out
    }
}

/// A whole atom-pair block (rows: shells of atom i, cols: shells of atom j) ↔ irreps: one
/// `ShellPairDecomposition` per shell pair, in row-major shell order (shell a of i, then b of j),
/// features concatenated. Blocks can be given in any `OrbitalConvention`.
public struct AtomPairDecomposition: Sendable {
    public let rows: OrbitalShells, cols: OrbitalShells
    public let irreps: Irreps
    private let pairs: [(a: Int, b: Int, decomposition: ShellPairDecomposition)]

    public init(rows: OrbitalShells, cols: OrbitalShells) throws {
        self.rows = rows; self.cols = cols
        var pairs: [(a: Int, b: Int, decomposition: ShellPairDecomposition)] = []
        for (a, la) in rows.ls.enumerated() {
            for (b, lb) in cols.ls.enumerated() {
                pairs.append((a, b, try ShellPairDecomposition(la, lb)))
            }
        }
        self.pairs = pairs
        irreps = pairs.reduce(Irreps([])) { $0 + $1.decomposition.irreps }
    }

    public var dim: Int { rows.orbitalCount * cols.orbitalCount }

    /// Irreps features of a row-major block in `convention` order.
    public func decompose(_ block: [Double], convention: OrbitalConvention = .dock) throws -> [Double] {
        let b = convention == .dock ? block : try convention.toInternal(block: block, rows: rows, cols: cols)
        guard b.count == dim else {
            throw SO3Error.shapeMismatch(context: "block for shells [\(rows)] × [\(cols)]", expected: dim, got: b.count)
        }
        let ro = rows.shellOffsets, co = cols.shellOffsets, nc = cols.orbitalCount
        var out = [Double](repeating: 0, count: dim)
        b.withUnsafeBufferPointer { bp in
            out.withUnsafeMutableBufferPointer { op in
                var o = 0
                for p in pairs {
                    let start = ro[p.a] * nc + co[p.b]
                    p.decomposition.decompose(UnsafeBufferPointer(rebasing: bp[start...]), rowStride: nc, into: op.baseAddress! + o)
                    o += p.decomposition.dim
                }
            }
        }
        return out
    }

    /// The orthogonal matrix Q (row-major, dim × dim) with block = features · Q (block row-major,
    /// internal order) and features = block · Qᵀ: the constant a model multiplies its irreps
    /// output by to get H blocks inside the autodiff graph.
    public var compositionMatrix: [Double] {
        var q = [Double](repeating: 0, count: dim * dim)
        let ro = rows.shellOffsets, co = cols.shellOffsets, nc = cols.orbitalCount
        q.withUnsafeMutableBufferPointer { qp in
            var o = 0
            for p in pairs {
                let t = p.decomposition
                let d2 = 2 * t.l2 + 1
                // Column k of the composed block ← feature f: feed unit features one at a time.
                var unit = [Double](repeating: 0, count: t.dim)
                for f in 0 ..< t.dim {
                    unit[f] = 1
                    var local = [Double](repeating: 0, count: t.dim)
                    unit.withUnsafeBufferPointer { u in local.withUnsafeMutableBufferPointer { t.compose(u.baseAddress!, into: $0.baseAddress!, rowStride: d2) } }
                    for m1 in 0 ..< 2 * t.l1 + 1 { for m2 in 0 ..< d2 where local[m1 * d2 + m2] != 0 {
                        qp[(o + f) * dim + (ro[p.a] + m1) * nc + co[p.b] + m2] = local[m1 * d2 + m2]
                    } }
                    unit[f] = 0
                }
                o += t.dim
            }
        }
        return q
    }

    /// The row-major block in `convention` order from irreps features.
    public func compose(_ features: [Double], convention: OrbitalConvention = .dock) throws -> [Double] {
        guard features.count == dim else {
            throw SO3Error.shapeMismatch(context: "irreps features for shells [\(rows)] × [\(cols)]", expected: dim, got: features.count)
        }
        let ro = rows.shellOffsets, co = cols.shellOffsets, nc = cols.orbitalCount
        var block = [Double](repeating: 0, count: dim)
        features.withUnsafeBufferPointer { fp in
            block.withUnsafeMutableBufferPointer { bp in
                var o = 0
                for p in pairs {
                    p.decomposition.compose(fp.baseAddress! + o, into: bp.baseAddress! + ro[p.a] * nc + co[p.b], rowStride: nc)
                    o += p.decomposition.dim
                }
            }
        }
        return convention == .dock ? block : try convention.fromInternal(block: block, rows: rows, cols: cols)
    }
}

/// Rotation of orbital blocks: B ↦ D(i) B D(j)ᵀ with D block-diagonal over each atom's shells.
public enum OrbitalRotation {
    /// Block-diagonal D(R) over the shells of one atom (n×n row-major, internal order).
    public static func matrix(for shells: OrbitalShells, rotation: Rotation) throws -> [Double] {
        for l in shells.ls where !(0 ... so3MaxL).contains(l) {
            throw SO3Error.angularMomentumOutOfRange(l: l, max: so3MaxL, context: "orbital shells [\(shells)]")
        }
        let ds = try WignerD.matrices(lmax: shells.ls.max() ?? 0, rotation: rotation)
        let n = shells.orbitalCount
        var out = [Double](repeating: 0, count: n * n)
        for (l, o) in zip(shells.ls, shells.shellOffsets) {
            let d = 2 * l + 1
            for i in 0 ..< d { for j in 0 ..< d { out[(o + i) * n + o + j] = ds[l][i * d + j] } }
        }
        return out
    }

    /// D(i) B D(j)ᵀ for a row-major internal-order block of shells rows × cols.
    public static func rotate(block: [Double], rows: OrbitalShells, cols: OrbitalShells, rotation: Rotation) throws -> [Double] {
        let nr = rows.orbitalCount, nc = cols.orbitalCount
        guard block.count == nr * nc else {
            throw SO3Error.shapeMismatch(context: "block for shells [\(rows)] × [\(cols)]", expected: nr * nc, got: block.count)
        }
        let di = try matrix(for: rows, rotation: rotation), dj = rows == cols ? di : try matrix(for: cols, rotation: rotation)
        return sandwich(di, block, dj, nr, nc)
    }

    /// Dᵢ B Dⱼᵀ for row-major Dᵢ (nr×nr), B (nr×nc), Dⱼ (nc×nc); Dᵢ is block-sparse. Public for
    /// callers that rotate many blocks with the same few matrices (Models' operator rotation).
    public static func sandwich(_ di: [Double], _ block: [Double], _ dj: [Double], _ nr: Int, _ nc: Int) -> [Double] {
        var tmp = [Double](repeating: 0, count: nr * nc)
        for i in 0 ..< nr { for k in 0 ..< nr where di[i * nr + k] != 0 {
            let a = di[i * nr + k]
            for j in 0 ..< nc { tmp[i * nc + j] += a * block[k * nc + j] }
        } }
        var out = [Double](repeating: 0, count: nr * nc)
        for i in 0 ..< nr { for j in 0 ..< nc {
            var s = 0.0
            for k in 0 ..< nc { s += tmp[i * nc + k] * dj[j * nc + k] }
            out[i * nc + j] = s
        } }
        return out
    }
}
