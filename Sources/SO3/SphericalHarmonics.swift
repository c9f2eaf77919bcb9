// Real spherical harmonics in the internal convention, with Cartesian gradients.
//
// Y_lm are the standard real harmonics with z as polar axis and no Condon–Shortley phase:
//   Y_l0 = N_l0 P_l(cos θ), Y_l,m>0 = √2 N_lm P_l^m(cos θ) cos mφ, Y_l,−m = √2 N_lm P_l^m sin mφ,
// with P_l^m ≥ 0 near the pole, so l = 1 is ∝ (y, z, x) and l = 2 ∝ (xy, yz, 3z²−r², xz, x²−y²).
// They are evaluated as solid harmonics r^l Y_lm(r̂): homogeneous polynomials
//   Q_l^m(z, r²) · Re/Im (x + iy)^m
// built by the recurrence (l−m) Q_l^m = (2l−1) z Q_{l−1}^m − (l+m−1) r² Q_{l−2}^m, so values and
// gradients are exact polynomial arithmetic (no angles, no division by sin θ at the poles).
import Foundation
import Structures

/// How the harmonics of each l are scaled.
public enum SHNormalization: String, Sendable, CaseIterable {
    /// Orthonormal on the unit sphere: ∫ Y_lm Y_l'm' dΩ = δ. This is the normalisation of real
    /// atomic orbitals and the default here.
    case integral
    /// Σ_m Y_lm(r̂)² = 2l+1 (e3nn's default "component"); integral × √(4π).
    case component
    /// Σ_m Y_lm(r̂)² = 1 (e3nn's "norm"); integral × √(4π/(2l+1)).
    case norm
}

/// Evaluator of all real spherical harmonics 0 ≤ l ≤ lmax. Component (l, m) sits at index
/// l² + l + m, m = −l…l; this is the layout of `Irreps.sphericalHarmonics(lmax:)`.
public struct SphericalHarmonics: Sendable {
    public let lmax: Int
    public let normalization: SHNormalization
    /// Recurrence factors (2l−1)/(l−m) and (l+m−1)/(l−m) at [l, m] = l·(lmax+1) + m.
    private let a: [Double], b: [Double]
    /// Output scale of (l, |m|), including √2 for m ≠ 0.
    private let scale: [Double]
    /// (2m−1)!! for m = 0…lmax.
    private let seed: [Double]

    public init(lmax: Int, normalization: SHNormalization = .integral) throws {
        guard (0 ... so3MaxL).contains(lmax) else {
            throw SO3Error.angularMomentumOutOfRange(l: lmax, max: so3MaxL, context: "spherical harmonics lmax")
        }
        self.lmax = lmax
        self.normalization = normalization
        let n = lmax + 1
        var a = [Double](repeating: 0, count: n * n), b = a, scale = a
        var seed = [Double](repeating: 1, count: n)
        for m in stride(from: 1, through: lmax, by: 1) { seed[m] = seed[m - 1] * Double(2 * m - 1) }
        for l in 0 ... lmax {
            for m in 0 ... l {
                if l > m {
                    a[l * n + m] = Double(2 * l - 1) / Double(l - m)
                    b[l * n + m] = Double(l + m - 1) / Double(l - m)
                }
                // (l−m)!/(l+m)! as a product, exact enough in Double for l ≤ 8.
                var ratio = 1.0
                if m > 0 { for k in (l - m + 1) ... (l + m) { ratio /= Double(k) } }
                var s = (Double(2 * l + 1) / (4 * Double.pi) * ratio).squareRoot()
                if m > 0 { s *= 2.0.squareRoot() }
                switch normalization {
                case .integral: break
                case .component: s *= (4 * Double.pi).squareRoot()
                case .norm: s *= (4 * Double.pi / Double(2 * l + 1)).squareRoot()
                }
                scale[l * n + m] = s
            }
        }
        self.a = a; self.b = b; self.scale = scale; self.seed = seed
    }

    /// Number of components, (lmax+1)².
    public var dim: Int { (lmax + 1) * (lmax + 1) }

    public var irreps: Irreps { Irreps.sphericalHarmonics(lmax: lmax) }

    /// Y(r/|r|) for r ≠ 0; with `normalizeInput: false` the solid harmonics |r|^l Y(r̂)
    /// (polynomials, defined at r = 0 too).
    public func values(_ r: Vec3, normalizeInput: Bool = true) -> [Double] {
        var out = [Double](repeating: 0, count: dim)
        out.withUnsafeMutableBufferPointer { evaluate(r, normalizeInput: normalizeInput, values: $0.baseAddress!, gradients: nil) }
        return out
    }

    /// Values and the gradient ∂Y_i/∂r (same `normalizeInput` meaning as `values`).
    public func valuesAndGradients(_ r: Vec3, normalizeInput: Bool = true) -> (values: [Double], gradients: [Vec3]) {
        var v = [Double](repeating: 0, count: dim)
        var g = [Double](repeating: 0, count: 3 * dim)
        v.withUnsafeMutableBufferPointer { vp in
            g.withUnsafeMutableBufferPointer { gp in
                evaluate(r, normalizeInput: normalizeInput, values: vp.baseAddress!, gradients: gp.baseAddress!)
            }
        }
        return (v, (0 ..< dim).map { Vec3(g[3 * $0], g[3 * $0 + 1], g[3 * $0 + 2]) })
    }

    /// Writes dim values (and 3·dim gradient entries, x/y/z per component) to raw storage; the
    /// allocation-free entry point for kernels over many edges.
    public func evaluate(_ r: Vec3, normalizeInput: Bool, values: UnsafeMutablePointer<Double>,
                         gradients: UnsafeMutablePointer<Double>?) {
        var u = r
        var inverseLength = 1.0
        if normalizeInput {
            let len = norm(r)
            inverseLength = len > 0 ? 1 / len : 0
            u = len > 0 ? r * inverseLength : Vec3(0, 0, 1)
        }
        let n = lmax + 1
        withUnsafeTemporaryAllocation(of: Double.self, capacity: 5 * n * n + 4 * n) { buf in
            let p = buf.baseAddress!
            let q = p, qz = p + n * n, qr = p + 2 * n * n
            let c = p + 3 * n * n, s = c + n
            let x = u.x, y = u.y, z = u.z, rho = x * x + y * y + z * z
            c[0] = 1; s[0] = 0
            if lmax >= 1 {
                for m in 1 ... lmax {
                    c[m] = x * c[m - 1] - y * s[m - 1]
                    s[m] = x * s[m - 1] + y * c[m - 1]
                }
            }
            for m in 0 ... lmax {
                q[m * n + m] = seed[m]; qz[m * n + m] = 0; qr[m * n + m] = 0
                if m + 1 <= lmax {
                    let f = Double(2 * m + 1)
                    q[(m + 1) * n + m] = f * z * seed[m]
                    qz[(m + 1) * n + m] = f * seed[m]
                    qr[(m + 1) * n + m] = 0
                }
                var l = m + 2
                while l <= lmax {
                    let al = a[l * n + m], bl = b[l * n + m]
                    let i1 = (l - 1) * n + m, i2 = (l - 2) * n + m
                    q[l * n + m] = al * z * q[i1] - bl * rho * q[i2]
                    qz[l * n + m] = al * (q[i1] + z * qz[i1]) - bl * rho * qz[i2]
                    qr[l * n + m] = al * z * qr[i1] - bl * (q[i2] + rho * qr[i2])
                    l += 1
                }
            }
            for l in 0 ... lmax {
                let base = l * l + l
                for m in 0 ... l {
                    let k = scale[l * n + m]
                    let qv = q[l * n + m]
                    if m == 0 {
                        values[base] = k * qv
                    } else {
                        values[base + m] = k * qv * c[m]
                        values[base - m] = k * qv * s[m]
                    }
                }
            }
            guard let g = gradients else { return }
            for l in 0 ... lmax {
                let base = l * l + l
                for m in 0 ... l {
                    let k = scale[l * n + m]
                    let qv = q[l * n + m], dqr = qr[l * n + m]
                    // ∂Q/∂(x, y, z) with r² = x² + y² + z².
                    let dqx = 2 * x * dqr, dqy = 2 * y * dqr, dqz = qz[l * n + m] + 2 * z * dqr
                    var gc: Vec3, gs: Vec3
                    if m == 0 {
                        gc = Vec3(dqx, dqy, dqz) * k
                        gs = .zero
                    } else {
                        let fm = Double(m)
                        // ∂(x+iy)^m/∂x = m (x+iy)^(m−1), ∂/∂y = i m (x+iy)^(m−1).
                        let dcx = fm * c[m - 1], dcy = -fm * s[m - 1]
                        let dsx = fm * s[m - 1], dsy = fm * c[m - 1]
                        gc = Vec3(dqx * c[m] + qv * dcx, dqy * c[m] + qv * dcy, dqz * c[m]) * k
                        gs = Vec3(dqx * s[m] + qv * dsx, dqy * s[m] + qv * dsy, dqz * s[m]) * k
                    }
                    if normalizeInput {
                        // Y(u) with u = r/|r|: ∂/∂r = (1 − u uᵀ) ∂/∂u / |r|.
                        gc = (gc - u * dot(u, gc)) * inverseLength
                        gs = (gs - u * dot(u, gs)) * inverseLength
                    }
                    let ic = 3 * (base + m)
                    g[ic] = gc.x; g[ic + 1] = gc.y; g[ic + 2] = gc.z
                    if m > 0 {
                        let isn = 3 * (base - m)
                        g[isn] = gs.x; g[isn + 1] = gs.y; g[isn + 2] = gs.z
                    }
                }
            }
        }
    }
}
