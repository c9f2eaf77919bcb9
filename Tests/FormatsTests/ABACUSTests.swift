import CArchive
import Foundation
@testable import Formats
import Structures
import TestSupport
import XCTest

/// Extracts every regular member of an archive under `dir` (test helper; the product never extracts).
func extractArchive(_ url: URL, to dir: URL) throws {
    let a = archive_read_new()!
    defer { archive_read_free(a) }
    archive_read_support_filter_all(a)
    archive_read_support_format_all(a)
    guard archive_read_open_filename(a, url.path, 1 << 16) == ARCHIVE_OK else { throw FormatError(file: url.path, message: "cannot open") }
    var entry: OpaquePointer?
    while archive_read_next_header(a, &entry) == ARCHIVE_OK {
        let path = String(cString: archive_entry_pathname(entry!))
        guard archive_entry_filetype(entry!) == 0o100000 else { continue }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { archive_read_data(a, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            bytes += chunk[0 ..< n]
        }
        let dest = dir.appendingPathComponent(path)
        try FileManager.default.createDirectory(at: dest.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(bytes).write(to: dest)
    }
}

/// The real ABACUS 3.10 MoS2 run (Tests/Fixtures/abacus, see its README), extracted once per process.
enum MoS2Run {
    static let extracted: URL = {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("harmose-abacus-\(ProcessInfo.processInfo.processIdentifier)")
        if !FileManager.default.fileExists(atPath: dir.appendingPathComponent("MoS2/STRU").path) {
            try! extractArchive(Fixtures.url("abacus/MoS2.tar.xz"), to: dir)
        }
        return dir.appendingPathComponent("MoS2")
    }()
    static let record: DFTRecord = try! ABACUS.readRun(at: extracted)
}

final class ABACUSReadTests: XCTestCase {
    func testReadsTheRealRun() throws {
        let r = MoS2Run.record
        let s = r.structure
        XCTAssertEqual(r.name, "MoS2")
        XCTAssertEqual(s.atomicNumbers, [42, 16, 16])
        XCTAssertEqual(s.basis[42]?.ls, [0, 0, 0, 0, 1, 1, 2, 2, 3])   // 4s2p2d1f
        XCTAssertEqual(s.basis[16]?.ls, [0, 0, 1, 1, 2])               // 2s2p1d
        XCTAssertEqual(s.totalOrbitals, 53)
        XCTAssertEqual(s.lattice.periodic, [true, true, false])
        XCTAssertEqual(r.fermiEnergy, -2.3123356452)
        XCTAssertEqual(r.extraInfo.first { $0.key == "occupation" }?.json, "26")
        XCTAssertFalse(r.spinful)
        // Lattice: hexagonal, a = 5.9716 Bohr with ABACUS's 0.5291770 Å/Bohr, c/a = 12.
        let a = 5.9716 * 0.5291770
        XCTAssertEqual(s.lattice.vectors[0].x, a, accuracy: 1e-12)
        XCTAssertEqual(s.lattice.vectors[1].y, a * 3.0.squareRoot() / 2, accuracy: 1e-12)
        XCTAssertEqual(s.lattice.vectors[2].z, 12 * a, accuracy: 1e-12)
        XCTAssertEqual(s.positions[0].z, 2.462038339 * a, accuracy: 1e-12)
        // 51 R in the H file, 35 with nonzero S; blocks per (R, i, j) with any entry.
        XCTAssertEqual(Set(r.hamiltonian!.keys.map(\.shift)).count, 51)
        XCTAssertEqual(Set(r.overlap!.keys.map(\.shift)).count, 35)
        // The on-site S block is the identity (ABACUS's orbitals are normalised; the sign
        // convention cannot change a diagonal).
        let onsite = r.overlap!.values(for: BlockKey(0, 0, 0, 0, 0))!
        for k in 0 ..< 27 { XCTAssertEqual(onsite[onsite.startIndex + k * 27 + k], 1, accuracy: 1e-7) }
        // First value of the file: H(R = −4 −2 0) row 0, column 28 = 1.68733795e-10 Ry.
        // Mo has 27 orbitals, so row 0 is Mo's first s and column 28 is S1's second s:
        // block (R, 0, 1) entry (0, 1), both s (sign +1, no permutation).
        let h = r.hamiltonian!.values(for: BlockKey(-4, -2, 0, 0, 1))!
        XCTAssertEqual(h[h.startIndex + 1], 1.68733795e-10 * 13.605698, accuracy: 1e-24)
        XCTAssertEqual(h[h.startIndex], 0)
    }

    func testHermiticityHolds() throws {
        let r = MoS2Run.record
        let (hDev, hUnpaired) = r.hamiltonian!.hermiticityDeviation()
        let (sDev, sUnpaired) = r.overlap!.hermiticityDeviation()
        XCTAssertTrue(hUnpaired.isEmpty && sUnpaired.isEmpty)
        // Printed with 9 significant digits: deviations at the last digit only.
        XCTAssertLessThan(hDev, 1e-6, "H(R) Hermiticity deviation \(hDev) eV")
        XCTAssertLessThan(sDev, 1e-8, "S(R) Hermiticity deviation \(sDev)")
        print("MoS2 Hermiticity: H \(hDev) eV, S \(sDev)")
    }

    func testArchiveOutFolderAndRunFolderReadTheSame() throws {
        var fromArchive: [DFTRecord] = []
        try DatasetSource(url: Fixtures.url("abacus/MoS2.tar.xz")).forEachRecord { fromArchive.append($0) }
        XCTAssertEqual(fromArchive.count, 1)
        XCTAssertEqual(fromArchive[0], MoS2Run.record)
        let fromOut = try FormatReader.readRecord(at: MoS2Run.extracted.appendingPathComponent("OUT.ABACUS"))
        XCTAssertEqual(fromOut, MoS2Run.record)
        XCTAssertEqual(try FormatReader.detect(at: MoS2Run.extracted), .abacus)
        XCTAssertEqual(try FormatReader.detect(at: Fixtures.url("abacus/MoS2.tar.xz")), .abacus)
        XCTAssertEqual(try DatasetSource(url: MoS2Run.extracted.deletingLastPathComponent()).structureNames(), ["MoS2"])
    }

    /// ABACUS → internal → ABACUS gives the CSR files back byte for byte.
    func testRoundTripIsByteExact() throws {
        let tmp = try makeTemporaryDirectory(self)
        try FormatWriter.write(MoS2Run.record, to: tmp.appendingPathComponent("out"), format: .abacus)
        for name in ["data-HR-sparse_SPIN0.csr", "data-SR-sparse_SPIN0.csr"] {
            let original = try Data(contentsOf: MoS2Run.extracted.appendingPathComponent("OUT.ABACUS/\(name)"))
            let written = try Data(contentsOf: tmp.appendingPathComponent("out/OUT.ABACUS/\(name)"))
            XCTAssertEqual(original.count, written.count, name)
            XCTAssertTrue(original == written, "\(name) differs")
        }
        // And the written folder reads back to the same record (geometry to rounding).
        let back = try FormatReader.readRecord(at: tmp.appendingPathComponent("out"))
        XCTAssertEqual(back.structure.atomicNumbers, MoS2Run.record.structure.atomicNumbers)
        XCTAssertEqual(back.structure.basis, MoS2Run.record.structure.basis)
        XCTAssertEqual(back.fermiEnergy, MoS2Run.record.fermiEnergy)
        XCTAssertEqual(back.extraInfo, MoS2Run.record.extraInfo)
        for (p, q) in zip(back.structure.positions, MoS2Run.record.structure.positions) { XCTAssertLessThan(norm(p - q), 1e-12) }
        XCTAssertLessThan(blockDifference(back.hamiltonian!, MoS2Run.record.hamiltonian!), 1e-8 * 13.6)
    }

    /// nspin = 2: two H files (here the run's own H as spin up and H + 0.1 Ry·S as spin down).
    func testSpinPolarizedIsBlockDiagonalAndRoundTrips() throws {
        let tmp = try makeTemporaryDirectory(self)
        let run = tmp.appendingPathComponent("MoS2")
        try FileManager.default.copyItem(at: MoS2Run.extracted, to: run)
        let out = run.appendingPathComponent("OUT.ABACUS")
        let log = try String(contentsOf: out.appendingPathComponent("running_scf.log"), encoding: .utf8)
        try log.replacingOccurrences(of: "nspin = 1", with: "nspin = 2").write(to: out.appendingPathComponent("running_scf.log"), atomically: true, encoding: .utf8)
        try FileManager.default.copyItem(at: out.appendingPathComponent("data-HR-sparse_SPIN0.csr"), to: out.appendingPathComponent("data-HR-sparse_SPIN1.csr"))
        let r = try FormatReader.readRecord(at: run)
        XCTAssertTrue(r.spinful)
        let up = ABACUS.spinComponent(r.hamiltonian!, spin: 0), down = ABACUS.spinComponent(r.hamiltonian!, spin: 1)
        XCTAssertEqual(blockDifference(up, MoS2Run.record.hamiltonian!), 0)
        XCTAssertEqual(blockDifference(down, MoS2Run.record.hamiltonian!), 0)
        // Off-diagonal spin blocks are zero.
        let b = r.hamiltonian!.position(of: BlockKey(0, 0, 0, 0, 1))!
        let shape = r.hamiltonian!.shape(at: b), v = Array(r.hamiltonian!.values(at: b))
        XCTAssertEqual(shape, SIMD2(54, 26))
        for row in 0 ..< 54 { for c in 0 ..< 26 where (row < 27) != (c < 13) { XCTAssertEqual(v[row * 26 + c], 0) } }
        // Written back: two H files, each the original bytes.
        try FormatWriter.write(r, to: tmp.appendingPathComponent("back"), format: .abacus)
        for spin in 0 ..< 2 {
            XCTAssertTrue(try Data(contentsOf: tmp.appendingPathComponent("back/OUT.ABACUS/data-HR-sparse_SPIN\(spin).csr"))
                == Data(contentsOf: out.appendingPathComponent("data-HR-sparse_SPIN0.csr")))
        }
        // The dock writer refuses spinful records with a clear message and writes nothing.
        XCTAssertThrowsError(try FormatWriter.write(r, to: tmp.appendingPathComponent("dock"), format: .deephDock)) { e in
            XCTAssertTrue("\(e)".contains("spinful"))
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.appendingPathComponent("dock").path))
    }

    /// The newer naming (hrs1_nao.csr/srs1_nao.csr) with its commented header, in ABACUS's own
    /// layout (output_hcontainer.cpp / sparse_matrix.cpp: 6 values and 16 indices per line).
    func testNewNamingReadsTheSame() throws {
        let tmp = try makeTemporaryDirectory(self)
        let run = tmp.appendingPathComponent("MoS2")
        try FileManager.default.copyItem(at: MoS2Run.extracted, to: run)
        let out = run.appendingPathComponent("OUT.ABACUS")
        for (old, new, what) in [("data-HR-sparse_SPIN0.csr", "hrs1_nao.csr", "H"), ("data-SR-sparse_SPIN0.csr", "srs1_nao.csr", "S")] {
            let text = try String(contentsOf: out.appendingPathComponent(old), encoding: .utf8)
            try FileManager.default.removeItem(at: out.appendingPathComponent(old))
            try ABACUSTestFiles.newStyle(fromOld: text, what: what).write(to: out.appendingPathComponent(new), atomically: true, encoding: .utf8)
        }
        let r = try FormatReader.readRecord(at: run)
        XCTAssertEqual(blockDifference(r.hamiltonian!, MoS2Run.record.hamiltonian!), 0)
        XCTAssertEqual(blockDifference(r.overlap!, MoS2Run.record.overlap!), 0)
        // Empty R written without the three arrays (as some versions do) reads the same.
        let sOld = try String(contentsOf: MoS2Run.extracted.appendingPathComponent("OUT.ABACUS/data-SR-sparse_SPIN0.csr"), encoding: .utf8)
        try ABACUSTestFiles.newStyle(fromOld: sOld, what: "S", markEmpty: false).write(to: out.appendingPathComponent("srs1_nao.csr"), atomically: true, encoding: .utf8)
        XCTAssertEqual(blockDifference(try FormatReader.readRecord(at: run).overlap!, MoS2Run.record.overlap!), 0)
    }
}

enum ABACUSTestFiles {
    /// Re-lays an old-style file in the newer layout (same numbers, same text of each number).
    static func newStyle(fromOld text: String, what: String, markEmpty: Bool = true) -> String {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let n = Int(lines[1].split(separator: " ").last!)!, m = Int(lines[2].split(separator: " ").last!)!
        var out = " --- Ionic Step 1 ---\n # print \(what) matrix in real space \(what)(R)\n 1 # number of spin directions\n 1 # spin index\n"
        out += " \(n) # number of localized basis\n \(m) # number of Bravais lattice vector R\n\n"
        out += " hexagonal\n 3.16003\n 1 0 0\n -0.5 0.866025 0\n 0 0 12\n Mo S\n 1 2\n Direct\n 0.333333333333333 0.666666666666667 0.205169862\n 0.666666666666667 0.333333333333333 0.164516063\n 0.666666666666667 0.333333333333333 0.245903126\n\n"
        out += " #----------------------------------------------------------------------#\n #                               CSR Format                             #\n #----------------------------------------------------------------------#\n\n"
        lines.removeFirst(3)
        var k = 0
        func chunked(_ items: [Substring], _ per: Int) -> String {
            stride(from: 0, to: items.count, by: per).map { " " + items[$0 ..< min($0 + per, items.count)].joined(separator: " ") + "\n" }.joined()
        }
        while k < lines.count, !lines[k].isEmpty {
            let head = lines[k].split(separator: " ")
            out += " " + lines[k] + "\n"
            if Int(head[3])! == 0 {
                if markEmpty { out += " # CSR values\n\n # CSR column indices\n\n # CSR row pointers\n" + String(repeating: " 0", count: n + 1) + "\n" }
                k += 1; continue
            }
            out += " # CSR values\n" + chunked(lines[k + 1].split(separator: " "), 6)
            out += " # CSR column indices\n" + chunked(lines[k + 2].split(separator: " "), 16)
            out += " # CSR row pointers\n" + chunked(lines[k + 3].split(separator: " "), 16) + "\n"
            k += 4
        }
        return out
    }
}
