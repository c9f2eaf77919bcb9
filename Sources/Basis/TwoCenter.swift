// Two-center integrals ⟨f_a Y_{la ma}| g_b Y_{lb mb}⟩(d) of radial functions on two sites a distance
// vector d apart (d = centre of g − centre of f):
//   S(d) = Σ_l  s_l(|d|) Σ_m G(la ma, lb mb, l m) |d|^l Y_lm(d̂),
//   s_l(R)/R^l from  8 i^{la−lb−l} ∫ k² f̃(k) g̃(k) j_l(kR) dk,   f̃(k) = ∫ r² j_l(kr) f(r) dr,
// with l = |la−lb|…la+lb in steps of 2 and G the real Gaunt coefficients ∫ Y Y Y dΩ.
// The Fourier–Bessel transforms run on GPAW's grids (an FFT of the finite sin/cos expansion of
// j_l on 2^10 points up to the largest cut-off, four-fold zero padding) and the distance tables
// are GPAW's 256-bin clamped splines, so numbers match GPAW's LCAO matrices to ~1e-8, not just
// the exact integrals to the grids' accuracy.
import Foundation
import Linalg
import Structures
import SO3

/// Radial Fourier–Bessel transforms on one grid, shared by every function of a calculation.
public struct FourierBesselGrid: Sendable {
    public let maxCutoff: Double
    public let pointCount: Int        // ng
    public var dr: Double { maxCutoff / Double(pointCount) }
    public var transformLength: Int { 4 * pointCount }   // Q
    public var dk: Double { 2 * Double.pi / Double(transformLength) / dr }

    public init(maxCutoff: Double, pointCount: Int = 1 << 10) {
        self.maxCutoff = maxCutoff
        self.pointCount = pointCount
    }

    /// k^{l+1} f̃(k) at k_q = q·dk, q < Q/2, for the function f(r)Y_lm.
    public func transform(_ f: RadialFunction) -> [Double] {
        let values = (0 ..< pointCount).map { f.spline(Double($0) * dr) }
        return FourierBessel.transform(l: f.l, values: values, step: dr, outputCount: transformLength / 2)
    }

    /// The distance tables s_l(R)/R^l of ⟨f|g⟩ for l = (la+lb)%2 … la+lb step 2 (GPAW's
    /// `calculate_overlap_expansion`): splines over 0…2·maxCutoff.
    public func overlapTables(_ fq: [Double], la: Int, _ gq: [Double], lb: Int) -> [Int: UniformCubicSpline] {
        let m = transformLength / 2
        let lmax = la + lb
        let k = (0 ..< m).map { Double($0) * dk }
        var a = [Double](repeating: 0, count: m)
        for q in 0 ..< m { a[q] = fq[q] * gq[q] }
        var tables: [Int: UniformCubicSpline] = [:]
        for l in stride(from: lmax % 2, through: lmax, by: 2) {
            var integrand = [Double](repeating: 0, count: m)
            for q in 1 ..< m where a[q] != 0 { integrand[q] = a[q] * pow(k[q], Double(-2 - lmax - l)) }
            integrand[0] = a[0]
            var s = FourierBessel.transform(l: l, values: integrand, step: dk, outputCount: m)
            for g in 1 ..< m { s[g] = 8 * s[g] / pow(Double(g) * dr, Double(2 * l + 1)) }
            if l == 0 {
                var sum = a[0]
                for q in 1 ..< m { sum += a[q] * pow(k[q], Double(-lmax)) }
                s[0] = 8 * sum * dk
            } else {
                s[0] = s[1]
            }
            let sign: Double = ((la - lb - l) / 2) % 2 == 0 ? 1 : -1
            let stride = m / 256
            var knots = [Double](repeating: 0, count: 257)
            for i in 0 ..< 256 { knots[i] = sign * s[i * stride] }
            tables[l] = UniformCubicSpline(cutoff: 2 * maxCutoff, values: knots)
        }
        return tables
    }
}

enum FourierBessel {
    /// g(k) = k^{l+1} ∫ r² j_l(kr) r^l f(r) dr on k_q = q·2π/(2·outputCount·step), by l+1 FFTs of
    /// the expansion j_l(x) = Re[(−i)^{l+1} e^{ix} Σ_s i^s (l+s)!/(s! 2^s (l−s)!) x^{−s−1}].
    static func transform(l: Int, values f: [Double], step: Double, outputCount m: Int) -> [Double] {
        let n = 2 * m
        var g = [Double](repeating: 0, count: m)
        let kStep = 2 * Double.pi / (Double(n) * step)
        var re = [Double](repeating: 0, count: n), im = re
        for s in 0 ... l {
            // c = i^s (l+s)!/(s! 2^s (l−s)!) · (−i)^{l+1}
            let magnitude = factorial(l + s) / (factorial(s) * pow(2, Double(s)) * factorial(l - s))
            let phase = ((s - (l + 1)) % 4 + 4) % 4      // power of i
            let (cr, ci): (Double, Double) = [(1, 0), (0, 1), (-1, 0), (0, -1)][phase]
            let power = 1 + l - s
            re.withUnsafeMutableBufferPointer { rp in
                im.withUnsafeMutableBufferPointer { ip in
                    f.withUnsafeBufferPointer { fp in
                        for gi in 0 ..< n {
                            if gi < fp.count {
                                var w = fp[gi]
                                let r = Double(gi) * step
                                for _ in 0 ..< power { w *= r }
                                rp[gi] = magnitude * cr * w
                                ip[gi] = magnitude * ci * w
                            } else {
                                rp[gi] = 0; ip[gi] = 0
                            }
                        }
                    }
                    FFT.inverseUnscaled(rp.baseAddress!, ip.baseAddress!, count: n)   // Σ_g x_g e^{+2πi gq/n}
                    g.withUnsafeMutableBufferPointer { gp in
                        for q in 0 ..< m {
                            var kp = step
                            let kq = Double(q) * kStep
                            for _ in 0 ..< (l - s) { kp *= kq }
                            gp[q] += kp * rp[q]
                        }
                    }
                }
            }
        }
        return g
    }

    static func factorial(_ n: Int) -> Double { n <= 1 ? 1 : (2 ... n).reduce(1.0) { $0 * Double($1) } }
}

/// Radix-2 complex FFT (power-of-two lengths), used only for the radial transforms.
enum FFT {
    private static let twiddles = Memo<Int, Twiddles>()
    struct Twiddles: Sendable { let cos: [Double], sin: [Double] }

    /// cos/sin(2πk/n), k < n/2.
    static func table(_ n: Int) -> (cos: [Double], sin: [Double]) {
        let t = twiddles.value(n) {
            Twiddles(cos: (0 ..< n / 2).map { cos(2 * Double.pi * Double($0) / Double(n)) },
                     sin: (0 ..< n / 2).map { sin(2 * Double.pi * Double($0) / Double(n)) })
        }
        return (t.cos, t.sin)
    }

    /// In place: x_q ← Σ_g x_g e^{+2πi g q / n}.
    static func inverseUnscaled(_ re: UnsafeMutablePointer<Double>, _ im: UnsafeMutablePointer<Double>, count n: Int) {
        precondition(n > 0 && n & (n - 1) == 0, "FFT length must be a power of two")
        var j = 0
        for i in 1 ..< n {
            var bit = n >> 1
            while j & bit != 0 { j ^= bit; bit >>= 1 }
            j |= bit
            if i < j { swap(&re[i], &re[j]); swap(&im[i], &im[j]) }
        }
        let t = table(n)
        t.cos.withUnsafeBufferPointer { wc in
            t.sin.withUnsafeBufferPointer { ws in
                var len = 2
                while len <= n {
                    let half = len / 2
                    let stride = n / len
                    var start = 0
                    while start < n {
                        for k in 0 ..< half {
                            let a = start + k, b = a + half
                            let wr = wc[k * stride], wi = ws[k * stride]
                            let tr = re[b] * wr - im[b] * wi
                            let ti = re[b] * wi + im[b] * wr
                            re[b] = re[a] - tr; im[b] = im[a] - ti
                            re[a] += tr; im[a] += ti
                        }
                        start += len
                    }
                    len <<= 1
                }
            }
        }
    }
}

/// Real Gaunt coefficients G[ma, mb, m] = ∫ Y_{la ma} Y_{lb mb} Y_{l m} dΩ of the SO3 module's
/// real harmonics, by a product quadrature (Gauss–Legendre in cos θ × uniform φ) exact for these
/// polynomial degrees.
public enum Gaunt {
    private static let cache = Memo<SIMD3<Int>, [Double]>()

    /// Dense (2la+1)×(2lb+1)×(2l+1), index (ma·(2lb+1) + mb)·(2l+1) + m, m shifted by l.
    public static func coefficients(_ la: Int, _ lb: Int, _ l: Int) -> [Double] {
        cache.value(SIMD3(la, lb, l)) { compute(la, lb, l) }
    }

    private static func compute(_ la: Int, _ lb: Int, _ l: Int) -> [Double] {
        let degree = la + lb + l
        let nTheta = degree / 2 + 2
        let nPhi = degree + 2
        let (nodes, weights) = gaussLegendre(nTheta)
        let lmax = max(la, lb, l)
        let sh = try! SphericalHarmonics(lmax: lmax)
        let da = 2 * la + 1, db = 2 * lb + 1, dl = 2 * l + 1
        var out = [Double](repeating: 0, count: da * db * dl)
        for (t, x) in nodes.enumerated() {
            let sinT = (1 - x * x).squareRoot()
            for p in 0 ..< nPhi {
                let phi = 2 * Double.pi * Double(p) / Double(nPhi)
                let w = weights[t] * 2 * Double.pi / Double(nPhi)
                let y = sh.values(Vec3(sinT * cos(phi), sinT * sin(phi), x))
                for ma in 0 ..< da {
                    let ya = y[la * la + ma] * w
                    for mb in 0 ..< db {
                        let yab = ya * y[lb * lb + mb]
                        for m in 0 ..< dl { out[(ma * db + mb) * dl + m] += yab * y[l * l + m] }
                    }
                }
            }
        }
        for i in out.indices where abs(out[i]) < 1e-14 { out[i] = 0 }
        return out
    }

    static func gaussLegendre(_ n: Int) -> (nodes: [Double], weights: [Double]) {
        var x = [Double](repeating: 0, count: n), w = x
        for i in 0 ..< n {
            var z = cos(Double.pi * (Double(i) + 0.75) / (Double(n) + 0.5))
            var dp = 0.0
            for _ in 0 ..< 100 {
                var p0 = 1.0, p1 = 0.0
                for j in 0 ..< n {
                    let p2 = p1; p1 = p0
                    p0 = ((2 * Double(j) + 1) * z * p1 - Double(j) * p2) / Double(j + 1)
                }
                dp = Double(n) * (z * p0 - p1) / (z * z - 1)
                let dz = p0 / dp
                z -= dz
                if abs(dz) < 1e-15 { break }
            }
            x[i] = z
            w[i] = 2 / ((1 - z * z) * dp * dp)
        }
        return (x, w)
    }
}

/// Evaluates ⟨f_a|g_b⟩ blocks between two lists of radial functions from their tables.
public struct TwoCenterBlock: Sendable {
    struct Term: Sendable {
        var row0: Int, col0: Int, la: Int, lb: Int, l: Int
        var spline: UniformCubicSpline
        /// The non-zero Gaunt coefficients G[ma, mb, m], by (ma, mb) pair: pair p covers
        /// `gaunt[pairs[p].start ..< pairs[p].end]` (m ascending; pairs with none are left out).
        var pairs: [(ma: Int, mb: Int, start: Int, end: Int)]
        var gaunt: [(m: Int, value: Double)]

        init(row0: Int, col0: Int, la: Int, lb: Int, l: Int, spline: UniformCubicSpline, dense: [Double]) {
            self.row0 = row0; self.col0 = col0; self.la = la; self.lb = lb; self.l = l; self.spline = spline
            pairs = []; gaunt = []
            let db = 2 * lb + 1, dl = 2 * l + 1
            for ma in 0 ..< 2 * la + 1 {
                for mb in 0 ..< db {
                    let start = gaunt.count
                    for m in 0 ..< dl where dense[(ma * db + mb) * dl + m] != 0 { gaunt.append((m, dense[(ma * db + mb) * dl + m])) }
                    if gaunt.count > start { pairs.append((ma, mb, start, gaunt.count)) }
                }
            }
        }
    }
    public let rows: Int
    public let columns: Int
    let terms: [Term]
    public let range: Double
    let harmonics: SphericalHarmonics

    public init(grid: FourierBesselGrid, rows rowFunctions: [RadialFunction], rowTransforms: [[Double]],
                columns columnFunctions: [RadialFunction], columnTransforms: [[Double]]) {
        var terms: [Term] = []
        var row0 = 0
        for (a, fa) in rowFunctions.enumerated() {
            var col0 = 0
            for (b, fb) in columnFunctions.enumerated() {
                let tables = grid.overlapTables(rowTransforms[a], la: fa.l, columnTransforms[b], lb: fb.l)
                for l in tables.keys.sorted() where l >= abs(fa.l - fb.l) {
                    terms.append(Term(row0: row0, col0: col0, la: fa.l, lb: fb.l, l: l, spline: tables[l]!,
                                      dense: Gaunt.coefficients(fa.l, fb.l, l)))
                }
                col0 += 2 * fb.l + 1
            }
            row0 += 2 * fa.l + 1
        }
        self.terms = terms
        rows = rowFunctions.reduce(0) { $0 + 2 * $1.l + 1 }
        columns = columnFunctions.reduce(0) { $0 + 2 * $1.l + 1 }
        range = (rowFunctions.map(\.cutoff).max() ?? 0) + (columnFunctions.map(\.cutoff).max() ?? 0)
        let lmax = (rowFunctions.map(\.l).max() ?? 0) + (columnFunctions.map(\.l).max() ?? 0)
        harmonics = try! SphericalHarmonics(lmax: lmax)
    }

    /// Adds ⟨f|g⟩(d) (d in Bohr: centre of the column functions − centre of the rows) into a
    /// row-major buffer with leading dimension `ld`.
    public func accumulate(displacement d: Vec3, into out: UnsafeMutablePointer<Double>, ld: Int) {
        let r = norm(d)
        if r >= range { return }
        // The Gaunt sums skip the zero coefficients (the dense sums added exact zeros).
        withUnsafeTemporaryAllocation(of: Double.self, capacity: harmonics.dim) { rlY in
            harmonics.evaluate(d, normalizeInput: false, values: rlY.baseAddress!, gradients: nil)
            for t in terms {
                if r == 0 && t.l > 0 { continue }
                let s = t.spline(r)
                if s == 0 { continue }
                let y = rlY.baseAddress! + t.l * t.l
                t.gaunt.withUnsafeBufferPointer { g in
                    for p in t.pairs {
                        var acc = 0.0
                        for k in p.start ..< p.end { acc += g[k].value * y[g[k].m] }
                        out[(t.row0 + p.ma) * ld + t.col0 + p.mb] += s * acc
                    }
                }
            }
        }
    }
}
