// Data-parallel training: the same losses and parameters, bit for bit, for 1, 2 and 3 workers (stage
// 1, the hybrid with joint fine-tuning and rotation augmentation), the frozen stage 1 cached once per
// structure equal to running it on every batch, and the per-structure gradient equal to the
// gradient of the whole batch as one graph.
import Autograd
import Foundation
import Models
import StageAPI
import TestSupport
@testable import Training
import XCTest

final class DataParallelTests: XCTestCase {
    func hybridParameters(_ file: URL) throws -> [String: [Float]] {
        let model = try HybridCheckpoint.loadHybrid(file.path)
        return Dictionary(uniqueKeysWithValues: (model.stage1.parameters.tensors + model.stage2.parameters.tensors).map { ($0.name, $0.data) })
    }

    func testStage1IsBitIdenticalForAnyWorkerCount() throws {
        var config = Tiny.config(epochs: 2)
        config.batchSize = 3
        var curves: [[[String: Double]]] = [], parameters: [[String: [Float]]] = [], checkpoints: [[Data]] = []
        for threads in [1, 2, 3] {
            let dir = try makeTemporaryDirectory(self)
            let trainer = Trainer(config: config, outputDirectory: dir)
            trainer.execution = ExecutionContext(threads: threads)
            try trainer.run(data: Tiny.data)
            curves.append(try Tiny.curve(dir))
            parameters.append(try Tiny.parameters(dir.appendingPathComponent("last.h5")))
            // With more than one thread the checkpoints are written in the background: the same
            // files, complete when the run returns, no temporary left.
            checkpoints.append(try ["best.h5", "last.h5"].map { try Data(contentsOf: dir.appendingPathComponent($0)) })
            XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: dir.path).contains { $0.hasPrefix(".") }, "temporaries with \(threads) threads")
        }
        for k in 1 ..< 3 {
            XCTAssertEqual(curves[k], curves[0], "learning curve with \(k + 1) workers")
            XCTAssertEqual(parameters[k], parameters[0], "parameters with \(k + 1) workers")
            XCTAssertEqual(checkpoints[k], checkpoints[0], "best.h5 and last.h5 with \(k + 1) workers")
        }
    }

    func testRefineIsBitIdenticalForAnyWorkerCountAndWithTheStage1Cache() throws {
        let dir = try makeTemporaryDirectory(self)
        let stage1 = dir.appendingPathComponent("stage1")
        try Trainer(config: Tiny.config(epochs: 1), outputDirectory: stage1).run(data: Tiny.data)
        var config = RefineConfig()
        config.epochs = 2; config.jointEpochs = 1; config.batchSize = 3; config.learningRate = 5e-3
        config.stage2.width = 8; config.stage2.heads = 2; config.stage2.layers = 1; config.stage2.feedForward = 8
        config.stage2.radialCount = 4; config.stage2.shLmax = 2
        func run(_ threads: Int, cache: Bool = true, augment: Bool = false, microBatch: Int = 0) throws -> ([[String: Double]], [String: [Float]]) {
            var c = config
            c.stage2.augmentRotations = augment
            c.microBatch = microBatch
            let out = dir.appendingPathComponent("refine-\(threads)-\(cache)-\(augment)-\(microBatch)")
            let refiner = Refiner(config: c, stage1: stage1, outputDirectory: out)
            refiner.execution = ExecutionContext(threads: threads)
            refiner.cacheStage1 = cache
            try refiner.run(data: Tiny.data)
            return (try Tiny.curve(out), try hybridParameters(out.appendingPathComponent("last.h5")))
        }
        // Units of 2 and 1 structures (batch 3): any worker count gives the same run.
        let reference = try run(1)
        for threads in [2, 3] {
            let other = try run(threads)
            XCTAssertEqual(other.0, reference.0, "learning curve, \(threads) workers")
            XCTAssertEqual(other.1, reference.1, "parameters, \(threads) workers")
        }
        // One structure per unit: the cached stage-1 outputs give exactly the numbers of running
        // stage 1 on every batch.
        let cached = try run(2, microBatch: 1), uncached = try run(1, cache: false, microBatch: 1)
        XCTAssertEqual(cached.0, uncached.0)
        XCTAssertEqual(cached.1, uncached.1)
        let rotated1 = try run(1, augment: true), rotated2 = try run(2, augment: true)
        XCTAssertEqual(rotated1.0, rotated2.0)
        XCTAssertEqual(rotated1.1, rotated2.1)
        XCTAssertNotEqual(rotated1.0, reference.0, "augmentation changes the run")
    }

    /// Σ over structures of each structure's share of the loss has the gradient of the batch as one
    /// disjoint graph (up to summation order): no term couples structures.
    func testPerStructureGradientEqualsTheBatchedGraph() throws {
        let (config, samples) = try Tiny.resolvedSamples()
        let model = try HamiltonianModel<Float>(config: config.model)
        let batch = try GraphBatch<Float>(samples.map(\.graph), config: config.model)
        let whole = try batchLoss(try model(batch), try BatchTargets(batch, samples: samples), kind: .mse, huberDelta: 0.01, normalizeBy: nil)
        try whole.loss.backward()
        let reference = model.parameters.flattenGradients()
        model.parameters.zeroGrad()
        let prepared = try samples.map { try PreparedSample($0, config: config.model) }
        let entries = prepared.reduce(0) { $0 + $1.targets.entryCount }
        XCTAssertEqual(entries, whole.entries)
        let engine = try DataParallel(model, context: ExecutionContext(threads: 2))
        let (gradient, parts) = try engine.gradients(prepared.count) { replica, i -> (loss: Tensor<Float>, kept: Double) in
            let l = try batchLoss(try replica(prepared[i].batch).blocks, prepared[i].targets, meanOver: entries)
            return (l.loss, Double(l.loss.item))
        }
        XCTAssertEqual(parts.reduce(0, +), Double(whole.loss.item), accuracy: 1e-6 * Double(whole.loss.item))
        let scale = reference.map { abs($0) }.max()!
        XCTAssertGreaterThan(scale, 0)
        for (a, b) in zip(gradient, reference) { XCTAssertEqual(a, b, accuracy: 1e-4 * scale) }
    }
}

/// The `features` artifact feeds `train`: geometry read from it gives the same run bit for bit as
/// geometry computed in place; artifacts of another kind or for another model are refused.
final class FeaturesToTrainTests: XCTestCase {
    func features(_ dir: URL, config: TrainConfig) throws -> URL {
        let file = dir.appendingPathComponent("train-\(config.model.shLmax).json")
        try JSONEncoder().encode(config).write(to: file)
        let out = dir.appendingPathComponent("features-\(config.model.shLmax)")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        let kind = FeaturesStageKind()
        let params = StageParameters(Dictionary(uniqueKeysWithValues: kind.parameters.map { ($0.name, $0.defaultValue!) }))
        _ = try kind.run(StageContext(stageName: "features", parameters: params, inputs: ["data": Tiny.data, "config": [file]],
                                      outputDirectory: out, reporter: .discard))
        return out
    }

    func testTrainingOnTheFeaturesArtifactEqualsComputingGeometry() throws {
        let dir = try makeTemporaryDirectory(self)
        let config = Tiny.config(epochs: 2)
        let computed = dir.appendingPathComponent("computed"), read = dir.appendingPathComponent("read")
        try Trainer(config: config, outputDirectory: computed).run(data: Tiny.data)
        let trainer = Trainer(config: config, outputDirectory: read)
        trainer.features = try features(dir, config: config)
        try trainer.run(data: Tiny.data)
        XCTAssertEqual(try Tiny.curve(read), try Tiny.curve(computed))
        XCTAssertEqual(try Tiny.parameters(read.appendingPathComponent("last.h5")), try Tiny.parameters(computed.appendingPathComponent("last.h5")))

        // Features written for another model (sh_lmax 2) are refused, naming the file and field.
        var other = config
        other.model.shLmax = 2
        let wrong = Trainer(config: config, outputDirectory: dir.appendingPathComponent("wrong"))
        wrong.features = try features(dir, config: other)
        XCTAssertThrowsError(try wrong.run(data: Tiny.data)) {
            XCTAssertTrue("\($0)".contains("features.h5") && "\($0)".contains("model_geometry") && "\($0)".contains("sh_lmax"), "\($0)")
        }
        // A folder that is not a features artifact is refused.
        let notFeatures = Trainer(config: config, outputDirectory: dir.appendingPathComponent("none"))
        notFeatures.features = computed
        XCTAssertThrowsError(try notFeatures.run(data: Tiny.data)) { XCTAssertTrue("\($0)".contains("not a features artifact"), "\($0)") }
    }
}

final class ConfigKeyTests: XCTestCase {
    func testUnknownKeysAreRejectedWithDidYouMean() throws {
        let dir = try makeTemporaryDirectory(self)
        let file = dir.appendingPathComponent("c.json")
        for (text, field, hint) in [(#"{"epoch": 3}"#, "epoch", "epochs"), (#"{"model": {"irrep": "4x0e"}}"#, "model.irrep", "irreps"),
                                    (#"{"learning_rat": 0.1}"#, "learning_rat", "learning_rate")] {
            try text.write(to: file, atomically: true, encoding: .utf8)
            XCTAssertThrowsError(try TrainConfig.load(file)) {
                XCTAssertTrue("\($0)".contains(file.path) && "\($0)".contains("\(field): unknown key (did you mean \"\(hint)\"?)"), "\($0)")
            }
        }
        try #"{"stage2": {"widht": 8}}"#.write(to: file, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try RefineConfig.load(file)) {
            XCTAssertTrue("\($0)".contains("stage2.widht: unknown key (did you mean \"width\"?)"), "\($0)")
        }
        try #"{"joint": 2}"#.write(to: file, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try RefineConfig.load(file)) { XCTAssertTrue("\($0)".contains("joint_epochs"), "\($0)") }
        // Element symbols under model.basis are data, not keys.
        try #"{"model": {"basis": {"H": [0, 0, 1]}}}"#.write(to: file, atomically: true, encoding: .utf8)
        XCTAssertNoThrow(try TrainConfig.load(file))
    }

    /// The refine stage and `harmose refine` share one configuration: with no config and no
    /// parameters the stage runs RefineConfig's defaults; a config file is read like the command's.
    func testRefineStageUsesTheCommandsConfiguration() throws {
        let dir = try makeTemporaryDirectory(self)
        let stage1 = dir.appendingPathComponent("stage1")
        try Trainer(config: Tiny.config(epochs: 1), outputDirectory: stage1).run(data: Tiny.data)
        let file = dir.appendingPathComponent("refine.json")
        try #"{"epochs": 1, "stage2": {"width": 8, "heads": 2, "layers": 1, "feed_forward": 8, "radial_count": 4, "sh_lmax": 2}}"#
            .write(to: file, atomically: true, encoding: .utf8)
        let kind = RefineStageKind()
        var values = Dictionary(uniqueKeysWithValues: kind.parameters.map { ($0.name, $0.defaultValue!) })
        values["batch_size"] = .int(3)
        let out = dir.appendingPathComponent("refine")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        _ = try kind.run(StageContext(stageName: "refine", parameters: StageParameters(values),
                                      inputs: ["model": [stage1], "data": Tiny.data, "config": [file]], outputDirectory: out, reporter: .discard))
        var expected = try RefineConfig.load(file)
        expected.batchSize = 3
        XCTAssertEqual(try JSONDecoder().decode(RefineConfig.self, from: Data(contentsOf: out.appendingPathComponent("config.json"))), expected)
    }
}

/// The serial parts of a data-parallel step made parallel or deferred (issue #14) change no bit:
/// the slot sums loaded straight into the model equal the flat sum, for any thread count and any
/// split of the parameters; replicas synchronised by their own workers hold the stepped values;
/// checkpoints written in the background are the bytes of a direct write.
final class DataParallelStepTests: XCTestCase {
    func testStepLoadsTheSameGradientAndParametersForAnyThreadCountAndSplit() throws {
        let (config, samples) = try Tiny.resolvedSamples()
        let prepared = try samples.map { try PreparedSample($0, config: config.model) }
        let entries = prepared.reduce(0) { $0 + $1.targets.entryCount }
        func loss(_ replica: HamiltonianModel<Float>, _ i: Int, _ entries: Int) throws -> BatchLoss<Float> {
            try batchLoss(try replica(prepared[i].batch).blocks, prepared[i].targets, meanOver: entries)
        }
        // The flat sum of the per-structure gradients (the multi-process path's buffer).
        let reference = try DataParallel(try HamiltonianModel<Float>(config: config.model), context: ExecutionContext(threads: 1))
        let flat = try reference.gradients(prepared.count) { replica, i in (try loss(replica, i, entries).loss, 0) }.gradient
        for (threads, grain) in [(1, 1 << 15), (2, 64), (3, 64), (3, 1)] {
            let model = try HamiltonianModel<Float>(config: config.model)
            let engine = try DataParallel(model, context: ExecutionContext(threads: threads))
            engine.reductionGrain = grain
            let adam = Adam<Float>(learningRate: 1e-2)
            var loaded: [Float] = []
            try ExecutionContext(threads: threads).run {
                _ = try engine.step(Array(prepared.indices), entries: entries, group: SingleProcess.shared, loss: loss) {
                    loaded = model.parameters.flattenGradients()
                    adam.step(model.parameters)
                }
            }
            XCTAssertEqual(loaded.map(\.bitPattern), flat.map(\.bitPattern), "\(threads) threads, grain \(grain)")
            // Each worker takes the stepped values for its replica before it runs again.
            let seen = try engine.map(engine.workerCount) { replica, _ in replica.parameters.tensors.map(\.data) }
            for values in seen { XCTAssertEqual(values, model.parameters.tensors.map(\.data)) }
            // And an explicit synchronisation leaves every replica equal to the model.
            _ = try ExecutionContext(threads: threads).run {
                try engine.step(Array(prepared.indices), entries: entries, group: SingleProcess.shared, loss: loss) { adam.step(model.parameters) }
            }
            engine.synchronise()
            for r in engine.replicas.dropFirst() {
                for (a, b) in zip(r.parameters.tensors, model.parameters.tensors) { XCTAssertEqual(a.data, b.data, a.name) }
            }
        }
    }
}
