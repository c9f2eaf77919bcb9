import XCTest
import TestSupport
@testable import SO3
import Structures

final class ClebschGordanTests: XCTestCase {
    func testComplexCoefficientsAgainstTables() throws {
        XCTAssertEqual(try ClebschGordan.complex(1, 0, 1, 0, 0, 0), -1 / 3.0.squareRoot(), accuracy: 4e-16)
        XCTAssertEqual(try ClebschGordan.complex(1, 1, 1, -1, 2, 0), 1 / 6.0.squareRoot(), accuracy: 4e-16)
        XCTAssertEqual(try ClebschGordan.complex(1, 1, 1, -1, 1, 0), 1 / 2.0.squareRoot(), accuracy: 4e-16)
        XCTAssertEqual(try ClebschGordan.complex(2, 1, 1, -1, 2, 0), 1 / 2.0.squareRoot(), accuracy: 4e-16)
        XCTAssertEqual(try ClebschGordan.complex(2, 0, 2, 0, 2, 0), -(2.0 / 7).squareRoot(), accuracy: 4e-16)
        // Exchange symmetry ⟨j1 m1 j2 m2|J M⟩ = (−1)^(j1+j2−J) ⟨j2 m2 j1 m1|J M⟩.
        XCTAssertEqual(try ClebschGordan.complex(8, 3, 5, -1, 7, 2), try ClebschGordan.complex(5, -1, 8, 3, 7, 2), accuracy: 4e-16)
        XCTAssertEqual(try ClebschGordan.complex(8, 3, 5, -1, 6, 2), -(try ClebschGordan.complex(5, -1, 8, 3, 6, 2)), accuracy: 4e-16)
        XCTAssertNotEqual(try ClebschGordan.complex(8, 3, 5, -1, 6, 2), 0)
        XCTAssertThrowsError(try ClebschGordan.complex(8, 8, 8, -8, 16, 0)) { XCTAssertTrue("\($0)".contains("l = 16 outside 0…8"), "\($0)") }
        // Orthonormal in (m1, m2) for every (J, M): Σ |⟨4 m1 4 m2|J M⟩|² = 1.
        for J in 0 ... 8 { for M in -J ... J {
            var s = 0.0
            for m1 in -4 ... 4 where abs(M - m1) <= 4 { let c = try ClebschGordan.complex(4, m1, 4, M - m1, J, M); s += c * c }
            XCTAssertEqual(s, 1, accuracy: 1e-14)
        } }
    }

    func testRealCoefficientsAreOrthogonalAndEquivariantForAllTriples() throws {
        var rng = SeededGenerator(seed: 20)
        let rotation = rng.rotation()
        let d = try WignerD.matrices(lmax: 8, rotation: rotation)
        var worstOrth = 0.0, worstEq = 0.0
        for l1 in 0 ... 8 { for l2 in 0 ... 8 {
            let n1 = 2 * l1 + 1, n2 = 2 * l2 + 1, n = n1 * n2
            var stacked: [Double] = []
            for L in abs(l1 - l2) ... min(8, l1 + l2) {
                let c = try ClebschGordan.real(l1, l2, L)
                let nL = 2 * L + 1
                stacked += c.values
                // C (D1 ⊗ D2) = D_L C, the left side summed over C's non-zeros.
                var left = [Double](repeating: 0, count: nL * n)
                for e in c.nonZeros { for a in 0 ..< n1 { let x = e.value * d[l1][e.m1 * n1 + a]; if x == 0 { continue }
                    for b in 0 ..< n2 { left[e.M * n + a * n2 + b] += x * d[l2][e.m2 * n2 + b] } } }
                worstEq = max(worstEq, maxAbsDifference(left, matmul(d[L], c.values, nL, nL, n)))
                XCTAssertEqual(c.nonZeros.count, c.values.filter { $0 != 0 }.count)
            }
            if l1 + l2 <= 8 {
                worstOrth = max(worstOrth, maxAbsDifference(matmul(stacked, transpose(stacked, n, n), n, n, n), identity(n)))
            }
        } }
        XCTAssertLessThan(worstOrth, 1e-13)
        XCTAssertLessThan(worstEq, 1e-12)
        XCTAssertThrowsError(try ClebschGordan.real(1, 1, 3)) { XCTAssertTrue("\($0)".contains("needs L ≥ 0")) }
        XCTAssertThrowsError(try ClebschGordan.real(9, 1, 8))
    }

    func testEquivarianceForHundredRotationsAndCouplingOfHarmonics() throws {
        var rng = SeededGenerator(seed: 21)
        let c = try ClebschGordan.real(2, 3, 4)
        var worst = 0.0
        for _ in 0 ..< 100 {
            let d = try WignerD.matrices(lmax: 4, rotation: rng.rotation())
            let u = rng.values(5), v = rng.values(7)
            func couple(_ a: [Double], _ b: [Double]) -> [Double] {
                (0 ..< 9).map { M in var s = 0.0; for i in 0 ..< 5 { for j in 0 ..< 7 { s += c[M, i, j] * a[i] * b[j] } }; return s }
            }
            worst = max(worst, maxAbsDifference(couple(matvec(d[2], u), matvec(d[3], v)), matvec(d[4], couple(u, v))))
        }
        XCTAssertLessThan(worst, 1e-12)
        // Coupling Y1(r) ⊗ Y1(r) to L = 0 gives a positive multiple of |r̂|² (sign convention check):
        // C[0; m, m] = −1/√3 · (−1)… in the real basis it is the identity over √3 up to sign.
        let c110 = try ClebschGordan.real(1, 1, 0)
        for i in 0 ..< 3 { for j in 0 ..< 3 {
            XCTAssertEqual(c110[0, i, j], i == j ? -1 / 3.0.squareRoot() : 0, accuracy: 1e-15)
        } }
    }
}
