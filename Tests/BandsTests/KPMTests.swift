// The kernel polynomial DOS against dense LAPACK eigenvalues (MoS₂ 2×2 fixture at Γ, 164
// orbitals, generalized problem through CHOLMOD): stochastic moments agree with the exact ones
// within their error bars, and the DOS converges to the dense one as moments grow.
import Bands
import Formats
import Foundation
import Linalg
import Sparse
import Structures
import TestSupport
import XCTest

final class KPMTests: XCTestCase {
    func testKPMConvergesToDenseDOS() throws {
        let record = try FormatReader.readRecord(at: Fixtures.url("datasets/mos2-2x2-0000"))
        let system = try BlochSystem(record: record)
        let levels = try system.eigenvalues(at: Vec3(0, 0, 0)).values
        var options = KPMOptions(moments: 1024, randomVectors: 64)
        options.block = 16
        let kpm = try KPMDensity.compute(system, structureName: "mos2-2x2-0000", options: options)
        XCTAssertLessThan(kpm.lower, levels.first!)
        XCTAssertGreaterThan(kpm.upper, levels.last!)

        // 1. Every stochastic moment is within 5 standard errors of the exact trace Σ T_n(x_i).
        let center = (kpm.upper + kpm.lower) / 2, halfWidth = (kpm.upper - kpm.lower) / 2
        let xs = levels.map { ($0 - center) / halfWidth }
        var exact = [Double](repeating: 0, count: kpm.moments)
        for x in xs {
            var tPrev = 1.0, t = x
            exact[0] += 1; exact[1] += x
            for j in 2 ..< kpm.moments { let next = 2 * x * t - tPrev; tPrev = t; t = next; exact[j] += t }
        }
        XCTAssertEqual(kpm.meanMoments[0], Double(levels.count), accuracy: 1e-9) // Rademacher: rᵀr = n exactly
        var outside = 0
        for j in 1 ..< kpm.moments where abs(kpm.meanMoments[j] - exact[j]) > 5 * kpm.momentErrors[j] + 1e-9 { outside += 1 }
        XCTAssertEqual(outside, 0, "moments outside 5 standard errors")
        XCTAssertGreaterThan(kpm.momentErrors[1], 0)

        // 2. Convergence: DOS from the first N moments, both smoothed by a 0.3 eV Gaussian, against
        // the dense eigenvalues smoothed alike (2 states per level). The error falls as N grows.
        let sigma = 0.3
        let h = (kpm.energies.last! - kpm.energies.first!) / Double(kpm.energies.count - 1)
        func gaussian(_ x: Double) -> Double { exp(-0.5 * x * x / (sigma * sigma)) / (sigma * (2 * Double.pi).squareRoot()) }
        let reference = kpm.energies.map { e in levels.reduce(0) { $0 + 2 * gaussian(e - $1) } }
        func smoothed(_ dos: [Double]) -> [Double] {
            let reach = Int((5 * sigma / h).rounded(.up))
            return dos.indices.map { g in
                var s = 0.0
                for d in max(0, g - reach) ... min(dos.count - 1, g + reach) { s += dos[d] * gaussian(Double(d - g) * h) * h }
                return s
            }
        }
        var errors: [Double] = []
        for n in [64, 128, 256, 512, 1024] {
            let scaled = kpm.energies.map { ($0 - center) / halfWidth }
            let dos = KernelPolynomial.density(moments: Array(kpm.meanMoments.prefix(n)), at: scaled).map { $0 * 2 / halfWidth }
            let s = smoothed(dos)
            errors.append(zip(s, reference).reduce(0) { $0 + abs($1.0 - $1.1) } / reference.reduce(0, +))
        }
        print("KPM relative L1 error vs dense (σ = 0.3 eV) for 64…1024 moments:", errors.map { String(format: "%.4f", $0) })
        for i in 1 ..< 3 { XCTAssertLessThan(errors[i], errors[i - 1]) }
        XCTAssertLessThan(errors[4], 0.5 * errors[0])
        XCTAssertLessThan(errors[4], 0.1)
        // All states are counted: ∫DOS = 2 × orbitals.
        XCTAssertEqual(kpm.integrated.last!, 2 * Double(levels.count), accuracy: 0.02 * Double(levels.count))
    }
}
