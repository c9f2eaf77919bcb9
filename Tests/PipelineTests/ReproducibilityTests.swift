// Bit-reproducible runs (#13): the whole chain — ingest, features, bands, train, refine, predict,
// evaluate — run twice through the `harmose` binary with --jobs 2 (stages in worker processes, two
// at once) gives byte-identical artifacts: every file a kind wrote (checkpoints, learning curves,
// metrics.json included) is compared raw, byte for byte. Only the run record is left out —
// manifest.json, log.txt and timings.jsonl (`ArtifactStore.runRecordNames`: times, host,
// durations, seconds per epoch) — and the test checks that those are all it leaves out.
// Small parameters keep it to seconds.
import Foundation
@testable import Pipeline
@testable import StageAPI
import TestSupport
import XCTest

final class ReproducibilityTests: XCTestCase {
    func makeProject() throws -> URL {
        let root = try makeTemporaryDirectory(self)
        try FileManager.default.copyItem(at: Fixtures.url("training"), to: root.appendingPathComponent("data"))
        try """
        {"epochs": 2, "batch_size": 2, "learning_rate": 0.01, "split": [0.5, 0.25, 0.25], "seed": 5,
         "model": {"irreps": "4x0e+2x1o+2x2e+1x3o+1x4e", "layers": 1, "radial_count": 4, "radial_hidden": 8}}
        """.write(to: root.appendingPathComponent("train.json"), atomically: true, encoding: .utf8)
        try """
        {
          "version": 1,
          "stages": {
            "ingest": {"kind": "ingest", "inputs": {"dataset": "data"}},
            "features": {"kind": "features", "inputs": {"data": {"stage": "ingest"}, "config": "train.json"}},
            "bands": {"kind": "bands", "inputs": {"structures": {"stage": "ingest"}}},
            "train": {"kind": "train", "inputs": {"data": {"stage": "ingest"}, "config": "train.json", "features": {"stage": "features"}}},
            "refine": {"kind": "refine", "inputs": {"model": {"stage": "train"}, "data": {"stage": "ingest"}},
                       "params": {"mode": "strict", "epochs": 2, "width": 8, "heads": 2, "layers": 1, "feed_forward": 8,
                                  "radial_count": 4, "sh_lmax": 3}},
            "predict": {"kind": "predict", "inputs": {"model": {"stage": "refine"}, "data": {"stage": "ingest"}}},
            "evaluate": {"kind": "evaluate", "inputs": {"predictions": {"stage": "predict"}, "reference": {"stage": "ingest"},
                                                        "reference_bands": {"stage": "bands"}},
                         "params": {"parity_sample": 500}}
          }
        }
        """.write(to: root.appendingPathComponent("pipeline.json"), atomically: true, encoding: .utf8)
        return root
    }

    func harmose(_ args: [String], in dir: URL) throws -> ProcessResult {
        let process = Process()
        process.executableURL = try harmoseBinary()
        process.arguments = args
        process.currentDirectoryURL = dir
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        try process.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return ProcessResult(status: process.terminationStatus, output: String(decoding: o, as: UTF8.self), error: "")
    }

    /// Every file of every stage's latest version but the run record, by "<stage>/<relative path>";
    /// `skipped` collects the run-record files left out.
    func artifacts(_ outputs: URL, skipped: inout Set<String>) throws -> [String: Data] {
        var out: [String: Data] = [:]
        let store = ArtifactStore(root: outputs)
        for stage in store.storedStages() {
            guard let id = store.latestID(stage: stage) else { continue }
            let dir = store.artifactDirectory(stage: stage, id: id)
            for rel in try FileManager.default.subpathsOfDirectory(atPath: dir.path) {
                if ArtifactStore.runRecordNames.contains(rel) { skipped.insert("\(stage)/\(rel)"); continue }
                var isDir: ObjCBool = false
                let url = dir.appendingPathComponent(rel)
                if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir), !isDir.boolValue {
                    out["\(stage)/\(rel)"] = try Data(contentsOf: url)
                }
            }
        }
        return out
    }

    func testTwoRunsWithTwoJobsGiveByteIdenticalArtifacts() throws {
        let project = try makeProject()
        let a = project.appendingPathComponent("outputs-a"), b = project.appendingPathComponent("outputs-b")
        for outputs in [a, b] {
            let r = try harmose(["run", "--jobs", "2", "--outputs", outputs.path], in: project)
            XCTAssertEqual(r.status, 0, r.output)
        }
        var skipped = Set<String>()
        let first = try artifacts(a, skipped: &skipped), second = try artifacts(b, skipped: &skipped)
        let stages: Set<String> = ["ingest", "features", "bands", "train", "refine", "predict", "evaluate"]
        XCTAssertEqual(Set(first.keys.map { String($0.prefix { $0 != "/" }) }), stages)
        // Left out: the manifest and log of every stage, and the training stages' seconds per epoch.
        XCTAssertEqual(skipped, Set(stages.flatMap { ["\($0)/manifest.json", "\($0)/log.txt"] } + ["train/timings.jsonl", "refine/timings.jsonl"]))
        // The files that used to carry wall-clock values are compared like every other.
        for key in ["train/learning_curve.jsonl", "train/metrics.json", "train/best.h5", "train/last.h5",
                    "refine/learning_curve.jsonl", "refine/metrics.json", "refine/best.h5", "refine/last.h5"] {
            XCTAssertNotNil(first[key], key)
        }
        XCTAssertTrue(first.keys.contains { $0.hasSuffix(".h5") } && first.keys.contains { $0.hasSuffix(".json") })
        XCTAssertEqual(Set(first.keys), Set(second.keys))
        // The chain flows: train took its edge geometry from the features artifact.
        let trainLog = try String(contentsOf: a.appendingPathComponent("train/latest/log.txt"), encoding: .utf8)
        XCTAssertTrue(trainLog.contains("edge geometry from"), trainLog)
        let differing = first.keys.filter { first[$0] != second[$0] }.sorted()
        XCTAssertEqual(differing, [], "artifacts that differ between two identical runs")
        // Same fingerprints, so the same version folders.
        for stage in ArtifactStore(root: a).storedStages() {
            XCTAssertEqual(ArtifactStore(root: a).latestID(stage: stage), ArtifactStore(root: b).latestID(stage: stage), stage)
        }
    }
}
