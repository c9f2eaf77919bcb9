// Optimisers, schedules, EMA, checkpoints and resumption, against hand-computed values and
// PyTorch trajectories (torch 2.15, float64; the script lines are quoted beside the numbers).
import Foundation
import XCTest
import HDF5Kit
import TestSupport
@testable import Autograd

final class OptimizerTests: XCTestCase {
    func makeParam(_ values: [Double], grad: [Double]) throws -> ParameterSet<Double> {
        let ps = ParameterSet<Double>(seed: 0)
        let p = try ps.create("p", shape: [values.count], initializer: .zeros)
        p.data = values
        p.grad = grad
        return ps
    }

    func testAdamFirstStepByHand() throws {
        let ps = try makeParam([1.0, -2.0], grad: [0.5, -0.1])
        let adam = Adam<Double>(learningRate: 0.1, beta1: 0.9, beta2: 0.99, epsilon: 1e-8)
        adam.step(ps)
        // m = 0.1·g, v = 0.01·g², bias corrections 0.1 and 0.01 ⇒ p −= 0.1·g/(|g| + 1e-8).
        for (i, (p0, g)) in zip([1.0, -2.0], [0.5, -0.1]).enumerated() {
            let m = 0.1 * g, v = 0.01 * g * g
            let want = p0 - (0.1 / 0.1) * m / ((v).squareRoot() / (0.01).squareRoot() + 1e-8)
            XCTAssertEqual(ps["p"]!.data[i], want, accuracy: 1e-15)
        }
        XCTAssertEqual(adam.stepCount("p"), 1)
    }

    /// torch.optim.Adam/AdamW([p], lr=0.1, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.05), three steps
    /// with grads [0.5,-0.1,0], [0.2,0.3,-1], [-0.4,0,2] from p = [1, -2, 0.5].
    func testAdamAndAdamWMatchPyTorch() throws {
        let grads: [[Double]] = [[0.5, -0.1, 0.0], [0.2, 0.3, -1.0], [-0.4, 0.0, 2.0]]
        let cases: [(Adam<Double>, [Double])] = [
            (Adam(learningRate: 0.1, beta1: 0.9, beta2: 0.99, weightDecay: 0.05), [0.7803913918784109, -1.8910504559677614, 0.43962665201809575]),
            (Adam.adamW(learningRate: 0.1, weightDecay: 0.05, beta1: 0.9, beta2: 0.99), [0.7788734979722276, -1.958449279827573, 0.5350967356087998]),
        ]
        for (adam, want) in cases {
            let ps = try makeParam([1.0, -2.0, 0.5], grad: grads[0])
            for g in grads { ps["p"]!.grad = g; adam.step(ps) }
            XCTAssertLessThan(maxAbsDifference(ps["p"]!.data, want), 1e-14)
        }
    }

    func testFrozenParametersAreSkipped() throws {
        let ps = ParameterSet<Float>(seed: 1)
        let a = try ps.create("stage1.w", shape: [2], initializer: .ones)
        let b = try ps.create("stage2.w", shape: [2], initializer: .ones)
        ps.freeze(prefix: "stage1.")
        let loss = try (a * b).sum()
        try loss.backward()
        XCTAssertNil(a.grad)
        XCTAssertEqual(b.grad, [1, 1])
        Adam<Float>(learningRate: 0.1).step(ps)
        XCTAssertEqual(a.data, [1, 1])
        XCTAssertNotEqual(b.data, [1, 1])
        XCTAssertEqual(ps.flattenGradients().count, 2)
    }

    /// Adam's Float update runs eight lanes at a time (CKernels): every element, tails included,
    /// is the scalar expression's bits, for plain Adam, coupled decay and AdamW.
    func testVectorisedAdamStepIsTheScalarExpressionBitForBit() throws {
        for adam in [Adam<Float>(learningRate: 3e-3), Adam<Float>(learningRate: 3e-3, weightDecay: 0.05), Adam<Float>.adamW(learningRate: 3e-3)] {
            let ps = ParameterSet<Float>(seed: 3)
            for (i, n) in [1, 7, 8, 9, 1003].enumerated() { try ps.create("p\(i)", shape: [n], initializer: .normal(std: 1)) }
            var w = ps.tensors.map(\.data), m = w.map { [Float](repeating: 0, count: $0.count) }, v = m
            var rng = SplitMix64(seed: 11)
            for step in 1 ... 3 {
                let grads = ps.tensors.map { t in (0 ..< t.count).map { k in k % 97 == 5 ? -0.0 : Float(rng.nextNormal()) * 1e-2 } }
                for (t, g) in zip(ps.tensors, grads) { t.grad = g }
                adam.step(ps)
                // The scalar expression, in Float as Adam.update writes it.
                let bc1 = 1 - Foundation.pow(adam.beta1, Double(step)), bc2 = 1 - Foundation.pow(adam.beta2, Double(step))
                let stepSize = Float(adam.learningRate / bc1), sqrtBc2 = Float(bc2.squareRoot())
                let b1 = Float(adam.beta1), b2 = Float(adam.beta2), eps = Float(adam.epsilon), wd = Float(adam.weightDecay)
                let decay = Float(1 - adam.learningRate * adam.weightDecay)
                for j in w.indices {
                    for k in w[j].indices {
                        var g = grads[j][k]
                        if !adam.decoupledWeightDecay && adam.weightDecay != 0 { g += wd * w[j][k] }
                        if adam.decoupledWeightDecay && adam.weightDecay != 0 { w[j][k] *= decay }
                        m[j][k] = b1 * m[j][k] + (1 - b1) * g
                        v[j][k] = b2 * v[j][k] + (1 - b2) * g * g
                        w[j][k] -= stepSize * m[j][k] / (v[j][k].squareRoot() / sqrtBc2 + eps)
                    }
                }
            }
            for (j, t) in ps.tensors.enumerated() {
                XCTAssertEqual(t.data.map(\.bitPattern), w[j].map(\.bitPattern), "\(t.name), decay \(adam.weightDecay), decoupled \(adam.decoupledWeightDecay)")
                XCTAssertEqual(adam.states[t.name]!.m.map(\.bitPattern), m[j].map(\.bitPattern))
                XCTAssertEqual(adam.states[t.name]!.v.map(\.bitPattern), v[j].map(\.bitPattern))
            }
        }
    }

    /// The norm is the sum of per-tensor sums of squares in tensor order, shared among threads by
    /// tensor: the same norm and clipped gradients for 1, 2 and 3 threads, equal to the exact
    /// norm to Double round-off.
    func testClipGradientNormIsTheSameForAnyThreadCount() throws {
        func run(_ threads: Int) throws -> (Double, [[UInt32]]) {
            let ps = ParameterSet<Float>(seed: 4)
            var rng = SplitMix64(seed: 12)
            for (i, n) in [40_000, 3, 70_001, 17, 90_000].enumerated() {
                try ps.create("p\(i)", shape: [n], initializer: .zeros).grad = (0 ..< n).map { _ in Float(rng.nextNormal()) }
            }
            let norm = ExecutionContext(threads: threads).run { clipGradientNorm(ps, maxNorm: 1) }
            return (norm, ps.tensors.map { $0.grad!.map(\.bitPattern) })
        }
        let one = try run(1)
        for threads in [2, 3] {
            let other = try run(threads)
            XCTAssertEqual(other.0.bitPattern, one.0.bitPattern, "\(threads) threads")
            XCTAssertEqual(other.1, one.1, "\(threads) threads")
        }
        // Against one plain sum over every element (differs only by Double rounding).
        var rng = SplitMix64(seed: 12), exact = 0.0
        for n in [40_000, 3, 70_001, 17, 90_000] { for _ in 0 ..< n { let x = Double(Float(rng.nextNormal())); exact += x * x } }
        XCTAssertEqual(one.0, exact.squareRoot(), accuracy: 1e-12 * exact.squareRoot())
        let clipped = one.1.flatMap { $0 }.reduce(0.0) { $0 + Double(Float(bitPattern: $1)) * Double(Float(bitPattern: $1)) }.squareRoot()
        XCTAssertEqual(clipped, 1, accuracy: 1e-5)
    }

    func testClipGradientNorm() throws {
        let ps = ParameterSet<Double>(seed: 0)
        try ps.create("a", shape: [2], initializer: .zeros).grad = [3, 4]
        try ps.create("b", shape: [1], initializer: .zeros).grad = [12]
        XCTAssertEqual(clipGradientNorm(ps, maxNorm: 100), 13)
        XCTAssertEqual(ps["a"]!.grad!, [3, 4])
        XCTAssertEqual(clipGradientNorm(ps, maxNorm: 6.5), 13)
        let f = 6.5 / (13 + 1e-6)
        XCTAssertEqual(ps["a"]!.grad!, [3 * f, 4 * f])
        XCTAssertEqual(ps["b"]!.grad!, [12 * f])
    }

    /// torch.optim.lr_scheduler.ReduceLROnPlateau(opt(lr=1), mode='min', factor=0.5, patience=2,
    /// threshold=0.1, cooldown=1, min_lr=0.2).
    func testReduceLROnPlateauMatchesPyTorch() throws {
        let metrics: [Double] = [10, 9.5, 9.2, 9.0, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0, 5.0, 5.0, 5.0, 5.0, 5.0]
        let want: [Double] = [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2]
        let s = try ReduceLROnPlateau(learningRate: 1, factor: 0.5, patience: 2, threshold: 0.1, cooldown: 1, minLR: 0.2)
        XCTAssertEqual(try metrics.map { try s.step(metric: $0) }, want)
        XCTAssertThrowsError(try s.step(metric: .nan))
        XCTAssertThrowsError(try ReduceLROnPlateau(learningRate: 1, factor: 2))
    }

    func testCosineWarmup() throws {
        let s = try CosineWarmupSchedule(baseLR: 1e-3, minLR: 1e-5, warmupSteps: 10, totalSteps: 110)
        XCTAssertEqual(s.learningRate(atStep: 0), 1e-4, accuracy: 1e-18)
        XCTAssertEqual(s.learningRate(atStep: 9), 1e-3, accuracy: 1e-18)
        XCTAssertEqual(s.learningRate(atStep: 10), 1e-3, accuracy: 1e-18)
        XCTAssertEqual(s.learningRate(atStep: 60), 1e-5 + 0.5 * (1e-3 - 1e-5), accuracy: 1e-15)
        XCTAssertEqual(s.learningRate(atStep: 110), 1e-5, accuracy: 1e-18)
        XCTAssertEqual(s.learningRate(atStep: 500), 1e-5, accuracy: 1e-18)
        XCTAssertThrowsError(try CosineWarmupSchedule(baseLR: 1, warmupSteps: 5, totalSteps: 5))
    }

    func testEMA() throws {
        let ps = try makeParam([1, 2], grad: [0, 0])
        let ema = try ExponentialMovingAverage(ps, decay: 0.9)
        ps["p"]!.data = [3, 4]
        ema.update(ps)
        XCTAssertEqual(ema.average("p")!, [0.9 * 1 + (1 - 0.9) * 3, 0.9 * 2 + (1 - 0.9) * 4])
        let copy = try makeParam([0, 0], grad: [0, 0])
        try ema.copy(to: copy)
        XCTAssertEqual(copy["p"]!.data, ema.average("p")!)
    }
}

final class CheckpointTests: XCTestCase {
    /// A small message-passing regression trained with every piece of state a run carries.
    final class Run {
        let params = ParameterSet<Float>(seed: 42)
        let mlp: MLP<Float>
        let adam = Adam<Float>.adamW(learningRate: 3e-3)
        let plateau: ReduceLROnPlateau
        let ema: ExponentialMovingAverage<Float>
        let nodes: Tensor<Float>, target: Tensor<Float>
        let src: RowIndex, dst: RowIndex
        var step = 0

        init() throws {
            mlp = try MLP(params, name: "mlp", widths: [8, 16, 4])
            plateau = try ReduceLROnPlateau(learningRate: 3e-3, factor: 0.5, patience: 0)
            ema = try ExponentialMovingAverage(params, decay: 0.9)
            nodes = Tensor.randomNormal([6, 4], seed: 1)
            target = Tensor.randomNormal([6, 4], seed: 2)
            src = try RowIndex([0, 1, 2, 3, 4, 5, 0, 2, 4], rowCount: 6)
            dst = try RowIndex([1, 2, 3, 4, 5, 0, 3, 5, 1], rowCount: 6)
        }

        func trainStep() throws {
            params.zeroGrad()
            let edgeIn = try Tensor.concat([nodes.gatherRows(src), nodes.gatherRows(dst)], axis: 1)
            let h = try mlp(edgeIn).dropout(probability: 0.2, seed: 1000 + UInt64(step))
            let out = try h.scatterAdd(dst)
            let loss = try (out - target).square().mean()
            try loss.backward()
            clipGradientNorm(params, maxNorm: 1)
            adam.step(params)
            ema.update(params)
            adam.learningRate = try plateau.step(metric: Double(loss.item))
            step += 1
        }

        var parts: [String: Checkpointable] { ["parameters": params, "adam": adam, "plateau": plateau, "ema": ema] }
    }

    func testRoundTripIsBitExact() throws {
        let run = try Run()
        for _ in 0..<3 { try run.trainStep() }
        let path = try makeTemporaryDirectory(self).appendingPathComponent("ckpt.h5").path
        try Checkpoint.save(to: path, parts: run.parts, metadata: ["step": Double(run.step)])
        let other = try Run()
        let meta = try Checkpoint.load(from: path, parts: other.parts)
        XCTAssertEqual(meta["step"], 3)
        for name in run.params.names {
            XCTAssertEqual(run.params[name]!.data.map(\.bitPattern), other.params[name]!.data.map(\.bitPattern), name)
            XCTAssertEqual(run.adam.states[name]!.m.map(\.bitPattern), other.adam.states[name]!.m.map(\.bitPattern))
            XCTAssertEqual(run.adam.states[name]!.v.map(\.bitPattern), other.adam.states[name]!.v.map(\.bitPattern))
            XCTAssertEqual(run.adam.stepCount(name), other.adam.stepCount(name))
            XCTAssertEqual(run.ema.average(name)!.map(\.bitPattern), other.ema.average(name)!.map(\.bitPattern))
        }
        XCTAssertEqual(run.plateau.stateVector, other.plateau.stateVector)
        XCTAssertEqual(run.adam.learningRate, other.adam.learningRate)
    }

    /// A checkpoint taken now and written later (the training loops write in the background while
    /// the next epoch trains) holds the values at the time it was taken, in the bytes a direct save
    /// writes, and a write to several paths gives each the same file and leaves no temporary.
    func testTakenCheckpointIsTheSavedBytesOfItsMoment() throws {
        let run = try Run()
        for _ in 0..<3 { try run.trainStep() }
        let dir = try makeTemporaryDirectory(self)
        let saved = dir.appendingPathComponent("saved.h5").path
        try Checkpoint.save(to: saved, parts: run.parts, metadata: ["step": Double(run.step)])
        let image = try Checkpoint.take(parts: run.parts, metadata: ["step": Double(run.step)], for: "later.h5")
        try run.trainStep()  // changes parameters, moments and the schedule after the checkpoint was taken
        let best = dir.appendingPathComponent("best.h5").path, last = dir.appendingPathComponent("last.h5").path
        try image.write(to: [best, last])
        let bytes = try Data(contentsOf: URL(fileURLWithPath: saved))
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: best)), bytes)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: last)), bytes)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted(), ["best.h5", "last.h5", "saved.h5"])
        let now = dir.appendingPathComponent("now.h5").path
        try Checkpoint.save(to: now, parts: run.parts, metadata: ["step": Double(run.step)])
        XCTAssertNotEqual(try Data(contentsOf: URL(fileURLWithPath: now)), bytes, "the run moved on")
    }

    /// Adam shares its parameters among the context's threads (elementwise: the same bits).
    func testAdamStepIsBitIdenticalForAnyThreadCount() throws {
        func run(_ threads: Int) throws -> ([[Float]], Adam<Float>, ParameterSet<Float>) {
            let params = ParameterSet<Float>(seed: 5)
            for (i, shape) in [[300, 120], [7], [200, 200], [64, 3], [90_000]].enumerated() {
                try params.create("p\(i)", shape: shape, initializer: .normal(std: 0.1))
            }
            let adam = Adam<Float>(learningRate: 1e-3)
            var rng = SplitMix64(seed: 9)
            for _ in 0..<3 {
                for t in params.tensors { t.grad = (0..<t.count).map { _ in Float(rng.nextNormal()) } }
                ExecutionContext(threads: threads).run { adam.step(params) }
            }
            return (params.tensors.map(\.data), adam, params)
        }
        let (one, adamOne, params) = try run(1)
        for threads in [2, 3] {
            let (other, adam, _) = try run(threads)
            XCTAssertEqual(other.map { $0.map(\.bitPattern) }, one.map { $0.map(\.bitPattern) }, "\(threads) threads")
            for name in params.names {
                XCTAssertEqual(adam.states[name]!.m.map(\.bitPattern), adamOne.states[name]!.m.map(\.bitPattern))
                XCTAssertEqual(adam.states[name]!.v.map(\.bitPattern), adamOne.states[name]!.v.map(\.bitPattern))
                XCTAssertEqual(adam.stepCount(name), 3)
            }
        }
    }

    /// Adam keeps the list of trainable tensors and their states between steps (a step over the
    /// same tensors skips the lookups by name); a run that keeps it — through a freeze, an
    /// unfreeze and a load of its own state — equals bit for bit a run that drops it at every step
    /// (its state reloaded from a checkpoint after each one).
    func testAdamsReusedStepListEqualsLookingUpEveryStep() throws {
        let path = try makeTemporaryDirectory(self).appendingPathComponent("ckpt.h5").path
        let kept = try Run(), dropped = try Run()
        for step in 0..<7 {
            for run in [kept, dropped] {
                if step == 2 { run.params.freeze(prefix: "mlp.0") }
                if step == 5 { run.params.unfreeze(prefix: "mlp.0") }
                try run.trainStep()
            }
            if step == 3 {
                try Checkpoint.save(to: path, parts: kept.parts)
                _ = try Checkpoint.load(from: path, parts: kept.parts)
            }
            try Checkpoint.save(to: path, parts: dropped.parts)
            _ = try Checkpoint.load(from: path, parts: dropped.parts)
        }
        XCTAssertEqual(kept.adam.stepCount("mlp.0.weight"), 4)
        XCTAssertEqual(kept.adam.stepCount("mlp.1.weight"), 7)
        for name in kept.params.names {
            XCTAssertEqual(kept.params[name]!.data.map(\.bitPattern), dropped.params[name]!.data.map(\.bitPattern), name)
        }
    }

    func testResumedTrainingMatchesUninterrupted() throws {
        let straight = try Run()
        for _ in 0..<6 { try straight.trainStep() }

        let first = try Run()
        for _ in 0..<3 { try first.trainStep() }
        let path = try makeTemporaryDirectory(self).appendingPathComponent("ckpt.h5").path
        try Checkpoint.save(to: path, parts: first.parts, metadata: ["step": Double(first.step)])
        let resumed = try Run()
        resumed.step = Int(try Checkpoint.load(from: path, parts: resumed.parts)["step"]!)
        for _ in 0..<3 { try resumed.trainStep() }

        for name in straight.params.names {
            XCTAssertEqual(straight.params[name]!.data.map(\.bitPattern), resumed.params[name]!.data.map(\.bitPattern), name)
        }
        XCTAssertEqual(straight.adam.learningRate, resumed.adam.learningRate)
    }

    /// Adam's moments are stored flat ("names", "steps", "counts", "m", "v" — a few datasets
    /// instead of two per tensor); a checkpoint of the earlier per-tensor layout still loads, and a
    /// run resumed from it continues bit for bit like the uninterrupted one; an inconsistent table
    /// is refused naming the field.
    func testAdamStateIsFlatAndTheOldLayoutStillResumes() throws {
        let dir = try makeTemporaryDirectory(self)
        let straight = try Run()
        for _ in 0..<6 { try straight.trainStep() }
        let first = try Run()
        for _ in 0..<3 { try first.trainStep() }

        let flat = dir.appendingPathComponent("flat.h5").path
        try Checkpoint.save(to: flat, parts: first.parts, metadata: ["step": Double(first.step)])
        XCTAssertEqual(try HDF5File(readingAt: flat).memberNames(of: "adam").sorted(), ["counts", "m", "steps", "v"])

        // The per-tensor layout, as format 2 wrote it (parameters, schedule and EMA as now).
        let legacy = dir.appendingPathComponent("legacy.h5").path
        do {
            let file = try HDF5File(creatingAt: legacy)
            try file.setAttribute("format", string: "harmose-checkpoint-2")
            try file.setAttribute("meta.step", doubles: [Double(first.step)])
            for (key, part) in first.parts where key != "adam" { try part.save(to: file, group: key) }
            let adam = first.adam
            try file.createGroup("adam")
            try file.setAttribute("hyperparameters", doubles: [adam.learningRate, adam.beta1, adam.beta2, adam.epsilon, adam.weightDecay, adam.decoupledWeightDecay ? 1 : 0], on: "adam")
            try file.createGroup("adam/m")
            try file.createGroup("adam/v")
            for name in adam.states.keys.sorted() {
                let s = adam.states[name]!
                try file.write("adam/m/\(name)", floats: s.m, shape: [s.m.count])
                try file.write("adam/v/\(name)", floats: s.v, shape: [s.v.count])
                try file.setAttribute("step", doubles: [Double(s.step)], on: "adam/m/\(name)")
            }
        }
        for path in [flat, legacy] {
            let resumed = try Run()
            resumed.step = Int(try Checkpoint.load(from: path, parts: resumed.parts)["step"]!)
            for name in first.params.names {
                XCTAssertEqual(resumed.adam.states[name]!.m.map(\.bitPattern), first.adam.states[name]!.m.map(\.bitPattern), path)
                XCTAssertEqual(resumed.adam.states[name]!.v.map(\.bitPattern), first.adam.states[name]!.v.map(\.bitPattern), path)
                XCTAssertEqual(resumed.adam.stepCount(name), 3, path)
            }
            for _ in 0..<3 { try resumed.trainStep() }
            for name in straight.params.names {
                XCTAssertEqual(straight.params[name]!.data.map(\.bitPattern), resumed.params[name]!.data.map(\.bitPattern), "\(path): \(name)")
            }
        }

        // A table that does not add up.
        let bad = dir.appendingPathComponent("bad.h5").path
        do {
            let file = try HDF5File(creatingAt: bad)
            try file.setAttribute("format", string: Checkpoint.format)
            try file.createGroup("adam")
            try file.setAttribute("hyperparameters", doubles: [1, 0.9, 0.999, 1e-8, 0, 0], on: "adam")
            try file.setAttribute("names", string: "a\nb", on: "adam")
            try file.write("adam/steps", int64s: [1, 1], shape: [2])
            try file.write("adam/counts", int64s: [2, 3], shape: [2])
            try file.write("adam/m", floats: [1, 2, 3, 4], shape: [4])
            try file.write("adam/v", floats: [1, 2, 3, 4], shape: [4])
        }
        XCTAssertThrowsError(try Checkpoint.load(from: bad, parts: ["adam": Adam<Float>(learningRate: 1)])) { e in
            XCTAssertTrue("\(e)".contains(bad) && "\(e)".contains("adam/m"), "\(e)")
        }
    }

    /// Parameters are stored flat (one "values" dataset + "shapes"): a thousand small tensors cost
    /// a few kB of headers instead of ~400 B each; files of the per-tensor layout still load, and
    /// a hostile shape table is refused before anything is allocated, naming the field.
    func testFlatParameterLayoutIsCompactReadsTheOldLayoutAndChecksItsTable() throws {
        let dir = try makeTemporaryDirectory(self)
        let many = ParameterSet<Float>(seed: 7)
        for i in 0 ..< 1000 { try many.create("layer\(i).w", shape: i % 3 == 0 ? [] : [2, 2], initializer: .normal(std: 1)) }
        let flat = dir.appendingPathComponent("flat.h5").path
        try Checkpoint.save(to: flat, parts: ["parameters": many])
        let size = try FileManager.default.attributesOfItem(atPath: flat)[.size] as! Int
        XCTAssertLessThan(size, 60_000, "1000 tensors, 11 kB of values")
        let back = ParameterSet<Float>(seed: 1)
        for i in 0 ..< 1000 { try back.create("layer\(i).w", shape: i % 3 == 0 ? [] : [2, 2], initializer: .zeros) }
        try Checkpoint.load(from: flat, parts: ["parameters": back])
        for (a, b) in zip(many.tensors, back.tensors) { XCTAssertEqual(a.data.map(\.bitPattern), b.data.map(\.bitPattern), a.name) }

        // The per-tensor layout of earlier checkpoints.
        let legacy = dir.appendingPathComponent("legacy.h5").path
        do {
            let file = try HDF5File(creatingAt: legacy)
            try file.setAttribute("format", string: "harmose-checkpoint-1")
            try file.createGroup("parameters")
            for t in many.tensors { try writeTensorValues(file, "parameters/\(t.name)", t.data, shape: t.shape) }
        }
        let old = ParameterSet<Float>(seed: 1)
        for i in 0 ..< 1000 { try old.create("layer\(i).w", shape: i % 3 == 0 ? [] : [2, 2], initializer: .zeros) }
        try Checkpoint.load(from: legacy, parts: ["parameters": old])
        for (a, b) in zip(many.tensors, old.tensors) { XCTAssertEqual(a.data, b.data, a.name) }

        // Hostile tables: rank out of range, negative or huge dimensions, a table too short or too
        // long for the names, a name twice.
        let cases: [(names: String, shapes: [Int64], expect: String)] = [
            ("a", [9, 1, 1, 1, 1, 1, 1, 1, 1, 1], "rank"),
            ("a", [1, -4], "out of range"),
            ("a\nb", [2, 1 << 40, 1 << 40, 0], "out of range"),
            ("a\nb", [1, 2], "ends before"),
            ("a", [1, 2, 1, 2], "left after"),
            ("a\na", [1, 2, 1, 2], "twice"),
            ("a", [2, 60000, 60000], "2³¹"),
        ]
        for (k, c) in cases.enumerated() {
            let path = dir.appendingPathComponent("bad\(k).h5").path
            do {
                let file = try HDF5File(creatingAt: path)
                try file.setAttribute("format", string: Checkpoint.format)
                try file.createGroup("parameters")
                try file.setAttribute("names", string: c.names, on: "parameters")
                try file.write("parameters/values", floats: [1, 2, 3, 4], shape: [4])
                try file.write("parameters/shapes", int64s: c.shapes, shape: [c.shapes.count])
            }
            let target = ParameterSet<Float>(seed: 0)
            try target.create("a", shape: [2], initializer: .zeros)
            XCTAssertThrowsError(try Checkpoint.load(from: path, parts: ["parameters": target]), "case \(k)") { e in
                XCTAssertTrue("\(e)".contains(path) && "\(e)".contains("parameters") && "\(e)".contains(c.expect), "case \(k): \(e)")
            }
        }
    }

    func testBadCheckpointsGiveClearErrors() throws {
        let dir = try makeTemporaryDirectory(self)
        let path = dir.appendingPathComponent("ckpt.h5").path
        let small = ParameterSet<Float>(seed: 0)
        try small.create("w", shape: [2, 3], initializer: .zeros)
        try Checkpoint.save(to: path, parts: ["parameters": small])

        let wrongShape = ParameterSet<Float>(seed: 0)
        try wrongShape.create("w", shape: [3, 2], initializer: .zeros)
        XCTAssertThrowsError(try Checkpoint.load(from: path, parts: ["parameters": wrongShape])) { e in
            XCTAssertTrue("\(e)".contains("parameters/w") && "\(e)".contains("[2, 3]"), "\(e)")
        }
        let missing = ParameterSet<Float>(seed: 0)
        try missing.create("other", shape: [1], initializer: .zeros)
        XCTAssertThrowsError(try Checkpoint.load(from: path, parts: ["parameters": missing])) { e in
            XCTAssertTrue("\(e)".contains("parameters/other") && "\(e)".contains("missing"), "\(e)")
        }
        let wrongType = ParameterSet<Double>(seed: 0)
        try wrongType.create("w", shape: [2, 3], initializer: .zeros)
        XCTAssertThrowsError(try Checkpoint.load(from: path, parts: ["parameters": wrongType])) { e in
            XCTAssertTrue("\(e)".contains("float32"), "\(e)")
        }
        XCTAssertThrowsError(try Checkpoint.load(from: path, parts: ["adam": Adam<Float>(learningRate: 1)])) { e in
            XCTAssertTrue("\(e)".contains("/adam") && "\(e)".contains("missing"), "\(e)")
        }
        XCTAssertThrowsError(try Checkpoint.load(from: dir.appendingPathComponent("none.h5").path, parts: [:]))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["ckpt.h5"])   // no temporaries left
    }
}
