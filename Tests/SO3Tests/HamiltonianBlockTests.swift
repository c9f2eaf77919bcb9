import XCTest
import TestSupport
@testable import SO3
import Structures

final class HamiltonianBlockTests: XCTestCase {
    func testShellPairRoundTripsAndRotatesIrrepByIrrep() throws {
        var rng = SeededGenerator(seed: 30)
        var worstTrip = 0.0, worstRot = 0.0
        for l1 in 0 ... 4 { for l2 in 0 ... 4 {
            let dec = try ShellPairDecomposition(l1, l2)
            XCTAssertEqual(dec.irreps.dim, dec.dim)
            XCTAssertEqual(dec.irreps.entries.first?.irrep.p, (l1 + l2) % 2 == 0 ? 1 : -1)
            for _ in 0 ..< 4 {
                let block = rng.values(dec.dim)
                worstTrip = max(worstTrip, maxAbsDifference(try dec.compose(dec.decompose(block)), block))
                let x = rng.values(dec.dim)
                worstTrip = max(worstTrip, maxAbsDifference(try dec.decompose(dec.compose(x)), x))
                // D(l1) B D(l2)ᵀ ↔ D(L) x_L
                let r = rng.rotation()
                let rotated = try OrbitalRotation.rotate(block: block, rows: OrbitalShells([l1]), cols: OrbitalShells([l2]), rotation: r)
                let dIrreps = try WignerD.matrix(irreps: dec.irreps, rotation: r)
                worstRot = max(worstRot, maxAbsDifference(try dec.decompose(rotated), matvec(dIrreps, try dec.decompose(block))))
            }
        } }
        XCTAssertLessThan(worstTrip, 1e-13)
        XCTAssertLessThan(worstRot, 1e-12)
    }

    func testAtomPairBlocksOfMixedShellsForHundredRotations() throws {
        let oxygen = OrbitalShells([0, 0, 0, 1, 1, 2]), molybdenum = OrbitalShells([0, 0, 0, 0, 1, 1, 2, 2, 3])
        let dec = try AtomPairDecomposition(rows: oxygen, cols: molybdenum)
        XCTAssertEqual(dec.irreps.dim, 14 * 27)
        // s,s,s,p,p,d × s⁴p²d²f: e.g. 0e comes from 3·4 ss + 2·2 pp + 1·2 dd = 18.
        XCTAssertEqual(dec.irreps.regrouped().description, "18x0e+21x1o+6x1e+18x2e+7x2o+10x3o+4x3e+4x4e+1x4o+1x5o")
        var rng = SeededGenerator(seed: 31)
        var worstTrip = 0.0, worstRot = 0.0
        for _ in 0 ..< 100 {
            let block = rng.values(dec.dim), r = rng.rotation()
            let x = try dec.decompose(block)
            worstTrip = max(worstTrip, maxAbsDifference(try dec.compose(x), block))
            let rotated = try OrbitalRotation.rotate(block: block, rows: oxygen, cols: molybdenum, rotation: r)
            worstRot = max(worstRot, maxAbsDifference(try dec.decompose(rotated), matvec(try WignerD.matrix(irreps: dec.irreps, rotation: r), x)))
        }
        XCTAssertLessThan(worstTrip, 1e-13)
        XCTAssertLessThan(worstRot, 1e-12)
        // The composition matrix: block = x·Q, Q orthogonal.
        let q = dec.compositionMatrix, x = rng.values(dec.dim)
        XCTAssertLessThan(maxAbsDifference(matmul(x, q, 1, dec.dim, dec.dim), try dec.compose(x)), 1e-14)
        XCTAssertLessThan(maxAbsDifference(matmul(q, transpose(q, dec.dim, dec.dim), dec.dim, dec.dim, dec.dim), identity(dec.dim)), 1e-13)
        XCTAssertThrowsError(try ShellPairDecomposition(-1, 0)) { XCTAssertTrue("\($0)".contains("l = -1 outside 0…8"), "\($0)") }
        XCTAssertThrowsError(try AtomPairDecomposition(rows: OrbitalShells([0, 9]), cols: OrbitalShells([0])))
        XCTAssertThrowsError(try OrbitalRotation.matrix(for: OrbitalShells([1, -2]), rotation: .identity)) {
            XCTAssertTrue("\($0)".contains("orbital shells [1 -2]: angular momentum l = -2"), "\($0)")
        }
        XCTAssertEqual(OrbitalConvention.openMX.internalIndex(-1), [])
        XCTAssertThrowsError(try ShellPairDecomposition(5, 4)) { XCTAssertTrue("\($0)".contains("Clebsch–Gordan"), "\($0)") }
        XCTAssertThrowsError(try dec.decompose([1, 2, 3])) { XCTAssertTrue("\($0)".contains("expected 378 values, got 3"), "\($0)") }
    }

    func testOpenMXOrderTable() throws {
        XCTAssertEqual(OrbitalConvention.openMX.internalIndex(1), [2, 0, 1])        // x, y, z
        XCTAssertEqual(OrbitalConvention.openMX.internalIndex(2), [2, 4, 0, 3, 1])  // z², x²−y², xy, xz, yz
        XCTAssertEqual(OrbitalConvention.openMX.internalIndex(3), [3, 4, 2, 5, 1, 6, 0])
        // The OpenMX p orbitals are (x, y, z): check against the harmonics themselves.
        let sh = try SphericalHarmonics(lmax: 2)
        let r = Vec3(0.3, -0.5, 0.8), u = r / norm(r), v = sh.values(r)
        let p = OrbitalConvention.openMX.internalIndex(1).map { v[1 + $0] }
        XCTAssertLessThan(maxAbsDifference(p, [u.x, u.y, u.z].map { $0 * (3 / (4 * Double.pi)).squareRoot() }), 1e-15)
        let d = OrbitalConvention.openMX.internalIndex(2).map { v[4 + $0] }
        let c = (15 / (4 * Double.pi)).squareRoot()
        let expected = [c / (2 * 3.0.squareRoot()) * (3 * u.z * u.z - 1), c / 2 * (u.x * u.x - u.y * u.y), c * u.x * u.y, c * u.x * u.z, c * u.y * u.z]
        XCTAssertLessThan(maxAbsDifference(d, expected), 1e-15)
        // Converting a block to OpenMX and back is the identity, and decomposition is convention-free.
        let s = OrbitalShells([0, 1, 2, 3])
        let dec = try AtomPairDecomposition(rows: s, cols: s)
        var rng = SeededGenerator(seed: 32)
        let block = rng.values(dec.dim)
        let openmx = try OrbitalConvention.openMX.fromInternal(block: block, rows: s, cols: s)
        XCTAssertEqual(try OrbitalConvention.openMX.toInternal(block: openmx, rows: s, cols: s), block)
        XCTAssertLessThan(maxAbsDifference(try dec.decompose(openmx, convention: .openMX), try dec.decompose(block)), 1e-15)
        XCTAssertLessThan(maxAbsDifference(try dec.compose(try dec.decompose(block), convention: .openMX), openmx), 1e-14)
        // The permutation matrix agrees with the index table: v_openmx = P v_internal.
        let pm = OrbitalConvention.openMX.matrix(for: s), vec = rng.values(16)
        let viaTable = zip(OrbitalConvention.openMX.internalIndex(0) + OrbitalConvention.openMX.internalIndex(1).map { $0 + 1 }
            + OrbitalConvention.openMX.internalIndex(2).map { $0 + 4 } + OrbitalConvention.openMX.internalIndex(3).map { $0 + 9 }, 0...).map { vec[$0.0] }
        XCTAssertEqual(matvec(pm, vec), viaTable)
    }
}
