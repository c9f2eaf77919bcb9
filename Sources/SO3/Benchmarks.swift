// Timing of the SO3 kernels for `harmose bench-so3` (tools/bench/so3.sh). Lives with the module so
// the benchmark measures exactly the public code paths; never called from tests.
import Foundation
import Autograd
import Linalg
import Structures

public struct TensorProductBenchmark: Sendable, CustomStringConvertible {
    public var irreps1: String, irreps2: String, irrepsOut: String
    public var edges: Int, repeats: Int
    /// Median seconds of one forward / one backward pass over all edges.
    public var forwardSeconds: Double, backwardSeconds: Double
    /// Floating-point operations the implementation executes per forward pass (dense CG
    /// contraction: x2·C, then x1·(x2·C), then the per-edge weight), and the useful part of them
    /// (the non-zero CG entries, as a sparse kernel would do).
    public var forwardFlops: Double, usefulForwardFlops: Double
    /// Median sgemm rate (GFLOP/s) on 512³ on this machine, the ceiling to compare with.
    public var sgemmGflops: Double

    public var description: String {
        let fwdRate = forwardFlops / forwardSeconds / 1e9, useful = usefulForwardFlops / forwardSeconds / 1e9
        return """
        tensor product \(irreps1) ⊗ \(irreps2) → \(irrepsOut) (Float32, channel-wise, per-edge weights)
          edges \(edges), repeats \(repeats) (medians)
          forward  \(String(format: "%.4f", forwardSeconds)) s  \(String(format: "%.0f", Double(edges) / forwardSeconds)) edges/s  \(String(format: "%.2f", fwdRate)) GFLOP/s executed, \(String(format: "%.2f", useful)) GFLOP/s useful (sparse CG count)
          backward \(String(format: "%.4f", backwardSeconds)) s  \(String(format: "%.0f", Double(edges) / backwardSeconds)) edges/s
          sgemm 512³ \(String(format: "%.1f", sgemmGflops)) GFLOP/s; forward executed rate = \(String(format: "%.1f", 100 * fwdRate / sgemmGflops)) % of it
        """
    }

    /// DeepH-E3's default: 64x0e+32x1o+16x2e+8x3o+8x4e ⊗ spherical harmonics l ≤ 4 → the same
    /// irreps types (l ≤ 4, parity as in the input).
    public static func run(edges: Int = 2000, repeats: Int = 5, seed: UInt64 = 1) throws -> TensorProductBenchmark {
        let irreps1 = try Irreps("64x0e+32x1o+16x2e+8x3o+8x4e")
        let sh = try SphericalHarmonics(lmax: 4, normalization: .component)
        let allowed = Set(irreps1.entries.map(\.irrep))
        let tp = try ChannelwiseTensorProduct<Float>(irreps1: irreps1, irreps2: sh.irreps, lmaxOut: 4, allowedOutputs: allowed)
        let x1 = Tensor<Float>.randomNormal([edges, irreps1.dim], seed: seed, requiresGrad: true)
        var rng = SplitMix64(seed: seed)
        let x2: Tensor<Float> = try sh.tensor((0 ..< edges).map { _ in Vec3(rng.nextNormal(), rng.nextNormal(), rng.nextNormal()) })
        let w = Tensor<Float>.randomNormal([edges, tp.weightCount], seed: seed + 1, requiresGrad: true)
        let probe = [Float](repeating: 1, count: edges * tp.irrepsOut.dim)
        var forward: [Double] = [], backward: [Double] = []
        for _ in 0 ..< repeats {
            x1.zeroGrad(); w.zeroGrad()
            let t0 = DispatchTime.now().uptimeNanoseconds
            let out = try tp(x1, x2, weights: w)
            let t1 = DispatchTime.now().uptimeNanoseconds
            try out.backward(seed: probe)
            let t2 = DispatchTime.now().uptimeNanoseconds
            forward.append(Double(t1 - t0) / 1e9); backward.append(Double(t2 - t1) / 1e9)
        }
        var flops = 0.0, useful = 0.0
        for p in tp.paths {
            let l1 = irreps1.entries[p.input1].irrep.l, l2 = sh.irreps.entries[p.input2].irrep.l
            let d1 = Double(2 * l1 + 1), d2 = Double(2 * l2 + 1), dL = Double(p.output.dim), u = Double(p.mul)
            let nnz = Double(try ClebschGordan.real(l1, l2, p.output.l).nonZeros.count)
            flops += 2 * d2 * d1 * dL + 2 * u * d1 * dL + u * dL
            useful += 2 * nnz + 2 * u * d1 * dL + u * dL
        }
        return TensorProductBenchmark(
            irreps1: irreps1.description, irreps2: sh.irreps.description, irrepsOut: tp.irrepsOut.regrouped().description,
            edges: edges, repeats: repeats, forwardSeconds: median(forward), backwardSeconds: median(backward),
            forwardFlops: flops * Double(edges), usefulForwardFlops: useful * Double(edges), sgemmGflops: sgemmRate())
    }

    static func median(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    static func sgemmRate() -> Double {
        let n = 512
        let a = [Float](repeating: 0.5, count: n * n), b = a
        var c = [Float](repeating: 0, count: n * n)
        var times: [Double] = []
        for _ in 0 ..< 5 {
            let t0 = DispatchTime.now().uptimeNanoseconds
            a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
                BLAS.gemm(m: n, n: n, k: n, a: ap.baseAddress!, b: bp.baseAddress!, c: cp.baseAddress!)
            } } }
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        return 2 * Double(n * n * n) / median(times) / 1e9
    }
}

/// Timing of the exact tables: harmonics per vector and D per rotation (Double).
public struct ExactKernelBenchmark: Sendable, CustomStringConvertible {
    public var harmonicsPerSecond: Double, harmonicsWithGradientsPerSecond: Double, wignerDPerSecond: Double

    public var description: String {
        String(format: "spherical harmonics l ≤ 8: %.0f vectors/s (values), %.0f vectors/s (values + gradients); Wigner D all l ≤ 8: %.0f rotations/s",
               harmonicsPerSecond, harmonicsWithGradientsPerSecond, wignerDPerSecond)
    }

    public static func run(count: Int = 20000) throws -> ExactKernelBenchmark {
        let sh = try SphericalHarmonics(lmax: 8)
        var v = [Double](repeating: 0, count: sh.dim), g = [Double](repeating: 0, count: 3 * sh.dim)
        var sink = 0.0
        func rate(_ n: Int, _ body: (Int) throws -> Void) rethrows -> Double {
            let t0 = DispatchTime.now().uptimeNanoseconds
            for i in 0 ..< n { try body(i) }
            return Double(n) / (Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        let values = rate(count) { i in
            v.withUnsafeMutableBufferPointer { sh.evaluate(Vec3(0.3, Double(i % 7) - 3, 1.1), normalizeInput: true, values: $0.baseAddress!, gradients: nil) }
            sink += v[80]
        }
        let grads = rate(count) { i in
            v.withUnsafeMutableBufferPointer { vp in g.withUnsafeMutableBufferPointer { gp in
                sh.evaluate(Vec3(0.3, Double(i % 7) - 3, 1.1), normalizeInput: true, values: vp.baseAddress!, gradients: gp.baseAddress!)
            } }
            sink += g[240]
        }
        let d = try rate(count / 100) { i in sink += try WignerD.matrices(lmax: 8, rotation: Rotation(uniform: 0.1, 0.2, Double(i % 10) / 10))[8][0] }
        if sink.isNaN { print("") }
        return ExactKernelBenchmark(harmonicsPerSecond: values, harmonicsWithGradientsPerSecond: grads, wignerDPerSecond: d)
    }
}
