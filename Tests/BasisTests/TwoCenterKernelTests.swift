// The two-centre kernel (`TwoCenterBlock.accumulate`: sparse Gaunt sums, no allocation per block)
// equals the defining dense sum S(d) = Σ_terms s_l(|d|) Σ_m G[ma, mb, m] |d|^l Y_lm(d) on GPAW dzp
// tables of real elements (B, C, N), at random displacements, on an axis, at d = 0 and past the range.
import XCTest
import Foundation
@testable import Basis
import Formats
import SO3
import Structures
import TestSupport

final class TwoCenterKernelTests: XCTestCase {
    func testSparseKernelEqualsDenseGauntSum() throws {
        let resolver = BasisResolver(searchPaths: [Fixtures.path("overlap/gpaw-setups")], environment: [:])
        var rng = SplitMix(state: 21)
        var compared = 0
        for name in ["overlap/graphene-2x2-0000", "overlap/hbn-2x2-0000"] {
            let folder = Fixtures.url(name)
            let record = try FormatReader.readRecord(at: folder)
            let calculator = OverlapCalculator(basis: try resolver.resolve(record, folder: folder), elements: record.structure.species)
            XCTAssertFalse(calculator.orbitalBlocks.isEmpty, name)
            let blocks = calculator.orbitalBlocks.map { ("orbitals \($0.key)", $0.value) } + calculator.projectorBlocks.map { ("projectors \($0.key)", $0.value) }
            for (pair, block) in blocks {
                let lmax = block.terms.map(\.l).max() ?? 0
                let sh = try SphericalHarmonics(lmax: lmax)
                var displacements = [Vec3(0, 0, 0), Vec3(0, 0, 1.7), Vec3(2.1, 0, 0), Vec3(0, 0, block.range + 0.1)]
                for _ in 0 ..< 40 {
                    let v = Vec3(Double.random(in: 0 ..< 1, using: &rng) - 0.5, Double.random(in: 0 ..< 1, using: &rng) - 0.5, Double.random(in: 0 ..< 1, using: &rng) - 0.5)
                    displacements.append(v * (block.range * Double.random(in: 0 ..< 1, using: &rng) / max(norm(v), 1e-9)))
                }
                for d in displacements {
                    var fast = [Double](repeating: 0, count: block.rows * block.columns)
                    fast.withUnsafeMutableBufferPointer { block.accumulate(displacement: d, into: $0.baseAddress!, ld: block.columns) }
                    var dense = [Double](repeating: 0, count: block.rows * block.columns)
                    let r = norm(d)
                    if r < block.range {
                        var rlY = [Double](repeating: 0, count: sh.dim)
                        rlY.withUnsafeMutableBufferPointer { sh.evaluate(d, normalizeInput: false, values: $0.baseAddress!, gradients: nil) }
                        for t in block.terms where !(r == 0 && t.l > 0) {
                            let s = t.spline(r)
                            let g = Gaunt.coefficients(t.la, t.lb, t.l)
                            let db = 2 * t.lb + 1, dl = 2 * t.l + 1
                            for ma in 0 ..< 2 * t.la + 1 {
                                for mb in 0 ..< db {
                                    var acc = 0.0
                                    for m in 0 ..< dl { acc += g[(ma * db + mb) * dl + m] * rlY[t.l * t.l + m] }
                                    dense[(t.row0 + ma) * block.columns + t.col0 + mb] += s * acc
                                }
                            }
                        }
                    }
                    XCTAssertLessThanOrEqual(maxAbsDifference(fast, dense), 1e-12, "\(name) \(pair) d = \(d)")
                    if r > 0.5 && r < 0.5 * block.range { XCTAssertTrue(fast.contains { $0 != 0 }, "\(name) \(pair) d = \(d)") }
                    compared += 1
                }
            }
        }
        XCTAssertGreaterThan(compared, 8 * 44)
    }
}
