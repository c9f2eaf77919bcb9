// Tape behaviour (accumulation, no-grad, graph release), seeded determinism, thread-count
// independence of kernels, flat gradient buffers, and shape errors.
import Linalg
import XCTest
@testable import Autograd

final class EngineTests: XCTestCase {
    func testGradientsAccumulateAcrossBackwardCalls() throws {
        let x = try Tensor<Double>([1, 2, 3], shape: [3], requiresGrad: true)
        try (x * x).sum().backward()
        try (x * x).sum().backward()
        XCTAssertEqual(x.grad, [4, 8, 12])
        x.zeroGrad()
        XCTAssertNil(x.grad)
    }

    func testNoGradModeRecordsNothing() throws {
        let x = try Tensor<Float>([1, 2], shape: [2], requiresGrad: true)
        let y = try GradMode.withoutGrad { try (x * x).sum() }
        XCTAssertFalse(y.requiresGrad)
        XCTAssertTrue(y.isLeaf)
        XCTAssertTrue(GradMode.isEnabled)
        XCTAssertThrowsError(try y.backward())
    }

    func testGraphIsReleasedAfterBackward() throws {
        let x = try Tensor<Double>([1, 2], shape: [2], requiresGrad: true)
        let h = x.exp()
        let loss = try h.sum()
        try loss.backward()
        XCTAssertTrue(h.isLeaf)     // node dropped
        XCTAssertNil(h.grad)        // intermediate gradient freed
        XCTAssertEqual(x.grad!, x.data.map { Foundation.exp($0) })
        XCTAssertThrowsError(try loss.backward()) { XCTAssertTrue("\($0)".contains("released")) }
    }

    /// The graph walk marks visited tensors in the tensors (no set of identities): its order must
    /// be the depth-first order of the set-based walk it replaced (that order fixes the order in
    /// which gradients accumulate, hence their bits), and it must leave no mark behind.
    func testTopologicalOrderIsTheDepthFirstOrderAndLeavesNoMarks() throws {
        let x = try Tensor<Double>([0.3, -1.2, 2.0, 0.7], shape: [2, 2], requiresGrad: true)
        let w = try Tensor<Double>([1.5, -0.5, 0.25, 2.0], shape: [2, 2], requiresGrad: true)
        let constant = try Tensor<Double>([1, 2, 3, 4], shape: [2, 2])   // needs no gradient
        // Shared subexpressions (h is used three times, x four), a branch without gradient and a
        // diamond, so a walk without the visited marks would list tensors twice.
        let h = try x.matmul(w).tanh()
        let a = try (h * h + x) * constant
        let b = try (h.transposed() + x).exp()
        let loss = try ((a + b).sum() + (h * x).sum())
        func setBasedOrder(_ root: Tensor<Double>) -> [ObjectIdentifier] {
            var order: [ObjectIdentifier] = [], visited: Set<ObjectIdentifier> = [ObjectIdentifier(root)]
            var stack: [(Tensor<Double>, Int)] = [(root, 0)]
            while let (t, next) = stack.popLast() {
                let inputs = t.node?.inputs ?? []
                if next < inputs.count {
                    stack.append((t, next + 1))
                    let child = inputs[next]
                    if child.requiresGrad && visited.insert(ObjectIdentifier(child)).inserted { stack.append((child, 0)) }
                } else {
                    order.append(ObjectIdentifier(t))
                }
            }
            return order
        }
        let order = loss.topologicalOrder()
        XCTAssertEqual(order.map(ObjectIdentifier.init), setBasedOrder(loss))
        XCTAssertEqual(Set(order.map(ObjectIdentifier.init)).count, order.count)
        XCTAssertTrue(order.contains { $0 === x } && order.contains { $0 === w } && !order.contains { $0 === constant })
        XCTAssertFalse(order.contains { $0.onTopologicalPath })
        // A second walk of the same graph sees the same order (no stale marks).
        XCTAssertEqual(loss.topologicalOrder().map(ObjectIdentifier.init), order.map(ObjectIdentifier.init))
        // Backward through closures whose tensors only the graph keeps alive (their captures are
        // unowned(unsafe)): the intermediates are out of scope here, the gradient is exact.
        func detachedLoss(_ v: Tensor<Double>) throws -> Tensor<Double> { try (v.exp() * v).transposed().sum() }
        let y = try Tensor<Double>([0.5, -0.25, 1.0, 2.0], shape: [2, 2], requiresGrad: true)
        try detachedLoss(y).backward()
        for (g, v) in zip(y.grad!, y.data) { XCTAssertEqual(g, Foundation.exp(v) * (1 + v), accuracy: 1e-12) }
        try loss.backward()
        XCTAssertNotNil(x.grad)
        XCTAssertFalse(x.onTopologicalPath || w.onTopologicalPath || loss.onTopologicalPath)
    }

    func testParameterInitIsSeededPerName() throws {
        let a = ParameterSet<Float>(seed: 7), b = ParameterSet<Float>(seed: 7), c = ParameterSet<Float>(seed: 8)
        try a.create("w", shape: [4, 4], initializer: .fanInUniform)
        try b.create("other", shape: [3], initializer: .normal(std: 1))   // extra parameter first
        try b.create("w", shape: [4, 4], initializer: .fanInUniform)
        try c.create("w", shape: [4, 4], initializer: .fanInUniform)
        XCTAssertEqual(a["w"]!.data, b["w"]!.data)
        XCTAssertNotEqual(a["w"]!.data, c["w"]!.data)
        XCTAssertTrue(a["w"]!.data.allSatisfy { Swift.abs($0) <= 0.5 })
        XCTAssertThrowsError(try a.create("w", shape: [1], initializer: .zeros))
        // SplitMix64 reference values (seed 1234567: first outputs of the published algorithm).
        var rng = SplitMix64(seed: 1_234_567)
        XCTAssertEqual(rng.next(), 6_457_827_717_110_365_317)
        XCTAssertEqual(rng.next(), 3_203_168_211_198_807_973)
    }

    func testDropoutIsSeededAndScaled() throws {
        let x = Tensor<Float>(repeating: 1, shape: [10_000])
        let a = try x.dropout(probability: 0.25, seed: 3), b = try x.dropout(probability: 0.25, seed: 3)
        let c = try x.dropout(probability: 0.25, seed: 4)
        XCTAssertEqual(a.data, b.data)
        XCTAssertNotEqual(a.data, c.data)
        let kept = a.data.filter { $0 != 0 }
        XCTAssertTrue(kept.allSatisfy { $0 == Float(1 / 0.75) })
        XCTAssertEqual(Double(kept.count) / 10_000, 0.75, accuracy: 0.02)
        XCTAssertEqual(try x.dropout(probability: 0.5, seed: 1, training: false).data, x.data)
        XCTAssertThrowsError(try x.dropout(probability: 1, seed: 1))
    }

    func testFlatGradientsRoundTrip() throws {
        let ps = ParameterSet<Float>(seed: 1)
        let w = try ps.create("w", shape: [2, 2], initializer: .ones)
        let b = try ps.create("b", shape: [2], initializer: .zeros)
        w.grad = [1, 2, 3, 4]
        XCTAssertEqual(ps.flattenGradients(), [1, 2, 3, 4, 0, 0])
        try ps.loadGradients([5, 6, 7, 8, 9, 10])
        XCTAssertEqual(w.grad, [5, 6, 7, 8])
        XCTAssertEqual(b.grad, [9, 10])
        XCTAssertThrowsError(try ps.loadGradients([1])) { XCTAssertTrue("\($0)".contains("6")) }
    }

    /// Every parallel kernel gives the same numbers with 1 and 4 workers (products large enough to
    /// be split into BLAS slabs, scatter/segment reductions, layer norm, sums).
    func testResultsIndependentOfThreadCount() throws {
        func run() throws -> [[Float]] {
            let ps = ParameterSet<Float>(seed: 3)
            let mlp = try MLP(ps, name: "m", widths: [64, 96, 32])
            let norm = try LayerNorm(ps, name: "n", features: 32)
            let nodes = Tensor<Float>.randomNormal([300, 64], seed: 5, requiresGrad: true)
            // 3000 × 64 × 96 products: ≥ 1 MFLOP, so gemmSplit really cuts them.
            let src = try RowIndex((0..<3000).map { ($0 * 7) % 300 }, rowCount: 300)
            let dst = try RowIndex((0..<3000).map { ($0 * 13 + 5) % 300 }, rowCount: 300)
            let m = try norm(mlp(nodes.gatherRows(src)))
            let w = try m.segmentSoftmax(dst)
            let out = try (m * w).scatterAdd(dst).sum(axes: [0]).silu()
            let loss = try (out.square().sum() + m.mean(axes: [1]).sum())
            try loss.backward()
            return [out.data, nodes.grad!] + ps.tensors.map { $0.grad! }
        }
        let serial = try ExecutionContext(threads: 1).run { try run() }
        for threads in [2, 3, 4] {
            let parallel = try ExecutionContext(threads: threads).run { try run() }
            // Bit-identical (stronger than the 1e-6 relative the engine promises).
            for (s, p) in zip(serial, parallel) { XCTAssertEqual(s.map(\.bitPattern), p.map(\.bitPattern), "\(threads) threads") }
        }
    }

    /// The execution context is scoped to the thread that binds it: a no-grad inference on one
    /// thread does not switch off graph recording of a training on another (the old process-wide
    /// flag did), and a binding ends with its call.
    func testExecutionContextIsScopedPerThread() throws {
        XCTAssertEqual(ExecutionContext.current, .serial)
        let results = UnsafeMutableBufferPointer<Bool>.allocate(capacity: 400)
        defer { results.deallocate() }
        ConcurrentLoop.perform(iterations: 2) { w in
            let context = ExecutionContext(threads: 1, recordsGradients: w == 0)
            context.run {
                for i in 0 ..< 200 {
                    let x = Tensor<Double>(repeating: 2, shape: [3], requiresGrad: true)
                    results[w * 200 + i] = ((try? (x * x).sum())?.requiresGrad ?? false) == (w == 0)
                    if i % 50 == 0 { usleep(100) }
                }
            }
        }
        XCTAssertTrue(results.allSatisfy { $0 })
        let inner = ExecutionContext(threads: 3).run { GradMode.withoutGrad { ExecutionContext.current } }
        XCTAssertEqual(inner, ExecutionContext(threads: 3, recordsGradients: false))
        XCTAssertEqual(ExecutionContext.current, .serial)
        XCTAssertTrue(GradMode.isEnabled)
    }

    func testCheckFinite() throws {
        let t = try Tensor<Float>([1, .nan, 3], shape: [3])
        XCTAssertThrowsError(try t.checkFinite("loss")) { XCTAssertEqual("\($0)", "checkFinite: loss has value nan at flat index 1 (shape [3])") }
        XCTAssertNoThrow(try Tensor<Float>([1, 2], shape: [2]).checkFinite("x"))
    }

    func testBadShapesThrowClearErrors() throws {
        let a = Tensor<Float>(zeros: [2, 3]), b = Tensor<Float>(zeros: [4, 5])
        func message(_ body: () throws -> Any) -> String {
            do { _ = try body(); return "no error" } catch { return "\(error)" }
        }
        XCTAssertEqual(message { try a.matmul(b) }, "matmul: inner dimensions differ: [2, 3] · [4, 5] (3 vs 4)")
        XCTAssertTrue(message { try a + b }.hasPrefix("add: shapes [2, 3] and [4, 5] do not broadcast"))
        XCTAssertTrue(message { try a.reshaped([4, 2]) }.contains("cannot become [4, 2]"))
        XCTAssertTrue(message { try a.linear(weight: b, bias: nil) }.contains("does not match weight"))
        XCTAssertTrue(message { try RowIndex([0, 5], rowCount: 3) }.contains("index 5 at position 1"))
        XCTAssertTrue(message { try a.gatherRows([0, 1, 2]) }.contains("outside 0..<2"))
        XCTAssertTrue(message { try a.scatterAdd(RowIndex([0], rowCount: 1)) }.contains("one row per edge"))
        XCTAssertTrue(message { try a.slice(axis: 1, 2..<5) }.contains("outside 0..<3"))
        XCTAssertTrue(message { try a.sum(axes: [2]) }.contains("axis 2 out of range"))
        XCTAssertTrue(message { try Tensor<Float>([1, 2, 3], shape: [2, 2]) }.contains("do not fill shape [2, 2]"))
        XCTAssertTrue(message { try Tensor<Float>.concat([a, b], axis: 0) }.contains("does not match"))
        XCTAssertTrue(message { try a.bmm(b) }.contains("3-D"))
        for bad in [[0, 0], [1, 2], [-1, 0], [0], [0, 1, 2]] {
            XCTAssertEqual(message { try a.permuted(bad) }, "permute: \(bad) is not a permutation of the 2 axes of [2, 3]")
        }
        XCTAssertEqual(try a.permuted([1, 0]).shape, [3, 2])
        XCTAssertTrue(message { try RadialBasis.bessel(Tensor<Float>(zeros: [2]), count: 3, cutoff: 5) }.contains("not positive"))
    }
}

final class FastExpTests: XCTestCase {
    /// Float's exp is our own polynomial; compare it with the Double library exp.
    func testFastExpAccuracy() {
        var worst = 0.0
        var x: Float = -87
        while x <= 88 {
            let got = Double(Float.exp(x)), want = Foundation.exp(Double(x))
            worst = max(worst, Swift.abs(got - want) / want)
            x += 0.0137
        }
        XCTAssertLessThan(worst, 3e-7)   // ≈ 2.5 ulp of Float
        XCTAssertTrue(Float.exp(.nan).isNaN)
        XCTAssertEqual(Float.exp(0), 1)
        XCTAssertTrue(Float.exp(-1000) >= 0 && Float.exp(-1000) < 1e-37)
        XCTAssertTrue(Float.exp(1000).isFinite)
    }
}
