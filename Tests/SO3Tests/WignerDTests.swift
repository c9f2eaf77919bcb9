import XCTest
import TestSupport
@testable import SO3
import Structures

final class WignerDTests: XCTestCase {
    func testHarmonicsRotateByDForHundredRandomRotations() throws {
        let sh = try SphericalHarmonics(lmax: 8)
        var rng = SeededGenerator(seed: 10)
        var worst = 0.0, worstOrth = 0.0, worstHom = 0.0
        for _ in 0 ..< 100 {
            let r1 = rng.rotation(), r2 = rng.rotation()
            let d1 = try WignerD.matrices(lmax: 8, rotation: r1)
            let d2 = try WignerD.matrices(lmax: 8, rotation: r2)
            let d12 = try WignerD.matrices(lmax: 8, rotation: r1 * r2)
            let point = rng.vector()
            let y = sh.values(point), yr = sh.values(r1 * point)
            for l in 0 ... 8 {
                let n = 2 * l + 1, range = l * l ..< (l + 1) * (l + 1)
                worst = max(worst, maxAbsDifference(yr[range], matvec(d1[l], Array(y[range]))))
                worstOrth = max(worstOrth, maxAbsDifference(matmul(d1[l], transpose(d1[l], n, n), n, n, n), identity(n)))
                worstHom = max(worstHom, maxAbsDifference(d12[l], matmul(d1[l], d2[l], n, n, n)))
            }
        }
        XCTAssertLessThan(worst, 1e-12)
        XCTAssertLessThan(worstOrth, 1e-12)
        XCTAssertLessThan(worstHom, 1e-12)
    }

    func testRotationAboutZMixesPlusAndMinusM() throws {
        // Active rotation by α about z: cos mφ ↦ cos m(φ−α), so in the (−m, +m) pair
        // D = [[cos mα, sin mα]... — the sin component gains −sin(mα)·cos part.
        let alpha = 0.37
        let d = try WignerD.matrix(l: 2, rotation: Rotation(axis: Vec3(0, 0, 1), angle: alpha))
        // Y_{2,2} ∝ x²−y² = ρ² cos 2φ, Y_{2,−2} ∝ ρ² sin 2φ; Y(R r) at φ+α.
        // cos 2(φ+α) = cos2α cos2φ − sin2α sin2φ.
        XCTAssertEqual(d[4 * 5 + 4], cos(2 * alpha), accuracy: 1e-14)
        XCTAssertEqual(d[4 * 5 + 0], -sin(2 * alpha), accuracy: 1e-14)
        XCTAssertEqual(d[0 * 5 + 4], sin(2 * alpha), accuracy: 1e-14)
        XCTAssertEqual(d[2 * 5 + 2], 1, accuracy: 1e-14)
        // l = 1 in the (y, z, x) basis is the rotation matrix itself, permuted.
        var rng = SeededGenerator(seed: 11)
        let r = rng.rotation()
        let d1 = try WignerD.matrix(l: 1, rotation: r)
        let perm = [1, 2, 0]
        for i in 0 ..< 3 { for j in 0 ..< 3 { XCTAssertEqual(d1[i * 3 + j], r[perm[i], perm[j]], accuracy: 1e-14) } }
    }

    func testIrrepsDWithParityAndImproperRotations() throws {
        let irreps = try Irreps("2x0e+1x1o+1x1e+1x2o")
        var rng = SeededGenerator(seed: 12)
        let r = rng.rotation()
        let inversion = Rotation(rows: Vec3(-1, 0, 0), Vec3(0, -1, 0), Vec3(0, 0, -1))
        let d = try WignerD.matrix(irreps: irreps, rotation: inversion * r)
        let proper = try WignerD.matrix(irreps: irreps, rotation: r)
        let n = irreps.dim
        let signs: [Double] = [1, 1, -1, -1, -1, 1, 1, 1, -1, -1, -1, -1, -1]
        for i in 0 ..< n { for j in 0 ..< n { XCTAssertEqual(d[i * n + j], signs[i] * proper[i * n + j], accuracy: 1e-13) } }
        // The harmonics' own D for an improper matrix is the parity-(−1)^l one.
        let sh = try SphericalHarmonics(lmax: 3)
        let p = rng.vector(), m = inversion * r
        let dm = try WignerD.matrix(irreps: sh.irreps, rotation: m)
        XCTAssertLessThan(maxAbsDifference(sh.values(m * p), matvec(dm, sh.values(p))), 1e-13)
        XCTAssertThrowsError(try Rotation(rowMajor: [1, 0, 0, 0, 2, 0, 0, 0, 1]))
    }
}
