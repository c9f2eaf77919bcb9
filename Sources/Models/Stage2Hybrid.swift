// The HarmoSE hybrid: stage 1 (`HamiltonianModel`) + stage 2 (`Stage2Network`), H = H₁ + ΔH.
// Owns the hybrid forward pass and prediction, per-group block targets built from DFT
// operators, the block mean-squared-error loss, random-rotation augmentation of a structure and
// its target operator, and the stage-2 fitting loop with stage 1 frozen (the residual schedule)
// or unfrozen at a low learning rate (joint fine-tune). The pipeline's `refine` stage drives it.
import Autograd
import Foundation
import SO3
import Structures

/// Which network a checkpoint holds; the one field `predict` needs to rebuild the right model.
public enum ModelKind: String, Codable, Sendable {
    case stage1
    case hybrid
}

/// The configuration of a hybrid checkpoint: stage 1's and stage 2's, plus the kind marker.
public struct HybridConfig: Codable, Equatable, Sendable {
    public var kind: ModelKind = .hybrid
    public var stage1: ModelConfig
    public var stage2: Stage2Config

    public init(stage1: ModelConfig, stage2: Stage2Config) { self.stage1 = stage1; self.stage2 = stage2 }

    enum CodingKeys: String, CodingKey { case kind, stage1, stage2 }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        kind = try c.decodeIfPresent(ModelKind.self, forKey: .kind) ?? .hybrid
        stage1 = try c.decode(ModelConfig.self, forKey: .stage1)
        stage2 = try c.decodeIfPresent(Stage2Config.self, forKey: .stage2) ?? Stage2Config()
    }
}

/// What the hybrid's forward pass produces.
public struct HybridOutput<T: Scalar> {
    /// H₁ + ΔH per group (eV, stage-1 layout).
    public let blocks: [BlockGroup: Tensor<T>]
    /// Stage 1's output (baseline blocks and equivariant features).
    public let stage1: ModelOutput<T>
    /// ΔH per group.
    public let delta: [BlockGroup: Tensor<T>]
}

public final class HybridHamiltonianModel<T: Scalar> {
    public let stage1: HamiltonianModel<T>
    public let stage2: Stage2Network<T>

    public init(stage1: HamiltonianModel<T>, stage2 config: Stage2Config) throws {
        self.stage1 = stage1
        stage2 = try Stage2Network(config: config, stage1: stage1)
    }

    public convenience init(config: HybridConfig) throws {
        try self.init(stage1: HamiltonianModel(config: config.stage1), stage2: config.stage2)
    }

    public var config: HybridConfig { HybridConfig(stage1: stage1.config, stage2: stage2.config) }

    /// Freezes every stage-1 parameter (the residual schedule), or unfreezes the trainable ones
    /// for a joint fine-tune (output statistics stay fixed either way).
    public func freezeStage1(_ frozen: Bool) {
        if frozen {
            stage1.parameters.freeze()
        } else {
            stage1.parameters.unfreeze()
            stage1.parameters.freeze(prefix: "stats.")
        }
    }

    public func callAsFunction(_ batch: GraphBatch<T>) throws -> HybridOutput<T> {
        try callAsFunction(batch, geometry: Stage2Geometry(batch, shLmax: stage2.config.shLmax,
                                                            radialCount: stage2.config.radialCount, cutoff: stage2.cutoff))
    }

    public func callAsFunction(_ batch: GraphBatch<T>, geometry: Stage2Geometry<T>) throws -> HybridOutput<T> {
        let base = try stage1(batch)
        let delta = try stage2(batch, stage1: base, geometry: geometry)
        var blocks: [BlockGroup: Tensor<T>] = [:]
        for (g, b) in base.blocks { blocks[g] = try b + delta[g]! }
        return HybridOutput(blocks: blocks, stage1: base, delta: delta)
    }

    /// Predicted real-space Hamiltonians, one per structure (internal order, eV), in the same
    /// layout as `HamiltonianModel.predictOperators`.
    public func predictOperators(_ batch: GraphBatch<T>) throws -> [BlockOperator] {
        let out = try ModelExecution.exclusive { try GradMode.withoutGrad { try self(batch) } }
        return try batch.assembleOperators(out.blocks)
    }
}

// MARK: - Targets, loss, augmentation

public enum BlockTargets {
    /// Per group: the target blocks [rows, n_i·n_j] in `batch.groupBlocks` order, taken from one
    /// DFT operator per structure (internal order, eV). Names the structure and key when a block
    /// is missing or has the wrong size.
    public static func make<T: Scalar>(_ batch: GraphBatch<T>, operators: [BlockOperator]) throws -> [BlockGroup: Tensor<T>] {
        guard operators.count == batch.graphs.count else {
            throw ModelError.badInput("targets: \(operators.count) operators for \(batch.graphs.count) structures")
        }
        var out: [BlockGroup: Tensor<T>] = [:]
        for (g, rows) in batch.groupBlocks {
            var values: [T] = []
            var width = -1
            for row in rows {
                let name = batch.graphs[row.structure].name
                guard let v = operators[row.structure].values(for: row.key) else {
                    throw ModelError.badInput("\(name): target Hamiltonian has no block \(row.key)")
                }
                if width < 0 { width = v.count }
                guard v.count == width else { throw ModelError.badInput("\(name): block \(row.key) has \(v.count) values, expected \(width)") }
                values += v.map { T($0) }
            }
            out[g] = try Tensor(values, shape: [rows.count, max(width, 0)])
        }
        return out
    }

    /// Mean squared error over every block entry of every group (eV²).
    public static func meanSquaredError<T: Scalar>(_ predicted: [BlockGroup: Tensor<T>], _ targets: [BlockGroup: Tensor<T>]) throws -> Tensor<T> {
        var total: Tensor<T>? = nil
        var count = 0
        for g in predicted.keys.sorted() {
            guard let t = targets[g] else { throw ModelError.badInput("targets have no block group \(g)") }
            let s = try (try predicted[g]! - t).square().sum()
            total = try total.map { try $0 + s } ?? s
            count += t.count
        }
        guard let total, count > 0 else { return Tensor(scalar: 0) }
        return total * T(1 / Double(count))
    }

    /// Mean absolute error over every entry (eV), without a tape.
    public static func meanAbsoluteError<T: Scalar>(_ predicted: [BlockGroup: Tensor<T>], _ targets: [BlockGroup: Tensor<T>]) -> Double {
        var sum = 0.0, count = 0
        for (g, p) in predicted {
            guard let t = targets[g] else { continue }
            for k in 0 ..< p.count { sum += abs(Double(p.data[k]) - Double(t.data[k])) }
            count += p.count
        }
        return count > 0 ? sum / Double(count) : 0
    }

    /// A structure rotated rigidly (positions and lattice vectors) and its operator rotated to
    /// match, B ↦ D(i) B D(j)ᵀ: the same physics in another frame (augmentation, rotated tests).
    public static func rotated(_ structure: Structure, operator op: BlockOperator?, by r: Rotation) throws -> (Structure, BlockOperator?) {
        var s = structure
        s.positions = structure.positions.map { r * $0 }
        s.lattice.vectors = structure.lattice.vectors.map { r * $0 }
        let rotatedOp = try op.map { try OrbitalRotation.rotate(operator: $0, structure: structure, rotation: r) }
        return (s, rotatedOp)
    }
}

// MARK: - Fitting

/// One training example for the fitting loop: a structure, the keys to predict and its DFT
/// Hamiltonian (internal order, eV).
public struct Stage2Example: Sendable {
    public let name: String
    public let structure: Structure
    public let keys: [BlockKey]
    public let target: BlockOperator
    public init(name: String, structure: Structure, keys: [BlockKey], target: BlockOperator) {
        self.name = name; self.structure = structure; self.keys = keys; self.target = target
    }
}

public struct Stage2FitOptions: Sendable {
    public var epochs = 10
    public var learningRate = 1e-3
    /// Joint fine-tune: stage 1 is trained too (at `learningRate × jointLRFactor`) for this many
    /// final epochs; 0 keeps stage 1 frozen throughout.
    public var jointEpochs = 0
    public var jointLRFactor = 0.1
    public var batchSize = 4
    public var clipNorm: Double? = 10
    public var seed: UInt64 = 0
    public init() {}
}

public enum Stage2Fitting {
    /// Trains stage 2 on the residual of a (frozen) stage 1, optionally followed by a joint
    /// fine-tune. Returns the training loss (block MSE, eV²) of each epoch. Rotation
    /// augmentation follows `model.stage2.config.augmentRotations`.
    @discardableResult
    public static func fit<T: Scalar>(_ model: HybridHamiltonianModel<T>, examples: [Stage2Example], options: Stage2FitOptions,
                                      progress: ((Int, Double) -> Void)? = nil) throws -> [Double] {
        try ModelExecution.exclusive { try fitExclusive(model, examples: examples, options: options, progress: progress) }
    }

    /// One optimisation step of the hybrid: zero gradients, loss, backward, clip, Adam on stage 2
    /// and — in joint epochs, when `stage1` is given — on stage 1. Returns the loss tensor.
    /// `reduce` runs between backward and clipping (a data-parallel run sums gradients there);
    /// `loss` returning nil means this process has no share of the batch (zero gradients).
    public static func step<T: Scalar>(_ model: HybridHamiltonianModel<T>, loss: () throws -> Tensor<T>?, stage2: Adam<T>, stage1: Adam<T>?,
                                       clipNorm: Double?, reduce: () throws -> Void = {}) throws -> Tensor<T>? {
        model.stage1.parameters.zeroGrad(); model.stage2.parameters.zeroGrad()
        let l = try loss()
        try l?.backward()
        try reduce()
        if let c = clipNorm { _ = clipGradientNorm(model.stage2.parameters, maxNorm: c) }
        stage2.step(model.stage2.parameters)
        if let stage1 {
            if let c = clipNorm { _ = clipGradientNorm(model.stage1.parameters, maxNorm: c) }
            stage1.step(model.stage1.parameters)
        }
        return l
    }

    static func fitExclusive<T: Scalar>(_ model: HybridHamiltonianModel<T>, examples: [Stage2Example], options: Stage2FitOptions,
                                        progress: ((Int, Double) -> Void)?) throws -> [Double] {
        guard !examples.isEmpty else { throw ModelError.badInput("refine: no training structures") }
        guard options.batchSize >= 1, options.epochs >= 0, options.jointEpochs >= 0, options.jointEpochs <= options.epochs else {
            throw ModelError.badInput("refine: need batch_size ≥ 1 and 0 ≤ joint_epochs ≤ epochs")
        }
        let stage1Config = model.stage1.config
        var noRotation: SplitMix64? = nil
        let fixedBatches: [(GraphBatch<T>, [BlockGroup: Tensor<T>])]? = model.stage2.config.augmentRotations ? nil
            : try batches(examples, rotation: &noRotation, options: options, config: stage1Config)
        let adam2 = Adam<T>(learningRate: options.learningRate)
        let adam1 = Adam<T>(learningRate: options.learningRate * options.jointLRFactor)
        var rng: SplitMix64? = SplitMix64(seed: options.seed ^ 0x5354_4147_4532)
        var losses: [Double] = []
        for epoch in 0 ..< options.epochs {
            let joint = epoch >= options.epochs - options.jointEpochs
            model.freezeStage1(!joint)
            let epochBatches = try fixedBatches ?? batches(examples, rotation: &rng, options: options, config: stage1Config)
            var sum = 0.0
            for (batch, targets) in epochBatches {
                let loss = try step(model, loss: { try BlockTargets.meanSquaredError(try model(batch).blocks, targets) },
                                    stage2: adam2, stage1: joint ? adam1 : nil, clipNorm: options.clipNorm)!
                sum += Double(loss.item)
            }
            let mean = sum / Double(epochBatches.count)
            guard mean.isFinite else { throw ModelError.badInput("refine: loss became \(mean) at epoch \(epoch + 1)") }
            losses.append(mean)
            progress?(epoch + 1, mean)
        }
        model.freezeStage1(true)
        return losses
    }

    /// Batches of `options.batchSize` examples with their targets; each structure rotated at
    /// random first when `rng` is given.
    static func batches<T: Scalar>(_ examples: [Stage2Example], rotation rng: inout SplitMix64?, options: Stage2FitOptions,
                                   config: ModelConfig) throws -> [(GraphBatch<T>, [BlockGroup: Tensor<T>])] {
        var out: [(GraphBatch<T>, [BlockGroup: Tensor<T>])] = []
        var start = 0
        while start < examples.count {
            let chunk = examples[start ..< min(start + options.batchSize, examples.count)]
            var graphs: [StructureGraph] = [], ops: [BlockOperator] = []
            for ex in chunk {
                var s = ex.structure, op = ex.target
                if rng != nil {
                    let r = Rotation(uniform: rng!.nextUnit(), rng!.nextUnit(), rng!.nextUnit())
                    let rotated = try BlockTargets.rotated(s, operator: op, by: r)
                    s = rotated.0; op = rotated.1!
                }
                graphs.append(try StructureGraph(name: ex.name, structure: s, keys: ex.keys, config: config))
                ops.append(op)
            }
            let batch = try GraphBatch<T>(graphs, config: config)
            out.append((batch, try BlockTargets.make(batch, operators: ops)))
            start += options.batchSize
        }
        return out
    }
}
