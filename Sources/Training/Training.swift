// Training: everything between DFT records and a trained stage-1 model, and back to predicted
// Hamiltonian files. Owns the training configuration (`TrainConfig`, JSON), featurisation of
// records into model graphs with targets (`Sample`, `Dataset`), seeded splits stored in
// splits.json (`Splits`), losses with masks (`LossKind`), the training loop with Adam,
// ReduceLROnPlateau, clipping, early stopping, checkpoints, exact resume and the learning curve
// (`Trainer`), prediction to DeepH files (`Predictor`), and the pipeline stage kinds `features`,
// `train` and `predict`.
//
// Outputs of a training run (all written atomically): config.json (the resolved configuration),
// splits.json, learning_curve.jsonl (one JSON object per epoch), best.h5 and last.h5 (HDF5
// checkpoints with parameters, Adam moments, scheduler state and the model config),
// metrics.json (final validation/test errors) — none with a wall-clock value, so a seeded run
// writes the same bytes every time — and timings.jsonl (seconds per epoch, Timings.swift).
// docs/model.md describes them.
import Foundation
import StageAPI
import Models
import Structures

/// JSON as Training writes it (files, and configurations inside checkpoints): keys sorted, so equal
/// values give equal bytes in every run, whatever order a dictionary (the model's `basis`) iterates in.
func stableJSON<T: Encodable>(_ value: T, pretty: Bool = false) throws -> Data {
    let encoder = JSONEncoder()
    encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys] : [.sortedKeys]
    return try encoder.encode(value)
}

/// A bad training input, naming the file or configuration key at fault.
public struct TrainingError: Error, CustomStringConvertible, LocalizedError, Equatable {
    public var file: String
    public var field: String?
    public var message: String
    public init(file: String, field: String? = nil, message: String) { self.file = file; self.field = field; self.message = message }
    public var description: String { field.map { "\(file): \($0): \(message)" } ?? "\(file): \(message)" }
    public var errorDescription: String? { description }
}

/// Decodes a JSON configuration file; every failure names the file and, where JSONDecoder
/// knows it, the key (`model.irreps`, …). Shared by the train and refine configurations.
func decodeConfig<C: Decodable>(_ type: C.Type, at url: URL, what: String, keys: ConfigKeys) throws -> C {
    let data: Data
    do { data = try Data(contentsOf: url) } catch {
        throw TrainingError(file: url.path, message: "cannot read: \(ErrorText.reason(of: error))")
    }
    // Syntax first, with the line and column JSONDecoder does not give.
    do { _ = try JSONValue.parse(data) } catch let e as JSONSyntaxError {
        throw TrainingError(file: url.path, field: "line \(e.line), column \(e.column)", message: "invalid JSON: \(e.message)")
    }
    if let object = try? JSONSerialization.jsonObject(with: data) { try keys.check(object, path: "", file: url.path) }
    do { return try JSONDecoder().decode(C.self, from: data) } catch let e as ModelError {
        throw TrainingError(file: url.path, message: e.description)
    } catch let DecodingError.typeMismatch(_, ctx) {
        throw TrainingError(file: url.path, field: ctx.codingPath.map(\.stringValue).joined(separator: "."), message: "wrong type: \(ctx.debugDescription)")
    } catch let DecodingError.dataCorrupted(ctx) {
        let field = ctx.codingPath.map(\.stringValue).joined(separator: ".")
        throw TrainingError(file: url.path, field: field.isEmpty ? nil : field, message: "invalid JSON: \(ctx.debugDescription)")
    } catch {
        throw TrainingError(file: url.path, message: "invalid \(what): \(error)")
    }
}

/// The keys a configuration object accepts, and those of its nested objects: a misspelt key is an
/// error naming the file and the key with the closest valid one, not a silently ignored setting.
struct ConfigKeys {
    let keys: [String]
    var nested: [String: ConfigKeys] = [:]

    static let train = ConfigKeys(keys: TrainConfig.jsonKeys, nested: ["model": ConfigKeys(keys: ModelConfig.jsonKeys)])
    static let refine = ConfigKeys(keys: RefineConfig.jsonKeys, nested: ["stage2": ConfigKeys(keys: Stage2Config.jsonKeys)])

    func check(_ value: Any, path: String, file: String) throws {
        guard let object = value as? [String: Any] else { return }   // the decoder reports wrong types
        for key in object.keys.sorted() {
            let field = path.isEmpty ? key : "\(path).\(key)"
            guard keys.contains(key) else {
                throw TrainingError(file: file, field: field, message: "unknown key \(ConfigKeys.suggestion(key, among: keys))")
            }
            if let inner = nested[key] { try inner.check(object[key]!, path: field, file: file) }
        }
    }

    /// "(did you mean \"x\"?)" for a close match, else the valid keys.
    static func suggestion(_ word: String, among candidates: [String]) -> String {
        func distance(_ a: [Character], _ b: [Character]) -> Int {
            if a.isEmpty { return b.count }
            // Edit distance with adjacent transpositions ("widht" is one edit from "width").
            var previous = Array(0 ... b.count), beforePrevious = previous
            for i in 1 ... a.count {
                var current = [i] + Array(repeating: 0, count: b.count)
                for j in stride(from: 1, through: b.count, by: 1) {
                    current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
                    if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] { current[j] = min(current[j], beforePrevious[j - 2] + 1) }
                }
                beforePrevious = previous
                previous = current
            }
            return previous[b.count]
        }
        let scored = candidates.map { ($0, distance(Array(word.lowercased()), Array($0.lowercased()))) }.sorted { ($0.1, $0.0) < ($1.1, $1.0) }
        if let best = scored.first, best.1 <= max(1, word.count / 3) { return "(did you mean \"\(best.0)\"?)" }
        return "(valid keys: " + candidates.sorted().joined(separator: ", ") + ")"
    }
}

/// Loss over orbital entries.
public enum LossKind: String, Codable, Sendable, CaseIterable {
    case mse, mae, huber
    /// MSE + mae_weight × MAE: the MSE fits the large entries, the MAE keeps pulling the many
    /// small ones once their squares no longer matter.
    case mseMae = "mse+mae"
}

/// What picks best.h5 (and what early stopping watches): the validation loss, the validation
/// MAE of H, or the last epoch. The loss is dominated by the squares of a few large errors, so one
/// extreme validation structure (e.g. a bond 25 % shorter than any training one) can hold best.h5
/// at an early epoch while the typical error keeps falling; "mae" follows the typical error, but a
/// small validation set's MAE can still be ruled by that one structure (on water, epoch 166 of
/// 850 of a cosine schedule whose final weights have the lower training and held-out error).
/// "last" takes the weights at the end of the schedule — with `ema_decay`, their average — the
/// usual choice for a schedule that decays to the end; it never stops early. A band term in the
/// loss is seen only by "loss". "band" follows the validation band MAE as `harmose eval` measures
/// it (window occupied + band_loss.bands_above, S(k) threshold 1e-3) at 8 fixed k-points per
/// structure (BandLoss.selector), with or without a band term in the loss: what users judge, and
/// steadier than the band term's RMSE at the training threshold that "loss" then sees.
public enum SelectionMetric: String, Codable, Sendable, CaseIterable {
    case loss, mae, last, band

    /// The number of `metrics` this selection reports as the best epoch's (lower is better):
    /// the loss, the MAE ("mae" and "last"), or the band MAE ("band"; the MAE when a run without
    /// validation structures has none, as its log warns).
    public func value(of metrics: EpochMetrics) -> Double {
        switch self {
        case .loss: metrics.loss
        case .mae, .last: metrics.mae
        case .band: metrics.bandMAE ?? metrics.mae
        }
    }

    /// Whether an epoch whose `value` is `candidate` replaces the best so far, `best`.
    public func improves(_ candidate: Double, on best: Double) -> Bool { self == .last || candidate < best }
}

/// Everything `harmose train` reads from --config. Keys are snake_case; all are optional.
public struct TrainConfig: Codable, Equatable, Sendable {
    public var model = ModelConfig.defaults
    public var epochs = 200
    /// Structures per mini-batch.
    public var batchSize = 4
    public var learningRate = 2e-3
    public var loss = LossKind.mse
    /// Huber transition in eV (only for loss = "huber").
    public var huberDelta = 0.01
    /// Weight each element pair's errors by 1/σ² of its blocks (σ from the training set).
    public var normalize = false
    /// Train / validation / test fractions of the structures (the rest after train and val is test).
    public var split = [0.8, 0.1, 0.1]
    /// Seed of the split and of each epoch's batch order (model.seed seeds the initialisation).
    public var seed: UInt64 = 42
    /// Gradient clipping by global norm (0 = off).
    public var clipNorm = 10.0
    public var plateauFactor = 0.5
    public var plateauPatience = 10
    public var minLearningRate = 1e-6
    /// Stop when the validation loss has not improved for this many epochs (0 = never).
    public var earlyStoppingPatience = 30
    /// Stop after this many seconds of training (0 = no limit); checked between epochs.
    public var maxSeconds = 0.0
    /// Use at most this many structures from the data (0 = all), taken in name order.
    public var maxStructures = 0
    // --- accuracy recipe (Schedules.swift, BandLoss.swift) ---
    /// Weight of the MAE term of loss "mse+mae".
    public var maeWeight = 1.0
    /// Learning-rate schedule; "plateau" (the default) uses plateau_factor / plateau_patience.
    public var lrSchedule = LRSchedule()
    /// Exponential moving average of the weights for validation and best.h5 (0 = off).
    public var emaDecay = 0.0
    /// Band-space loss added to the real-space loss (weight 0 = off).
    public var bandLoss = BandLossConfig()
    /// The validation number that picks best.h5 and drives early stopping.
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
        case model, epochs, batchSize = "batch_size", learningRate = "learning_rate", loss, huberDelta = "huber_delta"
        case normalize, split, seed, clipNorm = "clip_norm", plateauFactor = "plateau_factor"
        case plateauPatience = "plateau_patience", minLearningRate = "min_learning_rate"
        case earlyStoppingPatience = "early_stopping_patience", maxSeconds = "max_seconds", maxStructures = "max_structures", microBatch = "micro_batch"
        case maeWeight = "mae_weight", lrSchedule = "lr_schedule", emaDecay = "ema_decay", bandLoss = "band_loss"
        case selection
    }

    /// The JSON keys a configuration file may use (unknown ones are rejected).
    public static var jsonKeys: [String] { CodingKeys.allCases.map(\.rawValue) }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = TrainConfig()
        model = try c.decodeIfPresent(ModelConfig.self, forKey: .model) ?? d.model
        epochs = try c.decodeIfPresent(Int.self, forKey: .epochs) ?? d.epochs
        batchSize = try c.decodeIfPresent(Int.self, forKey: .batchSize) ?? d.batchSize
        learningRate = try c.decodeIfPresent(Double.self, forKey: .learningRate) ?? d.learningRate
        loss = try c.decodeIfPresent(LossKind.self, forKey: .loss) ?? d.loss
        huberDelta = try c.decodeIfPresent(Double.self, forKey: .huberDelta) ?? d.huberDelta
        normalize = try c.decodeIfPresent(Bool.self, forKey: .normalize) ?? d.normalize
        split = try c.decodeIfPresent([Double].self, forKey: .split) ?? d.split
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? d.seed
        clipNorm = try c.decodeIfPresent(Double.self, forKey: .clipNorm) ?? d.clipNorm
        plateauFactor = try c.decodeIfPresent(Double.self, forKey: .plateauFactor) ?? d.plateauFactor
        plateauPatience = try c.decodeIfPresent(Int.self, forKey: .plateauPatience) ?? d.plateauPatience
        minLearningRate = try c.decodeIfPresent(Double.self, forKey: .minLearningRate) ?? d.minLearningRate
        earlyStoppingPatience = try c.decodeIfPresent(Int.self, forKey: .earlyStoppingPatience) ?? d.earlyStoppingPatience
        maxSeconds = try c.decodeIfPresent(Double.self, forKey: .maxSeconds) ?? d.maxSeconds
        maxStructures = try c.decodeIfPresent(Int.self, forKey: .maxStructures) ?? d.maxStructures
        maeWeight = try c.decodeIfPresent(Double.self, forKey: .maeWeight) ?? d.maeWeight
        lrSchedule = try c.decodeIfPresent(LRSchedule.self, forKey: .lrSchedule) ?? d.lrSchedule
        emaDecay = try c.decodeIfPresent(Double.self, forKey: .emaDecay) ?? d.emaDecay
        bandLoss = try c.decodeIfPresent(BandLossConfig.self, forKey: .bandLoss) ?? d.bandLoss
        microBatch = try c.decodeIfPresent(Int.self, forKey: .microBatch) ?? d.microBatch
        selection = try c.decodeIfPresent(SelectionMetric.self, forKey: .selection) ?? d.selection
    }

    /// Reads a JSON config file; errors name the file and the key.
    public static func load(_ url: URL) throws -> TrainConfig {
        let config = try decodeConfig(TrainConfig.self, at: url, what: "config", keys: .train)
        try config.validate(file: url.path)
        return config
    }

    public func validate(file: String) throws {
        func bad(_ f: String, _ m: String) -> TrainingError { TrainingError(file: file, field: f, message: m) }
        guard epochs >= 1 else { throw bad("epochs", "must be ≥ 1, got \(epochs)") }
        guard batchSize >= 1 else { throw bad("batch_size", "must be ≥ 1, got \(batchSize)") }
        guard microBatch >= 0 else { throw bad("micro_batch", "must be ≥ 0 (0: half the batch), got \(microBatch)") }
        guard learningRate > 0, learningRate.isFinite else { throw bad("learning_rate", "must be positive, got \(learningRate)") }
        guard huberDelta > 0 else { throw bad("huber_delta", "must be positive, got \(huberDelta)") }
        guard split.count == 3, split.allSatisfy({ $0 >= 0 }), split[0] > 0, split.reduce(0, +) <= 1 + 1e-9 else {
            throw bad("split", "must be three fractions [train, val, test] ≥ 0 with train > 0 and sum ≤ 1, got \(split)")
        }
        guard clipNorm >= 0 else { throw bad("clip_norm", "must be ≥ 0, got \(clipNorm)") }
        guard plateauFactor > 0, plateauFactor < 1 else { throw bad("plateau_factor", "must be in (0, 1), got \(plateauFactor)") }
        guard plateauPatience >= 0, earlyStoppingPatience >= 0 else { throw bad("plateau_patience", "patience must be ≥ 0") }
        guard maxSeconds >= 0, maxStructures >= 0 else { throw bad("max_seconds", "limits must be ≥ 0") }
        guard maeWeight >= 0, maeWeight.isFinite else { throw bad("mae_weight", "must be ≥ 0, got \(maeWeight)") }
        guard emaDecay >= 0, emaDecay < 1 else { throw bad("ema_decay", "must be in [0, 1), got \(emaDecay)") }
        try lrSchedule.validate(file: file)
        try bandLoss.validate(file: file)
        do { try model.validate() } catch let e as ModelError { throw bad("model", e.description) }
    }
}
