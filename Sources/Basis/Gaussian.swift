// Contracted Gaussian basis sets: the NWChem text format (as the Basis Set Exchange and PySCF
// write it) and analytic overlaps by the Obara–Saika recurrence. Functions are pure (spherical):
// real solid harmonics r^l Y_lm of the SO3 module (so order and sign are the project's:
// m = −l…l, p = y, z, x) times the contracted radial part; each function is normalised to
// ⟨χ|χ⟩ = 1, which is PySCF's normalisation (its spherical AOs have unit self-overlap), and the
// primitives' coefficients multiply radially normalised primitives as in PySCF.
import Foundation
import Linalg
import Structures
import SO3

public enum NWChemBasisReader {
    /// Elements → shells in storage order: shells sorted by l, stable (PySCF's order: all s, then p, …).
    public static func parse(_ text: String, file: String) throws -> [Int: GaussianElementBasis] {
        var elements: [Int: GaussianElementBasis] = [:]
        var current: (z: Int, symbol: String, ls: [Int], rows: [[Double]], line: Int)?
        func flush() throws {
            guard let c = current else { return }
            guard !c.rows.isEmpty else {
                throw BasisError(file: file, field: "line \(c.line) (\(c.symbol))", message: "shell without primitives")
            }
            let columns = c.rows[0].count
            guard columns >= 2, c.rows.allSatisfy({ $0.count == columns }) else {
                throw BasisError(file: file, field: "line \(c.line) (\(c.symbol))", message: "primitive rows with different column counts")
            }
            // "SP" shells list s then p coefficients; otherwise each column is one contraction.
            var shells: [GaussianShell] = []
            if c.ls.count == 2 {
                guard columns == 3 else { throw BasisError(file: file, field: "line \(c.line) (\(c.symbol))", message: "SP shell needs 3 columns") }
                for (k, l) in c.ls.enumerated() {
                    shells.append(GaussianShell(l: l, exponents: c.rows.map { $0[0] }, coefficients: c.rows.map { $0[1 + k] }))
                }
            } else {
                for col in 1 ..< columns {
                    shells.append(GaussianShell(l: c.ls[0], exponents: c.rows.map { $0[0] }, coefficients: c.rows.map { $0[col] }))
                }
            }
            for s in shells where s.exponents.contains(where: { !($0 > 0) }) {
                throw BasisError(file: file, field: "line \(c.line) (\(c.symbol))", message: "exponents must be positive")
            }
            var e = elements[c.z] ?? GaussianElementBasis(symbol: c.symbol, shells: [])
            e.shells += shells
            elements[c.z] = e
            current = nil
        }
        let letters: [Character: Int] = ["S": 0, "P": 1, "D": 2, "F": 3, "G": 4, "H": 5, "I": 6]
        for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let words = line.split(whereSeparator: { $0.isWhitespace })
            guard let first = words.first else { continue }
            if first == "BASIS" || first == "END" { try flush(); continue }
            if let z = Elements.atomicNumber(of: String(first)), words.count == 2 {
                try flush()
                let ls = words[1].uppercased().compactMap { letters[$0] }
                guard ls.count == words[1].count, !ls.isEmpty else {
                    throw BasisError(file: file, field: "line \(n + 1)", message: "unknown shell type '\(words[1])'")
                }
                current = (z, String(first), ls, [], n + 1)
                continue
            }
            guard current != nil else {
                throw BasisError(file: file, field: "line \(n + 1)", message: "expected 'Element SHELL' or BASIS/END, found '\(line.prefix(40))'")
            }
            let numbers = words.map { Double($0.replacingOccurrences(of: "D", with: "E")) }
            guard numbers.allSatisfy({ $0 != nil && $0!.isFinite }) else {
                throw BasisError(file: file, field: "line \(n + 1)", message: "not a row of numbers: '\(line.prefix(60))'")
            }
            current!.rows.append(numbers.map { $0! })
        }
        try flush()
        for (z, e) in elements {
            // Stable sort by l.
            let sorted = e.shells.enumerated().sorted { ($0.element.l, $0.offset) < ($1.element.l, $1.offset) }.map(\.element)
            elements[z] = GaussianElementBasis(symbol: e.symbol, shells: sorted.map(normalisedPrimitives))
        }
        return elements
    }

    /// Coefficients rescaled to radially normalised primitives: ∫ r^{2l+2} e^{−2αr²} dr = 1/N².
    static func normalisedPrimitives(_ s: GaussianShell) -> GaussianShell {
        var out = s
        out.coefficients = zip(s.exponents, s.coefficients).map { a, c in c * primitiveNorm(l: s.l, alpha: a) }
        return out
    }

    static func primitiveNorm(l: Int, alpha: Double) -> Double {
        // ∫_0^∞ r^{2l+2} e^{−2α r²} dr = Γ(l + 3/2) / (2 (2α)^{l+3/2})
        let n = Double(l) + 1.5
        return 1 / (tgamma(n) / (2 * pow(2 * alpha, n))).squareRoot()
    }
}

/// Cartesian expansion of the SO3 module's real solid harmonics r^l Y_lm: for each m, coefficients
/// over the monomials x^a y^b z^c (a+b+c = l) in `monomials(l)` order, fitted exactly from
/// evaluations (the harmonics are degree-l polynomials).
public enum SolidHarmonicPolynomials {
    public static func monomials(_ l: Int) -> [SIMD3<Int>] {
        var out: [SIMD3<Int>] = []
        for a in stride(from: l, through: 0, by: -1) {
            for b in stride(from: l - a, through: 0, by: -1) { out.append(SIMD3(a, b, l - a - b)) }
        }
        return out
    }

    private static let cache = Memo<Int, [[Double]]>()

    /// [m][monomial]
    public static func coefficients(_ l: Int) -> [[Double]] { cache.value(l) { compute(l) } }

    private static func compute(_ l: Int) -> [[Double]] {
        let mons = monomials(l)
        let n = mons.count
        let sh = try! SphericalHarmonics(lmax: l)
        // n sample points (deterministic, generic); solve A c = y for each m.
        var rows: [[Double]] = []
        var values: [[Double]] = []
        for k in 0 ..< n {
            let t = Double(k) + 1
            let p = Vec3(sin(1.3 * t) + 0.1 * t, cos(2.1 * t) - 0.05 * t, sin(0.7 * t + 0.4) + 0.3)
            rows.append(mons.map { pow(p.x, Double($0.x)) * pow(p.y, Double($0.y)) * pow(p.z, Double($0.z)) })
            let y = sh.values(p, normalizeInput: false)
            values.append(Array(y[l * l ..< (l + 1) * (l + 1)]))
        }
        var result = [[Double]](repeating: [Double](repeating: 0, count: n), count: 2 * l + 1)
        for m in 0 ..< 2 * l + 1 {
            var a = rows
            var b = values.map { $0[m] }
            // Gaussian elimination with partial pivoting.
            for col in 0 ..< n {
                let pivot = (col ..< n).max { abs(a[$0][col]) < abs(a[$1][col]) }!
                a.swapAt(col, pivot); b.swapAt(col, pivot)
                for r in col + 1 ..< n {
                    let f = a[r][col] / a[col][col]
                    if f == 0 { continue }
                    for c in col ..< n { a[r][c] -= f * a[col][c] }
                    b[r] -= f * b[col]
                }
            }
            var x = [Double](repeating: 0, count: n)
            for r in stride(from: n - 1, through: 0, by: -1) {
                var s = b[r]
                for c in r + 1 ..< n { s -= a[r][c] * x[c] }
                x[r] = s / a[r][r]
            }
            // Clean round-off (coefficients are algebraic numbers of modest size).
            result[m] = x.map { abs($0) < 1e-12 ? 0 : $0 }
        }
        return result
    }
}

/// Overlap blocks between the contracted spherical Gaussians of two atoms.
public struct GaussianOverlap: Sendable {
    public let element: [Int: GaussianElementBasis]
    /// Per element and shell: normalisation factor of each spherical function (same for all m).
    let norms: [Int: [Double]]

    public init(elements: [Int: GaussianElementBasis]) {
        element = elements
        var norms: [Int: [Double]] = [:]
        for (z, e) in elements {
            norms[z] = e.shells.map { s in
                let n = 2 * s.l + 1
                var block = [Double](repeating: 0, count: n * n)
                GaussianOverlap.shellPair(s, 1, s, 1, displacement: .zero, into: &block, ld: n, row0: 0, col0: 0)
                return 1 / block[0].squareRoot()
            }
        }
        self.norms = norms
    }

    /// Range (Bohr) beyond which every |S| of elements za, zb is below `threshold`: from the most
    /// diffuse primitives and the largest coefficient products.
    public func range(_ za: Int, _ zb: Int, threshold: Double) -> Double {
        guard let ea = element[za], let eb = element[zb] else { return 0 }
        let amin = ea.shells.flatMap(\.exponents).min() ?? 1
        let bmin = eb.shells.flatMap(\.exponents).min() ?? 1
        let mu = amin * bmin / (amin + bmin)
        // e^{−μ R²} · polynomial prefactors ≤ threshold; a generous factor for R^l and contractions.
        return (log(1e4 / threshold) / mu).squareRoot() + 2
    }

    public func orbitals(_ z: Int) -> Int { element[z]!.shells.reduce(0) { $0 + 2 * $1.l + 1 } }

    /// The block ⟨a, 0|S|b⟩ for atoms of elements za, zb with displacement d = r_b − r_a (Bohr),
    /// row-major.
    public func block(_ za: Int, _ zb: Int, displacement d: Vec3) -> [Double] {
        let ea = element[za]!, eb = element[zb]!
        let na = orbitals(za), nb = orbitals(zb)
        var out = [Double](repeating: 0, count: na * nb)
        var row0 = 0
        for (ia, sa) in ea.shells.enumerated() {
            var col0 = 0
            for (ib, sb) in eb.shells.enumerated() {
                GaussianOverlap.shellPair(sa, norms[za]![ia], sb, norms[zb]![ib], displacement: d,
                                          into: &out, ld: nb, row0: row0, col0: col0)
                col0 += 2 * sb.l + 1
            }
            row0 += 2 * sa.l + 1
        }
        return out
    }

    static func shellPair(_ sa: GaussianShell, _ na: Double, _ sb: GaussianShell, _ nb: Double, displacement d: Vec3,
                          into out: inout [Double], ld: Int, row0: Int, col0: Int) {
        let la = sa.l, lb = sb.l
        let monA = SolidHarmonicPolynomials.monomials(la), monB = SolidHarmonicPolynomials.monomials(lb)
        let ca = SolidHarmonicPolynomials.coefficients(la), cb = SolidHarmonicPolynomials.coefficients(lb)
        // Cartesian overlap over primitives: A at 0, B at d.
        var cart = [Double](repeating: 0, count: monA.count * monB.count)
        let r2 = dot(d, d)
        for (a, ka) in zip(sa.exponents, sa.coefficients) {
            for (b, kb) in zip(sb.exponents, sb.coefficients) {
                let p = a + b
                let mu = a * b / p
                let pref = ka * kb * exp(-mu * r2) * pow(Double.pi / p, 1.5)
                if pref == 0 { continue }
                let pa = b / p * d          // P − A, with A at 0 and B at d
                let pb = pa - d             // P − B
                let e = (0 ..< 3).map { axis in obaraSaika1D(la, lb, pa: pa[axis], pb: pb[axis], p: p) }
                for (i, m1) in monA.enumerated() {
                    for (j, m2) in monB.enumerated() {
                        cart[i * monB.count + j] += pref * e[0][m1.x][m2.x] * e[1][m1.y][m2.y] * e[2][m1.z][m2.z]
                    }
                }
            }
        }
        for ma in 0 ..< 2 * la + 1 {
            for mb in 0 ..< 2 * lb + 1 {
                var s = 0.0
                for i in monA.indices where ca[ma][i] != 0 {
                    for j in monB.indices where cb[mb][j] != 0 { s += ca[ma][i] * cb[mb][j] * cart[i * monB.count + j] }
                }
                out[(row0 + ma) * ld + col0 + mb] += na * nb * s
            }
        }
    }

    /// 1D Obara–Saika table E[i][j] (i ≤ la, j ≤ lb) of ∫ x_A^i x_B^j e^{...}, divided by the s–s
    /// value: E[i+1][j] = X_PA E[i][j] + (i E[i−1][j] + j E[i][j−1])/(2p), same for j with X_PB.
    static func obaraSaika1D(_ la: Int, _ lb: Int, pa: Double, pb: Double, p: Double) -> [[Double]] {
        var e = [[Double]](repeating: [Double](repeating: 0, count: lb + 1), count: la + 1)
        e[0][0] = 1
        let h = 1 / (2 * p)
        for i in 0 ... la {
            for j in 0 ... lb {
                if i == 0 && j == 0 { continue }
                if i > 0 {
                    var v = pa * e[i - 1][j]
                    if i > 1 { v += Double(i - 1) * h * e[i - 2][j] }
                    if j > 0 { v += Double(j) * h * e[i - 1][j - 1] }
                    e[i][j] = v
                } else {
                    var v = pb * e[i][j - 1]
                    if j > 1 { v += Double(j - 1) * h * e[i][j - 2] }
                    e[i][j] = v
                }
            }
        }
        return e
    }
}
