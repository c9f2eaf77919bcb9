// Bad input for the overlap: every failure names the file and field, and nothing is written.
// Plus an independent check of the numerical two-center machinery against analytic Gaussians.
import XCTest
import Foundation
import Basis
import Formats
import Structures
import TestSupport

final class BasisInputTests: XCTestCase {
    let resolver = BasisResolver(searchPaths: [Fixtures.path("overlap/gpaw-setups")], environment: [:])

    /// A copy of a fixture structure with info.json edited by `edit` (on the JSON text).
    func structure(_ fixture: String, edit: (String) -> String = { $0 }, poscar: ((String) -> String)? = nil) throws -> URL {
        let dir = try makeTemporaryDirectory(self).appendingPathComponent("s")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let src = Fixtures.url(fixture)
        let info = try String(contentsOf: src.appendingPathComponent("info.json"), encoding: .utf8)
        try edit(info).write(to: dir.appendingPathComponent("info.json"), atomically: true, encoding: .utf8)
        let p = try String(contentsOf: src.appendingPathComponent("POSCAR"), encoding: .utf8)
        try (poscar?(p) ?? p).write(to: dir.appendingPathComponent("POSCAR"), atomically: true, encoding: .utf8)
        return dir
    }

    func failure(_ dir: URL, job: OverlapJob? = nil) throws -> BasisError {
        let j = job ?? OverlapJob(resolver: resolver)
        let out = dir.deletingLastPathComponent().appendingPathComponent("out")
        do {
            let p = try j.prepare(name: "s", folder: dir)
            try j.write(p, under: out)
        } catch let e as BasisError {
            XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "nothing written on failure")
            return e
        }
        XCTFail("expected a BasisError")
        throw BasisError(file: "", message: "no error")
    }

    func testUnknownBasisName() throws {
        let dir = try structure("datasets/water-0020", edit: { $0.replacingOccurrences(of: "\"def2-svp\"", with: "\"def2-qzvpp\"") })
        let e = try failure(dir)
        XCTAssertEqual(e.field, "basis")
        XCTAssertTrue(e.file.hasSuffix("info.json"))
        XCTAssertTrue(e.message.contains("unknown basis 'def2-qzvpp'"), e.message)
    }

    func testMissingGPAWBasisFile() throws {
        let dir = try structure("overlap/graphene-2x2-0000", edit: { $0.replacingOccurrences(of: "\"dzp\"", with: "\"tzp\"") })
        let job = OverlapJob(resolver: BasisResolver(searchPaths: [Fixtures.path("overlap/gpaw-setups")], environment: [:]))
        // /usr/share/gpaw-setups has no tzp files either; the message lists where it looked.
        let e = try failure(dir, job: job)
        XCTAssertEqual(e.field, "basis")
        XCTAssertTrue(e.message.contains("C.tzp.basis"), e.message)
    }

    func testElementAbsentFromBasisFile() throws {
        // A private NWChem file with H only, named by path in info.json.
        let dir = try structure("datasets/water-0020", edit: { $0.replacingOccurrences(of: "\"def2-svp\"", with: "\"h-only.nw\"") })
        try "H    S\n  1.0  1.0\nEND\n".write(to: dir.appendingPathComponent("h-only.nw"), atomically: true, encoding: .utf8)
        let e = try failure(dir)
        XCTAssertEqual(e.field, "O")
        XCTAssertTrue(e.file.hasSuffix("h-only.nw"))
        XCTAssertTrue(e.message.contains("absent"), e.message)
    }

    func testShellsDisagreeingWithBasis() throws {
        // H as [s, p] instead of def2-SVP's [s, s, p]; orbits_quantity kept consistent (24 − 2).
        let dir = try structure("datasets/water-0020", edit: {
            $0.replacingOccurrences(of: "\"H\": [0, 0, 1]", with: "\"H\": [0, 1]")
                .replacingOccurrences(of: "\"orbits_quantity\": 24", with: "\"orbits_quantity\": 22")
        })
        let e = try failure(dir)
        XCTAssertEqual(e.field, "elements_orbital_map.H")
        XCTAssertTrue(e.message.contains("disagree"), e.message)
    }

    func testAtomsTooClose() throws {
        // Move the second atom of water onto the first (within 0.3 Å).
        let dir = try structure("datasets/water-0020", poscar: { text in
            var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            let first = lines[8].split(separator: " ").compactMap { Double($0) }
            lines[9] = "\(first[0] + 0.3) \(first[1]) \(first[2])"
            return lines.joined(separator: "\n")
        })
        // The structure reader refuses it (one check for every command, Structures/StructureChecks),
        // before the overlap job starts; nothing is written.
        let out = dir.deletingLastPathComponent().appendingPathComponent("out")
        do {
            let p = try OverlapJob(resolver: resolver).prepare(name: "s", folder: dir)
            try OverlapJob(resolver: resolver).write(p, under: out)
            XCTFail("atoms 0.3 Å apart were accepted")
        } catch {
            let text = "\(error)"
            XCTAssertTrue(text.contains("POSCAR"), text)
            XCTAssertTrue(text.contains("closer than 0.5 Å"), text)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "nothing written on failure")
    }

    func testTooLargeForMemoryIsRefusedBeforeStarting() throws {
        let dir = try structure("overlap/graphene-2x2-0000")
        let e = try failure(dir, job: OverlapJob(resolver: resolver, memoryLimit: 100_000))
        XCTAssertTrue(e.message.contains("GiB"), e.message)
        XCTAssertTrue(e.message.contains("blocks"), e.message)
    }

    /// The Fourier–Bessel route (radial tables × Gaunt × solid harmonics) on Gaussian radial
    /// functions equals the analytic Obara–Saika overlap of the same functions, for s, p and d
    /// pairs at several displacements: two independent implementations agree.
    func testTwoCenterTablesMatchAnalyticGaussians() throws {
        let shells = [GaussianShell(l: 0, exponents: [1.1], coefficients: [1]),
                      GaussianShell(l: 1, exponents: [0.8], coefficients: [1]),
                      GaussianShell(l: 2, exponents: [0.9], coefficients: [1])]
        let analytic = GaussianOverlap(elements: [1: GaussianElementBasis(symbol: "H", shells: shells)])
        // The same functions as radial tables: normalised radial part N r^l e^{−αr²} (× Y_lm).
        let cutoff = 9.0
        let bins = 900
        func radial(_ s: GaussianShell) -> RadialFunction {
            let a = s.exponents[0]
            var norm2 = 0.0   // ∫ r^{2l+2} e^{−2αr²} dr
            let h = 1e-4
            for k in 0 ..< 120_000 { let r = (Double(k) + 0.5) * h; norm2 += pow(r, Double(2 * s.l + 2)) * exp(-2 * a * r * r) * h }
            let n = 1 / norm2.squareRoot()
            let values = (0 ... bins).map { k -> Double in let r = cutoff * Double(k) / Double(bins); return n * exp(-a * r * r) }
            return RadialFunction(l: s.l, spline: UniformCubicSpline(cutoff: cutoff, values: values))
        }
        let functions = shells.map(radial)
        let grid = FourierBesselGrid(maxCutoff: cutoff)
        let transforms = functions.map(grid.transform)
        let block = TwoCenterBlock(grid: grid, rows: functions, rowTransforms: transforms, columns: functions, columnTransforms: transforms)
        var worst = 0.0
        for d in [Vec3(0, 0, 0), Vec3(0.3, -0.2, 0.5), Vec3(1.2, 0.4, -0.9), Vec3(-0.5, 2.1, 0.7), Vec3(0, 0, 3.0)] {
            var numerical = [Double](repeating: 0, count: 9 * 9)
            numerical.withUnsafeMutableBufferPointer { block.accumulate(displacement: d, into: $0.baseAddress!, ld: 9) }
            let exact = analytic.block(1, 1, displacement: d)
            worst = max(worst, maxAbsDifference(numerical, exact))
        }
        XCTAssertLessThan(worst, 1e-5)
    }
}
