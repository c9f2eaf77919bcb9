// Faults other than bad bytes: periodic-image overlaps and degenerate lattices at the root
// (StructureChecks, k-paths), a full disk (small tmpfs, root only), a kill in the middle of a
// write (the temporaries a killed convert, bands or training run leaves are removed by the next
// run and listed by `gc --dry-run`), and single-structure "validation" being flagged.
import Bands
import Foundation
import Formats
import Structures
import TestSupport
import XCTest

final class FaultTests: XCTestCase {
    func testPeriodicImagesAndDegenerateLattices() throws {
        let cubic = Lattice(vectors: [Vec3(20, 0, 0), Vec3(0, 20, 0), Vec3(0, 0, 20)])
        var s = Structure(lattice: cubic, atomicNumbers: [1, 1], positions: [Vec3(0.1, 5, 5), Vec3(19.9, 5, 5)], basis: [1: OrbitalShells([0])])
        // Periodic along x: 0.2 Å apart through the boundary, found with the image's shift.
        let close = try XCTUnwrap(StructureChecks.closeAtoms(s))
        XCTAssertEqual(close.distance, 0.2, accuracy: 1e-9)
        XCTAssertEqual(abs(close.shift.x), 1)
        // A molecule (no periodic direction): 19.8 Å apart, accepted.
        s.lattice.periodic = [false, false, false]
        XCTAssertNil(StructureChecks.closeAtoms(s))
        // A small cell: an atom meets its own image (cell 0.3 Å along z).
        let thin = Structure(lattice: Lattice(vectors: [Vec3(5, 0, 0), Vec3(0, 5, 0), Vec3(0, 0, 0.3)]), atomicNumbers: [1],
                             positions: [Vec3(1, 1, 0.1)], basis: [1: OrbitalShells([0])])
        XCTAssertEqual(StructureChecks.closeAtoms(thin)?.i, 0)
        XCTAssertEqual(StructureChecks.closeAtoms(thin)?.j, 0)
        // 2000 well-separated atoms: none reported (the cell list, not N² with images).
        var rng = SplitMix(state: 3)
        var grid: [Vec3] = []
        for x in 0 ..< 20 { for y in 0 ..< 10 { for z in 0 ..< 10 {
            grid.append(Vec3(Double(x), Double(y), Double(z)) * 1.5 + Vec3(Double.random(in: 0 ..< 0.2, using: &rng), 0, 0))
        } } }
        let big = Structure(lattice: Lattice(vectors: [Vec3(30, 0, 0), Vec3(0, 15, 0), Vec3(0, 0, 15)]), atomicNumbers: Array(repeating: 1, count: grid.count),
                            positions: grid, basis: [1: OrbitalShells([0])])
        XCTAssertNil(StructureChecks.closeAtoms(big))

        let a1 = Vec3(3, 0, 0), a2 = Vec3(1, 3, 0)
        for bad in [[a1, a2, a1 + a2], [a1, a2, .zero], [a1, a2, Vec3(.nan, 0, 1)], [a1, a1, Vec3(0, 0, 3)]] {
            XCTAssertNotNil(StructureChecks.latticeProblem(Lattice(vectors: bad)), "\(bad)")
            // Even when such a lattice reaches k-path generation, nothing traps: the path is
            // refused by its size check instead.
            let (path, _) = KPath.standard(for: Lattice(vectors: bad), periodic: [true, true, true])
            XCTAssertThrowsError(try path.checkSize(source: "test"))
        }
        XCTAssertNil(StructureChecks.latticeProblem(Lattice(vectors: [a1, a2, Vec3(0, 0, 3)])))
    }

    /// Full disk, for real: a 256 KiB tmpfs (needs root; skipped otherwise).
    func testFullDiskGivesACleanErrorAndNoPartialOutput() throws {
        guard getuid() == 0 else { throw XCTSkip("mounting a tmpfs needs root") }
        let mount = try makeTemporaryDirectory(self)
        let status = Self.shell("mount -t tmpfs -o size=256k tmpfs '\(mount.path)'")
        guard status == 0 else { throw XCTSkip("cannot mount a tmpfs here (status \(status))") }
        defer { _ = Self.shell("umount '\(mount.path)'") }
        let sandbox = try makeTemporaryDirectory(self)
        for (args, expect) in [
            (["convert", Fixtures.path("datasets/mos2-2x2-0000"), "\(mount.path)/out", "--to", "deeph-legacy"], "disk full"),
            (["convert", Fixtures.path("datasets"), "\(mount.path)/many", "--to", "deeph-dock"], "disk full"),
            (["bands", Fixtures.path("peer/deeph-dock/MoTe2"), "--out", "\(mount.path)/bands", "--points-per-inverse-angstrom", "400"], "disk full"),
        ] {
            let r = try Harmose.run(args, in: sandbox, timeout: 120)
            XCTAssertNotEqual(r.status, 0, "\(args)")
            XCTAssertFalse(r.signalled, "\(args): crashed\n\(r.stderr)")
            XCTAssertTrue(r.stderr.contains(expect), "\(args): \(r.stderr)")
            XCTAssertFalse(r.stderr.contains("Error Domain="), r.stderr)
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: mount.path), [], "\(args): partial output")
        }
    }

    static func shell(_ command: String) -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", command + " 2>/dev/null"]
        try? p.run()
        p.waitUntilExit()
        return p.terminationStatus
    }

    /// A convert killed mid-write leaves `.DST.tmp-<pid>-…`; `gc --dry-run --under` lists it, the
    /// next convert into the same DST removes it, and DST never holds a partial set.
    func testKilledConvertLeavesNothingThatLooksCompleteAndIsCleanedUp() throws {
        let sandbox = try makeTemporaryDirectory(self)
        // Many structures so the kill lands mid-way.
        let data = sandbox.appendingPathComponent("data")
        for k in 0 ..< 40 {
            try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: Fixtures.url("training/water-0000"), to: data.appendingPathComponent(String(format: "w%02d", k)))
        }
        let p = Process()
        p.executableURL = try Harmose.binary()
        p.arguments = ["convert", "data", "out", "--to", "deeph-legacy", "-q"]
        p.currentDirectoryURL = sandbox
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        let deadline = Date().addingTimeInterval(30)
        var temporary: String?
        while Date() < deadline, p.isRunning {
            temporary = (try? FileManager.default.contentsOfDirectory(atPath: sandbox.path))?.first { $0.hasPrefix(".out.tmp-") }
            if let t = temporary, ((try? FileManager.default.contentsOfDirectory(atPath: sandbox.appendingPathComponent(t).path)) ?? []).count >= 3 { break }
            usleep(2000)
        }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        let left = try XCTUnwrap(temporary, "convert finished before it could be killed")
        XCTAssertFalse(FileManager.default.fileExists(atPath: sandbox.appendingPathComponent("out").path), "a partial DST looks complete")

        let dry = try Harmose.run(["gc", "--dry-run", "--under", sandbox.path], in: sandbox)
        XCTAssertEqual(dry.status, 0, dry.stderr)
        XCTAssertTrue(dry.stdout.contains(left) || dry.stderr.contains(left), "gc --dry-run does not list \(left): \(dry.stdout)\(dry.stderr)")
        XCTAssertTrue(FileManager.default.fileExists(atPath: sandbox.appendingPathComponent(left).path), "--dry-run removed it")

        let again = try Harmose.run(["convert", "data", "out", "--to", "deeph-legacy", "-q"], in: sandbox, timeout: 120)
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: sandbox.appendingPathComponent(left).path), "the next convert did not remove \(left)")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: sandbox.appendingPathComponent("out").path).count, 40)
    }

    /// What a killed run leaves inside an artifact (a checkpoint or band temporary of a dead
    /// process) is listed by `gc --dry-run` and removed by `gc`; a live process's is kept.
    func testGCListsAndRemovesTemporariesOfDeadProcesses() throws {
        let sandbox = try makeTemporaryDirectory(self)
        let version = sandbox.appendingPathComponent("outputs/train/abc123")
        try FileManager.default.createDirectory(at: version, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: sandbox.appendingPathComponent("outputs/train/latest").path, withDestinationPath: "abc123")
        try Data("{}".utf8).write(to: version.appendingPathComponent("manifest.json"))
        let dead = ".last.h5.tmp-999999-1", live = ".best.h5.tmp-\(getpid())-2"
        for name in [dead, live] { try Data("x".utf8).write(to: version.appendingPathComponent(name)) }
        try FileManager.default.createDirectory(at: sandbox.appendingPathComponent("outputs/train/.tmp-abc-999999-7"), withIntermediateDirectories: true)

        let dry = try Harmose.run(["gc", "--dry-run", "--outputs", "outputs"], in: sandbox)
        let listed = dry.stdout + dry.stderr
        XCTAssertTrue(listed.contains(dead) && listed.contains(".tmp-abc-999999-7"), listed)
        XCTAssertFalse(listed.contains(live), listed)
        XCTAssertTrue(FileManager.default.fileExists(atPath: version.appendingPathComponent(dead).path))
        let gc = try Harmose.run(["gc", "--outputs", "outputs"], in: sandbox)
        XCTAssertEqual(gc.status, 0, gc.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: version.appendingPathComponent(dead).path))
        XCTAssertTrue(FileManager.default.fileExists(atPath: version.appendingPathComponent(live).path))
    }

    /// band.h5, bands.csv and bands.svg appear together or not at all; a stale staging folder of
    /// a killed run beside them is removed by the next run.
    func testBandOutputsAreOneUnit() throws {
        let sandbox = try makeTemporaryDirectory(self)
        let out = sandbox.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        let stale = out.appendingPathComponent(".band.h5.tmp-999999-5")
        try FileManager.default.createDirectory(at: stale, withIntermediateDirectories: true)
        try Data("partial".utf8).write(to: stale.appendingPathComponent("band.h5"))
        // bands.svg is a folder: the unit fails before anything is moved.
        try FileManager.default.createDirectory(at: out.appendingPathComponent("bands.svg"), withIntermediateDirectories: true)
        let failed = try Harmose.run(["bands", Fixtures.path("training/water-0000"), "--out", "out"], in: sandbox)
        XCTAssertNotEqual(failed.status, 0)
        XCTAssertTrue(failed.stderr.contains("bands.svg") && failed.stderr.contains("refusing to replace"), failed.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("band.h5").path), "band.h5 without bands.svg")
        try FileManager.default.removeItem(at: out.appendingPathComponent("bands.svg"))
        let ok = try Harmose.run(["bands", Fixtures.path("training/water-0000"), "--out", "out"], in: sandbox)
        XCTAssertEqual(ok.status, 0, ok.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out.path).sorted(), ["band.h5", "bands.csv", "bands.svg"])
    }
}
