// The kernel polynomial method (Weiße et al., Rev. Mod. Phys. 78, 275 (2006)): Chebyshev
// moments μ_n = tr T_n(M̃) of a real symmetric operator rescaled into (−1, 1), estimated with
// Rademacher random vectors (one estimate per vector, so the spread gives error bars), Jackson
// kernel damping, and the density reconstructed on an energy grid.
import COpenBLAS
import Foundation

public enum KernelPolynomial {
    /// Deterministic ±1 vectors (SplitMix64), n × count column-major, for random vector `first`…
    public static func rademacher(size n: Int, first: Int, count: Int, seed: UInt64) -> [Double] {
        var out = [Double](repeating: 0, count: n * count)
        for c in 0 ..< count {
            var state = seed &+ UInt64(first + c) &* 0x9E37_79B9_7F4A_7C15
            var bits: UInt64 = 0
            for r in 0 ..< n {
                if r % 64 == 0 {
                    state &+= 0x9E37_79B9_7F4A_7C15
                    var z = state
                    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
                    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
                    bits = z ^ (z >> 31)
                }
                out[c * n + r] = (bits >> UInt64(r % 64)) & 1 == 0 ? 1 : -1
            }
        }
        return out
    }

    /// Extreme eigenvalues of a symmetric operator from `steps` Lanczos steps (full
    /// reorthogonalisation-free; the extremes converge first). `apply(x, y, columns)`: y = M x.
    public static func lanczosBounds(size n: Int, steps: Int, seed: UInt64,
                                     apply: ([Double], inout [Double], Int) -> Void) -> (lower: Double, upper: Double) {
        var v = rademacher(size: n, first: 1_000_003, count: 1, seed: seed)
        let norm0 = sqrt(v.reduce(0) { $0 + $1 * $1 })
        v = v.map { $0 / norm0 }
        var previous = [Double](repeating: 0, count: n)
        var alpha: [Double] = [], beta: [Double] = []
        var w = [Double](repeating: 0, count: n)
        var b = 0.0
        for _ in 0 ..< min(steps, n) {
            apply(v, &w, 1)
            var a = 0.0
            for i in 0 ..< n { a += w[i] * v[i] }
            for i in 0 ..< n { w[i] -= a * v[i] + b * previous[i] }
            alpha.append(a)
            b = sqrt(w.reduce(0) { $0 + $1 * $1 })
            if b < 1e-12 { break }
            beta.append(b)
            previous = v
            for i in 0 ..< n { v[i] = w[i] / b }
        }
        // Eigenvalues of the tridiagonal matrix by bisection on Sturm counts.
        let m = alpha.count
        func countBelow(_ x: Double) -> Int {
            var c = 0, d = 1.0
            for i in 0 ..< m {
                let off = i == 0 ? 0 : beta[i - 1] * beta[i - 1]
                d = alpha[i] - x - (i == 0 ? 0 : off / (d == 0 ? 1e-300 : d))
                if d < 0 { c += 1 }
            }
            return c
        }
        var lo = Double.infinity, hi = -Double.infinity
        for i in 0 ..< m {
            let r = (i > 0 ? abs(beta[i - 1]) : 0) + (i < m - 1 ? abs(beta[i]) : 0)
            lo = min(lo, alpha[i] - r); hi = max(hi, alpha[i] + r)
        }
        func eigen(_ index: Int) -> Double {
            var a = lo, c = hi
            for _ in 0 ..< 200 where c - a > 1e-12 * max(1, abs(a) + abs(c)) {
                let mid = (a + c) / 2
                if countBelow(mid) > index { c = mid } else { a = mid }
            }
            return (a + c) / 2
        }
        return (eigen(0), eigen(m - 1))
    }

    /// Per-vector moment estimates [vector][moment] of tr T_n(M̃), M̃ = (M − center)/halfWidth,
    /// `count` moments from count/2 products per vector (μ_2n = 2⟨t_n,t_n⟩ − μ_0,
    /// μ_2n+1 = 2⟨t_n+1,t_n⟩ − μ_1). Vectors go `block` at a time through `apply(x, y, columns)`.
    public static func moments(size n: Int, count: Int, vectors: Int, block: Int, seed: UInt64,
                               center: Double, halfWidth: Double,
                               apply: ([Double], inout [Double], Int) -> Void,
                               progress: (Int) -> Void = { _ in }) -> [[Double]] {
        precondition(count >= 2 && count % 2 == 0, "an even number of moments ≥ 2")
        var result: [[Double]] = []
        var done = 0
        while done < vectors {
            let m = min(block, vectors - done)
            let r = rademacher(size: n, first: done, count: m, seed: seed)
            var mu = [[Double]](repeating: [Double](repeating: 0, count: count), count: m)
            var t0 = r, t1 = [Double](repeating: 0, count: n * m), scratch = [Double](repeating: 0, count: n * m)
            func scaled(_ x: [Double], _ y: inout [Double]) {
                apply(x, &y, m)
                let inv = 1 / halfWidth
                for i in 0 ..< n * m { y[i] = (y[i] - center * x[i]) * inv }
            }
            func dot(_ a: [Double], _ b: [Double], _ c: Int) -> Double {
                var s = 0.0
                for i in c * n ..< (c + 1) * n { s += a[i] * b[i] }
                return s
            }
            scaled(t0, &t1)
            for c in 0 ..< m { mu[c][0] = dot(r, t0, c); mu[c][1] = dot(r, t1, c) }
            // t0 = T_{j-1} r, t1 = T_j r.
            for j in 1 ..< count / 2 {
                for c in 0 ..< m {
                    mu[c][2 * j] = 2 * dot(t1, t1, c) - mu[c][0]
                }
                scaled(t1, &scratch)
                for i in 0 ..< n * m { scratch[i] = 2 * scratch[i] - t0[i] }
                swap(&t0, &t1); swap(&t1, &scratch)
                for c in 0 ..< m { mu[c][2 * j + 1] = 2 * dot(t1, t0, c) - mu[c][1] }
            }
            result += mu
            done += m
            progress(done)
        }
        return result
    }

    /// Jackson damping factors g_n for `count` moments.
    public static func jackson(_ count: Int) -> [Double] {
        let np1 = Double(count + 1)
        return (0 ..< count).map { n in
            let q = Double.pi / np1
            return ((np1 - Double(n)) * cos(Double(n) * q) + sin(Double(n) * q) / tan(q)) / np1
        }
    }

    /// Density Σ_i δ(E − ε_i) at scaled points x ∈ (−1, 1) from (undamped) moments, Jackson kernel:
    /// ρ(x) = [g_0 μ_0 + 2 Σ g_n μ_n T_n(x)] / (π √(1 − x²)), per unit of x.
    public static func density(moments mu: [Double], at xs: [Double]) -> [Double] {
        let g = jackson(mu.count)
        return xs.map { x in
            var tPrev = 1.0, t = x
            var s = g[0] * mu[0]
            if mu.count > 1 { s += 2 * g[1] * mu[1] * t }
            if mu.count > 2 {
                for n in 2 ..< mu.count {
                    let next = 2 * x * t - tPrev
                    tPrev = t; t = next
                    s += 2 * g[n] * mu[n] * t
                }
            }
            return s / (Double.pi * (1 - x * x).squareRoot())
        }
    }

    /// `density(moments:at:)` for many moment sets at once ([set][moment] → [set][point]), as one
    /// GEMM with the damped Chebyshev table (the per-vector densities behind the error bars).
    public static func densities(moments sets: [[Double]], at xs: [Double]) -> [[Double]] {
        guard let nm = sets.first?.count, nm > 0 else { return [] }
        let g = jackson(nm), np = xs.count, ns = sets.count
        // table[n][p] = (n == 0 ? 1 : 2) g_n T_n(x_p) / (π √(1 − x_p²)), row-major nm × np.
        var table = [Double](repeating: 0, count: nm * np)
        for (p, x) in xs.enumerated() {
            let w = 1 / (Double.pi * (1 - x * x).squareRoot())
            var tPrev = 1.0, t = x
            table[p] = g[0] * w
            if nm > 1 { table[np + p] = 2 * g[1] * t * w }
            if nm > 2 {
                for n in 2 ..< nm {
                    let next = 2 * x * t - tPrev
                    tPrev = t; t = next
                    table[n * np + p] = 2 * g[n] * t * w
                }
            }
        }
        let flat = sets.flatMap { $0 }
        var out = [Double](repeating: 0, count: ns * np)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(ns), Int32(np), Int32(nm), 1, flat, Int32(nm),
                    table, Int32(np), 0, &out, Int32(np))
        return (0 ..< ns).map { Array(out[$0 * np ..< ($0 + 1) * np]) }
    }
}
