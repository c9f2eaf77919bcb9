// Clebsch–Gordan coefficients: exact complex ones (Racah's formula in integer and prime-power
// arithmetic, rounding only in the last few operations) and the real ones that couple the internal real harmonics,
// cached per (l1, l2, L).
import Foundation
import Linalg

/// Real coupling coefficients C[M, m1, m2] for l1 ⊗ l2 → L (internal real basis, indices
/// m + l). Stacked over L = |l1−l2|…l1+l2 they form an orthogonal matrix, so
/// x_L[M] = Σ C[M,m1,m2] u[m1] v[m2] is the irrep-L part of u ⊗ v, and the map commutes with
/// rotations: C (D^{l1} ⊗ D^{l2}) = D^L C.
public struct CGTensor: Sendable {
    public let l1: Int, l2: Int, l: Int
    /// Dense values, index (M·(2l1+1) + m1)·(2l2+1) + m2 with every m shifted by its l.
    public let values: [Double]
    /// The non-zero entries (M, m1, m2, value) for sparse contraction, in dense order.
    public let nonZeros: [(M: Int, m1: Int, m2: Int, value: Double)]

    public subscript(M: Int, m1: Int, m2: Int) -> Double {
        values[(M * (2 * l1 + 1) + m1) * (2 * l2 + 1) + m2]
    }
}

public enum ClebschGordan {
    private static let primes = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41]

    /// Prime exponents of n! for n ≤ 41, [n][prime index].
    private static let factorialExponents: [[Int]] = (0 ... 41).map { n in
        primes.map { p in
            var e = 0, q = n
            while q > 0 { q /= p; e += q }
            return e
        }
    }

    /// Binomial coefficients C(n, k) for n ≤ 24, exact in Int64.
    private static let binomials: [[Int64]] = {
        var t: [[Int64]] = [[1]]
        for n in 1 ... 24 {
            var row = [Int64](repeating: 1, count: n + 1)
            for k in 1 ..< n { row[k] = t[n - 1][k - 1] + t[n - 1][k] }
            t.append(row)
        }
        return t
    }()

    /// Multinomial n!/(Π k_i!) with Σ k_i = n ≤ 24, as a product of binomials (fits Int64).
    private static func multinomial(_ k0: Int, _ k1: Int, _ k2: Int, _ k3: Int, _ k4: Int, _ k5: Int) -> Int64 {
        var remaining = k0 + k1 + k2 + k3 + k4 + k5
        var result: Int64 = 1
        for k in [k0, k1, k2, k3, k4] {
            result *= binomials[remaining][k]
            remaining -= k
        }
        return result
    }

    /// Standard (Condon–Shortley) Clebsch–Gordan coefficient ⟨j1 m1 j2 m2 | J M⟩.
    /// Racah's sum Σ_k (−1)^k / Π(six factorials) has factorial arguments summing to
    /// n = j1+j2+J, so n!·sum is an integer sum of multinomials; the remaining square root is a
    /// rational whose prime exponents are tracked exactly; only the final products and square
    /// root round (a few ulp).
    /// Angular momenta must be 0…so3MaxL; coefficients outside the selection rules are 0.
    public static func complex(_ j1: Int, _ m1: Int, _ j2: Int, _ m2: Int, _ J: Int, _ M: Int) throws -> Double {
        for (j, name) in [(j1, "j1"), (j2, "j2"), (J, "J")] where j > so3MaxL {
            throw SO3Error.angularMomentumOutOfRange(l: j, max: so3MaxL, context: "Clebsch–Gordan \(name)")
        }
        return unchecked(j1, m1, j2, m2, J, M)
    }

    private static func unchecked(_ j1: Int, _ m1: Int, _ j2: Int, _ m2: Int, _ J: Int, _ M: Int) -> Double {
        guard j1 >= 0, j2 >= 0, J >= 0, abs(m1) <= j1, abs(m2) <= j2, abs(M) <= J, m1 + m2 == M,
              J >= abs(j1 - j2), J <= j1 + j2 else { return 0 }
        let n = j1 + j2 + J
        var sum: Int64 = 0
        let kmin = max(0, j2 - J - m1, j1 - J + m2)
        let kmax = min(j1 + j2 - J, j1 - m1, j2 + m2)
        if kmin <= kmax {
            for k in kmin ... kmax {
                let term = multinomial(k, j1 + j2 - J - k, j1 - m1 - k, j2 + m2 - k, J - j2 + m1 + k, J - j1 - m2 + k)
                sum += k % 2 == 0 ? term : -term
            }
        }
        if sum == 0 { return 0 }
        // CG² = (2J+1) (J+j1−j2)! (J−j1+j2)! (j1+j2−J)! / (n+1)! · Π(j±m)! · sum² / (n!)².
        var e = [Int](repeating: 0, count: primes.count)
        func add(_ f: Int, _ sign: Int) { let row = factorialExponents[f]; for i in 0 ..< row.count { e[i] += sign * row[i] } }
        for f in [J + j1 - j2, J - j1 + j2, j1 + j2 - J, J + M, J - M, j1 - m1, j1 + m1, j2 - m2, j2 + m2] { add(f, 1) }
        add(n + 1, -1)
        add(n, -2)
        var rest = 2 * J + 1
        for (i, p) in primes.enumerated() { while rest % p == 0 { rest /= p; e[i] += 1 } }
        precondition(rest == 1, "2J+1 has a prime factor beyond the table")
        // value = sum · Π p^(e/2): integer part of the halves exactly, one square root of the rest.
        var numerator = Double(sum.magnitude), denominator = 1.0, underRoot = 1.0
        for (i, p) in primes.enumerated() {
            let half = e[i] >= 0 ? e[i] / 2 : -((-e[i] + 1) / 2)
            let odd = e[i] - 2 * half
            if half > 0 { for _ in 0 ..< half { numerator *= Double(p) } }
            if half < 0 { for _ in 0 ..< -half { denominator *= Double(p) } }
            if odd == 1 { underRoot *= Double(p) }
        }
        let value = numerator / denominator * underRoot.squareRoot()
        return sum < 0 ? -value : value
    }

    /// Complex-to-real change of basis of degree l: real_m = Σ_μ U[m][μ] Y^μ, for the internal
    /// real harmonics (no Condon–Shortley phase) and Condon–Shortley complex Y^μ. Index m + l.
    static func realBasis(_ l: Int) -> [[(re: Double, im: Double)]] {
        let d = 2 * l + 1, h = 1 / 2.0.squareRoot()
        var u = [[(re: Double, im: Double)]](repeating: [(re: Double, im: Double)](repeating: (0, 0), count: d), count: d)
        u[l][l] = (1, 0)
        if l > 0 {
            for k in 1 ... l {
                let s = k % 2 == 0 ? 1.0 : -1.0
                // cos kφ: ((−1)^k Y^k + Y^−k)/√2.
                u[l + k][l + k] = (s * h, 0)
                u[l + k][l - k] = (h, 0)
                // sin kφ: i (Y^−k − (−1)^k Y^k)/√2.
                u[l - k][l - k] = (0, h)
                u[l - k][l + k] = (0, -s * h)
            }
        }
        return u
    }

    private static let cache = Memo<SIMD3<Int>, CGTensor>()

    /// Real coefficients for l1 ⊗ l2 → L (all ≤ so3MaxL), cached (thread-safe).
    /// C_real[M',m1',m2'] = Σ U^L[M'][M] ⟨l1 m1 l2 m2|L M⟩ conj(U^l1[m1'][m1]) conj(U^l2[m2'][m2]),
    /// which is real when l1+l2+L is even and imaginary when odd; in the odd case the imaginary
    /// part is taken (a fixed factor −i), so signs follow the complex coefficients.
    public static func real(_ l1: Int, _ l2: Int, _ L: Int) throws -> CGTensor {
        for (l, name) in [(l1, "l1"), (l2, "l2"), (L, "L")] where !(0 ... so3MaxL).contains(l) {
            throw SO3Error.angularMomentumOutOfRange(l: l, max: so3MaxL, context: "Clebsch–Gordan \(name)")
        }
        guard L >= abs(l1 - l2), L <= l1 + l2 else {
            throw SO3Error.angularMomentumOutOfRange(l: L, max: l1 + l2, context: "Clebsch–Gordan L for l1 = \(l1), l2 = \(l2) (needs L ≥ \(abs(l1 - l2)))")
        }
        return cache.value(SIMD3(l1, l2, L)) { build(l1, l2, L) }
    }

    private static func build(_ l1: Int, _ l2: Int, _ L: Int) -> CGTensor {
        let d1 = 2 * l1 + 1, d2 = 2 * l2 + 1, dL = 2 * L + 1
        // Each complex index μ appears in at most two real combinations (±|μ|): list them.
        func columns(_ l: Int) -> [[(real: Int, u: (re: Double, im: Double))]] {
            let u = realBasis(l)
            return (0 ..< 2 * l + 1).map { mu in (0 ..< 2 * l + 1).compactMap { a in
                u[a][mu].re == 0 && u[a][mu].im == 0 ? nil : (a, u[a][mu])
            } }
        }
        let c1 = columns(l1), c2 = columns(l2), cL = columns(L)
        var re = [Double](repeating: 0, count: dL * d1 * d2), im = re
        for M in -L ... L {
            for m1 in -l1 ... l1 {
                let m2 = M - m1
                guard abs(m2) <= l2 else { continue }
                let cg = unchecked(l1, m1, l2, m2, L, M)
                if cg == 0 { continue }
                for (a, ua) in cL[M + L] {
                    for (b, ub) in c1[m1 + l1] {
                        // ua · conj(ub)
                        let xr = ua.re * ub.re + ua.im * ub.im, xi = ua.im * ub.re - ua.re * ub.im
                        for (c, uc) in c2[m2 + l2] {
                            // · conj(uc) · cg
                            let yr = xr * uc.re + xi * uc.im, yi = xi * uc.re - xr * uc.im
                            let i = (a * d1 + b) * d2 + c
                            re[i] += cg * yr; im[i] += cg * yi
                        }
                    }
                }
            }
        }
        let values = (l1 + l2 + L) % 2 == 0 ? re : im
        // Components are sums of ±cg/2 and ±cg/√2 terms; snap cancellation residue to zero.
        let cleaned = values.map { abs($0) < 1e-14 ? 0 : $0 }
        var nz: [(M: Int, m1: Int, m2: Int, value: Double)] = []
        for a in 0 ..< dL { for b in 0 ..< d1 { for c in 0 ..< d2 {
            let v = cleaned[(a * d1 + b) * d2 + c]
            if v != 0 { nz.append((a, b, c, v)) }
        } } }
        return CGTensor(l1: l1, l2: l2, l: L, values: cleaned, nonZeros: nz)
    }
}
