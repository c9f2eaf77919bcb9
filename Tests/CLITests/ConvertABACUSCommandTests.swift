import ArgumentParser
import Foundation
import HarmoSECLI
import TestSupport
import XCTest

/// `harmose convert` with ABACUS and CP2K input, and ABACUS CSR output.
final class ConvertABACUSCommandTests: XCTestCase {
    func parse<T: ParsableCommand>(_ args: [String], as: T.Type) throws -> T {
        try XCTUnwrap(try HarmoSECommand.parseAsRoot(args) as? T)
    }

    func testABACUSArchiveToDockToABACUSAndCP2KToDock() throws {
        let tmp = try makeTemporaryDirectory(self)
        // The archive holds one run folder: DST mirrors its name.
        let dock = tmp.appendingPathComponent("dock")
        XCTAssertEqual(try parse(["convert", Fixtures.path("abacus/MoS2.tar.xz"), dock.path, "--to", "deeph-dock"], as: ConvertCommand.self).execute(), ["MoS2"])
        let report = try parse(["inspect", dock.path, "--json"], as: InspectCommand.self).makeReport()
        XCTAssertEqual(report.format, "deeph-dock")
        XCTAssertEqual(report.structures[0].hamiltonian?.shiftRange, [[-4, 4], [-4, 4], [0, 0]])
        // dock → ABACUS CSR: reads back as ABACUS with the same blocks.
        let abacus = tmp.appendingPathComponent("abacus")
        XCTAssertEqual(try parse(["convert", dock.appendingPathComponent("MoS2").path, abacus.path, "--to", "abacus-csr"], as: ConvertCommand.self).execute(), ["MoS2"])
        let back = try parse(["inspect", abacus.path, "--json"], as: InspectCommand.self).makeReport()
        XCTAssertEqual(back.format, "abacus-csr")
        XCTAssertEqual(back.structures[0].hamiltonian?.blocks, report.structures[0].hamiltonian?.blocks)
        // CP2K output folder → dock.
        let cp2k = tmp.appendingPathComponent("water")
        XCTAssertEqual(try parse(["convert", Fixtures.path("cp2k/water"), cp2k.path, "--to", "deeph-dock"], as: ConvertCommand.self).execute(), ["water"])
        XCTAssertThrowsError(try HarmoSECommand.parseAsRoot(["convert", Fixtures.path("cp2k/water"), cp2k.path, "--to", "cp2k"]))
    }
}
