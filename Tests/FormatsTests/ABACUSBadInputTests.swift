import Foundation
@testable import Formats
import Structures
import TestSupport
import XCTest

/// Bad ABACUS input: every error names the file, the line or field, and the reason.
final class ABACUSBadInputTests: XCTestCase {
    var tmp: URL!
    var run: URL!
    var out: URL { run.appendingPathComponent("OUT.ABACUS") }

    /// A small real run: the MoS2 R = 0 blocks, written by our writer (STRU, log, two CSR files).
    override func setUpWithError() throws {
        tmp = try makeTemporaryDirectory(self)
        var r = MoS2Run.record
        func onsite(_ op: BlockOperator) -> BlockOperator {
            var o = BlockOperator()
            for (b, key) in op.keys.enumerated() where key.shift == .zero {
                o.append(key, rows: op.shape(at: b).x, cols: op.shape(at: b).y, values: op.values(at: b))
            }
            return o
        }
        r.hamiltonian = onsite(r.hamiltonian!); r.overlap = onsite(r.overlap!)
        run = tmp.appendingPathComponent("run")
        try FormatWriter.write(r, to: run, format: .abacus)
        XCTAssertNoThrow(try FormatReader.readRecord(at: run))
    }

    func edit(_ name: String, _ change: (String) -> String) throws {
        let url = out.appendingPathComponent(name)
        try change(try String(contentsOf: url, encoding: .utf8)).write(to: url, atomically: true, encoding: .utf8)
    }

    func expectError(file: String, field: String? = nil, message: String, line: UInt = #line) {
        XCTAssertThrowsError(try FormatReader.readRecord(at: run), line: line) { error in
            guard let e = error as? FormatError else { return XCTFail("not a FormatError: \(error)", line: line) }
            XCTAssertTrue(e.file.hasSuffix(file), "file \(e.file) should end with \(file)", line: line)
            if let field { XCTAssertTrue(e.field?.contains(field) == true, "field \(e.field ?? "nil") should contain \(field)", line: line) }
            XCTAssertTrue(e.message.contains(message), "message '\(e.message)' should contain '\(message)'", line: line)
        }
    }

    let h = "data-HR-sparse_SPIN0.csr"

    /// Replaces the last position line of the STRU (MoS2: atom 2, an S) by `text(previous line)`.
    func editLastPosition(_ text: (String) -> String) throws {
        let url = run.appendingPathComponent("STRU")
        var lines = try String(contentsOf: url, encoding: .utf8).components(separatedBy: "\n")
        let positions = lines.indices.filter { k in
            let f = lines[k].split(whereSeparator: \.isWhitespace)
            return f.count >= 3 && f.prefix(3).allSatisfy { Double($0) != nil }
        }
        lines[positions[positions.count - 1]] = text(lines[positions[positions.count - 2]])
        try lines.joined(separator: "\n").write(to: url, atomically: true, encoding: .utf8)
    }

    /// Counts in the log that parse as huge or NaN doubles are refused before converting to Int
    /// (they trapped there).
    func testHugeCountsInTheLog() throws {
        let log = "running_scf.log"
        let text = try String(contentsOf: out.appendingPathComponent(log), encoding: .utf8)
        for (pattern, value, field) in [(#"NLOCAL = \d+"#, "NLOCAL = 1e300", "NLOCAL"), (#"NLOCAL = \d+"#, "NLOCAL = nan", "NLOCAL"),
                                        (#"number of atom for this type = \d+"#, "number of atom for this type = 1e300", "number of atom for this type")] {
            let damaged = text.replacingOccurrences(of: pattern, with: value, options: .regularExpression)
            XCTAssertNotEqual(damaged, text, pattern)
            try damaged.write(to: out.appendingPathComponent(log), atomically: true, encoding: .utf8)
            expectError(file: log, field: field, message: value.hasSuffix("nan") || field == "NLOCAL" ? "not an orbital count" : "not a count")
        }
    }

    func testTwoAtomsAtTheSamePosition() throws {
        try editLastPosition { $0 }
        expectError(file: "STRU", field: "ATOMIC_POSITIONS", message: "atom 1 (S) and atom 2 (S) are 0.0000 Å apart, closer than 0.5 Å")
    }

    func testCoordinateOutOfRange() throws {
        try editLastPosition { _ in "1e7 0 0 0 0 0" }
        expectError(file: "STRU", field: "ATOMIC_POSITIONS", message: "atom 2 (S) at (")
    }

    func testUnknownHeader() throws {
        try edit(h) { $0.replacingOccurrences(of: "STEP: 0", with: "VERSION 9") }
        expectError(file: h, field: "line 1", message: "unknown header")
    }

    func testMissingMatrixDimension() throws {
        try edit(h) { $0.replacingOccurrences(of: "Matrix Dimension of H(R): 53\n", with: "") }
        expectError(file: h, field: "Matrix Dimension", message: "missing")
    }

    func testNewHeaderWithoutBasisCount() throws {
        let s = try String(contentsOf: out.appendingPathComponent("data-SR-sparse_SPIN0.csr"), encoding: .utf8)
        try FileManager.default.removeItem(at: out.appendingPathComponent("data-SR-sparse_SPIN0.csr"))
        try ABACUSTestFiles.newStyle(fromOld: s, what: "S").write(to: out.appendingPathComponent("srs1_nao.csr"), atomically: true, encoding: .utf8)
        let text = try String(contentsOf: out.appendingPathComponent(h), encoding: .utf8)
        try FileManager.default.removeItem(at: out.appendingPathComponent(h))
        try ABACUSTestFiles.newStyle(fromOld: text, what: "H").replacingOccurrences(of: " 53 # number of localized basis\n", with: "")
            .write(to: out.appendingPathComponent("hrs1_nao.csr"), atomically: true, encoding: .utf8)
        expectError(file: "hrs1_nao.csr", field: "number of localized basis", message: "missing")
    }

    func testTruncatedCSR() throws {
        let full = try String(contentsOf: out.appendingPathComponent(h), encoding: .utf8)
        try edit(h) { String($0.prefix($0.count / 2)) }                                  // mid-number
        expectError(file: h, message: "truncated")
        try edit(h) { _ in full.components(separatedBy: "\n").prefix(5).joined(separator: "\n") + "\n" }  // whole lines
        expectError(file: h, field: "line 6: CSR column indices", message: "file ends here (truncated?)")
    }

    func testColumnIndexOutOfRange() throws {
        try edit(h) { text in
            var lines = text.components(separatedBy: "\n")
            lines[5] = " 53" + lines[5].drop { $0 == " " }.drop { $0 != " " }      // first column index → 53
            return lines.joined(separator: "\n")
        }
        expectError(file: h, field: "line 6: column indices", message: "column 53 out of range 0..<53")
    }

    func testRowPointersNotMonotonic() throws {
        try edit(h) { text in
            var lines = text.components(separatedBy: "\n")
            var p = lines[6].split(separator: " ").map(String.init)
            p.swapAt(1, 30)
            lines[6] = " " + p.joined(separator: " ")
            return lines.joined(separator: "\n")
        }
        expectError(file: h, field: "line 7: row pointers", message: "breaks 0 = p₀ ≤ p₁ ≤ … ≤ nnz")
    }

    func testComplexValuesSayNspin4() throws {
        try edit(h) { text in
            var lines = text.components(separatedBy: "\n")
            lines[4] = " (1.0,0.0)" + lines[4].drop { $0 == " " }.drop { $0 != " " }
            return lines.joined(separator: "\n")
        }
        expectError(file: h, field: "line 5", message: "not yet supported")
    }

    func testSTRUAndLogDisagreeOnAtoms() throws {
        try edit("running_scf.log") { $0.replacingOccurrences(of: "number of atom for this type = 2", with: "number of atom for this type = 3") }
        expectError(file: "running_scf.log", field: "READING ATOM TYPE", message: "disagree with STRU")
    }

    func testLogAndMatrixDisagreeOnOrbitals() throws {
        // One more d shell for S: the log's own NLOCAL no longer adds up …
        try edit("running_scf.log") { $0.replacingOccurrences(of: "L=2, number of zeta = 1", with: "L=2, number of zeta = 2") }
        expectError(file: "running_scf.log", field: "NLOCAL", message: "shells per type give 63")
        // … and without NLOCAL, the matrix dimension catches it.
        try edit("running_scf.log") { $0.replacingOccurrences(of: "NLOCAL = 53", with: "") }
        expectError(file: h, field: "Matrix Dimension", message: "53 orbitals, but STRU and running_scf.log give 63")
    }

    func testUnsupportedNspin() throws {
        try edit("running_scf.log") { $0.replacingOccurrences(of: "nspin = 1", with: "nspin = 4") }
        expectError(file: "running_scf.log", field: "nspin", message: "nspin = 4 (noncollinear or spin–orbit) is not yet supported")
        try edit("running_scf.log") { $0.replacingOccurrences(of: "nspin = 4", with: "nspin = 3") }
        expectError(file: "running_scf.log", field: "nspin", message: "is not 1, 2 or 4")
    }

    func testMissingSpinDownFile() throws {
        try edit("running_scf.log") { $0.replacingOccurrences(of: "nspin = 1", with: "nspin = 2") }
        expectError(file: "data-HR-sparse_SPIN1.csr", message: "missing file")
    }

    func testSecondIonicStep() throws {
        try edit(h) { $0 + $0 }
        expectError(file: h, message: "second ionic step")
    }

    func testMissingSTRU() throws {
        try FileManager.default.removeItem(at: run.appendingPathComponent("STRU"))
        XCTAssertThrowsError(try ABACUS.readRun(at: out)) { e in
            XCTAssertTrue("\(e)".contains("STRU: missing file"), "\(e)")
        }
    }

    /// Nothing half-written: a record the writer rejects leaves no destination behind, and an
    /// existing destination stays as it was.
    func testWriterLeavesNothingOnError() throws {
        var r = try FormatReader.readRecord(at: run)
        var bad = BlockOperator()
        for (b, key) in r.hamiltonian!.keys.enumerated() {
            var v = Array(r.hamiltonian!.values(at: b))
            if b == 1 { v[3] = .nan }
            bad.append(key, rows: r.hamiltonian!.shape(at: b).x, cols: r.hamiltonian!.shape(at: b).y, values: v)
        }
        r.hamiltonian = bad
        let dst = tmp.appendingPathComponent("dst")
        XCTAssertThrowsError(try FormatWriter.write(r, to: dst, format: .abacus)) { e in XCTAssertTrue("\(e)".contains("non-finite")) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dst.path))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp.path).sorted(), ["run"])
        XCTAssertThrowsError(try FormatWriter.write(r, to: run, format: .abacus))
        XCTAssertNoThrow(try FormatReader.readRecord(at: run))
    }
}

/// Bad CP2K input.
final class CP2KBadInputTests: XCTestCase {
    func copyWater() throws -> URL {
        let dst = try makeTemporaryDirectory(self).appendingPathComponent("water")
        try FileManager.default.copyItem(at: Fixtures.url("cp2k/water"), to: dst)
        return dst
    }

    func testIndexOutOfRangeAndBadValue() throws {
        let dir = try copyWater()
        let ks = dir.appendingPathComponent("water-KS_SPIN_1-1_0.csr")
        let text = try String(contentsOf: ks, encoding: .utf8)
        try text.replacingOccurrences(of: "       1       2  0.619", with: "       1      24  0.619").write(to: ks, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try FormatReader.readRecord(at: dir)) { e in
            XCTAssertTrue("\(e)".contains("water-KS_SPIN_1-1_0.csr: line 2: row/column: (1, 24) out of range 1…23"), "\(e)")
        }
        try text.replacingOccurrences(of: "0.61947208610193E+000", with: "NaN").write(to: ks, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try FormatReader.readRecord(at: dir)) { e in XCTAssertTrue("\(e)".contains("line 2: value"), "\(e)") }
    }

    func testTruncatedCSR() throws {
        let dir = try copyWater()
        let s = dir.appendingPathComponent("water-S_SPIN_1-1_0.csr")
        let lines = try String(contentsOf: s, encoding: .utf8).split(separator: "\n")
        try (lines.prefix(100).joined(separator: "\n") + "\n").write(to: s, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try FormatReader.readRecord(at: dir)) { e in
            XCTAssertTrue("\(e)".contains("water-S_SPIN_1-1_0.csr: atoms 1, 1: 60 of the block's 169 elements: truncated file"), "\(e)")
        }
        try String(lines.prefix(100).joined(separator: "\n").dropLast(3)).write(to: s, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try FormatReader.readRecord(at: dir)) { e in XCTAssertTrue("\(e)".contains("does not end with a newline (truncated?)"), "\(e)") }
    }

    func testOutputWithoutBasis() throws {
        let dir = try copyWater()
        let out = dir.appendingPathComponent("water.out")
        let text = try String(contentsOf: out, encoding: .utf8)
        try text.replacingOccurrences(of: "Atomic kind: H", with: "Atomic kind? H").write(to: out, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try FormatReader.readRecord(at: dir)) { e in XCTAssertTrue("\(e)".contains("water.out: Atomic kind: 2: no orbital basis set"), "\(e)") }
    }
}
