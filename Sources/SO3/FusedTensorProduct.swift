// The fused channel-wise ("uvu") tensor product kernel behind `ChannelwiseTensorProduct`: one
// Autograd op with a hand-written backward instead of ~5 generic ops per CG path. Per edge and path
// it contracts the sparse real CG tensor with x2 once (t[m1, M] = Σ_m2 C[M,m1,m2] x2[m2], over the
// non-zeros only), then applies t to every channel of x1, 8 edges at a time (x1 is gathered into
// [m1][u][edge] scratch so the innermost loop is contiguous and vectorises even for u = 8), and
// scales by the per-edge weight while writing back. Edges are independent in both directions (every gradient of x1, x2
// and the weights belongs to one edge), so chunks of edges run in parallel with no reduction.
import Foundation
import Autograd

/// Flat, precomputed description of all paths of a channel-wise product: offsets into the rows
/// of x1, x2, weights and output, and per path the distinct (m1, M) pairs of its CG tensor, each
/// with the (m2, coefficient) non-zeros that feed it. Coefficients already carry the
/// 1/√(paths into the same output irrep) normalisation.
struct FusedTensorProductPlan: Sendable {
    let dim1: Int, dim2: Int, dimOut: Int, weightCount: Int
    // Per path.
    let x1Offset: [Int], mul: [Int], d1: [Int], x2Offset: [Int], outOffset: [Int], dL: [Int], wOffset: [Int]
    /// Path p owns pairs pairStart[p] ..< pairStart[p + 1].
    let pairStart: [Int]
    let pairM1: [Int], pairM: [Int]
    /// Pair k owns non-zeros nzStart[k] ..< nzStart[k + 1].
    let nzStart: [Int]
    let nzM2: [Int]
    let nzValue: [Double]
    /// The distinct x1 entries the paths read (offset, mul, 2l+1), for the gathers to and from the blocked layout.
    let entries: [(offset: Int, mul: Int, d: Int)]
    /// Largest (2L+1)·mul and pair count of a path: per-worker scratch sizes.
    let maxBlock: Int, maxPairs: Int

    /// Floating-point operations of one forward pass per edge as the kernel executes them:
    /// 2 per CG non-zero (t = C·x2), 2 per (pair, channel) (the axpys), 1 per output (weight).
    let forwardFlopsPerEdge: Double
    /// The conventional sparse count: 2 per CG non-zero per channel, plus the weight multiply.
    let sparseFlopsPerEdge: Double
    /// Backward as executed: the forward product again (for the weight gradient), 2·(2L+1)·mul
    /// for gw, (2L+1)·mul for w·g, 4 per (pair, channel) for the x1 axpy and the t dot product, and
    /// 2 per CG non-zero for x2.
    let backwardFlopsPerEdge: Double

    init(irreps1: Irreps, irreps2: Irreps, paths: [TensorProductPath]) throws {
        let s1 = irreps1.slices, s2 = irreps2.slices
        var fan: [Irrep: Int] = [:]
        for p in paths { fan[p.output, default: 0] += 1 }
        var x1o: [Int] = [], mu: [Int] = [], d1s: [Int] = [], x2o: [Int] = [], oo: [Int] = [], dls: [Int] = [], wo: [Int] = []
        var ps = [0], pm1: [Int] = [], pM: [Int] = [], nzs = [0], nm2: [Int] = [], nv: [Double] = []
        var out = 0, w = 0, maxBlock = 0, maxPairs = 0, fwd = 0.0, sparse = 0.0, bwd = 0.0
        for p in paths {
            let l1 = irreps1.entries[p.input1].irrep.l, l2 = irreps2.entries[p.input2].irrep.l, L = p.output.l
            let c = try ClebschGordan.real(l1, l2, L)
            let scale = 1 / Double(fan[p.output]!).squareRoot()
            x1o.append(s1[p.input1].lowerBound); mu.append(p.mul); d1s.append(2 * l1 + 1)
            x2o.append(s2[p.input2].lowerBound); oo.append(out); dls.append(2 * L + 1); wo.append(w)
            // Group the non-zeros by (m1, M); nonZeros come in dense (M, m1, m2) order.
            var groups: [Int: [(m2: Int, v: Double)]] = [:]
            var order: [Int] = []
            for e in c.nonZeros {
                let key = e.m1 * (2 * L + 1) + e.M
                if groups[key] == nil { order.append(key) }
                groups[key, default: []].append((e.m2, e.value * scale))
            }
            for key in order {
                pm1.append(key / (2 * L + 1)); pM.append(key % (2 * L + 1))
                for (m2, v) in groups[key]! { nm2.append(m2); nv.append(v) }
                nzs.append(nm2.count)
            }
            ps.append(pm1.count)
            maxBlock = max(maxBlock, p.mul * (2 * L + 1)); maxPairs = max(maxPairs, order.count)
            fwd += Double(2 * c.nonZeros.count + 2 * order.count * p.mul + p.mul * (2 * L + 1))
            sparse += Double(2 * c.nonZeros.count * p.mul + p.mul * (2 * L + 1))
            bwd += Double(4 * c.nonZeros.count + 6 * order.count * p.mul + 3 * p.mul * (2 * L + 1))
            out += p.mul * (2 * L + 1); w += p.mul
        }
        var seen = Set<Int>(), ents: [(offset: Int, mul: Int, d: Int)] = []
        for p in paths where seen.insert(p.input1).inserted {
            ents.append((s1[p.input1].lowerBound, p.mul, irreps1.entries[p.input1].irrep.dim))
        }
        entries = ents
        dim1 = irreps1.dim; dim2 = irreps2.dim; dimOut = out; weightCount = w
        x1Offset = x1o; mul = mu; d1 = d1s; x2Offset = x2o; outOffset = oo; dL = dls; wOffset = wo
        pairStart = ps; pairM1 = pm1; pairM = pM; nzStart = nzs; nzM2 = nm2; nzValue = nv
        self.maxBlock = max(maxBlock, 1); self.maxPairs = max(maxPairs, 1)
        forwardFlopsPerEdge = fwd; sparseFlopsPerEdge = sparse; backwardFlopsPerEdge = bwd
    }
}

/// Splits `blocks` edge blocks into one contiguous range per worker and runs `body` on each;
/// every range writes only its own edges' rows, so no reduction is needed.
@inline(__always)
private func forEdgeChunks(_ blocks: Int, _ body: (Range<Int>) -> Void) {
    let chunks = min(max(Parallel.workers, 1), blocks)
    if chunks <= 1 {
        if blocks > 0 { body(0 ..< blocks) }
        return
    }
    DispatchQueue.concurrentPerform(iterations: chunks) { c in
        body(blocks * c / chunks ..< blocks * (c + 1) / chunks)
    }
}

// Edges are handled in blocks of B = 8 (a literal in each kernel so the compiler unrolls it):
// scratch is laid out [m][u][edge], so the innermost loops run over 8 edges with a per-edge t,
// contiguous and vectorisable even for the small multiplicities (u = 8) of the high-l entries.

/// Gathers the x1 rows of edges e0 ..< e0+nb into [m1][u][b] per entry (b < 8; missing edges of
/// a tail block are zero).
@inline(__always)
private func gatherBlock<T: Scalar>(_ plan: FusedTensorProductPlan, _ x1: UnsafePointer<T>, _ e0: Int, _ nb: Int, _ dst: UnsafeMutablePointer<T>) {
    let B = 8
    if nb < B { dst.update(repeating: 0, count: plan.dim1 * B) }
    for b in 0 ..< nb {
        let row = x1 + (e0 + b) * plan.dim1
        for (off, u, d) in plan.entries {
            for c in 0 ..< u { for m in 0 ..< d { dst[(off + m * u + c) * B + b] = row[off + c * d + m] } }
        }
    }
}

/// t[k][b] = Σ C·x2 for the pairs of path p and each edge of the block.
@inline(__always)
private func contractX2Block<T: Scalar>(_ plan: FusedTensorProductPlan, _ coef: UnsafePointer<T>, _ p: Int, _ x2: UnsafePointer<T>, _ e0: Int, _ nb: Int, _ t: UnsafeMutablePointer<T>) {
    let B = 8, base = plan.pairStart[p], end = plan.pairStart[p + 1], x2o = plan.x2Offset[p]
    if nb < B { t.update(repeating: 0, count: (end - base) * B) }
    for b in 0 ..< nb {
        let x2r = x2 + (e0 + b) * plan.dim2 + x2o
        for k in base ..< end {
            var s: T = 0
            for z in plan.nzStart[k] ..< plan.nzStart[k + 1] { s += coef[z] * x2r[plan.nzM2[z]] }
            t[(k - base) * B + b] = s
        }
    }
}

/// y[M][u][b] = Σ_k [M_k = M] t[k][b] x1[m1_k][u][b]: the unweighted product of path p.
@inline(__always)
private func pathProductBlock<T: Scalar>(_ plan: FusedTensorProductPlan, _ p: Int, _ x1B: UnsafePointer<T>, _ t: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>) {
    let B = 8, u = plan.mul[p], dL = plan.dL[p], off = plan.x1Offset[p], base = plan.pairStart[p]
    y.update(repeating: 0, count: u * dL * B)
    for k in base ..< plan.pairStart[p + 1] {
        let tk = t + (k - base) * B
        let t0 = tk[0], t1 = tk[1], t2 = tk[2], t3 = tk[3], t4 = tk[4], t5 = tk[5], t6 = tk[6], t7 = tk[7]
        var src = x1B + (off + plan.pairM1[k] * u) * B, dst = y + plan.pairM[k] * u * B
        for _ in 0 ..< u {
            dst[0] += t0 * src[0]; dst[1] += t1 * src[1]; dst[2] += t2 * src[2]; dst[3] += t3 * src[3]
            dst[4] += t4 * src[4]; dst[5] += t5 * src[5]; dst[6] += t6 * src[6]; dst[7] += t7 * src[7]
            src += B; dst += B
        }
    }
}

/// Per-worker scratch, allocated once per chunk of edges.
private struct BlockScratch<T: Scalar> {
    let x1B, gx1B, y, gy, t, gt: UnsafeMutablePointer<T>
    /// The CG coefficients converted to T once per chunk (no conversion in the loops).
    let coef: UnsafeMutablePointer<T>
    init(_ plan: FusedTensorProductPlan) {
        let B = 8
        x1B = .allocate(capacity: max(plan.dim1, 1) * B); gx1B = .allocate(capacity: max(plan.dim1, 1) * B)
        y = .allocate(capacity: plan.maxBlock * B); gy = .allocate(capacity: plan.maxBlock * B)
        t = .allocate(capacity: plan.maxPairs * B); gt = .allocate(capacity: B)
        coef = .allocate(capacity: max(plan.nzValue.count, 1))
        for z in 0 ..< plan.nzValue.count { coef[z] = T(plan.nzValue[z]) }
    }
    func free() { x1B.deallocate(); gx1B.deallocate(); y.deallocate(); gy.deallocate(); t.deallocate(); gt.deallocate(); coef.deallocate() }
}

@_specialize(where T == Float)
@_specialize(where T == Double)
func fusedTensorProductForward<T: Scalar>(_ plan: FusedTensorProductPlan, edges: Int,
                                          x1: UnsafePointer<T>, x2: UnsafePointer<T>, w: UnsafePointer<T>, out: UnsafeMutablePointer<T>) {
    let B = 8, blocks = (edges + B - 1) / B
    forEdgeChunks(blocks) { range in
        let s = BlockScratch<T>(plan)
        defer { s.free() }
        for blk in range {
            let e0 = blk * B, nb = min(B, edges - e0)
            gatherBlock(plan, x1, e0, nb, s.x1B)
            for p in 0 ..< plan.mul.count {
                contractX2Block(plan, s.coef, p, x2, e0, nb, s.t)
                pathProductBlock(plan, p, s.x1B, s.t, s.y)
                let u = plan.mul[p], dL = plan.dL[p]
                let stride = u &* B
                for b in 0 ..< nb {
                    var o = out + (e0 + b) * plan.dimOut + plan.outOffset[p]
                    let wp = w + (e0 + b) * plan.weightCount + plan.wOffset[p]
                    var yc = UnsafePointer(s.y + b)
                    for c in 0 ..< u {
                        let wc = wp[c]
                        var yi = yc
                        for m in 0 ..< dL { o[m] = wc * yi.pointee; yi += stride }
                        o += dL; yc += B
                    }
                }
            }
        }
    }
}

/// Gradients of one backward pass, each a full [edges, dim] array (written, not accumulated).
@_specialize(where T == Float)
@_specialize(where T == Double)
func fusedTensorProductBackward<T: Scalar>(_ plan: FusedTensorProductPlan, edges: Int,
                                           x1: UnsafePointer<T>, x2: UnsafePointer<T>, w: UnsafePointer<T>, gOut: UnsafePointer<T>,
                                           gx1: UnsafeMutablePointer<T>, gx2: UnsafeMutablePointer<T>, gw: UnsafeMutablePointer<T>) {
    let B = 8, blocks = (edges + B - 1) / B
    forEdgeChunks(blocks) { range in
        let s = BlockScratch<T>(plan)
        defer { s.free() }
        for blk in range {
            let e0 = blk * B, nb = min(B, edges - e0)
            gatherBlock(plan, x1, e0, nb, s.x1B)
            s.gx1B.update(repeating: 0, count: plan.dim1 * B)
            for b in 0 ..< nb { (gx2 + (e0 + b) * plan.dim2).update(repeating: 0, count: plan.dim2) }
            for p in 0 ..< plan.mul.count {
                let u = plan.mul[p], dL = plan.dL[p], off = plan.x1Offset[p], base = plan.pairStart[p], x2o = plan.x2Offset[p]
                contractX2Block(plan, s.coef, p, x2, e0, nb, s.t)
                pathProductBlock(plan, p, s.x1B, s.t, s.y)
                // gw[u] = Σ_M g[u,M] y[u,M]; gy = w·g in [M][u][b] (zero for missing edges).
                if nb < B { s.gy.update(repeating: 0, count: u * dL * B) }
                for b in 0 ..< nb {
                    let g = gOut + (e0 + b) * plan.dimOut + plan.outOffset[p]
                    let wp = w + (e0 + b) * plan.weightCount + plan.wOffset[p], gwp = gw + (e0 + b) * plan.weightCount + plan.wOffset[p]
                    for c in 0 ..< u {
                        var acc: T = 0
                        let wc = wp[c]
                        for m in 0 ..< dL {
                            let gv = g[c * dL + m], i = (m * u + c) * B + b
                            acc += gv * s.y[i]
                            s.gy[i] = wc * gv
                        }
                        gwp[c] = acc
                    }
                }
                for k in base ..< plan.pairStart[p + 1] {
                    let tk = s.t + (k - base) * B
                    let t0 = tk[0], t1 = tk[1], t2 = tk[2], t3 = tk[3], t4 = tk[4], t5 = tk[5], t6 = tk[6], t7 = tk[7]
                    var gy = UnsafePointer(s.gy + plan.pairM[k] * u * B)
                    let start = (off + plan.pairM1[k] * u) * B
                    var xs = UnsafePointer(s.x1B + start), gxs = s.gx1B + start
                    var a0: T = 0, a1: T = 0, a2: T = 0, a3: T = 0, a4: T = 0, a5: T = 0, a6: T = 0, a7: T = 0
                    for _ in 0 ..< u {
                        gxs[0] += t0 * gy[0]; gxs[1] += t1 * gy[1]; gxs[2] += t2 * gy[2]; gxs[3] += t3 * gy[3]
                        gxs[4] += t4 * gy[4]; gxs[5] += t5 * gy[5]; gxs[6] += t6 * gy[6]; gxs[7] += t7 * gy[7]
                        a0 += gy[0] * xs[0]; a1 += gy[1] * xs[1]; a2 += gy[2] * xs[2]; a3 += gy[3] * xs[3]
                        a4 += gy[4] * xs[4]; a5 += gy[5] * xs[5]; a6 += gy[6] * xs[6]; a7 += gy[7] * xs[7]
                        gy += B; xs += B; gxs += B
                    }
                    let gt = s.gt
                    gt[0] = a0; gt[1] = a1; gt[2] = a2; gt[3] = a3; gt[4] = a4; gt[5] = a5; gt[6] = a6; gt[7] = a7
                    for b in 0 ..< nb {
                        let gtb = gt[b]
                        let gx2r = gx2 + (e0 + b) * plan.dim2 + x2o
                        for z in plan.nzStart[k] ..< plan.nzStart[k + 1] { gx2r[plan.nzM2[z]] += s.coef[z] * gtb }
                    }
                }
            }
            // Back to [u][m1] per edge; entries no path reads keep zero gradient.
            for b in 0 ..< nb {
                let gx1r = gx1 + (e0 + b) * plan.dim1
                gx1r.update(repeating: 0, count: plan.dim1)
                for (off, u, d) in plan.entries {
                    for c in 0 ..< u { for m in 0 ..< d { gx1r[off + c * d + m] = s.gx1B[(off + m * u + c) * B + b] } }
                }
            }
        }
    }
}

extension ChannelwiseTensorProduct {
    /// The fused op: values from the forward kernel, one graph node whose backward runs the
    /// backward kernel once and adds into whichever inputs require gradients.
    func fusedProduct(_ x1: Tensor<T>, _ x2: Tensor<T>, weights: Tensor<T>) throws -> Tensor<T> {
        let plan = self.plan, edges = x1.shape[0]
        guard !plan.mul.isEmpty else { return Tensor<T>(zeros: [edges, 0]) }
        // Every output element is written by the kernel: no zero fill.
        var out = [T](unsafeUninitializedCapacity: edges * plan.dimOut) { _, n in n = edges * plan.dimOut }
        x1.data.withUnsafeBufferPointer { a in x2.data.withUnsafeBufferPointer { b in weights.data.withUnsafeBufferPointer { w in
            out.withUnsafeMutableBufferPointer { o in
                guard let ob = o.baseAddress, let ab = a.baseAddress, let bb = b.baseAddress, let wb = w.baseAddress else { return }
                fusedTensorProductForward(plan, edges: edges, x1: ab, x2: bb, w: wb, out: ob)
            }
        } } }
        return try Tensor.recorded(out, shape: [edges, plan.dimOut], op: "ChannelwiseTensorProduct", inputs: [x1, x2, weights]) { g in
            guard edges > 0, !plan.mul.isEmpty else { return }
            var gx1 = [T](repeating: 0, count: edges * plan.dim1)
            var gx2 = [T](repeating: 0, count: edges * plan.dim2)
            var gw = [T](repeating: 0, count: edges * plan.weightCount)
            x1.data.withUnsafeBufferPointer { a in x2.data.withUnsafeBufferPointer { b in weights.data.withUnsafeBufferPointer { w in
                gx1.withUnsafeMutableBufferPointer { ga in gx2.withUnsafeMutableBufferPointer { gb in gw.withUnsafeMutableBufferPointer { gwb in
                    fusedTensorProductBackward(plan, edges: edges, x1: a.baseAddress!, x2: b.baseAddress!, w: w.baseAddress!,
                                               gOut: g.baseAddress!, gx1: ga.baseAddress!, gx2: gb.baseAddress!, gw: gwb.baseAddress!)
                } } }
            } } }
            for (input, grad) in [(x1, gx1), (x2, gx2), (weights, gw)] {
                input.accumulateGradient { acc in
                    grad.withUnsafeBufferPointer { src in for i in 0 ..< acc.count { acc[i] += src[i] } }
                }
            }
        }
    }
}
