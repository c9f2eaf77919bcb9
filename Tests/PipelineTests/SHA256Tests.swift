import Foundation
@testable import Pipeline
@testable import StageAPI
import TestSupport
import XCTest

final class SHA256Tests: XCTestCase {
    func testKnownVectors() {
        // FIPS 180-4 examples and the empty string.
        XCTAssertEqual(SHA256.hash(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hash("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(SHA256.hash(String(repeating: "a", count: 1_000_000)),
                       "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    func testIncrementalUpdatesMatchOneShotAtEveryBoundary() {
        let bytes = (0 ..< 300).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
        for length in [0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 128, 300] {
            let data = Array(bytes[0 ..< length])
            let whole = SHA256.hash(data)
            for split in [0, 1, length / 2, max(0, length - 1)] where split <= length {
                var h = SHA256()
                h.update(data[0 ..< split])
                h.update(data[split...])
                XCTAssertEqual(h.finalizeHex(), whole, "length \(length) split \(split)")
            }
        }
    }

    func testFileHashEqualsDataHash() throws {
        let dir = try makeTemporaryDirectory(self)
        let url = dir.appendingPathComponent("blob")
        let data = Data((0 ..< 3_000_001).map { UInt8(truncatingIfNeeded: $0 % 251) })
        try data.write(to: url)
        XCTAssertEqual(try SHA256.hashFile(atPath: url.path), SHA256.hash(data))
        XCTAssertThrowsError(try SHA256.hashFile(atPath: dir.appendingPathComponent("nope").path)) { error in
            XCTAssertTrue("\(error)".contains("nope"), "\(error)")
        }
    }
}
