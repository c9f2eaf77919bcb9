import XCTest
import TestSupport
import Autograd
@testable import SO3
import Structures

final class FullyConnectedTensorProductTests: XCTestCase {
    // x2 has a multiplicity-2 entry (general u, v); the output repeats an irrep (1o), has an
    // irrep no path reaches (5o: l1 + l2 ≤ 4) and one reached only through parity (0o = 1e ⊗ 1o).
    let irreps1 = try! Irreps("2x0e+3x1o+2x2e+1x1e")
    let irreps2 = try! Irreps("1x0e+2x1o+1x2e")
    let irrepsOut = try! Irreps("2x0e+3x1o+1x1e+2x2e+1x3o+2x0o+1x5o+2x1o")

    func values<T: Scalar>(_ n: Int, _ rng: inout SeededGenerator) -> [T] { rng.values(n).map { T($0) } }

    /// The defining sum, written out from the dense real CG tensors and the documented weight layout.
    func reference(_ x1: [Double], _ x2: [Double], _ w: [Double], edges: Int, perEdge: Bool,
                   _ irreps1: Irreps, _ irreps2: Irreps, _ irrepsOut: Irreps) throws -> (out: [Double], weightCount: Int) {
        let s1 = irreps1.slices, s2 = irreps2.slices, so = irrepsOut.slices
        let d1 = irreps1.dim, d2 = irreps2.dim, dOut = irrepsOut.dim
        var out = [Double](repeating: 0, count: edges * dOut)
        var offset = 0
        var blocks: [(offset: Int, o: Int, paths: [(Int, Int)], fan: Int)] = []
        for (o, eo) in irrepsOut.entries.enumerated() {
            var paths: [(Int, Int)] = []
            for (i1, e1) in irreps1.entries.enumerated() where e1.mul > 0 {
                for (i2, e2) in irreps2.entries.enumerated() where e2.mul > 0 && (e1.irrep * e2.irrep).contains(eo.irrep) {
                    paths.append((i1, i2))
                }
            }
            let fan = paths.reduce(0) { $0 + irreps1.entries[$1.0].mul * irreps2.entries[$1.1].mul }
            blocks.append((offset, o, paths, fan))
            offset += fan * eo.mul
        }
        let count = offset
        for (offset, o, paths, fan) in blocks {
            let eo = irrepsOut.entries[o], L = eo.irrep.l, dL = 2 * L + 1
            var k0 = 0
            for (i1, i2) in paths {
                let e1 = irreps1.entries[i1], e2 = irreps2.entries[i2], l1 = e1.irrep.l, l2 = e2.irrep.l
                let c = try ClebschGordan.real(l1, l2, L)
                for e in 0 ..< edges {
                    let wb = (perEdge ? e * count : 0) + offset
                    for w in 0 ..< eo.mul { for M in 0 ..< dL {
                        var sum = 0.0
                        for u in 0 ..< e1.mul { for v in 0 ..< e2.mul {
                            var cg = 0.0
                            for m1 in 0 ... 2 * l1 { for m2 in 0 ... 2 * l2 {
                                cg += c[M, m1, m2] * x1[e * d1 + s1[i1].lowerBound + u * (2 * l1 + 1) + m1]
                                    * x2[e * d2 + s2[i2].lowerBound + v * (2 * l2 + 1) + m2]
                            } }
                            sum += w0(wb + (k0 + v * e1.mul + u) * eo.mul + w) * cg
                        } }
                        out[e * dOut + so[o].lowerBound + w * dL + M] += sum / Double(fan).squareRoot()
                    } }
                }
                k0 += e1.mul * e2.mul
            }
        }
        func w0(_ i: Int) -> Double { w[i] }
        return (out, count)
    }

    func testMatchesTheDenseDefiningSum() throws {
        let tp = try FullyConnectedTensorProduct<Double>(irreps1: irreps1, irreps2: irreps2, irrepsOut: irrepsOut)
        let edges = 3
        var rng = SeededGenerator(seed: 11)
        let x1: [Double] = values(edges * irreps1.dim, &rng), x2: [Double] = values(edges * irreps2.dim, &rng)
        for perEdge in [false, true] {
            let (_, count) = try reference(x1, x2, [], edges: 0, perEdge: perEdge, irreps1, irreps2, irrepsOut)
            XCTAssertEqual(tp.weightCount, count)
            let w: [Double] = values(perEdge ? edges * count : count, &rng)
            let (expected, _) = try reference(x1, x2, w, edges: edges, perEdge: perEdge, irreps1, irreps2, irrepsOut)
            let out = try tp(try Tensor(x1, shape: [edges, irreps1.dim]), try Tensor(x2, shape: [edges, irreps2.dim]),
                             weights: try Tensor(w, shape: perEdge ? [edges, count] : [count]))
            XCTAssertEqual(out.shape, [edges, irrepsOut.dim])
            XCTAssertLessThan(maxAbsDifference(out.data, expected), 1e-12, "perEdge \(perEdge)")
            // 5o: no path, zero output; every other entry is reached.
            let s5 = irrepsOut.slices[6]
            for e in 0 ..< edges { XCTAssertTrue(out.data[e * irrepsOut.dim + s5.lowerBound ..< e * irrepsOut.dim + s5.upperBound].allSatisfy { $0 == 0 }) }
            XCTAssertGreaterThan(expected.map(abs).max()!, 0.1)
        }
        // Paths as documented: grouped by output entry, x1 entry outer, contiguous weight blocks.
        XCTAssertEqual(tp.paths.filter { $0.output == 5 }.map { [$0.input1, $0.input2] }, [[3, 1]])   // 0o = 1e ⊗ 1o only
        XCTAssertEqual(tp.paths.filter { $0.output == 2 }.map { [$0.input1, $0.input2, $0.mul1, $0.mul2] }, [[1, 1, 3, 2], [2, 2, 2, 1], [3, 0, 1, 1], [3, 2, 1, 1]])   // 1e = 1o⊗1o, 2e⊗2e, 1e⊗0e, 1e⊗2e
        for (a, b) in zip(tp.paths, tp.paths.dropFirst()) { XCTAssertEqual(a.weightOffset + a.weightCount, b.weightOffset) }
        XCTAssertEqual(tp.paths.last.map { $0.weightOffset + $0.weightCount }, tp.weightCount)
        XCTAssertFalse(tp.paths.contains { $0.output == 6 })
    }

    func testZeroMultiplicitiesAreSkipped() throws {
        let irreps1 = try Irreps("2x0e+0x1o+1x1o"), irreps2 = try Irreps("1x0e+0x2e+2x1o"), irrepsOut = try Irreps("0x0e+2x1o+1x0e")
        let tp = try FullyConnectedTensorProduct<Double>(irreps1: irreps1, irreps2: irreps2, irrepsOut: irrepsOut)
        let edges = 2
        var rng = SeededGenerator(seed: 16)
        let x1: [Double] = values(edges * irreps1.dim, &rng), x2: [Double] = values(edges * irreps2.dim, &rng)
        let w: [Double] = values(edges * tp.weightCount, &rng)
        let (expected, count) = try reference(x1, x2, w, edges: edges, perEdge: true, irreps1, irreps2, irrepsOut)
        XCTAssertEqual(tp.weightCount, count)
        let out = try tp(try Tensor(x1, shape: [edges, irreps1.dim]), try Tensor(x2, shape: [edges, irreps2.dim]),
                         weights: try Tensor(w, shape: [edges, count]))
        XCTAssertLessThan(maxAbsDifference(out.data, expected), 1e-12)
        XCTAssertFalse(tp.paths.contains { $0.mul1 == 0 || $0.mul2 == 0 || $0.mulOut == 0 })
    }

    func testInternalWeightsAreOneNormalParameter() throws {
        let params = ParameterSet<Double>(seed: 4)
        let tp = try FullyConnectedTensorProduct(params, name: "fc", irreps1: irreps1, irreps2: irreps2, irrepsOut: irrepsOut)
        XCTAssertEqual(params.names, ["fc.weight"])
        XCTAssertEqual(params["fc.weight"]?.shape, [tp.weightCount])
        let edges = 2
        var rng = SeededGenerator(seed: 12)
        let x1 = try Tensor<Double>(values(edges * irreps1.dim, &rng), shape: [edges, irreps1.dim])
        let x2 = try Tensor<Double>(values(edges * irreps2.dim, &rng), shape: [edges, irreps2.dim])
        let (expected, _) = try reference(x1.data, x2.data, tp.weight!.data, edges: edges, perEdge: false, irreps1, irreps2, irrepsOut)
        XCTAssertLessThan(maxAbsDifference(try tp(x1, x2).data, expected), 1e-12)
    }

    /// Unit-variance inputs and N(0, 1) weights give unit-variance outputs (e3nn's normalisation).
    func testUnitVarianceInUnitVarianceOut() throws {
        let irreps1 = try Irreps("8x0e+4x1o+4x2e"), sh = try SphericalHarmonics(lmax: 2, normalization: .component)
        let irrepsOut = try Irreps("4x0e+4x1o+4x2e+2x1e")
        let tp = try FullyConnectedTensorProduct<Double>(irreps1: irreps1, irreps2: sh.irreps, irrepsOut: irrepsOut)
        let edges = 2000
        var rng = SeededGenerator(seed: 13)
        let x1 = Tensor<Double>.randomNormal([edges, irreps1.dim], seed: 1)
        let x2: Tensor<Double> = try sh.tensor((0 ..< edges).map { _ in rng.vector() })
        let out = try tp(x1, x2, weights: Tensor<Double>.randomNormal([edges, tp.weightCount], seed: 2))
        for (e, range) in zip(irrepsOut.entries, irrepsOut.slices) {
            var s = 0.0
            for row in 0 ..< edges { for i in range { s += out.data[row * irrepsOut.dim + i] * out.data[row * irrepsOut.dim + i] } }
            let meanSquare = s / Double(edges * e.dim)
            XCTAssertEqual(meanSquare, 1, accuracy: 0.15, "\(e)")
        }
    }

    func testEquivariantUnderRotationsAndInversions() throws {
        try equivariance(Double.self, tolerance: 1e-12)
        try equivariance(Float.self, tolerance: 1e-5)
    }

    func equivariance<T: Scalar>(_: T.Type, tolerance: Double) throws {
        let sh = try SphericalHarmonics(lmax: 3, normalization: .component)
        let out1 = try Irreps("2x0e+2x1o+2x2e+1x3o+1x1e+1x0o")
        let harmonic = try FullyConnectedTensorProduct(ParameterSet<T>(seed: 8), name: "fc", irreps1: irreps1, irreps2: sh.irreps, irrepsOut: out1)
        let general = try FullyConnectedTensorProduct<T>(irreps1: irreps1, irreps2: irreps2, irrepsOut: irrepsOut)
        var rng = SeededGenerator(seed: 14)
        let edges = 3
        var worst = [0.0, 0.0]
        let inversion = Rotation(rows: Vec3(-1, 0, 0), Vec3(0, -1, 0), Vec3(0, 0, -1))
        for trial in 0 ..< 100 {
            let r = trial % 4 == 3 ? inversion * rng.rotation() : rng.rotation()
            let x1 = Tensor<T>.randomNormal([edges, irreps1.dim], seed: UInt64(trial))
            let x1r = try rotated(x1, irreps1, r)
            // Harmonics of rotated edge vectors (improper: Y(−r) = (−1)^l Y(r)), shared weights.
            let vectors = (0 ..< edges).map { _ in rng.vector() }
            let y = try Tensor<T>(vectors.flatMap { sh.values($0).map { T($0) } }, shape: [edges, sh.dim])
            let yr = try Tensor<T>(vectors.flatMap { sh.values(r * $0).map { T($0) } }, shape: [edges, sh.dim])
            worst[0] = max(worst[0], relativeError(try harmonic(x1r, yr), try rotated(try harmonic(x1, y), out1, r)))
            // General x2 (multiplicity 2), per-edge weights.
            let x2 = Tensor<T>.randomNormal([edges, irreps2.dim], seed: UInt64(500 + trial))
            let w = Tensor<T>.randomNormal([edges, general.weightCount], seed: UInt64(1000 + trial))
            let lhs = try general(x1r, try rotated(x2, irreps2, r), weights: w)
            worst[1] = max(worst[1], relativeError(lhs, try rotated(try general(x1, x2, weights: w), irrepsOut, r)))
        }
        print("fully connected equivariance \(T.typeName): harmonics + shared weights \(worst[0]), general + per-edge weights \(worst[1])")
        XCTAssertLessThan(worst[0], tolerance, "harmonics, shared \(T.typeName)")
        XCTAssertLessThan(worst[1], tolerance, "general, per edge \(T.typeName)")
    }

    func testGradientsMatchFiniteDifferences() throws {
        let irreps1 = try Irreps("2x0e+1x1o+1x2e"), irreps2 = try Irreps("1x0e+2x1o")
        let irrepsOut = try Irreps("2x0e+2x1o+1x2e+1x1e")
        let edges = 2
        for perEdge in [false, true] {
            let params = ParameterSet<Double>(seed: 6)
            let tp = perEdge ? try FullyConnectedTensorProduct<Double>(irreps1: irreps1, irreps2: irreps2, irrepsOut: irrepsOut)
                             : try FullyConnectedTensorProduct(params, name: "fc", irreps1: irreps1, irreps2: irreps2, irrepsOut: irrepsOut)
            let x1 = Tensor<Double>.randomNormal([edges, irreps1.dim], seed: 1, requiresGrad: true)
            let x2 = Tensor<Double>.randomNormal([edges, irreps2.dim], seed: 2, requiresGrad: true)
            let w = perEdge ? Tensor<Double>.randomNormal([edges, tp.weightCount], seed: 3, requiresGrad: true) : tp.weight!
            var rng = SeededGenerator(seed: 15)
            let probe: [Double] = rng.values(edges * irrepsOut.dim)
            func run() throws -> Tensor<Double> { perEdge ? try tp(x1, x2, weights: w) : try tp(x1, x2) }
            func loss() throws -> Double { try GradMode.withoutGrad { zip(try run().data, probe).map { $0 * $1 }.reduce(0, +) } }
            try run().backward(seed: probe)
            var worst = 0.0, checked = 0
            for (t, label) in [(x1, "x1"), (x2, "x2"), (w, "weights")] {
                let g = try XCTUnwrap(t.grad, "no gradient for \(label)")
                for i in 0 ..< t.count {
                    let saved = t.data[i], h = 1e-6
                    t.data[i] = saved + h; let plus = try loss()
                    t.data[i] = saved - h; let minus = try loss()
                    t.data[i] = saved
                    let fd = (plus - minus) / (2 * h)
                    worst = max(worst, abs(fd - g[i]) / max(1, abs(fd)))
                    checked += 1
                }
            }
            print("fully connected finite differences (perEdge \(perEdge)): \(checked) entries, worst relative error \(worst)")
            XCTAssertGreaterThan(checked, 60)
            XCTAssertLessThan(worst, 1e-8, "perEdge \(perEdge)")
        }
    }

    func testBadShapesAndIrrepsThrow() throws {
        let tp = try FullyConnectedTensorProduct<Double>(irreps1: try Irreps("2x1o"), irreps2: try Irreps("1x0e+1x1o"), irrepsOut: try Irreps("1x1o+2x0e"))
        // 1o⊗0e→1o (2·1 inputs) and 1o⊗1o→0e (2·1): 2·1 + 2·2 weights.
        XCTAssertEqual(tp.weightCount, 6)
        let x1 = Tensor<Double>(zeros: [2, 6]), x2 = Tensor<Double>(zeros: [2, 4])
        func message(_ body: () throws -> Tensor<Double>) -> String {
            do { _ = try body(); return "no error" } catch { return "\(error)" }
        }
        XCTAssertTrue(message { try tp(Tensor(zeros: [2, 5]), x2, weights: Tensor(zeros: [6])) }.contains("input 1: expected features [rows, 6]"))
        XCTAssertTrue(message { try tp(x1, Tensor(zeros: [3, 4]), weights: Tensor(zeros: [6])) }.contains("input 2: expected [2, 4]"))
        XCTAssertTrue(message { try tp(x1, x2, weights: Tensor(zeros: [7])) }.contains("expected [6] (shared) or [2, 6] (per edge)"))
        XCTAssertTrue(message { try tp(x1, x2, weights: Tensor(zeros: [3, 6])) }.contains("got shape [3, 6]"))
        XCTAssertTrue(message { try tp(x1, x2) }.contains("built without internal weights"))
        XCTAssertEqual(try tp(Tensor(zeros: [0, 6]), Tensor(zeros: [0, 4]), weights: Tensor(zeros: [6])).shape, [0, 5])
        XCTAssertThrowsError(try FullyConnectedTensorProduct<Double>(irreps1: try Irreps("1x9e"), irreps2: try Irreps("1x0e"), irrepsOut: try Irreps("1x9e"))) {
            XCTAssertEqual($0 as? SO3Error, .angularMomentumOutOfRange(l: 9, max: 8, context: "FullyConnectedTensorProduct irreps1 1x9e"), "\($0)")
        }
        let params = ParameterSet<Double>(seed: 1)
        _ = try FullyConnectedTensorProduct(params, name: "a", irreps1: try Irreps("1x0e"), irreps2: try Irreps("1x0e"), irrepsOut: try Irreps("1x0e"))
        XCTAssertThrowsError(try FullyConnectedTensorProduct(params, name: "a", irreps1: try Irreps("1x0e"), irreps2: try Irreps("1x0e"), irrepsOut: try Irreps("1x0e")))
    }
}
