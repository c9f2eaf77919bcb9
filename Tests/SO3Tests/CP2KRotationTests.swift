// Proof of the CP2K orbital order and signs on real DFT: water and the same molecule rotated by
// R = Rz(0.7)·Ry(1.1)·Rz(−0.4) (tools/cp2k_fixtures.sh), two independent CP2K runs. Read through
// Formats.CP2K, our Wigner D must carry H and S of the first onto the second: the DZVP basis has
// s, p and d shells on O, so every l up to 2 is checked (f follows the same construction).
import Foundation
import Formats
import SO3
import Structures
import TestSupport
import XCTest

final class CP2KRotationTests: XCTestCase {
    func testWignerDMapsWaterOntoRotatedWater() throws {
        let a = try FormatReader.readRecord(at: Fixtures.url("cp2k/water"))
        let b = try FormatReader.readRecord(at: Fixtures.url("cp2k/water-rotated"))
        let rotation = Rotation(axis: Vec3(0, 0, 1), angle: 0.7) * Rotation(axis: Vec3(0, 1, 0), angle: 1.1) * Rotation(axis: Vec3(0, 0, 1), angle: -0.4)
        for k in 0 ..< 3 { XCTAssertLessThan(norm(rotation * a.structure.positions[k] - b.structure.positions[k]), 1e-9) }
        func residual(_ x: BlockOperator, _ y: BlockOperator, _ g: Rotation) throws -> Double {
            var worst = 0.0
            for (n, key) in x.keys.enumerated() {
                let rotated = try OrbitalRotation.rotate(block: Array(x.values(at: n)), rows: a.structure.shells(ofAtom: key.i),
                                                         cols: a.structure.shells(ofAtom: key.j), rotation: g)
                worst = max(worst, maxAbsDifference(rotated, try XCTUnwrap(y.values(for: key))))
            }
            return worst
        }
        let h = try residual(a.hamiltonian!, b.hamiltonian!, rotation), s = try residual(a.overlap!, b.overlap!, rotation)
        let hWrong = try residual(a.hamiltonian!, b.hamiltonian!, rotation.transposed)
        print("CP2K water → rotated: max |D H Dᵀ − H_rot| = \(h) eV, S \(s); passive rotation \(hWrong) eV")
        XCTAssertLessThan(s, 1e-6)
        // H carries the XC potential integrated on CP2K's real-space grid, which does not rotate
        // with the molecule (egg-box effect): meV-level.
        XCTAssertLessThan(h, 1e-2)
        XCTAssertGreaterThan(hWrong, 0.1)
        // Control: had CP2K ABACUS-style (−1)^|m| signs, reading without them would break S.
        func signed(_ op: BlockOperator) -> BlockOperator {
            var out = BlockOperator()
            for (n, key) in op.keys.enumerated() {
                let si = OrbitalOrder.abacusIndex(shells: a.structure.shells(ofAtom: key.i)).sign
                let sj = OrbitalOrder.abacusIndex(shells: a.structure.shells(ofAtom: key.j)).sign
                let v = Array(op.values(at: n))
                out.append(key, rows: si.count, cols: sj.count, values: v.indices.map { v[$0] * si[$0 / sj.count] * sj[$0 % sj.count] })
            }
            return out
        }
        XCTAssertGreaterThan(try residual(signed(a.overlap!), signed(b.overlap!), rotation), 1e-2)
    }
}
