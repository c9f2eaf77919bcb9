// Module Basis: basis sets and the overlap matrix S they imply, without any DFT run.
//
// Owns the readers of basis-set files (GPAW numerical atomic orbitals `*.basis` with the PAW setups
// `*.<xc>` that carry their projectors; Gaussian basis sets in NWChem text format, def2-SVP bundled),
// the two-center overlap integrals of both families (numerical: radial Fourier–Bessel transforms
// tabulated over distance × Gaunt coefficients × real solid harmonics, plus GPAW's PAW correction
// Σ_a ⟨φ_μ|p̃ᵃ_i⟩ ΔSᵃ_ij ⟨p̃ᵃ_j|φ_ν⟩; Gaussian: analytic Obara–Saika), the rule that resolves a
// structure's basis from its info.json, and the `overlap` command/stage that writes overlap.h5.
// Internally every function is in Bohr and atomic units; blocks come out in the project's
// convention (m = −l…l, p = y, z, x, no Condon–Shortley phase; ⟨i, 0|S|j, R⟩).
// Knows nothing of training.
import Foundation
import Structures

/// A bad or missing basis input: the file, the field (element, shell, key) and why.
public struct BasisError: Error, CustomStringConvertible, Equatable {
    public var file: String
    public var field: String?
    public var message: String
    public init(file: String, field: String? = nil, message: String) {
        self.file = file; self.field = field; self.message = message
    }
    public var description: String {
        [file, field, message].compactMap { $0 }.joined(separator: ": ")
    }
}

/// One radial function f(r) of angular momentum l, nonzero below `cutoff` (Bohr); the atomic
/// function is f(r) Y_lm(r̂). Stored as GPAW does: a clamped cubic spline of f(r)/r^l.
public struct RadialFunction: Sendable {
    public var l: Int
    public var spline: UniformCubicSpline
    public init(l: Int, spline: UniformCubicSpline) { self.l = l; self.spline = spline }
    public var cutoff: Double { spline.cutoff }
    /// f(r) (not divided by r^l).
    public func value(_ r: Double) -> Double { spline(r) * pow(r, Double(l)) }
}

/// The numerical (NAO) basis of one element, optionally with PAW projectors and the overlap
/// correction ΔS_ij of its setup (projector channels expanded over m, same l·m order as orbitals).
public struct NumericalElementBasis: Sendable {
    public var symbol: String
    public var orbitals: [RadialFunction]
    public var projectors: [RadialFunction]
    /// ΔS over the m-expanded projector channels, row-major (count × count).
    public var overlapCorrection: [Double]
    public var basisFile: String
    public var setupFile: String?
    public var shells: [Int] { orbitals.map(\.l) }
    public var projectorChannelCount: Int { projectors.reduce(0) { $0 + 2 * $1.l + 1 } }
}

/// Contracted Gaussian shells of one element, in storage order.
public struct GaussianElementBasis: Sendable {
    public var symbol: String
    public var shells: [GaussianShell]
    public init(symbol: String, shells: [GaussianShell]) { self.symbol = symbol; self.shells = shells }
}

public struct GaussianShell: Sendable {
    public var l: Int
    public var exponents: [Double]
    /// Contraction coefficients of radially normalised primitives (PySCF's convention).
    public var coefficients: [Double]
    public init(l: Int, exponents: [Double], coefficients: [Double]) {
        self.l = l; self.exponents = exponents; self.coefficients = coefficients
    }
}

/// A resolved basis for a set of elements: one family per structure.
public enum BasisSet: Sendable {
    case numerical(name: String, elements: [Int: NumericalElementBasis])
    case gaussian(name: String, file: String, elements: [Int: GaussianElementBasis])

    public var name: String {
        switch self { case .numerical(let n, _), .gaussian(let n, _, _): return n }
    }
    /// The l of each radial shell of element z, in storage order.
    public func shells(of z: Int) -> [Int]? {
        switch self {
        case .numerical(_, let e): return e[z]?.shells
        case .gaussian(_, _, let e): return e[z]?.shells.map(\.l)
        }
    }
    /// Where the basis of element z came from (for messages).
    public func file(of z: Int) -> String {
        switch self {
        case .numerical(_, let e): return e[z]?.basisFile ?? "?"
        case .gaussian(_, let f, _): return f
        }
    }
}
