// Finite-difference gradient checks (Float64) of every operation and of a composed
// message-passing network. Each check contracts the output with fixed random weights R so every
// output element contributes: L = Σ f(x)·R, and compares ∂L/∂x from backward with central
// differences.
import XCTest
@testable import Autograd

typealias DT = Tensor<Double>

func randomTensor(_ shape: [Int], seed: UInt64, low: Double = -1, high: Double = 1) -> DT {
    DT.randomUniform(shape, low: low, high: high, seed: seed, requiresGrad: true)
}

func gradCheck(_ inputs: [DT], step: Double = 1e-6, rtol: Double = 1e-5, atol: Double = 1e-7,
               file: StaticString = #filePath, line: UInt = #line, _ f: ([DT]) throws -> DT) throws {
    for x in inputs { x.requiresGrad = true; x.grad = nil }
    let y = try f(inputs)
    let weights = DT.randomUniform(y.shape, low: -1, high: 1, seed: 99)
    func loss(_ t: DT) -> Double { zip(t.data, weights.data).reduce(0) { $0 + $1.0 * $1.1 } }
    try y.backward(seed: weights.data)
    for (n, x) in inputs.enumerated() {
        let analytic = x.grad ?? [Double](repeating: 0, count: x.count)
        for j in 0..<x.count {
            let saved = x.data[j]
            x.data[j] = saved + step
            let lp = try GradMode.withoutGrad { try loss(f(inputs)) }
            x.data[j] = saved - step
            let lm = try GradMode.withoutGrad { try loss(f(inputs)) }
            x.data[j] = saved
            let numeric = (lp - lm) / (2 * step)
            let err = Swift.abs(numeric - analytic[j])
            if err > atol + rtol * max(Swift.abs(numeric), Swift.abs(analytic[j])) {
                XCTFail("input \(n) element \(j): analytic \(analytic[j]) vs numeric \(numeric)", file: file, line: line)
                return
            }
        }
    }
}

final class GradCheckTests: XCTestCase {
    func testUnaryOps() throws {
        let x = randomTensor([3, 4], seed: 1, low: -2, high: 2)
        for op in [{ (t: DT) in t.silu() }, { $0.sigmoid() }, { $0.tanh() }, { $0.softplus() }, { $0.exp() },
                   { $0.square() }, { $0.affine(scale: -1.5, shift: 0.3) }, { -$0 }, { $0 * 2.0 }, { $0 / 4.0 }, { $0 - 1.0 }] {
            try gradCheck([x]) { op($0[0]) }
        }
        let positive = randomTensor([5], seed: 2, low: 0.2, high: 3)
        try gradCheck([positive]) { $0[0].log() }
        try gradCheck([positive]) { $0[0].sqrt() }
        let awayFromZero = try DT([-1.5, -0.3, 0.4, 2.0], shape: [4])
        try gradCheck([awayFromZero]) { $0[0].relu() }
        try gradCheck([awayFromZero]) { $0[0].abs() }
        // softplus is stable far from 0.
        let big = try DT([-60, 60], shape: [2]).softplus()
        XCTAssertEqual(big.data[0], Foundation.exp(-60), accuracy: 1e-30)
        XCTAssertEqual(big.data[1], 60, accuracy: 1e-12)
    }

    func testBinaryOpsWithBroadcasting() throws {
        let shapes: [([Int], [Int])] = [([3, 4], [3, 4]), ([3, 4], [4]), ([3, 1], [1, 4]), ([2, 3, 4], [3, 1]), ([3, 4], []), ([1], [2, 3])]
        for (sa, sb) in shapes {
            let a = randomTensor(sa, seed: 3), b = randomTensor(sb, seed: 4, low: 0.5, high: 2)
            try gradCheck([a, b]) { try $0[0] + $0[1] }
            try gradCheck([a, b]) { try $0[0] - $0[1] }
            try gradCheck([a, b]) { try $0[0] * $0[1] }
            try gradCheck([a, b]) { try $0[0] / $0[1] }
        }
        let a = randomTensor([3, 4], seed: 5)
        try gradCheck([a]) { try $0[0] * $0[0] }   // same tensor twice accumulates both paths
    }

    func testMatmulAllTransposes() throws {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let a = randomTensor(ta ? [4, 3] : [3, 4], seed: 6), b = randomTensor(tb ? [5, 4] : [4, 5], seed: 7)
            try gradCheck([a, b]) { try $0[0].matmul($0[1], transposeA: ta, transposeB: tb) }
            let ba = randomTensor(ta ? [2, 4, 3] : [2, 3, 4], seed: 8), bb = randomTensor(tb ? [2, 5, 4] : [2, 4, 5], seed: 9)
            try gradCheck([ba, bb]) { try $0[0].bmm($0[1], transposeA: ta, transposeB: tb) }
        }
    }

    func testLinear() throws {
        let x = randomTensor([2, 3, 4], seed: 10), w = randomTensor([4, 5], seed: 11), b = randomTensor([5], seed: 12)
        try gradCheck([x, w, b]) { try $0[0].linear(weight: $0[1], bias: $0[2]) }
        try gradCheck([x, w]) { try $0[0].linear(weight: $0[1], bias: nil) }
    }

    func testShapeOps() throws {
        let x = randomTensor([2, 3, 4], seed: 13)
        try gradCheck([x]) { try $0[0].reshaped([6, -1]) }
        try gradCheck([x]) { try $0[0].permuted([2, 0, 1]) }
        try gradCheck([x]) { try $0[0].transposed() }
        try gradCheck([x]) { try $0[0].slice(axis: 1, 1..<3) }
        try gradCheck([x]) { try $0[0].slice(axis: -1, 0..<1) }
        let y = randomTensor([2, 2, 4], seed: 14)
        try gradCheck([x, y]) { try DT.concat([$0[0], $0[1]], axis: 1) }
        try gradCheck([x, x]) { try DT.concat([$0[0], $0[1]], axis: 2) }
    }

    func testReductions() throws {
        let x = randomTensor([2, 3, 4], seed: 15)
        for axes in [nil, [0], [1], [2], [0, 1], [1, 2], [0, 2]] as [[Int]?] {
            try gradCheck([x]) { try $0[0].sum(axes: axes) }
            try gradCheck([x]) { try $0[0].mean(axes: axes, keepDims: true) }
        }
        let s = try x.sum(axes: [0, 2])
        XCTAssertEqual(s.shape, [3])
        for j in 0..<3 {
            var want = 0.0
            for i in 0..<2 { for k in 0..<4 { want += x.data[i * 12 + j * 4 + k] } }
            XCTAssertEqual(s.data[j], want, accuracy: 1e-14)
        }
    }

    let edges = [2, 0, 2, 1, 0, 2, 4]   // node 3 has no edges

    func testGatherAndScatter() throws {
        let nodes = randomTensor([5, 3], seed: 16)
        let index = try RowIndex(edges, rowCount: 5)
        try gradCheck([nodes]) { try $0[0].gatherRows(index) }
        let messages = randomTensor([7, 3], seed: 17)
        try gradCheck([messages]) { try $0[0].scatterAdd(index) }
        try gradCheck([messages]) { try $0[0].segmentSum(index) }
        try gradCheck([messages]) { try $0[0].segmentMean(index) }
        try gradCheck([messages]) { try $0[0].segmentMax(index) }   // random values: no ties
        try gradCheck([messages]) { try $0[0].segmentSoftmax(index) }
        let scattered = try messages.scatterAdd(index)
        XCTAssertEqual(scattered.data[3 * 3 ..< 4 * 3].map { $0 }, [0, 0, 0])
        XCTAssertEqual(scattered.data[0], messages.data[1 * 3] + messages.data[4 * 3], accuracy: 1e-15)
        let soft = try messages.segmentSoftmax(index)
        XCTAssertEqual(soft.data[0 * 3] + soft.data[2 * 3] + soft.data[5 * 3], 1, accuracy: 1e-14)
    }

    func testLayerNormAndDropout() throws {
        let x = randomTensor([4, 6], seed: 18), g = randomTensor([6], seed: 19), b = randomTensor([6], seed: 20)
        try gradCheck([x, g, b]) { try $0[0].layerNorm(gamma: $0[1], beta: $0[2]) }
        try gradCheck([x]) { try $0[0].layerNorm(gamma: nil, beta: nil) }
        try gradCheck([x]) { try $0[0].dropout(probability: 0.3, seed: 7) }
    }

    func testRadialBases() throws {
        let r = randomTensor([6], seed: 21, low: 0.3, high: 4.5)
        try gradCheck([r]) { try RadialBasis.gaussian($0[0], count: 5, start: 0, stop: 5) }
        try gradCheck([r]) { try RadialBasis.bessel($0[0], count: 4, cutoff: 5) }
        try gradCheck([r]) { try RadialBasis.cutoffEnvelope($0[0], cutoff: 4) }   // some r beyond the cutoff
        try gradCheck([r]) { try RadialBasis.bessel($0[0], count: 4, cutoff: 5) * RadialBasis.cutoffEnvelope($0[0], cutoff: 5).reshaped([-1, 1]) }
        let env = try RadialBasis.cutoffEnvelope(try DT([0, 2.5, 5, 6], shape: [4]), cutoff: 5)
        XCTAssertEqual(env.data[0], 1)
        XCTAssertEqual(env.data[2], 0, accuracy: 1e-15)
        XCTAssertEqual(env.data[3], 0)
    }

    /// gather (source and destination features) → MLP → segment softmax attention → scatter-add,
    /// with a layer norm and a radial basis on edge lengths: the shape of one graph-transformer
    /// message-passing layer, checked end to end through the parameters and the inputs.
    func testComposedMessagePassingNetwork() throws {
        let params = ParameterSet<Double>(seed: 5)
        let mlp = try MLP(params, name: "msg", widths: [3 + 3 + 4, 8, 3], activation: .silu)
        let attn = try Linear(params, name: "attn", inFeatures: 3, outFeatures: 1)
        let norm = try LayerNorm(params, name: "norm", features: 3)
        let src = try RowIndex([0, 1, 2, 3, 4, 0, 2], rowCount: 5), dst = try RowIndex(edges, rowCount: 5)
        let nodes = randomTensor([5, 3], seed: 22), lengths = randomTensor([7], seed: 23, low: 0.5, high: 3)
        try gradCheck([nodes, lengths] + params.tensors) { t in
            let h = t[0], r = t[1]
            let basis = try RadialBasis.gaussian(r, count: 4, stop: 3.5) * RadialBasis.cutoffEnvelope(r, cutoff: 3.5).reshaped([-1, 1])
            let edgeIn = try DT.concat([h.gatherRows(src), h.gatherRows(dst), basis], axis: 1)
            let message = try mlp(edgeIn)
            let weight = try attn(message).segmentSoftmax(dst)
            let update = try (message * weight).scatterAdd(dst)
            return try norm(h + update).tanh()
        }
    }
}

/// The public custom-op entry other modules (SO3) use, checked like a built-in op.
final class CustomOpTests: XCTestCase {
    /// y_i = x_i³ written as an external op would be.
    func cube(_ x: DT) throws -> DT {
        try DT.recorded(x.data.map { $0 * $0 * $0 }, shape: x.shape, op: "cube", inputs: [x]) { g in
            x.accumulateGradient { gx in for i in 0..<gx.count { gx[i] += g[i] * 3 * x.data[i] * x.data[i] } }
        }
    }

    func testCustomOpGradient() throws {
        let x = randomTensor([2, 3], seed: 30)
        try gradCheck([x]) { try self.cube($0[0]).tanh() }
        XCTAssertThrowsError(try DT.recorded([1, 2], shape: [3], op: "bad", inputs: []) { _ in }) {
            XCTAssertEqual("\($0)", "bad: 2 values do not fill result shape [3]")
        }
    }
}
