// The fused channel-wise ("uvu") tensor product kernel behind `ChannelwiseTensorProduct`: one
// Autograd op with a hand-written backward instead of ~5 generic ops per CG path.
//
// Why this shape: for one edge, every path that reads the same x1 entry (l1, u channels) is a
// linear map of that entry's rows, y[u, (path, M)] = Σ_m1 x1[u, m1] T[m1, (path, M)], with
// T = C·x2 contracted once per edge from the sparse CG non-zeros and shared by all u channels.
// So per edge and x1 entry the product is a small dense GEMM [u × (2l1+1)] · [(2l1+1) × N] (N = Σ
// over the entry's paths of 2L+1, padded to the SIMD width), run with SIMD accumulators in
// registers; the weights are applied while each path's output block is written front to back,
// one or two vector stores per (u, path) segment. Vector accesses of a segment are at most twice
// its width, so they spill only into the next channel's segment of the same path, never past the
// block (make test runs these kernels under AddressSanitizer). Edges are independent in both
// directions (every gradient of x1, x2 and the weights belongs to one edge), so contiguous ranges
// of edges run in parallel with no reduction. docs/benchmarks-so3.md has the measurements and
// docs/so3.md the alternatives weighed (SO(2)/eSCN rotation).
import Foundation
import Autograd

/// Flat, precomputed description of a channel-wise product: the x1 entries ("groups") with the
/// paths that read them, the layout of the per-edge T matrices, and the sparse instructions that
/// fill T from x2. Coefficients already carry the 1/√(paths into the same output irrep)
/// normalisation.
package struct FusedTensorProductPlan: Sendable {
    static let lanes = 8

    package let dim1: Int, dim2: Int, dimOut: Int, weightCount: Int
    /// Output rows laid out [M][weight index] (all paths share one L) instead of per path [u][M].
    let mMajor: Bool
    // Per path.
    let x2Offset: [Int], outOffset: [Int], dL: [Int], wOffset: [Int], mul: [Int]
    /// Column of the path's first M inside its group's T rows.
    let column: [Int]
    /// Per x1 entry read by some path: offset in the x1 row, multiplicity, 2l1+1, its paths (in
    /// increasing column order), columns N and SIMD vectors per T row (N padded), offset of its T
    /// matrix [2l1+1][vectors] in the per-edge T buffer, in vectors.
    let groups: [(x1Offset: Int, mul: Int, d1: Int, paths: [Int], columns: Int, vectors: Int, tOffset: Int)]
    /// Size of the per-edge T buffer in SIMD vectors; widest T row in vectors.
    let tVectors: Int, maxVectors: Int
    /// The fill instructions and index tables as raw memory, built here once.
    let tables: FusedTensorProductTables

    /// Floating-point operations of one forward pass per edge as the kernel executes them:
    /// 2 per CG non-zero (T = C·x2), 2 per (channel, m1, column) of the row products (padding not
    /// counted), 1 per output (weight).
    package let forwardFlopsPerEdge: Double
    /// The conventional sparse count: 2 per CG non-zero per channel, plus the weight multiply.
    package let sparseFlopsPerEdge: Double
    /// Backward as executed when x1 and the weights need gradients and x2 does not (edge
    /// harmonics): T and the row products again (for the weight gradient), 2 per output for gw and
    /// 1 for w·g, the row products once more for the x1 gradient. An x2 gradient adds the row
    /// products a third time (the T gradient) and 2 per CG non-zero.
    package let backwardFlopsPerEdge: Double

    init(irreps1: Irreps, irreps2: Irreps, paths: [TensorProductPath], mMajorOutput: Bool = false) throws {
        let s1 = irreps1.slices, s2 = irreps2.slices, lanes = Self.lanes
        if mMajorOutput, let l = paths.first?.output.l, paths.contains(where: { $0.output.l != l }) {
            throw SO3Error.badIrrepsString(irreps1.description, reason: "an m-major tensor-product output needs one output L for all paths")
        }
        mMajor = mMajorOutput
        var fan: [Irrep: Int] = [:]
        for p in paths { fan[p.output, default: 0] += 1 }
        var x2o: [Int] = [], oo: [Int] = [], dls: [Int] = [], wo: [Int] = [], mu: [Int] = []
        var out = 0, w = 0
        var groupOf: [Int: Int] = [:], groupPaths: [[Int]] = [], groupEntry: [Int] = []
        for (i, p) in paths.enumerated() {
            let L = p.output.l
            x2o.append(s2[p.input2].lowerBound); oo.append(out); dls.append(2 * L + 1); wo.append(w); mu.append(p.mul)
            out += p.mul * (2 * L + 1); w += p.mul
            if let g = groupOf[p.input1] { groupPaths[g].append(i) } else {
                groupOf[p.input1] = groupPaths.count; groupPaths.append([i]); groupEntry.append(p.input1)
            }
        }
        var col = [Int](repeating: 0, count: paths.count)
        var gs: [(x1Offset: Int, mul: Int, d1: Int, paths: [Int], columns: Int, vectors: Int, tOffset: Int)] = []
        var tv = 0, maxV = 1
        for (g, ps) in groupPaths.enumerated() {
            let entry = irreps1.entries[groupEntry[g]]
            var n = 0
            for p in ps { col[p] = n; n += dls[p] }
            let v = (n + lanes - 1) / lanes
            gs.append((s1[groupEntry[g]].lowerBound, entry.mul, entry.irrep.dim, ps, n, v, tv))
            tv += entry.irrep.dim * v; maxV = max(maxV, v)
        }
        // Fill instructions, grouped by T entry.
        var targets: [Int] = [], nzs = [0], nx2: [Int] = [], nv: [Double] = []
        var fwd = 0.0, sparse = 0.0, bwd = 0.0
        for (g, ps) in groupPaths.enumerated() {
            let grp = gs[g]
            for p in ps {
                let path = paths[p]
                let l1 = irreps1.entries[path.input1].irrep.l, l2 = irreps2.entries[path.input2].irrep.l, L = path.output.l
                let c = try ClebschGordan.real(l1, l2, L)
                let scale = 1 / Double(fan[path.output]!).squareRoot()
                var byTarget: [Int: [(Int, Double)]] = [:], order: [Int] = []
                for e in c.nonZeros {
                    let t = grp.tOffset * lanes + e.m1 * grp.vectors * lanes + col[p] + e.M
                    if byTarget[t] == nil { order.append(t) }
                    byTarget[t, default: []].append((x2o[p] + e.m2, e.value * scale))
                }
                for t in order {
                    targets.append(t)
                    for (i, v) in byTarget[t]! { nx2.append(i); nv.append(v) }
                    nzs.append(nx2.count)
                }
                let u = Double(path.mul), d = Double(2 * L + 1), nz = Double(c.nonZeros.count)
                sparse += 2 * nz * u + u * d
                fwd += 2 * nz + 2 * u * Double(2 * l1 + 1) * d + u * d
                bwd += 2 * nz + 2 * u * Double(2 * l1 + 1) * d + 3 * u * d + 2 * u * Double(2 * l1 + 1) * d
            }
        }
        dim1 = irreps1.dim; dim2 = irreps2.dim; dimOut = out; weightCount = w
        x2Offset = x2o; outOffset = oo; dL = dls; wOffset = wo; mul = mu; column = col
        groups = gs; tVectors = tv; maxVectors = maxV
        forwardFlopsPerEdge = fwd; sparseFlopsPerEdge = sparse; backwardFlopsPerEdge = bwd
        tables = FusedTensorProductTables(targets: targets, nzStart: nzs, nzX2: nx2, nzValue: nv, groups: gs,
                                          paths: (0 ..< paths.count).map { [dls[$0], oo[$0], wo[$0], col[$0]] })
    }
}

/// A plan's tables as raw memory, built once per plan rather than per call, so the kernels' loops
/// carry no bounds checks or reference counting. T is filled by one instruction per structurally
/// non-zero entry (its first two CG terms: T[target] = c0·x2[i0] + c1·x2[i1], c1 = 0 for single
/// terms), then the `extra` terms are added; every other T entry stays 0. Coefficients are kept
/// in Double and in Float.
final class FusedTensorProductTables: @unchecked Sendable {
    let fillTarget: UnsafeMutablePointer<Int32>, fillI0: UnsafeMutablePointer<Int32>, fillI1: UnsafeMutablePointer<Int32>
    let fillCount: Int
    let extraTarget: UnsafeMutablePointer<Int32>, extraI: UnsafeMutablePointer<Int32>
    let extraCount: Int
    /// [c0 (fillCount) | c1 (fillCount) | extra (extraCount)].
    let coefficients: [Double]
    private let doubleCoefficients: UnsafeMutablePointer<Double>, floatCoefficients: UnsafeMutablePointer<Float>
    /// Per group (8 values): x1 offset, mul, 2l1+1, vectors per T row, columns, T offset (vectors),
    /// first and end index into `groupPaths`. Per path (4 values): 2L+1, output offset, weight
    /// offset, column.
    let group: UnsafeMutablePointer<Int>, groupPaths: UnsafeMutablePointer<Int>, path: UnsafeMutablePointer<Int>
    let groupCount: Int

    /// `targets[k]` (a scalar index into the T buffer) = Σ over z in nzStart[k] ..< nzStart[k+1] of
    /// nzValue[z] · x2[nzX2[z]].
    init(targets: [Int], nzStart: [Int], nzX2: [Int], nzValue: [Double],
         groups: [(x1Offset: Int, mul: Int, d1: Int, paths: [Int], columns: Int, vectors: Int, tOffset: Int)], paths: [[Int]]) {
        var ft: [Int32] = [], f0: [Int32] = [], f1: [Int32] = [], c0: [Double] = [], c1: [Double] = []
        var et: [Int32] = [], ei: [Int32] = [], ec: [Double] = []
        for k in targets.indices {
            let z0 = nzStart[k], z1 = nzStart[k + 1]
            ft.append(Int32(targets[k]))
            f0.append(Int32(nzX2[z0])); c0.append(nzValue[z0])
            if z1 - z0 >= 2 { f1.append(Int32(nzX2[z0 + 1])); c1.append(nzValue[z0 + 1]) } else { f1.append(Int32(nzX2[z0])); c1.append(0) }
            for z in min(z0 + 2, z1) ..< z1 { et.append(Int32(targets[k])); ei.append(Int32(nzX2[z])); ec.append(nzValue[z]) }
        }
        func copy<E>(_ a: [E]) -> UnsafeMutablePointer<E> {
            let p = UnsafeMutablePointer<E>.allocate(capacity: max(a.count, 1))
            p.initialize(from: a, count: a.count)
            return p
        }
        fillTarget = copy(ft); fillI0 = copy(f0); fillI1 = copy(f1); fillCount = ft.count
        extraTarget = copy(et); extraI = copy(ei); extraCount = et.count
        coefficients = c0 + c1 + ec
        doubleCoefficients = copy(coefficients); floatCoefficients = copy(coefficients.map(Float.init))
        var gt: [Int] = [], gp: [Int] = []
        for g in groups {
            gt += [g.x1Offset, g.mul, g.d1, g.vectors, g.columns, g.tOffset, gp.count, gp.count + g.paths.count]
            gp += g.paths
        }
        group = copy(gt); groupPaths = copy(gp); groupCount = groups.count
        path = copy(paths.flatMap { $0 })
    }

    deinit {
        fillTarget.deallocate(); fillI0.deallocate(); fillI1.deallocate(); extraTarget.deallocate(); extraI.deallocate()
        doubleCoefficients.deallocate(); floatCoefficients.deallocate()
        group.deallocate(); groupPaths.deallocate(); path.deallocate()
    }

    /// The coefficients in T's precision, when a converted copy is kept (Float and Double).
    func coefficients<T: Scalar>(as _: T.Type) -> UnsafePointer<T>? {
        if T.self == Double.self { return UnsafeRawPointer(doubleCoefficients).assumingMemoryBound(to: T.self) }
        if T.self == Float.self { return UnsafeRawPointer(floatCoefficients).assumingMemoryBound(to: T.self) }
        return nil
    }
}

/// Per-worker buffers: the T matrices of one edge and their gradient, the rows y (and gy) of all
/// channels of one group with room for a 16-wide access past the end, and lane masks; plus the
/// plan's tables (shared, built once) with the coefficients in T's precision.
private final class KernelScratch<T: Scalar> {
    typealias V = SIMD8<T>
    let t: UnsafeMutablePointer<V>, gt: UnsafeMutablePointer<V>, rows: UnsafeMutablePointer<V>, gRows: UnsafeMutablePointer<V>
    let tables: FusedTensorProductTables
    let fillTarget: UnsafeMutablePointer<Int32>, fillI0: UnsafeMutablePointer<Int32>, fillI1: UnsafeMutablePointer<Int32>
    let fillCount: Int
    let extraTarget: UnsafeMutablePointer<Int32>, extraI: UnsafeMutablePointer<Int32>
    let extraCount: Int
    let group: UnsafeMutablePointer<Int>, groupPaths: UnsafeMutablePointer<Int>, path: UnsafeMutablePointer<Int>
    let groupCount: Int
    /// c0, c1 and the extra coefficients in T (the tables' copy, or `converted` for other T).
    let fillC0: UnsafePointer<T>, fillC1: UnsafePointer<T>, extraC: UnsafePointer<T>
    private let converted: UnsafeMutablePointer<T>?
    /// dropLanes[d]: lanes d ..< 16 set (built once; building it per use was a scalar loop); the
    /// same for 4 and 8 lanes.
    let dropLanes: UnsafeMutablePointer<SIMDMask<SIMD16<T>.MaskStorage>>
    let dropLanes4: UnsafeMutablePointer<SIMDMask<SIMD4<T>.MaskStorage>>
    let dropLanes8: UnsafeMutablePointer<SIMDMask<SIMD8<T>.MaskStorage>>

    init(_ plan: FusedTensorProductPlan) {
        let tCount = max(plan.tVectors, 1)
        t = .allocate(capacity: tCount); t.initialize(repeating: V(), count: tCount)
        gt = .allocate(capacity: tCount); gt.initialize(repeating: V(), count: tCount)
        let rowsCount = (plan.groups.map { $0.mul * ($0.vectors + 2) }.max() ?? 0) + 2
        rows = .allocate(capacity: rowsCount); rows.initialize(repeating: V(), count: rowsCount)
        gRows = .allocate(capacity: rowsCount); gRows.initialize(repeating: V(), count: rowsCount)
        let tb = plan.tables
        tables = tb
        fillTarget = tb.fillTarget; fillI0 = tb.fillI0; fillI1 = tb.fillI1; fillCount = tb.fillCount
        extraTarget = tb.extraTarget; extraI = tb.extraI; extraCount = tb.extraCount
        group = tb.group; groupPaths = tb.groupPaths; path = tb.path; groupCount = tb.groupCount
        let coefficients: UnsafePointer<T>
        if let c = tb.coefficients(as: T.self) {
            coefficients = c; converted = nil
        } else {
            let c = UnsafeMutablePointer<T>.allocate(capacity: max(tb.coefficients.count, 1))
            c.initialize(from: tb.coefficients.map { T($0) }, count: tb.coefficients.count)
            coefficients = UnsafePointer(c); converted = c
        }
        fillC0 = coefficients; fillC1 = coefficients + fillCount; extraC = coefficients + 2 * fillCount
        let laneIndex = SIMD16<T>((0 ..< 16).map { T($0) })
        dropLanes = .allocate(capacity: 17)
        for d in 0 ... 16 { dropLanes[d] = laneIndex .>= T(d) }
        dropLanes4 = .allocate(capacity: 5)
        for d in 0 ... 4 { dropLanes4[d] = SIMD4<T>(0, 1, 2, 3) .>= T(d) }
        dropLanes8 = .allocate(capacity: 9)
        for d in 0 ... 8 { dropLanes8[d] = SIMD8<T>(0, 1, 2, 3, 4, 5, 6, 7) .>= T(d) }
    }

    deinit {
        t.deallocate(); gt.deallocate(); rows.deallocate(); gRows.deallocate(); converted?.deallocate()
        dropLanes.deallocate(); dropLanes4.deallocate(); dropLanes8.deallocate()
    }

    /// T = C·x2 for one edge (only the structurally non-zero entries are written; the rest stay 0).
    @inline(__always)
    func fillT(_ x2: UnsafePointer<T>) {
        let ts = UnsafeMutableRawPointer(t).assumingMemoryBound(to: T.self)
        for k in 0 ..< fillCount {
            ts[Int(fillTarget[k])] = fillC0[k] * x2[Int(fillI0[k])] + fillC1[k] * x2[Int(fillI1[k])]
        }
        for k in 0 ..< extraCount { ts[Int(extraTarget[k])] += extraC[k] * x2[Int(extraI[k])] }
    }

    /// gx2 = Σ C·gT over the same instructions (gx2 must be zeroed by the caller).
    @inline(__always)
    func scatterGT(_ gx2: UnsafeMutablePointer<T>) {
        let gts = UnsafeMutableRawPointer(gt).assumingMemoryBound(to: T.self)
        for k in 0 ..< fillCount {
            let g = gts[Int(fillTarget[k])]
            gx2[Int(fillI0[k])] += fillC0[k] * g
            gx2[Int(fillI1[k])] += fillC1[k] * g
        }
        for k in 0 ..< extraCount { gx2[Int(extraI[k])] += extraC[k] * gts[Int(extraTarget[k])] }
    }
}

/// out[0 ..< nv] = Σ_m x[m] · t[m][0 ..< nv]: one channel's row through the group's T, with up
/// to four SIMD accumulators held in registers per pass.
@inline(__always)
private func rowProduct<T: Scalar>(_ x: UnsafePointer<T>, _ d1: Int, _ t: UnsafePointer<SIMD8<T>>, _ nv: Int, _ out: UnsafeMutablePointer<SIMD8<T>>) {
    typealias V = SIMD8<T>
    var j = 0
    while j + 4 <= nv {
        var a0 = V(), a1 = V(), a2 = V(), a3 = V()
        var tp = t + j
        for m in 0 ..< d1 {
            let s = V(repeating: x[m])
            a0 = a0.addingProduct(s, tp[0]); a1 = a1.addingProduct(s, tp[1])
            a2 = a2.addingProduct(s, tp[2]); a3 = a3.addingProduct(s, tp[3])
            tp += nv
        }
        out[j] = a0; out[j + 1] = a1; out[j + 2] = a2; out[j + 3] = a3
        j += 4
    }
    if j + 2 <= nv {
        var a0 = V(), a1 = V()
        var tp = t + j
        for m in 0 ..< d1 {
            let s = V(repeating: x[m])
            a0 = a0.addingProduct(s, tp[0]); a1 = a1.addingProduct(s, tp[1])
            tp += nv
        }
        out[j] = a0; out[j + 1] = a1
        j += 2
    }
    if j < nv {
        var a0 = V()
        var tp = t + j
        for m in 0 ..< d1 { a0 = a0.addingProduct(V(repeating: x[m]), tp[0]); tp += nv }
        out[j] = a0
    }
}

/// rowProduct for two channels at once (rows x and x + d1 into out and out + nv): twice the
/// independent accumulators, so the FMA latency chains of small d1 overlap.
@inline(__always)
private func rowProduct2<T: Scalar>(_ x: UnsafePointer<T>, _ d1: Int, _ t: UnsafePointer<SIMD8<T>>, _ nv: Int, _ out: UnsafeMutablePointer<SIMD8<T>>) {
    typealias V = SIMD8<T>
    var j = 0
    while j + 4 <= nv {
        var a0 = V(), a1 = V(), a2 = V(), a3 = V(), b0 = V(), b1 = V(), b2 = V(), b3 = V()
        var tp = t + j
        for m in 0 ..< d1 {
            let s = V(repeating: x[m]), r = V(repeating: x[d1 + m])
            let t0 = tp[0], t1 = tp[1], t2 = tp[2], t3 = tp[3]
            a0 = a0.addingProduct(s, t0); a1 = a1.addingProduct(s, t1); a2 = a2.addingProduct(s, t2); a3 = a3.addingProduct(s, t3)
            b0 = b0.addingProduct(r, t0); b1 = b1.addingProduct(r, t1); b2 = b2.addingProduct(r, t2); b3 = b3.addingProduct(r, t3)
            tp += nv
        }
        out[j] = a0; out[j + 1] = a1; out[j + 2] = a2; out[j + 3] = a3
        out[nv + j] = b0; out[nv + j + 1] = b1; out[nv + j + 2] = b2; out[nv + j + 3] = b3
        j += 4
    }
    while j < nv {
        var a0 = V(), b0 = V()
        var tp = t + j
        for m in 0 ..< d1 {
            let t0 = tp[0]
            a0 = a0.addingProduct(V(repeating: x[m]), t0); b0 = b0.addingProduct(V(repeating: x[d1 + m]), t0)
            tp += nv
        }
        out[j] = a0; out[nv + j] = b0
        j += 1
    }
}

/// Rows of all `mul` channels of one group: out[u·nv ..< (u+1)·nv] = x[u·d1 ..< +d1] · t.
@inline(__always)
private func groupRows<T: Scalar>(_ x: UnsafePointer<T>, _ mul: Int, _ d1: Int, _ t: UnsafePointer<SIMD8<T>>, _ nv: Int, _ out: UnsafeMutablePointer<SIMD8<T>>) {
    var u = 0
    while u + 2 <= mul { rowProduct2(x + u * d1, d1, t, nv, out + u * nv); u += 2 }
    if u < mul { rowProduct(x + u * d1, d1, t, nv, out + u * nv) }
}

/// gt[m][0 ..< nv] += Σ_u x[u·d1 + m] · g[u·gStride ..< +nv]: the T gradient of one group, summed
/// over its channels with the accumulators in registers.
@inline(__always)
private func accumulateTGradient<T: Scalar>(_ x: UnsafePointer<T>, _ mul: Int, _ d1: Int, _ g: UnsafePointer<SIMD8<T>>, _ gStride: Int, _ nv: Int, _ gt: UnsafeMutablePointer<SIMD8<T>>) {
    typealias V = SIMD8<T>
    for m in 0 ..< d1 {
        let out = gt + m * nv
        var j = 0
        while j + 4 <= nv {
            var a0 = out[j], a1 = out[j + 1], a2 = out[j + 2], a3 = out[j + 3]
            var gp = g + j, xp = x + m
            for _ in 0 ..< mul {
                let s = V(repeating: xp.pointee)
                a0 = a0.addingProduct(s, gp[0]); a1 = a1.addingProduct(s, gp[1])
                a2 = a2.addingProduct(s, gp[2]); a3 = a3.addingProduct(s, gp[3])
                gp += gStride; xp += d1
            }
            out[j] = a0; out[j + 1] = a1; out[j + 2] = a2; out[j + 3] = a3
            j += 4
        }
        while j < nv {
            var a0 = out[j]
            var gp = g + j, xp = x + m
            for _ in 0 ..< mul { a0 = a0.addingProduct(V(repeating: xp.pointee), gp[0]); gp += gStride; xp += d1 }
            out[j] = a0
            j += 1
        }
    }
}

/// [Σa, Σb, Σc, Σd]: four horizontal sums at once (a shuffle tree instead of four serial ones).
@inline(__always)
private func sum4<T: Scalar>(_ a: SIMD8<T>, _ b: SIMD8<T>, _ c: SIMD8<T>, _ d: SIMD8<T>) -> SIMD4<T> {
    let ab = SIMD8(lowHalf: a.lowHalf + a.highHalf, highHalf: b.lowHalf + b.highHalf)
    let cd = SIMD8(lowHalf: c.lowHalf + c.highHalf, highHalf: d.lowHalf + d.highHalf)
    let all = SIMD8(lowHalf: ab.evenHalf + ab.oddHalf, highHalf: cd.evenHalf + cd.oddHalf)
    return all.evenHalf + all.oddHalf
}

/// One path's output block: dst[u·d ..< (u+1)·d] = w[u] · src[u·srcStride ..< +d] for u < mul.
/// Every channel but the last is written with vector stores of the next width up (4, 8, 8 + 4 or
/// 16; at most 2d) that spill into the next channel's segment, written right after.
@inline(__always)
private func scaledBlockCopy<T: Scalar>(_ dst: UnsafeMutablePointer<T>, _ src: UnsafePointer<T>, _ srcStride: Int, _ d: Int, _ w: UnsafePointer<T>, _ mul: Int) {
    var o = UnsafeMutableRawPointer(dst), y = UnsafeRawPointer(src)
    let srcBytes = srcStride * MemoryLayout<T>.stride, dstBytes = d * MemoryLayout<T>.stride
    if d == 1 {
        for u in 0 ..< mul { dst[u] = w[u] * src[u * srcStride] }
        return
    } else if d <= 4 {
        for u in 0 ..< mul - 1 { o.storeBytes(of: y.loadUnaligned(as: SIMD4<T>.self) * w[u], as: SIMD4<T>.self); o += dstBytes; y += srcBytes }
    } else if d <= 8 {
        for u in 0 ..< mul - 1 { o.storeBytes(of: y.loadUnaligned(as: SIMD8<T>.self) * w[u], as: SIMD8<T>.self); o += dstBytes; y += srcBytes }
    } else if d <= 12 {
        let tail = 8 * MemoryLayout<T>.stride
        for u in 0 ..< mul - 1 {
            let wu = w[u]
            o.storeBytes(of: y.loadUnaligned(as: SIMD8<T>.self) * wu, as: SIMD8<T>.self)
            (o + tail).storeBytes(of: (y + tail).loadUnaligned(as: SIMD4<T>.self) * wu, as: SIMD4<T>.self)
            o += dstBytes; y += srcBytes
        }
    } else if d <= 16 {
        for u in 0 ..< mul - 1 { o.storeBytes(of: y.loadUnaligned(as: SIMD16<T>.self) * w[u], as: SIMD16<T>.self); o += dstBytes; y += srcBytes }
    } else {
        scaledCopy(dst, src, d, w[0], spill: false)   // wider than any l ≤ 7 irrep: plain loops
        for u in 1 ..< mul { scaledCopy(dst + u * d, src + u * srcStride, d, w[u], spill: false) }
        return
    }
    let last = mul - 1
    scaledCopy(dst + last * d, src + last * srcStride, d, w[last], spill: false)
}

/// dst[0 ..< d] = w · src[0 ..< d]. With `spill`, one vector store of the next width up (4, 8 or
/// 16) writes past d into memory the caller overwrites later; otherwise exactly d elements.
@inline(__always)
private func scaledCopy<T: Scalar>(_ dst: UnsafeMutablePointer<T>, _ src: UnsafePointer<T>, _ d: Int, _ w: T, spill: Bool) {
    let raw = UnsafeMutableRawPointer(dst), sraw = UnsafeRawPointer(src)
    if spill && d > 1 {
        if d <= 4 {
            raw.storeBytes(of: sraw.loadUnaligned(as: SIMD4<T>.self) * w, as: SIMD4<T>.self)
        } else if d <= 8 {
            raw.storeBytes(of: sraw.loadUnaligned(as: SIMD8<T>.self) * w, as: SIMD8<T>.self)
        } else if d <= 16 {
            raw.storeBytes(of: sraw.loadUnaligned(as: SIMD16<T>.self) * w, as: SIMD16<T>.self)
        } else {
            for m in 0 ..< d { dst[m] = w * src[m] }
        }
    } else {
        for m in 0 ..< d { dst[m] = w * src[m] }
    }
}

@_specialize(where T == Float)
@_specialize(where T == Double)
package func fusedTensorProductForward<T: Scalar>(_ plan: FusedTensorProductPlan, edges: Int,
                                          x1: UnsafePointer<T>, x2: UnsafePointer<T>, w: UnsafePointer<T>, out: UnsafeMutablePointer<T>,
                                          entryMajor: Bool = false) {
    let lanes = FusedTensorProductPlan.lanes, dim1 = plan.dim1, dim2 = plan.dim2, dimOut = plan.dimOut, wCount = plan.weightCount
    let mMajor = plan.mMajor
    precondition(!(entryMajor && mMajor), "an m-major product has no entry-major layout")
    Parallel.forRanges(edges, grain: 32) { range in
        let s = KernelScratch<T>(plan)
        let rows = UnsafeRawPointer(s.rows).assumingMemoryBound(to: T.self)
        for e in range {
            s.fillT(x2 + e * dim2)
            let x1r = x1 + e * dim1, outRow = out + e * dimOut, wRow = w + e * wCount
            for gi in 0 ..< s.groupCount {
                let g = s.group + 8 * gi, x1Offset = g[0], mul = g[1], d1 = g[2], nv = g[3]
                let tg = UnsafePointer(s.t + g[5])
                // All channels' rows first, then each path's output block written front to back:
                // the row of an edge is filled sequentially (scattered partial-line stores were
                // measured ~2x slower).
                groupRows(x1r + x1Offset, mul, d1, tg, nv, s.rows)
                for k in g[6] ..< g[7] {
                    let p = s.path + 4 * s.groupPaths[k]
                    if mMajor {
                        // out[M·wCount + weight index]: consecutive channels are contiguous.
                        let d = p[0], wp = wRow + p[2]
                        for m in 0 ..< d {
                            let o = outRow + m * wCount + p[2]
                            var y = rows + p[3] + m
                            for u in 0 ..< mul { o[u] = wp[u] * y.pointee; y += nv * lanes }
                        }
                    } else if entryMajor {
                        // The path's [edges·(2L+1), mul] matrix (`EntryMajorFeatures`): row e·d + M
                        // holds the channels; the same products as `scaledBlockCopy`.
                        let d = p[0], wp = wRow + p[2], base = out + edges * p[1] + e * d * mul
                        for m in 0 ..< d {
                            let o = base + m * mul
                            var y = rows + p[3] + m
                            for u in 0 ..< mul { o[u] = y.pointee * wp[u]; y += nv * lanes }
                        }
                    } else {
                        scaledBlockCopy(outRow + p[1], rows + p[3], nv * lanes, p[0], wRow + p[2], mul)
                    }
                }
            }
        }
    }
}

/// Gradients of one backward pass, each a full [edges, dim] array (written, not accumulated); a nil
/// destination is not computed. Without gw the rows y are not recomputed, and without gx2 neither
/// the T gradient nor its scatter runs: edge harmonics (x2) and constant weights usually need
/// no gradient, and skipping them saves about half the work.
@_specialize(where T == Float)
@_specialize(where T == Double)
package func fusedTensorProductBackward<T: Scalar>(_ plan: FusedTensorProductPlan, edges: Int,
                                           x1: UnsafePointer<T>, x2: UnsafePointer<T>, w: UnsafePointer<T>, gOut: UnsafePointer<T>,
                                           gx1: UnsafeMutablePointer<T>?, gx2: UnsafeMutablePointer<T>?, gw: UnsafeMutablePointer<T>?) {
    typealias V = SIMD8<T>
    let lanes = FusedTensorProductPlan.lanes, dim1 = plan.dim1, dim2 = plan.dim2, dimOut = plan.dimOut, wCount = plan.weightCount
    let tVectors = plan.tVectors, mMajor = plan.mMajor
    guard gx1 != nil || gx2 != nil || gw != nil else { return }
    Parallel.forRanges(edges, grain: 32) { range in
        let s = KernelScratch<T>(plan)
        let rows = UnsafeRawPointer(s.rows).assumingMemoryBound(to: T.self)
        let gRows = UnsafeMutableRawPointer(s.gRows).assumingMemoryBound(to: T.self)
        for e in range {
            s.fillT(x2 + e * dim2)
            if gx2 != nil { s.gt.update(repeating: V(), count: tVectors) }
            let x1r = x1 + e * dim1, gRowOut = gOut + e * dimOut, wRow = w + e * wCount
            let gx1r = gx1.map { $0 + e * dim1 }, gwRow = gw.map { $0 + e * wCount }
            gx1r?.update(repeating: 0, count: dim1)
            for gi in 0 ..< s.groupCount {
                let g = s.group + 8 * gi, x1Offset = g[0], mul = g[1], d1 = g[2], nv = g[3], columns = g[4]
                // gy rows get two spare vectors each: a spilling store past the last path's
                // segment must not reach the next channel's row, which is already written.
                let tg = UnsafePointer(s.t + g[5]), rowLength = nv * lanes, gStride = nv + 2, gRowLength = gStride * lanes
                let xg = x1r + x1Offset
                if gwRow != nil { groupRows(xg, mul, d1, tg, nv, s.rows) }
                // Per path: gw[u] = Σ_M g·y and gy = w·g in the row layout. Spilled lanes of gy
                // are overwritten by the next path's segment; the padding is cleared below.
                for k in g[6] ..< g[7] {
                    let p = s.path + 4 * s.groupPaths[k], d = p[0], column = p[3]
                    if mMajor {
                        // g[M·wCount + weight index]; plain loops (this layout serves the fully
                        // connected product, whose time is in its mixing GEMMs).
                        let gBase = gRowOut + p[2], wp = wRow + p[2]
                        for u in 0 ..< mul {
                            var acc: T = 0
                            let y = rows + u * rowLength + column, gy = gRows + u * gRowLength + column
                            for m in 0 ..< d {
                                let gv = gBase[m * wCount + u]
                                if gwRow != nil { acc += gv * y[m] }
                                gy[m] = wp[u] * gv
                            }
                            gwRow?[p[2] + u] = acc
                        }
                        continue
                    }
                    guard let gwRow else {
                        for j in 0 ..< mul {
                            scaledCopy(gRows + column + j * gRowLength, gRowOut + p[1] + j * d, d, wRow[p[2] + j], spill: j + 1 < mul)
                        }
                        continue
                    }
                    var gp = gRowOut + p[1], y = rows + column, gy = gRows + column, wp = wRow + p[2], gwp = gwRow + p[2]
                    // (y rows are read past their end only into lanes the mask drops.)
                    if d > 1 && d <= 16 {
                        // Masked products folded to 8 lanes, four channels reduced together. Loads
                        // are 4, 8 or 16 wide (at most 2d, so they stay inside this path's block:
                        // the next channel's segment); lanes past d hold that channel's values and
                        // are selected away, not multiplied by 0, so an infinity there cannot turn
                        // this sum into NaN.
                        let drop4 = s.dropLanes4[min(d, 4)], drop8 = s.dropLanes8[min(d, 8)], drop16 = s.dropLanes[d]
                        @inline(__always) func product(_ j: Int) -> SIMD8<T> {
                            let g = UnsafeRawPointer(gp + j * d), yy = UnsafeRawPointer(y + j * rowLength)
                            let out = UnsafeMutableRawPointer(gy + j * gRowLength), wj = wp[j]
                            if d <= 4 {
                                let gv = g.loadUnaligned(as: SIMD4<T>.self)
                                out.storeBytes(of: gv * wj, as: SIMD4<T>.self)
                                return SIMD8(lowHalf: (gv * yy.loadUnaligned(as: SIMD4<T>.self)).replacing(with: 0, where: drop4), highHalf: SIMD4())
                            } else if d <= 8 {
                                let gv = g.loadUnaligned(as: SIMD8<T>.self)
                                out.storeBytes(of: gv * wj, as: SIMD8<T>.self)
                                return (gv * yy.loadUnaligned(as: SIMD8<T>.self)).replacing(with: 0, where: drop8)
                            } else {
                                let gv = g.loadUnaligned(as: SIMD16<T>.self)
                                out.storeBytes(of: gv * wj, as: SIMD16<T>.self)
                                let pr = (gv * yy.loadUnaligned(as: SIMD16<T>.self)).replacing(with: 0, where: drop16)
                                return pr.lowHalf + pr.highHalf
                            }
                        }
                        var u = 0
                        while u + 4 <= mul - 1 {
                            let r = sum4(product(0), product(1), product(2), product(3))
                            gwp[0] = r[0]; gwp[1] = r[1]; gwp[2] = r[2]; gwp[3] = r[3]
                            gp += 4 * d; y += 4 * rowLength; gy += 4 * gRowLength; wp += 4; gwp += 4; u += 4
                        }
                        while u < mul - 1 {
                            gwp.pointee = product(0).sum()
                            gp += d; y += rowLength; gy += gRowLength; wp += 1; gwp += 1; u += 1
                        }
                    } else {
                        for _ in 0 ..< mul - 1 {
                            var acc: T = 0
                            for m in 0 ..< d { acc += gp[m] * y[m]; gy[m] = wp.pointee * gp[m] }
                            gwp.pointee = acc
                            gp += d; y += rowLength; gy += gRowLength; wp += 1; gwp += 1
                        }
                    }
                    // The last channel reads exactly d values (its block may end the array).
                    var acc: T = 0
                    for m in 0 ..< d { acc += gp[m] * y[m]; gy[m] = wp.pointee * gp[m] }
                    gwp.pointee = acc
                }
                for u in 0 ..< mul {
                    let gyScalars = gRows + u * gRowLength
                    for c in columns ..< rowLength { gyScalars[c] = 0 }
                }
                // gx1[u, m1] = Σ_n gy[u, n] T[m1, n].
                if let gx1r {
                for u in 0 ..< mul {
                    let gyu = UnsafePointer(s.gRows + u * gStride)
                    let gxu = gx1r + x1Offset + u * d1
                    var m = 0
                    while m + 4 <= d1 {
                        var a0 = V(), a1 = V(), a2 = V(), a3 = V()
                        let t0 = tg + m * nv
                        for v in 0 ..< nv {
                            let gv = gyu[v]
                            a0 = a0.addingProduct(gv, t0[v]); a1 = a1.addingProduct(gv, t0[nv + v])
                            a2 = a2.addingProduct(gv, t0[2 * nv + v]); a3 = a3.addingProduct(gv, t0[3 * nv + v])
                        }
                        let r = sum4(a0, a1, a2, a3)
                        gxu[m] = r[0]; gxu[m + 1] = r[1]; gxu[m + 2] = r[2]; gxu[m + 3] = r[3]
                        m += 4
                    }
                    while m < d1 {
                        let tm = tg + m * nv
                        var acc = V()
                        for v in 0 ..< nv { acc = acc.addingProduct(gyu[v], tm[v]) }
                        gxu[m] = acc.sum()
                        m += 1
                    }
                }
                }
                // gT[m1, n] = Σ_u x1[u, m1] gy[u, n].
                if gx2 != nil { accumulateTGradient(xg, mul, d1, UnsafePointer(s.gRows), gStride, nv, s.gt + g[5]) }
            }
            if let gx2 {
                let gx2r = gx2 + e * dim2
                gx2r.update(repeating: 0, count: dim2)
                s.scatterGT(gx2r)
            }
        }
    }
}

extension ChannelwiseTensorProduct {
    /// The product for prediction (nothing recorded), laid out entry by entry for the
    /// `EquivariantLinear` that follows it: the same values as `callAsFunction`, bit for bit.
    public func entryMajor(_ x1: Tensor<T>, _ x2: Tensor<T>, weights: Tensor<T>) throws -> EntryMajorFeatures<T> {
        let edges = try checkedEdgeCount(x1, x2, weights: weights)
        guard !plan.mMajor else { throw TensorError("ChannelwiseTensorProduct", "an m-major product has no entry-major layout") }
        var out: [T] = uninitializedArray(count: edges * plan.dimOut)
        if edges > 0 && !plan.mul.isEmpty {
            x1.data.withUnsafeBufferPointer { a in x2.data.withUnsafeBufferPointer { b in weights.data.withUnsafeBufferPointer { w in
                out.withUnsafeMutableBufferPointer { o in
                    fusedTensorProductForward(plan, edges: edges, x1: a.baseAddress!, x2: b.baseAddress!, w: w.baseAddress!,
                                              out: o.baseAddress!, entryMajor: true)
                }
            } } }
        }
        return EntryMajorFeatures(rows: edges, irreps: irrepsOut, data: out)
    }

    /// The fused op: values from the forward kernel, one graph node whose backward runs the
    /// backward kernel once and adds into whichever inputs require gradients.
    func fusedProduct(_ x1: Tensor<T>, _ x2: Tensor<T>, weights: Tensor<T>) throws -> Tensor<T> {
        let plan = self.plan, edges = x1.shape[0]
        guard !plan.mul.isEmpty else { return Tensor<T>(zeros: [edges, 0]) }
        // Every output element is written by the kernel: no zero fill.
        var out: [T] = uninitializedArray(count: edges * plan.dimOut)
        x1.data.withUnsafeBufferPointer { a in x2.data.withUnsafeBufferPointer { b in weights.data.withUnsafeBufferPointer { w in
            out.withUnsafeMutableBufferPointer { o in
                guard let ob = o.baseAddress, let ab = a.baseAddress, let bb = b.baseAddress, let wb = w.baseAddress else { return }
                fusedTensorProductForward(plan, edges: edges, x1: ab, x2: bb, w: wb, out: ob)
            }
        } } }
        return try Tensor.recorded(out, shape: [edges, plan.dimOut], op: "ChannelwiseTensorProduct", inputs: [x1, x2, weights]) { g in
            guard edges > 0, !plan.mul.isEmpty else { return }
            // Only the gradients some input needs (harmonics and constant weights usually need none).
            var gx1: [T] = x1.requiresGrad ? uninitializedArray(count: edges * plan.dim1) : []
            var gx2: [T] = x2.requiresGrad ? uninitializedArray(count: edges * plan.dim2) : []
            var gw: [T] = weights.requiresGrad ? uninitializedArray(count: edges * plan.weightCount) : []
            x1.data.withUnsafeBufferPointer { a in x2.data.withUnsafeBufferPointer { b in weights.data.withUnsafeBufferPointer { w in
                gx1.withUnsafeMutableBufferPointer { ga in gx2.withUnsafeMutableBufferPointer { gb in gw.withUnsafeMutableBufferPointer { gwb in
                    fusedTensorProductBackward(plan, edges: edges, x1: a.baseAddress!, x2: b.baseAddress!, w: w.baseAddress!, gOut: g.baseAddress!,
                                               gx1: x1.requiresGrad ? ga.baseAddress : nil, gx2: x2.requiresGrad ? gb.baseAddress : nil,
                                               gw: weights.requiresGrad ? gwb.baseAddress : nil)
                } } }
            } } }
            // Written in full: they become the gradients as they are when none exist yet.
            if x1.requiresGrad { x1.accumulateGradient(written: gx1) }
            if x2.requiresGrad { x2.accumulateGradient(written: gx2) }
            if weights.requiresGrad { weights.accumulateGradient(written: gw) }
        }
    }
}
