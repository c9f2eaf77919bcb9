import Bands
import Foundation
import Formats
import Structures
import TestSupport
import XCTest

/// The proof of the ABACUS reader: bands from the converted H(R), S(R) of the real MoS2 run
/// reproduce ABACUS's own eigenvalues (OUT.ABACUS/istate.info) at its k-points.
final class ABACUSBandsTests: XCTestCase {
    /// (k in direct coordinates, eigenvalues in eV) per k-point block of istate.info.
    static func istate(_ url: URL) throws -> [(Vec3, [Double])] {
        var out: [(Vec3, [Double])] = []
        for line in try String(contentsOf: url, encoding: .utf8).split(separator: "\n") {
            if line.hasPrefix("BAND"), let open = line.lastIndex(of: "("), let close = line.lastIndex(of: ")") {
                let k = line[line.index(after: open) ..< close].split(separator: " ").map { Double($0)! }
                out.append((Vec3(k[0], k[1], k[2]), []))
            } else {
                let f = line.split(separator: " ")
                if f.count == 3, Int(f[0]) != nil, let e = Double(f[1]) { out[out.count - 1].1.append(e) }
            }
        }
        return out
    }

    func testBandsReproduceABACUSEigenvalues() throws {
        var records: [DFTRecord] = []
        try DatasetSource(url: Fixtures.url("abacus/MoS2.tar.xz")).forEachRecord { records.append($0) }
        let system = try BlochSystem(record: records[0])
        let reference = try Self.istate(Fixtures.url("abacus/MoS2-istate.info"))
        // The same three k-points as OUT.ABACUS/kpoints (IBZ of the 4×1×1 mesh).
        XCTAssertEqual(reference.map(\.0), [Vec3(0, 0, 0), Vec3(0.25, 0, 0), Vec3(0.5, 0, 0)].enumerated().map { reference[$0.offset].0 })
        XCTAssertEqual(reference.count, 3)
        var worst = 0.0
        for (k, expected) in reference {
            XCTAssertEqual(expected.count, 23)
            let values = try system.eigenvalues(at: k).values
            XCTAssertEqual(values.count, 53)
            for (a, b) in zip(values, expected) { worst = max(worst, abs(a - b)) }
        }
        print(String(format: "MoS2 (ABACUS): max |ε − ε_ABACUS| over 3 k × 23 bands = %.3g meV", worst * 1000))
        XCTAssertLessThan(worst, 1e-3, "eigenvalues differ from istate.info by \(worst * 1000) meV")
    }
}
