import Foundation
import Formats
import HDF5Kit
import Structures
import TestSupport
import XCTest

/// Largest difference between two operators block for block; fails when the key sets differ.
func blockDifference(_ a: BlockOperator, _ b: BlockOperator, file: StaticString = #filePath, line: UInt = #line) -> Double {
    XCTAssertEqual(Set(a.keys), Set(b.keys), "block keys differ", file: file, line: line)
    var worst = 0.0
    for (k, key) in a.keys.enumerated() {
        guard let other = b.values(for: key) else { continue }
        XCTAssertEqual(a.shape(at: k), b.shape(at: b.position(of: key)!), "shape of \(key)", file: file, line: line)
        worst = max(worst, maxAbsDifference(a.values(at: k), other))
    }
    return worst
}

final class DeepHDockReadTests: XCTestCase {
    func testMoTe2ReadsWithGeometryAndBasis() throws {
        let record = try FormatReader.readRecord(at: Fixtures.url("peer/deeph-dock/MoTe2"))
        XCTAssertEqual(try FormatReader.detect(at: Fixtures.url("peer/deeph-dock/MoTe2")), .deephDock)
        let s = record.structure
        XCTAssertEqual(s.atomicNumbers, [52, 52, 42])
        XCTAssertEqual(s.basis[42]?.ls, [0, 0, 0, 1, 1, 2, 2])
        XCTAssertEqual(s.totalOrbitals, 57)
        XCTAssertEqual(s.lattice.vectors[0].y, -3.087947429480924, accuracy: 1e-15)
        XCTAssertEqual(s.positions[2].z, 3.6619446025, accuracy: 1e-15)
        XCTAssertEqual(s.lattice.periodic, [true, true, false], "a monolayer has no R₃ ≠ 0 blocks")
        XCTAssertEqual(record.fermiEnergy!, -4.1934752874697425, accuracy: 0)
        let h = try XCTUnwrap(record.hamiltonian)
        XCTAssertEqual(h.blockCount, 131)
        XCTAssertEqual(h.entries.count, 47291)
        // First stored entries of the file (h5py): -0.7770277, -0.48208852, -2.29314419.
        let first = h.values(for: BlockKey(-1, -1, 0, 0, 0))!
        XCTAssertEqual(first.first!, -0.7770277, accuracy: 1e-7)
        XCTAssertEqual(first[first.startIndex + 2], -2.29314419, accuracy: 1e-8)
        XCTAssertEqual(record.overlap?.blockCount, 131)
        let report = HermiticityReport(h)
        XCTAssertLessThan(report.maxDeviation, 1e-6)
        XCTAssertEqual(report.unpairedBlocks, 0)
    }

    func testEveryPeerDockStructureReads() throws {
        let source = try DatasetSource(url: Fixtures.url("peer/deeph-dock"))
        XCTAssertEqual(source.kind, .folderOfStructures)
        let names = try source.structureNames()
        XCTAssertEqual(names, ["H2O-pyscf", "MoTe2", "Si", "h2o-rotated/0", "h2o-rotated/1", "h2o-rotated/2", "h2o-rotated/3",
                               "molecules/1000", "molecules/25000",
                               "molecules/4990", "single-atoms/Bi", "single-atoms/Mo", "single-atoms/Se", "single-atoms/Te"])
        var seen: [String] = []
        try source.forEachRecord { record in
            seen.append(record.name)
            XCTAssertNotNil(record.hamiltonian, record.name)
            XCTAssertNotNil(record.overlap, record.name)
            XCTAssertGreaterThan(record.structure.atomCount, 0)
            if record.name.hasPrefix("molecules/") || record.name.hasPrefix("single-atoms/") || record.name.hasPrefix("h2o") {
                XCTAssertEqual(record.structure.lattice.periodic, [false, false, false], record.name)
            }
            if record.name == "Si" { XCTAssertEqual(record.structure.lattice.periodic, [true, true, true]) }
        }
        XCTAssertEqual(seen, names)
    }

    func testDatasetSamplesReadIncludingFloat32Compressed() throws {
        let mos2 = try FormatReader.readRecord(at: Fixtures.url("datasets/mos2-2x2-0000"))
        XCTAssertEqual(mos2.structure.atomCount, 12)
        XCTAssertEqual(mos2.structure.totalOrbitals, 164)
        XCTAssertEqual(mos2.hamiltonian?.blockCount, 1404)
        XCTAssertEqual(mos2.structure.lattice.periodic, [true, true, false])
        // Float32 entries widen exactly: every value is representable as Float.
        XCTAssertTrue(mos2.hamiltonian!.entries.allSatisfy { Double(Float($0)) == $0 })
        let hermiticity = RecordValidation.hermiticity(of: mos2)
        XCTAssertEqual(hermiticity.hamiltonian?.maxDeviation, 0, "the dataset stores H(R,i,j) = H(−R,j,i)ᵀ exactly")
        XCTAssertTrue(RecordValidation.validate(mos2).isEmpty)

        for name in ["water-0020", "ethanol-0046"] {
            let r = try FormatReader.readRecord(at: Fixtures.url("datasets/\(name)"))
            XCTAssertEqual(r.structure.lattice.periodic, [false, false, false])
            XCTAssertEqual(r.structure.totalOrbitals, name.hasPrefix("water") ? 24 : 72)
            XCTAssertTrue(RecordValidation.validate(r).isEmpty, "\(RecordValidation.validate(r))")
        }
    }
}

final class LegacyConversionTests: XCTestCase {
    /// The proof on real files: DeepH-dock converted legacy/MoTe2 into dock/MoTe2; our reader of
    /// each layout must give the same internal record.
    func testLegacyMoTe2EqualsDockMoTe2BlockForBlock() throws {
        let legacy = try FormatReader.readRecord(at: Fixtures.url("peer/deeph-legacy/MoTe2"))
        let dock = try FormatReader.readRecord(at: Fixtures.url("peer/deeph-dock/MoTe2"))
        XCTAssertEqual(try FormatReader.detect(at: Fixtures.url("peer/deeph-legacy/MoTe2")), .deephLegacy)
        XCTAssertEqual(legacy.structure.atomicNumbers, dock.structure.atomicNumbers)
        XCTAssertEqual(legacy.structure.basis, dock.structure.basis)
        XCTAssertLessThan(maxAbsDifference(legacy.structure.positions.flatMap { [$0.x, $0.y, $0.z] },
                                           dock.structure.positions.flatMap { [$0.x, $0.y, $0.z] }), 1e-12)
        XCTAssertLessThan(maxAbsDifference(legacy.structure.lattice.vectors.flatMap { [$0.x, $0.y, $0.z] },
                                           dock.structure.lattice.vectors.flatMap { [$0.x, $0.y, $0.z] }), 1e-12)
        XCTAssertEqual(legacy.fermiEnergy, dock.fermiEnergy)
        XCTAssertLessThanOrEqual(blockDifference(legacy.hamiltonian!, dock.hamiltonian!), 1e-12)
        XCTAssertEqual(blockDifference(legacy.hamiltonian!, dock.hamiltonian!), 0, "a permutation copies values exactly")
        XCTAssertLessThanOrEqual(blockDifference(legacy.overlap!, dock.overlap!), 1e-12)
    }

    func testConvertLegacyToDockAndBack() throws {
        let tmp = try makeTemporaryDirectory(self)
        let legacy = try FormatReader.readRecord(at: Fixtures.url("peer/deeph-legacy/MoTe2"))
        try FormatWriter.write(legacy, to: tmp.appendingPathComponent("dock"), format: .deephDock)
        let dockWritten = try FormatReader.readRecord(at: tmp.appendingPathComponent("dock"))
        let dockPeer = try FormatReader.readRecord(at: Fixtures.url("peer/deeph-dock/MoTe2"))
        XCTAssertLessThanOrEqual(blockDifference(dockWritten.hamiltonian!, dockPeer.hamiltonian!), 1e-12)
        XCTAssertLessThanOrEqual(blockDifference(dockWritten.overlap!, dockPeer.overlap!), 1e-12)
        XCTAssertEqual(dockWritten.structure.atomicNumbers, dockPeer.structure.atomicNumbers)

        // Back to legacy: the raw OpenMX-ordered datasets equal the peer legacy file's.
        try FormatWriter.write(dockWritten, to: tmp.appendingPathComponent("legacy"), format: .deephLegacy)
        for file in ["hamiltonians.h5", "overlaps.h5"] {
            let ours = try HDF5File(readingAt: tmp.appendingPathComponent("legacy/\(file)").path)
            let peer = try HDF5File(readingAt: Fixtures.path("peer/deeph-legacy/MoTe2/\(file)"))
            XCTAssertEqual(Set(try ours.memberNames()), Set(try peer.memberNames()))
            var worst = 0.0
            for key in try peer.memberNames() {
                let a = try ours.readDoubles(key), b = try peer.readDoubles(key)
                XCTAssertEqual(a.shape, b.shape)
                worst = max(worst, maxAbsDifference(a.values, b.values))
            }
            XCTAssertEqual(worst, 0, file)
        }
        let back = try FormatReader.readRecord(at: tmp.appendingPathComponent("legacy"))
        XCTAssertEqual(back.structure.basis, legacy.structure.basis)
        XCTAssertLessThan(maxAbsDifference(back.structure.positions.flatMap { [$0.x, $0.y, $0.z] },
                                           legacy.structure.positions.flatMap { [$0.x, $0.y, $0.z] }), 1e-12)
    }
}

final class RoundTripTests: XCTestCase {
    func testDockWriteReadIsExact() throws {
        let tmp = try makeTemporaryDirectory(self)
        for name in ["MoTe2", "molecules/25000", "Si"] {
            var original = try FormatReader.readRecord(at: Fixtures.url("peer/deeph-dock/\(name)"))
            original.name = "x"
            let out = tmp.appendingPathComponent(name)
            try FormatWriter.write(original, to: out, format: .deephDock)
            var back = try FormatReader.readRecord(at: out)
            back.name = "x"
            XCTAssertEqual(back, original, name)
            // Float64 on disk and exactly the keys DeepH-dock writes.
            let h5 = try HDF5File(readingAt: out.appendingPathComponent("hamiltonian.h5").path)
            XCTAssertEqual(Set(try h5.memberNames()), ["atom_pairs", "chunk_boundaries", "chunk_shapes", "entries"])
            XCTAssertEqual(try h5.datasetInfo("entries").kind, .float64)
            XCTAssertEqual(try h5.datasetInfo("atom_pairs").kind, .int64)
            // info.json: DeepH-dock's keys, then the source's extras (molecules/25000: occupation).
            let info = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("info.json"))) as! [String: Any]
            let source = try JSONSerialization.jsonObject(with: Data(contentsOf: Fixtures.url("peer/deeph-dock/\(name)/info.json"))) as! [String: Any]
            XCTAssertEqual(Set(info.keys), Set(["atoms_quantity", "orbits_quantity", "orthogonal_basis", "spinful",
                                                "fermi_energy_eV", "elements_orbital_map"] + original.extraInfo.map(\.key)))
            XCTAssertEqual(Set(info.keys), Set(source.keys), name)
        }
    }

    func testFloat32DatasetWritesAsFloat64Exactly() throws {
        let tmp = try makeTemporaryDirectory(self)
        let original = try FormatReader.readRecord(at: Fixtures.url("datasets/mos2-2x2-0000"))
        try FormatWriter.write(original, to: tmp.appendingPathComponent("m"), format: .deephDock)
        var back = try FormatReader.readRecord(at: tmp.appendingPathComponent("m"))
        back.name = original.name
        XCTAssertEqual(back, original)
    }

    func testLegacyWriteReadIsExact() throws {
        let tmp = try makeTemporaryDirectory(self)
        for name in ["MoTe2", "molecules/25000", "H2O-pyscf"] {
            let original = try FormatReader.readRecord(at: Fixtures.url("peer/deeph-dock/\(name)"))
            let out = tmp.appendingPathComponent(name)
            try FormatWriter.write(original, to: out, format: .deephLegacy)
            let back = try FormatReader.readRecord(at: out)
            XCTAssertEqual(back.structure, original.structure, name)
            XCTAssertEqual(back.fermiEnergy, original.fermiEnergy)
            XCTAssertEqual(blockDifference(back.hamiltonian!, original.hamiltonian!), 0)
            XCTAssertEqual(blockDifference(back.overlap!, original.overlap!), 0)
        }
    }

    /// Legacy atoms may come in any order; dock groups them by element. The mapping is
    /// `DeepHDock.atomOrder`, and blocks follow their atoms.
    func testDockWriterGroupsAtomsByElement() throws {
        let tmp = try makeTemporaryDirectory(self)
        let dock = try FormatReader.readRecord(at: Fixtures.url("peer/deeph-dock/MoTe2"))
        // Te, Mo, Te: not grouped.
        let shuffled = dock.permutingAtoms([0, 2, 1])
        XCTAssertEqual(shuffled.structure.atomicNumbers, [52, 42, 52])
        XCTAssertEqual(DeepHDock.atomOrder(for: shuffled.structure), [0, 2, 1])
        try FormatWriter.write(shuffled, to: tmp.appendingPathComponent("legacy"), format: .deephLegacy)
        let legacy = try FormatReader.readRecord(at: tmp.appendingPathComponent("legacy"))
        XCTAssertEqual(legacy.structure.atomicNumbers, [52, 42, 52], "legacy keeps the atom order")
        try FormatWriter.write(legacy, to: tmp.appendingPathComponent("dock"), format: .deephDock)
        let regrouped = try FormatReader.readRecord(at: tmp.appendingPathComponent("dock"))
        XCTAssertEqual(regrouped.structure.atomicNumbers, [52, 52, 42])
        XCTAssertEqual(regrouped.structure.positions, dock.structure.positions)
        XCTAssertEqual(blockDifference(regrouped.hamiltonian!, dock.hamiltonian!), 0)
    }

    func testOpenMXTableMatchesTheManual() {
        XCTAssertEqual(OrbitalOrder.openMXIndex(l: 1), [1, 2, 0])           // y, z, x from x, y, z
        XCTAssertEqual(OrbitalOrder.openMXIndex(l: 2), [2, 4, 0, 3, 1])     // xy, yz, z², xz, x²−y²
        XCTAssertEqual(OrbitalOrder.openMXIndex(l: 3), [6, 4, 2, 0, 1, 3, 5])
        XCTAssertEqual(OrbitalOrder.openMXIndex(shells: OrbitalShells([0, 1])), [0, 2, 3, 1])
    }
}

final class ArchiveTests: XCTestCase {
    func testArchivesStreamEveryStructure() throws {
        let tmp = try makeTemporaryDirectory(self)
        let root = Fixtures.url("peer/deeph-dock")
        let folders = ["MoTe2", "molecules/1000", "single-atoms/Bi"]
        var expected: [String: DFTRecord] = [:]
        for f in folders { expected[f] = try FormatReader.readRecord(at: root.appendingPathComponent(f)) }
        for (kind, ext) in [(TestArchive.Kind.tar, "tar"), (.tarGz, "tar.gz"), (.tarXz, "tar.xz"), (.zip, "zip")] {
            let url = tmp.appendingPathComponent("set.\(ext)")
            try TestArchive.write(url, kind: kind, root: root, folders: folders)
            let source = try DatasetSource(url: url)
            XCTAssertEqual(source.kind, .archive)
            XCTAssertEqual(try source.structureNames(), folders, ext)
            XCTAssertEqual(try FormatReader.detect(at: url), .deephDock)
            var names: [String] = []
            try source.forEachRecord { record in
                names.append(record.name)
                var want = expected[record.name]!
                want.name = record.name
                XCTAssertEqual(record, want, "\(ext) \(record.name)")
            }
            XCTAssertEqual(names, folders, ext)
        }
    }

    func testLegacyInsideArchive() throws {
        let tmp = try makeTemporaryDirectory(self)
        let url = tmp.appendingPathComponent("legacy.tgz")
        try TestArchive.write(url, kind: .tarGz, root: Fixtures.url("peer/deeph-legacy"), folders: ["MoTe2"])
        var records: [DFTRecord] = []
        try DatasetSource(url: url).forEachRecord { records.append($0) }
        XCTAssertEqual(records.count, 1)
        let dock = try FormatReader.readRecord(at: Fixtures.url("peer/deeph-dock/MoTe2"))
        XCTAssertLessThanOrEqual(blockDifference(records[0].hamiltonian!, dock.hamiltonian!), 1e-12)
    }
}

final class LayoutDetailTests: XCTestCase {
    /// POSCAR variants VASP allows: a scale factor, Direct coordinates, Selective dynamics.
    func testPOSCARDirectScaledSelectiveDynamics() throws {
        let tmp = try makeTemporaryDirectory(self)
        let s = tmp.appendingPathComponent("MoTe2")
        try FileManager.default.copyItem(at: Fixtures.url("peer/deeph-dock/MoTe2"), to: s)
        let original = try FormatReader.readRecord(at: s)
        let lattice = original.structure.lattice
        var text = "scaled, direct\n2.0\n"
        for v in lattice.vectors { text += "\(v.x / 2) \(v.y / 2) \(v.z / 2)\n" }
        text += "Te Mo\n2 1\nSelective dynamics\nDirect\n"
        for p in original.structure.positions {
            let f = lattice.fractional(p)
            text += "\(f.x) \(f.y) \(f.z) T T T\n"
        }
        try text.write(to: s.appendingPathComponent("POSCAR"), atomically: true, encoding: .utf8)
        let back = try FormatReader.readRecord(at: s)
        XCTAssertLessThan(maxAbsDifference(back.structure.lattice.vectors.flatMap { [$0.x, $0.y, $0.z] },
                                           lattice.vectors.flatMap { [$0.x, $0.y, $0.z] }), 1e-14)
        XCTAssertLessThan(maxAbsDifference(back.structure.positions.flatMap { [$0.x, $0.y, $0.z] },
                                           original.structure.positions.flatMap { [$0.x, $0.y, $0.z] }), 1e-12)
    }

    func testDetectAndNamesForFolderOfStructures() throws {
        XCTAssertEqual(try FormatReader.detect(at: Fixtures.url("peer")), .deephDock)
        XCTAssertEqual(try DatasetSource(url: Fixtures.url("peer/deeph-legacy")).structureNames(), ["MoTe2"])
        let single = try DatasetSource(url: Fixtures.url("peer/deeph-legacy/MoTe2"))
        XCTAssertEqual(single.kind, .structureFolder)
        XCTAssertEqual(try single.structureNames(), ["MoTe2"])
        // A mixed folder: both layouts side by side.
        let mixed = try DatasetSource(url: Fixtures.url("peer"))
        XCTAssertEqual(try mixed.structureNames().filter { $0.hasSuffix("MoTe2") }, ["deeph-dock/MoTe2", "deeph-legacy/MoTe2"])
    }

    /// Structure files at the archive root take the archive's name; a structure without H or S
    /// is read (prediction inputs) and flushed when the archive moves on.
    func testArchiveRootMembersAndOptionalOperators() throws {
        let tmp = try makeTemporaryDirectory(self)
        let poscar = [UInt8](try Data(contentsOf: Fixtures.url("peer/deeph-dock/Si/POSCAR")))
        let info = [UInt8](try Data(contentsOf: Fixtures.url("peer/deeph-dock/Si/info.json")))
        let overlap = [UInt8](try Data(contentsOf: Fixtures.url("peer/deeph-dock/Si/overlap.h5")))
        let root = tmp.appendingPathComponent("Si-single.tar.gz")
        try TestArchive.write(root, kind: .tarGz, members: [("POSCAR", poscar), ("info.json", info), ("overlap.h5", overlap)])
        var records: [DFTRecord] = []
        try DatasetSource(url: root).forEachRecord { records.append($0) }
        XCTAssertEqual(records.map(\.name), ["Si-single"])
        XCTAssertNil(records[0].hamiltonian)
        XCTAssertEqual(records[0].overlap?.blockCount, try FormatReader.readRecord(at: Fixtures.url("peer/deeph-dock/Si")).overlap?.blockCount)

        let two = tmp.appendingPathComponent("two.tar")
        try TestArchive.write(two, kind: .tar, members: [("a/POSCAR", poscar), ("a/info.json", info),
                                                         ("b/POSCAR", poscar), ("b/info.json", info), ("b/overlap.h5", overlap)])
        var names: [String] = []
        try DatasetSource(url: two).forEachRecord { names.append($0.name) }
        XCTAssertEqual(names, ["a", "b"])
        XCTAssertEqual(try DatasetSource(url: two).structureNames(), ["a", "b"])
    }

    func testArchiveMemberArrivingAfterItsStructureWasReadIsAnError() throws {
        let tmp = try makeTemporaryDirectory(self)
        let poscar = [UInt8](try Data(contentsOf: Fixtures.url("peer/deeph-dock/Si/POSCAR")))
        let info = [UInt8](try Data(contentsOf: Fixtures.url("peer/deeph-dock/Si/info.json")))
        let overlap = [UInt8](try Data(contentsOf: Fixtures.url("peer/deeph-dock/Si/overlap.h5")))
        let url = tmp.appendingPathComponent("interleaved.tar")
        try TestArchive.write(url, kind: .tar, members: [("a/POSCAR", poscar), ("a/info.json", info),
                                                         ("b/POSCAR", poscar), ("a/overlap.h5", overlap)])
        XCTAssertThrowsError(try DatasetSource(url: url).forEachRecord { _ in }) { error in
            let e = error as? FormatError
            XCTAssertEqual(e?.field, "a/overlap.h5")
            XCTAssertTrue(e?.message.contains("already read") == true, "\(error)")
        }
    }
}
