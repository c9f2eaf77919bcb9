// Refinement: training stage 2 of the HarmoSE hybrid on top of a trained stage-1 checkpoint.
// Owns the refine configuration (`RefineConfig`, JSON), the loop (`Refiner`: stage 1 loaded from
// its artifact and frozen, stage 2 trained on the residual, optional joint fine-tune at a low
// learning rate, best/last checkpoints, learning curve, metrics with the stage-1 baseline beside
// the hybrid), hybrid checkpoints (`HybridCheckpoint`: the stage-1 parts exactly as `train`
// writes them plus "stage2" parameters and a "hybrid" config part whose JSON carries
// "kind": "hybrid"), and the pipeline stage kind `refine`.
//
// Because stage 1 is read from the train stage's artifact, changing only stage-2 parameters
// re-runs refine and never train. The split is the stage-1 run's splits.json, so the hybrid is
// validated and tested on exactly the structures stage 1 was.
import Autograd
import Formats
import Foundation
import HDF5Kit
import Models
import StageAPI
import SO3
import Structures

/// Everything `harmose refine` reads from --config. Keys are snake_case; all are optional.
public struct RefineConfig: Codable, Equatable, Sendable {
    public var stage2 = Stage2Config()
    public var epochs = 100
    public var batchSize = 4
    public var learningRate = 1e-3
    /// The last `joint_epochs` epochs also train stage 1, at learning_rate × joint_lr_factor.
    public var jointEpochs = 0
    public var jointLRFactor = 0.1
    public var clipNorm = 10.0
    /// Stop after this many seconds of training (0 = no limit); checked between epochs.
    public var maxSeconds = 0.0
    /// Seed of the batch order and of the rotation augmentation.
    public var seed: UInt64 = 42
    // --- accuracy recipe (Schedules.swift, BandLoss.swift) ---
    /// Learning-rate schedule of stage 2 (and of stage 1 in joint epochs); "plateau" = constant here.
    public var lrSchedule = LRSchedule()
    /// Band-space loss added to the real-space MSE (weight 0 = off).
    public var bandLoss = BandLossConfig()
    // --- end accuracy recipe ---

    public init() {}

    enum CodingKeys: String, CodingKey {
        case stage2, epochs, batchSize = "batch_size", learningRate = "learning_rate", jointEpochs = "joint_epochs"
        case jointLRFactor = "joint_lr_factor", clipNorm = "clip_norm", maxSeconds = "max_seconds", seed
        case lrSchedule = "lr_schedule", bandLoss = "band_loss"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = RefineConfig()
        stage2 = try c.decodeIfPresent(Stage2Config.self, forKey: .stage2) ?? d.stage2
        epochs = try c.decodeIfPresent(Int.self, forKey: .epochs) ?? d.epochs
        batchSize = try c.decodeIfPresent(Int.self, forKey: .batchSize) ?? d.batchSize
        learningRate = try c.decodeIfPresent(Double.self, forKey: .learningRate) ?? d.learningRate
        jointEpochs = try c.decodeIfPresent(Int.self, forKey: .jointEpochs) ?? d.jointEpochs
        jointLRFactor = try c.decodeIfPresent(Double.self, forKey: .jointLRFactor) ?? d.jointLRFactor
        clipNorm = try c.decodeIfPresent(Double.self, forKey: .clipNorm) ?? d.clipNorm
        maxSeconds = try c.decodeIfPresent(Double.self, forKey: .maxSeconds) ?? d.maxSeconds
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? d.seed
        lrSchedule = try c.decodeIfPresent(LRSchedule.self, forKey: .lrSchedule) ?? d.lrSchedule
        bandLoss = try c.decodeIfPresent(BandLossConfig.self, forKey: .bandLoss) ?? d.bandLoss
    }

    public static func load(_ url: URL) throws -> RefineConfig {
        let config = try decodeConfig(RefineConfig.self, at: url, what: "refine config")
        try config.validate(file: url.path)
        return config
    }

    public func validate(file: String) throws {
        func bad(_ f: String, _ m: String) -> TrainingError { TrainingError(file: file, field: f, message: m) }
        guard epochs >= 1 else { throw bad("epochs", "must be ≥ 1, got \(epochs)") }
        guard batchSize >= 1 else { throw bad("batch_size", "must be ≥ 1, got \(batchSize)") }
        guard learningRate > 0, learningRate.isFinite else { throw bad("learning_rate", "must be positive, got \(learningRate)") }
        guard (0 ... epochs).contains(jointEpochs) else { throw bad("joint_epochs", "must be 0…epochs (\(epochs)), got \(jointEpochs)") }
        guard jointLRFactor > 0, jointLRFactor.isFinite else { throw bad("joint_lr_factor", "must be positive, got \(jointLRFactor)") }
        guard clipNorm >= 0 else { throw bad("clip_norm", "must be ≥ 0, got \(clipNorm)") }
        guard maxSeconds >= 0 else { throw bad("max_seconds", "must be ≥ 0, got \(maxSeconds)") }
        try lrSchedule.validate(file: file)
        try bandLoss.validate(file: file)
        do { try stage2.validate() } catch let e as ModelError { throw TrainingError(file: file, message: e.description) }
    }
}

/// The hybrid configuration inside a checkpoint ("hybrid" group, JSON attribute with "kind").
public final class HybridConfigPart: Checkpointable {
    public var config: HybridConfig
    public init(_ config: HybridConfig) { self.config = config }
    public func save(to file: HDF5File, group: String) throws {
        try file.createGroup(group)
        try file.setAttribute("json", string: String(decoding: try JSONEncoder().encode(config), as: UTF8.self), on: group)
    }
    public func load(from file: HDF5File, group: String) throws {
        let text = try file.stringAttribute("json", of: group)
        do { config = try JSONDecoder().decode(HybridConfig.self, from: Data(text.utf8)) } catch {
            throw CheckpointError(file: file.path, field: "\(group)@json", message: "not a hybrid model configuration: \(error)")
        }
    }
}

public enum HybridCheckpoint {
    /// "hybrid" when the checkpoint holds a stage-2 network, "stage1" otherwise.
    public static func kind(_ path: String) throws -> ModelKind {
        guard FileManager.default.fileExists(atPath: path) else { throw TrainingError(file: path, message: "no such checkpoint") }
        let file = try HDF5File(readingAt: path)
        guard file.exists("config") else { throw TrainingError(file: path, field: "/config", message: "not a HarmoSE model checkpoint (no model configuration)") }
        return file.exists("hybrid") ? .hybrid : .stage1
    }

    /// A checkpoint file itself, or best.h5 (else last.h5) of a training or refine folder.
    public static func resolve(_ url: URL) throws -> URL {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) else {
            throw TrainingError(file: url.path, message: "no such checkpoint file or training folder")
        }
        guard isDir.boolValue else { return url }
        for name in ["best.h5", "last.h5"] {
            let candidate = url.appendingPathComponent(name)
            if FileManager.default.fileExists(atPath: candidate.path) { return candidate }
        }
        throw TrainingError(file: url.path, message: "folder has neither best.h5 nor last.h5")
    }

    public static func loadStage1(_ path: String) throws -> HamiltonianModel<Float> {
        let model = try HamiltonianModel<Float>(config: ModelConfigPart.read(path))
        try Checkpoint.load(from: path, parts: ["model": model.parameters])
        return model
    }

    public static func loadHybrid(_ path: String) throws -> HybridHamiltonianModel<Float> {
        guard try kind(path) == .hybrid else {
            throw TrainingError(file: path, field: "/hybrid", message: "a stage-1 checkpoint, not a hybrid one (run refine on it first)")
        }
        let part = HybridConfigPart(HybridConfig(stage1: ModelConfig(), stage2: Stage2Config()))
        try part.load(from: HDF5File(readingAt: path), group: "hybrid")
        let model = try HybridHamiltonianModel<Float>(config: part.config)
        try Checkpoint.load(from: path, parts: ["model": model.stage1.parameters, "stage2": model.stage2.parameters])
        return model
    }

    static func parts(_ model: HybridHamiltonianModel<Float>) -> [String: Checkpointable] {
        ["model": model.stage1.parameters, "stage2": model.stage2.parameters,
         "config": ModelConfigPart(model.stage1.config), "hybrid": HybridConfigPart(model.config)]
    }
}

/// Errors of one pass, for stage 1 alone and for the hybrid (eV).
public struct RefineMetrics: Equatable, Sendable {
    public var stage1 = EpochMetrics()
    public var hybrid = EpochMetrics()
}

public struct RefineSummary: Sendable {
    public var epochsRun: Int
    public var bestEpoch: Int
    public var validation: RefineMetrics
    public var test: RefineMetrics?
    public var seconds: Double
    public var checkpoint: URL
}

public final class Refiner {
    public let config: RefineConfig
    public let stage1: URL
    public let outputDirectory: URL
    public var log: (String) -> Void = { _ in }
    public var progress: ((Int, Int, Double) -> Void)?
    /// The ranks sharing each batch (one process: SingleProcess); only rank 0 writes files.
    public var group: any ProcessGroup = SingleProcess.shared

    /// `stage1`: a train output folder (its best.h5 and splits.json are used) or a checkpoint file.
    public init(config: RefineConfig, stage1: URL, outputDirectory: URL) {
        self.config = config; self.stage1 = stage1; self.outputDirectory = outputDirectory
    }

    var bestPath: URL { outputDirectory.appendingPathComponent("best.h5") }
    var lastPath: URL { outputDirectory.appendingPathComponent("last.h5") }

    @discardableResult
    public func run(data: [URL]) throws -> RefineSummary {
        try ModelExecution.exclusive { try runExclusive(data: data) }
    }

    func runExclusive(data: [URL]) throws -> RefineSummary {
        // A killed earlier run may have left checkpoint temporaries here (issue #12).
        for checkpoint in [lastPath, bestPath] { AtomicOutput.removeAbandonedTemporaries(besides: checkpoint) }
        try config.validate(file: "refine configuration")
        if group.size > config.batchSize {
            throw TrainingError(file: "refine configuration", field: "batch_size",
                                message: "\(config.batchSize) structures per batch cannot be shared by \(group.size) ranks: use at most \(config.batchSize) ranks or a larger batch_size")
        }
        let checkpoint = try HybridCheckpoint.resolve(stage1)
        guard try HybridCheckpoint.kind(checkpoint.path) == .stage1 else {
            throw TrainingError(file: checkpoint.path, message: "already a hybrid checkpoint; refine needs a stage-1 one")
        }
        let base = try HybridCheckpoint.loadStage1(checkpoint.path)
        let model = try HybridHamiltonianModel(stage1: base, stage2: config.stage2)
        model.freezeStage1(true)
        let modelConfig = base.config
        log("stage 1 from \(checkpoint.path): \(base.trainableCount) parameters; stage 2 (\(config.stage2.mode.rawValue)): \(model.stage2.trainableCount) parameters")

        let writes = group.isRoot
        if writes { try FileManager.default.createDirectory(at: outputDirectory, withIntermediateDirectories: true) }
        let records = try Dataset.readRecords(data, log: log)
        try DataParallelStep.checkSameData(records, group: group, what: data.map(\.path).joined(separator: ", "))
        let byName = Dictionary(uniqueKeysWithValues: records.map { ($0.name, $0) })
        let splitsURL = checkpoint.deletingLastPathComponent().appendingPathComponent("splits.json")
        let splits = FileManager.default.fileExists(atPath: splitsURL.path) ? try Splits.read(splitsURL)
            : Splits(seed: config.seed, train: records.map(\.name).sorted(), validation: [], test: [])
        if writes { try splits.write(to: outputDirectory.appendingPathComponent("splits.json")) }
        func samples(_ names: [String]) throws -> [Sample] {
            try Dataset.samples(try names.map { n in
                guard let r = byName[n] else { throw TrainingError(file: splitsURL.path, message: "structure \"\(n)\" is not in the data") }
                return r
            }, config: modelConfig)
        }
        let train = try samples(splits.train), validation = try samples(splits.validation), test = try samples(splits.test)
        if validation.isEmpty {
            log("warning: no validation structures: the \"val\" numbers are the TRAINING set's, not a held-out error; give at least 2 structures for a real validation")
        }
        let bandLoss = config.bandLoss.isActive
            ? try BandLoss(config: config.bandLoss, records: splits.train.compactMap { byName[$0] })
            : nil
        log("split (from stage 1): \(train.count) train, \(validation.count) validation, \(test.count) test")
        let parallel = try DataParallelStep(group: group, samples: train, config: modelConfig)
        let configData = try { () -> Data in
            let e = JSONEncoder(); e.outputFormatting = [.prettyPrinted, .sortedKeys]
            return try e.encode(config)
        }()
        if writes { try AtomicFile.write(configData, to: outputDirectory.appendingPathComponent("config.json")) }

        let adam2 = Adam<Float>(learningRate: config.learningRate)
        let adam1 = Adam<Float>(learningRate: config.learningRate * config.jointLRFactor)
        let curve = outputDirectory.appendingPathComponent("learning_curve.jsonl")
        if writes { try? FileManager.default.removeItem(at: curve) }
        var curveText = ""
        let batchesPerEpoch = (train.count + config.batchSize - 1) / config.batchSize
        var augmentRNG = SplitMix64(seed: config.seed ^ 0xA06_3E17)
        let started = Date()
        var best = Double.infinity, bestEpoch = 0, epoch = 0
        while epoch < config.epochs {
            epoch += 1
            let joint = epoch > config.epochs - config.jointEpochs
            model.freezeStage1(!joint)
            let epochStart = Date()
            var order = Array(train.indices)
            var rng = SplitMix64(seed: config.seed &+ UInt64(epoch) &* 0x9E37_79B9_7F4A_7C15)
            if order.count > 1 { for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, Int(rng.next() % UInt64(i + 1))) } }
            var trainMetrics = EpochMetrics(), lossSum = 0.0
            for b in 0 ..< batchesPerEpoch {
                let global = Array(order[(b * config.batchSize) ..< min(order.count, (b + 1) * config.batchSize)])
                let owned = Set(parallel.shard(global))
                var members: [Sample] = []
                for i in global {
                    // Every rank draws every member's rotation, so the augmentation is the single-process one.
                    let rotation = config.stage2.augmentRotations ? Refiner.randomRotation(&augmentRNG) : nil
                    guard owned.contains(i) else { continue }
                    members.append(try rotation.map { try Refiner.rotated(train[i], by: $0, config: modelConfig) } ?? train[i])
                }
                let entries = parallel.globalEntries(global)
                var batchLoss: BatchLoss<Float>? = nil
                if config.lrSchedule.isProgressBased {
                    let p = LRSchedule.progress(step: (epoch - 1) * batchesPerEpoch + b, totalSteps: config.epochs * batchesPerEpoch,
                                                seconds: Date().timeIntervalSince(started), maxSeconds: config.maxSeconds)
                    adam2.learningRate = config.lrSchedule.rate(base: config.learningRate, progress: p)
                    adam1.learningRate = adam2.learningRate * config.jointLRFactor
                }
                var value = 0.0
                _ = try Stage2Fitting.step(model, loss: { () throws -> Tensor<Float>? in
                    guard !members.isEmpty else { return nil }
                    let batch = try GraphBatch<Float>(members.map(\.graph), config: modelConfig)
                    let blocks = try model(batch).blocks
                    let mse = try maskedLoss(blocks, try BatchTargets(batch, samples: members), entriesInBatch: entries)
                    batchLoss = mse
                    guard let bandLoss else { return mse.loss }
                    let band = try bandLoss(blocks, batch: batch, stepSeed: config.seed &+ UInt64(epoch) &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(b))
                    return try mse.loss + band.loss * Float(config.bandLoss.weight)
                }, stage2: adam2, stage1: joint ? adam1 : nil, clipNorm: config.clipNorm > 0 ? config.clipNorm : nil, reduce: {
                    let sets = joint ? [model.stage2.parameters, model.stage1.parameters] : [model.stage2.parameters]
                    value = Double(try parallel.allReduce(sets, localLoss: batchLoss?.loss.item ?? 0))
                })
                guard value.isFinite else { throw TrainingError(file: outputDirectory.path, message: "refinement diverged: loss is \(value) at epoch \(epoch), batch \(b + 1)") }
                lossSum += value * Double(entries ?? batchLoss?.entries ?? 0)
                if let l = batchLoss { trainMetrics.absSum(l) }
                progress?((epoch - 1) * batchesPerEpoch + b + 1, config.epochs * batchesPerEpoch, value)
            }
            trainMetrics = parallel.reduce(trainMetrics)
            trainMetrics.finish(lossSum: lossSum)
            let val = validation.isEmpty ? RefineMetrics(stage1: trainMetrics, hybrid: trainMetrics) : try evaluate(model, validation)
            let improved = val.hybrid.loss < best
            if improved { best = val.hybrid.loss; bestEpoch = epoch }
            let seconds = Date().timeIntervalSince(started)
            let meta: [String: Double] = ["epoch": Double(epoch), "best_epoch": Double(bestEpoch), "best_loss": best, "seconds": seconds]
            if writes, improved { try Checkpoint.save(to: bestPath.path, parts: HybridCheckpoint.parts(model), metadata: meta) }
            if writes { try Checkpoint.save(to: lastPath.path, parts: HybridCheckpoint.parts(model), metadata: meta) }
            curveText += String(format: "{\"epoch\": %d, \"train_loss\": %.8g, \"train_mae_meV\": %.6f, \"val_loss\": %.8g, \"val_mae_meV\": %.6f, \"val_stage1_mae_meV\": %.6f, \"joint\": %@, \"best\": %@, \"epoch_seconds\": %.4f}\n",
                                epoch, trainMetrics.loss, trainMetrics.mae * 1000, val.hybrid.loss, val.hybrid.mae * 1000, val.stage1.mae * 1000,
                                joint ? "true" : "false", improved ? "true" : "false", Date().timeIntervalSince(epochStart))
            if writes { try AtomicFile.write(Data(curveText.utf8), to: curve) }
            log(String(format: "epoch %d/%d  train MAE %.3f meV | val MAE hybrid %.3f meV, stage 1 %.3f meV%@%@",
                       epoch, config.epochs, trainMetrics.mae * 1000, val.hybrid.mae * 1000, val.stage1.mae * 1000,
                       improved ? " (best)" : "", joint ? " [joint]" : ""))
            // Rank 0's clock decides, so every rank stops after the same epoch.
            if config.maxSeconds > 0, group.broadcast([seconds >= config.maxSeconds ? 1 : 0])[0] == 1 {
                log("stopping: time budget of \(config.maxSeconds) s reached")
                break
            }
        }
        model.freezeStage1(true)
        group.barrier()  // rank 0 wrote best.h5; the others read it after it did
        try Checkpoint.load(from: bestPath.path, parts: ["model": model.stage1.parameters, "stage2": model.stage2.parameters])
        let finalValidation = validation.isEmpty ? RefineMetrics() : try evaluate(model, validation)
        let finalTest = test.isEmpty ? nil : try evaluate(model, test)
        let summary = RefineSummary(epochsRun: epoch, bestEpoch: bestEpoch, validation: finalValidation, test: finalTest,
                                    seconds: Date().timeIntervalSince(started), checkpoint: bestPath)
        if writes { try writeMetrics(summary, parameters: model.stage2.trainableCount) }
        return summary
    }

    /// A uniformly random rotation (three draws of `rng`).
    static func randomRotation(_ rng: inout SplitMix64) -> Rotation {
        Rotation(uniform: rng.nextUnit(), rng.nextUnit(), rng.nextUnit())
    }

    /// A sample rotated rigidly, with its target rotated to match.
    static func rotated(_ s: Sample, by r: Rotation, config: ModelConfig) throws -> Sample {
        let (structure, target) = try BlockTargets.rotated(s.graph.structure, operator: s.target, by: r)
        let graph = try StructureGraph(name: s.name, structure: structure, keys: s.graph.keys, config: config)
        return Sample(graph: graph, target: target!)
    }

    /// Stage-1 and hybrid errors on samples, without gradients.
    public func evaluate(_ model: HybridHamiltonianModel<Float>, _ samples: [Sample]) throws -> RefineMetrics {
        var m = RefineMetrics(), sum1 = 0.0, sum2 = 0.0
        let samples = group.size == 1 ? samples : samples.enumerated().filter { group.partition.owns($0.offset) }.map(\.element)
        try GradMode.withoutGrad {
            var start = 0
            while start < samples.count {
                let members = Array(samples[start ..< min(samples.count, start + config.batchSize)])
                start += config.batchSize
                let batch = try GraphBatch<Float>(members.map(\.graph), config: model.stage1.config)
                let targets = try BatchTargets(batch, samples: members)
                let out = try model(batch)
                let l1 = try maskedLoss(out.stage1.blocks, targets), l2 = try maskedLoss(out.blocks, targets)
                sum1 += Double(l1.loss.item) * Double(l1.entries); sum2 += Double(l2.loss.item) * Double(l2.entries)
                m.stage1.absSum(l1); m.hybrid.absSum(l2)
                m.stage1.structures += members.count; m.hybrid.structures += members.count
            }
        }
        if group.size > 1 {
            let s = group.sum([sum1, sum2, m.stage1.mae, m.stage1.rmse, m.hybrid.mae, m.hybrid.rmse,
                               Double(m.stage1.entries), Double(m.hybrid.entries), Double(m.hybrid.structures)])
            sum1 = s[0]; sum2 = s[1]; m.stage1.mae = s[2]; m.stage1.rmse = s[3]; m.hybrid.mae = s[4]; m.hybrid.rmse = s[5]
            m.stage1.entries = Int(s[6]); m.hybrid.entries = Int(s[7]); m.stage1.structures = Int(s[8]); m.hybrid.structures = Int(s[8])
        }
        m.stage1.finish(lossSum: sum1); m.hybrid.finish(lossSum: sum2)
        return m
    }

    func writeMetrics(_ s: RefineSummary, parameters: Int) throws {
        func block(_ m: EpochMetrics) -> String {
            String(format: "{\"mae_meV\": %.6f, \"rmse_meV\": %.6f, \"loss\": %.8g, \"structures\": %d, \"entries\": %d}",
                   m.mae * 1000, m.rmse * 1000, m.loss, m.structures, m.entries)
        }
        func pair(_ m: RefineMetrics) -> String { "{\"hybrid\": \(block(m.hybrid)), \"stage1\": \(block(m.stage1))}" }
        var text = "{\n  \"kind\": \"hybrid\",\n  \"mode\": \"\(config.stage2.mode.rawValue)\",\n  \"epochs_run\": \(s.epochsRun),\n  \"best_epoch\": \(s.bestEpoch),\n"
        text += "  \"stage2_parameters\": \(parameters),\n  \"seconds\": \(String(format: "%.3f", s.seconds)),\n"
        text += "  \"validation\": \(pair(s.validation))"
        if let t = s.test { text += ",\n  \"test\": \(pair(t))" }
        text += "\n}\n"
        try AtomicFile.write(Data(text.utf8), to: outputDirectory.appendingPathComponent("metrics.json"))
    }
}

/// Masked mean squared error over every group (the `mse` loss of `train`), with error sums.
func maskedLoss<T: Scalar>(_ blocks: [BlockGroup: Tensor<T>], _ targets: BatchTargets<T>, entriesInBatch: Int? = nil) throws -> BatchLoss<T> {
    var total: Tensor<T>? = nil
    var absSum = 0.0, squareSum = 0.0
    for g in blocks.keys.sorted() {
        guard let t = targets.values[g], let mask = targets.masks[g] else { throw TrainingError(file: "targets", message: "no targets for block group \(g)") }
        let diff = try (try blocks[g]! - t) * mask
        for v in diff.data { let d = Double(v); absSum += abs(d); squareSum += d * d }
        let term = try diff.square().sum()
        total = try total.map { try $0 + term } ?? term
    }
    let n = max(entriesInBatch ?? targets.entryCount, 1)
    return BatchLoss(loss: (total ?? Tensor<T>(scalar: 0)) * T(1 / Double(n)), absSum: absSum, squareSum: squareSum, entries: targets.entryCount)
}

// MARK: - Pipeline stage kind

/// `refine`: stage 2 on top of a `train` stage's artifact. Writes best.h5/last.h5 (hybrid
/// checkpoints `predict` reads), learning_curve.jsonl, metrics.json, config.json, splits.json.
public struct RefineStageKind: StageKind {
    public init() {}
    public let name = "refine"
    public let summary = "Trains stage 2 (graph Transformer) of the HarmoSE hybrid on the residual of a frozen stage-1 model from a train stage; optional joint fine-tune."
    public let artifactVersion = 1
    public let parameters: [ParameterSpec] = [
        ParameterSpec("mode", .choice(["empirical", "strict"]), default: .string("empirical"), help: "empirical (the paper's) or strict (equivariant by construction)"),
        ParameterSpec("epochs", .integer, default: 30, minimum: 1, maximum: 100_000, help: "training epochs"),
        ParameterSpec("learning_rate", .number, default: 1e-3, minimum: 1e-9, maximum: 1, help: "Adam learning rate of stage 2"),
        ParameterSpec("batch_size", .integer, default: 4, minimum: 1, maximum: 10_000, help: "structures per mini-batch"),
        ParameterSpec("joint_epochs", .integer, default: 0, minimum: 0, maximum: 100_000, help: "final epochs that also train stage 1"),
        ParameterSpec("joint_lr_factor", .number, default: 0.1, minimum: 1e-6, maximum: 1, help: "stage-1 learning rate = learning_rate × this, in joint epochs"),
        ParameterSpec("width", .integer, default: 32, minimum: 1, maximum: 4096, help: "hidden width of stage 2"),
        ParameterSpec("heads", .integer, default: 4, minimum: 1, maximum: 64, help: "attention heads (must divide width)"),
        ParameterSpec("layers", .integer, default: 2, minimum: 0, maximum: 64, help: "Transformer blocks"),
        ParameterSpec("feed_forward", .integer, default: 64, minimum: 1, maximum: 16_384, help: "hidden width of the feed-forward and edge MLPs"),
        ParameterSpec("sh_lmax", .integer, default: 7, minimum: 0, maximum: 8, help: "spherical harmonics of the edge direction up to this l"),
        ParameterSpec("radial_count", .integer, default: 8, minimum: 1, maximum: 256, help: "radial basis functions of |r|"),
        ParameterSpec("augment_rotations", .boolean, default: false, help: "rotate every training structure at random each epoch"),
        ParameterSpec("max_seconds", .number, default: 0, minimum: 0, maximum: 1e9, help: "stop after this many seconds (0: no limit)"),
        ParameterSpec("seed", .integer, default: 42, minimum: 0, maximum: 1e15, help: "seed of the initialisation, batch order and augmentation"),
    ]
    public let inputs: [InputSpec] = [
        InputSpec("model", .pathOrStage, help: "a train stage (or its output folder / checkpoint file): the stage-1 model, frozen"),
        InputSpec("data", .pathOrStage, multiple: true, help: "the DFT dataset stage 1 was trained on: folders, archives or ingest stages (stage 1's splits.json picks the structures)"),
    ]

    public func run(_ context: StageContext) throws -> [String: JSONValue] {
        let p = context.parameters
        var config = RefineConfig()
        config.epochs = p.int("epochs")
        config.learningRate = p.double("learning_rate")
        config.batchSize = p.int("batch_size")
        config.jointEpochs = p.int("joint_epochs")
        config.jointLRFactor = p.double("joint_lr_factor")
        config.maxSeconds = p.double("max_seconds")
        config.seed = UInt64(p.int("seed"))
        config.stage2.mode = Stage2Mode(rawValue: p.string("mode")) ?? .empirical
        config.stage2.width = p.int("width")
        config.stage2.heads = p.int("heads")
        config.stage2.layers = p.int("layers")
        config.stage2.feedForward = p.int("feed_forward")
        config.stage2.shLmax = p.int("sh_lmax")
        config.stage2.radialCount = p.int("radial_count")
        config.stage2.augmentRotations = p.bool("augment_rotations")
        config.stage2.seed = config.seed
        try config.validate(file: "pipeline.json: stage \(context.stageName)")
        let refiner = Refiner(config: config, stage1: context.input("model"), outputDirectory: context.outputDirectory)
        refiner.group = context.group
        refiner.log = { context.log($0) }
        refiner.progress = { done, total, _ in context.progress(done: done, total: total) }
        let s = try refiner.run(data: (context.inputs["data"] ?? []).map(resolveDataInput))
        var out: [String: JSONValue] = ["epochs_run": .int(s.epochsRun), "best_epoch": .int(s.bestEpoch),
                                        "val_mae_meV": .double(s.validation.hybrid.mae * 1000),
                                        "val_stage1_mae_meV": .double(s.validation.stage1.mae * 1000)]
        if let t = s.test {
            out["test_mae_meV"] = .double(t.hybrid.mae * 1000)
            out["test_stage1_mae_meV"] = .double(t.stage1.mae * 1000)
        }
        return out
    }

    /// Under mpirun every rank trains its share of each batch (DataParallel.swift).
    public var rankParallelism: RankParallelism { .collective }
}

