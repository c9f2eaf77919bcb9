// `harmose bands --solver sparse|auto` and `harmose dos --method kpm` through the parsed
// commands, on the MoS₂ 2×2 GPAW fixture (164 orbitals): same energies as the dense solver,
// band.h5 records the sparse solve, bad requests name the structure and write nothing.
import Foundation
import HDF5Kit
import TestSupport
import XCTest
@testable import HarmoSECLI

final class SparseCommandTests: XCTestCase {
    private let mos2 = Fixtures.path("datasets/mos2-2x2-0000")

    private func kpath(_ dir: URL) throws -> String {
        let file = dir.appendingPathComponent("K_PATH")
        try "3 0 0 0  0.5 0 0  GAMMA M\n".write(to: file, atomically: true, encoding: .utf8)
        return file.path
    }

    func testSparseBandsEqualDenseAndAreRecorded() throws {
        let dir = try makeTemporaryDirectory(self)
        let path = try kpath(dir)
        let dense = try (HarmoSECommand.parseAsRoot(["bands", mos2, "--kpath", path, "--solver", "auto",
                                                     "--out", dir.appendingPathComponent("dense").path]) as! BandsCommand).execute()
        XCTAssertEqual(dense.bandCount, 164) // auto: dense below the threshold
        let out = dir.appendingPathComponent("sparse")
        var log: [String] = []
        let sparse = try (HarmoSECommand.parseAsRoot(["bands", mos2, "--kpath", path, "--solver", "sparse", "--num-bands", "12",
                                                      "--out", out.path]) as! BandsCommand).execute { log.append($0) }
        XCTAssertEqual(sparse.bandCount, 12)
        let ef = try XCTUnwrap(sparse.sparse?.target)
        for q in 0 ..< 3 {
            let all = dense.energies.map { $0[q] }
            let near = Array(all.sorted { abs($0 - ef) < abs($1 - ef) }.prefix(12)).sorted()
            XCTAssertLessThan(maxAbsDifference(sparse.energies.map { $0[q] }, near), 1e-8)
        }
        XCTAssertTrue(log.contains { $0.contains("ETA") })
        let f = try HDF5File(readingAt: out.appendingPathComponent("band.h5").path)
        XCTAssertEqual(try f.readString("solver"), "sparse")
        XCTAssertEqual(try f.readInt64s("bands_kept").values, [12])
        XCTAssertEqual(try f.readDoubles("residual_norms").shape, [12, 3])
        XCTAssertEqual(try f.readDoubles("solver_shift_eV").values, [ef, ef, ef])
    }

    func testTooManyBandsNamesStructureAndWritesNothing() throws {
        let dir = try makeTemporaryDirectory(self)
        let out = dir.appendingPathComponent("out")
        let command = try HarmoSECommand.parseAsRoot(["bands", mos2, "--kpath", try kpath(dir), "--solver", "sparse",
                                                      "--num-bands", "200", "--out", out.path]) as! BandsCommand
        XCTAssertThrowsError(try command.execute()) { error in
            let m = "\(error)"
            XCTAssertTrue(m.contains(mos2) && m.contains("k-point 0") && m.contains("larger than the matrix"), m)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
        XCTAssertThrowsError(try HarmoSECommand.parseAsRoot(["bands", mos2, "--solver", "lanczos", "--out", out.path]))
        XCTAssertThrowsError(try HarmoSECommand.parseAsRoot(["dos", mos2, "--method", "kpm", "--moments", "63", "--out", out.path]))
    }

    func testKPMDOSCommandWritesErrorBars() throws {
        let out = try makeTemporaryDirectory(self).appendingPathComponent("kpm")
        let command = try HarmoSECommand.parseAsRoot(["dos", mos2, "--method", "kpm", "--moments", "128", "--random-vectors", "4",
                                                      "--out", out.path]) as! DOSCommand
        let kpm = try command.executeKPM()
        XCTAssertEqual(kpm.orbitals, 164)
        let f = try HDF5File(readingAt: out.appendingPathComponent("dos.h5").path)
        XCTAssertEqual(try f.readString("method"), "kpm")
        XCTAssertEqual(try f.readDoubles("dos_standard_error").values.count, kpm.dos.count)
        XCTAssertEqual(try f.readInt64s("kpm_moments").values, [128])
        XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("dos.svg").path))
    }
}
