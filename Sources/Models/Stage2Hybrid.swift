// The HarmoSE hybrid: stage 1 (`HamiltonianModel`) + stage 2 (`Stage2Network`), H = H₁ + ΔH.
// Owns the hybrid forward pass and prediction, per-group block targets built from DFT
// operators, the block mean-squared-error loss, and random-rotation augmentation of a structure
// and its target operator. Training (stage 1 frozen, or a joint fine-tune) is Training's one
// engine (`Refiner`, on `DataParallel`).
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
        return HybridOutput(blocks: try Self.combine(base.blocks, delta), stage1: base, delta: delta)
    }

    /// H₁ + ΔH per group; groups stage 2 does not correct keep H₁.
    public static func combine(_ base: [BlockGroup: Tensor<T>], _ delta: [BlockGroup: Tensor<T>]) throws -> [BlockGroup: Tensor<T>] {
        var blocks: [BlockGroup: Tensor<T>] = [:]
        for (g, b) in base { blocks[g] = try delta[g].map { try b + $0 } ?? b }
        return blocks
    }

    /// Predicted real-space Hamiltonians, one per structure (internal order, eV), in the same
    /// layout as `HamiltonianModel.predictOperators`.
    public func predictOperators(_ batch: GraphBatch<T>) throws -> [BlockOperator] {
        let out = try GradMode.withoutGrad { try self(batch) }
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

    /// The same physical system rotated by R (data augmentation, equivariance checks of whole
    /// models): positions and lattice vectors become R r, H and S blocks D(i) O D(j)ᵀ; block keys
    /// and lattice shifts are unchanged because the lattice rotates with the atoms. Spinful
    /// records are refused (their spin part would need SU(2) matrices). Lives here, on the domain
    /// side: SO3 rotates blocks and knows nothing of DFT records.
    public static func rotated(_ record: DFTRecord, by r: Rotation) throws -> DFTRecord {
        guard !record.spinful else {
            throw ModelError.badInput("rotating spinful record \(record.name) (the spin part needs SU(2) matrices)")
        }
        var out = record
        (out.structure, out.hamiltonian) = try rotated(record.structure, operator: record.hamiltonian, by: r)
        out.overlap = try record.overlap.map { try OrbitalRotation.rotate(operator: $0, structure: record.structure, rotation: r) }
        return out
    }
}
