// Shared test helpers: where fixtures live, temporary directories, numeric comparisons.
import Foundation
import XCTest

public enum Fixtures {
    /// Tests/Fixtures in the source tree (tests run from a checkout; fixtures are committed).
    public static let root: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")

    public static func url(_ relative: String) -> URL { root.appendingPathComponent(relative) }
    public static func path(_ relative: String) -> String { url(relative).path }

    /// The DeepH-dock water copies rotated by known Euler angles (peer/deeph-dock/h2o-rotated/N).
    public static func rotatedWater(_ copy: Int) -> URL { url("peer/deeph-dock/h2o-rotated/\(copy)") }

    /// The ZYZ Euler angles of rotated water copy `copy` (its `euler_angle` file).
    public static func rotatedWaterEulerAngles(_ copy: Int) throws -> [Double] {
        let file = rotatedWater(copy).appendingPathComponent("euler_angle")
        let values = try String(contentsOf: file, encoding: .utf8)
            .split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { Double($0) }
        guard values.count == 3 else {
            throw NSError(domain: "Fixtures", code: 1, userInfo: [NSLocalizedDescriptionKey: "\(file.path): expected 3 Euler angles, got \(values.count)"])
        }
        return values
    }
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

/// A small deterministic generator (SplitMix64) so random test inputs are the same on every run.
public struct SplitMix: RandomNumberGenerator {
    public var state: UInt64
    public init(state: UInt64) { self.state = state }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The `harmose` executable built beside the test bundle (`swift test` builds it), for tests that
/// must run it as a separate process (mpirun, kill -9, exit codes).
public func builtHarmoseExecutable() throws -> URL {
    var candidates: [URL] = []
    if let exe = Bundle.main.executableURL {
        var dir = exe.deletingLastPathComponent()
        for _ in 0 ..< 4 {
            candidates.append(dir.appendingPathComponent("harmose"))
            dir = dir.deletingLastPathComponent()
        }
    }
    for bundle in Bundle.allBundles where bundle.bundleURL.pathExtension == "xctest" {
        candidates.append(bundle.bundleURL.deletingLastPathComponent().appendingPathComponent("harmose"))
    }
    let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    candidates.append(packageRoot.appendingPathComponent(".build/debug/harmose"))
    if let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) { return found }
    throw NSError(domain: "TestSupport", code: 1, userInfo: [NSLocalizedDescriptionKey:
        "harmose binary not found (looked in \(candidates.map(\.path))); build it with `swift build`"])
}
