// Renumbering atoms, the one operation behind DeepH-dock's "grouped by element" rule: positions,
// species and every block key move together, block contents are untouched.
import Structures

extension DFTRecord {
    /// The same record with atom k of the result being atom `order[k]` of this one.
    /// `order` must be a permutation of 0..<atomCount.
    public func permutingAtoms(_ order: [Int]) -> DFTRecord {
        precondition(order.count == structure.atomCount && Set(order).count == order.count
            && order.allSatisfy { (0 ..< structure.atomCount).contains($0) }, "not a permutation of the atoms")
        var newIndex = [Int](repeating: 0, count: order.count)
        for (k, old) in order.enumerated() { newIndex[old] = k }
        var out = self
        out.structure.atomicNumbers = order.map { structure.atomicNumbers[$0] }
        out.structure.positions = order.map { structure.positions[$0] }
        func renumber(_ op: BlockOperator?) -> BlockOperator? {
            guard let op else { return nil }
            var result = BlockOperator()
            for (b, key) in op.keys.enumerated() {
                let shape = op.shape(at: b)
                result.append(BlockKey(shift: key.shift, i: newIndex[key.i], j: newIndex[key.j]),
                              rows: shape.x, cols: shape.y, values: op.values(at: b))
            }
            return result
        }
        out.hamiltonian = renumber(hamiltonian)
        out.overlap = renumber(overlap)
        return out
    }
}
