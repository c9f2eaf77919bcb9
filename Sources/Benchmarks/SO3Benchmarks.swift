// Benchmarks: the timing code behind the CLI's bench commands (bench-so3, bench-bands), kept out of
// the library modules. It calls only their public API, so it measures exactly what users run.
//
// Timing of the SO3 kernels for `harmose bench-so3` (tools/bench/so3.sh); never called from tests.
import Foundation
import Autograd
import SO3
import Linalg
import Structures

public struct TensorProductBenchmark: Sendable, CustomStringConvertible {
    public var irreps1: String, irreps2: String, irrepsOut: String
    /// Output values per edge.
    public var outputDim: Int
    public var edges: Int, repeats: Int
    /// Median seconds of one forward / one backward pass over all edges (the fused op).
    public var forwardSeconds: Double, backwardSeconds: Double
    /// Medians of the kernels alone, writing into buffers allocated once (no page faults on fresh
    /// output and gradient arrays, no graph recording): the allocator's share is the difference.
    public var forwardKernelSeconds: Double, backwardKernelSeconds: Double
    /// FLOPs per pass over all edges as the fused kernel executes them (x2 contracted with the
    /// sparse CG once per edge and path, then shared by all channels; see FusedTensorProductPlan).
    public var forwardFlops: Double, backwardFlops: Double
    /// The conventional count for comparison across codes: 2 per CG non-zero per channel plus the
    /// weight multiply (forward), and twice that for backward (the gradients of x1 and of the weights; the harmonics need none, as in e3nn's benchmark).
    public var conventionalForwardFlops: Double
    /// Median sgemm rate (GFLOP/s) on 512³ measured in the same run, the ceiling to compare with.
    public var sgemmGflops: Double
    /// Median seconds to overwrite an already mapped buffer of the output's size with the same
    /// worker split: the memory floor under any forward pass that writes this output.
    public var outputWriteSeconds: Double

    public var description: String {
        func f(_ x: Double, _ d: Int = 2) -> String { String(format: "%.\(d)f", x) }
        let fe = forwardFlops / forwardSeconds / 1e9, fc = conventionalForwardFlops / forwardSeconds / 1e9
        let be = backwardFlops / backwardSeconds / 1e9, bc = 2 * conventionalForwardFlops / backwardSeconds / 1e9
        return """
        tensor product \(irreps1) ⊗ \(irreps2) → \(irrepsOut) (Float32, channel-wise, per-edge weights, fused op)
          edges \(edges), repeats \(repeats) (medians)
          forward  \(f(forwardSeconds, 5)) s  \(f(Double(edges) / forwardSeconds, 0)) edges/s  \(f(fe)) GFLOP/s executed, \(f(fc)) GFLOP/s conventional sparse count (\(f(100 * fc / sgemmGflops, 1)) % of sgemm)
          backward \(f(backwardSeconds, 5)) s  \(f(Double(edges) / backwardSeconds, 0)) edges/s  \(f(be)) GFLOP/s executed, \(f(bc)) GFLOP/s conventional (\(f(100 * bc / sgemmGflops, 1)) % of sgemm)
          kernels alone (preallocated buffers): forward \(f(forwardKernelSeconds, 5)) s (\(f(conventionalForwardFlops / forwardKernelSeconds / 1e9)) GFLOP/s conventional, \(f(100 * conventionalForwardFlops / forwardKernelSeconds / 1e9 / sgemmGflops, 1)) % of sgemm), backward \(f(backwardKernelSeconds, 5)) s (\(f(2 * conventionalForwardFlops / backwardKernelSeconds / 1e9)) GFLOP/s, \(f(100 * 2 * conventionalForwardFlops / backwardKernelSeconds / 1e9 / sgemmGflops, 1)) %)
          memory floor: writing the \(f(Double(edges) * Double(outputDim) * 4 / 1e6, 1)) MB output alone takes \(f(outputWriteSeconds, 5)) s (\(f(Double(edges) * Double(outputDim) * 4 / outputWriteSeconds / 1e9, 1)) GB/s), so no forward pass can exceed \(f(conventionalForwardFlops / outputWriteSeconds / 1e9)) GFLOP/s conventional (\(f(100 * conventionalForwardFlops / outputWriteSeconds / 1e9 / sgemmGflops, 1)) % of sgemm); the kernel reaches \(f(100 * outputWriteSeconds / forwardKernelSeconds, 0)) % of that bound
          flops/edge: forward \(f(forwardFlops / Double(edges), 0)) executed, \(f(conventionalForwardFlops / Double(edges), 0)) conventional; backward \(f(backwardFlops / Double(edges), 0)) executed
          sgemm 512³ \(f(sgemmGflops, 1)) GFLOP/s (same run)
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
        for r in 0 ... repeats {
            x1.zeroGrad(); w.zeroGrad()
            let t0 = DispatchTime.now().uptimeNanoseconds
            let out = try tp(x1, x2, weights: w)
            let t1 = DispatchTime.now().uptimeNanoseconds
            try out.backward(seed: probe)
            let t2 = DispatchTime.now().uptimeNanoseconds
            if r > 0 { forward.append(Double(t1 - t0) / 1e9); backward.append(Double(t2 - t1) / 1e9) }   // r = 0 warms up
        }
        // The kernels alone, into buffers allocated (and touched) once.
        let plan = tp.plan
        var out = [Float](repeating: 0, count: edges * plan.dimOut)
        var gx1 = [Float](repeating: 0, count: edges * plan.dim1)
        var gw = [Float](repeating: 0, count: edges * plan.weightCount)
        var forwardKernel: [Double] = [], backwardKernel: [Double] = []
        x1.data.withUnsafeBufferPointer { a in x2.data.withUnsafeBufferPointer { b in w.data.withUnsafeBufferPointer { wp in
            probe.withUnsafeBufferPointer { g in
                for r in 0 ... repeats {
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    out.withUnsafeMutableBufferPointer { fusedTensorProductForward(plan, edges: edges, x1: a.baseAddress!, x2: b.baseAddress!, w: wp.baseAddress!, out: $0.baseAddress!) }
                    let t1 = DispatchTime.now().uptimeNanoseconds
                    // As the op runs here: x1 and the weights need gradients, the harmonics do not.
                    gx1.withUnsafeMutableBufferPointer { ga in gw.withUnsafeMutableBufferPointer { gc in
                        fusedTensorProductBackward(plan, edges: edges, x1: a.baseAddress!, x2: b.baseAddress!, w: wp.baseAddress!, gOut: g.baseAddress!,
                                                   gx1: ga.baseAddress!, gx2: nil, gw: gc.baseAddress!)
                    } }
                    let t2 = DispatchTime.now().uptimeNanoseconds
                    if r > 0 { forwardKernel.append(Double(t1 - t0) / 1e9); backwardKernel.append(Double(t2 - t1) / 1e9) }
                }
            }
        } } }
        let e = Double(edges)
        return TensorProductBenchmark(
            irreps1: irreps1.description, irreps2: sh.irreps.description, irrepsOut: tp.irrepsOut.regrouped().description, outputDim: plan.dimOut,
            edges: edges, repeats: repeats, forwardSeconds: median(forward), backwardSeconds: median(backward),
            forwardKernelSeconds: median(forwardKernel), backwardKernelSeconds: median(backwardKernel),
            forwardFlops: tp.plan.forwardFlopsPerEdge * e, backwardFlops: tp.plan.backwardFlopsPerEdge * e,
            conventionalForwardFlops: tp.plan.sparseFlopsPerEdge * e, sgemmGflops: sgemmRate(),
            outputWriteSeconds: writeFloor(&out, repeats: repeats))
    }

    static func median(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    /// Median seconds to fill `buffer` (already touched) with a fresh value per repeat, split
    /// into contiguous ranges over `Parallel.workers` threads like the kernels.
    static func writeFloor(_ buffer: inout [Float], repeats: Int) -> Double {
        var times: [Double] = []
        buffer.withUnsafeMutableBufferPointer { b in
            let base = b.baseAddress!
            for r in 0 ... repeats {
                let value = Float(r)
                let t0 = DispatchTime.now().uptimeNanoseconds
                Parallel.forRanges(b.count, grain: 1) { range in
                    (base + range.lowerBound).update(repeating: value, count: range.count)
                }
                if r > 0 { times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9) }
            }
        }
        return median(times)
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
