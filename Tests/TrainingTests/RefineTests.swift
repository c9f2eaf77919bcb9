import Autograd
import Formats
import Foundation
import HDF5Kit
import Models
import StageAPI
import Structures
import TestSupport
@testable import Training
import XCTest

final class RefineTests: XCTestCase {
    /// A stage-1 run on the tiny fixture set (one epoch: refine only needs a checkpoint).
    func stage1(_ dir: URL) throws -> URL {
        let out = dir.appendingPathComponent("stage1")
        try Trainer(config: Tiny.config(epochs: 2), outputDirectory: out).run(data: Tiny.data)
        return out
    }

    func refineConfig(_ mode: Stage2Mode, epochs: Int = 6) -> RefineConfig {
        var c = RefineConfig()
        c.epochs = epochs
        c.batchSize = 2
        c.learningRate = 5e-3
        c.stage2.mode = mode
        c.stage2.width = 8; c.stage2.heads = 2; c.stage2.layers = 1; c.stage2.feedForward = 8; c.stage2.radialCount = 4
        c.stage2.shLmax = 4
        return c
    }

    func testRefineKeepsStage1AndImprovesOnTrainingSet() throws {
        let dir = try makeTemporaryDirectory(self)
        let s1 = try stage1(dir)
        let before = try Tiny.parameters(s1.appendingPathComponent("best.h5"))
        let out = dir.appendingPathComponent("hybrid")
        let refiner = Refiner(config: refineConfig(.strict), stage1: s1, outputDirectory: out)
        let summary = try refiner.run(data: Tiny.data)
        XCTAssertEqual(summary.epochsRun, 6)
        for name in ["best.h5", "last.h5", "learning_curve.jsonl", "metrics.json", "config.json", "splits.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent(name).path), name)
        }
        XCTAssertEqual(try Splits.read(out.appendingPathComponent("splits.json")), try Splits.read(s1.appendingPathComponent("splits.json")))
        // Stage 1 inside the hybrid checkpoint is bit-identical to the train artifact.
        let hybridPath = out.appendingPathComponent("best.h5").path
        XCTAssertEqual(try HybridCheckpoint.kind(hybridPath), .hybrid)
        XCTAssertEqual(try HybridCheckpoint.kind(s1.appendingPathComponent("best.h5").path), .stage1)
        XCTAssertEqual(try Tiny.parameters(URL(fileURLWithPath: hybridPath)), before)
        let hybrid = try HybridCheckpoint.loadHybrid(hybridPath)
        XCTAssertEqual(hybrid.stage2.config.mode, .strict)
        // Training loss falls.
        let curve = try Tiny.curve(out)
        XCTAssertLessThan(curve.last!["train_loss"]!, curve.first!["train_loss"]!)
        // Refining a hybrid checkpoint again is refused with the file named.
        XCTAssertThrowsError(try Refiner(config: refineConfig(.strict), stage1: URL(fileURLWithPath: hybridPath),
                                         outputDirectory: dir.appendingPathComponent("again")).run(data: Tiny.data)) {
            XCTAssertTrue("\($0)".contains(hybridPath) && "\($0)".contains("hybrid"), "\($0)")
        }
    }

    /// Joint fine-tuning (the final epochs) moves stage 1's weights but never its output statistics.
    func testJointFineTuneMovesStage1ButNotItsStatistics() throws {
        let dir = try makeTemporaryDirectory(self)
        let s1 = try stage1(dir)
        let before = try Tiny.parameters(s1.appendingPathComponent("best.h5"))
        var config = refineConfig(.strict, epochs: 2)
        config.jointEpochs = 1
        config.stage2.shLmax = 2
        let out = dir.appendingPathComponent("joint")
        try Refiner(config: config, stage1: s1, outputDirectory: out).run(data: Tiny.data)
        let after = try Tiny.parameters(out.appendingPathComponent("last.h5"))
        var moved = 0
        for (name, values) in before {
            if name.hasPrefix("stats.") { XCTAssertEqual(after[name], values, name) } else if after[name] != values { moved += 1 }
        }
        XCTAssertGreaterThan(moved, 10)
        XCTAssertTrue(try Tiny.curve(out).last!["joint"] == 1)
    }

    /// Stage 2 corrects the block groups of its training data only (water: no O–O blocks), keeps
    /// stage 1's blocks for the others, and a second refine can start from the first one's weights.
    func testStage2CorrectsTheTrainingGroupsAndFineTunesFromAHybrid() throws {
        let dir = try makeTemporaryDirectory(self)
        let s1 = try stage1(dir)
        let first = dir.appendingPathComponent("first")
        try Refiner(config: refineConfig(.strict, epochs: 1), stage1: s1, outputDirectory: first).run(data: Tiny.data)
        let hybrid = try HybridCheckpoint.loadHybrid(first.appendingPathComponent("best.h5").path)
        XCTAssertEqual(hybrid.stage2.config.groups, ["on:H", "on:O", "off:H-H", "off:H-O", "off:O-H"])
        var everyGroup = refineConfig(.strict)
        everyGroup.stage2.groups = nil
        let full = try HybridHamiltonianModel<Float>(stage1: hybrid.stage1, stage2: everyGroup.stage2)
        XCTAssertLessThan(hybrid.stage2.trainableCount, full.stage2.trainableCount)

        // A water dimer has O–O blocks: the hybrid leaves them exactly as stage 1 predicts them.
        let water = try FormatReader.readRecord(at: Fixtures.url("training/water-0001")).structure
        let shift = Vec3(0, 0, 2.9)
        let dimer = Structure(lattice: water.lattice, atomicNumbers: water.atomicNumbers + water.atomicNumbers,
                              positions: water.positions + water.positions.map { $0 + shift }, basis: water.basis)
        let config = hybrid.stage1.config
        let graph = try StructureGraph(name: "dimer", structure: dimer, cutoff: config.cutoff, config: config)
        XCTAssertTrue(graph.groups.contains(BlockGroup(name: "off:O-O")!))
        let batch = try GraphBatch<Float>([graph], config: config)
        let h = try hybrid.predictOperators(batch)[0], h1 = try hybrid.stage1.predictOperators(batch)[0]
        var oxygenPairs = 0, changed = 0
        for (b, key) in h.keys.enumerated() {
            if dimer.atomicNumbers[key.i] == 8, dimer.atomicNumbers[key.j] == 8, key.i != key.j {
                XCTAssertEqual(h.values(at: b), h1.values(for: key)!, "\(key)"); oxygenPairs += 1
            } else if h.values(at: b) != h1.values(for: key)! { changed += 1 }
        }
        XCTAssertEqual(oxygenPairs, 2)
        XCTAssertGreaterThan(changed, 10)

        // Fine-tuning: the second run starts from the first one's weights (its epoch 1 differs
        // from a fresh run's with the same seed), …
        let second = dir.appendingPathComponent("second")
        let tuner = Refiner(config: refineConfig(.strict, epochs: 1), stage1: s1, outputDirectory: second)
        tuner.initialHybrid = first
        let fresh = try Refiner(config: refineConfig(.strict, epochs: 1), stage1: s1, outputDirectory: dir.appendingPathComponent("fresh")).run(data: Tiny.data)
        let tuned = try tuner.run(data: Tiny.data)
        XCTAssertNotEqual(tuned.validation.hybrid.mae, fresh.validation.hybrid.mae)
        let model = try HybridHamiltonianModel<Float>(stage1: HybridCheckpoint.loadStage1(s1.appendingPathComponent("best.h5").path), stage2: hybrid.stage2.config)
        XCTAssertFalse(try HybridCheckpoint.initialise(model, from: first), "same stage-1 weights")
        for (a, b) in zip(model.stage2.parameters.tensors, hybrid.stage2.parameters.tensors) { XCTAssertEqual(a.data, b.data, a.name) }
        // … including a jointly tuned one, whose stage 1 (not STAGE1's) the new hybrid keeps, …
        var jointConfig = refineConfig(.strict, epochs: 1)
        jointConfig.jointEpochs = 1
        let joint = dir.appendingPathComponent("joint")
        try Refiner(config: jointConfig, stage1: s1, outputDirectory: joint).run(data: Tiny.data)
        let jointStage1 = try Tiny.parameters(joint.appendingPathComponent("last.h5"))
        XCTAssertNotEqual(jointStage1, try Tiny.parameters(s1.appendingPathComponent("best.h5")))
        let afterJoint = Refiner(config: refineConfig(.strict, epochs: 1), stage1: s1, outputDirectory: dir.appendingPathComponent("after-joint"))
        afterJoint.initialHybrid = joint.appendingPathComponent("last.h5")
        try afterJoint.run(data: Tiny.data)
        XCTAssertEqual(try Tiny.parameters(dir.appendingPathComponent("after-joint/best.h5")), jointStage1)
        // … and refuses a hybrid of another stage-2 architecture or another stage-1 configuration, naming the file.
        var wider = refineConfig(.strict, epochs: 1)
        wider.stage2.width = 16
        let refused = Refiner(config: wider, stage1: s1, outputDirectory: dir.appendingPathComponent("wider"))
        refused.initialHybrid = first
        XCTAssertThrowsError(try refused.run(data: Tiny.data)) { XCTAssertTrue("\($0)".contains("architecture") && "\($0)".contains("first"), "\($0)") }
        var otherStage1Config = Tiny.config(epochs: 1)
        otherStage1Config.model.radialHidden = 6
        let otherStage1 = dir.appendingPathComponent("other-stage1")
        try Trainer(config: otherStage1Config, outputDirectory: otherStage1).run(data: Tiny.data)
        let foreign = Refiner(config: refineConfig(.strict, epochs: 1), stage1: otherStage1, outputDirectory: dir.appendingPathComponent("foreign"))
        foreign.initialHybrid = first
        XCTAssertThrowsError(try foreign.run(data: Tiny.data)) { XCTAssertTrue("\($0)".contains("stage 1") && "\($0)".contains("first"), "\($0)") }
    }

    /// With ema_decay the weight average is what is validated and written to best.h5 (the final
    /// validation, re-read from best.h5, reproduces the best epoch's curve value); last.h5 keeps
    /// the raw weights.
    func testWeightAverageIsValidatedAndSavedAsBest() throws {
        let dir = try makeTemporaryDirectory(self)
        let s1 = try stage1(dir)
        var config = refineConfig(.strict, epochs: 3)
        config.emaDecay = 0.9
        let out = dir.appendingPathComponent("ema")
        let summary = try Refiner(config: config, stage1: s1, outputDirectory: out).run(data: Tiny.data)
        let curve = try Tiny.curve(out)
        let best = curve.first { $0["epoch"] == Double(summary.bestEpoch) }!
        XCTAssertEqual(summary.validation.hybrid.mae * 1000, best["val_mae_meV"]!, accuracy: 1e-5)
        let averaged = try HybridCheckpoint.loadHybrid(out.appendingPathComponent("best.h5").path)
        let raw = try HybridCheckpoint.loadHybrid(out.appendingPathComponent("last.h5").path)
        XCTAssertEqual(summary.bestEpoch, 3, "a decaying average of a falling loss keeps improving on 4 structures")
        XCTAssertTrue(zip(averaged.stage2.parameters.tensors, raw.stage2.parameters.tensors).contains { $0.data != $1.data })
        XCTAssertTrue(zip(averaged.stage1.parameters.tensors, raw.stage1.parameters.tensors).allSatisfy { $0.data == $1.data })
        let file = dir.appendingPathComponent("bad.json")
        try Data(#"{"ema_decay": 1}"#.utf8).write(to: file)
        XCTAssertThrowsError(try RefineConfig.load(file)) { XCTAssertTrue("\($0)".contains("ema_decay") && "\($0)".contains(file.path), "\($0)") }
    }

    func testBadRefineConfigNamesTheField() throws {
        let dir = try makeTemporaryDirectory(self)
        let file = dir.appendingPathComponent("refine.json")
        try Data(#"{"epochs": 3, "joint_epochs": 5}"#.utf8).write(to: file)
        XCTAssertThrowsError(try RefineConfig.load(file)) { XCTAssertTrue("\($0)".contains("joint_epochs") && "\($0)".contains(file.path), "\($0)") }
        try Data(#"{"stage2": {"mode": "loose"}}"#.utf8).write(to: file)
        XCTAssertThrowsError(try RefineConfig.load(file)) { XCTAssertTrue("\($0)".contains("stage2.mode"), "\($0)") }
        try Data(#"{"stage2": {"width": 10, "heads": 4}}"#.utf8).write(to: file)
        XCTAssertThrowsError(try RefineConfig.load(file)) { XCTAssertTrue("\($0)".contains("stage2.heads"), "\($0)") }
        try Data(#"{"band_loss": {"weight": 1}, "stage2": {"augment_rotations": true}}"#.utf8).write(to: file)
        XCTAssertThrowsError(try RefineConfig.load(file)) { XCTAssertTrue("\($0)".contains("band_loss") && "\($0)".contains("augment_rotations"), "\($0)") }
        XCTAssertThrowsError(try HybridCheckpoint.loadHybrid(dir.appendingPathComponent("missing.h5").path)) {
            XCTAssertTrue("\($0)".contains("missing.h5"), "\($0)")
        }
    }

    func testPredictionWithEitherKindAndTheStageKind() throws {
        let dir = try makeTemporaryDirectory(self)
        let s1 = try stage1(dir)
        // The pipeline kind, run directly with every parameter given.
        let kind = RefineStageKind()
        var values: [String: JSONValue] = [:]
        for p in kind.parameters { values[p.name] = p.defaultValue! }
        values["epochs"] = .int(2); values["width"] = .int(8); values["heads"] = .int(2); values["layers"] = .int(1)
        values["feed_forward"] = .int(8); values["radial_count"] = .int(4); values["sh_lmax"] = .int(3); values["mode"] = .string("empirical")
        let out = dir.appendingPathComponent("refine-stage")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        let context = StageContext(stageName: "refine", parameters: StageParameters(values), inputs: ["model": [s1], "data": Tiny.data],
                                   outputDirectory: out, reporter: .discard)
        let metrics = try kind.run(context)
        XCTAssertEqual(metrics["epochs_run"], .int(2))
        XCTAssertNotNil(metrics["val_stage1_mae_meV"])

        // Either kind of checkpoint predicts; the hybrid writes H₁ + ΔH, stage 1 its own H.
        let input = Fixtures.url("training/water-0001")
        let record = try FormatReader.readRecord(at: input)
        let hybrid = try Predictor(checkpoint: out)
        let plain = try Predictor(checkpoint: s1)
        XCTAssertEqual(hybrid.kind, .hybrid)
        XCTAssertEqual(plain.kind, .stage1)
        let h = try hybrid.predict(record), p = try plain.predict(record)
        XCTAssertEqual(p, try Predictor(checkpoint: s1).predict(record))
        XCTAssertEqual(h.keys, p.keys)
        XCTAssertGreaterThan(maxAbsDifference(h.entries, p.entries), 0, "ΔH is not zero")
        let model = try HybridCheckpoint.loadHybrid(out.appendingPathComponent("best.h5").path)
        let graph = try StructureGraph(name: record.name, structure: record.structure, keys: record.overlap?.keys ?? record.hamiltonian!.keys,
                                       config: model.stage1.config)
        XCTAssertEqual(h, try model.predictOperators(GraphBatch<Float>([graph], config: model.stage1.config))[0])
        let written = try hybrid.predict(inputs: [input], outputDirectory: dir.appendingPathComponent("pred"))
        XCTAssertEqual(written.count, 1)
        XCTAssertTrue(FileManager.default.fileExists(atPath: written[0].folder.appendingPathComponent("hamiltonian_pred.h5").path))
    }
}
