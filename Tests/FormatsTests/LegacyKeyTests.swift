import Structures
import XCTest
@testable import Formats

/// The byte-level parse of DeepH legacy block keys (the fast path taken for every block of a
/// large file) must decide exactly as the general parse: same key, or both reject.
final class LegacyKeyTests: XCTestCase {
    /// The general parse alone (trim, split on ',', Int of each field, the same bounds).
    private func general(_ text: String) -> BlockKey? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard trimmed.hasPrefix("["), trimmed.hasSuffix("]") else { return nil }
        let parts = trimmed.dropFirst().dropLast().split(separator: ",", omittingEmptySubsequences: false)
        let v = parts.compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 5, v.count == 5, v[0 ..< 3].allSatisfy({ (-maxShift ... maxShift).contains($0) }),
              v[3] > Int.min, v[4] > Int.min else { return nil }
        return BlockKey(v[0], v[1], v[2], v[3] - 1, v[4] - 1)
    }

    func testCanonicalParseAgreesWithTheGeneralParse() {
        var rng = SystemRandomNumberGenerator()
        let fixed = ["[0, 0, 0, 1, 1]", "[-1, 2, 0, 3, 12]", "[0,0,0,1,2]", "[1048576, 0, 0, 1, 1]",
                     "[1048577, 0, 0, 1, 1]", "[-0, 0, 0, 0, 0]", "[0, 0, 0, 1]", "[0, 0, 0, 1, 1, 1]",
                     "[0, 0, 0, 1, 1 ]", "[0,  0, 0, 1, 1]", "[0, 0, 0, 1, -]", "[0, 0, 0, 1, 1234567890]",
                     "[+1, 0, 0, 1, 1]", "[0, 0, 0, 1, 1", "0, 0, 0, 1, 1]", "[]", "[0, 0, 0, 1, 1]x"]
        var cases = fixed
        let pieces = ["0", "1", "-1", "12", "-7", "999999999", "1048576", "-1048577", " ", "", "-", "+3", "1e3"]
        for _ in 0 ..< 5000 {
            let count = Int.random(in: 3 ... 6, using: &rng)
            let fields = (0 ..< count).map { _ in pieces.randomElement(using: &rng)! }
            let separator = [",", ", ", " ,", ",,"].randomElement(using: &rng)!
            cases.append("[" + fields.joined(separator: separator) + "]")
        }
        for text in cases {
            let fast = DeepHLegacy.parseCanonicalKey(text)
            let expected = general(text)
            if let fast { XCTAssertEqual(fast, expected, text) }
            XCTAssertEqual(DeepHLegacy.parseKey(text), expected, text)
        }
        XCTAssertEqual(DeepHLegacy.parseKey("[-1, 2, 0, 3, 12]"), BlockKey(-1, 2, 0, 2, 11))
        XCTAssertNotNil(DeepHLegacy.parseCanonicalKey("[-1, 2, 0, 3, 12]"), "the canonical form must take the fast path")
    }
}
