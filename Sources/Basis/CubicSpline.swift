// Clamped cubic spline on a uniform grid 0…cutoff, as GPAW builds its radial splines (so that
// tables computed here follow GPAW's numbers): zero slope at r = 0 and at the cutoff, the last
// value forced to 0, and 0 beyond the cutoff.
import Foundation

public struct UniformCubicSpline: Sendable {
    public let cutoff: Double
    public let step: Double
    /// Per bin b: value, first, second and third polynomial coefficient in u = r − b·step.
    private let coefficients: [Double]
    public var binCount: Int { coefficients.count / 4 }

    /// `values` at r = 0, step, …, cutoff (count = bins + 1); the last is replaced by 0.
    public init(cutoff: Double, values input: [Double]) {
        precondition(input.count >= 2 && cutoff > 0)
        var f = input
        f[f.count - 1] = 0
        let nbins = f.count - 1
        let dr = cutoff / Double(nbins)
        let c = 3.0 / (dr * dr)
        // Tridiagonal solve for the second derivatives (over 2), clamped slopes 0 at both ends.
        var f2 = [Double](repeating: 0, count: nbins + 1)
        var u = [Double](repeating: 0, count: nbins)
        f2[0] = -0.5
        u[0] = (f[1] - f[0]) * c
        if nbins > 1 {
            for b in 1 ..< nbins {
                let p = 0.5 * f2[b - 1] + 2.0
                f2[b] = -0.5 / p
                u[b] = ((f[b + 1] - 2.0 * f[b] + f[b - 1]) * c - 0.5 * u[b - 1]) / p
            }
        }
        f2[nbins] = (f[nbins - 1] * c - 0.5 * u[nbins - 1]) / (0.5 * f2[nbins - 1] + 1.0)
        for b in stride(from: nbins - 1, through: 0, by: -1) { f2[b] = f2[b] * f2[b + 1] + u[b] }
        // f2 now holds y''/2 ... expressed through the standard form; convert to polynomials.
        var coef = [Double](repeating: 0, count: 4 * nbins)
        for b in 0 ..< nbins {
            let a0 = f[b], a1v = f[b + 1]
            let m0 = f2[b], m1 = f2[b + 1]   // second derivatives / 1 (see below)
            // Cubic with values a0, a1v and second derivatives 2·m0/… : standard Hermite form
            // y = A y0 + B y1 + ((A³−A) y0'' + (B³−B) y1'') h²/6 with y'' = m (this recurrence
            // yields y'' directly, the NR convention with c = 3/h² and the factor 6 folded in).
            let h = dr
            // Expand in u = r − b·h: A = 1 − u/h, B = u/h.
            let s0 = a0
            let s1 = (a1v - a0) / h - h * (2 * m0 + m1) / 6
            let s2 = m0 / 2
            let s3 = (m1 - m0) / (6 * h)
            coef[4 * b] = s0; coef[4 * b + 1] = s1; coef[4 * b + 2] = s2; coef[4 * b + 3] = s3
        }
        self.cutoff = cutoff
        self.step = dr
        self.coefficients = coef
    }

    @inline(__always)
    public func callAsFunction(_ r: Double) -> Double {
        let b = Int(r / step)
        if b >= binCount || r < 0 { return 0 }
        let u = r - Double(b) * step
        return coefficients.withUnsafeBufferPointer { c in
            c[4 * b] + u * (c[4 * b + 1] + u * (c[4 * b + 2] + u * c[4 * b + 3]))
        }
    }
}
