import XCTest
import TestSupport
import Autograd
@testable import SO3
import Structures

/// A small stacked network: edge harmonics ⊗ node features with radial weights, summed at each
/// node, mixed, gated, mixed again.
struct TinyNetwork<T: Scalar> {
    let irrepsNode = try! Irreps("4x0e+2x1o+2x2e")
    let sh = try! SphericalHarmonics(lmax: 2, normalization: .component)
    let tp: ChannelwiseTensorProduct<T>
    let radial: MLP<T>
    let mix: EquivariantLinear<T>
    let gate: Gate<T>
    let layerNorm: EquivariantLayerNorm<T>
    let out: EquivariantLinear<T>

    init(_ params: ParameterSet<T>) throws {
        tp = try ChannelwiseTensorProduct(irreps1: irrepsNode, irreps2: sh.irreps, lmaxOut: 2)
        radial = try MLP(params, name: "radial", widths: [8, 16, tp.weightCount])
        gate = try Gate(scalars: try Irreps("4x0e+1x0o"), gated: try Irreps("2x1o+2x1e+2x2e"))
        mix = try EquivariantLinear(params, name: "mix", irrepsIn: tp.irrepsOut, irrepsOut: gate.irrepsIn)
        layerNorm = try EquivariantLayerNorm(params, name: "norm", irreps: gate.irrepsOut)
        out = try EquivariantLinear(params, name: "out", irrepsIn: gate.irrepsOut, irrepsOut: try Irreps("2x0e+1x1o+1x1e+1x2e"))
    }

    func edges(_ n: Int) -> (src: [Int], dst: [Int]) {
        var s: [Int] = [], d: [Int] = []
        for i in 0 ..< n { for j in 0 ..< n where i != j { s.append(i); d.append(j) } }
        return (s, d)
    }

    func callAsFunction(positions: [Vec3], features: Tensor<T>) throws -> Tensor<T> {
        let n = positions.count
        let (src, dst) = edges(n)
        let vectors = zip(src, dst).map { positions[$1] - positions[$0] }
        let lengths = vectors.map { T(norm($0)) }
        let y: Tensor<T> = try sh.tensor(vectors)
        let basis = try RadialBasis.gaussian(try Tensor<T>(lengths, shape: [src.count]), count: 8, stop: 4)
        let w = try radial(basis)
        let messages = try tp(try features.gatherRows(src), y, weights: w)
        let summed = try messages.segmentSum(try RowIndex(dst, rowCount: n))
        return try out(try layerNorm(try gate(try mix(summed))))
    }
}

final class EquivariantLayerTests: XCTestCase {
    func randomTensor<T: Scalar>(_ shape: [Int], seed: UInt64, requiresGrad: Bool = false) -> Tensor<T> {
        Tensor<T>.randomNormal(shape, seed: seed, requiresGrad: requiresGrad)
    }

    func testEachBlockIsEquivariant() throws {
        try blocksEquivariance(Double.self, tolerance: 1e-12)
        try blocksEquivariance(Float.self, tolerance: 1e-5)
    }

    func blocksEquivariance<T: Scalar>(_: T.Type, tolerance: Double) throws {
        let params = ParameterSet<T>(seed: 7)
        let irrepsIn = try Irreps("3x0e+2x1o+1x1e+2x2e+1x3o+1x0o")
        let irrepsOut = try Irreps("2x0e+3x1o+2x2e+1x3o+1x1e")
        let linear = try EquivariantLinear(params, name: "lin", irrepsIn: irrepsIn, irrepsOut: irrepsOut)
        let sh = try SphericalHarmonics(lmax: 3, normalization: .component)
        let tp = try ChannelwiseTensorProduct<T>(irreps1: irrepsIn, irreps2: sh.irreps, lmaxOut: 3)
        let gate = try Gate<T>(scalars: try Irreps("3x0e+1x0o"), gated: try Irreps("2x1o+1x1e+2x2e+1x3o"))
        let gateInput = gate.irrepsIn
        var rng = SeededGenerator(seed: 40)
        let norm = try EquivariantLayerNorm(params, name: "norm", irreps: irrepsIn)
        // Non-trivial γ, β so the test sees them.
        for t in params.tensors where t.name.hasPrefix("norm") { for i in 0 ..< t.count { t.data[i] = T(0.5 + 0.1 * Double(i)) } }
        var worst = [0.0, 0.0, 0.0, 0.0]
        for trial in 0 ..< 100 {
            let r = trial % 10 == 9 ? Rotation(rows: Vec3(-1, 0, 0), Vec3(0, -1, 0), Vec3(0, 0, -1)) * rng.rotation() : rng.rotation()
            let x: Tensor<T> = randomTensor([3, irrepsIn.dim], seed: UInt64(trial))
            let xr = try rotated(x, irrepsIn, r)
            worst[0] = max(worst[0], relativeError(try linear(xr), try rotated(try linear(x), irrepsOut, r)))
            worst[3] = max(worst[3], relativeError(try norm(xr), try rotated(try norm(x), irrepsIn, r)))
            // Edge harmonics of rotated vectors are the rotated harmonics.
            let vectors = (0 ..< 3).map { _ in rng.vector() }
            let y = try Tensor<T>(vectors.flatMap { sh.values($0).map { T($0) } }, shape: [3, sh.dim])
            let yr = try Tensor<T>(vectors.flatMap { sh.values(r * $0).map { T($0) } }, shape: [3, sh.dim])
            let w: Tensor<T> = randomTensor([3, tp.weightCount], seed: UInt64(1000 + trial))
            worst[1] = max(worst[1], relativeError(try tp(xr, yr, weights: w), try rotated(try tp(x, y, weights: w), tp.irrepsOut, r)))
            let g: Tensor<T> = randomTensor([3, gateInput.dim], seed: UInt64(2000 + trial))
            worst[2] = max(worst[2], relativeError(try gate(try rotated(g, gateInput, r)), try rotated(try gate(g), gate.irrepsOut, r)))
        }
        print("equivariance \(T.typeName): linear \(worst[0]), tensor product \(worst[1]), gate \(worst[2]), layer norm \(worst[3])")
        XCTAssertLessThan(worst[0], tolerance, "linear \(T.typeName)")
        XCTAssertLessThan(worst[1], tolerance, "tensor product \(T.typeName)")
        XCTAssertLessThan(worst[2], tolerance, "gate \(T.typeName)")
        XCTAssertLessThan(worst[3], tolerance, "layer norm \(T.typeName)")
    }

    func testStackedNetworkIsEquivariant() throws {
        try stackedEquivariance(Double.self, tolerance: 1e-12)
        try stackedEquivariance(Float.self, tolerance: 1e-5)
    }

    func stackedEquivariance<T: Scalar>(_: T.Type, tolerance: Double) throws {
        let net = try TinyNetwork<T>(ParameterSet<T>(seed: 3))
        var rng = SeededGenerator(seed: 41)
        var worst = 0.0
        for trial in 0 ..< 100 {
            let positions = (0 ..< 4).map { _ in rng.vector() * 1.5 }
            let r = rng.rotation(), shift = rng.vector()
            let x: Tensor<T> = randomTensor([4, net.irrepsNode.dim], seed: UInt64(trial))
            let out = try net(positions: positions, features: x)
            let outRotated = try net(positions: positions.map { r * $0 + shift }, features: try rotated(x, net.irrepsNode, r))
            worst = max(worst, relativeError(outRotated, try rotated(out, net.out.irrepsOut, r)))
        }
        print("equivariance \(T.typeName): stacked network \(worst)")
        XCTAssertLessThan(worst, tolerance, "stacked network \(T.typeName)")
    }

    func testGradientsMatchFiniteDifferences() throws {
        let params = ParameterSet<Double>(seed: 5)
        let net = try TinyNetwork<Double>(params)
        var rng = SeededGenerator(seed: 42)
        let positions = (0 ..< 3).map { _ in rng.vector() * 1.5 }
        let x: Tensor<Double> = randomTensor([3, net.irrepsNode.dim], seed: 9, requiresGrad: true)
        let probe: [Double] = rng.values(3 * net.out.irrepsOut.dim)
        func loss() throws -> Double {
            try GradMode.withoutGrad { zip(try net(positions: positions, features: x).data, probe).map { $0 * $1 }.reduce(0, +) }
        }
        let out = try net(positions: positions, features: x)
        try out.backward(seed: probe)
        var worst = 0.0, checked = 0
        for t in params.tensors + [x] {
            let g = try XCTUnwrap(t.grad, "no gradient for \(t.name)")
            for i in Set([0, t.count / 2, t.count - 1]) {
                let saved = t.data[i], h = 1e-6
                t.data[i] = saved + h; let plus = try loss()
                t.data[i] = saved - h; let minus = try loss()
                t.data[i] = saved
                let fd = (plus - minus) / (2 * h)
                worst = max(worst, abs(fd - g[i]) / max(1, abs(fd)))
                checked += 1
            }
        }
        print("finite differences: \(checked) entries, worst relative error \(worst)")
        XCTAssertGreaterThan(checked, 20)
        XCTAssertLessThan(worst, 1e-7)
    }

    func testTensorProductMatchesTheDefiningSum() throws {
        let irreps1 = try Irreps("2x0e+3x1o+2x2e"), irreps2 = try Irreps("1x0e+1x1o+1x2e")
        let tp = try ChannelwiseTensorProduct<Double>(irreps1: irreps1, irreps2: irreps2, lmaxOut: 3)
        let edges = 4
        let x1: Tensor<Double> = randomTensor([edges, irreps1.dim], seed: 1)
        let x2: Tensor<Double> = randomTensor([edges, irreps2.dim], seed: 2)
        let w: Tensor<Double> = randomTensor([edges, tp.weightCount], seed: 3)
        let out = try tp(x1, x2, weights: w)
        var fan: [Irrep: Int] = [:]
        for p in tp.paths { fan[p.output, default: 0] += 1 }
        var expected: [Double] = []
        let s1 = irreps1.slices, s2 = irreps2.slices
        for e in 0 ..< edges {
            var w0 = 0
            for p in tp.paths {
                let l1 = irreps1.entries[p.input1].irrep.l, l2 = irreps2.entries[p.input2].irrep.l, L = p.output.l
                let c = try ClebschGordan.real(l1, l2, L)
                for u in 0 ..< p.mul { for M in 0 ... 2 * L {
                    var sum = 0.0
                    for m1 in 0 ... 2 * l1 { for m2 in 0 ... 2 * l2 {
                        sum += c[M, m1, m2] * x1.data[e * irreps1.dim + s1[p.input1].lowerBound + u * (2 * l1 + 1) + m1]
                            * x2.data[e * irreps2.dim + s2[p.input2].lowerBound + m2]
                    } }
                    expected.append(sum * w.data[e * tp.weightCount + w0 + u] / Double(fan[p.output]!).squareRoot())
                } }
                w0 += p.mul
            }
        }
        XCTAssertEqual(out.shape, [edges, tp.irrepsOut.dim])
        XCTAssertLessThan(maxAbsDifference(out.data, expected), 1e-14)
    }

    func testBadShapesAndIrrepsThrow() throws {
        let params = ParameterSet<Double>(seed: 1)
        let linear = try EquivariantLinear(params, name: "l", irrepsIn: try Irreps("2x1o"), irrepsOut: try Irreps("1x1o+1x2e"))
        XCTAssertThrowsError(try linear(Tensor<Double>(zeros: [2, 5]))) { XCTAssertTrue("\($0)".contains("expected features [rows, 6]"), "\($0)") }
        // An output irrep without a matching input is zero (e3nn's behaviour).
        let y = try linear(Tensor<Double>(repeating: 1, shape: [2, 6]))
        XCTAssertEqual(Array(y.data[3 ..< 8]), [0, 0, 0, 0, 0])
        XCTAssertThrowsError(try ChannelwiseTensorProduct<Double>(irreps1: try Irreps("1x0e"), irreps2: try Irreps("2x1o"), lmaxOut: 1))
        var bad: [Double] = [1, 2, 3, 4]
        XCTAssertThrowsError(try Irreps("1x1o").rotate(&bad, rotation: .identity)) {
            XCTAssertEqual("\($0)", "features for irreps 1x1o (whole rows of 3): expected 3 values, got 4")
        }
        XCTAssertThrowsError(try Gate<Double>(scalars: try Irreps("1x1o"), gated: try Irreps("1x1o")))
        let tp = try ChannelwiseTensorProduct<Double>(irreps1: try Irreps("2x1o"), irreps2: try Irreps("1x0e+1x1o"), lmaxOut: 2)
        XCTAssertEqual(tp.irrepsOut.description, "2x1o+2x0e+2x1e+2x2e")
        XCTAssertThrowsError(try tp(Tensor(zeros: [2, 6]), Tensor(zeros: [2, 4]), weights: Tensor(zeros: [2, 3]))) {
            XCTAssertTrue("\($0)".contains("expected weights [2, 8]"), "\($0)")
        }
    }
}
