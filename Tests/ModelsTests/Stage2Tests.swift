import Autograd
import Foundation
@testable import Models
import SO3
import Structures
import TestSupport
import XCTest

enum Toy2 {
    static func config(_ mode: Stage2Mode, outputInit: Double = 1) -> Stage2Config {
        var c = Stage2Config()
        c.mode = mode
        c.width = 8
        c.heads = 2
        c.layers = 2
        c.feedForward = 12
        c.radialCount = 4
        c.outputInit = outputInit
        c.seed = 3
        return c
    }

    static func hybrid<T: Scalar>(_: T.Type, _ mode: Stage2Mode, stage1: ModelConfig = Toy.config(), outputInit: Double = 1) throws -> HybridHamiltonianModel<T> {
        let s1 = try HamiltonianModel<T>(config: stage1)
        try Toy.setStatistics(s1)
        return try HybridHamiltonianModel(stage1: s1, stage2: config(mode, outputInit: outputInit))
    }

    static func waterBatch<T: Scalar>(_ config: ModelConfig, _ s: Structure = Toy.water()) throws -> GraphBatch<T> {
        try GraphBatch<T>([StructureGraph(name: "water", structure: s, keys: Toy.allPairs(3), config: config)], config: config)
    }

    /// Relative equivariance error of the hybrid's predictions (and of ΔH alone) over random
    /// rotations: max |f(Rx) − D f(x) Dᵀ| / max |f(x)|.
    static func equivarianceError<T: Scalar>(_ model: HybridHamiltonianModel<T>, structure: Structure, keys: [BlockKey],
                                              rotations: Int = 3) throws -> (total: Double, delta: Double, deltaScale: Double) {
        let config = model.stage1.config
        func predict(_ s: Structure) throws -> (BlockOperator, BlockOperator) {
            let batch = try GraphBatch<T>([StructureGraph(name: "toy", structure: s, keys: keys, config: config)], config: config)
            let out = try GradMode.withoutGrad { try model(batch) }
            return (try batch.assembleOperators(out.blocks)[0],
                    try batch.assembleOperators(out.delta)[0])
        }
        let (base, baseDelta) = try predict(structure)
        var rng = SplitMix64(seed: 2024)
        var worstTotal = 0.0, worstDelta = 0.0
        let scale = base.entries.map(abs).max()!, deltaScale = baseDelta.entries.map(abs).max()!
        for _ in 0 ..< rotations {
            let r = Rotation(uniform: rng.nextUnit(), rng.nextUnit(), rng.nextUnit())
            let (rotated, rotatedDelta) = try predict(BlockTargets.rotated(structure, operator: nil, by: r).0)
            let expected = try OrbitalRotation.rotate(operator: base, structure: structure, rotation: r)
            let expectedDelta = try OrbitalRotation.rotate(operator: baseDelta, structure: structure, rotation: r)
            XCTAssertEqual(rotated.keys, expected.keys)
            worstTotal = max(worstTotal, maxAbsDifference(rotated.entries, expected.entries) / scale)
            worstDelta = max(worstDelta, maxAbsDifference(rotatedDelta.entries, expectedDelta.entries) / deltaScale)
        }
        return (worstTotal, worstDelta, deltaScale)
    }
}

final class Stage2EquivarianceTests: XCTestCase {
    func testStrictModeIsEquivariantDouble() throws {
        let model = try Toy2.hybrid(Double.self, .strict)
        let e = try Toy2.equivarianceError(model, structure: Toy.water(), keys: Toy.allPairs(3))
        XCTAssertGreaterThan(e.deltaScale, 1e-2, "ΔH must not be trivially small")
        XCTAssertLessThan(e.delta, 1e-11, "strict ΔH relative equivariance error \(e.delta)")
        XCTAssertLessThan(e.total, 1e-11, "strict hybrid relative equivariance error \(e.total)")
    }

    func testStrictModeIsEquivariantFloatPeriodic() throws {
        let model = try Toy2.hybrid(Float.self, .strict)
        let (s, keys) = Toy.chain()
        let e = try Toy2.equivarianceError(model, structure: s, keys: keys)
        XCTAssertGreaterThan(e.deltaScale, 1e-2)
        XCTAssertLessThan(e.delta, 1e-5, "strict ΔH relative equivariance error \(e.delta)")
        XCTAssertLessThan(e.total, 1e-5)
    }

    /// The paper's mode is not equivariant by construction: measure how far it is from it (an
    /// untrained network, so the number is large) and check it is far above rounding.
    func testEmpiricalModeIsNotExactlyEquivariant() throws {
        let model = try Toy2.hybrid(Double.self, .empirical)
        let e = try Toy2.equivarianceError(model, structure: Toy.water(), keys: Toy.allPairs(3))
        print("empirical ΔH relative equivariance error (untrained, Double): \(e.delta); total H: \(e.total)")
        XCTAssertGreaterThan(e.delta, 1e-4, "empirical mode unexpectedly equivariant: \(e.delta)")
        XCTAssertGreaterThan(e.total, 1e-6)
    }
}

final class Stage2GradientTests: XCTestCase {
    /// One attention block: gradients of a random linear functional of both outputs with respect
    /// to every parameter and to the node and edge inputs, against central differences.
    func testAttentionBlockGradients() throws {
        let p = ParameterSet<Double>(seed: 5)
        let block = try Stage2Attention(p, name: "b", width: 6, heads: 3, hidden: 7)
        // 4 nodes; node 3 receives no edge, node 0 receives three.
        let source = try RowIndex([1, 2, 3, 0, 1, 2], rowCount: 4)
        let target = try RowIndex([0, 0, 0, 1, 2, 1], rowCount: 4)
        let h = Tensor<Double>.randomNormal([4, 6], seed: 1, requiresGrad: true)
        let z = Tensor<Double>.randomNormal([6, 6], seed: 2, requiresGrad: true)
        let wh = Tensor<Double>.randomNormal([4, 6], seed: 3), wz = Tensor<Double>.randomNormal([6, 6], seed: 4)
        func loss() throws -> Tensor<Double> {
            let (a, b) = try block(nodes: h, edges: z, source: source, target: target)
            return try (try a * wh).sum() + (try b * wz).sum()
        }
        p.zeroGrad(); h.zeroGrad(); z.zeroGrad()
        try loss().backward()
        var checked = 0
        for t in p.trainable + [h, z] {
            let analytic = t.grad ?? [Double](repeating: 0, count: t.count)
            for k in Set([0, t.count / 2, t.count - 1]) {
                let saved = t.data[k], step = 1e-6
                t.data[k] = saved + step
                let up = try GradMode.withoutGrad { try loss().item }
                t.data[k] = saved - step
                let down = try GradMode.withoutGrad { try loss().item }
                t.data[k] = saved
                let numeric = (up - down) / (2 * step)
                XCTAssertEqual(analytic[k], numeric, accuracy: 1e-6 * max(1, abs(numeric)), "\(t.name)[\(k)]")
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 50)
        XCTAssertTrue(h.grad!.contains { $0 != 0 } && z.grad!.contains { $0 != 0 })
    }

    /// The whole hybrid in both modes: directional derivatives along random directions in the
    /// space of all stage-2 parameters, and of all stage-1 parameters when unfrozen (the joint
    /// fine-tune path through the baseline features), plus single entries of a few tensors.
    func testWholeStage2Gradients() throws {
        var s1 = Toy.config()
        s1.irreps = "2x0e+2x1o+1x2e+1x3o+1x4e"
        s1.layers = 1
        for mode in Stage2Mode.allCases {
            let model = try Toy2.hybrid(Double.self, mode, stage1: s1)
            model.freezeStage1(false)
            let (s, keys) = Toy.chain()
            let batch = try GraphBatch<Double>([StructureGraph(name: "chain", structure: s, keys: keys, config: s1)], config: s1)
            let geometry = try Stage2Geometry(batch, shLmax: model.stage2.config.shLmax, radialCount: model.stage2.config.radialCount, cutoff: model.stage2.cutoff)
            var targets: [BlockGroup: Tensor<Double>] = [:]
            for (g, rows) in batch.groupRows {
                targets[g] = Tensor<Double>.randomNormal([rows.count, model.stage1.heads[g]!.decomposition.dim], seed: UInt64(g.zi * 10 + g.zj + (g.onsite ? 3 : 0)))
            }
            func loss() throws -> Double { try GradMode.withoutGrad { try BlockTargets.meanSquaredError(try model(batch, geometry: geometry).blocks, targets).item } }
            model.stage1.parameters.zeroGrad(); model.stage2.parameters.zeroGrad()
            try BlockTargets.meanSquaredError(try model(batch, geometry: geometry).blocks, targets).backward()

            func directional(_ tensors: [Tensor<Double>], seed: UInt64) throws {
                var rng = SplitMix64(seed: seed)
                let directions = tensors.map { t in (0 ..< t.count).map { _ in rng.nextNormal() } }
                var analytic = 0.0
                for (t, v) in zip(tensors, directions) { let g = t.grad ?? []; for k in 0 ..< g.count { analytic += g[k] * v[k] } }
                let saved = tensors.map(\.data), step = 1e-6
                func shifted(_ sign: Double) throws -> Double {
                    for (t, (x, v)) in zip(tensors, zip(saved, directions)) { t.data = (0 ..< x.count).map { x[$0] + sign * step * v[$0] } }
                    return try loss()
                }
                let numeric = (try shifted(1) - shifted(-1)) / (2 * step)
                for (t, x) in zip(tensors, saved) { t.data = x }
                XCTAssertEqual(analytic, numeric, accuracy: 1e-6 * max(1, abs(numeric)), "\(mode): directional derivative, seed \(seed)")
                XCTAssertGreaterThan(abs(numeric), 1e-4)
            }
            for seed in UInt64(1) ... 3 { try directional(model.stage2.parameters.trainable, seed: seed) }
            try directional(model.stage1.parameters.trainable, seed: 9)

            let spot = model.stage2.parameters.trainable.filter { ["block1.key.weight", "embed.edge.weight", "block0.edge_norm.gamma"].contains($0.name) || $0.name.hasPrefix("group.off_O_H.") }
            XCTAssertGreaterThanOrEqual(spot.count, 4)
            for t in spot {
                let analytic = t.grad ?? [Double](repeating: 0, count: t.count)
                let k = t.count / 3
                let saved = t.data[k], step = 1e-6
                t.data[k] = saved + step
                let up = try loss()
                t.data[k] = saved - step
                let down = try loss()
                t.data[k] = saved
                let numeric = (up - down) / (2 * step)
                XCTAssertEqual(analytic[k], numeric, accuracy: 1e-6 * max(1e-2, abs(numeric)), "\(mode) \(t.name)[\(k)]")
            }
        }
    }
}

final class Stage2ConfigTests: XCTestCase {
    func testDefaultsAndJSON() throws {
        let d = Stage2Config()
        XCTAssertEqual(d.mode, .empirical)
        XCTAssertEqual(d.shLmax, 7)
        let partial = try JSONDecoder().decode(Stage2Config.self, from: Data(#"{"mode": "strict", "sh_lmax": 8, "augment_rotations": true}"#.utf8))
        XCTAssertEqual(partial.mode, .strict)
        XCTAssertEqual(partial.shLmax, 8)
        XCTAssertTrue(partial.augmentRotations)
        XCTAssertEqual(partial.width, d.width)
        let hybrid = HybridConfig(stage1: Toy.config(), stage2: Toy2.config(.strict))
        let json = try JSONEncoder().encode(hybrid)
        XCTAssertTrue(String(decoding: json, as: UTF8.self).contains(#""kind":"hybrid""#))
        XCTAssertEqual(try JSONDecoder().decode(HybridConfig.self, from: json), hybrid)
    }

    func testBadConfigsNameTheField() throws {
        XCTAssertThrowsError(try JSONDecoder().decode(Stage2Config.self, from: Data(#"{"mode": "loose"}"#.utf8))) {
            XCTAssertTrue("\($0)".contains("stage2.mode"), "\($0)")
        }
        var c = Toy2.config(.strict)
        c.heads = 3
        XCTAssertNoThrow(try Toy2.config(.strict).validate())
        XCTAssertThrowsError(try HybridHamiltonianModel(stage1: HamiltonianModel<Float>(config: Toy.config()), stage2: c)) {
            XCTAssertTrue("\($0)".contains("stage2.heads"), "\($0)")
        }
        c = Toy2.config(.empirical)
        c.shLmax = 9
        XCTAssertThrowsError(try c.validate()) { XCTAssertTrue("\($0)".contains("stage2.sh_lmax"), "\($0)") }
    }

    func testBatchOfTwoEqualsSeparateRuns() throws {
        for mode in Stage2Mode.allCases {
            let model = try Toy2.hybrid(Double.self, mode)
            let config = model.stage1.config
            try assertBatchOfTwoEqualsSeparateRuns(config: config, predict: model.predictOperators, "\(mode)")
        }
    }

    func testStartsNearStage1WithSmallOutputInit() throws {
        let model = try Toy2.hybrid(Double.self, .empirical, outputInit: 1e-3)
        let batch: GraphBatch<Double> = try Toy2.waterBatch(model.stage1.config)
        let hybrid = try model.predictOperators(batch)[0], base = try model.stage1.predictOperators(batch)[0]
        let diff = maxAbsDifference(hybrid.entries, base.entries), scale = base.entries.map(abs).max()!
        XCTAssertGreaterThan(diff, 0)
        XCTAssertLessThan(diff / scale, 1e-2)
    }
}
