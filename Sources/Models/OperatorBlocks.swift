// OperatorBlocks.swift: SO3's block algebra applied to whole real-space operators of a structure
// (one block per atom pair, `BlockOperator`): rotating every block with the structure
// (`OrbitalRotation.rotate(operator:structure:rotation:)`) and the per-species-pair irreps
// decomposition that gives stage 1 its targets and the way back (`OperatorDecomposition`). They
// live here, on the domain side, because they need atoms, species and structures; SO3 itself
// works on orbital shells only.
import Foundation
import Linalg
import SO3
import Structures

extension OrbitalRotation {
    /// Every block of a real-space operator rotated as D(i) O D(j)ᵀ (internal order); keys and
    /// lattice shifts are unchanged, so positions must be rotated by the caller.
    public static func rotate(operator op: BlockOperator, structure: Structure, rotation: Rotation) throws -> BlockOperator {
        var cache: [OrbitalShells: [Double]] = [:]
        func d(_ s: OrbitalShells) throws -> [Double] {
            if let m = cache[s] { return m }
            let m = try matrix(for: s, rotation: rotation)
            cache[s] = m
            return m
        }
        var out = BlockOperator()
        for (b, key) in op.keys.enumerated() {
            let si = structure.shells(ofAtom: key.i), sj = structure.shells(ofAtom: key.j)
            let ni = si.orbitalCount, nj = sj.orbitalCount
            let shape = op.shape(at: b)
            guard shape.x == ni, shape.y == nj else {
                throw SO3Error.shapeMismatch(context: "operator block \(key) for shells [\(si)] × [\(sj)]", expected: ni * nj, got: shape.x * shape.y)
            }
            out.append(key, rows: ni, cols: nj, values: sandwich(try d(si), Array(op.values(at: b)), try d(sj), ni, nj))
        }
        return out
    }
}

/// Decomposition of every block of a real-space operator into irreps features, with one
/// `AtomPairDecomposition` per species pair (built once): the training targets of stage 1 and the
/// way back from predicted features to H(R).
public final class OperatorDecomposition: Sendable {
    public let basis: [Int: OrbitalShells]
    private let pairs = Memo<SIMD2<Int>, AtomPairDecomposition>()

    public init(basis: [Int: OrbitalShells]) { self.basis = basis }

    /// The decomposition for blocks ⟨atom of species zi| O |atom of species zj⟩.
    public func pair(_ zi: Int, _ zj: Int) throws -> AtomPairDecomposition {
        try pairs.value(SIMD2(zi, zj)) {
            guard let si = basis[zi] else { throw SO3Error.missingShells(atomicNumber: zi) }
            guard let sj = basis[zj] else { throw SO3Error.missingShells(atomicNumber: zj) }
            return try AtomPairDecomposition(rows: si, cols: sj)
        }
    }

    /// Features of every block of `op`, in key order (internal orbital order).
    public func decompose(_ op: BlockOperator, structure: Structure) throws -> [[Double]] {
        try op.keys.enumerated().map { b, key in
            let d = try pair(structure.atomicNumbers[key.i], structure.atomicNumbers[key.j])
            do { return try d.decompose(Array(op.values(at: b))) } catch let SO3Error.shapeMismatch(_, expected, got) {
                throw SO3Error.shapeMismatch(context: "operator block \(key)", expected: expected, got: got)
            }
        }
    }

    /// The operator with the given keys whose blocks have these features.
    public func compose(_ features: [[Double]], keys: [BlockKey], structure: Structure) throws -> BlockOperator {
        guard features.count == keys.count else {
            throw SO3Error.shapeMismatch(context: "feature vectors for \(keys.count) block keys", expected: keys.count, got: features.count)
        }
        var out = BlockOperator()
        for (key, f) in zip(keys, features) {
            let d = try pair(structure.atomicNumbers[key.i], structure.atomicNumbers[key.j])
            let block: [Double]
            do { block = try d.compose(f) } catch let SO3Error.shapeMismatch(_, expected, got) {
                throw SO3Error.shapeMismatch(context: "irreps features of block \(key)", expected: expected, got: got)
            }
            out.append(key, rows: d.rows.orbitalCount, cols: d.cols.orbitalCount, values: block)
        }
        return out
    }
}
