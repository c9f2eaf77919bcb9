// Security: archive member names can never place a file outside the destination, nor replace a
// folder there. Real hostile archives (tar, tar.gz, zip written by libarchive; raw ustar headers
// for bytes libarchive would not write) go through `convert` in process, `convert` as a separate
// process and an `ingest` stage under `harmose run`; each must fail naming the archive, the
// member and the reason, and the sandbox around the destination must be unchanged.
import Foundation
import Formats
import HarmoSECLI
import TestSupport
import XCTest

final class ArchiveEscapeTests: XCTestCase {
    /// A hostile member layout and the reason the error must give.
    struct Case {
        var label: String
        var members: () throws -> [(String, [UInt8])]
        var reason: String
        /// A fragment of the member name the message must show.
        var member: String
    }

    static let longComponent = String(repeating: "x", count: 300)
    static let longName = (0 ..< 11).map { _ in String(repeating: "y", count: 100) }.joined(separator: "/")
    static let deepName = (0 ..< 40).map { "d\($0)" }.joined(separator: "/")

    static var cases: [Case] { [
        Case(label: "dotdot", members: { try HostileArchive.structure(at: "../../victim") }, reason: "'..' component", member: "../../victim"),
        Case(label: "dotdot-inner", members: { try HostileArchive.structure(at: "a/../../../victim") }, reason: "'..' component", member: "a/../../../victim"),
        Case(label: "absolute", members: { try HostileArchive.structure(at: "/tmp/harmose-evil") }, reason: "absolute path", member: "harmose-evil"),
        Case(label: "drive", members: { try HostileArchive.structure(at: "C:/evil") }, reason: "drive letter", member: "C:/evil"),
        Case(label: "backslash", members: { try HostileArchive.structure(at: "..\\..\\victim") }, reason: "backslash", member: "victim"),
        Case(label: "control", members: { try HostileArchive.structure(at: "ev\u{1}il") }, reason: "control character", member: "ev\\u0001il"),
        Case(label: "long-component", members: { try HostileArchive.structure(at: longComponent) }, reason: "over the limit of 255 bytes", member: "xxxx"),
        Case(label: "long-name", members: { try HostileArchive.structure(at: longName) }, reason: "over the limit of 1024 bytes", member: "yyyy"),
        Case(label: "deep", members: { try HostileArchive.structure(at: deepName) }, reason: "over the limit of 32", member: "d0/d1"),
        Case(label: "hidden", members: { try HostileArchive.structure(at: ".victim") }, reason: "hidden component", member: ".victim"),
        Case(label: "duplicate", members: { try HostileArchive.structure(at: "s") + [("./s//POSCAR", Array("x".utf8))] }, reason: "duplicate member", member: "s/POSCAR"),
        Case(label: "case-collision", members: { try HostileArchive.structure(at: "Water") + HostileArchive.structure(at: "water") }, reason: "collides", member: "water"),
        Case(label: "nested", members: { try HostileArchive.structure(at: "a") + HostileArchive.structure(at: "a/b") }, reason: "lies inside", member: "a/b"),
        Case(label: "top-and-folder", members: { try HostileArchive.structure(at: "") + HostileArchive.structure(at: "b") }, reason: "lies inside", member: "b"),
    ] }

    var sandbox: URL!
    override func setUpWithError() throws {
        sandbox = try makeTemporaryDirectory(self)
        // An existing folder next to the destination that a traversal would replace.
        let victim = sandbox.appendingPathComponent("victim")
        try FileManager.default.createDirectory(at: victim, withIntermediateDirectories: true)
        try Data("keep me\n".utf8).write(to: victim.appendingPathComponent("keep.txt"))
    }

    func assertNothingEscaped(_ before: TreeSnapshot, allowing: [String], _ label: String, line: UInt = #line) {
        let changed = TreeSnapshot(sandbox).changes(since: before, allowing: allowing)
        XCTAssertEqual(changed, [], "\(label): written outside the destination", line: line)
        XCTAssertEqual(try? String(contentsOf: sandbox.appendingPathComponent("victim/keep.txt"), encoding: .utf8), "keep me\n", label, line: line)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/tmp/harmose-evil"), label, line: line)
    }

    func testConvertInProcessRefusesEveryHostileNameInEveryArchiveKind() throws {
        for c in Self.cases {
            for kind in HostileArchive.Kind.allCases {
                let label = "\(c.label)\(kind.ext)"
                let archive = sandbox.appendingPathComponent("evil-\(label)\(kind.ext)")
                try HostileArchive.write(archive, kind: kind, members: try c.members())
                let before = TreeSnapshot(sandbox)
                let dst = sandbox.appendingPathComponent("work/out")
                let command = try XCTUnwrap(try HarmoSECommand.parseAsRoot(["convert", archive.path, dst.path, "--to", "deeph-legacy", "-q"]) as? ConvertCommand)
                XCTAssertThrowsError(try command.execute(), label) { error in
                    let text = "\(error)"
                    XCTAssertTrue(text.contains(archive.lastPathComponent), "\(label): archive not named: \(text)")
                    XCTAssertTrue(text.contains(c.reason), "\(label): reason '\(c.reason)' missing: \(text)")
                    XCTAssertTrue(text.contains(c.member), "\(label): member '\(c.member)' missing: \(text)")
                }
                assertNothingEscaped(before, allowing: [], label)
                XCTAssertFalse(FileManager.default.fileExists(atPath: dst.path), "\(label): partial destination")
                try FileManager.default.removeItem(at: archive)
            }
        }
    }

    func testConvertAndIngestProcessesRefuseHostileNames() throws {
        let pipeline = """
        {"version": 1, "stages": {"ingest": {"kind": "ingest", "inputs": {"dataset": "evil.tar.gz"}}}}
        """
        for c in Self.cases {
            let archive = sandbox.appendingPathComponent("evil.tar.gz")
            try HostileArchive.write(archive, kind: .tgz, members: try c.members())
            try Data(pipeline.utf8).write(to: sandbox.appendingPathComponent("pipeline.json"))
            let before = TreeSnapshot(sandbox)

            let convert = try Harmose.run(["convert", "evil.tar.gz", "out", "--to", "deeph-dock"], in: sandbox)
            XCTAssertNotEqual(convert.status, 0, "\(c.label): convert exit status")
            XCTAssertFalse(convert.signalled, "\(c.label): convert crashed")
            XCTAssertTrue(convert.stderr.contains("evil.tar.gz") && convert.stderr.contains(c.reason), "\(c.label): \(convert.stderr)")
            assertNothingEscaped(before, allowing: [], "convert \(c.label)")

            let run = try Harmose.run(["run", "--pipeline", "pipeline.json"], in: sandbox)
            XCTAssertNotEqual(run.status, 0, "\(c.label): run exit status")
            XCTAssertFalse(run.signalled, "\(c.label): run crashed")
            XCTAssertTrue((run.stdout + run.stderr).contains(c.reason), "\(c.label): \(run.stdout)\(run.stderr)")
            // The runner keeps its records under outputs/; nothing else may change.
            assertNothingEscaped(before, allowing: ["outputs", ".harmose"], "ingest \(c.label)")
            let store = sandbox.appendingPathComponent("outputs/ingest")
            let leftovers = (FileManager.default.subpaths(atPath: store.path) ?? []).filter { $0.hasSuffix("POSCAR") }
            XCTAssertEqual(leftovers, [], "\(c.label): structures left in the failed stage's output")
            try? FileManager.default.removeItem(at: sandbox.appendingPathComponent("outputs"))
        }
    }

    /// Names libarchive will not write as given: raw ustar headers.
    func testRawTarNamesWithInvalidUTF8AreRefused() throws {
        let water = try HostileArchive.waterFiles()
        let bad: [UInt8] = [0x77, 0xFF, 0xFE, 0x2F]
        let archive = sandbox.appendingPathComponent("raw.tar")
        try HostileArchive.writeRawTar(archive, members: water.map { (bad + Array($0.0.utf8), $0.1) })
        XCTAssertThrowsError(try DatasetSource(url: archive).structureNames()) { error in
            XCTAssertTrue("\(error)".contains("raw.tar") && "\(error)".contains("not valid UTF-8"), "\(error)")
        }
        // NUL ends a ustar name: "s/POSCAR\0../../x" is the member "s/POSCAR", nothing more.
        let nul = sandbox.appendingPathComponent("nul.tar")
        try HostileArchive.writeRawTar(nul, members: water.map { (Array("s/\($0.0)".utf8) + [0] + Array("../../victim".utf8), $0.1) })
        XCTAssertEqual(try DatasetSource(url: nul).structureNames(), ["s"])
        // And the member-name validator refuses a NUL wherever the bytes come from.
        XCTAssertEqual(try? MemberPath.normalize(bytes: Array("a".utf8) + [0] + Array("b".utf8)).get(), nil)
    }

    func testArchiveNamedDotDotIsNotAStructureName() throws {
        for name in ["..tar", "...tar.gz", ".tar"] {
            let archive = sandbox.appendingPathComponent(name)
            try HostileArchive.write(archive, kind: name.hasSuffix(".gz") ? .tgz : .tar, members: try HostileArchive.structure(at: ""))
            let before = TreeSnapshot(sandbox)
            let dst = sandbox.appendingPathComponent("work/out")
            let command = try XCTUnwrap(try HarmoSECommand.parseAsRoot(["convert", archive.path, dst.path, "--to", "deeph-legacy"]) as? ConvertCommand)
            XCTAssertThrowsError(try command.execute(), name) { error in
                XCTAssertTrue("\(error)".contains("refused as a structure name"), "\(error)")
            }
            assertNothingEscaped(before, allowing: [], name)
        }
    }

    func testLinksInArchivesAreRefused() throws {
        let archive = sandbox.appendingPathComponent("links.tar")
        let files = try HostileArchive.structure(at: "s").filter { !$0.0.hasSuffix("POSCAR") }
        try HostileArchive.write(archive, kind: .tar, members: files, symlinks: [("s/POSCAR", "/etc/passwd")])
        XCTAssertThrowsError(try DatasetSource(url: archive).forEachRecord { _ in }) { error in
            XCTAssertTrue("\(error)".contains("s/POSCAR") && "\(error)".contains("link"), "\(error)")
        }
    }

    func testDestinationThatIsAFileOrAForeignFolderIsRefusedNotReplaced() throws {
        let archive = sandbox.appendingPathComponent("good.tar")
        try HostileArchive.write(archive, kind: .tar, members: try HostileArchive.structure(at: "water"))
        let file = sandbox.appendingPathComponent("dst-file")
        try Data("precious".utf8).write(to: file)
        let foreign = sandbox.appendingPathComponent("dst-folder")
        try FileManager.default.createDirectory(at: foreign, withIntermediateDirectories: true)
        try Data("notes".utf8).write(to: foreign.appendingPathComponent("notes.txt"))
        for dst in [file, foreign] {
            let before = TreeSnapshot(sandbox)
            let command = try XCTUnwrap(try HarmoSECommand.parseAsRoot(["convert", archive.path, dst.path, "--to", "deeph-dock"]) as? ConvertCommand)
            XCTAssertThrowsError(try command.execute()) { error in
                XCTAssertTrue("\(error)".contains(dst.lastPathComponent) && "\(error)".contains("refusing to replace"), "\(error)")
            }
            XCTAssertEqual(TreeSnapshot(sandbox).changes(since: before), [])
        }
        // A previous conversion is replaced as before.
        let out = sandbox.appendingPathComponent("out")
        for _ in 0 ..< 2 {
            let command = try XCTUnwrap(try HarmoSECommand.parseAsRoot(["convert", archive.path, out.path, "--to", "deeph-dock"]) as? ConvertCommand)
            XCTAssertEqual(try command.execute(), ["water"])
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out.path), ["water"])
    }

    func testMemberPathRules() {
        XCTAssertEqual(MemberPath.normalize("./a//b/./c"), .success("a/b/c"))
        for bad in ["", "/", ".", "./", "..", "a/..", "/etc/passwd", "C:x", "c:/x", "a\\b", "a\u{7F}", String(repeating: "z", count: 256)] {
            XCTAssertNotEqual((try? MemberPath.normalize(bad).get()) != nil, true, "accepted \(MemberPath.quoted(bad))")
        }
        XCTAssertThrowsError(try MemberPath.confined("../x", in: sandbox, source: "src"))
        XCTAssertEqual(try MemberPath.confined("a/b", in: sandbox, source: "src").path, sandbox.appendingPathComponent("a/b").path)
    }
}
