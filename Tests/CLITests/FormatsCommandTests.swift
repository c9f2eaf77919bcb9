import ArgumentParser
import Foundation
import HarmoSECLI
import TestSupport
import XCTest

final class FormatsCommandTests: XCTestCase {
    func parse<T: ParsableCommand>(_ args: [String], as: T.Type) throws -> T {
        let command = try HarmoSECommand.parseAsRoot(args)
        return try XCTUnwrap(command as? T, "\(args) parsed as \(type(of: command))")
    }

    func testConvertLegacyStructureToDockMatchesPeerFiles() throws {
        let tmp = try makeTemporaryDirectory(self)
        let out = tmp.appendingPathComponent("MoTe2")
        let convert = try parse(["convert", Fixtures.path("peer/deeph-legacy/MoTe2"), out.path, "--to", "deeph-dock"], as: ConvertCommand.self)
        XCTAssertEqual(try convert.execute(), ["MoTe2"])

        let ours = try parse(["inspect", out.path, "--json"], as: InspectCommand.self).makeReport()
        let peer = try parse(["inspect", Fixtures.path("peer/deeph-dock/MoTe2")], as: InspectCommand.self).makeReport()
        XCTAssertEqual(ours.format, "deeph-dock")
        XCTAssertEqual(ours.structures[0].hamiltonian?.blocks, 131)
        XCTAssertEqual(ours.structures[0].species, peer.structures[0].species)
        XCTAssertEqual(ours.structures[0].hamiltonian?.shiftRange, [[-2, 2], [-2, 2], [0, 0]])
        XCTAssertEqual(ours.structures[0].hamiltonian!.hermiticityDeviation, peer.structures[0].hamiltonian!.hermiticityDeviation, accuracy: 1e-12)
    }

    func testConvertFolderMirrorsNamesAndRoundTrips() throws {
        let tmp = try makeTemporaryDirectory(self)
        let legacy = tmp.appendingPathComponent("legacy")
        try parse(["convert", Fixtures.path("datasets"), legacy.path, "--to", "deeph-legacy", "--quiet"], as: ConvertCommand.self).run()
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: legacy.path).sorted(),
                       ["ethanol-0046", "mos2-2x2-0000", "water-0020"])
        XCTAssertTrue(FileManager.default.fileExists(atPath: legacy.appendingPathComponent("water-0020/hamiltonians.h5").path))
        let dock = tmp.appendingPathComponent("dock")
        try parse(["convert", legacy.path, dock.path, "--to", "deeph-dock", "-q"], as: ConvertCommand.self).run()
        let a = try parse(["inspect", Fixtures.path("datasets")], as: InspectCommand.self).makeReport()
        let b = try parse(["inspect", dock.path], as: InspectCommand.self).makeReport()
        for (x, y) in zip(a.structures, b.structures) {
            XCTAssertEqual(x.name, y.name)
            XCTAssertEqual(x.hamiltonian, y.hamiltonian)
            XCTAssertEqual(x.species, y.species)
        }
    }

    func testInspectJSONHasTheNumbers() throws {
        let text = try parse(["inspect", Fixtures.path("datasets/mos2-2x2-0000"), "--json"], as: InspectCommand.self).report()
        let json = try JSONSerialization.jsonObject(with: Data(text.utf8)) as! [String: Any]
        let s = (json["structures"] as! [[String: Any]])[0]
        XCTAssertEqual(s["atoms"] as? Int, 12)
        XCTAssertEqual(s["orbitals"] as? Int, 164)
        XCTAssertEqual(s["periodic"] as? [Bool], [true, true, false])
        let h = s["hamiltonian"] as! [String: Any]
        XCTAssertEqual(h["blocks"] as? Int, 1404)
        XCTAssertEqual(h["entries"] as? Int, 267964)
        XCTAssertEqual(h["hermiticityDeviation"] as? Double, 0)
        let species = (s["species"] as! [[String: Any]]).map { $0["element"] as! String }
        XCTAssertEqual(species, ["Mo", "S"])
        let plain = try parse(["inspect", Fixtures.path("datasets/mos2-2x2-0000")], as: InspectCommand.self).report()
        XCTAssertTrue(plain.contains("Mo ×4: shells [s d s d p] = 15 orbitals per atom"), plain)
    }

    func testBadArgumentsAndBadInputFail() throws {
        XCTAssertThrowsError(try HarmoSECommand.parseAsRoot(["convert", "a", "b", "--to", "vasp"]))
        XCTAssertThrowsError(try HarmoSECommand.parseAsRoot(["convert", "a", "b"]))
        let tmp = try makeTemporaryDirectory(self)
        let junk = tmp.appendingPathComponent("junk.tar.gz")
        try Data(repeating: 0x5a, count: 1000).write(to: junk)
        let out = tmp.appendingPathComponent("out")
        XCTAssertThrowsError(try parse(["convert", junk.path, out.path, "--to", "deeph-dock"], as: ConvertCommand.self).execute()) {
            XCTAssertTrue("\($0)".contains("junk.tar.gz"), "\($0)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp.path), ["junk.tar.gz"], "nothing half-written")
        XCTAssertThrowsError(try parse(["inspect", tmp.appendingPathComponent("missing").path], as: InspectCommand.self).report())
    }

    func testFailureMidwayLeavesNoPartialDataset() throws {
        let tmp = try makeTemporaryDirectory(self)
        let src = tmp.appendingPathComponent("src")
        try FileManager.default.createDirectory(at: src, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: Fixtures.url("datasets/water-0020"), to: src.appendingPathComponent("a-good"))
        try FileManager.default.copyItem(at: Fixtures.url("datasets/water-0020"), to: src.appendingPathComponent("b-bad"))
        try Data("{".utf8).write(to: src.appendingPathComponent("b-bad/info.json"))
        let out = tmp.appendingPathComponent("out")
        XCTAssertThrowsError(try parse(["convert", src.path, out.path, "--to", "deeph-legacy"], as: ConvertCommand.self).execute()) {
            XCTAssertTrue("\($0)".contains("b-bad/info.json"), "\($0)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp.path), ["src"])
    }

    /// An archive made by the system's tar streams through convert; DST mirrors member folders.
    func testConvertArchiveMirrorsMemberFolders() throws {
        let tar = URL(fileURLWithPath: "/usr/bin/tar")
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: tar.path), "needs /usr/bin/tar to build the archive")
        let tmp = try makeTemporaryDirectory(self)
        let archive = tmp.appendingPathComponent("samples.tar.gz")
        let process = Process()
        process.executableURL = tar
        process.arguments = ["-C", Fixtures.path("datasets"), "-czf", archive.path, "water-0020", "mos2-2x2-0000"]
        try process.run()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)
        let out = tmp.appendingPathComponent("legacy")
        let names = try parse(["convert", archive.path, out.path, "--to", "deeph-legacy"], as: ConvertCommand.self).execute()
        XCTAssertEqual(names, ["water-0020", "mos2-2x2-0000"])
        let back = try parse(["inspect", out.appendingPathComponent("mos2-2x2-0000").path, "--json"], as: InspectCommand.self).makeReport()
        let original = try parse(["inspect", Fixtures.path("datasets/mos2-2x2-0000")], as: InspectCommand.self).makeReport()
        XCTAssertEqual(back.format, "deeph-legacy")
        XCTAssertEqual(back.structures[0].hamiltonian, original.structures[0].hamiltonian)
        XCTAssertEqual(back.structures[0].periodic, [true, true, false])
    }
}
