// The `refine` stage kind through the real runner: it consumes a `train` stage's artifact, so
// changing only stage-2 parameters re-runs refine and never train; `predict` reads its output.
import Foundation
import HarmoSECLI
@testable import Pipeline
@testable import StageAPI
import TestSupport
import XCTest

final class RefinePipelineTests: XCTestCase {
    func project(mode: String) throws -> URL {
        let root = try makeTemporaryDirectory(self)
        try FileManager.default.copyItem(at: Fixtures.url("training"), to: root.appendingPathComponent("data"))
        try """
        {"epochs": 1, "batch_size": 2, "learning_rate": 0.01, "split": [0.75, 0.25, 0], "seed": 3,
         "model": {"irreps": "4x0e+2x1o+2x2e+1x3o+1x4e", "layers": 1, "radial_count": 4, "radial_hidden": 8}}
        """.write(to: root.appendingPathComponent("train.json"), atomically: true, encoding: .utf8)
        try write(root, mode: mode)
        return root
    }

    func write(_ root: URL, mode: String) throws {
        try """
        {
          "version": 1,
          "stages": {
            "train": {"kind": "train", "inputs": {"data": "data", "config": "train.json"}},
            "refine": {"kind": "refine", "inputs": {"model": {"stage": "train"}, "data": "data"},
                       "params": {"mode": "\(mode)", "epochs": 2, "width": 8, "heads": 2, "layers": 1, "feed_forward": 8,
                                  "radial_count": 4, "sh_lmax": 3}}
          }
        }
        """.write(to: root.appendingPathComponent("pipeline.json"), atomically: true, encoding: .utf8)
    }

    func run(_ root: URL) throws -> RunSummary {
        let spec = try PipelineSpec.load(from: root.appendingPathComponent("pipeline.json"), registry: StageKinds.registry())
        let runner = PipelineRunner(spec: spec, outputs: root.appendingPathComponent("outputs"), toolVersion: "test",
                                    console: RunConsole(isTerminal: false) { _ in })
        return try runner.run(RunOptions())
    }

    func testChangingOnlyStage2ParametersNeverRetrainsStage1() throws {
        let root = try project(mode: "empirical")
        let first = try run(root)
        XCTAssertTrue(first.succeeded, "\(first.failed)")
        XCTAssertEqual(Set(first.executed), ["train", "refine"])
        let outputs = root.appendingPathComponent("outputs")
        let stage1 = try Data(contentsOf: outputs.appendingPathComponent("train/latest/best.h5"))
        let manifest = try JSONValue.parse(Data(contentsOf: outputs.appendingPathComponent("refine/latest/manifest.json")))
        XCTAssertEqual(manifest["metrics"]?["epochs_run"], 2)

        XCTAssertTrue(try run(root).executed.isEmpty, "nothing changed")
        try write(root, mode: "strict")
        let third = try run(root)
        XCTAssertTrue(third.succeeded, "\(third.failed)")
        XCTAssertEqual(third.executed, ["refine"])
        XCTAssertEqual(try Data(contentsOf: outputs.appendingPathComponent("train/latest/best.h5")), stage1)
        let metrics = try String(contentsOf: outputs.appendingPathComponent("refine/latest/metrics.json"), encoding: .utf8)
        XCTAssertTrue(metrics.contains("\"mode\": \"strict\"") && metrics.contains("\"kind\": \"hybrid\""), metrics)
    }

    /// train's `features` input accepts only a features stage: anything else is a validation
    /// error naming the stage and the input.
    func testTrainFeaturesInputMustBeAFeaturesStage() throws {
        let root = try project(mode: "strict")
        try """
        {"version": 1, "stages": {
          "s1": {"kind": "train", "inputs": {"data": "data"}},
          "s2": {"kind": "train", "inputs": {"data": "data", "features": {"stage": "s1"}}}}}
        """.write(to: root.appendingPathComponent("pipeline.json"), atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try PipelineSpec.load(from: root.appendingPathComponent("pipeline.json"), registry: StageKinds.registry())) {
            XCTAssertTrue("\($0)".contains("s2") && "\($0)".contains("features") && "\($0)".contains("'train'"), "\($0)")
        }
    }
}
