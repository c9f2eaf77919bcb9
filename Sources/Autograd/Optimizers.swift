// Optimizers.swift: Adam/AdamW with bias correction, gradient clipping by global norm, learning-
// rate schedules (ReduceLROnPlateau with PyTorch's semantics, cosine with linear warm-up) and an
// exponential moving average of the weights. Schedules only compute a learning rate; the training
// loop assigns it to `optimizer.learningRate`, so every piece is checkpointed on its own.
import Foundation
import Linalg

/// Adam (Kingma & Ba) with PyTorch's update order; AdamW when `decoupledWeightDecay`.
public final class Adam<T: Scalar> {
    public var learningRate: Double
    public let beta1: Double, beta2: Double, epsilon: Double, weightDecay: Double
    public let decoupledWeightDecay: Bool

    /// A parameter's step count and moments. A class so that the step updates each one where it
    /// is stored, several at once: taking a value out of the table and putting it back would copy
    /// m and v of every parameter on every step.
    final class State {
        var step: Int, m: [T], v: [T]
        init(step: Int, m: [T], v: [T]) { self.step = step; self.m = m; self.v = v }
    }
    var states: [String: State] = [:]

    public init(learningRate: Double, beta1: Double = 0.9, beta2: Double = 0.999, epsilon: Double = 1e-8,
                weightDecay: Double = 0, decoupledWeightDecay: Bool = false) {
        self.learningRate = learningRate; self.beta1 = beta1; self.beta2 = beta2; self.epsilon = epsilon
        self.weightDecay = weightDecay; self.decoupledWeightDecay = decoupledWeightDecay
    }

    /// AdamW with PyTorch's default decay 0.01.
    public static func adamW(learningRate: Double, weightDecay: Double = 0.01, beta1: Double = 0.9, beta2: Double = 0.999,
                             epsilon: Double = 1e-8) -> Adam {
        Adam(learningRate: learningRate, beta1: beta1, beta2: beta2, epsilon: epsilon, weightDecay: weightDecay, decoupledWeightDecay: true)
    }

    /// Steps taken for a parameter (0 before its first update).
    public func stepCount(_ name: String) -> Int { states[name]?.step ?? 0 }

    /// One update of every trainable parameter that has a gradient:
    ///   g ← g + λp (Adam) | p ← p(1 − ηλ) (AdamW);  m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²;
    ///   p ← p − η/(1−β₁ᵗ) · m / (√v/√(1−β₂ᵗ) + ε).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func step(_ params: ParameterSet<T>) {
        var work: [(tensor: Tensor<T>, grad: [T], state: State)] = []
        var size = 0
        for p in params.trainable {
            guard let grad = p.grad else { continue }
            let state = states[p.name] ?? State(step: 0, m: [T](repeating: 0, count: p.count), v: [T](repeating: 0, count: p.count))
            states[p.name] = state
            work.append((p, grad, state))
            size += p.count
        }
        // Elementwise, so sharing the parameters among threads (runs of about equal element count;
        // it is the serial part of a data-parallel step, memory-bound) changes no bit.
        let chunks = max(1, min(Parallel.workers, size >> 15))
        var bounds = [0], start = 0
        for (i, w) in work.enumerated() {
            if start >= size * bounds.count / chunks, bounds.count < chunks, i > 0 { bounds.append(i) }
            start += w.tensor.count
        }
        bounds.append(work.count)
        let items = work, cuts = bounds
        ConcurrentLoop.perform(iterations: cuts.count - 1) { c in
            for (p, grad, s) in items[cuts[c] ..< cuts[c + 1]] { self.update(s, p, grad) }
        }
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    private func update(_ s: State, _ p: Tensor<T>, _ grad: [T]) {
        s.step += 1
        let bc1 = 1 - Foundation.pow(beta1, Double(s.step)), bc2 = 1 - Foundation.pow(beta2, Double(s.step))
        let stepSize = T(learningRate / bc1), sqrtBc2 = T(bc2.squareRoot())
        let b1 = T(beta1), b2 = T(beta2), eps = T(epsilon), wd = T(weightDecay), decay = T(1 - learningRate * weightDecay)
        let decoupled = decoupledWeightDecay && weightDecay != 0, coupled = !decoupledWeightDecay && weightDecay != 0
        p.data.withUnsafeMutableBufferPointer { w in
            s.m.withUnsafeMutableBufferPointer { m in
                s.v.withUnsafeMutableBufferPointer { v in
                    for i in 0..<w.count {
                        var g = grad[i]
                        if coupled { g += wd * w[i] }
                        if decoupled { w[i] *= decay }
                        m[i] = b1 * m[i] + (1 - b1) * g
                        v[i] = b2 * v[i] + (1 - b2) * g * g
                        w[i] -= stepSize * m[i] / (v[i].squareRoot() / sqrtBc2 + eps)
                    }
                }
            }
        }
    }
}

/// Scales all trainable gradients so their joint L2 norm is at most `maxNorm` (PyTorch's
/// clip_grad_norm_: factor maxNorm/(norm + 1e-6) when below 1). Returns the norm before clipping.
@discardableResult
@_specialize(where T == Float)
@_specialize(where T == Double)
public func clipGradientNorm<T: Scalar>(_ params: ParameterSet<T>, maxNorm: Double) -> Double {
    var total = 0.0
    for p in params.trainable {
        p.grad?.withUnsafeBufferPointer { g in for x in g { total += Double(x) * Double(x) } }
    }
    let norm = total.squareRoot()
    let factor = maxNorm / (norm + 1e-6)
    if factor < 1 {
        let f = T(factor)
        for p in params.trainable where p.grad != nil { p.withGrad { g in for i in 0..<g.count { g[i] *= f } } }
    }
    return norm
}

/// Lowers the learning rate when a metric stops improving, with PyTorch's semantics:
/// better ⇔ metric < best·(1 − threshold) (rel) or < best − threshold (abs) in min mode; after
/// more than `patience` bad epochs the rate becomes max(rate·factor, minLR) (if that changes it by
/// more than `eps`), then `cooldown` epochs pass in which bad epochs are not counted.
public final class ReduceLROnPlateau {
    public enum Mode: String { case min, max }
    public enum ThresholdMode: String { case relative = "rel", absolute = "abs" }

    public let mode: Mode, thresholdMode: ThresholdMode
    public let factor: Double, patience: Int, threshold: Double, cooldown: Int, minLR: Double, eps: Double
    public private(set) var learningRate: Double
    public private(set) var best: Double
    public private(set) var badEpochs = 0
    public private(set) var cooldownCounter = 0
    public private(set) var epochs = 0

    public init(learningRate: Double, mode: Mode = .min, factor: Double = 0.1, patience: Int = 10, threshold: Double = 1e-4,
                thresholdMode: ThresholdMode = .relative, cooldown: Int = 0, minLR: Double = 0, eps: Double = 1e-8) throws {
        guard factor < 1, factor > 0 else { throw TensorError("ReduceLROnPlateau", "factor \(factor) must be in (0, 1)") }
        guard patience >= 0, cooldown >= 0, minLR >= 0 else {
            throw TensorError("ReduceLROnPlateau", "patience, cooldown and min_lr must be ≥ 0 (got \(patience), \(cooldown), \(minLR))")
        }
        self.learningRate = learningRate; self.mode = mode; self.factor = factor; self.patience = patience
        self.threshold = threshold; self.thresholdMode = thresholdMode; self.cooldown = cooldown; self.minLR = minLR; self.eps = eps
        self.best = mode == .min ? .infinity : -.infinity
    }

    func isBetter(_ a: Double) -> Bool {
        switch (mode, thresholdMode) {
        case (.min, .relative): return a < best * (1 - threshold)
        case (.min, .absolute): return a < best - threshold
        case (.max, .relative): return a > best * (1 + threshold)
        case (.max, .absolute): return a > best + threshold
        }
    }

    /// Records one epoch's metric and returns the learning rate to use next.
    @discardableResult
    public func step(metric: Double) throws -> Double {
        guard metric.isFinite else { throw TensorError("ReduceLROnPlateau", "metric is \(metric) at epoch \(epochs + 1)") }
        epochs += 1
        if isBetter(metric) { best = metric; badEpochs = 0 } else { badEpochs += 1 }
        if cooldownCounter > 0 { cooldownCounter -= 1; badEpochs = 0 }
        if badEpochs > patience {
            let reduced = max(learningRate * factor, minLR)
            if learningRate - reduced > eps { learningRate = reduced }
            cooldownCounter = cooldown
            badEpochs = 0
        }
        return learningRate
    }

    var stateVector: [Double] { [learningRate, best, Double(badEpochs), Double(cooldownCounter), Double(epochs)] }
    func restore(_ s: [Double]) throws {
        guard s.count == 5 else { throw TensorError("ReduceLROnPlateau", "state has \(s.count) values, expected 5") }
        learningRate = s[0]; best = s[1]; badEpochs = Int(s[2]); cooldownCounter = Int(s[3]); epochs = Int(s[4])
    }
}

/// Linear warm-up from 0 to `baseLR` over `warmupSteps`, then a half cosine down to `minLR` at
/// `totalSteps` (and `minLR` after). Stateless: the rate is a function of the step index.
public struct CosineWarmupSchedule: Sendable, Equatable {
    public let baseLR: Double, minLR: Double, warmupSteps: Int, totalSteps: Int

    public init(baseLR: Double, minLR: Double = 0, warmupSteps: Int, totalSteps: Int) throws {
        guard warmupSteps >= 0, totalSteps > warmupSteps else {
            throw TensorError("CosineWarmupSchedule", "need 0 ≤ warmupSteps < totalSteps (got \(warmupSteps), \(totalSteps))")
        }
        self.baseLR = baseLR; self.minLR = minLR; self.warmupSteps = warmupSteps; self.totalSteps = totalSteps
    }

    /// Rate for 0-based step `step`.
    public func learningRate(atStep step: Int) -> Double {
        if step < warmupSteps { return baseLR * Double(step + 1) / Double(warmupSteps) }
        let progress = min(1, Double(step - warmupSteps) / Double(totalSteps - warmupSteps))
        return minLR + 0.5 * (baseLR - minLR) * (1 + Foundation.cos(Double.pi * progress))
    }
}

/// Shadow weights s ← d·s + (1 − d)·p after each step; evaluate with `copy(to:)` on a sibling set.
public final class ExponentialMovingAverage<T: Scalar> {
    public let decay: Double
    public internal(set) var updates = 0
    var shadow: [String: [T]] = [:]

    public init(_ params: ParameterSet<T>, decay: Double) throws {
        guard decay >= 0 && decay < 1 else { throw TensorError("ExponentialMovingAverage", "decay \(decay) outside [0, 1)") }
        self.decay = decay
        for p in params.tensors { shadow[p.name] = p.data }
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func update(_ params: ParameterSet<T>) {
        let d = T(decay), e = 1 - T(decay)
        for p in params.trainable {
            guard var s = shadow[p.name] else { shadow[p.name] = p.data; continue }
            for i in 0..<s.count { s[i] = d * s[i] + e * p.data[i] }
            shadow[p.name] = s
        }
        updates += 1
    }

    /// The averaged value of one parameter.
    public func average(_ name: String) -> [T]? { shadow[name] }

    /// Writes the averaged weights into `params` (same names and shapes).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func copy(to params: ParameterSet<T>) throws {
        for p in params.tensors {
            guard let s = shadow[p.name], s.count == p.count else {
                throw TensorError("ExponentialMovingAverage", "no average for parameter '\(p.name)' of shape \(p.shape)")
            }
            p.data = s
        }
    }
}
