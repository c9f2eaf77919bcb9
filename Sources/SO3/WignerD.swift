// Real Wigner D matrices, defined by the harmonics themselves: Y(R r) = D(R) Y(r).
//
// D^l_ij(R) = ∫ Y_i(R r) Y_j(r) dΩ, evaluated with a product quadrature (Gauss–Legendre in cos θ,
// equispaced in φ) that integrates every product of two harmonics of degree ≤ so3MaxL exactly.
// So D is exact up to rounding (≈1e-15), costs no recursion bookkeeping, and is consistent with
// `SphericalHarmonics` by construction — the convention cannot drift between the two.
import Foundation
import Structures

public enum WignerD {
    /// Quadrature nodes, weights and the orthonormal harmonics (lmax = so3MaxL) at each node.
    private struct Grid: Sendable {
        let points: [Vec3]
        let weights: [Double]
        /// harmonics[k * 81 + i]
        let harmonics: [Double]
        let dim: Int
    }

    private static let grid: Grid = {
        let nTheta = so3MaxL + 1, nPhi = 2 * so3MaxL + 1
        let (nodes, gaussWeights) = gaussLegendre(nTheta)
        let sh = try! SphericalHarmonics(lmax: so3MaxL, normalization: .integral)
        var points: [Vec3] = [], weights: [Double] = [], values: [Double] = []
        for (t, wt) in zip(nodes, gaussWeights) {
            let st = (1 - t * t).squareRoot()
            for k in 0 ..< nPhi {
                let phi = 2 * Double.pi * Double(k) / Double(nPhi)
                let r = Vec3(st * cos(phi), st * sin(phi), t)
                points.append(r)
                weights.append(wt * 2 * Double.pi / Double(nPhi))
                values.append(contentsOf: sh.values(r))
            }
        }
        return Grid(points: points, weights: weights, harmonics: values, dim: sh.dim)
    }()

    /// Nodes and weights of n-point Gauss–Legendre quadrature on [−1, 1] (Newton on P_n).
    static func gaussLegendre(_ n: Int) -> ([Double], [Double]) {
        var x = [Double](repeating: 0, count: n), w = x
        for i in 0 ..< n {
            var t = cos(Double.pi * (Double(i) + 0.75) / (Double(n) + 0.5))
            var dp = 0.0
            for _ in 0 ..< 100 {
                var p0 = 1.0, p1 = t
                for k in stride(from: 2, through: n, by: 1) {
                    let p2 = (Double(2 * k - 1) * t * p1 - Double(k - 1) * p0) / Double(k)
                    p0 = p1; p1 = p2
                }
                if n == 1 { p1 = t; p0 = 1 }
                dp = Double(n) * (t * p1 - p0) / (t * t - 1)
                let step = p1 / dp
                t -= step
                if abs(step) < 1e-16 { break }
            }
            x[i] = t
            w[i] = 2 / ((1 - t * t) * dp * dp)
        }
        return (x, w)
    }

    /// D^l(R) for 0 ≤ l ≤ lmax, each row-major (2l+1)×(2l+1). R may be improper (det −1); then
    /// D^l(R) = (−1)^l D^l(−R), the representation carried by the harmonics.
    public static func matrices(lmax: Int, rotation: Rotation) throws -> [[Double]] {
        guard (0 ... so3MaxL).contains(lmax) else {
            throw SO3Error.angularMomentumOutOfRange(l: lmax, max: so3MaxL, context: "Wigner D lmax")
        }
        let g = grid
        let sh = try SphericalHarmonics(lmax: lmax)
        let shDim = sh.dim
        var out = (0 ... lmax).map { l in [Double](repeating: 0, count: (2 * l + 1) * (2 * l + 1)) }
        var rotated = [Double](repeating: 0, count: shDim)
        for k in g.points.indices {
            rotated.withUnsafeMutableBufferPointer { sh.evaluate(rotation * g.points[k], normalizeInput: true, values: $0.baseAddress!, gradients: nil) }
            let w = g.weights[k], base = k * g.dim
            for l in 0 ... lmax {
                let d = 2 * l + 1, o = l * l
                out[l].withUnsafeMutableBufferPointer { m in
                    for i in 0 ..< d {
                        let a = w * rotated[o + i]
                        for j in 0 ..< d { m[i * d + j] += a * g.harmonics[base + o + j] }
                    }
                }
            }
        }
        return out
    }

    /// D^l(R), row-major (2l+1)×(2l+1).
    public static func matrix(l: Int, rotation: Rotation) throws -> [Double] {
        try matrices(lmax: l, rotation: rotation)[l]
    }

    /// Block-diagonal D(R) of `irreps` (dim × dim, row-major), e3nn's `D_from_matrix`: for an
    /// improper R, an irrep of parity p gets p · D^l(−R).
    public static func matrix(irreps: Irreps, rotation: Rotation) throws -> [Double] {
        let improper = rotation.determinant < 0
        let proper = improper ? Rotation(rows: -rotation.rows.0, -rotation.rows.1, -rotation.rows.2) : rotation
        let ds = try matrices(lmax: irreps.lmax ?? 0, rotation: proper)
        let n = irreps.dim
        var out = [Double](repeating: 0, count: n * n)
        var o = 0
        for e in irreps.entries {
            let d = e.irrep.dim
            let sign = improper ? Double(e.irrep.p) : 1
            for _ in 0 ..< e.mul {
                for i in 0 ..< d { for j in 0 ..< d { out[(o + i) * n + o + j] = sign * ds[e.irrep.l][i * d + j] } }
                o += d
            }
        }
        return out
    }
}
