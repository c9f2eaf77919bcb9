import Foundation
@testable import HDF5Kit
import TestSupport
import XCTest

final class HDF5KitTests: XCTestCase {
    func testRoundTripAllKindsAndInMemoryImage() throws {
        let dir = try makeTemporaryDirectory(self)
        let path = dir.appendingPathComponent("t.h5").path
        do {
            let f = try HDF5File(creatingAt: path)
            try f.write("a/b", doubles: [1.5, -2, .pi, 1e-300], shape: [2, 2])
            try f.write("f", floats: [1, 2, 3], shape: [3], compressed: true)
            try f.write("i", int64s: [-1, 0, Int64.max], shape: [3, 1])
            try f.write("s", string: "héllo")
            try f.write("labels", strings: ["Γ", "M", "K", ""], shape: [2, 2])
            try f.setAttribute("version", string: "1")
            try f.setAttribute("x", doubles: [2, 3])
        }
        let r = try HDF5File(readingAt: path)
        XCTAssertEqual(try r.memberNames(), ["a", "f", "i", "labels", "s"])
        XCTAssertEqual(try r.readStrings("labels").values, ["Γ", "M", "K", ""])
        XCTAssertEqual(try r.readStrings("labels").shape, [2, 2])
        XCTAssertEqual(try r.readDoubles("a/b").values, [1.5, -2, .pi, 1e-300])
        XCTAssertEqual(try r.readDoubles("a/b").shape, [2, 2])
        XCTAssertEqual(try r.readDoubles("f").values, [1, 2, 3])
        XCTAssertEqual(try r.readInt64s("i").values, [-1, 0, Int64.max])
        XCTAssertEqual(try r.readString("s"), "héllo")
        XCTAssertEqual(try r.stringAttribute("version"), "1")
        XCTAssertEqual(try r.doubleAttribute("x"), [2, 3])
        XCTAssertThrowsError(try r.readInt64s("a/b"))
        XCTAssertThrowsError(try r.readDoubles("missing")) { error in
            XCTAssertEqual((error as? HDF5Error)?.object, "missing")
        }
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let m = try HDF5File(image: bytes, name: "member.h5")
        XCTAssertEqual(try m.readDoubles("a/b").values, [1.5, -2, .pi, 1e-300])
        XCTAssertThrowsError(try HDF5File(image: Array(bytes.prefix(bytes.count / 2)), name: "cut.h5"))
    }

    func testTruncatedAndMissingFilesAreClearErrors() throws {
        let dir = try makeTemporaryDirectory(self)
        XCTAssertThrowsError(try HDF5File(readingAt: dir.appendingPathComponent("nope.h5").path)) { error in
            XCTAssertTrue("\(error)".contains("nope.h5"))
        }
        let junk = dir.appendingPathComponent("junk.h5")
        try Data("not hdf5".utf8).write(to: junk)
        XCTAssertThrowsError(try HDF5File(readingAt: junk.path))
    }

    /// Files from outside are parsed in a child process: damaged files on which libhdf5 1.10
    /// segfaults (fuzz findings) are errors naming the file and object, and this process lives on.
    func testLibraryCrashesOnDamagedFilesAreErrors() throws {
        let dock = Fixtures.url("fuzz/dock-hdf5/crash-hdf5-segv-in-H5F__accum_read")
        // As a file on disk and as an archive member's in-memory image.
        let member = "data.tar:s/hamiltonian.h5"
        for (name, open) in [(dock.path, { try HDF5File(readingAt: dock.path) }),
                             (member, { try HDF5File(image: [UInt8](try Data(contentsOf: dock)), name: member) })] {
            XCTAssertThrowsError(try open()) { error in
                let e = error as? HDF5Error
                XCTAssertEqual(e?.file, name)
                XCTAssertEqual(e?.object, "/")
                XCTAssertEqual(e?.message, "HDF5 library crashed (SIGSEGV) while reading it: the file is damaged")
            }
        }
        let legacy = Fixtures.url("fuzz/legacy-hdf5/crash-hdf5-segv-in-H5F__accum_read")
        XCTAssertThrowsError(try HDF5File(readingAt: legacy.path)) { error in
            XCTAssertTrue("\(error)".hasPrefix("\(legacy.path): /: HDF5 library crashed (SIGSEGV)"), "\(error)")
        }
    }

    /// The child's walk is bounded: groups nested deeper than the limit are refused, naming where.
    func testDeeplyNestedGroupsAreRefused() throws {
        let path = try makeTemporaryDirectory(self).appendingPathComponent("deep.h5").path
        do {
            let f = try HDF5File(creatingAt: path)
            try f.createGroup(Array(repeating: "g", count: 70).joined(separator: "/"))
            try f.write("ok", doubles: [1], shape: [1])
        }
        XCTAssertThrowsError(try HDF5File(readingAt: path)) { error in
            XCTAssertTrue("\(error)".contains("groups nested more than 64 deep"), "\(error)")
            XCTAssertTrue("\(error)".hasPrefix(path), "\(error)")
        }
    }

    /// The snapshot answers every read as libhdf5 in this process does: values, shapes, kinds,
    /// attributes, and the same messages for what is missing or of the wrong kind.
    func testSnapshotReadsMatchTheLibrary() throws {
        let dir = try makeTemporaryDirectory(self)
        let path = dir.appendingPathComponent("t.h5").path
        do {
            let f = try HDF5File(creatingAt: path)
            try f.write("g/h/d", doubles: [1, 2, 3, 4, 5, 6], shape: [2, 3])
            try f.write("f32", floats: [0.1, -3e38], shape: [2])
            try f.write("i", int64s: [Int64.min, 7], shape: [2])
            try f.write("s", string: "x")
            try f.write("empty", doubles: [], shape: [0, 4])
            try f.setAttribute("a", doubles: [1, 2], on: "g")
            try f.setAttribute("t", string: "text", on: "g/h/d")
        }
        let snapshot = try HDF5File(readingAt: path), library = try HDF5File(readingOwnArtifactAt: path)
        func same<T: Equatable>(_ read: (HDF5File) throws -> T, _ label: String) {
            let a = Result { try read(snapshot) }, b = Result { try read(library) }
            switch (a, b) {
            case (.success(let x), .success(let y)): XCTAssertEqual(x, y, label)
            case (.failure(let x), .failure(let y)): XCTAssertEqual("\(x)", "\(y)", label)
            default: XCTFail("\(label): snapshot \(a), library \(b)")
            }
        }
        for name in ["g/h/d", "/g/h/d", "f32", "i", "s", "empty", "g", "missing", "g/missing"] {
            same({ try $0.readDoubles(name).values }, "doubles \(name)")
            same({ try $0.readDoubles(name).shape }, "shape \(name)")
            same({ try $0.readFloats(name).values }, "floats \(name)")
            same({ try $0.readInt64s(name).values }, "int64s \(name)")
            same({ try $0.readStrings(name).values }, "strings \(name)")
            same({ try $0.datasetInfo(name).shape }, "info \(name)")
            same({ try "\($0.datasetInfo(name).kind)" }, "kind \(name)")
            same({ $0.exists(name) }, "exists \(name)")
            same({ try $0.memberNames(of: name) }, "members \(name)")
            same({ try $0.attributeNames(of: name) }, "attributes \(name)")
            for a in ["a", "t", "nope"] {
                same({ try $0.doubleAttribute(a, of: name) }, "double attribute \(a) of \(name)")
                same({ try $0.stringAttribute(a, of: name) }, "string attribute \(a) of \(name)")
            }
        }
        same({ try $0.readString("s") }, "string s")
        same({ try $0.memberNames() }, "root members")
    }

    /// Listing a group costs libhdf5 work linear in its members. Counted, not timed: libhdf5's
    /// metadata-cache operations while listing the root group of n and 4n datasets (the
    /// symbol-table group DeepH legacy files have, one dataset per block). Listing member by member
    /// (H5Lget_name_by_idx walks the B-tree from its start each time) made that ratio ~16 and a
    /// legacy file of 86 020 blocks take minutes; one H5Literate pass gives ~4 or less.
    func testListingManyMembersIsLinearInLibraryWork() throws {
        let dir = try makeTemporaryDirectory(self)
        func cacheOperations(members n: Int) throws -> Int {
            let path = dir.appendingPathComponent("m\(n).h5").path
            let names = (0 ..< n).map { "[0, 0, \($0 / 7), \($0 % 7 + 1), 1]" }
            do {
                let f = try HDF5File(creatingAt: path)
                for name in names { try f.write(name, doubles: [1], shape: [1, 1]) }
            }
            let log = dir.appendingPathComponent("m\(n).log").path
            do {
                let f = try HDF5File(readingInProcessAt: path, metadataCacheLog: log)
                XCTAssertEqual(try f.memberNames(), names.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) })
            }
            let text = try String(contentsOfFile: log, encoding: .utf8)
            return text.split(separator: "\n").filter { $0.contains("\"action\":\"protect\"") }.count
        }
        let small = try cacheOperations(members: 300), large = try cacheOperations(members: 1200)
        XCTAssertGreaterThan(small, 0, "no metadata-cache operations logged")
        XCTAssertLessThan(Double(large), 6 * Double(small), "listing 4× the members cost \(large) vs \(small) cache operations")
    }
}
