import Foundation
import XCTest
import Structures
import TestSupport
@testable import Bands

final class KPathTests: XCTestCase {
    func testParsesDockKPathAndExpandsLikeDeepHDock() throws {
        let path = try KPath.read(Fixtures.url("peer/deeph-dock/MoTe2/K_PATH"))
        XCTAssertEqual(path.segments.count, 3)
        XCTAssertEqual(path.segments.map(\.count), [50, 30, 60])
        XCTAssertEqual(path.segments[1].startLabel, "M")
        XCTAssertEqual(path.segments[1].end, Vec3(0.3333333333, 0.3333333333, 0))
        let ks = path.kpoints
        XCTAssertEqual(ks.count, 140)
        XCTAssertEqual(ks[49], Vec3(0.5, 0, 0))
        XCTAssertEqual(ks[1].x, 0.5 / 49, accuracy: 1e-16)
        XCTAssertEqual(path.boundaryLabels, ["GAMMA", "M", "K", "GAMMA"])
        // Round trip through the writer.
        XCTAssertEqual(try KPath.parse(path.text), path)
    }

    func testJumpLabelsAndComments() throws {
        let text = """
        # Γ–X, then a jump to U
        10 0 0 0  0.5 0 0.5  GAMMA X

        5 0.625 0.25 0.625  0.5 0 0.5  U X   # trailing comment
        """
        let path = try KPath.parse(text)
        XCTAssertEqual(path.boundaryLabels, ["GAMMA", "X|U", "X"])
        let lattice = Lattice(vectors: [Vec3(0, 2, 2), Vec3(2, 0, 2), Vec3(2, 2, 0)])
        let d = path.boundaryDistances(lattice)
        XCTAssertEqual(d.count, 3)
        // The jump adds no distance: the second segment starts where the first ended.
        XCTAssertEqual(path.distances(lattice)[10], d[1], accuracy: 1e-15)
    }

    func testParseErrorsNameFileAndLine() {
        func message(_ text: String) -> String {
            do { _ = try KPath.parse(text, file: "my/K_PATH"); return "no error" } catch { return "\(error)" }
        }
        XCTAssertEqual(message("50 0 0 0 0.5 0 0 GAMMA"), "my/K_PATH: line 1: expected 9 fields `N k1 k2 k3 k1' k2' k3' LABEL1 LABEL2`, found 8")
        XCTAssertEqual(message("\n1 0 0 0 0.5 0 0 G M"), "my/K_PATH: line 2: point count `1` is not an integer ≥ 2")
        XCTAssertEqual(message("ten 0 0 0 0.5 0 0 G M"), "my/K_PATH: line 1: point count `ten` is not an integer ≥ 2")
        XCTAssertEqual(message("10 0 0 0 0.5 x 0 G M"), "my/K_PATH: line 1: k2' = `x` is not a finite number")
        XCTAssertEqual(message("10 0 nan 0 0.5 0 0 G M"), "my/K_PATH: line 1: k2 = `nan` is not a finite number")
        XCTAssertEqual(message("# nothing\n\n"), "my/K_PATH: no k-path segments (expected lines `N k1 k2 k3 k1' k2' k3' LABEL1 LABEL2`)")
        XCTAssertThrowsError(try KPath.read(URL(fileURLWithPath: "/nonexistent/K_PATH"))) {
            XCTAssertTrue("\($0)".hasPrefix("/nonexistent/K_PATH: cannot read the k-path file"), "\($0)")
        }
    }

    /// Standard paths: the chosen high-symmetry points have their textbook Cartesian lengths.
    func testStandardPathsHitTheRightPoints() {
        func length(_ k: Vec3, _ l: Lattice) -> Double { KPath.length(k, l) }
        func point(_ p: KPath, _ label: String) -> Vec3 {
            p.segments.first { $0.startLabel == label }?.start ?? p.segments.first { $0.endLabel == label }!.end
        }
        let a = 3.2
        // 2D hexagonal, both the 120° and the 60° setting: |K| = 2/(3a), |M| = 1/(√3 a).
        for second in [Vec3(-a / 2, a * 3.0.squareRoot() / 2, 0), Vec3(a / 2, a * 3.0.squareRoot() / 2, 0)] {
            let l = Lattice(vectors: [Vec3(a, 0, 0), second, Vec3(0, 0, 20)], periodic: [true, true, false])
            let (p, kind) = KPath.standard(for: l, periodic: [true, true, false])
            XCTAssertEqual(kind, .hexagonal2D)
            XCTAssertEqual(p.boundaryLabels, ["GAMMA", "M", "K", "GAMMA"])
            XCTAssertEqual(length(point(p, "K"), l), 2 / (3 * a), accuracy: 1e-12)
            XCTAssertEqual(length(point(p, "M"), l), 1 / (3.0.squareRoot() * a), accuracy: 1e-12)
        }
        // A 3 %-strained hexagonal cell (as in the training sets) is still hexagonal.
        let strained = Lattice(vectors: [Vec3(a * 1.03, 0.02, 0), Vec3(-a / 2, a * 3.0.squareRoot() / 2 * 0.99, 0), Vec3(0, 0, 15)],
                               periodic: [true, true, false])
        let (sp2, sk2) = KPath.standard(for: strained, periodic: [true, true, false])
        XCTAssertEqual(sk2, .hexagonal2D)
        XCTAssertEqual(sp2.segments[1].end, Vec3(1.0 / 3, 1.0 / 3, 0))
        XCTAssertGreaterThanOrEqual(sp2.kpoints.count, 150)
        let square = Lattice(vectors: [Vec3(a, 0, 0), Vec3(0, a, 0), Vec3(0, 0, 20)], periodic: [true, true, false])
        XCTAssertEqual(KPath.standard(for: square, periodic: [true, true, false]).kind, .square2D)
        let rect = Lattice(vectors: [Vec3(a, 0, 0), Vec3(0, 1.5 * a, 0), Vec3(0, 0, 20)], periodic: [true, true, false])
        let (rp, rk) = KPath.standard(for: rect, periodic: [true, true, false])
        XCTAssertEqual(rk, .rectangular2D)
        XCTAssertEqual(rp.boundaryLabels, ["GAMMA", "X", "S", "Y", "GAMMA"])

        // fcc primitive cell of conventional edge c: |X| = 1/c, |L| = √3/(2c), |W| = √5/(2c), |K| = 3/(2√2 c).
        let c = 5.43
        let fcc = Lattice(vectors: [Vec3(0, c / 2, c / 2), Vec3(c / 2, 0, c / 2), Vec3(c / 2, c / 2, 0)])
        let (fp, fk) = KPath.standard(for: fcc, periodic: [true, true, true])
        XCTAssertEqual(fk, .fcc)
        XCTAssertEqual(length(point(fp, "X"), fcc), 1 / c, accuracy: 1e-12)
        XCTAssertEqual(length(point(fp, "L"), fcc), 3.0.squareRoot() / (2 * c), accuracy: 1e-12)
        XCTAssertEqual(length(point(fp, "W"), fcc), 5.0.squareRoot() / (2 * c), accuracy: 1e-12)
        XCTAssertEqual(length(point(fp, "K"), fcc), 3 / (2 * 2.0.squareRoot() * c), accuracy: 1e-12)
        XCTAssertEqual(fp.boundaryLabels, ["GAMMA", "X", "W", "K", "GAMMA", "L", "U", "W", "L", "K|U", "X"])
        // bcc: |H| = 1/c, |N| = 1/(√2 c), |P| = √3/(2c).
        let bcc = Lattice(vectors: [Vec3(-c / 2, c / 2, c / 2), Vec3(c / 2, -c / 2, c / 2), Vec3(c / 2, c / 2, -c / 2)])
        let (bp, bk) = KPath.standard(for: bcc, periodic: [true, true, true])
        XCTAssertEqual(bk, .bcc)
        XCTAssertEqual(length(point(bp, "H"), bcc), 1 / c, accuracy: 1e-12)
        XCTAssertEqual(length(point(bp, "N"), bcc), 1 / (2.0.squareRoot() * c), accuracy: 1e-12)
        XCTAssertEqual(length(point(bp, "P"), bcc), 3.0.squareRoot() / (2 * c), accuracy: 1e-12)
        // Simple cubic: |R| = √3/(2c).
        let sc = Lattice(vectors: [Vec3(c, 0, 0), Vec3(0, c, 0), Vec3(0, 0, c)])
        let (sp, sk) = KPath.standard(for: sc, periodic: [true, true, true])
        XCTAssertEqual(sk, .simpleCubic)
        XCTAssertEqual(length(point(sp, "R"), sc), 3.0.squareRoot() / (2 * c), accuracy: 1e-12)
        // 3D hexagonal: |A| = 1/(2c_z), |K| = 2/(3a).
        let hex = Lattice(vectors: [Vec3(a, 0, 0), Vec3(-a / 2, a * 3.0.squareRoot() / 2, 0), Vec3(0, 0, 5.1)])
        let (hp, hk) = KPath.standard(for: hex, periodic: [true, true, true])
        XCTAssertEqual(hk, .hexagonal3D)
        XCTAssertEqual(length(point(hp, "A"), hex), 1 / (2 * 5.1), accuracy: 1e-12)
        XCTAssertEqual(length(point(hp, "K"), hex), 2 / (3 * a), accuracy: 1e-12)
        // Point density follows path length.
        XCTAssertGreaterThanOrEqual(fp.segments.map(\.count).min()!, 2)
    }

    func testMonkhorstPackMesh() throws {
        let ks = try monkhorstPack(SIMD3(2, 3, 1))
        XCTAssertEqual(ks.count, 6)
        XCTAssertEqual(Set(ks.map(\.x)), [-0.25, 0.25])
        XCTAssertEqual(Set(ks.map(\.y)), [-1.0 / 3, 0, 1.0 / 3])
        XCTAssertEqual(Set(ks.map(\.z)), [0])
        XCTAssertThrowsError(try monkhorstPack(SIMD3(0, 1, 1))) { XCTAssertTrue("\($0)".contains("≥ 1")) }
    }
}
