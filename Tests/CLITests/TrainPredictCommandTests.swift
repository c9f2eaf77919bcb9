import Foundation
@testable import HarmoSECLI
import TestSupport
import XCTest

final class TrainPredictCommandTests: XCTestCase {
    func testTrainThenPredictFromParsedArguments() throws {
        let dir = try makeTemporaryDirectory(self)
        let config = dir.appendingPathComponent("tiny.json")
        try #"{"epochs": 1, "batch_size": 2, "model": {"irreps": "4x0e+2x1o+2x2e+1x3o+1x4e", "layers": 1, "radial_count": 4, "radial_hidden": 4}}"#
            .write(to: config, atomically: true, encoding: .utf8)
        let data = Fixtures.path("training")
        let run = dir.appendingPathComponent("run").path
        let train = try HarmoSECommand.parseAsRoot(["train", "--config", config.path, data, "--out", run, "--quiet"]) as! TrainCommand
        XCTAssertFalse(train.resume)
        try train.run()
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(run)/best.h5"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(run)/learning_curve.svg"))
        let resume = try HarmoSECommand.parseAsRoot(["train", "--config", config.path, data, "--out", run, "--resume", "-q"]) as! TrainCommand
        XCTAssertTrue(resume.resume)

        let out = dir.appendingPathComponent("pred").path
        let predict = try HarmoSECommand.parseAsRoot(["predict", "--model", run, "\(data)/water-0000", "--out", out, "-q"]) as! PredictCommand
        try predict.run()
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(out)/water-0000/hamiltonian_pred.h5"))
    }

    func testMissingArgumentsAreUsageErrors() {
        XCTAssertThrowsError(try HarmoSECommand.parseAsRoot(["train", "--config", "c.json", "--out", "x"]))
        XCTAssertThrowsError(try HarmoSECommand.parseAsRoot(["predict", "--model", "m.h5", "in"]))
    }
}
