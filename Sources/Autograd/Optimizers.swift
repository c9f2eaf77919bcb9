// Optimizers.swift: Adam/AdamW with bias correction, gradient clipping by global norm, learning-
// rate schedules (ReduceLROnPlateau with PyTorch's semantics, cosine with linear warm-up) and an
// exponential moving average of the weights. Schedules only compute a learning rate; the training
// loop assigns it to `optimizer.learningRate`, so every piece is checkpointed on its own.
import CKernels
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
    var states: [String: State] = [:] { didSet { plan = nil } }
    /// The trainable tensors of the last step and their states, in order: a step over the same
    /// tensors reuses it instead of looking up ~600 states by name (String hashing, ~0.1 ms of the
    /// serial part of a data-parallel step, issue #14). Dropped whenever `states` is assigned.
    private var plan: (tensors: [Tensor<T>], states: [State])?

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
        let tensors = params.trainable
        let reusable = plan.map { $0.tensors.count == tensors.count && zip($0.tensors, tensors).allSatisfy { $0 === $1 } } ?? false
        if !reusable {
            var planned: [State] = []
            planned.reserveCapacity(tensors.count)
            for p in tensors {
                let state = states[p.name] ?? State(step: 0, m: [T](repeating: 0, count: p.count), v: [T](repeating: 0, count: p.count))
                planned.append(state)
            }
            // New states enter the table only when their tensor is updated (below), as before.
            plan = (tensors, planned)
        }
        let planned = plan!.states
        var work: [(tensor: Tensor<T>, grad: [T], state: State)] = []
        work.reserveCapacity(tensors.count)
        var created = false
        for (p, state) in zip(tensors, planned) {
            guard let grad = p.grad else { continue }
            if state.step == 0, states[p.name] !== state { states[p.name] = state; created = true }
            work.append((p, grad, state))
        }
        if created { plan = (tensors, planned) }
        // The bias corrections of each step count (all parameters share one, unless some were
        // frozen for a while): the same values `update` would compute, computed once.
        var corrections: [Int: (stepSize: T, sqrtBc2: T)] = [:]
        for (_, _, s) in work where corrections[s.step + 1] == nil {
            let bc1 = 1 - Foundation.pow(beta1, Double(s.step + 1)), bc2 = 1 - Foundation.pow(beta2, Double(s.step + 1))
            corrections[s.step + 1] = (T(learningRate / bc1), T(bc2.squareRoot()))
        }
        // Elementwise, so sharing the parameters among threads (runs of about equal element count;
        // it is the serial part of a data-parallel step, memory-bound) changes no bit.
        let items = work.map { ($0.tensor, $0.grad, $0.state, corrections[$0.state.step + 1]!) }
        Parallel.forRuns(sizes: items.map(\.0.count)) { r in
            for (p, grad, s, c) in items[r] { self.update(s, p, grad, stepSize: c.stepSize, sqrtBc2: c.sqrtBc2) }
        }
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    private func update(_ s: State, _ p: Tensor<T>, _ grad: [T], stepSize: T, sqrtBc2: T) {
        s.step += 1
        let b1 = T(beta1), b2 = T(beta2), eps = T(epsilon), wd = T(weightDecay), decay = T(1 - learningRate * weightDecay)
        let decoupled = decoupledWeightDecay && weightDecay != 0, coupled = !decoupledWeightDecay && weightDecay != 0
        let c1 = 1 - b1, c2 = 1 - b2
        let n = p.count
        p.data.withUnsafeMutableBufferPointer { wb in
            s.m.withUnsafeMutableBufferPointer { mb in
                s.v.withUnsafeMutableBufferPointer { vb in
                    grad.withUnsafeBufferPointer { gb in
                        let w = wb.baseAddress!, m = mb.baseAddress!, v = vb.baseAddress!, g = gb.baseAddress!
                        // Float (every model): eight lanes at a time in CKernels — Swift's square
                        // root keeps this loop scalar, and it was most of the serial part of a refine
                        // step (issue #14). The same expression, the same bits as the loop below.
                        if T.self == Float.self {
                            func f(_ p: UnsafeMutablePointer<T>) -> UnsafeMutablePointer<Float> { UnsafeMutableRawPointer(p).assumingMemoryBound(to: Float.self) }
                            func f(_ x: T) -> Float { unsafeBitCast(x, to: Float.self) }
                            harmose_adam_step_f32(f(w), f(m), f(v), UnsafeRawPointer(g).assumingMemoryBound(to: Float.self), n,
                                                  f(b1), f(c1), f(b2), f(c2), f(stepSize), f(sqrtBc2), f(eps), f(wd), f(decay),
                                                  coupled ? 1 : 0, decoupled ? 1 : 0)
                            return
                        }
                        for i in 0 ..< n {
                            var gi = g[i]
                            if coupled { gi += wd * w[i] }
                            if decoupled { w[i] *= decay }
                            m[i] = b1 * m[i] + c1 * gi
                            v[i] = b2 * v[i] + c2 * gi * gi
                            w[i] -= stepSize * m[i] / (v[i].squareRoot() / sqrtBc2 + eps)
                        }
                    }
                }
            }
        }
    }
}

/// Scales all trainable gradients so their joint L2 norm is at most `maxNorm` (PyTorch's
/// clip_grad_norm_: factor maxNorm/(norm + 1e-6) when below 1). Returns the norm before clipping.
///
/// Each tensor's sum of squares (`sumOfSquares`) and the scaling are per tensor, shared among the
/// context's threads in runs of tensors; the tensors' sums are then added in creation order. So the
/// norm does not depend on the thread budget (it is part of every data-parallel step: serial, it
/// cost ~0.3 ms per refine step, issue #14).
@discardableResult
@_specialize(where T == Float)
@_specialize(where T == Double)
public func clipGradientNorm<T: Scalar>(_ params: ParameterSet<T>, maxNorm: Double) -> Double {
    let tensors = params.trainable.filter { $0.grad != nil }
    let sizes = tensors.map(\.count)
    var squares = [Double](repeating: 0, count: tensors.count)
    squares.withUnsafeMutableBufferPointer { out in
        let out = SharedPointer(out.baseAddress!)
        Parallel.forRuns(sizes: sizes) { r in
            for i in r { out.base[i] = tensors[i].grad!.withUnsafeBufferPointer { sumOfSquares($0) } }
        }
    }
    let norm = squares.reduce(0, +).squareRoot()
    let factor = maxNorm / (norm + 1e-6)
    if factor < 1 {
        let f = T(factor)
        Parallel.forRuns(sizes: sizes) { r in
            for i in r { tensors[i].withGrad { g in for k in 0..<g.count { g[k] *= f } } }
        }
    }
    return norm
}

/// Σ x² in Double, in a fixed order: four running sums over the elements k ≡ 0, 1, 2, 3 (mod 4),
/// added as (s₀ + s₁) + (s₂ + s₃). Four independent sums let the loop run at the adder's
/// throughput instead of its latency.
@inline(__always)
func sumOfSquares<T: Scalar>(_ x: UnsafeBufferPointer<T>) -> Double {
    var s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
    let n = x.count, quads = n & ~3
    var k = 0
    while k < quads {
        let a = Double(x[k]), b = Double(x[k + 1]), c = Double(x[k + 2]), d = Double(x[k + 3])
        s0 += a * a; s1 += b * b; s2 += c * c; s3 += d * d
        k += 4
    }
    while k < n { let a = Double(x[k]); s0 += a * a; k += 1 }
    return (s0 + s1) + (s2 + s3)
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
