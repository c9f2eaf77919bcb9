import Foundation
import XCTest
import Linalg
import Structures
@testable import Bands

/// Tight-binding models with closed-form bands, to pin the phase convention e^{+i2πk·R}.
enum Models {
    /// One s orbital per cell on a chain along a1: ε(k) = (e0 + 2t cos 2πk) / (1 + 2s cos 2πk).
    static func chain(e0: Double, t: Double, s: Double, halfOnly: Bool = false) throws -> BlochSystem {
        let lattice = Lattice(vectors: [Vec3(2.5, 0, 0), Vec3(0, 10, 0), Vec3(0, 0, 10)], periodic: [true, false, false])
        let st = Structure(lattice: lattice, atomicNumbers: [1], positions: [.zero], basis: [1: OrbitalShells([0])])
        var h = BlockOperator(), o = BlockOperator()
        h.append(BlockKey(0, 0, 0, 0, 0), rows: 1, cols: 1, values: [e0])
        o.append(BlockKey(0, 0, 0, 0, 0), rows: 1, cols: 1, values: [1])
        h.append(BlockKey(1, 0, 0, 0, 0), rows: 1, cols: 1, values: [t])
        o.append(BlockKey(1, 0, 0, 0, 0), rows: 1, cols: 1, values: [s])
        if !halfOnly {
            h.append(BlockKey(-1, 0, 0, 0, 0), rows: 1, cols: 1, values: [t])
            o.append(BlockKey(-1, 0, 0, 0, 0), rows: 1, cols: 1, values: [s])
        }
        return try BlochSystem(structure: st, hamiltonian: h, overlap: o)
    }

    /// Two atoms A, B with one orbital each and an asymmetric hopping pattern: H_AB(k) =
    /// t1 + t2 e^{i2πk1}, so a sign error in the phase changes nothing for |H_AB| but shows in
    /// the eigenvectors; we add an on-site term e^{i2πk2}-coupled A–A hopping to break it.
    static func twoSite() throws -> (BlochSystem, (Vec3) -> [Double]) {
        let lattice = Lattice(vectors: [Vec3(3, 0, 0), Vec3(1, 2.8, 0), Vec3(0, 0, 15)], periodic: [true, true, false])
        let st = Structure(lattice: lattice, atomicNumbers: [6, 7], positions: [.zero, Vec3(1.4, 0.9, 0)],
                           basis: [6: OrbitalShells([0]), 7: OrbitalShells([0])])
        let (ea, eb, t1, t2, ta) = (-1.0, 0.7, -0.9, 0.4, 0.25)
        var h = BlockOperator()
        h.append(BlockKey(0, 0, 0, 0, 0), rows: 1, cols: 1, values: [ea])
        h.append(BlockKey(0, 0, 0, 1, 1), rows: 1, cols: 1, values: [eb])
        h.append(BlockKey(0, 0, 0, 0, 1), rows: 1, cols: 1, values: [t1])
        h.append(BlockKey(0, 0, 0, 1, 0), rows: 1, cols: 1, values: [t1])
        h.append(BlockKey(1, 0, 0, 0, 1), rows: 1, cols: 1, values: [t2])
        h.append(BlockKey(-1, 0, 0, 1, 0), rows: 1, cols: 1, values: [t2])
        h.append(BlockKey(0, 1, 0, 0, 0), rows: 1, cols: 1, values: [ta])
        h.append(BlockKey(0, -1, 0, 0, 0), rows: 1, cols: 1, values: [ta])
        let system = try BlochSystem(structure: st, hamiltonian: h, overlap: nil)
        let exact = { (k: Vec3) -> [Double] in
            let haa = ea + 2 * ta * cos(2 * .pi * k.y)
            let re = t1 + t2 * cos(2 * .pi * k.x), im = t2 * sin(2 * .pi * k.x)
            let mean = (haa + eb) / 2, half = (haa - eb) / 2
            let r = (half * half + re * re + im * im).squareRoot()
            return [mean - r, mean + r]
        }
        return (system, exact)
    }
}

final class BlochTests: XCTestCase {
    func testChainWithOverlapMatchesClosedForm() throws {
        let (e0, t, s) = (-2.0, -1.1, 0.15)
        let full = try Models.chain(e0: e0, t: t, s: s)
        let half = try Models.chain(e0: e0, t: t, s: s, halfOnly: true)
        XCTAssertEqual(full.dispersiveDirections, [true, false, false])
        for k in stride(from: -0.5, through: 0.5, by: 0.05) {
            let c = cos(2 * .pi * k)
            let exact = (e0 + 2 * t * c) / (1 + 2 * s * c)
            XCTAssertEqual(try full.eigenvalues(at: Vec3(k, 0, 0)).values[0], exact, accuracy: 1e-13)
            // Missing Hermitian partners are filled in as conjugates.
            XCTAssertEqual(try half.eigenvalues(at: Vec3(k, 0, 0)).values[0], exact, accuracy: 1e-13)
        }
    }

    func testTwoSiteModelMatchesClosedFormAndHKIsHermitian() throws {
        let (system, exact) = try Models.twoSite()
        let ks = [Vec3(0, 0, 0), Vec3(0.13, 0.37, 0), Vec3(0.5, -0.25, 0), Vec3(1.0 / 3, 1.0 / 3, 0)]
        let (bands, dropped) = try system.eigenvalues(at: ks)
        XCTAssertEqual(dropped, 0)
        for (q, k) in ks.enumerated() {
            let e = exact(k)
            XCTAssertEqual(bands[0][q], e[0], accuracy: 1e-13)
            XCTAssertEqual(bands[1][q], e[1], accuracy: 1e-13)
            let h = system.hamiltonian(at: k)
            XCTAssertLessThan(h.hermiticityDeviation, 1e-15)
            // Phase convention: element (A, B) = t1 + t2 e^{+i2πk1}.
            XCTAssertEqual(h[0, 1].im, 0.4 * sin(2 * .pi * k.x), accuracy: 1e-15)
        }
    }

    func testParallelSolveEqualsSerial() throws {
        let (system, _) = try Models.twoSite()
        let ks = (0 ..< 37).map { Vec3(Double($0) / 37, Double($0 * $0 % 11) / 11, 0) }
        let (bands, _) = try system.eigenvalues(at: ks)
        for workers in [1, 3, 64] {
            XCTAssertEqual(try system.eigenvalues(at: ks, workers: workers).bands, bands)
        }
        for (q, k) in ks.enumerated() {
            let one = try system.eigenvalues(at: k).values
            XCTAssertEqual(bands[0][q], one[0])
            XCTAssertEqual(bands[1][q], one[1])
        }
    }

    func testBlockShapeAndAtomErrorsNameTheSource() {
        let st = Structure(lattice: Lattice(vectors: [Vec3(3, 0, 0), Vec3(0, 3, 0), Vec3(0, 0, 3)]),
                           atomicNumbers: [1], positions: [.zero], basis: [1: OrbitalShells([0, 1])])
        var h = BlockOperator()
        h.append(BlockKey(0, 0, 0, 0, 0), rows: 1, cols: 1, values: [1])
        XCTAssertThrowsError(try BlochSystem(structure: st, hamiltonian: h, overlap: nil, hamiltonianSource: "pred.h5")) {
            XCTAssertEqual("\($0)", "pred.h5: block [0, 0, 0, 0, 0] is 1×1 but the structure's orbitals need 4×4 (the operator does not belong to this structure or basis)")
        }
        var h2 = BlockOperator()
        h2.append(BlockKey(0, 0, 0, 0, 2), rows: 4, cols: 4, values: [Double](repeating: 0, count: 16))
        XCTAssertThrowsError(try BlochSystem(structure: st, hamiltonian: h2, overlap: nil, hamiltonianSource: "pred.h5")) {
            XCTAssertTrue("\($0)".hasPrefix("pred.h5: block [0, 0, 0, 0, 2] refers to an atom outside 0..<1"))
        }
        var h3 = BlockOperator()
        h3.append(BlockKey(0, 0, 0, 0, 0), rows: 4, cols: 4, values: [Double](repeating: .nan, count: 16))
        XCTAssertThrowsError(try BlochSystem(structure: st, hamiltonian: h3, overlap: nil, hamiltonianSource: "pred.h5")) {
            XCTAssertEqual("\($0)", "pred.h5: block [0, 0, 0, 0, 0] contains NaN or Inf")
        }
    }

    func testOverlapFilterDropsRedundantOrbital() throws {
        // Two identical s orbitals on one site: S(k) is singular everywhere (in rounding, the plain
        // Cholesky may fail or return a spurious level); the filtered solve gives the
        // single-orbital band.
        let lattice = Lattice(vectors: [Vec3(2, 0, 0), Vec3(0, 10, 0), Vec3(0, 0, 10)], periodic: [true, false, false])
        let st = Structure(lattice: lattice, atomicNumbers: [1], positions: [.zero], basis: [1: OrbitalShells([0, 0])])
        var h = BlockOperator(), s = BlockOperator()
        let (e0, t, ov) = (-1.0, -0.5, 0.1)
        for r in [0, 1, -1] {
            let hv = r == 0 ? e0 : t, sv = r == 0 ? 1 : ov
            h.append(BlockKey(r, 0, 0, 0, 0), rows: 2, cols: 2, values: [hv, hv, hv, hv])
            s.append(BlockKey(r, 0, 0, 0, 0), rows: 2, cols: 2, values: [sv, sv, sv, sv])
        }
        let system = try BlochSystem(structure: st, hamiltonian: h, overlap: s)
        let k = 0.1, c = cos(2 * .pi * k)
        let r = try system.eigenvalues(at: Vec3(k, 0, 0), overlapThreshold: 1e-6)
        XCTAssertEqual(r.dropped, 1)
        XCTAssertEqual(r.values.count, 1)
        XCTAssertEqual(r.values[0], (e0 + 2 * t * c) / (1 + 2 * ov * c), accuracy: 1e-12)
    }
}
