import Foundation
@testable import HarmoSECLI
@testable import Pipeline
@testable import StageAPI
import TestSupport
import XCTest

final class EvalCommandTests: XCTestCase {
    private let mote2 = Fixtures.path("peer/deeph-dock/MoTe2")

    /// A prediction folder holding MoTe2's own DFT Hamiltonian as hamiltonian_pred.h5.
    private func predictions() throws -> URL {
        let root = try makeTemporaryDirectory(self).appendingPathComponent("pred")
        try FileManager.default.createDirectory(at: root.appendingPathComponent("MoTe2"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "\(mote2)/hamiltonian.h5", toPath: root.appendingPathComponent("MoTe2/hamiltonian_pred.h5").path)
        return root
    }

    func testEvalParsesRunsAndWritesOutputs() throws {
        let pred = try predictions()
        let out = try makeTemporaryDirectory(self).appendingPathComponent("eval")
        let command = try HarmoSECommand.parseAsRoot(["eval", "--pred", pred.path, "--ref", mote2, "--out", out.path,
                                                      "--bands-above", "2", "--kpoint-density", "10", "-q"]) as! EvalCommand
        XCTAssertEqual(command.options.bandsAbove, 2)
        XCTAssertEqual(command.options.overlapThreshold, 1e-3)
        let report = try command.execute()
        XCTAssertEqual(report.total.overall.maxAbs, 0)
        XCTAssertEqual(report.structures.first?.bands?.windowBands, 25)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out.path).sorted(), ["bands", "metrics.json", "parity.svg", "table.txt"])
        let metrics = try JSONValue.parse(try Data(contentsOf: out.appendingPathComponent("metrics.json")))
        XCTAssertEqual(metrics["options"]?["bands_above"], .int(2))
        XCTAssertEqual(metrics["bands"]?["mae_meV"], .double(0))

        let noFilter = try HarmoSECommand.parseAsRoot(["eval", "--pred", pred.path, "--ref", mote2, "--overlap-threshold", "0", "--no-bands"]) as! EvalCommand
        XCTAssertNil(noFilter.options.overlapThreshold)
        XCTAssertFalse(noFilter.options.computeBands)
    }

    func testAblationOptionWritesTables() throws {
        let pred = try predictions()
        let out = try makeTemporaryDirectory(self).appendingPathComponent("ablation")
        let command = try HarmoSECommand.parseAsRoot(["eval", "--ref", mote2, "--compare", "a=\(pred.path)", "--compare", "b=\(pred.path)",
                                                      "--no-bands", "--out", out.path]) as! EvalCommand
        let table = try command.executeAblation()
        XCTAssertEqual(table.rows.map(\.name), ["a", "b"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out.path).sorted(), ["ablation.json", "ablation.md"])
        XCTAssertTrue(table.markdown.contains("| a | 1 | 0.000 | 0.000 | – |"), table.markdown)
    }

    func testBadArgumentsAreRejected() {
        XCTAssertThrowsError(try HarmoSECommand.parseAsRoot(["eval", "--ref", mote2]))  // neither --pred nor --compare
        XCTAssertThrowsError(try HarmoSECommand.parseAsRoot(["eval", "--pred", "p", "--ref", mote2, "--compare", "a=p"]))
        XCTAssertThrowsError(try HarmoSECommand.parseAsRoot(["eval", "--ref", mote2, "--compare", "nameonly"]))
        XCTAssertThrowsError(try HarmoSECommand.parseAsRoot(["eval", "--ref", mote2, "--compare", "a=p", "--compare-rotated", "a=q"]))
        XCTAssertThrowsError(try HarmoSECommand.parseAsRoot(["eval", "--pred", "p", "--ref", mote2, "--bands-above", "-1"]))
        XCTAssertThrowsError(try HarmoSECommand.parseAsRoot(["eval", "--pred", "p"]))  // --ref is required
    }

    func testEvaluateStageRunsInAPipeline() throws {
        let root = try makeTemporaryDirectory(self)
        let pred = try predictions()
        let pipeline = """
        {"version": 1, "stages": {
          "evaluate": {"kind": "evaluate", "inputs": {"predictions": "\(pred.path)", "reference": "\(mote2)"},
                       "params": {"bands": false}}
        }}
        """
        let url = root.appendingPathComponent("pipeline.json")
        try pipeline.write(to: url, atomically: true, encoding: .utf8)
        XCTAssertNotNil(try StageKinds.registry().kind(named: "evaluate"))
        let spec = try PipelineSpec.load(from: url, registry: try StageKinds.registry())
        let runner = PipelineRunner(spec: spec, outputs: root.appendingPathComponent("outputs"), toolVersion: "test",
                                    console: RunConsole(isTerminal: false) { _ in })
        _ = try runner.run(RunOptions())
        let artifact = root.appendingPathComponent("outputs/evaluate/latest").resolvingSymlinksInPath()
        let metrics = try JSONValue.parse(try Data(contentsOf: artifact.appendingPathComponent("metrics.json")))
        XCTAssertEqual(metrics["hamiltonian"]?["overall"]?["mae_meV"], .double(0))
        XCTAssertTrue(FileManager.default.fileExists(atPath: artifact.appendingPathComponent("parity.svg").path))
    }
}
