import TestSupport
import XCTest
@testable import Linalg


private func randomHermitian(_ n: Int, _ g: inout SplitMix) -> ComplexMatrix {
    var a = ComplexMatrix(rows: n, cols: n)
    for c in 0 ..< n {
        for r in 0 ... c {
            let re = Double.random(in: -1 ... 1, using: &g)
            let im = r == c ? 0 : Double.random(in: -1 ... 1, using: &g)
            a[r, c] = (re, im)
            a[c, r] = (re, -im)
        }
    }
    return a
}

/// CᴴC + shift·I: Hermitian positive definite.
private func randomMetric(_ n: Int, shift: Double, _ g: inout SplitMix) -> ComplexMatrix {
    var c = ComplexMatrix(rows: n, cols: n)
    for k in 0 ..< c.storage.count { c.storage[k] = Double.random(in: -0.3 ... 0.3, using: &g) }
    var b = Eigen.multiply(c, c, conjugateTransposeLeft: true)
    for i in 0 ..< n { b.storage[2 * (i + i * n)] += shift }
    return b
}

/// max |A x − λ B x| over all eigenpairs.
private func residual(_ a: ComplexMatrix, _ b: ComplexMatrix, _ values: [Double], _ x: ComplexMatrix) -> Double {
    let ax = Eigen.multiply(a, x), bx = Eigen.multiply(b, x)
    var worst = 0.0
    for c in 0 ..< x.cols {
        for r in 0 ..< a.rows {
            let p = ax[r, c], q = bx[r, c]
            worst = max(worst, abs(p.re - values[c] * q.re), abs(p.im - values[c] * q.im))
        }
    }
    return worst
}

final class EigenTests: XCTestCase {
    func testSymmetricTwoByTwoAnalytic() throws {
        // [[2, 1], [1, 2]] has eigenvalues 1 and 3.
        let (w, v) = try Eigen.symmetric([2, 1, 1, 2], n: 2)
        XCTAssertEqual(w[0], 1, accuracy: 1e-14)
        XCTAssertEqual(w[1], 3, accuracy: 1e-14)
        XCTAssertEqual(abs(v![0]), 1 / 2.0.squareRoot(), accuracy: 1e-14)
    }

    func testGeneralizedSymmetricAgainstAnalytic() throws {
        // A = diag(2, 6), B = diag(1, 2): λ = 2, 3.
        let (w, _) = try Eigen.generalizedSymmetric([2, 0, 0, 6], [1, 0, 0, 2], n: 2, vectors: false)
        XCTAssertEqual(w[0], 2, accuracy: 1e-14)
        XCTAssertEqual(w[1], 3, accuracy: 1e-14)
    }

    func testHermitianResidualAndTrace() throws {
        var g = SplitMix(state: 7)
        let a = randomHermitian(23, &g)
        let (w, v) = try Eigen.hermitian(a)
        XCTAssertLessThan(residual(a, .identity(23), w, v!), 1e-12)
        let trace = (0 ..< 23).reduce(0.0) { $0 + a[$1, $1].re }
        XCTAssertEqual(w.reduce(0, +), trace, accuracy: 1e-11)
        XCTAssertEqual(w, w.sorted())
        // A complex 2×2 with a known spectrum: [[1, i], [−i, 1]] → 0, 2.
        var m = ComplexMatrix(rows: 2, cols: 2)
        m[0, 0] = (1, 0); m[1, 1] = (1, 0); m[0, 1] = (0, 1); m[1, 0] = (0, -1)
        let (w2, _) = try Eigen.hermitian(m, vectors: false)
        XCTAssertEqual(w2[0], 0, accuracy: 1e-15)
        XCTAssertEqual(w2[1], 2, accuracy: 1e-15)
    }

    func testGeneralizedHermitianResidualAndBOrthonormality() throws {
        var g = SplitMix(state: 11)
        let n = 31
        let a = randomHermitian(n, &g), b = randomMetric(n, shift: 0.5, &g)
        let (w, x) = try Eigen.generalizedHermitian(a, b)
        XCTAssertLessThan(residual(a, b, w, x!), 1e-11)
        let xbx = Eigen.multiply(x!, Eigen.multiply(b, x!), conjugateTransposeLeft: true)
        XCTAssertLessThan(maxIdentityDeviation(xbx), 1e-11)
        // Values only agree with values+vectors.
        let (w2, none) = try Eigen.generalizedHermitian(a, b, vectors: false)
        XCTAssertNil(none)
        for (p, q) in zip(w, w2) { XCTAssertEqual(p, q, accuracy: 1e-11) }
    }

    func testFilteredSolverMatchesPlainSolverWhenNothingIsDropped() throws {
        var g = SplitMix(state: 5)
        let a = randomHermitian(17, &g), b = randomMetric(17, shift: 1, &g)
        let plain = try Eigen.generalizedHermitian(a, b, vectors: false).values
        let filtered = try Eigen.generalizedHermitianFiltered(a, b, threshold: 1e-6)
        XCTAssertEqual(filtered.droppedDirections, 0)
        for (p, q) in zip(plain, filtered.values) { XCTAssertEqual(p, q, accuracy: 1e-11) }
        XCTAssertLessThan(residual(a, b, filtered.values, filtered.vectors!), 1e-11)
    }

    func testSingularMetricFailsPlainButFilteredRecoversTheNonRedundantSpectrum() throws {
        // Duplicate basis function: φ₃ = φ₀, so B is exactly singular. The filtered solve must
        // reproduce the spectrum of the problem without the duplicate.
        var g = SplitMix(state: 3)
        let n = 6
        let a0 = randomHermitian(n, &g), b0 = randomMetric(n, shift: 1, &g)
        // Expansion T (n+1 × n): identity plus row n copying row 0; A = T A0 Tᵀ, B = T B0 Tᵀ.
        func expand(_ m: ComplexMatrix) -> ComplexMatrix {
            var out = ComplexMatrix(rows: n + 1, cols: n + 1)
            let map = Array(0 ..< n) + [0]
            for c in 0 ... n { for r in 0 ... n { out[r, c] = m[map[r], map[c]] } }
            return out
        }
        let a = expand(a0), b = expand(b0)
        XCTAssertThrowsError(try Eigen.generalizedHermitian(a, b)) { error in
            guard case EigenError.notPositiveDefinite(let routine, _)? = error as? EigenError else {
                return XCTFail("unexpected error \(error)")
            }
            XCTAssertEqual(routine, "zhegvd")
            XCTAssertTrue("\(error)".contains("not positive definite"))
        }
        let reference = try Eigen.generalizedHermitian(a0, b0, vectors: false).values
        let filtered = try Eigen.generalizedHermitianFiltered(a, b, threshold: 1e-8)
        XCTAssertEqual(filtered.droppedDirections, 1)
        XCTAssertLessThan(abs(filtered.smallestMetricEigenvalue), 1e-12)
        XCTAssertEqual(filtered.values.count, n)
        for (p, q) in zip(reference, filtered.values) { XCTAssertEqual(p, q, accuracy: 1e-10) }
    }

    func testShapeErrorsAreTyped() {
        XCTAssertThrowsError(try Eigen.symmetric([1, 2, 3], n: 2)) { XCTAssertTrue($0 is EigenError) }
        XCTAssertThrowsError(try Eigen.generalizedHermitian(ComplexMatrix(rows: 2, cols: 2), ComplexMatrix(rows: 3, cols: 3)))
        XCTAssertThrowsError(try Eigen.generalizedHermitianFiltered(.identity(3), .identity(3), threshold: 2)) { error in
            XCTAssertEqual(error as? EigenError, .emptySubspace(threshold: 2, largest: 1))
        }
    }

    private func maxIdentityDeviation(_ m: ComplexMatrix) -> Double {
        var worst = 0.0
        for c in 0 ..< m.cols {
            for r in 0 ..< m.rows {
                let e = m[r, c]
                worst = max(worst, abs(e.re - (r == c ? 1 : 0)), abs(e.im))
            }
        }
        return worst
    }
}
