import Foundation
import XCTest
import HDF5Kit
import TestSupport
@testable import HarmoSECLI

final class BandsCommandTests: XCTestCase {
    private let mote2 = Fixtures.path("peer/deeph-dock/MoTe2")

    func testBandsCommandParsesAndWritesOutputs() throws {
        let out = try makeTemporaryDirectory(self).appendingPathComponent("bands")
        let command = try HarmoSECommand.parseAsRoot(["bands", mote2, "--kpath", "\(mote2)/K_PATH", "--out", out.path]) as! BandsCommand
        var log: [String] = []
        let bands = try command.execute { log.append($0) }
        XCTAssertEqual(bands.bandCount, 57)
        for name in ["band.h5", "bands.csv", "bands.svg"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent(name).path), name)
        }
        XCTAssertTrue(log.joined().contains("band gap"))
        // No temporary files left beside the outputs.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out.path).sorted(), ["band.h5", "bands.csv", "bands.svg"])
    }

    func testReplacementHamiltonianGivesSameBandsAsDFT() throws {
        let dir = try makeTemporaryDirectory(self)
        let own = try (HarmoSECommand.parseAsRoot(["bands", mote2, "--out", dir.appendingPathComponent("a").path]) as! BandsCommand).execute()
        let replaced = try (HarmoSECommand.parseAsRoot(["bands", mote2, "--hamiltonian", "\(mote2)/hamiltonian.h5",
                                                        "--out", dir.appendingPathComponent("b").path]) as! BandsCommand).execute()
        XCTAssertEqual(own.energies, replaced.energies)
        // A structure folder works as the source too.
        let folder = try (HarmoSECommand.parseAsRoot(["bands", mote2, "--hamiltonian", mote2,
                                                      "--out", dir.appendingPathComponent("c").path]) as! BandsCommand).execute()
        XCTAssertEqual(own.energies, folder.energies)
    }

    func testMismatchedHamiltonianIsRejectedNamingTheFile() throws {
        let dir = try makeTemporaryDirectory(self)
        let out = dir.appendingPathComponent("bad")
        let si = Fixtures.path("peer/deeph-dock/Si/hamiltonian.h5")
        let command = try HarmoSECommand.parseAsRoot(["bands", mote2, "--hamiltonian", si, "--out", out.path]) as! BandsCommand
        XCTAssertThrowsError(try command.execute()) { error in
            let text = "\(error)"
            XCTAssertTrue(text.hasPrefix(si), text)
            XCTAssertTrue(text.contains("inconsistent with the orbitals"), text)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "nothing may be written on error")
        // Another structure's folder: different atoms.
        let other = try HarmoSECommand.parseAsRoot(["bands", mote2, "--hamiltonian", Fixtures.path("peer/deeph-dock/Si"),
                                                    "--out", out.path]) as! BandsCommand
        XCTAssertThrowsError(try other.execute()) { XCTAssertTrue("\($0)".contains("differ from the structure's"), "\($0)") }
    }

    func testBadKPathAndOptionsAreRejected() throws {
        let dir = try makeTemporaryDirectory(self)
        let kpath = dir.appendingPathComponent("K_PATH")
        try "50 0 0 0 0.5 0 0 GAMMA\n".write(to: kpath, atomically: true, encoding: .utf8)
        let command = try HarmoSECommand.parseAsRoot(["bands", mote2, "--kpath", kpath.path, "--out", dir.appendingPathComponent("o").path]) as! BandsCommand
        XCTAssertThrowsError(try command.execute()) { XCTAssertTrue("\($0)".hasPrefix("\(kpath.path): line 1: expected 9 fields"), "\($0)") }
        XCTAssertThrowsError(try HarmoSECommand.parseAsRoot(["bands", mote2, "--out", "x", "--overlap-threshold", "-1"]))
        XCTAssertThrowsError(try HarmoSECommand.parseAsRoot(["bands", mote2]))  // --out is required
        XCTAssertThrowsError(try HarmoSECommand.parseAsRoot(["dos", mote2, "--out", "x", "--mesh", "12,12"]))
        XCTAssertThrowsError(try HarmoSECommand.parseAsRoot(["dos", mote2, "--out", "x", "--sigma", "0"]))
        let missing = try HarmoSECommand.parseAsRoot(["bands", dir.appendingPathComponent("nope").path, "--out", "x"]) as! BandsCommand
        XCTAssertThrowsError(try missing.execute()) { XCTAssertTrue("\($0)".contains("nope"), "\($0)") }
    }

    func testDOSCommand() throws {
        let out = try makeTemporaryDirectory(self).appendingPathComponent("dos")
        let command = try HarmoSECommand.parseAsRoot(["dos", mote2, "--mesh", "6,6,1", "--sigma", "0.1", "--out", out.path]) as! DOSCommand
        XCTAssertEqual(try command.meshSize, SIMD3(6, 6, 1))
        let dos = try command.execute()
        XCTAssertEqual(dos.mesh, SIMD3(6, 6, 1))
        let f = try HDF5File(readingAt: out.appendingPathComponent("dos.h5").path)
        XCTAssertEqual(try f.readDoubles("sigma_eV").values, [0.1])
        XCTAssertEqual(try f.readInt64s("kmesh").values, [6, 6, 1])
        // 57 bands × 2 electrons in total.
        XCTAssertEqual(try f.readDoubles("integrated_dos").values.last!, 114, accuracy: 1e-6)
    }

    func testBenchCommandIsHiddenFromHelp() {
        XCTAssertFalse(HarmoSECommand.helpMessage().contains("bench-bands"))
        XCTAssertNoThrow(try HarmoSECommand.parseAsRoot(["bench-bands", mote2, "--kpoints", "2", "--repeats", "1"]))
    }
}
