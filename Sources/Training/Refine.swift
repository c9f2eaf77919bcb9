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
    /// Exponential moving average of the weights (0 = off), as in `train`: the average is what is
    /// validated and written to best.h5; last.h5 holds the raw weights.
    public var emaDecay = 0.0
    /// Stop after this many seconds of training (0 = no limit); checked between epochs.
    public var maxSeconds = 0.0
    /// Seed of the batch order and of the rotation augmentation.
    public var seed: UInt64 = 42
    // --- accuracy recipe (Schedules.swift, BandLoss.swift) ---
    /// Learning-rate schedule of stage 2 (and of stage 1 in joint epochs); "plateau" = constant here.
    public var lrSchedule = LRSchedule()
    /// Band-space loss added to the real-space MSE (weight 0 = off).
    public var bandLoss = BandLossConfig()
    /// The validation number of the hybrid that picks best.h5 (TrainConfig.selection).
    public var selection = SelectionMetric.loss
    // --- end accuracy recipe ---

    /// Structures per unit of data-parallel work (0: half the batch, rounded up). The batch is
    /// cut into units of this size; each unit runs as one graph on one worker and the units'
    /// gradients are summed in order, so results depend on it — never on the thread count.
    /// Smaller units let more threads work; larger ones amortise per-operation cost.
    public var microBatch = 0

    /// The resolved unit size.
    public var unitSize: Int { microBatch > 0 ? min(microBatch, batchSize) : (batchSize + 1) / 2 }

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable {
        case stage2, epochs, batchSize = "batch_size", learningRate = "learning_rate", jointEpochs = "joint_epochs"
        case jointLRFactor = "joint_lr_factor", clipNorm = "clip_norm", maxSeconds = "max_seconds", seed, microBatch = "micro_batch"
        case lrSchedule = "lr_schedule", bandLoss = "band_loss", emaDecay = "ema_decay"
        case selection
    }

    /// The JSON keys a configuration file may use (unknown ones are rejected).
    public static var jsonKeys: [String] { CodingKeys.allCases.map(\.rawValue) }

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
        microBatch = try c.decodeIfPresent(Int.self, forKey: .microBatch) ?? d.microBatch
        emaDecay = try c.decodeIfPresent(Double.self, forKey: .emaDecay) ?? d.emaDecay
        selection = try c.decodeIfPresent(SelectionMetric.self, forKey: .selection) ?? d.selection
    }

    public static func load(_ url: URL) throws -> RefineConfig {
        let config = try decodeConfig(RefineConfig.self, at: url, what: "refine config", keys: .refine)
        try config.validate(file: url.path)
        return config
    }

    public func validate(file: String) throws {
        func bad(_ f: String, _ m: String) -> TrainingError { TrainingError(file: file, field: f, message: m) }
        guard epochs >= 1 else { throw bad("epochs", "must be ≥ 1, got \(epochs)") }
        guard batchSize >= 1 else { throw bad("batch_size", "must be ≥ 1, got \(batchSize)") }
        guard microBatch >= 0 else { throw bad("micro_batch", "must be ≥ 0 (0: half the batch), got \(microBatch)") }
        guard learningRate > 0, learningRate.isFinite else { throw bad("learning_rate", "must be positive, got \(learningRate)") }
        guard (0 ... epochs).contains(jointEpochs) else { throw bad("joint_epochs", "must be 0…epochs (\(epochs)), got \(jointEpochs)") }
        guard jointLRFactor > 0, jointLRFactor.isFinite else { throw bad("joint_lr_factor", "must be positive, got \(jointLRFactor)") }
        guard clipNorm >= 0 else { throw bad("clip_norm", "must be ≥ 0, got \(clipNorm)") }
        guard maxSeconds >= 0 else { throw bad("max_seconds", "must be ≥ 0, got \(maxSeconds)") }
        guard emaDecay >= 0, emaDecay < 1 else { throw bad("ema_decay", "must be in [0, 1), got \(emaDecay)") }
        try lrSchedule.validate(file: file)
        try bandLoss.validate(file: file)
        // The band loss compares the predicted blocks with the DFT S(k) of the unrotated structure;
        // an augmented batch predicts in a rotated orbital frame, so the pair would be inconsistent.
        guard !(bandLoss.isActive && stage2.augmentRotations) else {
            throw bad("band_loss", "cannot be combined with stage2.augment_rotations (the DFT reference is not rotated); turn one off")
        }
        do { try stage2.validate() } catch let e as ModelError { throw TrainingError(file: file, message: e.description) }
    }
}

/// The hybrid configuration inside a checkpoint ("hybrid" group, JSON attribute with "kind").
public final class HybridConfigPart: Checkpointable {
    public var config: HybridConfig
    public init(_ config: HybridConfig) { self.config = config }
    public func save(to file: HDF5File, group: String) throws {
        try file.createGroup(group)
        try file.setAttribute("json", string: String(decoding: try stableJSON(config), as: UTF8.self), on: group)
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
        try kind(open(path))
    }

    /// The kind of an open checkpoint file.
    public static func kind(_ file: HDF5File) throws -> ModelKind {
        try requireModelConfiguration(file)
        return file.exists("hybrid") ? .hybrid : .stage1
    }

    /// Throws unless the file holds a model configuration (every HarmoSE model checkpoint does).
    static func requireModelConfiguration(_ file: HDF5File) throws {
        guard file.exists("config") else { throw TrainingError(file: file.path, field: "/config", message: "not a HarmoSE model checkpoint (no model configuration)") }
    }

    /// Opens a checkpoint file (parsed once, in a child process: HDF5File(readingAt:)).
    public static func open(_ path: String) throws -> HDF5File {
        guard FileManager.default.fileExists(atPath: path) else { throw TrainingError(file: path, message: "no such checkpoint") }
        return try HDF5File(readingAt: path)
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
        try loadStage1(open(path))
    }

    /// The stage-1 model of an open checkpoint file: configuration and weights from one read.
    public static func loadStage1(_ file: HDF5File) throws -> HamiltonianModel<Float> {
        let model = try HamiltonianModel<Float>(config: ModelConfigPart.read(file))
        try Checkpoint.load(from: file, parts: ["model": model.parameters])
        return model
    }

    public static func loadHybrid(_ path: String) throws -> HybridHamiltonianModel<Float> {
        try loadHybrid(open(path))
    }

    /// The hybrid model of an open checkpoint file: configuration and weights from one read.
    public static func loadHybrid(_ file: HDF5File) throws -> HybridHamiltonianModel<Float> {
        guard try kind(file) == .hybrid else {
            throw TrainingError(file: file.path, field: "/hybrid", message: "a stage-1 checkpoint, not a hybrid one (run refine on it first)")
        }
        let part = HybridConfigPart(HybridConfig(stage1: ModelConfig(), stage2: Stage2Config()))
        try part.load(from: file, group: "hybrid")
        let model = try HybridHamiltonianModel<Float>(config: part.config)
        try Checkpoint.load(from: file, parts: ["model": model.stage1.parameters, "stage2": model.stage2.parameters])
        return model
    }

    /// Starts `model` from the hybrid checkpoint at `url` (file or refine folder): both stages'
    /// weights. Its stage 1 must have the model's stage-1 configuration (its weights may differ:
    /// a jointly fine-tuned descendant of the same stage 1) and its stage 2 the same architecture;
    /// it may correct more block groups than `model` (those weights are not used). Returns whether
    /// its stage-1 weights differ from the model's.
    @discardableResult
    public static func initialise(_ model: HybridHamiltonianModel<Float>, from url: URL) throws -> Bool {
        let path = try resolve(url).path
        let file = try open(path)
        let source = try loadHybrid(file)
        guard source.stage1.config == model.stage1.config else {
            throw TrainingError(file: path, field: "/config", message: "its stage 1 has another configuration than the stage 1 being refined; fine-tune only a hybrid of this stage 1")
        }
        let mine = model.stage2.config
        var theirs = source.stage2.config
        // The groups are checked below; the seed, initial scale and augmentation are not architecture.
        theirs.groups = mine.groups; theirs.seed = mine.seed; theirs.outputInit = mine.outputInit; theirs.augmentRotations = mine.augmentRotations
        guard mine == theirs else {
            throw TrainingError(file: path, field: "/hybrid stage2", message: "its stage-2 architecture \(String(decoding: try stableJSON(theirs), as: UTF8.self)) differs from the configured \(String(decoding: try stableJSON(mine), as: UTF8.self))")
        }
        let missing = model.stage2.config.groups?.filter { name in BlockGroup(name: name).map { !source.stage2.config.corrects($0) } ?? true } ?? []
        guard missing.isEmpty else {
            throw TrainingError(file: path, field: "/hybrid stage2.groups", message: "has no stage-2 weights for \(missing.joined(separator: ", ")), which the training data needs")
        }
        let tuned = zip(source.stage1.parameters.tensors, model.stage1.parameters.tensors).contains { $0.data != $1.data }
        try Checkpoint.load(from: file, parts: ["model": model.stage1.parameters, "stage2": model.stage2.parameters])
        return tuned
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
    /// Thread budget and data-parallel workers of the run (results do not depend on it).
    public var execution: ExecutionContext
    /// A hybrid checkpoint (or refine folder) whose weights start this run instead of stage 1
    /// and a random stage 2: fine-tuning, e.g. with a band loss or jointly, of an already refined
    /// model. Its stage 1 must have this run's stage-1 configuration (the weights may be a joint
    /// fine-tune's), its stage 2 the configured architecture.
    public var initialHybrid: URL?
    /// Run the frozen stage 1 once per structure and reuse its outputs in every epoch that does
    /// not train it (off only to compare against running it on every batch: same numbers).
    var cacheStage1 = true

    /// `stage1`: a train output folder (its best.h5 and splits.json are used) or a checkpoint file.
    public init(config: RefineConfig, stage1: URL, outputDirectory: URL) {
        self.config = config; self.stage1 = stage1; self.outputDirectory = outputDirectory
        execution = .current
    }

    var bestPath: URL { outputDirectory.appendingPathComponent("best.h5") }
    var lastPath: URL { outputDirectory.appendingPathComponent("last.h5") }

    @discardableResult
    public func run(data: [URL]) throws -> RefineSummary {
        try execution.run { try runExclusive(data: data) }
    }

    func runExclusive(data: [URL]) throws -> RefineSummary {
        // A killed earlier run may have left checkpoint temporaries here (issue #12).
        for checkpoint in [lastPath, bestPath] { AtomicOutput.removeAbandonedTemporaries(besides: checkpoint) }
        try config.validate(file: "refine configuration")
        let unitsPerBatch = (config.batchSize + config.unitSize - 1) / config.unitSize
        if group.size > unitsPerBatch {
            throw TrainingError(file: "refine configuration", field: "micro_batch",
                                message: "\(unitsPerBatch) units of work per batch (batch_size \(config.batchSize), micro_batch \(config.unitSize)) cannot be shared by \(group.size) ranks: use at most \(unitsPerBatch) ranks, or a smaller micro_batch or larger batch_size")
        }
        let checkpoint = try HybridCheckpoint.resolve(stage1)
        guard try HybridCheckpoint.kind(checkpoint.path) == .stage1 else {
            throw TrainingError(file: checkpoint.path, message: "already a hybrid checkpoint; refine needs a stage-1 one")
        }
        let base = try HybridCheckpoint.loadStage1(checkpoint.path)
        let modelConfig = base.config

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
        let trainSamples = try samples(splits.train)
        var stage2Config = config.stage2
        if stage2Config.groups == nil {
            stage2Config.groups = trainSamples.reduce(into: Set<BlockGroup>()) { $0.formUnion($1.graph.groups) }.sorted().map(\.description)
        }
        let model = try HybridHamiltonianModel(stage1: base, stage2: stage2Config)
        log("stage 1 from \(checkpoint.path): \(base.trainableCount) parameters; stage 2 (\(config.stage2.mode.rawValue)): \(model.stage2.trainableCount) parameters, correcting \(stage2Config.groups!.count) of \(base.groups.count) block groups")
        model.freezeStage1(true)
        if let initialHybrid, try HybridCheckpoint.initialise(model, from: initialHybrid) {
            log("stage 1 from \(initialHybrid.path): jointly fine-tuned weights, not \(checkpoint.lastPathComponent)'s")
        }

        let engine = try DataParallel(model, context: execution)
        // With a weight average, validation runs on its own engine over the averaged weights
        // (the cached stage-1 outputs serve both: stage 1 is the same frozen model).
        let average = config.emaDecay > 0 ? try WeightAverage(of: model, decay: config.emaDecay) : nil
        let evalEngine = try average.map { try DataParallel($0.model, context: execution) } ?? engine
        let evalModel = average?.model ?? model
        let train = try prepare(trainSamples, model, engine), validation = try prepare(samples(splits.validation), model, engine)
        let test = try prepare(samples(splits.test), model, engine)
        if validation.isEmpty {
            log("warning: no validation structures: the \"val\" numbers are the TRAINING set's, not a held-out error; give at least 2 structures for a real validation")
        }
        let bandLoss = config.bandLoss.isActive
            ? try BandLoss(config: config.bandLoss, records: (splits.train + splits.validation).compactMap { byName[$0] })
            : nil
        let bandSelector = config.selection == .band
            ? try BandLoss.selector(bandsAbove: config.bandLoss.bandsAbove, records: splits.validation.compactMap { byName[$0] })
            : nil
        log("split (from stage 1): \(train.count) train, \(validation.count) validation, \(test.count) test")
        let configData = try stableJSON(config, pretty: true)
        if writes { try AtomicOutput.write(configData, to: outputDirectory.appendingPathComponent("config.json")) }

        let adam2 = Adam<Float>(learningRate: config.learningRate)
        let adam1 = Adam<Float>(learningRate: config.learningRate * config.jointLRFactor)
        let curve = outputDirectory.appendingPathComponent("learning_curve.jsonl")
        // Wall-clock time per epoch (Timings.swift): kept out of the curve, metrics and checkpoints.
        let timings = TimingsFile(directory: outputDirectory)
        if writes { try? FileManager.default.removeItem(at: curve); timings.reset() }
        var curveText = ""
        let batchesPerEpoch = (train.count + config.batchSize - 1) / config.batchSize
        var augmentRNG = SplitMix64(seed: config.seed ^ 0xA06_3E17)
        let started = Date()
        var best = Double.infinity, bestEpoch = 0, epoch = 0
        let checkpoints = CheckpointWriter(background: execution.threads > 1)
        defer { try? checkpoints.finish() }
        while epoch < config.epochs {
            epoch += 1
            let joint = epoch > config.epochs - config.jointEpochs
            model.freezeStage1(!joint)
            engine.synchronise()
            let epochStart = Date()
            let order = DataParallel<HybridHamiltonianModel<Float>>.epochOrder(count: train.count, seed: config.seed, epoch: epoch)
            var trainMetrics = EpochMetrics(), lossSum = 0.0
            for b in 0 ..< batchesPerEpoch {
                let members = order[(b * config.batchSize) ..< min(order.count, (b + 1) * config.batchSize)].map { train[$0] }
                // Rotations are drawn here, in batch order, so they do not depend on the workers.
                let rotations = config.stage2.augmentRotations
                    ? members.map { _ in Rotation(uniform: augmentRNG.nextUnit(), augmentRNG.nextUnit(), augmentRNG.nextUnit()) } : nil
                let entries = members.reduce(0) { $0 + $1.prepared.targets.entryCount }
                let indexed = units(Array(members.indices), size: config.unitSize)
                let stepSeed = config.seed &+ UInt64(epoch) &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(b)
                let (value, parts) = try engine.step(indexed, entries: entries, group: group, loss: { replica, unit, entries in
                    let (blocks, _, targets, batch) = try forward(replica, unit.map { members[$0] }, rotations: rotations.map { r in unit.map { r[$0] } },
                                                                  frozenStage1: !joint, config: modelConfig)
                    let l = try batchLoss(blocks, targets, meanOver: entries)
                    guard let bandLoss else { return l }
                    // The band term rides on the unit's loss tensor; its statistics travel in the record.
                    let band = try bandLoss(blocks, batch: batch, stepSeed: stepSeed)
                    return BatchLoss(loss: try l.loss + band.loss * Float(config.bandLoss.weight), absSum: l.absSum,
                                     squareSum: l.squareSum, entries: l.entries, bandSquareSum: band.squareSum, bandCount: band.count)
                }, update: {
                    if config.lrSchedule.isProgressBased {
                        let p = LRSchedule.progress(step: (epoch - 1) * batchesPerEpoch + b, totalSteps: config.epochs * batchesPerEpoch,
                                                    seconds: Date().timeIntervalSince(started), maxSeconds: config.maxSeconds)
                        adam2.learningRate = config.lrSchedule.rate(base: config.learningRate, progress: p)
                        adam1.learningRate = adam2.learningRate * config.jointLRFactor
                    }
                    if config.clipNorm > 0 { _ = clipGradientNorm(model.stage2.parameters, maxNorm: config.clipNorm) }
                    adam2.step(model.stage2.parameters)
                    if joint {
                        if config.clipNorm > 0 { _ = clipGradientNorm(model.stage1.parameters, maxNorm: config.clipNorm) }
                        adam1.step(model.stage1.parameters)
                    }
                    average?.update(from: model)
                })
                guard value.isFinite else { throw TrainingError(file: outputDirectory.path, message: "refinement diverged: loss is \(value) at epoch \(epoch), batch \(b + 1)") }
                lossSum += value * Double(entries)
                for l in parts { trainMetrics.absSum(l) }
                trainMetrics.structures += members.count
                progress?((epoch - 1) * batchesPerEpoch + b + 1, config.epochs * batchesPerEpoch, value)
            }
            if group.size > 1 {
                let sums = group.sum([trainMetrics.mae, trainMetrics.rmse, Double(trainMetrics.entries)])
                trainMetrics.mae = sums[0]; trainMetrics.rmse = sums[1]; trainMetrics.entries = Int(sums[2])
            }
            trainMetrics.finish(lossSum: lossSum)
            if average != nil { evalEngine.synchronise() }
            let val = validation.isEmpty ? RefineMetrics(stage1: trainMetrics, hybrid: trainMetrics) : try evaluate(evalEngine, validation, frozenStage1: !joint, config: modelConfig, bandLoss: bandLoss, bandSelector: bandSelector)
            let selected = config.selection.value(of: val.hybrid)
            let improved = config.selection.improves(selected, on: best)
            if improved { best = selected; bestEpoch = epoch }
            let meta: [String: Double] = ["epoch": Double(epoch), "best_epoch": Double(bestEpoch), "best_loss": best]
            // Taken now, written while the next epoch trains (CheckpointWriter.swift); without a
            // weight average best.h5 and last.h5 of an improved epoch are the same file, written once.
            if writes {
                let last = try Checkpoint.take(parts: HybridCheckpoint.parts(model), metadata: meta, for: lastPath.path)
                if !improved {
                    try checkpoints.submit([(last, [lastPath.path])])
                } else if average == nil {
                    try checkpoints.submit([(last, [bestPath.path, lastPath.path])])
                } else {
                    try checkpoints.submit([(try Checkpoint.take(parts: HybridCheckpoint.parts(evalModel), metadata: meta, for: bestPath.path), [bestPath.path]),
                                            (last, [lastPath.path])])
                }
            }
            curveText += String(format: "{\"best\": %@, \"epoch\": %d, \"joint\": %@, \"train_loss\": %.8g, \"train_mae_meV\": %.6f, %@%@\"val_loss\": %.8g, \"val_mae_meV\": %.6f, \"val_stage1_mae_meV\": %.6f}\n",
                                improved ? "true" : "false", epoch, joint ? "true" : "false", trainMetrics.loss, trainMetrics.mae * 1000,
                                val.hybrid.bandMAE.map { String(format: "\"val_band_mae_meV\": %.6f, ", $0 * 1000) } ?? "",
                                val.hybrid.bandRMSE.map { String(format: "\"val_band_rmse_meV\": %.6f, ", $0 * 1000) } ?? "",
                                val.hybrid.loss, val.hybrid.mae * 1000, val.stage1.mae * 1000)
            if writes { try AtomicOutput.write(Data(curveText.utf8), to: curve) }
            // The epoch's wall clock, checkpoints and curve included.
            let seconds = Date().timeIntervalSince(started)
            if writes {
                try timings.append(EpochTiming(epoch: epoch, epochSeconds: Date().timeIntervalSince(epochStart), elapsedSeconds: seconds,
                                               structures: trainMetrics.structures, edges: 0))
            }
            log(String(format: "epoch %d/%d  train MAE %.3f meV | val MAE hybrid %.3f meV, stage 1 %.3f meV%@%@",
                       epoch, config.epochs, trainMetrics.mae * 1000, val.hybrid.mae * 1000, val.stage1.mae * 1000,
                       improved ? " (best)" : "", joint ? " [joint]" : ""))
            if config.maxSeconds > 0, group.broadcast([seconds >= config.maxSeconds ? 1 : 0])[0] == 1 {
                log("stopping: time budget of \(config.maxSeconds) s reached")
                break
            }
        }
        model.freezeStage1(true)
        try checkpoints.finish()
        group.barrier()  // rank 0 wrote best.h5; the others read it after it did
        try Checkpoint.load(from: bestPath.path, parts: ["model": model.stage1.parameters, "stage2": model.stage2.parameters])
        engine.synchronise()
        // The best checkpoint may hold a jointly tuned stage 1: the cached outputs are stale then.
        let stage1Changed = bestEpoch > config.epochs - config.jointEpochs
        let finalValidation = validation.isEmpty ? RefineMetrics() : try evaluate(engine, validation, frozenStage1: !stage1Changed, config: modelConfig)
        let finalTest = test.isEmpty ? nil : try evaluate(engine, test, frozenStage1: !stage1Changed, config: modelConfig)
        let summary = RefineSummary(epochsRun: epoch, bestEpoch: bestEpoch, validation: finalValidation, test: finalTest,
                                    seconds: Date().timeIntervalSince(started), checkpoint: bestPath)
        if writes { try writeMetrics(summary, parameters: model.stage2.trainableCount) }
        return summary
    }

    /// A structure prepared for refinement: its batch and targets, stage 2's geometry, and — while
    /// stage 1 is frozen — stage 1's outputs, computed once here instead of on every batch of
    /// every epoch.
    struct HybridSample {
        let prepared: PreparedSample
        let geometry: Stage2Geometry<Float>
        let stage1: ModelOutput<Float>?
    }

    func prepare(_ samples: [Sample], _ model: HybridHamiltonianModel<Float>, _ engine: DataParallel<HybridHamiltonianModel<Float>>) throws -> [HybridSample] {
        let s2 = model.stage2
        return try engine.map(samples.count) { replica, i in
            let p = try PreparedSample(samples[i], config: model.stage1.config)
            let geometry = try Stage2Geometry<Float>(p.batch, shLmax: s2.config.shLmax, radialCount: s2.config.radialCount, cutoff: s2.cutoff)
            return HybridSample(prepared: p, geometry: geometry, stage1: cacheStage1 ? try replica.stage1(p.batch) : nil)
        }
    }

    /// The hybrid's blocks for a unit of structures (and stage 1's), with its targets: from the
    /// cached stage-1 outputs when stage 1 is frozen and the structures are not rotated, else from
    /// a full forward pass (rotated first when augmenting).
    func forward(_ model: HybridHamiltonianModel<Float>, _ unit: [HybridSample], rotations: [Rotation]?, frozenStage1: Bool,
                 config: ModelConfig) throws -> (blocks: [BlockGroup: Tensor<Float>], stage1: [BlockGroup: Tensor<Float>], targets: BatchTargets<Float>, batch: GraphBatch<Float>) {
        if let rotations {
            let rotated = try zip(unit, rotations).map { s, rotation -> Sample in
                let sample = s.prepared.sample
                let (structure, target) = try BlockTargets.rotated(sample.graph.structure, operator: sample.target, by: rotation)
                return Sample(graph: try StructureGraph(name: sample.name, structure: structure, keys: sample.graph.keys, config: config), target: target!)
            }
            let batch = try GraphBatch<Float>(rotated.map(\.graph), config: config)
            let out = try model(batch)
            return (out.blocks, out.stage1.blocks, try BatchTargets(batch, samples: rotated), batch)
        }
        let (batch, targets) = try PreparedSample.unit(unit.map(\.prepared), config: config)
        let geometry = try Stage2Geometry.concatenated(unit.map(\.geometry))
        if frozenStage1, unit.allSatisfy({ $0.stage1 != nil }) {
            let base = try ModelOutput.concatenated(unit.map { $0.stage1! })
            let delta = try model.stage2(batch, stage1: base, geometry: geometry)
            return (try HybridHamiltonianModel.combine(base.blocks, delta), base.blocks, targets, batch)
        }
        let out = try model(batch, geometry: geometry)
        return (out.blocks, out.stage1.blocks, targets, batch)
    }

    /// Stage-1 and hybrid errors on samples, without gradients, structure by structure on the
    /// engine's workers, summed in sample order.
    func evaluate(_ engine: DataParallel<HybridHamiltonianModel<Float>>, _ samples: [HybridSample], frozenStage1: Bool,
                  config: ModelConfig, bandLoss: BandLoss? = nil, bandSelector: BandLoss? = nil) throws -> RefineMetrics {
        let all = units(samples, size: self.config.unitSize)
        let units = group.size == 1 ? all : all.enumerated().filter { group.partition.owns($0.offset) }.map(\.element)
        let parts = try engine.map(units.count) { replica, i in
            let (blocks, base, targets, batch) = try forward(replica, units[i], rotations: nil, frozenStage1: frozenStage1, config: config)
            let band = try bandLoss?.validation(blocks, batch: batch) ?? BandLoss.ValidationSums()
            let selection = try bandSelector?.validation(blocks, batch: batch) ?? BandLoss.ValidationSums()
            return (try batchLoss(base, targets), try batchLoss(blocks, targets), band, selection)
        }
        var m = RefineMetrics(), sum1 = 0.0, sum2 = 0.0, band = BandLoss.ValidationSums(), selection = BandLoss.ValidationSums()
        for (l1, l2, b, sel) in parts {
            sum1 += Double(l1.loss.item) * Double(l1.entries); sum2 += Double(l2.loss.item) * Double(l2.entries)
            m.stage1.absSum(l1); m.hybrid.absSum(l2)
            band.add(b); selection.add(sel)
        }
        if group.size > 1 {
            let s = group.sum([sum1, sum2, m.stage1.mae, m.stage1.rmse, m.hybrid.mae, m.hybrid.rmse, Double(m.stage1.entries), Double(m.hybrid.entries)]
                              + band.flat + selection.flat)
            sum1 = s[0]; sum2 = s[1]; m.stage1.mae = s[2]; m.stage1.rmse = s[3]; m.hybrid.mae = s[4]; m.hybrid.rmse = s[5]
            m.stage1.entries = Int(s[6]); m.hybrid.entries = Int(s[7])
            band = BandLoss.ValidationSums(flat: s[8 ..< 12]); selection = BandLoss.ValidationSums(flat: s[12 ..< 16])
        }
        m.stage1.structures = samples.count; m.hybrid.structures = samples.count
        m.stage1.finish(lossSum: sum1); m.hybrid.finish(lossSum: sum2)
        // The hybrid's selection loss includes the band term it was trained with (stage 1 alone
        // keeps its real-space loss: it is the frozen baseline, reported for comparison).
        if bandLoss != nil { m.hybrid.addBandTerm(band, structures: samples.count, weight: self.config.bandLoss.weight) }
        if bandSelector != nil { m.hybrid.setBandMAE(selection) }
        return m
    }

    func writeMetrics(_ s: RefineSummary, parameters: Int) throws {
        func block(_ m: EpochMetrics) -> String {
            String(format: "{\"mae_meV\": %.6f, \"rmse_meV\": %.6f, \"loss\": %.8g, \"structures\": %d, \"entries\": %d}",
                   m.mae * 1000, m.rmse * 1000, m.loss, m.structures, m.entries)
        }
        func pair(_ m: RefineMetrics) -> String { "{\"hybrid\": \(block(m.hybrid)), \"stage1\": \(block(m.stage1))}" }
        var text = "{\n  \"kind\": \"hybrid\",\n  \"mode\": \"\(config.stage2.mode.rawValue)\",\n  \"epochs_run\": \(s.epochsRun),\n  \"best_epoch\": \(s.bestEpoch),\n"
        text += "  \"stage2_parameters\": \(parameters),\n"
        text += "  \"validation\": \(pair(s.validation))"
        if let t = s.test { text += ",\n  \"test\": \(pair(t))" }
        text += "\n}\n"
        try AtomicOutput.write(Data(text.utf8), to: outputDirectory.appendingPathComponent("metrics.json"))
    }
}

// MARK: - Pipeline stage kind

/// `refine`: stage 2 on top of a `train` stage's artifact. Writes best.h5/last.h5 (hybrid
/// checkpoints `predict` reads), learning_curve.jsonl, metrics.json, config.json, splits.json.
/// Takes the same configuration file as `harmose refine --config` (defaults: `RefineConfig`'s,
/// the same as the command's); a parameter given in pipeline.json overrides the file's value.
public struct RefineStageKind: StageKind {
    public init() {}
    public let name = "refine"
    public let summary = "Trains stage 2 (graph Transformer) of the HarmoSE hybrid on the residual of a frozen stage-1 model from a train stage; optional joint fine-tune."
    /// 2: defaults and configuration shared with `harmose refine` (RefineConfig), `config` input.
    /// 3: no wall-clock values in the curve (keys sorted), metrics.json or checkpoints (timings.jsonl).
    /// 4: stage 2 corrects only the block groups of the training data; optional `init` input.
    public let artifactVersion = 4
    public let parameters: [ParameterSpec] = [
        ParameterSpec("mode", .choice(["config", "empirical", "strict"]), default: .string("config"), help: "empirical (the paper's) or strict (equivariant by construction); config: the config's"),
        ParameterSpec("epochs", .integer, default: 0, minimum: 0, maximum: 100_000, help: "training epochs (0: the config's)"),
        ParameterSpec("learning_rate", .number, default: 0, minimum: 0, maximum: 1, help: "Adam learning rate of stage 2 (0: the config's)"),
        ParameterSpec("batch_size", .integer, default: 0, minimum: 0, maximum: 10_000, help: "structures per mini-batch (0: the config's)"),
        ParameterSpec("joint_epochs", .integer, default: -1, minimum: -1, maximum: 100_000, help: "final epochs that also train stage 1 (-1: the config's)"),
        ParameterSpec("joint_lr_factor", .number, default: 0, minimum: 0, maximum: 1, help: "stage-1 learning rate = learning_rate × this, in joint epochs (0: the config's)"),
        ParameterSpec("width", .integer, default: 0, minimum: 0, maximum: 4096, help: "hidden width of stage 2 (0: the config's)"),
        ParameterSpec("heads", .integer, default: 0, minimum: 0, maximum: 64, help: "attention heads, must divide width (0: the config's)"),
        ParameterSpec("layers", .integer, default: -1, minimum: -1, maximum: 64, help: "Transformer blocks (-1: the config's)"),
        ParameterSpec("feed_forward", .integer, default: 0, minimum: 0, maximum: 16_384, help: "hidden width of the feed-forward and edge MLPs (0: the config's)"),
        ParameterSpec("sh_lmax", .integer, default: -1, minimum: -1, maximum: 8, help: "spherical harmonics of the edge direction up to this l (-1: the config's)"),
        ParameterSpec("radial_count", .integer, default: 0, minimum: 0, maximum: 256, help: "radial basis functions of |r| (0: the config's)"),
        ParameterSpec("max_seconds", .number, default: 0, minimum: 0, maximum: 1e9, help: "stop after this many seconds (0: the config's)"),
        ParameterSpec("seed", .integer, default: -1, minimum: -1, maximum: 1e15, help: "seed of the initialisation, batch order and augmentation (-1: the config's)"),
    ]
    public let inputs: [InputSpec] = [
        InputSpec("model", .pathOrStage, help: "a train stage (or its output folder / checkpoint file): the stage-1 model, frozen"),
        InputSpec("data", .pathOrStage, multiple: true, help: "the DFT dataset stage 1 was trained on: folders, archives or ingest stages (stage 1's splits.json picks the structures)"),
        InputSpec("config", .path, required: false, help: "refine configuration JSON, as for `harmose refine --config` (docs/stage2.md); default: the defaults"),
        InputSpec("init", .pathOrStage, required: false, help: "a refine stage (or hybrid checkpoint) of the same stage 1 whose weights start this one: fine-tuning, as `harmose refine --init`"),
    ]

    public func run(_ context: StageContext) throws -> [String: JSONValue] {
        let p = context.parameters
        var config = try context.inputs["config"]?.first.map { try RefineConfig.load($0) } ?? RefineConfig()
        if p.int("epochs") > 0 { config.epochs = p.int("epochs") }
        if p.double("learning_rate") > 0 { config.learningRate = p.double("learning_rate") }
        if p.int("batch_size") > 0 { config.batchSize = p.int("batch_size") }
        if p.int("joint_epochs") >= 0 { config.jointEpochs = p.int("joint_epochs") }
        if p.double("joint_lr_factor") > 0 { config.jointLRFactor = p.double("joint_lr_factor") }
        if p.double("max_seconds") > 0 { config.maxSeconds = p.double("max_seconds") }
        if p.int("seed") >= 0 { config.seed = UInt64(p.int("seed")); config.stage2.seed = config.seed }
        if let mode = Stage2Mode(rawValue: p.string("mode")) { config.stage2.mode = mode }
        if p.int("width") > 0 { config.stage2.width = p.int("width") }
        if p.int("heads") > 0 { config.stage2.heads = p.int("heads") }
        if p.int("layers") >= 0 { config.stage2.layers = p.int("layers") }
        if p.int("feed_forward") > 0 { config.stage2.feedForward = p.int("feed_forward") }
        if p.int("sh_lmax") >= 0 { config.stage2.shLmax = p.int("sh_lmax") }
        if p.int("radial_count") > 0 { config.stage2.radialCount = p.int("radial_count") }
        try config.validate(file: "pipeline.json: stage \(context.stageName)")
        let refiner = Refiner(config: config, stage1: context.input("model"), outputDirectory: context.outputDirectory)
        refiner.initialHybrid = context.inputs["init"]?.first
        refiner.execution = executionContext(for: context)
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

    /// Under mpirun every rank trains its share of each batch (Engine.swift, DataParallel.swift).
    public var rankParallelism: RankParallelism { .collective }
}

