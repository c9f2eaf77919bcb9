// The one table between ABACUS's LCAO orbital order and signs and the internal m = −l…l order
// (Structures.swift), beside the OpenMX table (OrbitalOrder.swift).
//
// Derivation, from ABACUS's own code (source/module_base/ylm.cpp, `Ylm::get_ylm_real`,
// `Ylm::rl_sph_harm`, `Ylm::rlylm`; the two-centre integral tables of the LCAO basis use them):
// - within a shell the functions come in the order m = 0, +1, −1, +2, −2, …, +l, −l;
// - Y(l, +m) = c·√2·√((l−m)!/(l+m)!)·P_l^m(cos θ)·cos mφ and Y(l, −m) = the same with sin mφ,
//   where P_l^m carries the Condon–Shortley phase (ylm.cpp sets P_1^1 = −sin θ and
//   P_l^l = (−1)^l (2l−1)!! sin^l θ; `rlylm` writes the factor pow(−1, m) explicitly;
//   `rl_sph_harm` gives p = (z, −x, −y)).
// The internal real harmonics have no Condon–Shortley phase, so ABACUS's function of |m| is
// (−1)^|m| times ours:
//
//   l  ABACUS order (position 0, 1, …)                         internal (m = −l…l)
//   1  z, −x, −y                                               y, z, x
//   2  z², −xz, −yz, x²−y², xy                                 xy, yz, z², xz, x²−y²
//   3  m = 0, +1, −1, +2, −2, +3, −3 with signs + − − + + − −   m = −3 … +3
//
// Proven in SO3Tests/ABACUSSymmetryTests: the converted S(R) of the real MoS2 run obeys the
// crystal's C3 rotation through our Wigner D to the printed precision, and fails by O(0.1)
// without the signs.
import Structures

extension OrbitalOrder {
    /// `abacusIndex(l)[k]` is the ABACUS position of internal orbital k (m = k − l) of a shell:
    /// internal[k] = abacusSign(l)[k] · abacus[abacusIndex(l)[k]].
    public static func abacusIndex(l: Int) -> [Int] {
        (-l ... l).map { m in m == 0 ? 0 : (m > 0 ? 2 * m - 1 : -2 * m) }
    }

    /// The sign (−1)^|m| relating ABACUS's real harmonic to the internal one, per internal orbital.
    public static func abacusSign(l: Int) -> [Double] {
        (-l ... l).map { m in abs(m) % 2 == 0 ? 1 : -1 }
    }

    /// For a whole atom: internal orbital k is `sign[k]` times ABACUS orbital `index[k]` of the
    /// same atom (shells in storage order: ABACUS stores l = 0, 1, … and the zetas of each l).
    public static func abacusIndex(shells: OrbitalShells) -> (index: [Int], sign: [Double]) {
        var index: [Int] = [], sign: [Double] = []
        for (l, offset) in zip(shells.ls, shells.shellOffsets) {
            index += abacusIndex(l: l).map { $0 + offset }
            sign += abacusSign(l: l)
        }
        return (index, sign)
    }
}
