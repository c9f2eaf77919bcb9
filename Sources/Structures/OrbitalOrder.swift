// The one table between OpenMX's orbital order (DeepH legacy files) and the internal m = −l…l
// order (Structures.swift; also DeepH-dock's). Formats reads and writes legacy files with it; SO3's
// `OrbitalConvention.openMX` is derived from it. Facts from the OpenMX manual (real harmonics table)
// and DeepH-dock's BASIS_TRANS_OPENMX2WIKI; both sets are real harmonics with positive sign and no
// Condon–Shortley phase, so the change is a pure permutation (no sign flips):
//
//   l  OpenMX order (index 0, 1, …)                         internal order (m = −l…l)
//   1  x, y, z                                               y, z, x
//   2  z², x²−y², xy, xz, yz                                 xy, yz, z², xz, x²−y²
//   3  m = 0, +1, −1, +2, −2, +3, −3                         m = −3 … +3
//      (z³, xz², yz², z(x²−y²), xyz, x(x²−3y²), y(3x²−y²))
//   l  m = 0, +1, −1, …, +l, −l                               m = −l … +l
import Foundation

public enum OrbitalOrder {
    /// `openMXIndex(l)[k]` is the OpenMX position of the internal orbital k of a shell:
    /// internal[k] = openmx[openMXIndex(l)[k]].
    public static func openMXIndex(l: Int) -> [Int] {
        switch l {
        case 0: return [0]
        case 1: return [1, 2, 0]
        case 2: return [2, 4, 0, 3, 1]
        default:
            // OpenMX lists m = 0, +1, −1, +2, −2, …; internal m = −l…l.
            return (-l ... l).map { m in m == 0 ? 0 : (m > 0 ? 2 * m - 1 : -2 * m) }
        }
    }

    /// For a whole atom: internal orbital k sits at position `openMXIndex(shells)[k]` of the
    /// OpenMX-ordered orbitals of the same atom.
    public static func openMXIndex(shells: OrbitalShells) -> [Int] {
        var out: [Int] = []
        out.reserveCapacity(shells.orbitalCount)
        for (l, offset) in zip(shells.ls, shells.shellOffsets) {
            out += openMXIndex(l: l).map { $0 + offset }
        }
        return out
    }

    /// Block (rows × cols, row-major) from OpenMX order into internal order.
    public static func fromOpenMX(_ block: [Double], rowIndex: [Int], colIndex: [Int]) -> [Double] {
        let cols = colIndex.count
        var out = [Double](repeating: 0, count: block.count)
        for (r, rs) in rowIndex.enumerated() {
            for (c, cs) in colIndex.enumerated() { out[r * cols + c] = block[rs * cols + cs] }
        }
        return out
    }

    /// Block from internal order into OpenMX order (the inverse permutation of `fromOpenMX`).
    public static func toOpenMX(_ block: some Collection<Double>, rowIndex: [Int], colIndex: [Int]) -> [Double] {
        let values = Array(block)
        let cols = colIndex.count
        var out = [Double](repeating: 0, count: values.count)
        for (r, rs) in rowIndex.enumerated() {
            for (c, cs) in colIndex.enumerated() { out[rs * cols + cs] = values[r * cols + c] }
        }
        return out
    }
}
