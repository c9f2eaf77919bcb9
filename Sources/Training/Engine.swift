// Engine.swift: the training engine shared by stage 1 (`Trainer`), the hybrid and joint
// fine-tuning (`Refiner`): the seeded epoch order, one data-parallel optimisation step on a
// mini-batch (`step`: per-structure losses with the batch mean's divisor, gradients, all-reduce hook,
// the caller's clipping and optimisers, replica synchronisation) and data-parallel evaluation
// (`map`), on this machine's threads.
//
// Each structure of a mini-batch is one unit of work: a worker (a thread with its own model
// replica, hence its own tape and gradients) runs forward and backward for it and writes the
// gradient of that structure's share of the batch loss into a slot of its own. The slots are then
// summed in batch order, one fixed order, so the batch gradient — and with it every loss and
// parameter of the run — is bit-identical for any number of workers (tested with 1, 2 and 3).
// With several processes the summed gradient is one flat buffer in the order of the trainable
// parameters (parameter sets in order, tensors in creation order) followed by the loss: the buffer
// a multi-process run all-reduces (the trainers' `group`, DataParallel.swift); a rank computes only
// the units its partition owns. With one, the sums go straight into the model's gradients.
//
// Work outside the workers limits the speed-up (issue #14, measured on the benchmark sets), so it
// is kept small: the sums of the slots, clipping (per-tensor sums of squares added in tensor
// order) and Adam's update (vectorised, CKernels) are shared among the threads; replicas let go of
// the parameter values before the update, so it writes in place instead of copying them, and each
// worker takes them back for its own replica when it next runs; checkpoints are written while the
// next epoch trains (CheckpointWriter.swift).
//
// Workers are ConcurrentLoop (DispatchQueue.concurrentPerform) iterations; each binds its own execution context
// (the caller's, with the thread budget divided among the workers), since a binding is not
// inherited by other threads. Replica 0 is the caller's model itself; the others are copies,
// synchronised with it (values and frozen flags) after every optimiser step.
import Autograd
import Foundation
import Linalg
import Models
import StageAPI

/// A model the engine can replicate: its parameter sets in a fixed order, and a fresh instance of
/// the same architecture.
protocol ReplicableModel: AnyObject {
    var parameterSets: [ParameterSet<Float>] { get }
    func makeReplica() throws -> Self
}

extension HamiltonianModel: ReplicableModel where T == Float {
    var parameterSets: [ParameterSet<Float>] { [parameters] }
    func makeReplica() throws -> Self { try Self(config: config) }
}

extension HybridHamiltonianModel: ReplicableModel where T == Float {
    var parameterSets: [ParameterSet<Float>] { [stage1.parameters, stage2.parameters] }
    func makeReplica() throws -> Self { try Self(config: config) }
}

final class DataParallel<Model: ReplicableModel> {
    let model: Model
    let context: ExecutionContext
    /// replicas[0] === model.
    private(set) var replicas: [Model]
    /// Per-structure gradient slots (capacity grows with batch × parameter count).
    private var slots: UnsafeMutableBufferPointer<Float> = .init(start: nil, count: 0)
    /// Fewest gradient elements per thread when the slots are summed (a tuning value; the sum's
    /// bits do not depend on it — tests lower it to split small models).
    var reductionGrain = 1 << 15
    /// Per replica: its values lag the model's (set by `step`). Each worker brings its own replica
    /// up to date when it next runs (`map`), in parallel, instead of the caller doing every replica
    /// between two steps (~0.15 ms of a refine step's serial part, issue #14).
    private let stale: UnsafeMutableBufferPointer<Bool>

    /// Up to `context.threads` workers.
    init(_ model: Model, context: ExecutionContext) throws {
        self.model = model
        self.context = context
        replicas = [model]
        for _ in 1 ..< max(1, context.threads) { replicas.append(try model.makeReplica()) }
        stale = .allocate(capacity: replicas.count)
        stale.initialize(repeating: false)
        synchronise()
    }

    deinit { slots.deallocate(); stale.deallocate() }

    var workerCount: Int { replicas.count }

    /// Copies the model's parameter values and frozen flags into every other replica now (after a
    /// checkpoint load or a freeze; after an optimiser step each worker does its own, `map`).
    /// Assignment shares the value buffers until the optimiser next writes the model's (copy on
    /// write), so this costs little.
    func synchronise() {
        for r in replicas.indices.dropFirst() { synchronise(replica: r) }
    }

    /// Brings replica r up to date with the model (what `synchronise` does for each); safe on a
    /// worker thread while other workers run, as it writes only replica r and reads the model.
    private func synchronise(replica r: Int) {
        for (source, target) in zip(model.parameterSets, replicas[r].parameterSets) {
            for (s, t) in zip(source.tensors, target.tensors) {
                t.data = s.data
                if t.requiresGrad != s.requiresGrad { t.requiresGrad = s.requiresGrad }
                t.grad = nil
            }
        }
        stale[r] = false
    }

    /// Drops the other replicas' references to the parameter values before an optimiser step,
    /// so that the step updates the model's values in place instead of copying every trainable
    /// tensor first (copy on write); each replica shares them again before its worker next runs.
    private func releaseReplicaValues() {
        for r in replicas.dropFirst() {
            for set in r.parameterSets { for t in set.tensors where t.requiresGrad { t.data = [] } }
        }
    }

    /// Number of trainable scalars (the length of the flat gradient).
    var trainableCount: Int { model.parameterSets.reduce(0) { $0 + $1.trainable.reduce(0) { $0 + $1.count } } }

    /// Runs `body(replica, i)` for i in 0..<count on the workers and returns the results in index
    /// order. Worker w takes w, w + W, …; each runs in the engine's context (thread budget shared
    /// out), with graph recording as `recordGradients` says. The error of the lowest failing
    /// index is rethrown.
    func map<R>(_ count: Int, recordGradients: Bool = false, _ body: (Model, Int) throws -> R) throws -> [R] {
        let workers = max(1, min(workerCount, count))
        var base = context
        base.recordsGradients = recordGradients
        if workers == 1 {
            return try base.run { try (0 ..< count).map { try body(model, $0) } }
        }
        let inner = base.with(threads: max(1, context.threads / workers))
        let results = UnsafeMutableBufferPointer<Result<R, Error>?>.allocate(capacity: count)
        results.initialize(repeating: nil)
        defer { results.deinitialize(); results.deallocate() }
        let replicas = self.replicas, stale = self.stale
        ConcurrentLoop.perform(iterations: workers) { w in
            if stale[w] { self.synchronise(replica: w) }
            inner.run {
                for i in stride(from: w, to: count, by: workers) {
                    results[i] = Result { try body(replicas[w], i) }
                }
            }
        }
        return try results.map { try $0!.get() }
    }

    /// The flat gradient of Σᵢ lossᵢ over `count` structures: `body(replica, i)` returns structure
    /// i's loss term (already scaled to its share of the batch mean) and anything else to keep;
    /// the per-structure gradients are summed in index order. Returns the flat gradient and the
    /// kept values in index order.
    func gradients<R>(_ count: Int, _ body: (Model, Int) throws -> (loss: Tensor<Float>, kept: R)) throws -> (gradient: [Float], kept: [R]) {
        let kept = try fillSlots(count, body)
        return (sumSlots(count), kept)
    }

    /// Runs forward and backward of structure i on the workers and leaves its gradient in slot i
    /// (flat layout of `gradients`); returns the kept values in index order.
    private func fillSlots<R>(_ count: Int, _ body: (Model, Int) throws -> (loss: Tensor<Float>, kept: R)) throws -> [R] {
        let size = trainableCount
        if slots.count < count * size {
            slots.deallocate()
            slots = .allocate(capacity: count * size)
        }
        let slots = self.slots
        return try map(count, recordGradients: true) { replica, i -> R in
            for set in replica.parameterSets { set.zeroGrad() }
            let (loss, value) = try body(replica, i)
            if loss.requiresGrad { try loss.backward() }
            var offset = i * size
            for set in replica.parameterSets {
                for t in set.trainable {
                    if let g = t.grad {
                        g.withUnsafeBufferPointer { src in
                            UnsafeMutableRawPointer(slots.baseAddress! + offset).copyMemory(from: src.baseAddress!, byteCount: t.count * MemoryLayout<Float>.stride)
                        }
                    } else {
                        (slots.baseAddress! + offset).update(repeating: 0, count: t.count)
                    }
                    offset += t.count
                    t.grad = nil
                }
            }
            return value
        }
    }

    /// The sum of slots 0..<count in index order, as one flat buffer (what ranks all-reduce).
    private func sumSlots(_ count: Int) -> [Float] {
        let size = trainableCount, slots = self.slots
        // Elementwise, so splitting the parameters among threads changes nothing.
        var total = [Float](repeating: 0, count: size)
        total.withUnsafeMutableBufferPointer { out in
            let out = out
            context.run {
                Parallel.forRanges(size, grain: reductionGrain) { r in
                    for i in 0 ..< count {
                        let src = slots.baseAddress! + i * size
                        for k in r { out[k] += src[k] }
                    }
                }
            }
        }
        return total
    }

    /// The sum of slots 0..<count, each element summed from 0 in index order as `sumSlots` does
    /// (the same bits), written straight into the model's gradients: one process has no flat
    /// buffer to all-reduce, so the copies into and out of one are skipped. The parameters are
    /// shared among the threads in runs of about equal element count.
    private func loadSlotSums(_ count: Int) {
        var targets: [(tensor: Tensor<Float>, offset: Int)] = []
        var size = 0
        for set in model.parameterSets {
            for t in set.trainable { targets.append((t, size)); size += t.count }
        }
        let slots = self.slots
        let chunks = max(1, min(context.threads, size / max(1, reductionGrain)))
        // Chunk c takes the tensors that start in its share of the flat range.
        var bounds = [0]
        for c in 1 ..< chunks { bounds.append(targets.firstIndex { $0.offset >= size * c / chunks } ?? targets.count) }
        bounds.append(targets.count)
        let work = targets, cuts = bounds
        ConcurrentLoop.perform(iterations: chunks) { c in
            for (t, offset) in work[cuts[c] ..< cuts[c + 1]] {
                let n = t.count
                t.grad = [Float](unsafeUninitializedCapacity: n) { out, initialized in
                    // 0 + slot 0, then the others added: sumSlots's sum from zero (−0 becomes +0)
                    // without clearing the buffer first.
                    if count == 0 {
                        out.initialize(repeating: 0)
                    } else {
                        let first = slots.baseAddress! + offset
                        for k in 0 ..< n { out[k] = 0 + first[k] }
                        for i in 1 ..< count {
                            let src = slots.baseAddress! + i * size + offset
                            for k in 0 ..< n { out[k] += src[k] }
                        }
                    }
                    initialized = n
                }
            }
        }
    }

    /// One optimisation step on a mini-batch: each member's loss term (`loss(replica, member,
    /// entries)`, where `entries` is the batch's count of target entries, the mean's divisor) and
    /// its gradient on the workers, the gradients summed in batch order and passed through
    /// `allReduce`, loaded into the model, `update` (clipping and optimisers), and the replicas
    /// marked stale (each worker synchronises its own when it next runs, `map`). Returns the
    /// batch loss and each member's loss record, in batch order.
    /// With several processes (`group`), this rank computes only the units its partition owns
    /// (unit i: rank i mod size); the flat gradient with the local loss appended is summed over the
    /// ranks. Returns the global batch loss and this rank's loss records.
    func step<Member>(_ members: [Member], entries: Int, group: any ProcessGroup,
                      loss: (Model, Member, Int) throws -> BatchLoss<Float>, update: () throws -> Void) throws -> (loss: Double, parts: [BatchLoss<Float>]) {
        let mine = group.size == 1 ? members : members.enumerated().filter { group.partition.owns($0.offset) }.map(\.element)
        let parts = try fillSlots(mine.count) { replica, i -> (loss: Tensor<Float>, kept: BatchLoss<Float>) in
            let l = try loss(replica, mine[i], entries)
            return (l.loss, l)
        }
        let local = parts.reduce(0.0) { $0 + Double($1.loss.item) }
        var batchLoss = local
        if group.size == 1 {
            loadSlotSums(mine.count)
        } else {
            var gradient = sumSlots(mine.count)
            gradient.append(Float(local))
            gradient = group.sum(gradient)
            batchLoss = Double(gradient.removeLast())
            try loadGradients(gradient)
        }
        releaseReplicaValues()
        try update()
        for r in replicas.indices.dropFirst() { stale[r] = true }
        return (batchLoss, parts)
    }

    /// The order of the training structures in an epoch: a seeded shuffle (SplitMix64 of the
    /// seed and the epoch), so a resumed run continues with the same batches.
    static func epochOrder(count: Int, seed: UInt64, epoch: Int) -> [Int] {
        var order = Array(0 ..< count)
        var rng = SplitMix64(seed: seed &+ UInt64(epoch) &* 0x9E37_79B9_7F4A_7C15)
        if order.count > 1 { for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, Int(rng.next() % UInt64(i + 1))) } }
        return order
    }

    /// Loads a flat gradient (layout of `gradients`) into the model's trainable parameters.
    func loadGradients(_ flat: [Float]) throws {
        var offset = 0
        for set in model.parameterSets {
            let n = set.trainable.reduce(0) { $0 + $1.count }
            try set.loadGradients(Array(flat[offset ..< offset + n]))
            offset += n
        }
    }
}
