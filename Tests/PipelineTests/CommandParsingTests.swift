import ArgumentParser
import Foundation
@testable import HarmoSECLI
import Pipeline
import StageAPI
import TestSupport
import XCTest

/// `harmose run/status/gc` parsed the way the binary parses them.
final class CommandParsingTests: XCTestCase {
    func testRunOptions() throws {
        let run = try XCTUnwrap(HarmoSECommand.parseAsRoot(["run", "--pipeline", "p.json", "--outputs", "/tmp/o", "--only", "a", "--only", "b",
                                                             "--force", "c", "--dry-run", "-j", "3", "--no-wait", "-v"]) as? RunCommand)
        XCTAssertEqual(run.location.pipeline, "p.json")
        XCTAssertEqual(run.location.outputsURL.path, "/tmp/o")
        XCTAssertEqual(run.only, ["a", "b"])
        XCTAssertEqual(run.force, ["c"])
        XCTAssertTrue(run.dryRun && run.noWait && run.verbose)
        XCTAssertEqual(run.jobs, 3)

        let defaults = try XCTUnwrap(HarmoSECommand.parseAsRoot(["run"]) as? RunCommand)
        XCTAssertEqual(defaults.location.outputsURL, URL(fileURLWithPath: "pipeline.json").standardizedFileURL
            .deletingLastPathComponent().appendingPathComponent("outputs"), "outputs/ beside the pipeline file")
        XCTAssertEqual(defaults.jobs, ProcessInfo.processInfo.activeProcessorCount)
    }

    func testInvalidCombinationsAreRejected() {
        XCTAssertThrowsError(try HarmoSECommand.parseAsRoot(["run", "--jobs", "0"]))
        XCTAssertThrowsError(try HarmoSECommand.parseAsRoot(["run", "--only", "a", "--until", "b"]))
        XCTAssertThrowsError(try HarmoSECommand.parseAsRoot(["gc", "--keep", "0"]))
        XCTAssertThrowsError(try HarmoSECommand.parseAsRoot(["status", "--bogus"]))
    }

    func testStatusAndGC() throws {
        let status = try XCTUnwrap(HarmoSECommand.parseAsRoot(["status", "--json", "--pipeline", "x/pipeline.json"]) as? StatusCommand)
        XCTAssertTrue(status.json)
        XCTAssertEqual(status.location.outputsURL.lastPathComponent, "outputs")
        XCTAssertEqual(status.location.outputsURL.deletingLastPathComponent().lastPathComponent, "x")
        let gc = try XCTUnwrap(HarmoSECommand.parseAsRoot(["gc", "--keep", "3", "--dry-run"]) as? GCCommand)
        XCTAssertEqual(gc.keep, 3)
        XCTAssertTrue(gc.dryRun)
    }

    func testListKindsDescribesEveryParameter() {
        let text = describeKinds(StageKinds.production)
        for kind in StageKinds.production {
            XCTAssertTrue(text.contains("\(kind.name) (artifact format \(kind.artifactVersion))"), text)
            for p in kind.parameters { XCTAssertTrue(text.contains("    \(p.name): "), p.name) }
        }
        XCTAssertTrue(text.contains("cutoff: number = 0.0 in [0.0, ∞]"), text)
        XCTAssertTrue(text.contains("predictions: path or {\"stage\": …} of kind predict — "), text)
        XCTAssertTrue(text.contains("reference_bands: {\"stage\": …} of kind bands, optional — "), text)
    }
}
