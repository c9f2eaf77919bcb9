// The training loop. Reproducibility: the split, the batch order of each epoch (SplitMix64 of
// seed and epoch) and the initialisation are all seeded, kernels are thread-count independent,
// so a seeded run is bit-for-bit repeatable; a resumed run restores parameters, Adam moments and
// the schedule from last.h5 and continues with the next epoch's batch order, so it equals the
// uninterrupted run. The gradient step goes through one flat buffer summed over `group`'s ranks, the hook a
// data-parallel run fills in.
import Autograd
import Foundation
import HDF5Kit
import Models
import Plots
import StageAPI
import Structures

/// Losses and errors of one pass over a set of structures.
public struct EpochMetrics: Equatable, Sendable {
    public var loss = 0.0
    /// Mean absolute error over orbital entries, eV.
    public var mae = 0.0
    public var rmse = 0.0
    public var entries = 0
    public var structures = 0
    public var edges = 0
    /// Validation with a band loss: RMS level error (eV) at the fixed validation k-points; the
    /// band term (weight × mean band loss) is part of `loss`, so the best checkpoint is chosen by
    /// what the run optimises, not by the real-space error alone.
    public var bandRMSE: Double?
    /// Validation under `"selection": "band"`: mean absolute level error (eV) over the window at
    /// the fixed selection k-points, S(k) filtered as `harmose eval` does (BandLoss.selector).
    public var bandMAE: Double?

    /// Adds the band term of a validation pass (sums over `structures` structures) to `loss`.
    mutating func addBandTerm(_ t: BandLoss.ValidationSums, structures: Int, weight: Double) {
        loss += weight * t.lossSum / Double(max(structures, 1))
        bandRMSE = t.count > 0 ? (t.squareSum / Double(t.count)).squareRoot() : nil
    }

    /// Sets the band MAE of a selection pass (BandLoss.selector; nil without levels).
    mutating func setBandMAE(_ t: BandLoss.ValidationSums) {
        bandMAE = t.count > 0 ? t.absSum / Double(t.count) : nil
    }
}

/// The resolved model configuration inside a checkpoint (JSON string attribute), so `predict`
/// needs nothing but the checkpoint.
public final class ModelConfigPart: Checkpointable {
    public var config: ModelConfig
    public init(_ config: ModelConfig) { self.config = config }
    public func save(to file: HDF5File, group: String) throws {
        try file.createGroup(group)
        let data = try stableJSON(config)
        try file.setAttribute("json", string: String(decoding: data, as: UTF8.self), on: group)
    }
    public func load(from file: HDF5File, group: String) throws {
        let text = try file.stringAttribute("json", of: group)
        do { config = try JSONDecoder().decode(ModelConfig.self, from: Data(text.utf8)) } catch {
            throw CheckpointError(file: file.path, field: "\(group)@json", message: "not a model configuration: \(error)")
        }
    }

    /// Reads only the configuration of a checkpoint file.
    public static func read(_ path: String) throws -> ModelConfig {
        try read(HybridCheckpoint.open(path))
    }

    /// Reads only the configuration of an open checkpoint file.
    public static func read(_ file: HDF5File) throws -> ModelConfig {
        try HybridCheckpoint.requireModelConfiguration(file)
        let part = ModelConfigPart(ModelConfig())
        try part.load(from: file, group: "config")
        return part.config
    }
}

/// Loss value and its error sums for one batch.
struct BatchLoss<T: Scalar> {
    let loss: Tensor<T>
    let absSum: Double, squareSum: Double, entries: Int
    /// Σ (ε − ε_DFT)² and the (k, band) count of the band-space term, when it is on.
    var bandSquareSum = 0.0, bandCount = 0
}

/// Masked loss over every group of a batch (or of one structure of it), divided by `meanOver`
/// entries (default: the counted entries of `targets`, i.e. the batch mean). The one loss of
/// stage 1, the hybrid and joint fine-tuning; `maeWeight` weighs the MAE term of loss "mse+mae".
func batchLoss<T: Scalar>(_ blocks: [BlockGroup: Tensor<T>], _ targets: BatchTargets<T>, kind: LossKind = .mse, huberDelta: Double = 0.01,
                          normalizeBy scales: [BlockGroup: Double]? = nil, meanOver: Int? = nil, maeWeight: Double = 1) throws -> BatchLoss<T> {
    var total: Tensor<T>? = nil
    var absSum = 0.0, squareSum = 0.0
    for g in blocks.keys.sorted() {
        guard let target = targets.values[g], let mask = targets.masks[g] else {
            throw TrainingError(file: "targets", message: "no targets for block group \(g)")
        }
        let pred = blocks[g]!
        var diff = try (try pred - target) * mask
        let width = pred.shape[1]
        for r in 0 ..< pred.shape[0] where mask.data[r] != 0 {
            for k in 0 ..< width { let d = Double(diff.data[r * width + k]); absSum += abs(d); squareSum += d * d }
        }
        if let s = scales?[g] { diff = diff * T(1 / s) }
        let term: Tensor<T>
        switch kind {
        case .mse: term = try diff.square().sum()
        case .mae: term = try diff.abs().sum()
        case .mseMae: term = try diff.square().sum() + diff.abs().sum() * T(maeWeight)
        case .huber:
            let a = diff.abs(), delta = T(huberDelta)
            let m = try a - (a - delta).relu()     // min(|d|, δ)
            term = try (try m.square() * T(0.5) + (try a - m) * delta).sum()
        }
        total = try total.map { try $0 + term } ?? term
    }
    let n = max(meanOver ?? targets.entryCount, 1)
    let loss = (total ?? Tensor<T>(scalar: 0)) * T(1 / Double(n))
    return BatchLoss(loss: loss, absSum: absSum, squareSum: squareSum, entries: targets.entryCount)
}

func batchLoss<T: Scalar>(_ out: ModelOutput<T>, _ targets: BatchTargets<T>, kind: LossKind, huberDelta: Double,
                          normalizeBy scales: [BlockGroup: Double]?, meanOver: Int? = nil, maeWeight: Double = 1) throws -> BatchLoss<T> {
    try batchLoss(out.blocks, targets, kind: kind, huberDelta: huberDelta, normalizeBy: scales, meanOver: meanOver, maeWeight: maeWeight)
}

/// Consecutive units of `size` members (the last may be shorter).
func units<Member>(_ members: [Member], size: Int) -> [[Member]] {
    stride(from: 0, to: members.count, by: max(1, size)).map { Array(members[$0 ..< min(members.count, $0 + max(1, size))]) }
}

/// One structure ready to run: its single-structure batch (harmonics and radial bases computed
/// once) and its targets. Built once per run, so no epoch recomputes geometry.
struct PreparedSample {
    let sample: Sample
    let batch: GraphBatch<Float>
    let targets: BatchTargets<Float>
    /// The batch's edge geometry, to join this structure into a larger unit without recomputing.
    let features: EdgeFeatures

    /// `features`: the structure's edge geometry from a features artifact (else computed here).
    init(_ sample: Sample, config: ModelConfig, features: EdgeFeatures? = nil) throws {
        self.sample = sample
        batch = try GraphBatch<Float>([sample.graph], config: config, precomputed: features.map { [$0] })
        targets = try BatchTargets(batch, samples: [sample])
        self.features = EdgeFeatures(harmonics: batch.harmonics.data.map(Double.init), radial: batch.radial.data)
    }

    /// A unit of work: its structures as one batch (from their cached geometry) and its targets.
    static func unit(_ members: [PreparedSample], config: ModelConfig) throws -> (batch: GraphBatch<Float>, targets: BatchTargets<Float>) {
        if members.count == 1 { return (members[0].batch, members[0].targets) }
        let batch = try GraphBatch<Float>(members.map(\.sample.graph), config: config, precomputed: members.map(\.features))
        return (batch, try BatchTargets(batch, samples: members.map(\.sample)))
    }

    /// Prepares samples, taking their geometry from `features` (a features artifact read for this
    /// model) when given; a structure missing from it, or with other edges, is an error naming
    /// `featuresFile` and the structure.
    static func prepare(_ samples: [Sample], config: ModelConfig, context: ExecutionContext,
                        features: [String: (edges: [BlockKey], features: EdgeFeatures)]? = nil, featuresFile: String = "") throws -> [PreparedSample] {
        try context.run {
            try samples.map { s in
                guard let features else { return try PreparedSample(s, config: config) }
                guard let f = features[s.name] else {
                    throw TrainingError(file: featuresFile, field: s.name, message: "structure is not in the features artifact (was it made from the same data?)")
                }
                guard f.edges == s.graph.edges.map(\.key) else {
                    throw TrainingError(file: featuresFile, field: s.name, message: "edges differ from the model's (\(f.edges.count) stored, \(s.graph.edges.count) from the Hamiltonian's blocks); re-run the features stage on this data")
                }
                return try PreparedSample(s, config: config, features: f.features)
            }
        }
    }
}

/// What a finished run reports.
public struct TrainingSummary: Sendable {
    public var epochsRun: Int
    public var bestEpoch: Int
    /// The best validation value of the configured selection metric (loss, or MAE / band MAE in eV).
    public var bestValidationLoss: Double
    public var validation: EpochMetrics
    public var test: EpochMetrics?
    public var stoppedEarly: Bool
    public var seconds: Double
    /// True when there was no validation split (a single structure): `validation` then holds the
    /// training set's numbers, flagged as such in metrics.json and the log.
    public var validationIsTrainingSet = false
}

public final class Trainer {
    public let config: TrainConfig
    public let outputDirectory: URL
    /// Permanent messages (one per epoch and a few more).
    public var log: (String) -> Void = { _ in }
    /// Per-batch progress within the run: (batches done, batches total, current loss).
    public var progress: ((Int, Int, Double) -> Void)?
    /// The ranks sharing each batch (one process: SingleProcess); only rank 0 writes files. Each
    /// rank computes the units its partition owns; one all-reduce per step sums the flat gradient.
    public var group: any ProcessGroup = SingleProcess.shared
    /// Thread budget (and data-parallel workers: one per thread, each with its own model replica)
    /// of the run. Results do not depend on it.
    public var execution: ExecutionContext
    /// A features artifact (folder or features.h5) holding the structures' edge geometry: read
    /// instead of computing it (nil: computed once at the start of the run).
    public var features: URL?
    /// Stop after this epoch even if more are configured (tests of resume).
    public var stopAfterEpoch: Int?

    public init(config: TrainConfig, outputDirectory: URL) {
        self.config = config
        self.outputDirectory = outputDirectory
        execution = .current
    }

    var lastPath: URL { outputDirectory.appendingPathComponent("last.h5") }
    var bestPath: URL { outputDirectory.appendingPathComponent("best.h5") }
    var curvePath: URL { outputDirectory.appendingPathComponent("learning_curve.jsonl") }
    var splitsPath: URL { outputDirectory.appendingPathComponent("splits.json") }
    /// Wall-clock time per epoch (Timings.swift): kept out of every other file of the run.
    var timings: TimingsFile { TimingsFile(directory: outputDirectory) }

    /// Trains on the structures under `data`; with `resume`, continues from last.h5 in the
    /// output directory.
    @discardableResult
    public func run(data: [URL], resume: Bool = false) throws -> TrainingSummary {
        try execution.run { try runExclusive(data: data, resume: resume) }
    }

    func runExclusive(data: [URL], resume: Bool) throws -> TrainingSummary {
        try config.validate(file: "training configuration")
        let unitsPerBatch = (config.batchSize + config.unitSize - 1) / config.unitSize
        if group.size > unitsPerBatch {
            throw TrainingError(file: "training configuration", field: "micro_batch",
                                message: "\(unitsPerBatch) units of work per batch (batch_size \(config.batchSize), micro_batch \(config.unitSize)) cannot be shared by \(group.size) ranks: use at most \(unitsPerBatch) ranks, or a smaller micro_batch or larger batch_size")
        }
        // A killed earlier run may have left checkpoint temporaries here (issue #12).
        for checkpoint in [lastPath, bestPath] { AtomicOutput.removeAbandonedTemporaries(besides: checkpoint) }
        if resume, !FileManager.default.fileExists(atPath: lastPath.path) {
            throw TrainingError(file: lastPath.path, message: "--resume given but there is no last checkpoint to resume from")
        }
        let records = try Dataset.readRecords(data, limit: config.maxStructures, log: log)
        guard records.count >= 1 else { throw TrainingError(file: data.first?.path ?? "data", message: "no structures") }
        try DataParallelStep.checkSameData(records, group: group, what: data.map(\.path).joined(separator: ", "))
        let writes = group.isRoot
        // The output folder appears only once the data has been read.
        if writes { try FileManager.default.createDirectory(at: outputDirectory, withIntermediateDirectories: true) }
        let splits: Splits
        if resume, FileManager.default.fileExists(atPath: splitsPath.path) {
            splits = try Splits.read(splitsPath)
        } else {
            splits = Splits.make(names: records.map(\.name), fractions: config.split, seed: config.seed)
            if writes { try splits.write(to: splitsPath) }
        }
        var modelConfig = config.model
        modelConfig.basis = try Dataset.basis(of: records)
        let byName = Dictionary(uniqueKeysWithValues: records.map { ($0.name, $0) })
        func pick(_ names: [String]) throws -> [DFTRecord] {
            try names.map { n in
                guard let r = byName[n] else { throw TrainingError(file: splitsPath.path, message: "structure \"\(n)\" is not in the data") }
                return r
            }
        }
        var trainSamples = try Dataset.samples(try pick(splits.train), config: modelConfig)
        if modelConfig.avgNeighbors == nil { modelConfig.avgNeighbors = Dataset.averageNeighbors(trainSamples) }
        trainSamples = try Dataset.samples(try pick(splits.train), config: modelConfig)
        let valSamples = try Dataset.samples(try pick(splits.validation), config: modelConfig)
        let testSamples = try Dataset.samples(try pick(splits.test), config: modelConfig)
        log("split: \(trainSamples.count) train, \(valSamples.count) validation, \(testSamples.count) test (seed \(splits.seed))")
        if valSamples.isEmpty {
            log("warning: no validation structures (\(records.count) structure(s) in all): the \"val\" numbers are the TRAINING set's, not a held-out error; give at least 2 structures for a real validation")
        }

        let model = try HamiltonianModel<Float>(config: modelConfig)
        for (g, s) in try model.estimateStatistics(Dataset.groupedTargets(trainSamples)) { try model.setStatistics(s, for: g) }
        let stored = try features.map { try FeaturesFile.read($0, config: modelConfig) }
        let featuresFile = features.map { FeaturesFile.path($0).path } ?? ""
        let trainSet = try PreparedSample.prepare(trainSamples, config: modelConfig, context: execution, features: stored, featuresFile: featuresFile)
        let valSet = try PreparedSample.prepare(valSamples, config: modelConfig, context: execution, features: stored, featuresFile: featuresFile)
        let testSet = try PreparedSample.prepare(testSamples, config: modelConfig, context: execution, features: stored, featuresFile: featuresFile)
        if features != nil { log("edge geometry from \(featuresFile)") }
        log("model: \(model.trainableCount) parameters, hidden irreps \(model.hiddenIrreps), \(modelConfig.layers) layers")
        let optimizer = Adam<Float>(learningRate: config.learningRate)
        let schedule = try ReduceLROnPlateau(learningRate: config.learningRate, factor: config.plateauFactor,
                                             patience: config.plateauPatience, minLR: config.minLearningRate)
        let configPart = ModelConfigPart(modelConfig)
        var parts: [String: Checkpointable] = ["model": model.parameters, "optimizer": optimizer, "schedule": schedule, "config": configPart]
        // Accuracy recipe hooks (Schedules.swift, BandLoss.swift): the weight average is what is
        // validated and saved as best.h5's "model"; last.h5 keeps the raw weights plus "ema".
        let average = config.emaDecay > 0 ? try WeightAverage(of: model, decay: config.emaDecay) : nil
        if let average { parts["ema"] = average.model.parameters }
        let evalModel = average?.model ?? model
        var bestParts = parts
        bestParts["model"] = evalModel.parameters
        let bandLoss = config.bandLoss.isActive ? try BandLoss(config: config.bandLoss, records: try pick(splits.train + splits.validation)) : nil
        let bandSelector = config.selection == .band ? try BandLoss.selector(bandsAbove: config.bandLoss.bandsAbove, records: try pick(splits.validation)) : nil
        var startEpoch = 1, bestEpoch = 0, badEpochs = 0, bestLoss = Double.infinity, previousSeconds = 0.0
        if resume {
            let meta = try Checkpoint.load(from: lastPath.path, parts: parts)
            guard configPart.config == modelConfig else {
                throw TrainingError(file: lastPath.path, field: "config", message: "the checkpoint's model configuration differs from this run's (same --config and data are needed to resume)")
            }
            startEpoch = Int(meta["epoch"] ?? 0) + 1
            bestEpoch = Int(meta["best_epoch"] ?? 0)
            badEpochs = Int(meta["bad_epochs"] ?? 0)
            bestLoss = meta["best_loss"] ?? .infinity
            average?.restore(updates: Int(meta["ema_updates"] ?? 0))
            if writes {
                try truncateCurve(after: startEpoch - 1)
                if let elapsed = try timings.resume(after: startEpoch - 1) {
                    previousSeconds = elapsed
                } else if config.maxSeconds > 0 || config.lrSchedule.isProgressBased {
                    log("warning: \(timings.url.path) has no time for epoch \(startEpoch - 1): the training time before this resume is not counted (max_seconds, time-based schedule)")
                }
            }
            // Every rank counts from rank 0's elapsed time.
            if group.size > 1 { previousSeconds = group.sum([group.isRoot ? previousSeconds : 0])[0] }
            log("resuming after epoch \(startEpoch - 1) (best epoch \(bestEpoch))")
        } else if writes {
            try? FileManager.default.removeItem(at: curvePath)
            timings.reset()
        }
        var resolved = config
        resolved.model = modelConfig
        let configData = try stableJSON(resolved, pretty: true)
        if writes { try AtomicOutput.write(configData, to: outputDirectory.appendingPathComponent("config.json")) }

        let scales: [BlockGroup: Double]? = config.normalize
            ? Dictionary(uniqueKeysWithValues: model.groups.compactMap { g in model.statistics(of: g).map { (g, $0.scale) } }) : nil
        let batchesPerEpoch = (trainSamples.count + config.batchSize - 1) / config.batchSize
        let lastEpoch = min(config.epochs, stopAfterEpoch ?? .max)
        let started = Date()
        var stoppedEarly = false, epoch = startEpoch - 1
        var lastValidation = EpochMetrics()
        optimizer.learningRate = schedule.learningRate
        let engine = try DataParallel(model, context: execution)
        // With a weight average, validation runs on its own engine over the averaged weights.
        let evalEngine = try average.map { try DataParallel($0.model, context: execution) }
        let checkpoints = CheckpointWriter(background: execution.threads > 1)
        defer { try? checkpoints.finish() }
        while epoch < lastEpoch {
            epoch += 1
            let epochStart = Date()
            let order = DataParallel<HamiltonianModel<Float>>.epochOrder(count: trainSet.count, seed: config.seed, epoch: epoch)
            var train = EpochMetrics(), lossSum = 0.0, bandSquares = 0.0, bandCount = 0
            for b in 0 ..< batchesPerEpoch {
                let members = order[(b * config.batchSize) ..< min(order.count, (b + 1) * config.batchSize)].map { trainSet[$0] }
                let entries = members.reduce(0) { $0 + $1.targets.entryCount }
                let stepSeed = config.seed &+ UInt64(epoch) &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(b)
                let (value, parts) = try engine.step(units(members, size: config.unitSize), entries: entries, group: group, loss: { replica, unit, entries in
                    let (batch, targets) = try PreparedSample.unit(unit, config: modelConfig)
                    let blocks = try replica(batch).blocks
                    let l = try batchLoss(blocks, targets, kind: config.loss, huberDelta: config.huberDelta,
                                          normalizeBy: scales, meanOver: entries, maeWeight: config.maeWeight)
                    guard let bandLoss else { return l }
                    // The band term rides on the unit's loss tensor; its statistics travel in the
                    // returned record (workers run this closure concurrently).
                    let band = try bandLoss(blocks, batch: batch, stepSeed: stepSeed)
                    return BatchLoss(loss: try l.loss + band.loss * Float(config.bandLoss.weight), absSum: l.absSum,
                                     squareSum: l.squareSum, entries: l.entries, bandSquareSum: band.squareSum, bandCount: band.count)
                }, update: {
                    if config.clipNorm > 0 { clipGradientNorm(model.parameters, maxNorm: config.clipNorm) }
                    if config.lrSchedule.isProgressBased {
                        let p = LRSchedule.progress(step: (epoch - 1) * batchesPerEpoch + b, totalSteps: config.epochs * batchesPerEpoch,
                                                    seconds: previousSeconds + Date().timeIntervalSince(started), maxSeconds: config.maxSeconds)
                        optimizer.learningRate = config.lrSchedule.rate(base: config.learningRate, progress: p)
                    }
                    optimizer.step(model.parameters)
                    average?.update(from: model)
                })
                guard value.isFinite else { throw TrainingError(file: outputDirectory.path, message: "training diverged: loss is \(value) at epoch \(epoch), batch \(b + 1)") }
                lossSum += value * Double(entries)
                for l in parts { train.absSum(l); bandSquares += l.bandSquareSum; bandCount += l.bandCount }
                train.structures += members.count; train.edges += members.reduce(0) { $0 + $1.batch.edgeCount }
                progress?((epoch - startEpoch) * batchesPerEpoch + b + 1, (lastEpoch - startEpoch + 1) * batchesPerEpoch, value)
            }
            if group.size > 1 {
                // Error sums of every rank's units; structures and edges are the whole epoch's.
                let sums = group.sum([train.mae, train.rmse, Double(train.entries)])
                train.mae = sums[0]; train.rmse = sums[1]; train.entries = Int(sums[2])
                train.structures = trainSet.count; train.edges = trainSet.reduce(0) { $0 + $1.batch.edgeCount }
            }
            train.finish(lossSum: lossSum)
            evalEngine?.synchronise()
            let validation = valSet.isEmpty ? train : try evaluate(evalEngine ?? engine, valSet, scales: scales, config: modelConfig, bandLoss: bandLoss, bandSelector: bandSelector)
            lastValidation = validation
            let plateauRate = try schedule.step(metric: validation.loss)
            if !config.lrSchedule.isProgressBased { optimizer.learningRate = plateauRate }
            let selected = config.selection.value(of: validation)
            let improved = config.selection.improves(selected, on: bestLoss)
            if improved { bestLoss = selected; bestEpoch = epoch; badEpochs = 0 } else { badEpochs += 1 }
            var meta: [String: Double] = ["epoch": Double(epoch), "best_epoch": Double(bestEpoch), "bad_epochs": Double(badEpochs),
                                          "best_loss": bestLoss, "seed": Double(config.seed)]
            if let average { meta["ema_updates"] = Double(average.updates) }
            if writes {
                // Taken now, written while the next epoch trains (CheckpointWriter.swift); without a
                // weight average best.h5 and last.h5 hold the same parts: written once.
                let last = try Checkpoint.take(parts: parts, metadata: meta, for: lastPath.path)
                if !improved {
                    try checkpoints.submit([(last, [lastPath.path])])
                } else if average == nil {
                    try checkpoints.submit([(last, [bestPath.path, lastPath.path])])
                } else {
                    try checkpoints.submit([(try Checkpoint.take(parts: bestParts, metadata: meta, for: bestPath.path), [bestPath.path]), (last, [lastPath.path])])
                }
                var bandFields: [String: CurveValue] = [:]
                if bandCount > 0 { bandFields["train_band_rmse_meV"] = .num((bandSquares / Double(bandCount)).squareRoot() * 1000) }
                if let r = validation.bandRMSE { bandFields["val_band_rmse_meV"] = .num(r * 1000) }
                if let a = validation.bandMAE { bandFields["val_band_mae_meV"] = .num(a * 1000) }
                try appendCurve(bandFields.merging([
                    "epoch": .int(epoch), "train_loss": .num(train.loss), "train_mae_meV": .num(train.mae * 1000),
                    "val_loss": .num(validation.loss), "val_mae_meV": .num(validation.mae * 1000), "val_rmse_meV": .num(validation.rmse * 1000),
                    "learning_rate": .num(optimizer.learningRate), "best": .bool(improved),
                ]) { a, _ in a })
                try plotCurve()
            }
            // The epoch's wall clock, checkpoints and curve included.
            let seconds = previousSeconds + Date().timeIntervalSince(started)
            let epochSeconds = Date().timeIntervalSince(epochStart)
            if writes {
                try timings.append(EpochTiming(epoch: epoch, epochSeconds: epochSeconds, elapsedSeconds: seconds,
                                               structures: train.structures, edges: train.edges))
            }
            log(String(format: "epoch %d/%d  train loss %.4g  MAE %.3f meV | val loss %.4g  MAE %.3f meV%@  lr %.2g  %.1fs",
                       epoch, config.epochs, train.loss, train.mae * 1000, validation.loss, validation.mae * 1000,
                       improved ? " (best)" : "", optimizer.learningRate, epochSeconds))
            if config.earlyStoppingPatience > 0, badEpochs >= config.earlyStoppingPatience {
                log("early stopping: no validation improvement for \(badEpochs) epochs")
                stoppedEarly = true
                break
            }
            // Rank 0's clock decides, so every rank stops after the same epoch.
            if config.maxSeconds > 0, group.broadcast([seconds >= config.maxSeconds ? 1 : 0])[0] == 1 {
                log("stopping: time budget of \(config.maxSeconds) s reached")
                stoppedEarly = true
                break
            }
        }

        // Final numbers with the best weights (rank 0 wrote them; the others read them after it did).
        try checkpoints.finish()
        group.barrier()
        if FileManager.default.fileExists(atPath: bestPath.path) {
            try Checkpoint.load(from: bestPath.path, parts: ["model": model.parameters])
            engine.synchronise()
        }
        let bestValidation = valSet.isEmpty ? lastValidation : try evaluate(engine, valSet, scales: scales, config: modelConfig)
        let test = testSet.isEmpty ? nil : try evaluate(engine, testSet, scales: scales, config: modelConfig)
        let summary = TrainingSummary(epochsRun: epoch, bestEpoch: bestEpoch, bestValidationLoss: bestLoss, validation: bestValidation,
                                      test: test, stoppedEarly: stoppedEarly, seconds: previousSeconds + Date().timeIntervalSince(started),
                                      validationIsTrainingSet: valSamples.isEmpty)
        if writes { try writeMetrics(summary, parameters: model.trainableCount) }
        return summary
    }

    /// Loss and errors of the model on samples, without gradients, structure by structure on the
    /// engine's workers, summed in sample order.
    func evaluate(_ engine: DataParallel<HamiltonianModel<Float>>, _ samples: [PreparedSample],
                  scales: [BlockGroup: Double]?, config modelConfig: ModelConfig, bandLoss: BandLoss? = nil,
                  bandSelector: BandLoss? = nil) throws -> EpochMetrics {
        let all = units(samples, size: config.unitSize)
        let units = group.size == 1 ? all : all.enumerated().filter { group.partition.owns($0.offset) }.map(\.element)
        let parts = try engine.map(units.count) { replica, i in
            let (batch, targets) = try PreparedSample.unit(units[i], config: modelConfig)
            let blocks = try replica(batch)
            let band = try bandLoss?.validation(blocks.blocks, batch: batch) ?? BandLoss.ValidationSums()
            let selection = try bandSelector?.validation(blocks.blocks, batch: batch) ?? BandLoss.ValidationSums()
            return (try batchLoss(blocks, targets, kind: config.loss, huberDelta: config.huberDelta, normalizeBy: scales,
                                  maeWeight: config.maeWeight), band, selection)
        }
        var m = EpochMetrics(), lossSum = 0.0, band = BandLoss.ValidationSums(), selection = BandLoss.ValidationSums()
        for (l, b, sel) in parts {
            lossSum += Double(l.loss.item) * Double(l.entries)
            m.absSum(l)
            band.add(b); selection.add(sel)
        }
        if group.size > 1 {
            let s = group.sum([lossSum, m.mae, m.rmse, Double(m.entries)] + band.flat + selection.flat)
            lossSum = s[0]; m.mae = s[1]; m.rmse = s[2]; m.entries = Int(s[3])
            band = BandLoss.ValidationSums(flat: s[4 ..< 8]); selection = BandLoss.ValidationSums(flat: s[8 ..< 12])
        }
        m.structures = samples.count; m.edges = samples.reduce(0) { $0 + $1.batch.edgeCount }
        m.finish(lossSum: lossSum)
        if bandLoss != nil { m.addBandTerm(band, structures: samples.count, weight: config.bandLoss.weight) }
        if bandSelector != nil { m.setBandMAE(selection) }
        return m
    }

    func truncateCurve(after epoch: Int) throws {
        guard let text = try? String(contentsOf: curvePath, encoding: .utf8) else { return }
        let kept = text.split(separator: "\n").filter { line in
            guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let e = obj["epoch"] as? Int else { return false }
            return e <= epoch
        }
        try AtomicOutput.write(Data((kept.joined(separator: "\n") + (kept.isEmpty ? "" : "\n")).utf8), to: curvePath)
    }

    func appendCurve(_ fields: [String: CurveValue]) throws {
        let line = "{" + fields.keys.sorted().map { "\"\($0)\": \(fields[$0]!.json)" }.joined(separator: ", ") + "}\n"
        if let handle = try? FileHandle(forWritingTo: curvePath) {
            defer { try? handle.close() }
            try handle.seekToEnd()
            try handle.write(contentsOf: Data(line.utf8))
        } else {
            try Data(line.utf8).write(to: curvePath)
        }
    }

    /// learning_curve.svg: train and validation MAE per epoch (log scale), best epoch marked.
    func plotCurve() throws {
        var chart = try LearningCurve.read(curvePath).chart(keys: ["train_mae_meV", "val_mae_meV"], title: "Stage-1 learning curve")
        chart.yLabel = "H MAE (meV)"
        try chart.write(to: outputDirectory.appendingPathComponent("learning_curve.svg"))
    }

    func writeMetrics(_ s: TrainingSummary, parameters: Int) throws {
        func block(_ m: EpochMetrics) -> String {
            String(format: "{\"mae_meV\": %.6f, \"rmse_meV\": %.6f, \"mae_uEh\": %.6f, \"loss\": %.8g, \"structures\": %d, \"entries\": %d}",
                   m.mae * 1000, m.rmse * 1000, m.mae / Units.hartreeToEV * 1e6, m.loss, m.structures, m.entries)
        }
        var text = "{\n  \"epochs_run\": \(s.epochsRun),\n  \"best_epoch\": \(s.bestEpoch),\n  \"stopped_early\": \(s.stoppedEarly),\n"
        text += "  \"parameters\": \(parameters),\n"
        text += "  \"validation\": \(block(s.validation))"
        if s.validationIsTrainingSet { text += ",\n  \"validation_is_training_set\": true" }
        if let t = s.test { text += ",\n  \"test\": \(block(t))" }
        text += "\n}\n"
        try AtomicOutput.write(Data(text.utf8), to: outputDirectory.appendingPathComponent("metrics.json"))
    }
}

enum CurveValue {
    case int(Int), num(Double), bool(Bool)
    var json: String {
        switch self {
        case let .int(i): return "\(i)"
        case let .num(d): return d.isFinite ? "\(d)" : "null"
        case let .bool(b): return b ? "true" : "false"
        }
    }
}

extension EpochMetrics {
    mutating func absSum<T>(_ l: BatchLoss<T>) {
        mae += l.absSum; rmse += l.squareSum; entries += l.entries
    }
    mutating func finish(lossSum: Double) {
        let n = Double(max(entries, 1))
        loss = lossSum / n; mae /= n; rmse = (rmse / n).squareRoot()
    }
}
