import XCTest
import Autograd
@testable import SO3
import Structures
import TestSupport

/// The composed implementation the fused kernel replaced (one slice, dense x2·C product, batched
/// product, weight multiply and reshape per path, then a concat), kept here only as the reference
/// the fused op must reproduce, values and gradients.
private func composedReference<T: Scalar>(_ tp: ChannelwiseTensorProduct<T>, _ x1: Tensor<T>, _ x2: Tensor<T>, _ weights: Tensor<T>) throws -> Tensor<T> {
    var fan: [Irrep: Int] = [:]
    for p in tp.paths { fan[p.output, default: 0] += 1 }
    let edges = x1.shape[0], s1 = tp.irreps1.slices, s2 = tp.irreps2.slices
    var parts: [Tensor<T>] = []
    var w0 = 0
    for p in tp.paths {
        let l1 = tp.irreps1.entries[p.input1].irrep.l, l2 = tp.irreps2.entries[p.input2].irrep.l, L = p.output.l
        let cg = try ClebschGordan.real(l1, l2, L)
        let d1 = 2 * l1 + 1, d2 = 2 * l2 + 1, dL = 2 * L + 1, u = p.mul
        let scale = 1 / Double(fan[p.output]!).squareRoot()
        var m = [T](repeating: 0, count: d2 * d1 * dL)
        for e in cg.nonZeros { m[e.m2 * d1 * dL + e.m1 * dL + e.M] = T(e.value * scale) }
        let c = try Tensor<T>(m, shape: [d2, d1 * dL])
        let a = try x1.slice(axis: 1, s1[p.input1]).reshaped([edges, u, d1])
        let t = try x2.slice(axis: 1, s2[p.input2]).matmul(c).reshaped([edges, d1, dL])
        let w = try weights.slice(axis: 1, w0 ..< w0 + u).reshaped([edges, u, 1])
        parts.append(try (try a.bmm(t) * w).reshaped([edges, u * dL]))
        w0 += u
    }
    return parts.count == 1 ? parts[0] : try Tensor.concat(parts, axis: 1)
}

private func leaf<T: Scalar>(_ shape: [Int], seed: UInt64) -> Tensor<T> {
    Tensor<T>.randomNormal(shape, seed: seed, requiresGrad: true)
}

/// Values (≤ 1e-12) and the gradients of all three inputs (≤ `gradientTolerance`) of `tp` on
/// `edges` random rows, against the composed reference; seeds `seed` … `seed + 3`.
private func assertMatchesComposedReference(_ tp: ChannelwiseTensorProduct<Double>, edges: Int, seed: UInt64, gradientTolerance: Double,
                                            file: StaticString = #filePath, line: UInt = #line) throws {
    let inputs: [[Tensor<Double>]] = (0 ..< 2).map { _ in
        [leaf([edges, tp.irreps1.dim], seed: seed), leaf([edges, tp.irreps2.dim], seed: seed + 1), leaf([edges, tp.weightCount], seed: seed + 2)]
    }
    let probe = Tensor<Double>.randomNormal([edges, tp.irrepsOut.dim], seed: seed + 3).data
    let fused = try tp(inputs[0][0], inputs[0][1], weights: inputs[0][2])
    let reference = try composedReference(tp, inputs[1][0], inputs[1][1], inputs[1][2])
    XCTAssertLessThan(maxAbsDifference(fused.data, reference.data), 1e-12, file: file, line: line)
    try fused.backward(seed: probe)
    try reference.backward(seed: probe)
    for i in 0 ..< 3 {
        XCTAssertLessThan(maxAbsDifference(try XCTUnwrap(inputs[0][i].grad, file: file, line: line), try XCTUnwrap(inputs[1][i].grad, file: file, line: line)),
                          gradientTolerance, "gradient of input \(i)", file: file, line: line)
    }
}

final class FusedTensorProductTests: XCTestCase {
    /// A scaled-down DeepH-E3 layout: every l ≤ 4 in both operands, mixed parities, mul > 1.
    let irreps1 = try! Irreps("3x0e+2x1o+2x2e+1x3o+2x4e")

    /// Multiplicities of 5–9 channels: the kernel's four-channel reductions and their remainders.
    let wideIrreps1 = try! Irreps("9x0e+6x1o+5x2e+7x3o+5x4e")

    func makeProduct<T: Scalar>(_: T.Type, allowed: Bool = true, wide: Bool = false) throws -> (ChannelwiseTensorProduct<T>, SphericalHarmonics) {
        let sh = try SphericalHarmonics(lmax: 4, normalization: .component)
        let irreps1 = wide ? wideIrreps1 : self.irreps1
        let tp = try ChannelwiseTensorProduct<T>(irreps1: irreps1, irreps2: sh.irreps, lmaxOut: 4,
                                                 allowedOutputs: allowed ? Set(irreps1.entries.map(\.irrep)) : nil)
        return (tp, sh)
    }

    func testFusedMatchesComposedValuesAndGradients() throws {
        for (allowed, wide) in [(true, false), (false, false), (true, true)] {
            let (tp, _) = try makeProduct(Double.self, allowed: allowed, wide: wide)
            // 13 edges run on one worker; 75 are split between workers unevenly.
            let edges = wide ? 75 : 13
            let inputs: [[Tensor<Double>]] = (0 ..< 2).map { k in
                [leaf([edges, tp.irreps1.dim], seed: 1), leaf([edges, tp.irreps2.dim], seed: 2), leaf([edges, tp.weightCount], seed: 3)]
                    .map { t in k == 0 ? t : (try! Tensor<Double>(t.data, shape: t.shape, requiresGrad: true)) }
            }
            let probe = Tensor<Double>.randomNormal([edges, tp.irrepsOut.dim], seed: 4).data
            let fused = try tp(inputs[0][0], inputs[0][1], weights: inputs[0][2])
            let reference = try composedReference(tp, inputs[1][0], inputs[1][1], inputs[1][2])
            XCTAssertEqual(fused.shape, reference.shape)
            XCTAssertLessThan(maxAbsDifference(fused.data, reference.data), 1e-12)
            try fused.backward(seed: probe)
            try reference.backward(seed: probe)
            for i in 0 ..< 3 {
                let a = try XCTUnwrap(inputs[0][i].grad), b = try XCTUnwrap(inputs[1][i].grad)
                XCTAssertLessThan(maxAbsDifference(a, b), 1e-12, "gradient of input \(i) (allowed-outputs filter \(allowed), wide \(wide))")
                XCTAssertGreaterThan(b.map(abs).max()!, 0.1)
            }
        }
    }

    func testGradientsMatchFiniteDifferences() throws {
        let (tp, _) = try makeProduct(Double.self)
        let edges = 3
        let x1: Tensor<Double> = leaf([edges, irreps1.dim], seed: 11)
        let x2: Tensor<Double> = leaf([edges, tp.irreps2.dim], seed: 12)
        let w: Tensor<Double> = leaf([edges, tp.weightCount], seed: 13)
        let probe = Tensor<Double>.randomNormal([edges, tp.irrepsOut.dim], seed: 14).data
        func loss() throws -> Double {
            let y = try GradMode.withoutGrad { try tp(x1, x2, weights: w) }
            return zip(y.data, probe).reduce(0) { $0 + $1.0 * $1.1 }
        }
        try tp(x1, x2, weights: w).backward(seed: probe)
        var worst = 0.0, checked = 0
        for t in [x1, x2, w] {
            let g = try XCTUnwrap(t.grad)
            for i in stride(from: 0, to: t.count, by: 7) {
                let saved = t.data[i], h = 1e-6
                t.data[i] = saved + h; let up = try loss()
                t.data[i] = saved - h; let down = try loss()
                t.data[i] = saved
                let fd = (up - down) / (2 * h)
                worst = max(worst, abs(fd - g[i]) / max(1, abs(fd)))
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 50)
        XCTAssertLessThan(worst, 1e-7)
    }

    func checkEquivariance<T: Scalar>(_: T.Type, tolerance: Double, rotations: Int) throws {
        let (tp, sh) = try makeProduct(T.self)
        let edges = 4
        var rng = SeededGenerator(seed: 21)
        let vectors = (0 ..< edges).map { _ in rng.vector() }
        let x1Values = rng.values(edges * irreps1.dim)
        let w = try Tensor<T>(rng.values(edges * tp.weightCount).map { T($0) }, shape: [edges, tp.weightCount])
        let x1 = try Tensor<T>(x1Values.map { T($0) }, shape: [edges, irreps1.dim])
        let out = try tp(x1, try sh.tensor(vectors), weights: w).data
        var worst = 0.0
        for _ in 0 ..< rotations {
            let r = rng.rotation()
            var rx1 = x1Values
            try irreps1.rotate(&rx1, rotation: r)
            let rotated = try tp(try Tensor<T>(rx1.map { T($0) }, shape: x1.shape), try sh.tensor(vectors.map { r * $0 }), weights: w)
            var expected = out.map { Double($0) }
            try tp.irrepsOut.rotate(&expected, rotation: r)
            let scale = expected.map(abs).max()!
            worst = max(worst, maxAbsDifference(rotated.data.map { Double($0) }, expected) / scale)
        }
        XCTAssertLessThan(worst, tolerance, "\(T.typeName) equivariance")
    }

    func testEquivariantUnderRandomRotations() throws {
        try checkEquivariance(Double.self, tolerance: 1e-12, rotations: 20)
        try checkEquivariance(Float.self, tolerance: 1e-5, rotations: 20)
    }

    func testFloatAgreesWithDoubleAndManyEdgesRunInParallel() throws {
        let (tpd, _) = try makeProduct(Double.self)
        let (tpf, _) = try makeProduct(Float.self)
        let edges = 257
        let x1: Tensor<Double> = leaf([edges, irreps1.dim], seed: 31)
        let x2: Tensor<Double> = leaf([edges, tpd.irreps2.dim], seed: 32)
        let w: Tensor<Double> = leaf([edges, tpd.weightCount], seed: 33)
        let yd = try tpd(x1, x2, weights: w)
        let f = { (t: Tensor<Double>) in try Tensor<Float>(t.data.map { Float($0) }, shape: t.shape, requiresGrad: true) }
        let (x1f, x2f, wf) = (try f(x1), try f(x2), try f(w))
        let yf = try tpf(x1f, x2f, weights: wf)
        let scale = yd.data.map(abs).max()!
        XCTAssertLessThan(maxAbsDifference(yf.data.map { Double($0) }, yd.data) / scale, 1e-5)
        try yd.backward(seed: [Double](repeating: 1, count: yd.count))
        try yf.backward(seed: [Float](repeating: 1, count: yf.count))
        for (a, b) in [(x1f, x1), (x2f, x2), (wf, w)] {
            let gd = try XCTUnwrap(b.grad), gf = try XCTUnwrap(a.grad)
            XCTAssertLessThan(maxAbsDifference(gf.map { Double($0) }, gd) / gd.map(abs).max()!, 1e-5)
        }
    }

    /// The backward kernel skips what no input needs (the rows for gw, the T gradient for gx2):
    /// every combination of inputs that need gradients gets the same gradients as the full pass.
    func testEverySubsetOfGradientsMatchesTheFullBackward() throws {
        let (tp, _) = try makeProduct(Double.self, wide: true)
        let edges = 75
        let values = [Tensor<Double>.randomNormal([edges, tp.irreps1.dim], seed: 51).data,
                      Tensor<Double>.randomNormal([edges, tp.irreps2.dim], seed: 52).data,
                      Tensor<Double>.randomNormal([edges, tp.weightCount], seed: 53).data]
        let shapes = [[edges, tp.irreps1.dim], [edges, tp.irreps2.dim], [edges, tp.weightCount]]
        let probe = Tensor<Double>.randomNormal([edges, tp.irrepsOut.dim], seed: 54).data
        func gradients(_ needs: [Bool]) throws -> [[Double]?] {
            let inputs = try (0 ..< 3).map { try Tensor<Double>(values[$0], shape: shapes[$0], requiresGrad: needs[$0]) }
            try tp(inputs[0], inputs[1], weights: inputs[2]).backward(seed: probe)
            return inputs.map(\.grad)
        }
        let full = try gradients([true, true, true])
        for mask in 1 ..< 7 {
            let needs = (0 ..< 3).map { mask & (1 << $0) != 0 }
            let got = try gradients(needs)
            for i in 0 ..< 3 {
                if needs[i] {
                    XCTAssertLessThan(maxAbsDifference(try XCTUnwrap(got[i]), try XCTUnwrap(full[i])), 1e-12, "input \(i), needs \(needs)")
                } else {
                    XCTAssertNil(got[i], "input \(i), needs \(needs)")
                }
            }
        }
    }

    /// Up to l = 8 (2L+1 = 17, wider than the kernel's 16-lane stores and masks): the plain-loop
    /// branches agree with the composed reference too.
    func testHighAngularMomentaMatchTheComposedReference() throws {
        let sh = try SphericalHarmonics(lmax: 8, normalization: .component)
        let irreps = try Irreps("2x0e+3x5o+2x8e")
        let tp = try ChannelwiseTensorProduct<Double>(irreps1: irreps, irreps2: sh.irreps, lmaxOut: 8)
        XCTAssertTrue(tp.paths.contains { $0.output.l == 8 })
        try assertMatchesComposedReference(tp, edges: 9, seed: 71, gradientTolerance: 1e-11)
    }

    /// The last path of every row has 2L+1 = 3: the backward's vector loads of the output gradient
    /// must stay inside that path's block, which for the last edge ends the array (run under
    /// `swift test --sanitize=address` this catches a read past it; plain runs check the values).
    func testNarrowLastPathAgreesWithTheComposedReference() throws {
        let sh = try SphericalHarmonics(lmax: 1, normalization: .component)
        let irreps = try Irreps("4x0e+6x1o")
        let tp = try ChannelwiseTensorProduct<Double>(irreps1: irreps, irreps2: sh.irreps, lmaxOut: 1,
                                                      allowedOutputs: [Irrep(unchecked: 0, 1), Irrep(unchecked: 1, -1), Irrep(unchecked: 1, 1)])
        XCTAssertEqual(tp.paths.last?.output, Irrep(unchecked: 1, 1))
        try assertMatchesComposedReference(tp, edges: 33, seed: 81, gradientTolerance: 1e-12)
    }

    /// The m-major output layout (all paths into one L, used by the fully connected product) is
    /// the e3nn layout permuted, in values and in every gradient.
    func testMMajorLayoutIsThePermutedProduct() throws {
        let sh = try SphericalHarmonics(lmax: 4, normalization: .component)
        let split = Irreps(sh.irreps.entries.flatMap { e in (0 ..< 2).map { _ in MulIrrep(1, e.irrep) } })
        for target in [Irrep(unchecked: 0, 1), Irrep(unchecked: 3, -1)] {
            let plain = try ChannelwiseTensorProduct<Double>(irreps1: wideIrreps1, irreps2: split, lmaxOut: target.l, allowedOutputs: [target])
            let mMajor = try ChannelwiseTensorProduct<Double>(irreps1: wideIrreps1, irreps2: split, lmaxOut: target.l,
                                                              allowedOutputs: [target], mMajorOutput: true)
            let edges = 37, d = target.dim, fan = plain.weightCount
            let values = [Tensor<Double>.randomNormal([edges, wideIrreps1.dim], seed: 61).data,
                          Tensor<Double>.randomNormal([edges, split.dim], seed: 62).data,
                          Tensor<Double>.randomNormal([edges, fan], seed: 63).data]
            let shapes = [[edges, wideIrreps1.dim], [edges, split.dim], [edges, fan]]
            let probe = Tensor<Double>.randomNormal([edges, fan, d], seed: 64)
            let a = try (0 ..< 3).map { try Tensor<Double>(values[$0], shape: shapes[$0], requiresGrad: true) }
            let b = try (0 ..< 3).map { try Tensor<Double>(values[$0], shape: shapes[$0], requiresGrad: true) }
            let ya = try plain(a[0], a[1], weights: a[2])
            let yb = try mMajor(b[0], b[1], weights: b[2])
            let permuted = try ya.reshaped([edges, fan, d]).permuted([0, 2, 1]).reshaped([edges, d * fan])
            XCTAssertLessThan(maxAbsDifference(permuted.data, yb.data), 1e-13, "values, \(target)")
            try ya.backward(seed: probe.data)
            try yb.backward(seed: try probe.permuted([0, 2, 1]).reshaped([edges, d * fan]).data)
            for i in 0 ..< 3 {
                XCTAssertLessThan(maxAbsDifference(try XCTUnwrap(a[i].grad), try XCTUnwrap(b[i].grad)), 1e-12, "gradient \(i), \(target)")
            }
        }
        XCTAssertThrowsError(try ChannelwiseTensorProduct<Double>(irreps1: irreps1, irreps2: sh.irreps, lmaxOut: 4, allowedOutputs: nil, mMajorOutput: true))
    }

    func testInputsWithoutGradientAreLeftAlone() throws {
        let (tp, sh) = try makeProduct(Double.self)
        let x1: Tensor<Double> = leaf([2, irreps1.dim], seed: 41)
        let x2: Tensor<Double> = try sh.tensor([Vec3(1, 2, 3), Vec3(-1, 0.5, 2)])
        let w = Tensor<Double>.randomNormal([2, tp.weightCount], seed: 42)
        try tp(x1, x2, weights: w).backward(seed: [Double](repeating: 1, count: 2 * tp.irrepsOut.dim))
        XCTAssertNotNil(x1.grad)
        XCTAssertNil(x2.grad)
        XCTAssertNil(w.grad)
        XCTAssertThrowsError(try tp(x1, x2, weights: Tensor<Double>(zeros: [2, 3]))) {
            XCTAssertTrue("\($0)".contains("expected weights [2, \(tp.weightCount)]"), "\($0)")
        }
    }

    /// Prediction's layout (`entryMajor`) and the linear layer reading it in place: the same
    /// output as the [rows, dim] product through the taped layer, bit for bit, Float and Double —
    /// with output entries fed by several terms, by none (zeros), a bias, and (Float, 1 700 rows)
    /// products large enough for `gemmSplit`'s slabs.
    func testEntryMajorProductThroughTheLinearLayerIsBitIdentical() throws {
        try assertEntryMajorBitIdentical(Double.self, wide: false, edges: 37, seed: 71)
        try assertEntryMajorBitIdentical(Double.self, wide: true, edges: 19, seed: 72)
        try assertEntryMajorBitIdentical(Float.self, wide: true, edges: 1_700, seed: 73)
        try assertEntryMajorBitIdentical(Float.self, wide: false, edges: 0, seed: 74)
    }

    private func assertEntryMajorBitIdentical<T: Scalar>(_: T.Type, wide: Bool, edges: Int, seed: UInt64) throws {
        let (tp, _) = try makeProduct(T.self, allowed: false, wide: wide)
        let params = ParameterSet<T>(seed: seed)
        let linear = try EquivariantLinear<T>(params, name: "out", irrepsIn: tp.irrepsOut,
                                              irrepsOut: try Irreps("16x0e+16x1o+3x2e+16x4e+2x5e"))
        for (o, b) in linear.biases { b.data = Tensor<T>.randomNormal([b.count], seed: seed + UInt64(o)).data }
        let x1 = Tensor<T>.randomNormal([edges, tp.irreps1.dim], seed: seed + 10)
        let x2 = Tensor<T>.randomNormal([edges, tp.irreps2.dim], seed: seed + 11)
        let w = Tensor<T>.randomNormal([edges, tp.weightCount], seed: seed + 12)
        let plain = try tp(x1, x2, weights: w)
        let entryMajor = try tp.entryMajor(x1, x2, weights: w)
        // The layout: entry at row offset f as its [rows·(2l+1), mul] matrix from rows·f.
        let width = tp.irrepsOut.dim
        for (f, e) in zip(tp.irrepsOut.slices, tp.irrepsOut.entries) where edges > 0 {
            let d = e.irrep.dim
            for r in Set([0, edges / 2, edges - 1]) { for u in 0 ..< e.mul { for m in 0 ..< d {
                XCTAssertEqual(entryMajor.data[edges * f.lowerBound + (r * d + m) * e.mul + u], plain.data[r * width + f.lowerBound + u * d + m])
            } } }
        }
        let expected = try linear(plain), got = try linear(entryMajor)
        XCTAssertEqual(got.shape, expected.shape)
        XCTAssertTrue(got.data.withUnsafeBytes { a in expected.data.withUnsafeBytes { b in a.elementsEqual(b) } },
                      "\(T.self), \(edges) edges: max difference \(maxAbsDifference(got.data.map { Double($0) }, expected.data.map { Double($0) }))")
        XCTAssertThrowsError(try EquivariantLinear<T>(params, name: "other", irrepsIn: tp.irreps1, irrepsOut: tp.irreps1)(entryMajor)) {
            XCTAssertTrue("\($0)".contains("expected features of irreps"), "\($0)")
        }
    }

}
