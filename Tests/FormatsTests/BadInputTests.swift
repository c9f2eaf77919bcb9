import Foundation
import Formats
import HDF5Kit
import Structures
import TestSupport
import XCTest

/// Every bad input gives a FormatError naming the file and the field; nothing half-written.
final class BadInputTests: XCTestCase {
    var tmp: URL!
    override func setUpWithError() throws { tmp = try makeTemporaryDirectory(self) }

    /// A writable copy of a fixture structure folder.
    func copy(_ fixture: String, as name: String = "s") throws -> URL {
        let dest = tmp.appendingPathComponent(name)
        try FileManager.default.copyItem(at: Fixtures.url(fixture), to: dest)
        return dest
    }

    func expectError(_ body: @autoclosure () throws -> Any, file expectedFile: String, field: String? = nil,
                     message: String? = nil, line: UInt = #line) {
        XCTAssertThrowsError(try body(), line: line) { error in
            guard let e = error as? FormatError else { return XCTFail("not a FormatError: \(error)", line: line) }
            XCTAssertTrue(e.file.hasSuffix(expectedFile), "file \(e.file) should end with \(expectedFile)", line: line)
            if let field { XCTAssertTrue(e.field?.contains(field) == true, "field \(e.field ?? "nil") should contain \(field)", line: line) }
            if let message { XCTAssertTrue(e.message.contains(message), "message '\(e.message)' should contain '\(message)'", line: line) }
            XCTAssertTrue(e.description.contains(expectedFile), line: line)
        }
    }

    /// Rewrites a dock operator file with edited arrays.
    func rewriteDock(_ url: URL, edit: (inout [Int64], inout [Int64], inout [Int64], inout [Double]) -> Void) throws {
        let f = try HDF5File(readingAt: url.path)
        var pairs = try f.readInt64s("atom_pairs").values
        var bounds = try f.readInt64s("chunk_boundaries").values
        var shapes = try f.readInt64s("chunk_shapes").values
        var entries = try f.readDoubles("entries").values
        edit(&pairs, &bounds, &shapes, &entries)
        try FileManager.default.removeItem(at: url)
        let w = try HDF5File(creatingAt: url.path)
        try w.write("atom_pairs", int64s: pairs, shape: [pairs.count / 5, 5])
        try w.write("chunk_boundaries", int64s: bounds, shape: [bounds.count])
        try w.write("chunk_shapes", int64s: shapes, shape: [shapes.count / 2, 2])
        try w.write("entries", doubles: entries, shape: [entries.count])
        try w.flush()
    }

    /// Rewrites a legacy operator file, letting `edit` change the (key → block) map.
    func rewriteLegacy(_ url: URL, edit: (inout [String: HDF5Array<Double>]) -> Void) throws {
        let f = try HDF5File(readingAt: url.path)
        var blocks: [String: HDF5Array<Double>] = [:]
        for k in try f.memberNames() { blocks[k] = try f.readDoubles(k) }
        edit(&blocks)
        try FileManager.default.removeItem(at: url)
        let w = try HDF5File(creatingAt: url.path)
        for (k, b) in blocks { try w.write(k, doubles: b.values, shape: b.shape) }
        try w.flush()
    }

    // MARK: Missing files

    func testMissingInfoJSON() throws {
        let s = try copy("peer/deeph-dock/MoTe2")
        try FileManager.default.removeItem(at: s.appendingPathComponent("info.json"))
        expectError(try FormatReader.readRecord(at: s), file: "s/info.json", message: "missing file")
    }

    func testMissingLegacySitePositions() throws {
        let s = try copy("peer/deeph-legacy/MoTe2")
        try FileManager.default.removeItem(at: s.appendingPathComponent("site_positions.dat"))
        expectError(try FormatReader.readRecord(at: s), file: "site_positions.dat", message: "missing file")
    }

    func testNotAStructureFolder() throws {
        expectError(try FormatReader.readRecord(at: tmp), file: tmp.lastPathComponent, message: "not a structure folder")
        expectError(try DatasetSource(url: tmp), file: tmp.lastPathComponent, message: "no structure folders")
        expectError(try DatasetSource(url: tmp.appendingPathComponent("nope")), file: "nope", message: "no such")
    }

    // MARK: HDF5 keys, shapes, values, indices

    func testLegacyKeyThatDoesNotParse() throws {
        let s = try copy("peer/deeph-legacy/MoTe2")
        try rewriteLegacy(s.appendingPathComponent("hamiltonians.h5")) { blocks in
            blocks["[0, 0, 0, 1]"] = blocks["[0, 0, 0, 1, 1]"]
        }
        expectError(try FormatReader.readRecord(at: s), file: "hamiltonians.h5", field: "[0, 0, 0, 1]", message: "does not parse")
    }

    func testDockAtomPairsWithWrongWidth() throws {
        let s = try copy("peer/deeph-dock/MoTe2")
        let url = s.appendingPathComponent("overlap.h5")
        let f = try HDF5File(readingAt: url.path)
        let entries = try f.readDoubles("entries").values
        try FileManager.default.removeItem(at: url)
        let w = try HDF5File(creatingAt: url.path)
        try w.write("atom_pairs", int64s: [0, 0, 0, 0], shape: [1, 4])
        try w.write("entries", doubles: entries, shape: [entries.count])
        try w.flush()
        expectError(try FormatReader.readRecord(at: s), file: "overlap.h5", field: "atom_pairs", message: "(N, 5)")
    }

    func testDockMissingDataset() throws {
        let s = try copy("peer/deeph-dock/MoTe2")
        let url = s.appendingPathComponent("overlap.h5")
        try FileManager.default.removeItem(at: url)
        let w = try HDF5File(creatingAt: url.path)
        try w.write("atom_pairs", int64s: [0, 0, 0, 0, 0], shape: [1, 5])
        try w.flush()
        expectError(try FormatReader.readRecord(at: s), file: "overlap.h5", field: "chunk_boundaries", message: "not found")
    }

    func testDockBlockShapeInconsistentWithOrbitals() throws {
        let s = try copy("peer/deeph-dock/MoTe2")
        try rewriteDock(s.appendingPathComponent("hamiltonian.h5")) { _, _, shapes, _ in
            shapes[6] = 1; shapes[7] = 361   // block 3: 19×19 declared as 1×361
        }
        expectError(try FormatReader.readRecord(at: s), file: "hamiltonian.h5", field: "chunk_shapes[3]", message: "inconsistent")
    }

    func testLegacyBlockShapeInconsistentWithOrbitals() throws {
        let s = try copy("peer/deeph-legacy/MoTe2")
        try FileManager.default.removeItem(at: s.appendingPathComponent("orbital_types.dat"))
        // Mo with one s shell fewer than the blocks hold.
        try "0  0  0  1  1  2  2\n0  0  0  1  1  2  2\n0  0  1  1  2  2\n".write(to: s.appendingPathComponent("orbital_types.dat"), atomically: true, encoding: .utf8)
        expectError(try FormatReader.readRecord(at: s), file: "hamiltonians.h5", message: "inconsistent with the orbitals")
    }

    func testDockNaNEntry() throws {
        let s = try copy("peer/deeph-dock/MoTe2")
        try rewriteDock(s.appendingPathComponent("hamiltonian.h5")) { _, _, _, entries in entries[400] = .nan }
        expectError(try FormatReader.readRecord(at: s), file: "hamiltonian.h5", field: "entries[400]", message: "non-finite")
    }

    func testLegacyInfEntry() throws {
        let s = try copy("peer/deeph-legacy/MoTe2")
        try rewriteLegacy(s.appendingPathComponent("overlaps.h5")) { blocks in
            blocks["[0, 0, 0, 1, 2]"]!.values[5] = -.infinity
        }
        expectError(try FormatReader.readRecord(at: s), file: "overlaps.h5", field: "[0, 0, 0, 1, 2]", message: "non-finite")
    }

    func testDockAtomIndexOutOfRange() throws {
        let s = try copy("peer/deeph-dock/MoTe2")
        try rewriteDock(s.appendingPathComponent("overlap.h5")) { pairs, _, _, _ in pairs[5 * 2 + 4] = 3 }
        expectError(try FormatReader.readRecord(at: s), file: "overlap.h5", field: "atom_pairs[2]", message: "out of range")
    }

    func testLegacyAtomIndexOutOfRange() throws {
        let s = try copy("peer/deeph-legacy/MoTe2")
        try rewriteLegacy(s.appendingPathComponent("hamiltonians.h5")) { blocks in
            blocks["[0, 0, 0, 1, 4]"] = blocks["[0, 0, 0, 1, 1]"]
        }
        expectError(try FormatReader.readRecord(at: s), file: "hamiltonians.h5", field: "[0, 0, 0, 1, 4]", message: "out of range")
    }

    func testInfoCountsThatDisagree() throws {
        let s = try copy("peer/deeph-dock/MoTe2")
        var text = try String(contentsOf: s.appendingPathComponent("info.json"), encoding: .utf8)
        text = text.replacingOccurrences(of: "\"orbits_quantity\": 57", with: "\"orbits_quantity\": 58")
        try text.write(to: s.appendingPathComponent("info.json"), atomically: true, encoding: .utf8)
        expectError(try FormatReader.readRecord(at: s), file: "info.json", field: "orbits_quantity")
    }

    // MARK: Non-Hermitian: a warning

    func testNonHermitianIsAWarningNotAnError() throws {
        let s = try copy("peer/deeph-dock/MoTe2")
        try rewriteDock(s.appendingPathComponent("hamiltonian.h5")) { _, _, _, entries in entries[1] += 0.01 }
        let record = try FormatReader.readRecord(at: s)
        let warnings = RecordValidation.validate(record)
        XCTAssertEqual(warnings.count, 1)
        XCTAssertEqual(warnings.first?.field, "hamiltonian")
        XCTAssertTrue(warnings.first?.message.contains("not Hermitian") == true)
        XCTAssertEqual(RecordValidation.hermiticity(of: record).hamiltonian!.maxDeviation, 0.01, accuracy: 1e-9)
        XCTAssertTrue(RecordValidation.validate(record, hermiticityTolerance: 0.1).isEmpty)
    }

    // MARK: Unknown elements

    func testUnknownElementInPOSCAR() throws {
        let s = try copy("peer/deeph-dock/MoTe2")
        var text = try String(contentsOf: s.appendingPathComponent("POSCAR"), encoding: .utf8)
        text = text.replacingOccurrences(of: "Te Mo", with: "Xx Mo")
        try text.write(to: s.appendingPathComponent("POSCAR"), atomically: true, encoding: .utf8)
        expectError(try FormatReader.readRecord(at: s), file: "POSCAR", field: "line 6", message: "unknown element 'Xx'")
    }

    func testUnknownElementInOrbitalMap() throws {
        let s = try copy("peer/deeph-dock/MoTe2")
        var text = try String(contentsOf: s.appendingPathComponent("info.json"), encoding: .utf8)
        text = text.replacingOccurrences(of: "\"Te\":", with: "\"Qq\":")
        try text.write(to: s.appendingPathComponent("info.json"), atomically: true, encoding: .utf8)
        expectError(try FormatReader.readRecord(at: s), file: "info.json", field: "elements_orbital_map.Qq", message: "unknown element")
    }

    func testUnknownAtomicNumberInLegacy() throws {
        let s = try copy("peer/deeph-legacy/MoTe2")
        try "52\n52\n200\n".write(to: s.appendingPathComponent("element.dat"), atomically: true, encoding: .utf8)
        expectError(try FormatReader.readRecord(at: s), file: "element.dat", field: "atom 3", message: "unknown element")
    }

    // MARK: Truncated or corrupt files

    func testTruncatedHDF5() throws {
        let s = try copy("peer/deeph-dock/MoTe2")
        let url = s.appendingPathComponent("hamiltonian.h5")
        let bytes = try Data(contentsOf: url)
        try bytes.prefix(bytes.count / 2).write(to: url)
        expectError(try FormatReader.readRecord(at: s), file: "hamiltonian.h5")
    }

    func testTruncatedHDF5InsideArchive() throws {
        var members: [(String, [UInt8])] = []
        for name in ["POSCAR", "info.json", "overlap.h5", "hamiltonian.h5"] {
            var bytes = [UInt8](try Data(contentsOf: Fixtures.url("peer/deeph-dock/MoTe2/\(name)")))
            if name == "hamiltonian.h5" { bytes = Array(bytes.prefix(bytes.count / 3)) }
            members.append(("MoTe2/\(name)", bytes))
        }
        let url = tmp.appendingPathComponent("a.tar")
        try TestArchive.write(url, kind: .tar, members: members)
        expectError(try DatasetSource(url: url).forEachRecord { _ in }, file: "a.tar:MoTe2/hamiltonian.h5")
    }

    func testTruncatedArchive() throws {
        let url = tmp.appendingPathComponent("set.tar.gz")
        try TestArchive.write(url, kind: .tarGz, root: Fixtures.url("peer/deeph-dock"), folders: ["MoTe2", "Si"])
        let bytes = try Data(contentsOf: url)
        try bytes.prefix(bytes.count * 2 / 3).write(to: url)
        expectError(try DatasetSource(url: url).forEachRecord { _ in }, file: "set.tar.gz", message: "truncated")
    }

    func testCorruptArchive() throws {
        let url = tmp.appendingPathComponent("junk.zip")
        try Data((0 ..< 5000).map { UInt8(truncatingIfNeeded: $0 &* 7919 &+ 13) }).write(to: url)
        expectError(try DatasetSource(url: url).forEachRecord { _ in }, file: "junk.zip")
        expectError(try DatasetSource(url: url).structureNames(), file: "junk.zip")
    }

    func testArchiveWithoutStructures() throws {
        let url = tmp.appendingPathComponent("empty.tar")
        try TestArchive.write(url, kind: .tar, members: [("README.md", Array("hello".utf8))])
        expectError(try DatasetSource(url: url).forEachRecord { _ in }, file: "empty.tar", message: "no DeepH")
    }

    // MARK: Nothing half-written

    func testFailedWriteLeavesNothing() throws {
        var record = try FormatReader.readRecord(at: Fixtures.url("peer/deeph-dock/MoTe2"))
        record.structure.basis[42] = OrbitalShells([0])   // blocks no longer match Mo's orbitals
        let out = tmp.appendingPathComponent("out")
        expectError(try FormatWriter.write(record, to: out, format: .deephDock), file: "out", message: "inconsistent")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp.path), [])
    }

    func testFailedOverwriteKeepsPreviousOutput() throws {
        let good = try FormatReader.readRecord(at: Fixtures.url("peer/deeph-dock/Si"))
        let out = tmp.appendingPathComponent("out")
        try FormatWriter.write(good, to: out, format: .deephDock)
        var bad = good
        bad.hamiltonian!.entries[0] = .nan
        expectError(try FormatWriter.write(bad, to: out, format: .deephDock), file: "out", message: "non-finite")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp.path), ["out"])
        var back = try FormatReader.readRecord(at: out)
        back.name = good.name
        XCTAssertEqual(back, good)
    }
}

extension BadInputTests {
    func testOrbitalMapWithNonIntegerShell() throws {
        let s = try copy("peer/deeph-dock/Si")
        var text = try String(contentsOf: s.appendingPathComponent("info.json"), encoding: .utf8)
        text = text.replacingOccurrences(of: "[0, 0, 1, 1, 2]", with: "[0, 0, 1.5, 1, 2]")
        try text.write(to: s.appendingPathComponent("info.json"), atomically: true, encoding: .utf8)
        expectError(try FormatReader.readRecord(at: s), file: "info.json", field: "elements_orbital_map.Si", message: "angular momenta")
    }

    func testInvalidJSON() throws {
        let s = try copy("peer/deeph-legacy/MoTe2")
        try Data("{\"nsites\": 3,".utf8).write(to: s.appendingPathComponent("info.json"))
        expectError(try FormatReader.readRecord(at: s), file: "s/info.json", message: "invalid JSON")
    }

    func testPOSCARThatEndsEarly() throws {
        let s = try copy("peer/deeph-dock/MoTe2")
        let text = try String(contentsOf: s.appendingPathComponent("POSCAR"), encoding: .utf8)
        try text.split(separator: "\n").prefix(9).joined(separator: "\n").write(to: s.appendingPathComponent("POSCAR"), atomically: true, encoding: .utf8)
        expectError(try FormatReader.readRecord(at: s), file: "POSCAR", field: "line 10", message: "ends early")
    }
}
