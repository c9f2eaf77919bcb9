import Autograd
import Formats
import Foundation
import HDF5Kit
import Models
import StageAPI
import SO3
import Structures
import TestSupport
@testable import Training
import XCTest

enum Tiny {
    static var data: [URL] { [Fixtures.url("training")] }

    /// The tiny set's samples and the configuration a run would resolve for them (basis from the
    /// data, average neighbour count from the graphs).
    static func resolvedSamples() throws -> (TrainConfig, [Sample]) {
        var config = Tiny.config()
        let records = try Dataset.readRecords(Tiny.data)
        config.model.basis = try Dataset.basis(of: records)
        let samples = try Dataset.samples(records, config: config.model)
        config.model.avgNeighbors = Dataset.averageNeighbors(samples)
        return (config, samples)
    }

    static func config(epochs: Int = 3) -> TrainConfig {
        var c = TrainConfig()
        c.epochs = epochs
        c.batchSize = 2
        c.learningRate = 1e-2
        c.split = [0.75, 0.25, 0]
        c.seed = 3
        c.model.irreps = "4x0e+2x1o+2x2e+1x3o+1x4e"
        c.model.layers = 1
        c.model.radialCount = 4
        c.model.radialHidden = 8
        return c
    }

    /// The learning curve (it holds no wall-clock field: those are in timings.jsonl).
    static func curve(_ dir: URL) throws -> [[String: Double]] {
        let text = try String(contentsOf: dir.appendingPathComponent("learning_curve.jsonl"), encoding: .utf8)
        return try text.split(separator: "\n").map { line in
            let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            var out: [String: Double] = [:]
            for (k, v) in obj {
                XCTAssertFalse(k.contains("second"), "wall-clock field \(k) in the learning curve")
                out[k] = (v as? NSNumber)?.doubleValue
            }
            return out
        }
    }

    /// timings.jsonl: one object per epoch.
    static func timings(_ dir: URL) throws -> [[String: Double]] {
        let text = try String(contentsOf: dir.appendingPathComponent("timings.jsonl"), encoding: .utf8)
        return try text.split(separator: "\n").map { line in
            let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            return obj.compactMapValues { ($0 as? NSNumber)?.doubleValue }
        }
    }

    static func bytes(_ dir: URL, _ name: String) throws -> Data { try Data(contentsOf: dir.appendingPathComponent(name)) }

    static func parameters(_ file: URL) throws -> [String: [Float]] {
        let config = try ModelConfigPart.read(file.path)
        let model = try HamiltonianModel<Float>(config: config)
        try Checkpoint.load(from: file.path, parts: ["model": model.parameters])
        return Dictionary(uniqueKeysWithValues: model.parameters.tensors.map { ($0.name, $0.data) })
    }
}

final class TrainingLoopTests: XCTestCase {
    func testLossDecreasesOnATinySet() throws {
        var c = Tiny.config(epochs: 12)
        c.split = [1, 0, 0]
        c.batchSize = 1
        c.learningRate = 2e-2
        c.earlyStoppingPatience = 0
        let dir = try makeTemporaryDirectory(self)
        let summary = try Trainer(config: c, outputDirectory: dir).run(data: Tiny.data)
        let curve = try Tiny.curve(dir)
        XCTAssertEqual(curve.count, 12)
        XCTAssertEqual(summary.epochsRun, 12)
        let first = curve.first!["train_loss"]!, last = curve.last!["train_loss"]!
        XCTAssertLessThan(last, 0.6 * first, "train loss \(first) → \(last)")
        for name in ["best.h5", "last.h5", "splits.json", "config.json", "metrics.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent(name).path), name)
        }
    }

    func testSeededRunIsReproducible() throws {
        let a = try makeTemporaryDirectory(self), b = try makeTemporaryDirectory(self)
        try Trainer(config: Tiny.config(), outputDirectory: a).run(data: Tiny.data)
        try Trainer(config: Tiny.config(), outputDirectory: b).run(data: Tiny.data)
        XCTAssertEqual(try Tiny.curve(a), try Tiny.curve(b))
        // Every file but timings.jsonl is the same bytes (no wall-clock value in any of them).
        let files = try FileManager.default.contentsOfDirectory(atPath: a.path).sorted()
        XCTAssertEqual(files, ["best.h5", "config.json", "last.h5", "learning_curve.jsonl", "learning_curve.svg", "metrics.json", "splits.json", "timings.jsonl"])
        for name in files where name != "timings.jsonl" { XCTAssertEqual(try Tiny.bytes(a, name), try Tiny.bytes(b, name), name) }
        let timings = try Tiny.timings(a)
        XCTAssertEqual(timings.map { $0["epoch"] }, [1, 2, 3])
        for t in timings {
            XCTAssertEqual(Set(t.keys), ["epoch", "epoch_seconds", "elapsed_seconds", "structures_per_second", "edges_per_second"])
            XCTAssertGreaterThan(t["epoch_seconds"]!, 0)
        }
        XCTAssertEqual(timings.map { $0["elapsed_seconds"]! }, timings.map { $0["elapsed_seconds"]! }.sorted())
        XCTAssertEqual(try Tiny.parameters(a.appendingPathComponent("last.h5")), try Tiny.parameters(b.appendingPathComponent("last.h5")))
        XCTAssertEqual(try Splits.read(a.appendingPathComponent("splits.json")), try Splits.read(b.appendingPathComponent("splits.json")))
        var other = Tiny.config()
        other.seed = 4
        let c = try makeTemporaryDirectory(self)
        try Trainer(config: other, outputDirectory: c).run(data: Tiny.data)
        XCTAssertNotEqual(try Tiny.curve(a), try Tiny.curve(c))
    }

    func testResumeEqualsUninterruptedRun() throws {
        let whole = try makeTemporaryDirectory(self), pieces = try makeTemporaryDirectory(self)
        try Trainer(config: Tiny.config(epochs: 4), outputDirectory: whole).run(data: Tiny.data)
        let first = Trainer(config: Tiny.config(epochs: 4), outputDirectory: pieces)
        first.stopAfterEpoch = 2
        try first.run(data: Tiny.data)
        XCTAssertEqual(try Tiny.curve(pieces).count, 2)
        try Trainer(config: Tiny.config(epochs: 4), outputDirectory: pieces).run(data: Tiny.data, resume: true)
        XCTAssertEqual(try Tiny.curve(whole), try Tiny.curve(pieces))
        XCTAssertEqual(try Tiny.parameters(whole.appendingPathComponent("last.h5")), try Tiny.parameters(pieces.appendingPathComponent("last.h5")))
        XCTAssertEqual(try Tiny.parameters(whole.appendingPathComponent("best.h5")), try Tiny.parameters(pieces.appendingPathComponent("best.h5")))
        // The resumed run's files are the uninterrupted run's bytes; its timings cover epochs 1…4.
        for name in ["last.h5", "best.h5", "learning_curve.jsonl", "metrics.json", "splits.json", "config.json"] {
            XCTAssertEqual(try Tiny.bytes(whole, name), try Tiny.bytes(pieces, name), name)
        }
        XCTAssertEqual(try Tiny.timings(pieces).map { $0["epoch"] }, [1, 2, 3, 4])
    }

    /// `max_seconds` counts the training time before a resume: it is read from timings.jsonl
    /// (the checkpoints hold no time). A first session that "took" 1000 s (its record edited to
    /// say so) leaves a resumed run with a 500 s budget one epoch: the budget is checked after it.
    func testResumeCountsEarlierTrainingTimeFromTimings() throws {
        let dir = try makeTemporaryDirectory(self)
        var c = Tiny.config(epochs: 6)
        c.earlyStoppingPatience = 0
        let first = Trainer(config: c, outputDirectory: dir)
        first.stopAfterEpoch = 2
        try first.run(data: Tiny.data)
        let url = dir.appendingPathComponent("timings.jsonl")
        let lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 2)
        try (lines[0] + "\n" + lines[1].replacingOccurrences(of: #""elapsed_seconds": [0-9.e+-]+"#, with: "\"elapsed_seconds\": 1000", options: .regularExpression) + "\n")
            .write(to: url, atomically: true, encoding: .utf8)
        c.maxSeconds = 500
        let resumed = try Trainer(config: c, outputDirectory: dir).run(data: Tiny.data, resume: true)
        XCTAssertEqual(resumed.epochsRun, 3)
        XCTAssertTrue(resumed.stoppedEarly)
        let timings = try Tiny.timings(dir)
        XCTAssertEqual(timings.map { $0["epoch"] }, [1, 2, 3])
        XCTAssertGreaterThan(timings[2]["elapsed_seconds"]!, 1000)
        // Without the edit the same resume trains to the end.
        let other = try makeTemporaryDirectory(self)
        let again = Trainer(config: c, outputDirectory: other)
        again.stopAfterEpoch = 2
        try again.run(data: Tiny.data)
        XCTAssertEqual(try Trainer(config: c, outputDirectory: other).run(data: Tiny.data, resume: true).epochsRun, 6)
    }

    func testResumeWithoutCheckpointFails() throws {
        let dir = try makeTemporaryDirectory(self)
        XCTAssertThrowsError(try Trainer(config: Tiny.config(), outputDirectory: dir).run(data: Tiny.data, resume: true)) {
            XCTAssertTrue("\($0)".contains("last.h5"), "\($0)")
        }
    }
}

final class TrainingPiecesTests: XCTestCase {
    func testSplitsAreSeededAndCoverEveryStructure() {
        let names = (0 ..< 20).map { "s\($0)" }
        let a = Splits.make(names: names, fractions: [0.8, 0.1, 0.1], seed: 1)
        XCTAssertEqual(a, Splits.make(names: names.reversed(), fractions: [0.8, 0.1, 0.1], seed: 1))
        XCTAssertEqual([a.train.count, a.validation.count, a.test.count], [16, 2, 2])
        XCTAssertEqual(Set(a.train + a.validation + a.test), Set(names))
        XCTAssertNotEqual(a, Splits.make(names: names, fractions: [0.8, 0.1, 0.1], seed: 2))
        let two = Splits.make(names: ["a", "b"], fractions: [0.8, 0.1, 0.1], seed: 1)
        XCTAssertEqual([two.train.count, two.validation.count], [1, 1])
    }

    func testLossesMatchHandComputation() throws {
        var config = Tiny.config().model
        config.basis = ["H": [0]]
        let s = Structure(lattice: Lattice(vectors: [Vec3(9, 0, 0), Vec3(0, 9, 0), Vec3(0, 0, 9)], periodic: [false, false, false]),
                          atomicNumbers: [1, 1], positions: [Vec3(0, 0, 0), Vec3(0.74, 0, 0)], basis: [1: OrbitalShells([0])])
        let keys = [BlockKey(0, 0, 0, 0, 0), BlockKey(0, 0, 0, 0, 1), BlockKey(0, 0, 0, 1, 0), BlockKey(0, 0, 0, 1, 1)]
        var h = BlockOperator()
        for (k, key) in keys.enumerated() where k != 2 { h.append(key, rows: 1, cols: 1, values: [Double(k) - 0.5]) }  // (1,0) missing: masked
        let model = try HamiltonianModel<Double>(config: { var c = config; c.avgNeighbors = 1; return c }())
        let graph = try StructureGraph(name: "h2", structure: s, keys: keys, config: model.config)
        let batch = try GraphBatch<Double>([graph], config: model.config)
        let sample = Sample(graph: graph, target: h)
        let targets = try BatchTargets(batch, samples: [sample])
        XCTAssertEqual(targets.entryCount, 3)
        let out = try model(batch)
        let preds = try model.predictOperators(batch)[0]
        var diffs: [Double] = []
        for (k, key) in keys.enumerated() where k != 2 { diffs.append(preds.values(for: key)!.first! - (Double(k) - 0.5)) }
        let mse = try batchLoss(out, targets, kind: .mse, huberDelta: 0.1, normalizeBy: nil)
        XCTAssertEqual(mse.loss.item, diffs.map { $0 * $0 }.reduce(0, +) / 3, accuracy: 1e-12)
        let mae = try batchLoss(out, targets, kind: .mae, huberDelta: 0.1, normalizeBy: nil)
        XCTAssertEqual(mae.loss.item, diffs.map(abs).reduce(0, +) / 3, accuracy: 1e-12)
        let delta = 0.1
        let huber = try batchLoss(out, targets, kind: .huber, huberDelta: delta, normalizeBy: nil)
        let expected = diffs.map { abs($0) < delta ? 0.5 * $0 * $0 : delta * (abs($0) - 0.5 * delta) }.reduce(0, +) / 3
        XCTAssertEqual(huber.loss.item, expected, accuracy: 1e-12)
        XCTAssertEqual(mse.absSum, diffs.map(abs).reduce(0, +), accuracy: 1e-12)
    }

    func testBadConfigNamesFileAndKey() throws {
        let dir = try makeTemporaryDirectory(self)
        let url = dir.appendingPathComponent("bad.json")
        try #"{"epochs": 0}"#.write(to: url, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try TrainConfig.load(url)) { XCTAssertTrue("\($0)".contains("bad.json") && "\($0)".contains("epochs"), "\($0)") }
        try #"{"model": {"layers": "three"}}"#.write(to: url, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try TrainConfig.load(url)) { XCTAssertTrue("\($0)".contains("model.layers"), "\($0)") }
        try #"{"loss": "l3"}"#.write(to: url, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try TrainConfig.load(url)) { XCTAssertTrue("\($0)".contains("loss"), "\($0)") }
    }
}

final class PredictionTests: XCTestCase {
    func trainedModel() throws -> URL {
        let dir = try makeTemporaryDirectory(self)
        try Trainer(config: Tiny.config(epochs: 1), outputDirectory: dir).run(data: Tiny.data)
        return dir
    }

    func testPredictWritesDockFilesThatReadBack() throws {
        let run = try trainedModel()
        let out = try makeTemporaryDirectory(self).appendingPathComponent("pred")
        let predictor = try Predictor(checkpoint: run)
        let input = Fixtures.url("training/water-0001")
        let results = try predictor.predict(inputs: [input], outputDirectory: out)
        XCTAssertEqual(results.map(\.name), ["water-0001"])
        let folder = out.appendingPathComponent("water-0001")
        let pred = folder.appendingPathComponent("hamiltonian_pred.h5")
        XCTAssertTrue(FileManager.default.fileExists(atPath: pred.path))
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.appendingPathComponent("hamiltonian.h5").path))
        // Read back through Formats: the prediction under the reader's name.
        let check = try makeTemporaryDirectory(self).appendingPathComponent("check")
        try FileManager.default.copyItem(at: folder, to: check)
        try FileManager.default.moveItem(at: check.appendingPathComponent("hamiltonian_pred.h5"), to: check.appendingPathComponent("hamiltonian.h5"))
        let back = try FormatReader.readRecord(at: check)
        let original = try FormatReader.readRecord(at: input)
        // The electron count travels with the prediction; DFT results (homo_eV, …) do not.
        XCTAssertTrue(original.extraInfo.contains { $0.key == "homo_eV" })
        XCTAssertEqual(back.extraInfo.map(\.key), ["occupation"])
        XCTAssertEqual(back.extraInfo, original.extraInfo.filter { $0.key == "occupation" })
        let h = try XCTUnwrap(back.hamiltonian)
        XCTAssertEqual(Set(h.keys), Set(original.overlap!.keys))
        for (b, key) in h.keys.enumerated() {
            XCTAssertEqual(h.shape(at: b), SIMD2(original.structure.orbitalCount(ofAtom: key.i), original.structure.orbitalCount(ofAtom: key.j)))
        }
        let direct = try predictor.predict(original)
        for (b, key) in direct.keys.enumerated() {
            XCTAssertLessThan(maxAbsDifference(Array(direct.values(at: b)), Array(h.values(for: key)!)), 1e-12)
        }
        // Prediction needs no DFT Hamiltonian.
        var bare = original
        bare.hamiltonian = nil
        XCTAssertEqual(try predictor.predict(bare).entries, direct.entries)
    }

    func testPredictKeepsLegacyLayout() throws {
        let run = try trainedModel()
        let legacy = try makeTemporaryDirectory(self).appendingPathComponent("water-legacy")
        try FormatWriter.write(try FormatReader.readRecord(at: Fixtures.url("training/water-0002")), to: legacy, format: .deephLegacy)
        let out = try makeTemporaryDirectory(self)
        try Predictor(checkpoint: run.appendingPathComponent("best.h5")).predict(inputs: [legacy], outputDirectory: out)
        let folder = out.appendingPathComponent("water-legacy")
        XCTAssertTrue(FileManager.default.fileExists(atPath: folder.appendingPathComponent("hamiltonians_pred.h5").path))
        XCTAssertTrue(FileManager.default.fileExists(atPath: folder.appendingPathComponent("element.dat").path))
    }

    func testPredictedBlocksRotateWithTheStructure() throws {
        let predictor = try Predictor(checkpoint: try trainedModel())
        let record = try FormatReader.readRecord(at: Fixtures.url("training/water-0003"))
        let base = try predictor.predict(record)
        let r = Rotation(uniform: 0.12, 0.55, 0.83)
        var rotated = record
        rotated.structure.positions = record.structure.positions.map { r * $0 }
        let predicted = try predictor.predict(rotated)
        let expected = try OrbitalRotation.rotate(operator: base, structure: record.structure, rotation: r)
        let scale = expected.entries.map(abs).max()!
        XCTAssertLessThan(maxAbsDifference(predicted.entries, expected.entries) / scale, 1e-5)
    }

    func testMissingCheckpointIsReported() {
        XCTAssertThrowsError(try Predictor(checkpoint: URL(fileURLWithPath: "/nonexistent/best.h5"))) {
            XCTAssertTrue("\($0)".contains("/nonexistent/best.h5"), "\($0)")
        }
    }
}

final class StageKindTests: XCTestCase {
    func testTrainThenPredictStages() throws {
        let root = try makeTemporaryDirectory(self)
        let config = root.appendingPathComponent("config.json")
        try JSONEncoder().encode(Tiny.config(epochs: 1)).write(to: config)
        let train = TrainStageKind()
        let trainDir = root.appendingPathComponent("train")
        try FileManager.default.createDirectory(at: trainDir, withIntermediateDirectories: true)
        let params = StageParameters(Dictionary(uniqueKeysWithValues: train.parameters.map { ($0.name, $0.defaultValue!) }))
        let metrics = try train.run(StageContext(stageName: "train", parameters: params, inputs: ["data": Tiny.data, "config": [config]],
                                                 outputDirectory: trainDir, reporter: .discard))
        XCTAssertEqual(metrics["epochs_run"], .int(1))
        XCTAssertTrue(FileManager.default.fileExists(atPath: trainDir.appendingPathComponent("best.h5").path))

        let predict = PredictStageKind()
        let predDir = root.appendingPathComponent("pred")
        try FileManager.default.createDirectory(at: predDir, withIntermediateDirectories: true)
        let pparams = StageParameters(Dictionary(uniqueKeysWithValues: predict.parameters.map { ($0.name, $0.defaultValue!) }))
        let pm = try predict.run(StageContext(stageName: "predict", parameters: pparams,
                                              inputs: ["model": [trainDir], "data": [Fixtures.url("training")]],
                                              outputDirectory: predDir, partition: Partition(rank: 1, size: 2), reporter: .discard))
        XCTAssertEqual(pm["structures"], .int(2), "rank 1 of 2 predicts every second structure")
        let written = try FileManager.default.contentsOfDirectory(atPath: predDir.path).sorted()
        XCTAssertEqual(written, ["water-0001", "water-0003"])
    }
}

final class FeaturesStageTests: XCTestCase {
    func testFeaturesCacheHoldsEdgesAndHarmonics() throws {
        let kind = FeaturesStageKind()
        let dir = try makeTemporaryDirectory(self)
        let params = StageParameters(Dictionary(uniqueKeysWithValues: kind.parameters.map { ($0.name, $0.defaultValue!) }))
        let metrics = try kind.run(StageContext(stageName: "features", parameters: params, inputs: ["data": Tiny.data],
                                                outputDirectory: dir, reporter: .discard))
        XCTAssertEqual(metrics["structures"], .int(4))
        XCTAssertEqual(metrics["edges"], .int(24), "water: 6 directed off-site pairs each")
        let file = try HDF5File(readingAt: dir.appendingPathComponent("features.h5").path)
        XCTAssertEqual(try file.stringAttribute("name", of: "/1"), "water-0001")
        let y = try file.readDoubles("/1/edge_harmonics"), v = try file.readDoubles("/1/edge_vector")
        XCTAssertEqual(y.shape, [6, 25])
        XCTAssertEqual(v.shape, [6, 3])
        for e in 0 ..< 6 {   // component normalisation: Σ_m Y_lm² = 2l + 1, so the row sums to 25
            XCTAssertEqual(y.values[(e * 25) ..< (e * 25 + 25)].map { $0 * $0 }.reduce(0, +), 25, accuracy: 1e-10)
        }
    }
}
