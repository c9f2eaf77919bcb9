import Autograd
import Foundation
@testable import Models
import SO3
import Structures
import TestSupport
import XCTest

/// Tiny structures and configs shared by the model tests.
enum Toy {
    static func config(seed: UInt64 = 7) -> ModelConfig {
        var c = ModelConfig()
        c.irreps = "4x0e+3x1o+2x1e+2x2e+2x2o+2x3o+1x3e+1x4e"
        c.layers = 2
        c.radialCount = 4
        c.radialHidden = 6
        c.cutoff = 6
        c.avgNeighbors = 2
        c.seed = seed
        c.basis = ["O": [0, 0, 1, 1, 2], "H": [0, 0, 1]]
        return c
    }

    /// A distorted water molecule, every pair an edge.
    static func water() -> Structure {
        Structure(lattice: Lattice(vectors: [Vec3(20, 0, 0), Vec3(0, 20, 0), Vec3(0, 0, 20)], periodic: [false, false, false]),
                  atomicNumbers: [8, 1, 1],
                  positions: [Vec3(0.02, -0.01, 0.03), Vec3(0.95, 0.1, -0.05), Vec3(-0.3, 0.9, 0.12)],
                  basis: [8: OrbitalShells([0, 0, 1, 1, 2]), 1: OrbitalShells([0, 0, 1])])
    }

    /// A small periodic OH chain with blocks across cells.
    static func chain() -> (Structure, [BlockKey]) {
        let s = Structure(lattice: Lattice(vectors: [Vec3(2.9, 0.1, 0), Vec3(0, 12, 0), Vec3(0.2, 0, 12)], periodic: [true, false, false]),
                          atomicNumbers: [8, 1], positions: [Vec3(0.1, 0.2, 0.3), Vec3(1.1, 0.5, 0.1)],
                          basis: [8: OrbitalShells([0, 0, 1, 1, 2]), 1: OrbitalShells([0, 0, 1])])
        var keys: [BlockKey] = []
        for r in -1 ... 1 { for i in 0 ..< 2 { for j in 0 ..< 2 { keys.append(BlockKey(r, 0, 0, i, j)) } } }
        return (s, keys)
    }

    /// A twisted H2O2 (dihedral ≈ 110°): chiral, so its mirror image is no rotation of it.
    static func peroxide() -> Structure {
        Structure(lattice: Lattice(vectors: [Vec3(20, 0, 0), Vec3(0, 20, 0), Vec3(0, 0, 20)], periodic: [false, false, false]),
                  atomicNumbers: [8, 8, 1, 1],
                  positions: [Vec3(0, 0.02, 0.01), Vec3(1.46, -0.03, 0.02), Vec3(-0.3, 0.92, -0.05), Vec3(1.78, 0.35, 0.86)],
                  basis: [8: OrbitalShells([0, 0, 1, 1, 2]), 1: OrbitalShells([0, 0, 1])])
    }

    /// Haar rotation from three uniforms, times the inversion when `improper` (det −1).
    static func randomRotation(_ rng: inout SplitMix64, improper: Bool) -> Rotation {
        let r = Rotation(uniform: rng.nextUnit(), rng.nextUnit(), rng.nextUnit())
        return improper ? Rotation(rows: -r.rows.0, -r.rows.1, -r.rows.2) : r
    }

    static func allPairs(_ n: Int) -> [BlockKey] {
        (0 ..< n).flatMap { i in (0 ..< n).map { BlockKey(0, 0, 0, i, $0) } }
    }

    static func rotated(_ s: Structure, _ r: Rotation) -> Structure {
        var out = s
        out.positions = s.positions.map { r * $0 }
        out.lattice.vectors = s.lattice.vectors.map { r * $0 }
        return out
    }

    /// Nonzero output statistics so the shift path is exercised.
    static func setStatistics<T>(_ model: HamiltonianModel<T>) throws {
        for g in model.groups {
            let h = model.heads[g]!
            var shift = [Double](repeating: 0, count: h.decomposition.dim)
            for (n, k) in h.scalarComponents.enumerated() { shift[k] = 0.5 - 0.3 * Double(n) }
            try model.setStatistics(GroupStatistics(scale: 1.7, shift: shift), for: g)
        }
    }
}

final class ModelEquivarianceTests: XCTestCase {
    /// Predictions of the transformed structure vs the prediction transformed by D(R) per shell,
    /// for three proper and three improper random R. For improper R, SO3's WignerD gives the
    /// orbitals' representation (−1)^l D(−R) (an l orbital has parity (−1)^l), so
    /// `OrbitalRotation.rotate` already maps blocks correctly under mirrors.
    func check<T: Scalar>(_: T.Type, structure: Structure, keys: [BlockKey], tolerance: Double) throws {
        let config = Toy.config()
        let model = try HamiltonianModel<T>(config: config)
        try Toy.setStatistics(model)
        let graph = try StructureGraph(name: "toy", structure: structure, keys: keys, config: config)
        let base = try model.predictOperators(GraphBatch<T>([graph], config: config))[0]
        var rng = SplitMix64(seed: 99)
        for trial in 0 ..< 6 {
            let r = Toy.randomRotation(&rng, improper: trial % 2 == 1)
            XCTAssertEqual(r.determinant, trial % 2 == 1 ? -1 : 1, accuracy: 1e-12)
            let rs = Toy.rotated(structure, r)
            let rg = try StructureGraph(name: "toy-rotated", structure: rs, keys: keys, config: config)
            let predicted = try model.predictOperators(GraphBatch<T>([rg], config: config))[0]
            let expected = try OrbitalRotation.rotate(operator: base, structure: structure, rotation: r)
            XCTAssertEqual(predicted.keys.count, expected.keys.count)
            var worst = 0.0, scale = 0.0
            for (b, key) in expected.keys.enumerated() {
                let p = predicted.values(for: key)!
                worst = max(worst, maxAbsDifference(Array(p), Array(expected.values(at: b))))
                scale = max(scale, expected.values(at: b).map(abs).max()!)
            }
            XCTAssertGreaterThan(scale, 1e-3, "predictions must not be trivially zero")
            XCTAssertLessThan(worst / scale, tolerance, "relative equivariance error \(worst / scale) (det R = \(r.determinant))")
        }
    }

    func testWaterEquivariantDouble() throws {
        try check(Double.self, structure: Toy.water(), keys: Toy.allPairs(3), tolerance: 1e-12)
    }

    func testWaterEquivariantFloat() throws {
        try check(Float.self, structure: Toy.water(), keys: Toy.allPairs(3), tolerance: 1e-5)
    }

    func testChiralPeroxideEquivariantDouble() throws {
        try check(Double.self, structure: Toy.peroxide(), keys: Toy.allPairs(4), tolerance: 1e-12)
    }

    func testChiralPeroxideEquivariantFloat() throws {
        try check(Float.self, structure: Toy.peroxide(), keys: Toy.allPairs(4), tolerance: 1e-5)
    }

    func testPeriodicChainEquivariantDouble() throws {
        let (s, keys) = Toy.chain()
        try check(Double.self, structure: s, keys: keys, tolerance: 1e-12)
    }

    func testFeaturesRotateAsIrreps() throws {
        for improper in [false, true] {
            let r0 = Rotation(uniform: 0.3, 0.7, 0.1)
            try checkFeatures(improper ? Rotation(rows: -r0.rows.0, -r0.rows.1, -r0.rows.2) : r0)
        }
    }

    /// Hidden features transform with p · D(R) per irrep of parity p under improper R.
    func checkFeatures(_ r: Rotation) throws {
        let config = Toy.config()
        let model = try HamiltonianModel<Double>(config: config)
        let s = Toy.peroxide()
        let a = try GradMode.withoutGrad { try model(GraphBatch<Double>([StructureGraph(name: "w", structure: s, keys: Toy.allPairs(4), config: config)], config: config)) }
        let b = try GradMode.withoutGrad { try model(GraphBatch<Double>([StructureGraph(name: "w", structure: Toy.rotated(s, r), keys: Toy.allPairs(4), config: config)], config: config)) }
        var nodes = a.nodeFeatures.data, edges = a.edgeFeatures.data
        try model.hiddenIrreps.rotate(&nodes, rotation: r)
        try model.hiddenIrreps.rotate(&edges, rotation: r)
        XCTAssertEqual(a.nodeFeatures.shape, [4, model.hiddenIrreps.dim])
        XCTAssertEqual(a.edgeFeatures.shape, [12, model.hiddenIrreps.dim])
        // Odd-parity channels must carry signal, or the improper check would be vacuous.
        var odd = 0.0
        for (e, range) in zip(model.hiddenIrreps.entries, model.hiddenIrreps.slices) where e.irrep.p != (e.irrep.l % 2 == 0 ? 1 : -1) {
            for row in 0 ..< 12 { for k in range { odd = max(odd, abs(a.edgeFeatures.data[row * model.hiddenIrreps.dim + k])) } }
        }
        XCTAssertGreaterThan(odd, 1e-3, "channels of parity −(−1)^l are nonzero")
        XCTAssertLessThan(maxAbsDifference(nodes, b.nodeFeatures.data), 1e-11)
        XCTAssertLessThan(maxAbsDifference(edges, b.edgeFeatures.data), 1e-11)
    }
}

final class ModelParityTests: XCTestCase {
    /// Heads output each (l1, l2) block's irreps with parity (−1)^(l1+l2).
    func testHeadIrrepsCarryOrbitalParity() throws {
        let model = try HamiltonianModel<Double>(config: Toy.config())
        let head = model.heads[BlockGroup(onsite: false, zi: 1, zj: 8)]!
        // H [s s p] × O [s s p p d]: every L of every shell pair, with the pair's parity.
        var expected: [Irrep] = []
        for l1 in [0, 0, 1] { for l2 in [0, 0, 1, 1, 2] {
            for l in abs(l1 - l2) ... (l1 + l2) { expected.append(try Irrep(l, (l1 + l2) % 2 == 0 ? 1 : -1)) }
        } }
        XCTAssertEqual(head.irreps.entries.flatMap { e in Array(repeating: e.irrep, count: e.mul) }, expected)
        for name in ["1e", "2o", "3o"] { XCTAssertTrue(expected.contains(try Irrep(name)), name) }
    }

    /// A config with only the harmonics' parities (the old default style) still builds: the
    /// needed mirror irreps are added with the multiplicity of their L.
    func testParityCompletionOfSphericalHarmonicIrreps() throws {
        var c = Toy.config()
        c.irreps = "4x0e+3x1o+2x2e+2x3o+1x4e"
        let model = try HamiltonianModel<Double>(config: c)
        XCTAssertEqual(model.hiddenIrreps, try Irreps("4x0e+3x1o+3x1e+2x2e+2x2o+2x3o+2x3e+1x4e"))
        let full = try HamiltonianModel<Double>(config: Toy.config())
        XCTAssertEqual(full.hiddenIrreps, try Irreps("4x0e+3x1o+2x1e+2x2e+2x2o+2x3o+1x3e+1x4e"), "nothing added when present")
    }
}

final class ModelGradientTests: XCTestCase {
    /// Full-model gradient check: d(loss)/d(parameter) by backward vs central differences, for a
    /// few entries of every parameter tensor.
    func testFullModelGradientMatchesFiniteDifferences() throws {
        var config = Toy.config()
        config.irreps = "2x0e+2x1o+1x1e+1x2e+1x2o+1x3o+1x3e+1x4e"
        let model = try HamiltonianModel<Double>(config: config)
        try Toy.setStatistics(model)
        let (s, keys) = Toy.chain()
        let batch = try GraphBatch<Double>([StructureGraph(name: "chain", structure: s, keys: keys, config: config)], config: config)
        // A fixed random target per group makes the loss depend on every output.
        var targets: [BlockGroup: Tensor<Double>] = [:]
        for (g, rows) in batch.groupRows {
            let width = model.heads[g]!.decomposition.dim
            targets[g] = Tensor<Double>.randomNormal([rows.count, width], seed: UInt64(g.zi * 100 + g.zj + (g.onsite ? 7 : 0)))
        }
        func loss() throws -> Tensor<Double> {
            let out = try model(batch)
            var total: Tensor<Double>? = nil
            for g in out.blocks.keys.sorted() {
                let d = try (try out.blocks[g]! - targets[g]!).square().mean()
                total = try total.map { try $0 + d } ?? d
            }
            return total!
        }
        model.parameters.zeroGrad()
        try loss().backward()
        var checked = 0, worst = 0.0
        for p in model.parameters.trainable {
            let analytic = p.grad ?? [Double](repeating: 0, count: p.count)
            for k in Set([(checked * 7919) % p.count]) {
                let saved = p.data[k], h = 1e-5
                p.data[k] = saved + h
                let up = try GradMode.withoutGrad { try loss().item }
                p.data[k] = saved - h
                let down = try GradMode.withoutGrad { try loss().item }
                p.data[k] = saved
                let numeric = (up - down) / (2 * h)
                let err = abs(numeric - analytic[k]) / max(1e-3, abs(numeric))
                worst = max(worst, err)
                XCTAssertLessThan(err, 1e-6, "\(p.name)[\(k)]: backward \(analytic[k]) vs finite difference \(numeric)")
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 80)
        XCTAssertEqual(model.parameters.trainable.filter { $0.name.hasPrefix("stats.") }.count, 0, "statistics are frozen")
    }
}

final class ModelConfigTests: XCTestCase {
    func testDefaultsAndJSONKeys() throws {
        let d = ModelConfig.defaults
        XCTAssertEqual(d.irreps, "64x0e+32x1o+32x1e+16x2e+16x2o+8x3o+8x3e+8x4e+8x4o")
        XCTAssertEqual(d.shLmax, 4)
        XCTAssertEqual(d.layers, 3)
        let partial = try JSONDecoder().decode(ModelConfig.self, from: Data(#"{"layers": 2, "radial_basis": "gaussian"}"#.utf8))
        XCTAssertEqual(partial.layers, 2)
        XCTAssertEqual(partial.radialBasis, "gaussian")
        XCTAssertEqual(partial.irreps, d.irreps)
        let roundTrip = try JSONDecoder().decode(ModelConfig.self, from: JSONEncoder().encode(Toy.config()))
        XCTAssertEqual(roundTrip, Toy.config())
    }

    func testBadConfigsNameTheField() throws {
        var c = Toy.config()
        c.radialBasis = "spline"
        XCTAssertThrowsError(try HamiltonianModel<Float>(config: c)) { XCTAssertTrue("\($0)".contains("radial_basis"), "\($0)") }
        c = Toy.config()
        c.irreps = "4x1o"
        XCTAssertThrowsError(try HamiltonianModel<Float>(config: c)) { XCTAssertTrue("\($0)".contains("irreps"), "\($0)") }
        c = Toy.config()
        c.irreps = "4x0e+2x1o"   // d–d blocks need L up to 4
        XCTAssertThrowsError(try HamiltonianModel<Float>(config: c)) { XCTAssertTrue("\($0)".contains("need irrep"), "\($0)") }
    }

    func testUnknownElementIsReported() throws {
        var s = Toy.water()
        s.atomicNumbers[1] = 6
        s.basis[6] = OrbitalShells([0, 1])
        XCTAssertThrowsError(try StructureGraph(name: "methane-ish", structure: s, keys: Toy.allPairs(3), config: Toy.config())) {
            XCTAssertTrue("\($0)".contains("methane-ish") && "\($0)".contains("C"), "\($0)")
        }
    }

    func testBatchOfTwoEqualsSeparateRuns() throws {
        let config = Toy.config()
        let model = try HamiltonianModel<Double>(config: config)
        let both = try assertBatchOfTwoEqualsSeparateRuns(config: config, predict: model.predictOperators)
        XCTAssertEqual(both[0].blockCount, 9)
        XCTAssertEqual(both[0].hermiticityDeviation().maxDeviation, 0, "predictions are Hermitian")
        XCTAssertEqual(both[1].hermiticityDeviation().maxDeviation, 0)
        XCTAssertTrue(both[1].hermiticityDeviation().unpaired.isEmpty)
        XCTAssertEqual(both[0].shape(at: 0), SIMD2(13, 13))
    }
}

/// Predicts water and a periodic chain in one batch and one at a time; the operators must agree
/// to 1e-12. Returns the batched predictions (water, chain) for further checks.
@discardableResult
func assertBatchOfTwoEqualsSeparateRuns(config: ModelConfig, predict: (GraphBatch<Double>) throws -> [BlockOperator],
                                        _ message: String = "", file: StaticString = #filePath, line: UInt = #line) throws -> [BlockOperator] {
    let w = try StructureGraph(name: "w", structure: Toy.water(), keys: Toy.allPairs(3), config: config)
    let (s, keys) = Toy.chain()
    let c = try StructureGraph(name: "c", structure: s, keys: keys, config: config)
    let both = try predict(GraphBatch<Double>([w, c], config: config))
    let alone = [try predict(GraphBatch<Double>([w], config: config))[0], try predict(GraphBatch<Double>([c], config: config))[0]]
    for k in 0 ..< 2 {
        XCTAssertEqual(both[k].keys, alone[k].keys, message, file: file, line: line)
        XCTAssertLessThan(maxAbsDifference(both[k].entries, alone[k].entries), 1e-12, message, file: file, line: line)
    }
    return both
}
