import Foundation
import HDF5Kit
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
}
