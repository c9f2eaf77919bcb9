// Linalg/BLAS.swift (owned with Autograd): the row/column/k-split products against a naive
// triple loop, for every transpose combination.
import XCTest
import Linalg
@testable import Autograd

final class BLASTests: XCTestCase {
    func naive(_ a: [Double], _ b: [Double], m: Int, n: Int, k: Int, ta: Bool, tb: Bool) -> [Double] {
        var c = [Double](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n { for l in 0..<k {
            c[i * n + j] += (ta ? a[l * m + i] : a[i * k + l]) * (tb ? b[j * k + l] : b[l * n + j])
        } } }
        return c
    }

    func testSplitProductsMatchNaive() {
        // Tall C (row slabs), wide C (column slabs), long reduction (k slabs), and a tiny one.
        for (m, n, k) in [(1200, 20, 50), (20, 1200, 50), (24, 20, 3000), (3, 2, 4)] {
            var rng = SplitMix64(seed: UInt64(m * n * k))
            let a = (0..<(m * k)).map { _ in rng.nextUnit() - 0.5 }, b = (0..<(k * n)).map { _ in rng.nextUnit() - 0.5 }
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let want = naive(a, b, m: m, n: n, k: k, ta: ta, tb: tb)
                for workers in [1, 3] {
                    for beta in [0.0, 0.5] {
                        var c = [Double](repeating: 1, count: m * n)
                        BLAS.gemmSplit(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 2, a: a, b: b, beta: beta, c: &c, workers: workers)
                        let expected = want.map { 2 * $0 + beta }
                        XCTAssertLessThan(zip(c, expected).map { Swift.abs($0 - $1) }.max()!, 1e-11, "\(m)×\(n)×\(k) \(ta) \(tb) w\(workers) β\(beta)")
                    }
                }
            }
        }
    }

    func testBatchedProduct() {
        let (batch, m, n, k) = (5, 3, 4, 2)
        var rng = SplitMix64(seed: 9)
        let a = (0..<(batch * m * k)).map { _ in rng.nextUnit() }, b = (0..<(batch * k * n)).map { _ in rng.nextUnit() }
        var serial: [Double]?
        for workers in [1, 2, 3] {
            var c = [Double](repeating: 0, count: batch * m * n)
            BLAS.gemmBatched(batch: batch, workers: workers, m: m, n: n, k: k, a: a, b: b, c: &c)
            for i in 0..<batch {
                let want = naive(Array(a[(i * m * k)..<((i + 1) * m * k)]), Array(b[(i * k * n)..<((i + 1) * k * n)]), m: m, n: n, k: k, ta: false, tb: false)
                XCTAssertLessThan(zip(c[(i * m * n)..<((i + 1) * m * n)], want).map { Swift.abs($0 - $1) }.max()!, 1e-14)
            }
            if let serial { XCTAssertEqual(c.map(\.bitPattern), serial.map(\.bitPattern), "\(workers) workers") } else { serial = c }
        }
    }
}
