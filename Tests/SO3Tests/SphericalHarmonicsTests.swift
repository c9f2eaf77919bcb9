import XCTest
import TestSupport
@testable import SO3
import Structures

final class SphericalHarmonicsTests: XCTestCase {
    func testLowOrdersMatchTheInternalConventionTable() throws {
        let sh = try SphericalHarmonics(lmax: 3)
        var rng = SeededGenerator(seed: 1)
        for _ in 0 ..< 20 {
            let r = rng.vector(), u = r / norm(r)
            let (x, y, z) = (u.x, u.y, u.z)
            let y0 = (1 / (4 * Double.pi)).squareRoot()
            let p = (3 / (4 * Double.pi)).squareRoot()
            let d = (15 / (4 * Double.pi)).squareRoot()
            let f0 = (7 / (16 * Double.pi)).squareRoot()
            let expected: [Double] = [
                y0,
                p * y, p * z, p * x,
                d * x * y, d * y * z, d * 0.5 / 3.0.squareRoot() * (3 * z * z - 1), d * x * z, d * 0.5 * (x * x - y * y),
            ]
            let v = sh.values(r)
            XCTAssertLessThan(maxAbsDifference(v[0 ..< 9], expected), 1e-14)
            // f, m = 0 and m = ±3: (7/16π)^½ z(5z²−3) and (35/32π)^½ (y(3x²−y²), x(x²−3y²)).
            XCTAssertEqual(v[12], f0 * z * (5 * z * z - 3), accuracy: 1e-14)
            let f3 = (35 / (32 * Double.pi)).squareRoot()
            XCTAssertEqual(v[9], f3 * y * (3 * x * x - y * y), accuracy: 1e-14)
            XCTAssertEqual(v[15], f3 * x * (x * x - 3 * y * y), accuracy: 1e-14)
        }
    }

    func testOrthonormalOnTheSphereForEveryL() throws {
        let sh = try SphericalHarmonics(lmax: 8)
        // Independent quadrature: 12 Gauss–Legendre nodes × 25 angles (exact to degree 23).
        let (t, w) = WignerD.gaussLegendre(12)
        var gram = [Double](repeating: 0, count: 81 * 81)
        for (ti, wi) in zip(t, w) {
            for k in 0 ..< 25 {
                let phi = 2 * Double.pi * Double(k) / 25, s = (1 - ti * ti).squareRoot()
                let v = sh.values(Vec3(s * cos(phi), s * sin(phi), ti))
                let weight = wi * 2 * Double.pi / 25
                for i in 0 ..< 81 { for j in 0 ..< 81 { gram[i * 81 + j] += weight * v[i] * v[j] } }
            }
        }
        XCTAssertLessThan(maxAbsDifference(gram, identity(81)), 1e-13)
    }

    func testNormalisationsAndSolidHarmonics() throws {
        let component = try SphericalHarmonics(lmax: 8, normalization: .component)
        let normed = try SphericalHarmonics(lmax: 8, normalization: .norm)
        let integral = try SphericalHarmonics(lmax: 8)
        var rng = SeededGenerator(seed: 2)
        for _ in 0 ..< 10 {
            let r = rng.vector() * 3
            let c = component.values(r), n = normed.values(r)
            for l in 0 ... 8 {
                let range = l * l ..< (l + 1) * (l + 1)
                XCTAssertEqual(c[range].map { $0 * $0 }.reduce(0, +), Double(2 * l + 1), accuracy: 1e-12)
                XCTAssertEqual(n[range].map { $0 * $0 }.reduce(0, +), 1, accuracy: 1e-13)
            }
            // Solid harmonics are |r|^l Y(r̂).
            let solid = integral.values(r, normalizeInput: false), unit = integral.values(r)
            for l in 0 ... 8 { for i in l * l ..< (l + 1) * (l + 1) {
                XCTAssertEqual(solid[i], pow(norm(r), Double(l)) * unit[i], accuracy: 1e-11 * max(1, abs(solid[i])))
            } }
        }
        XCTAssertThrowsError(try SphericalHarmonics(lmax: 9)) { XCTAssertTrue("\($0)".contains("l = 9 outside 0…8")) }
    }

    func testGradientsMatchFiniteDifferences() throws {
        let sh = try SphericalHarmonics(lmax: 8)
        var rng = SeededGenerator(seed: 3)
        for normalize in [true, false] {
            for _ in 0 ..< 10 {
                let r = rng.vector() + Vec3(0.2, -0.1, 0.3)
                let (_, g) = sh.valuesAndGradients(r, normalizeInput: normalize)
                let h = 1e-5
                for axis in 0 ..< 3 {
                    var e = Vec3.zero; e[axis] = h
                    let plus = sh.values(r + e, normalizeInput: normalize), minus = sh.values(r - e, normalizeInput: normalize)
                    for i in 0 ..< sh.dim {
                        let fd = (plus[i] - minus[i]) / (2 * h)
                        XCTAssertEqual(g[i][axis], fd, accuracy: 1e-7 * max(1, abs(fd)), "component \(i) axis \(axis)")
                    }
                }
            }
        }
        // Gradient of Y(r̂) is tangential: r · ∇Y = 0.
        let r = Vec3(0.3, -0.7, 0.2)
        for g in sh.valuesAndGradients(r).gradients { XCTAssertEqual(dot(g, r), 0, accuracy: 1e-12) }
    }
}

final class E3nnRelationTests: XCTestCase {
    /// e3nn uses y as polar axis: its l = 2 harmonics ("norm" normalisation, transcribed from its
    /// published polynomials; l = 3 below likewise) are (√3 xz, √3 xy, y² − (x²+z²)/2, √3 yz, √3/2 (z²−x²)). They equal
    /// ours evaluated at P r = (z, x, y), the relation stated in docs/so3.md.
    func testE3nnHarmonicsAreOursOnCyclicallyPermutedAxes() throws {
        let sh = try SphericalHarmonics(lmax: 3, normalization: .norm)
        var rng = SeededGenerator(seed: 4)
        for _ in 0 ..< 10 {
            let r = rng.vector(), u = r / norm(r)
            let (x, y, z) = (u.x, u.y, u.z)
            let s3 = 3.0.squareRoot()
            let e3nn2 = [s3 * x * z, s3 * x * y, y * y - 0.5 * (x * x + z * z), s3 * y * z, s3 / 2 * (z * z - x * x)]
            let ours = sh.values(Vec3(r.z, r.x, r.y))
            XCTAssertLessThan(maxAbsDifference(ours[4 ..< 9], e3nn2), 1e-14)
            XCTAssertLessThan(maxAbsDifference(ours[1 ..< 4], [x, y, z]), 1e-14)
            // l = 3 in e3nn's recursive form (norm normalisation).
            let xz2 = x * x + z * z
            let e3nn3 = [(5.0 / 6).squareRoot() * (e3nn2[0] * z + e3nn2[4] * x), 5.0.squareRoot() * e3nn2[0] * y,
                         (3.0 / 8).squareRoot() * (4 * y * y - xz2) * x, 0.5 * y * (2 * y * y - 3 * xz2),
                         (3.0 / 8).squareRoot() * z * (4 * y * y - xz2), 5.0.squareRoot() * e3nn2[4] * y,
                         (5.0 / 6).squareRoot() * (e3nn2[4] * z - e3nn2[0] * x)]
            XCTAssertLessThan(maxAbsDifference(ours[9 ..< 16], e3nn3), 1e-14)
        }
    }
}
