// Rotating a whole DFT record (Models' BlockTargets.rotated, the domain side of SO3's block
// rotations), proved on four independent DFT runs of one water molecule, copies 1–3 rotated by the
// Euler angles in their `euler_angle` files.
import Foundation
import Formats
import Models
import SO3
import Structures
import TestSupport
import XCTest

final class RotatedRecordTests: XCTestCase {
    func record(_ copy: Int) throws -> DFTRecord { try FormatReader.readRecord(at: Fixtures.rotatedWater(copy)) }

    func eulerAngles(_ copy: Int) throws -> [Double] { try Fixtures.rotatedWaterEulerAngles(copy) }

    func testRotatingAWholeRecord() throws {
        let reference = try record(0), copy = try record(2), e = try eulerAngles(2)
        let rotation = Rotation(eulerZYZ: e[0], e[1], e[2])
        let rotated = try BlockTargets.rotated(reference, by: rotation)
        // Same molecule up to a translation; H and S within the DFT noise of the independent run.
        let shift = copy.structure.positions[0] - rotated.structure.positions[0]
        for (a, b) in zip(rotated.structure.positions, copy.structure.positions) { XCTAssertLessThan(norm(a + shift - b), 1e-9) }
        XCTAssertLessThan(maxAbsDifference(try XCTUnwrap(rotated.hamiltonian).entries, try XCTUnwrap(copy.hamiltonian).entries), 1e-3)
        XCTAssertLessThan(maxAbsDifference(try XCTUnwrap(rotated.overlap).entries, try XCTUnwrap(copy.overlap).entries), 1e-5)
        // R then Rᵀ is the identity on everything.
        let back = try BlockTargets.rotated(rotated, by: rotation.transposed)
        XCTAssertLessThan(maxAbsDifference(try XCTUnwrap(back.hamiltonian).entries, try XCTUnwrap(reference.hamiltonian).entries), 1e-11)
        for (a, b) in zip(back.structure.positions, reference.structure.positions) { XCTAssertLessThan(norm(a - b), 1e-12) }
        var spinful = reference
        spinful.spinful = true
        XCTAssertThrowsError(try BlockTargets.rotated(spinful, by: rotation)) { XCTAssertTrue("\($0)".contains("SU(2)")) }
    }
}
