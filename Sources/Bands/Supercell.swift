// Diagonal supercells of a structure with its operators: used to make large benchmark systems
// from small fixtures and to check band folding (supercell bands at K are the primitive bands at
// the k that fold onto K).
import Structures

public enum Supercell {
    /// Repeats the cell n1×n2×n3 times. Atom (a, cell c) becomes atom `a + atomCount·index(c)`
    /// with cells ordered c1 slowest. Block (R, i, j) of the primitive operator, seen from cell
    /// c, lands in supercell block (R', (i, c), (j, c')) with c + R = n∘R' + c'.
    public static func make(_ structure: Structure, operators: [BlockOperator?], repeats n: SIMD3<Int>)
        -> (structure: Structure, operators: [BlockOperator?]) {
        precondition(n.x >= 1 && n.y >= 1 && n.z >= 1, "supercell repeats must be ≥ 1")
        let cells: [SIMD3<Int>] = (0 ..< n.x).flatMap { x in (0 ..< n.y).flatMap { y in (0 ..< n.z).map { z in SIMD3(x, y, z) } } }
        func cellIndex(_ c: SIMD3<Int>) -> Int { (c.x * n.y + c.y) * n.z + c.z }
        let na = structure.atomCount
        let lattice = Lattice(vectors: [structure.lattice.vectors[0] * Double(n.x), structure.lattice.vectors[1] * Double(n.y),
                                        structure.lattice.vectors[2] * Double(n.z)],
                              periodic: structure.lattice.periodic)
        var numbers: [Int] = [], positions: [Vec3] = []
        for c in cells {
            let t = structure.lattice.translation(c)
            for a in 0 ..< na { numbers.append(structure.atomicNumbers[a]); positions.append(structure.positions[a] + t) }
        }
        let big = Structure(lattice: lattice, atomicNumbers: numbers, positions: positions, basis: structure.basis)
        func floorDiv(_ a: Int, _ b: Int) -> Int { a >= 0 ? a / b : -((-a + b - 1) / b) }
        let ops: [BlockOperator?] = operators.map { op in
            guard let op else { return nil }
            var out = BlockOperator()
            for c in cells {
                for b in 0 ..< op.blockCount {
                    let key = op.keys[b]
                    let target = c &+ key.shift
                    let outer = SIMD3(floorDiv(target.x, n.x), floorDiv(target.y, n.y), floorDiv(target.z, n.z))
                    let inner = target &- outer &* n
                    let newKey = BlockKey(shift: outer, i: key.i + na * cellIndex(c), j: key.j + na * cellIndex(inner))
                    let s = op.shape(at: b)
                    out.append(newKey, rows: s.x, cols: s.y, values: op.values(at: b))
                }
            }
            return out
        }
        return (big, ops)
    }
}
