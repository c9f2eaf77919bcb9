// Proofs that S computed from the basis alone reproduces the DFT codes' own overlap matrices on
// real files (copies in Tests/Fixtures): PySCF def2-SVP molecules to 1e-9, GPAW dzp LCAO crystals
// (with the PAW correction) to 1e-5 per entry, every DFT block present, extra blocks only where
// |S| < 1e-8. Orbital order and signs are the data's because the comparison is entry by entry.
import XCTest
import Foundation
import Basis
import Formats
import Structures
import TestSupport

final class OverlapProofTests: XCTestCase {
    /// GPAW files come from the fixture copy of Debian's gpaw-data, never from the system.
    let resolver = BasisResolver(searchPaths: [Fixtures.path("overlap/gpaw-setups")], environment: [:])

    struct Comparison { var maxDifference: Double; var missing: [BlockKey]; var maxExtra: Double; var extraCount: Int }

    func compare(_ folder: URL, threshold: Double = 0) throws -> Comparison {
        let record = try FormatReader.readRecord(at: folder)
        let reference = try XCTUnwrap(record.overlap)
        let basis = try resolver.resolve(record, folder: folder)
        let calculator = OverlapCalculator(basis: basis, elements: record.structure.species, threshold: threshold)
        let s = try calculator.overlap(of: record.structure)
        var result = Comparison(maxDifference: 0, missing: [], maxExtra: 0, extraCount: 0)
        for (b, key) in reference.keys.enumerated() {
            guard let mine = s.values(for: key) else { result.missing.append(key); continue }
            result.maxDifference = max(result.maxDifference, maxAbsDifference(Array(mine), Array(reference.values(at: b))))
        }
        for (b, key) in s.keys.enumerated() where !reference.contains(key) {
            result.extraCount += 1
            result.maxExtra = max(result.maxExtra, s.values(at: b).map(abs).max() ?? 0)
        }
        return result
    }

    func testPySCFDef2SVPMolecules() throws {
        for name in ["water-0020", "ethanol-0046"] {
            let c = try compare(Fixtures.url("datasets/\(name)"))
            XCTAssertEqual(c.missing, [], name)
            XCTAssertLessThan(c.maxDifference, 1e-9, name)
            XCTAssertEqual(c.extraCount, 0, name)
            print("\(name): max |ΔS| = \(c.maxDifference)")
        }
    }

    func testGPAWDzpCrystalsWithPAWCorrection() throws {
        for name in ["overlap/graphene-2x2-0000", "overlap/hbn-2x2-0000", "datasets/mos2-2x2-0000"] {
            let c = try compare(Fixtures.url(name))
            XCTAssertEqual(c.missing, [], name)
            XCTAssertLessThan(c.maxDifference, 1e-5, name)
            XCTAssertLessThan(c.maxExtra, 1e-8, name)
            print("\(name): max |ΔS| = \(c.maxDifference), \(c.extraCount) extra blocks, max |S| there \(c.maxExtra)")
        }
    }
}
