// Learning-rate schedules and weight averaging of the training recipe: linear warm-up then cosine
// or exponential decay over the run (`LRSchedule`, the "lr_schedule" key of the train and refine
// configurations), and the exponential moving average of the weights kept as a second model
// (`WeightAverage`), evaluated and checkpointed in place of the raw weights.
//
// Why: ReduceLROnPlateau with a short patience halves the rate on every noisy validation
// plateau, so on a few hundred structures the rate collapses within minutes and training stalls
// well above what the network can fit. A schedule that is a function of progress cannot collapse
// early. Progress is steps / total steps, or — when the run has a time budget (max_seconds) —
// the larger of that and elapsed / max_seconds, so a wall-clock-limited run still reaches the
// end of its decay (that makes a time-limited run depend on the machine's speed, as the time
// limit itself already does; without max_seconds a run is bit-for-bit reproducible).
import Autograd
import Foundation
import Models

public enum LRScheduleKind: String, Codable, Sendable, CaseIterable {
    /// ReduceLROnPlateau on the validation loss (plateau_factor, plateau_patience): the old default.
    case plateau
    /// Linear warm-up, then a half cosine from learning_rate to learning_rate × final_factor.
    case cosine
    /// Linear warm-up, then learning_rate × final_factor^progress.
    case exponential
}

/// The "lr_schedule" object. Keys are snake_case, all optional.
public struct LRSchedule: Codable, Equatable, Sendable {
    public var kind = LRScheduleKind.plateau
    /// Fraction of the run spent warming up linearly from learning_rate × 0.01.
    public var warmupFraction = 0.03
    /// The rate at the end of the run, as a fraction of learning_rate.
    public var finalFactor = 0.01

    public init() {}
    public init(kind: LRScheduleKind, warmupFraction: Double = 0.03, finalFactor: Double = 0.01) {
        self.kind = kind; self.warmupFraction = warmupFraction; self.finalFactor = finalFactor
    }

    enum CodingKeys: String, CodingKey { case kind, warmupFraction = "warmup_fraction", finalFactor = "final_factor" }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = LRSchedule()
        kind = try c.decodeIfPresent(LRScheduleKind.self, forKey: .kind) ?? d.kind
        warmupFraction = try c.decodeIfPresent(Double.self, forKey: .warmupFraction) ?? d.warmupFraction
        finalFactor = try c.decodeIfPresent(Double.self, forKey: .finalFactor) ?? d.finalFactor
    }

    public func validate(file: String) throws {
        func bad(_ f: String, _ m: String) -> TrainingError { TrainingError(file: file, field: "lr_schedule.\(f)", message: m) }
        guard warmupFraction >= 0, warmupFraction < 1 else { throw bad("warmup_fraction", "must be in [0, 1), got \(warmupFraction)") }
        guard finalFactor > 0, finalFactor <= 1 else { throw bad("final_factor", "must be in (0, 1], got \(finalFactor)") }
    }

    /// Whether the rate is set per step by `rate` (else by the plateau scheduler per epoch).
    public var isProgressBased: Bool { kind != .plateau }

    /// Progress of a run: step / total steps, or elapsed / max_seconds when that is further.
    public static func progress(step: Int, totalSteps: Int, seconds: Double, maxSeconds: Double) -> Double {
        var p = Double(step) / Double(max(totalSteps, 1))
        if maxSeconds > 0 { p = max(p, seconds / maxSeconds) }
        return min(max(p, 0), 1)
    }

    /// The learning rate at `progress` ∈ [0, 1] for base rate `base`.
    public func rate(base: Double, progress p: Double) -> Double {
        if p < warmupFraction { return base * (0.01 + 0.99 * p / warmupFraction) }
        let q = warmupFraction < 1 ? (p - warmupFraction) / (1 - warmupFraction) : 1
        switch kind {
        case .plateau: return base
        case .cosine: return base * (finalFactor + (1 - finalFactor) * 0.5 * (1 + cos(Double.pi * q)))
        case .exponential: return base * pow(finalFactor, q)
        }
    }
}

/// Exponential moving average of a model's weights, held as a second model of the same
/// configuration so it can be evaluated and checkpointed like the model itself (every parameter
/// set is averaged; frozen tensors are copied). The decay ramps up as
/// min(decay, (1 + t)/(10 + t)) so early averages do not drag in the random initialisation.
final class WeightAverage<Model: ReplicableModel> {
    let decay: Double
    let model: Model
    private(set) var updates = 0

    init(of source: Model, decay: Double) throws {
        self.decay = decay
        model = try source.makeReplica()
        reset(to: source, updates: 0)
    }

    /// Sets the average to the source's weights (after loading or changing them).
    func reset(to source: Model, updates: Int) {
        for (mine, theirs) in zip(model.parameterSets, source.parameterSets) {
            for (s, p) in zip(mine.tensors, theirs.tensors) { s.data = p.data }
        }
        self.updates = updates
    }

    /// Elementwise, so the trainable tensors are shared among the context's threads (runs of
    /// about equal element count, Parallel.forRuns): part of every step, the same bits.
    func update(from source: Model) {
        let d = Float(min(decay, Double(1 + updates) / Double(10 + updates))), e = 1 - d
        var pairs: [(average: Tensor<Float>, source: Tensor<Float>)] = []
        for (mine, theirs) in zip(model.parameterSets, source.parameterSets) {
            for (s, p) in zip(mine.tensors, theirs.tensors) {
                // A frozen tensor's average is itself (d·x + (1 − d)·x drifts by rounding in Float).
                guard p.requiresGrad else { if s.data != p.data { s.data = p.data }; continue }
                pairs.append((s, p))
            }
        }
        let work = pairs
        Parallel.forRuns(sizes: work.map(\.source.count)) { r in
            for (s, p) in work[r] {
                s.data.withUnsafeMutableBufferPointer { sv in
                    p.data.withUnsafeBufferPointer { pv in for i in 0 ..< sv.count { sv[i] = d * sv[i] + e * pv[i] } }
                }
            }
        }
        updates += 1
    }

    /// Restores the update count (the weights come from the "ema" checkpoint part).
    func restore(updates: Int) { self.updates = updates }
}
