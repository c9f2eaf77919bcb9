import Foundation
import HarmoSECLI
import TestSupport
import XCTest

final class RefineCommandTests: XCTestCase {
    func testParsing() throws {
        let c = try HarmoSECommand.parseAsRoot(["refine", "--stage1", "runs/s1", "--mode", "strict", "data/a", "data/b", "--out", "runs/h"]) as! RefineCommand
        XCTAssertEqual(c.stage1, "runs/s1")
        XCTAssertEqual(c.mode, "strict")
        XCTAssertEqual(c.data, ["data/a", "data/b"])
        XCTAssertEqual(c.out, "runs/h")
        XCTAssertNil(c.config)
        XCTAssertThrowsError(try HarmoSECommand.parseAsRoot(["refine", "--stage1", "s", "--mode", "loose", "d", "--out", "o"])) {
            XCTAssertTrue(HarmoSECommand.message(for: $0).contains("empirical or strict"), HarmoSECommand.message(for: $0))
        }
        XCTAssertThrowsError(try HarmoSECommand.parseAsRoot(["refine", "--stage1", "s", "--out", "o"]))
        let p = try HarmoSECommand.parseAsRoot(["bench-stage2", "predict", "--model", "m", "in", "--out", "o"]) as! BenchStage2Command.Predict
        XCTAssertEqual(p.inputs, ["in"])
    }

    func testMissingStage1NamesThePath() throws {
        let dir = try makeTemporaryDirectory(self)
        let missing = dir.appendingPathComponent("no-such-run").path
        let c = try HarmoSECommand.parseAsRoot(["refine", "--stage1", missing, "-q", dir.path, "--out", dir.appendingPathComponent("h").path]) as! RefineCommand
        XCTAssertThrowsError(try c.run()) { XCTAssertTrue("\($0)".contains(missing), "\($0)") }
    }
}
