import Bands
import Foundation
import Formats
import Structures
import TestSupport
import XCTest

/// Eigenvalues from the converted CP2K matrices reproduce CP2K's own printed MO and band energies.
final class CP2KBandsTests: XCTestCase {
    func testWaterMOEnergies() throws {
        let record = try FormatReader.readRecord(at: Fixtures.url("cp2k/water"))
        let values = try BlochSystem(record: record).eigenvalues(at: Vec3(0, 0, 0)).values
        // "MO|  index  a.u.  eV  occupation" rows of the last MO print.
        var printed: [Double] = []
        for line in try String(contentsOf: Fixtures.url("cp2k/water/water.out"), encoding: .utf8).split(separator: "\n") {
            if line.contains("EIGENVALUES AND OCCUPATION") { printed = [] }
            let f = line.split(separator: " ")
            if f.count == 5, f[0] == "MO|", Int(f[1]) != nil, let ev = Double(f[3]) { printed.append(ev) }
        }
        XCTAssertEqual(printed.count, 10)
        let worst = zip(values, printed).map { abs($0 - $1) }.max()!
        print(String(format: "water (CP2K): max |ε − ε_CP2K| over 10 MOs = %.3g meV", worst * 1000))
        XCTAssertLessThan(worst, 1e-3)
    }

    func testGrapheneBandEnergies() throws {
        var records: [DFTRecord] = []
        try DatasetSource(url: Fixtures.url("cp2k/graphene.tar.xz")).forEachRecord { records.append($0) }
        let system = try BlochSystem(record: records[0])
        var worst = 0.0, compared = 0
        var k: Vec3?
        var expected: [Double] = []
        func check() throws {
            guard let k, !expected.isEmpty else { return }
            let values = try system.eigenvalues(at: k).values
            for (a, b) in zip(values, expected) { worst = max(worst, abs(a - b)); compared += 1 }
        }
        for line in try String(contentsOf: Fixtures.url("cp2k/graphene.bs"), encoding: .utf8).split(separator: "\n") {
            let f = line.split(separator: " ")
            if line.hasPrefix("#  Point") {
                try check()
                k = Vec3(Double(f[5])!, Double(f[6])!, Double(f[7])!); expected = []
            } else if f.count == 3, Int(f[0]) != nil, let e = Double(f[1]) {
                expected.append(e)
            }
        }
        try check()
        print(String(format: "graphene (CP2K): max |ε − ε_CP2K| over %d band energies at Γ, Γ–K, K = %.3g meV", compared, worst * 1000))
        XCTAssertEqual(compared, 24)
        XCTAssertLessThan(worst, 1e-3)
    }
}
