import Foundation
import Formats
import SO3
import Structures
import TestSupport
import XCTest

/// The proof of ABACUS's orbital permutation and signs (OrbitalOrder.abacusIndex/abacusSign):
/// converted to the internal convention, the real MoS2 run's operators must obey the crystal's C3
/// rotation through our Wigner D: O(R', i', j') = D_i O(R, i, j) D_jᵀ for every block, where the
/// rotation (about the z axis through Mo) maps atom i to i' + t_i and the pair's R to R'.
/// Eigenvalues cannot prove this (any per-atom orthogonal change of basis leaves them alone);
/// rotations can. The C3v operations of MoS2 all commute with C2 about z, which is exactly what
/// ABACUS's (−1)^|m| signs amount to, so the crystal's own symmetry checks the permutation but
/// cannot see the signs; the bond-axis test below does: S(R) is a sum of exact two-centre
/// integrals, so each block is unchanged by any rotation about its bond axis r_j + R − r_i.
final class ABACUSSymmetryTests: XCTestCase {
    static let record: DFTRecord = {
        var records: [DFTRecord] = []
        try! DatasetSource(url: Fixtures.url("abacus/MoS2.tar.xz")).forEachRecord { records.append($0) }
        return records[0]
    }()

    /// max |O(R', i', j') − D O(R, i, j) Dᵀ| over blocks whose image is present; `unsign` first
    /// removes the ABACUS signs (undoing that half of the conversion) to show the test can fail.
    func symmetryDeviation(_ op: BlockOperator, unsign: Bool) throws -> (deviation: Double, compared: Int) {
        let s = Self.record.structure
        let centre = s.positions[0]
        let g = Rotation(axis: Vec3(0, 0, 1), angle: 2 * Double.pi / 3)
        func lattice(_ v: Vec3) throws -> LatticeShift {
            let f = s.lattice.fractional(v)
            let r = LatticeShift(Int(f.x.rounded()), Int(f.y.rounded()), Int(f.z.rounded()))
            XCTAssertLessThan(norm(s.lattice.translation(r) - v), 1e-6, "not a lattice vector")
            return r
        }
        // Atom images: g(p_i − c) + c = p_{i'} + t_i.
        var image: [(Int, LatticeShift)] = []
        for p in s.positions {
            let q = g * (p - centre) + centre
            let target = try XCTUnwrap(s.positions.indices.first { i in
                let f = s.lattice.fractional(q - s.positions[i])
                return s.atomicNumbers[i] == s.atomicNumbers[s.positions.firstIndex(of: p)!]
                    && norm(f - Vec3(f.x.rounded(), f.y.rounded(), f.z.rounded())) < 1e-6
            })
            image.append((target, try lattice(q - s.positions[target])))
        }
        let d = try s.atomicNumbers.map { try OrbitalRotation.matrix(for: s.basis[$0]!, rotation: g) }
        let signs = s.atomicNumbers.map { OrbitalOrder.abacusIndex(shells: s.basis[$0]!).sign }
        var worst = 0.0, compared = 0
        for (b, key) in op.keys.enumerated() {
            let (i2, ti) = image[key.i], (j2, tj) = image[key.j]
            let rg = try lattice(g * s.lattice.translation(key.shift))
            guard let target = op.values(for: BlockKey(shift: tj &+ rg &- ti, i: i2, j: j2)) else { continue }
            let ni = s.orbitalCount(ofAtom: key.i), nj = s.orbitalCount(ofAtom: key.j)
            var block = Array(op.values(at: b)), expected = Array(target)
            if unsign {
                for r in 0 ..< ni { for c in 0 ..< nj {
                    block[r * nj + c] *= signs[key.i][r] * signs[key.j][c]
                    expected[r * nj + c] *= signs[i2][r] * signs[j2][c]
                } }
            }
            // D_i B D_jᵀ
            var rotated = [Double](repeating: 0, count: ni * nj)
            let di = d[key.i], dj = d[key.j]
            for r in 0 ..< ni { for c in 0 ..< nj {
                var acc = 0.0
                for p in 0 ..< ni where di[r * ni + p] != 0 {
                    var inner = 0.0
                    for q in 0 ..< nj { inner += block[p * nj + q] * dj[c * nj + q] }
                    acc += di[r * ni + p] * inner
                } 
                rotated[r * nj + c] = acc
            } }
            worst = max(worst, maxAbsDifference(rotated, expected))
            compared += 1
        }
        return (worst, compared)
    }

    func testOperatorsObeyC3() throws {
        let (sDev, n) = try symmetryDeviation(Self.record.overlap!, unsign: false)
        let (hDev, m) = try symmetryDeviation(Self.record.hamiltonian!, unsign: false)
        print("MoS2 under C3: S max deviation \(sDev) over \(n) blocks, H \(hDev) eV over \(m) blocks")
        XCTAssertGreaterThan(n, 100)
        XCTAssertLessThan(sDev, 1e-7)             // S is printed with 9 significant digits
        // H includes grid integrals (Hartree and XC potential on the FFT mesh).
        XCTAssertLessThan(hDev, 1e-4)
        // A wrong permutation breaks it: swap ABACUS's m = +1 and −1 of every p shell.
        var swapped = BlockOperator()
        let s = Self.record.structure
        for (b, key) in Self.record.overlap!.keys.enumerated() {
            let ni = s.orbitalCount(ofAtom: key.i), nj = s.orbitalCount(ofAtom: key.j)
            func perm(_ atom: Int) -> [Int] {
                var p = Array(0 ..< s.orbitalCount(ofAtom: atom))
                for (l, o) in zip(s.shells(ofAtom: atom).ls, s.shells(ofAtom: atom).shellOffsets) where l == 1 { p.swapAt(o, o + 2) }
                return p
            }
            let pi = perm(key.i), pj = perm(key.j), v = Array(Self.record.overlap!.values(at: b))
            swapped.append(key, rows: ni, cols: nj, values: (0 ..< ni * nj).map { v[pi[$0 / nj] * nj + pj[$0 % nj]] })
        }
        XCTAssertGreaterThan(try symmetryDeviation(swapped, unsign: false).deviation, 1e-2)
    }

    /// Every off-site S block is invariant under rotations about its bond axis; without the
    /// signs it is not.
    func testOverlapIsCylindricalAboutEachBond() throws {
        let s = Self.record.structure, op = Self.record.overlap!
        var worst = 0.0, worstUnsigned = 0.0, compared = 0
        for (b, key) in op.keys.enumerated() {
            let bond = s.positions[key.j] + s.lattice.translation(key.shift) - s.positions[key.i]
            guard norm(bond) > 0.5 else { continue }
            let g = Rotation(axis: bond, angle: 0.9)
            let rows = s.shells(ofAtom: key.i), cols = s.shells(ofAtom: key.j)
            let block = Array(op.values(at: b))
            worst = max(worst, maxAbsDifference(try OrbitalRotation.rotate(block: block, rows: rows, cols: cols, rotation: g), block))
            let si = OrbitalOrder.abacusIndex(shells: rows).sign, sj = OrbitalOrder.abacusIndex(shells: cols).sign
            let unsigned = block.indices.map { block[$0] * si[$0 / cols.orbitalCount] * sj[$0 % cols.orbitalCount] }
            worstUnsigned = max(worstUnsigned, maxAbsDifference(try OrbitalRotation.rotate(block: unsigned, rows: rows, cols: cols, rotation: g), unsigned))
            compared += 1
        }
        print("MoS2 S(R) about each bond axis: max deviation \(worst) over \(compared) blocks; without ABACUS's signs \(worstUnsigned)")
        XCTAssertGreaterThan(compared, 200)
        XCTAssertLessThan(worst, 1e-7)
        XCTAssertGreaterThan(worstUnsigned, 1e-2)
    }
}
