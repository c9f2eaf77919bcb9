// Proof on real DFT: four independent DFT runs of one water molecule, copies 1–3 rotated by the
// Euler angles in their `euler_angle` files. The Wigner D matrices must carry H and S of copy 0
// onto each copy.
import Foundation
import XCTest
import TestSupport
import Formats
import Models
@testable import SO3
import Structures

final class RotatedWaterTests: XCTestCase {
    func record(_ copy: Int) throws -> DFTRecord { try FormatReader.readRecord(at: Fixtures.rotatedWater(copy)) }

    func eulerAngles(_ copy: Int) throws -> [Double] { try Fixtures.rotatedWaterEulerAngles(copy) }

    /// Largest |D_i O0 D_jᵀ − O_copy| over all blocks (eV for H).
    func residual(_ op0: BlockOperator, _ op: BlockOperator, structure: Structure, rotation: Rotation) throws -> Double {
        try residuals(op0, op, structure: structure, rotation: rotation).max
    }

    /// Largest and root-mean-square |D_i O0 D_jᵀ − O_copy| over all entries.
    func residuals(_ op0: BlockOperator, _ op: BlockOperator, structure: Structure, rotation: Rotation) throws -> (max: Double, rms: Double) {
        var worst = 0.0, squares = 0.0, count = 0
        for (b, key) in op0.keys.enumerated() {
            let rotated = try OrbitalRotation.rotate(block: Array(op0.values(at: b)), rows: structure.shells(ofAtom: key.i),
                                                     cols: structure.shells(ofAtom: key.j), rotation: rotation)
            guard let target = op.values(for: key) else { XCTFail("copy lacks block \(key)"); continue }
            worst = max(worst, maxAbsDifference(rotated, target))
            for (a, b) in zip(rotated, target) { squares += (a - b) * (a - b); count += 1 }
        }
        return (worst, (squares / Double(max(count, 1))).squareRoot())
    }

    func testWignerDMapsCopyZeroOntoEachRotatedCopy() throws {
        let reference = try record(0)
        let h0 = try XCTUnwrap(reference.hamiltonian), s0 = try XCTUnwrap(reference.overlap)
        let p0 = reference.structure.positions
        var report: [String] = []
        for copy in 1 ... 3 {
            let rec = try record(copy)
            let e = try eulerAngles(copy)
            // Pinned on positions first: active R = Rz(α) Ry(β) Rz(γ), same atom order.
            let rotation = Rotation(eulerZYZ: e[0], e[1], e[2])
            XCTAssertEqual(rec.structure.atomicNumbers, reference.structure.atomicNumbers)
            for k in 1 ..< 3 {
                let moved = rotation * (p0[k] - p0[0])
                XCTAssertLessThan(norm(moved - (rec.structure.positions[k] - rec.structure.positions[0])), 1e-9, "copy \(copy) atom \(k)")
            }
            let h = try XCTUnwrap(rec.hamiltonian), s = try XCTUnwrap(rec.overlap)
            let (hResidual, hRMS) = try residuals(h0, h, structure: reference.structure, rotation: rotation)
            let sResidual = try residual(s0, s, structure: reference.structure, rotation: rotation)
            // Negative controls: the passive (transposed) rotation and the unrotated blocks miss by far.
            let hPassive = try residual(h0, h, structure: reference.structure, rotation: rotation.transposed)
            let hNone = try residual(h0, h, structure: reference.structure, rotation: .identity)
            report.append(String(format: "copy %d: H residual max %.4f meV (rms %.4f meV), S residual %.2e; passive %.1f meV, unrotated %.1f meV",
                                 copy, hResidual * 1000, hRMS * 1000, sResidual, hPassive * 1000, hNone * 1000))
            XCTAssertLessThan(hResidual, 1e-3, "copy \(copy) H (eV)")
            XCTAssertLessThan(sResidual, 1e-5, "copy \(copy) S")
            XCTAssertGreaterThan(hPassive, 100 * max(hResidual, 1e-6))
            XCTAssertGreaterThan(hNone, 100 * max(hResidual, 1e-6))
        }
        print(report.joined(separator: "\n"))
        // The whole-operator rotation agrees block by block with the per-block one.
        let copy3 = try record(3), e = try eulerAngles(3)
        let rotated = try OrbitalRotation.rotate(operator: h0, structure: reference.structure, rotation: Rotation(eulerZYZ: e[0], e[1], e[2]))
        XCTAssertEqual(rotated.keys, h0.keys)
        XCTAssertLessThan(maxAbsDifference(rotated.entries, try XCTUnwrap(copy3.hamiltonian).entries), 1e-3)
    }

    /// The irreps of the DFT blocks rotate by D(L): features of copy 0 carried by D(irreps) match
    /// the features of copy 3; and the whole-operator decomposition round trips.
    func testDFTBlockIrrepsRotateByD() throws {
        let reference = try record(0), copy = try record(3), e = try eulerAngles(3)
        let rotation = Rotation(eulerZYZ: e[0], e[1], e[2])
        let h0 = try XCTUnwrap(reference.hamiltonian), h3 = try XCTUnwrap(copy.hamiltonian)
        let decomposition = OperatorDecomposition(basis: reference.structure.basis)
        let f0 = try decomposition.decompose(h0, structure: reference.structure)
        let f3 = try decomposition.decompose(h3, structure: copy.structure)
        var worst = 0.0
        for (b, key) in h0.keys.enumerated() {
            let pair = try decomposition.pair(reference.structure.atomicNumbers[key.i], reference.structure.atomicNumbers[key.j])
            var rotated = f0[b]
            try pair.irreps.rotate(&rotated, rotation: rotation)
            let b3 = try XCTUnwrap(h3.position(of: key))
            worst = max(worst, maxAbsDifference(rotated, f3[b3]))
        }
        XCTAssertLessThan(worst, 1e-3, "irreps residual (eV)")
        let back = try decomposition.compose(f0, keys: h0.keys, structure: reference.structure)
        XCTAssertLessThan(maxAbsDifference(back.entries, h0.entries), 1e-12)
        XCTAssertThrowsError(try OperatorDecomposition(basis: [:]).pair(8, 1)) { XCTAssertEqual("\($0)", "orbital basis has no shells for atomic number 8") }
        XCTAssertThrowsError(try decomposition.compose([[1, 2]], keys: [h0.keys[0]], structure: reference.structure)) {
            XCTAssertTrue("\($0)".contains("irreps features of block [0, 0, 0, 0, 0]: expected 196 values, got 2"), "\($0)")
        }
    }

    func testOrbitalTableAgreesWithFormats() {
        for l in 0 ... 8 {
            // Formats: internal[k] = openmx[openMXIndex[k]]; SO3: openmx[k] = internal[internalIndex[k]].
            let formats = OrbitalOrder.openMXIndex(l: l), mine = OrbitalConvention.openMX.internalIndex(l)
            for k in 0 ... 2 * l { XCTAssertEqual(mine[formats[k]], k, "l = \(l), internal orbital \(k)") }
        }
    }
}
