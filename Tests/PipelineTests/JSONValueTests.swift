import Foundation
@testable import Pipeline
@testable import StageAPI
import XCTest

final class JSONValueTests: XCTestCase {
    func testParsesTypesExactly() throws {
        let v = try JSONValue.parse(#"{"a": 1, "b": 1.0, "c": true, "d": null, "e": "x\u00e9\ud83d\ude00\n", "f": [1, -2.5e3]}"#)
        XCTAssertEqual(v["a"], .int(1))
        XCTAssertEqual(v["b"], .double(1.0))
        XCTAssertEqual(v["c"], .bool(true))
        XCTAssertEqual(v["d"], .null)
        XCTAssertEqual(v["e"], .string("xé😀\n"))
        XCTAssertEqual(v["f"], .array([.int(1), .double(-2500)]))
        XCTAssertEqual(v.objectValue?.map(\.0), ["a", "b", "c", "d", "e", "f"], "file order kept")
    }

    func testCanonicalFormIsOrderIndependentAndRoundTrips() throws {
        let a = try JSONValue.parse(#"{"z": [1, 2.5, "q\"x"], "a": {"y": false, "b": null}}"#)
        let b = try JSONValue.parse(#"{"a": {"b": null, "y": false}, "z": [1, 2.5, "q\"x"]}"#)
        XCTAssertEqual(a.canonicalString, b.canonicalString)
        XCTAssertEqual(a.canonicalString, #"{"a":{"b":null,"y":false},"z":[1,2.5,"q\"x"]}"#)
        XCTAssertEqual(try JSONValue.parse(a.prettyString), a)
        XCTAssertEqual(try JSONValue.parse(JSONValue.double(0.1).canonicalString), .double(0.1))
        XCTAssertEqual(JSONValue.double(6).canonicalString, "6.0")
    }

    func testPythonStyleMatchesJSONDumps() {
        let v: JSONValue = .object([("b", .int(3)), ("a", .array([.double(-4), .double(0.5), .bool(false), .null])),
                                    ("s", .string("q\"\n")), ("e", .object([]))])
        // json.dumps({"b": 3, "a": [-4.0, 0.5, False, None], "s": "q\"\n", "e": {}})
        XCTAssertEqual(v.pythonStyleString, #"{"b": 3, "a": [-4.0, 0.5, false, null], "s": "q\"\n", "e": {}}"#)
    }

    func testSyntaxErrorsHaveLineAndColumn() {
        let cases: [(String, Int, Int, String)] = [
            ("{\n  \"a\": 1,\n  \"a\": 2\n}", 3, 3, "duplicate key"),
            ("{\n  \"a\": 1\n  \"b\": 2\n}", 3, 3, "expected ',' or '}'"),
            ("[1, 2,]", 1, 7, "expected a value"),
            ("{\"a\": 01}", 1, 7, "leading zeros"),
            ("{\"a\": tru}", 1, 7, "invalid literal"),
            ("{\"a\": \"x", 1, 7, "unterminated string"),
            ("{} x", 1, 4, "unexpected text"),
        ]
        for (text, line, column, fragment) in cases {
            XCTAssertThrowsError(try JSONValue.parse(text), text) { error in
                guard let e = error as? JSONSyntaxError else { return XCTFail("\(error)") }
                XCTAssertEqual(e.line, line, "\(text): \(e)")
                XCTAssertEqual(e.column, column, "\(text): \(e)")
                XCTAssertTrue(e.message.contains(fragment), "\(text): \(e)")
            }
        }
    }
}
