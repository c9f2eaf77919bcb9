import Foundation
@testable import Formats
import Structures
import TestSupport
import XCTest

/// Real CP2K 2023.1 output made by tools/cp2k_fixtures.sh (Tests/Fixtures/cp2k).
final class CP2KReadTests: XCTestCase {
    func testReadsWater() throws {
        let r = try FormatReader.readRecord(at: Fixtures.url("cp2k/water"))
        XCTAssertEqual(try FormatReader.detect(at: Fixtures.url("cp2k/water")), .cp2k)
        let s = r.structure
        XCTAssertEqual(s.atomicNumbers, [8, 1, 1])
        XCTAssertEqual(s.basis[8]?.ls, [0, 0, 1, 1, 2])        // DZVP-MOLOPT-SR-GTH
        XCTAssertEqual(s.basis[1]?.ls, [0, 0, 1])
        XCTAssertEqual(s.totalOrbitals, 23)
        XCTAssertEqual(s.lattice.periodic, [false, false, false])
        XCTAssertEqual(s.positions[1].y, 0.755453, accuracy: 1e-12)
        XCTAssertEqual(r.hamiltonian!.keys.map(\.shift), [LatticeShift](repeating: .zero, count: 9))
        XCTAssertEqual(r.fermiEnergy!, -0.264711367684 * 27.21138386, accuracy: 1e-9)
        XCTAssertEqual(r.extraInfo.first { $0.key == "occupation" }?.json, "8")
        // Row 1, column 1 of the KS file: −0.86642585646389 Ha (O's first s).
        XCTAssertEqual(r.hamiltonian!.values(for: BlockKey(0, 0, 0, 0, 0))!.first!, -0.86642585646389 * 27.21138386, accuracy: 1e-12)
        XCTAssertLessThan(r.hamiltonian!.hermiticityDeviation().maxDeviation, 1e-10)
        XCTAssertLessThan(r.overlap!.hermiticityDeviation().maxDeviation, 1e-12)
    }

    func testReadsGrapheneArchiveWithImages() throws {
        var records: [DFTRecord] = []
        try DatasetSource(url: Fixtures.url("cp2k/graphene.tar.xz")).forEachRecord { records.append($0) }
        XCTAssertEqual(records.count, 1)
        XCTAssertEqual(try FormatReader.detect(at: Fixtures.url("cp2k/graphene.tar.xz")), .cp2k)
        let r = records[0], s = r.structure
        XCTAssertEqual(r.name, "graphene")
        XCTAssertEqual(s.atomicNumbers, [6, 6])
        XCTAssertEqual(s.basis[6]?.ls, [0, 1])                   // SZV-MOLOPT-SR-GTH
        XCTAssertEqual(s.lattice.periodic, [true, true, false])
        XCTAssertEqual(s.lattice.vectors[1].y, 2.130422493309719, accuracy: 1e-12)   // from the .inp
        let (hDev, hUnpaired) = r.hamiltonian!.hermiticityDeviation()
        XCTAssertTrue(hUnpaired.isEmpty)
        XCTAssertLessThan(hDev, 1e-9)
        // The block convention ⟨i, 0| S |j, R⟩: an s–s overlap depends only on |r_j + R − r_i|.
        // Read the other way round (⟨i, R| S |j, 0⟩), blocks at equal claimed distance disagree.
        func spread(flipped: Bool) -> Double {
            var byDistance: [Int: [Double]] = [:]
            for (b, key) in r.overlap!.keys.enumerated() {
                let shift = flipped ? LatticeShift.zero &- key.shift : key.shift
                let d = norm(s.positions[key.j] + s.lattice.translation(shift) - s.positions[key.i])
                byDistance[Int((d * 1e4).rounded()), default: []].append(r.overlap!.values(at: b).first!)
            }
            return byDistance.values.map { ($0.max()! - $0.min()!) }.max()!
        }
        print("graphene s–s overlap spread at equal distance: as read \(spread(flipped: false)), flipped \(spread(flipped: true))")
        XCTAssertLessThan(spread(flipped: false), 1e-10)
        XCTAssertGreaterThan(spread(flipped: true), 1e-2)
    }

    /// Two atoms at one position: refused naming the file the geometry was read from and both atoms.
    func testTwoAtomsAtTheSamePosition() throws {
        let dir = try makeTemporaryDirectory(self).appendingPathComponent("water")
        try FileManager.default.copyItem(at: Fixtures.url("cp2k/water"), to: dir)
        func edit(_ name: String, _ from: String, _ to: String) throws {
            let url = dir.appendingPathComponent(name)
            let text = try String(contentsOf: url, encoding: .utf8)
            XCTAssertTrue(text.contains(from), name)
            try text.replacingOccurrences(of: from, with: to).write(to: url, atomically: true, encoding: .utf8)
        }
        func expect(_ file: String, _ field: String, line: UInt = #line) {
            XCTAssertThrowsError(try FormatReader.readRecord(at: dir), line: line) { error in
                guard let e = error as? FormatError else { return XCTFail("not a FormatError: \(error)", line: line) }
                XCTAssertTrue(e.file.hasSuffix(file), e.file, line: line)
                XCTAssertEqual(e.field, field, line: line)
                XCTAssertTrue(e.message.contains("atom 1 (H) and atom 2 (H) are 0.0000 Å apart"), e.message, line: line)
            }
        }
        // The output's table alone (no input beside it).
        try FileManager.default.removeItem(at: dir.appendingPathComponent("water.inp"))
        try edit("water.out", "3    2 H     1      0.000000     -0.755453", "3    2 H     1      0.000000      0.755453")
        expect("water.out", "ATOMIC COORDINATES")
        // The input's &COORD, which refines the output's rounded table.
        try FileManager.default.copyItem(at: Fixtures.url("cp2k/water/water.inp"), to: dir.appendingPathComponent("water.inp"))
        try edit("water.inp", "H 0.000000000000 -0.755453000000", "H 0.000000000000 0.755453000000")
        expect("water.inp", "&COORD")
    }

    /// The in-memory entry points (what a fuzzing harness calls) read the same records.
    func testInMemoryEntryPoints() throws {
        let dir = Fixtures.url("cp2k/water")
        var members: [String: [UInt8]] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: dir.path) {
            members[name] = [UInt8](try Data(contentsOf: dir.appendingPathComponent(name)))
        }
        XCTAssertEqual(try CP2K.read(members: members, name: "water"), try FormatReader.readRecord(at: dir))
        members["water-KS_SPIN_1-1_0.csr"] = Array(members["water-KS_SPIN_1-1_0.csr"]!.prefix(1000))
        XCTAssertThrowsError(try CP2K.read(members: members, name: "water"))

        let run = MoS2Run.extracted
        var abacus: [String: [UInt8]] = [:]
        for path in ["STRU", "INPUT", "OUT.ABACUS/running_scf.log", "OUT.ABACUS/data-HR-sparse_SPIN0.csr", "OUT.ABACUS/data-SR-sparse_SPIN0.csr"] {
            abacus[path] = [UInt8](try Data(contentsOf: run.appendingPathComponent(path)))
        }
        XCTAssertEqual(try ABACUS.read(members: abacus, name: "MoS2"), MoS2Run.record)
        abacus["OUT.ABACUS/running_scf.log"] = Array("READING ATOM TYPE 1\n atom label = Mo\n L=0, number of zeta = 1000000000\n".utf8)
        XCTAssertThrowsError(try ABACUS.read(members: abacus, name: "MoS2")) { XCTAssertTrue("\($0)".contains("number of zeta"), "\($0)") }
    }

    func testWritingCP2KIsRefused() throws {
        let tmp = try makeTemporaryDirectory(self)
        let r = try FormatReader.readRecord(at: Fixtures.url("cp2k/water"))
        XCTAssertThrowsError(try FormatWriter.write(r, to: tmp.appendingPathComponent("x"), format: .cp2k))
        // Water converts to dock and back unchanged.
        try FormatWriter.write(r, to: tmp.appendingPathComponent("dock"), format: .deephDock)
        let back = try FormatReader.readRecord(at: tmp.appendingPathComponent("dock"))
        XCTAssertEqual(blockDifference(back.hamiltonian!, r.hamiltonian!), 0)
    }
}

/// Claiming .out/.inp members for CP2K folders must not break DeepH archives that carry job logs.
final class StrayLogArchiveTests: XCTestCase {
    func testDockArchiveWithTrailingJobLogReads() throws {
        let tmp = try makeTemporaryDirectory(self)
        let dir = Fixtures.url("datasets/water-0020")
        var members: [(String, [UInt8])] = []
        for name in ["POSCAR", "info.json", "hamiltonian.h5", "overlap.h5"] {
            members.append(("w/\(name)", [UInt8](try Data(contentsOf: dir.appendingPathComponent(name)))))
        }
        members.append(("w/job.out", Array("SCF converged\n".utf8)))
        members.append(("w/job.inp", Array("&GLOBAL\n".utf8)))
        let archive = tmp.appendingPathComponent("d.tar")
        try TestArchive.write(archive, kind: .tar, members: members)
        var names: [String] = []
        try DatasetSource(url: archive).forEachRecord { names.append($0.name) }
        XCTAssertEqual(names, ["w"])
    }
}
