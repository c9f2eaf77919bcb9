// Timing of `FullyConnectedTensorProduct` for `harmose bench-so3 --variant fully-connected`
// (tools/bench/so3.sh); the e3nn side is tools/bench_so3_fctp_e3nn.py. Never called from tests.
import Foundation
import Autograd
import SO3
import Structures

public struct FullyConnectedTensorProductBenchmark: Sendable, CustomStringConvertible {
    public struct Timing: Sendable {
        /// Median seconds of one forward / one backward pass over all edges.
        public var forwardSeconds: Double, backwardSeconds: Double
    }

    public var irreps1: String, irreps2: String, irrepsOut: String
    public var edges: Int, repeats: Int, paths: Int, weightCount: Int
    /// Internal weights shared by all edges (e3nn's default FullyConnectedTensorProduct).
    public var shared: Timing
    /// Weights [edges, weightCount] passed in (a radial network's output); nil when not run.
    public var perEdge: Timing?
    /// Conventional FLOPs per edge, forward: 2 per CG non-zero per (u, v) channel pair, and
    /// 2·fan·(2L+1)·mulOut for the mixing of each output entry (see `forwardFlopsPerEdge`).
    public var productFlopsPerEdge: Double, mixingFlopsPerEdge: Double
    /// Median sgemm rate (GFLOP/s) on 512³ measured in the same run.
    public var sgemmGflops: Double

    public var forwardFlopsPerEdge: Double { productFlopsPerEdge + mixingFlopsPerEdge }
    /// What backward must compute when x2 is constant (harmonics): the x1 gradient of the
    /// products (the same count as forward) and two mixing products (gradients of the unmixed
    /// products and of the weights).
    public var backwardFlopsPerEdge: Double { productFlopsPerEdge + 2 * mixingFlopsPerEdge }

    public var description: String {
        func f(_ x: Double, _ d: Int = 2) -> String { String(format: "%.\(d)f", x) }
        func lines(_ name: String, _ t: Timing) -> String {
            let e = Double(edges)
            let fg = forwardFlopsPerEdge * e / t.forwardSeconds / 1e9, bg = backwardFlopsPerEdge * e / t.backwardSeconds / 1e9
            return """
              \(name) forward  \(f(t.forwardSeconds, 5)) s  \(f(e / t.forwardSeconds, 0)) edges/s  \(f(fg)) GFLOP/s (\(f(100 * fg / sgemmGflops, 1)) % of sgemm)
              \(name) backward \(f(t.backwardSeconds, 5)) s  \(f(e / t.backwardSeconds, 0)) edges/s  \(f(bg)) GFLOP/s (\(f(100 * bg / sgemmGflops, 1)) % of sgemm)
            """
        }
        return """
        fully connected tensor product \(irreps1) ⊗ \(irreps2) → \(irrepsOut) (Float32, channel-wise CG products + GEMM mixing)
          edges \(edges), repeats \(repeats) (medians), \(paths) paths, \(weightCount) weights
        \(lines("shared weights  ", shared))
        \(perEdge.map { lines("per-edge weights", $0) } ?? "  per-edge weights: not run")
          flops/edge (conventional): forward \(f(forwardFlopsPerEdge, 0)) = products \(f(productFlopsPerEdge, 0)) + mixing \(f(mixingFlopsPerEdge, 0)); backward \(f(backwardFlopsPerEdge, 0))
          sgemm 512³ \(f(sgemmGflops, 1)) GFLOP/s (same run)
        """
    }

    /// DeepH-E3's default irreps ⊗ spherical harmonics l ≤ 4 → the same irreps: x1 and the
    /// weights get gradients, the harmonics do not (as in a network).
    public static func run(edges: Int = 2000, repeats: Int = 5, perEdge: Bool = true, seed: UInt64 = 1) throws -> FullyConnectedTensorProductBenchmark {
        let irreps = try Irreps("64x0e+32x1o+16x2e+8x3o+8x4e")
        let sh = try SphericalHarmonics(lmax: 4, normalization: .component)
        let params = ParameterSet<Float>(seed: seed)
        let tp = try FullyConnectedTensorProduct(params, name: "fc", irreps1: irreps, irreps2: sh.irreps, irrepsOut: irreps)
        let x1 = Tensor<Float>.randomNormal([edges, irreps.dim], seed: seed, requiresGrad: true)
        var rng = SplitMix64(seed: seed)
        let x2: Tensor<Float> = try sh.tensor((0 ..< edges).map { _ in Vec3(rng.nextNormal(), rng.nextNormal(), rng.nextNormal()) })
        let probe = [Float](repeating: 1, count: edges * irreps.dim)

        func time(_ weights: Tensor<Float>?) throws -> Timing {
            var forward: [Double] = [], backward: [Double] = []
            for r in 0 ... repeats {
                x1.zeroGrad(); tp.weight?.zeroGrad(); weights?.zeroGrad()
                let t0 = DispatchTime.now().uptimeNanoseconds
                let out = try weights.map { try tp(x1, x2, weights: $0) } ?? tp(x1, x2)
                let t1 = DispatchTime.now().uptimeNanoseconds
                try out.backward(seed: probe)
                let t2 = DispatchTime.now().uptimeNanoseconds
                if r > 0 { forward.append(Double(t1 - t0) / 1e9); backward.append(Double(t2 - t1) / 1e9) }   // r = 0 warms up
            }
            return Timing(forwardSeconds: TensorProductBenchmark.median(forward), backwardSeconds: TensorProductBenchmark.median(backward))
        }
        let shared = try time(nil)
        let edgeTiming = perEdge ? try time(Tensor<Float>.randomNormal([edges, tp.weightCount], seed: seed + 1, requiresGrad: true)) : nil
        let flops = try tp.forwardFlopsPerEdge()
        return FullyConnectedTensorProductBenchmark(
            irreps1: irreps.description, irreps2: sh.irreps.description, irrepsOut: irreps.description,
            edges: edges, repeats: repeats, paths: tp.paths.count, weightCount: tp.weightCount,
            shared: shared, perEdge: edgeTiming, productFlopsPerEdge: flops.products, mixingFlopsPerEdge: flops.mixing,
            sgemmGflops: TensorProductBenchmark.sgemmRate())
    }
}
