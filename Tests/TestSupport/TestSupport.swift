// Shared test helpers: where fixtures live, temporary directories, numeric comparisons.
import Foundation
import XCTest

public enum Fixtures {
    /// Tests/Fixtures in the source tree (tests run from a checkout; fixtures are committed).
    public static let root: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")

    public static func url(_ relative: String) -> URL { root.appendingPathComponent(relative) }
    public static func path(_ relative: String) -> String { url(relative).path }
}

/// A fresh temporary directory removed when the test case finishes.
public func makeTemporaryDirectory(_ testCase: XCTestCase, file: StaticString = #filePath, line: UInt = #line) throws -> URL {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("harmose-test-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    testCase.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url
}

/// Largest absolute difference between two equally long sequences.
public func maxAbsDifference<C1: Collection, C2: Collection>(_ a: C1, _ b: C2) -> Double
where C1.Element == Double, C2.Element == Double {
    precondition(a.count == b.count, "length mismatch \(a.count) vs \(b.count)")
    return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
}
