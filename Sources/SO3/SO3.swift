// SO3: the exact group theory of three-dimensional rotations that equivariant models and
// Hamiltonian blocks rest on. Owns the irreps vocabulary (`Irreps`, e3nn-style strings), real
// spherical harmonics and their gradients (`SphericalHarmonics`), real Wigner D matrices
// (`WignerD`), real Clebsch–Gordan coefficients (`ClebschGordan`, exact and cached), the
// decomposition of orbital-pair Hamiltonian blocks into irreps (`ShellPairDecomposition`,
// `AtomPairDecomposition`, `OrbitalRotation`; whole operators of a structure are Models'), the orbital-order tables
// between the internal (m = −l…l) and the DeepH legacy (OpenMX) conventions
// (`OrbitalConvention`), and the differentiable equivariant layers on Autograd
// (`EquivariantLinear`, `ChannelwiseTensorProduct`, `FullyConnectedTensorProduct`, `Gate`,
// `EquivariantLayerNorm`).
//
// Conventions (docs/so3.md has the full statement):
// - Real spherical harmonics follow Structures' internal order m = −l…l with no Condon–Shortley
//   phase, z as the polar axis: l = 1 is (y, z, x), l = 2 is (xy, yz, 3z²−r², xz, x²−y²), all
//   with positive coefficients. Default normalisation is orthonormal on the unit sphere.
// - Rotations act actively on vectors: r ↦ R r. D(R) is defined by Y(R r) = D(R) Y(r), so
//   D(R1 R2) = D(R1) D(R2), and D is real orthogonal.
// - An operator block between orbitals of angular momenta l1, l2 (⟨l1 m1|O|l2 m2⟩) rotates as
//   D(l1) B D(l2)ᵀ and decomposes into irreps L = |l1−l2|…l1+l2 with parity (−1)^(l1+l2).
import Foundation
import Structures

/// Largest angular momentum the tables are built for (harmonics, D, CG).
public let so3MaxL = 8

/// Errors of the SO3 module. Descriptions name the offending input.
public enum SO3Error: Error, CustomStringConvertible, Equatable {
    case badIrrepsString(String, reason: String)
    case angularMomentumOutOfRange(l: Int, max: Int, context: String)
    case shapeMismatch(context: String, expected: Int, got: Int)
    case notARotation(String)
    case missingShells(atomicNumber: Int)
    case unsupported(String)

    public var description: String {
        switch self {
        case let .badIrrepsString(s, reason): return "invalid irreps string \"\(s)\": \(reason)"
        case let .angularMomentumOutOfRange(l, max, context):
            return "\(context): angular momentum l = \(l) outside 0…\(max)"
        case let .shapeMismatch(context, expected, got):
            return "\(context): expected \(expected) values, got \(got)"
        case let .notARotation(reason): return "not an orthogonal 3×3 matrix: \(reason)"
        case let .missingShells(z): return "orbital basis has no shells for atomic number \(z)"
        case let .unsupported(what): return "not supported: \(what)"
        }
    }
}

/// A 3×3 orthogonal matrix acting on column vectors, r ↦ R r (active rotation).
public struct Rotation: Equatable, Sendable, CustomStringConvertible {
    /// Rows of the matrix.
    public var rows: (Vec3, Vec3, Vec3)

    public init(rows r0: Vec3, _ r1: Vec3, _ r2: Vec3) { rows = (r0, r1, r2) }

    /// Row-major 9 numbers; throws unless the matrix is orthogonal to 1e-9.
    public init(rowMajor m: [Double]) throws {
        guard m.count == 9 else { throw SO3Error.shapeMismatch(context: "rotation matrix", expected: 9, got: m.count) }
        guard m.allSatisfy({ $0.isFinite }) else { throw SO3Error.notARotation("entries are not finite") }
        self.init(rows: Vec3(m[0], m[1], m[2]), Vec3(m[3], m[4], m[5]), Vec3(m[6], m[7], m[8]))
        let p = self * transposed
        let dev = zip(p.rowMajor, Rotation.identity.rowMajor).map { abs($0 - $1) }.max()!
        guard dev < 1e-9 else { throw SO3Error.notARotation("|R Rᵀ − 1| = \(dev)") }
    }

    public static let identity = Rotation(rows: Vec3(1, 0, 0), Vec3(0, 1, 0), Vec3(0, 0, 1))

    public var rowMajor: [Double] {
        [rows.0.x, rows.0.y, rows.0.z, rows.1.x, rows.1.y, rows.1.z, rows.2.x, rows.2.y, rows.2.z]
    }

    public subscript(i: Int, j: Int) -> Double { rowMajor[3 * i + j] }

    public var transposed: Rotation {
        let m = rowMajor
        return Rotation(rows: Vec3(m[0], m[3], m[6]), Vec3(m[1], m[4], m[7]), Vec3(m[2], m[5], m[8]))
    }

    public var determinant: Double { dot(rows.0, cross(rows.1, rows.2)) }

    public static func * (a: Rotation, r: Vec3) -> Vec3 {
        Vec3(dot(a.rows.0, r), dot(a.rows.1, r), dot(a.rows.2, r))
    }

    public static func * (a: Rotation, b: Rotation) -> Rotation {
        let bt = b.transposed
        func row(_ r: Vec3) -> Vec3 { bt * r }
        return Rotation(rows: row(a.rows.0), row(a.rows.1), row(a.rows.2))
    }

    /// Rotation by `angle` (radians, right-handed) about `axis` (need not be normalised).
    public init(axis: Vec3, angle: Double) {
        let n = axis / norm(axis)
        let c = cos(angle), s = sin(angle), t = 1 - c
        self.init(rows:
            Vec3(t * n.x * n.x + c, t * n.x * n.y - s * n.z, t * n.x * n.z + s * n.y),
            Vec3(t * n.x * n.y + s * n.z, t * n.y * n.y + c, t * n.y * n.z - s * n.x),
            Vec3(t * n.x * n.z - s * n.y, t * n.y * n.z + s * n.x, t * n.z * n.z + c))
    }

    /// Active rotation R = Rz(alpha) Ry(beta) Rz(gamma) (intrinsic z-y'-z'' Euler angles in
    /// radians), the convention of DeepH-dock's `euler_angle` files, pinned on the positions of the
    /// rotated-water DFT data (docs/so3.md). e3nn's (α, β, γ) are Y-X-Y instead.
    public init(eulerZYZ alpha: Double, _ beta: Double, _ gamma: Double) {
        let z = Vec3(0, 0, 1), y = Vec3(0, 1, 0)
        self = Rotation(axis: z, angle: alpha) * Rotation(axis: y, angle: beta) * Rotation(axis: z, angle: gamma)
    }

    /// A uniformly distributed (Haar) rotation from three numbers in [0, 1) (Shoemake's method
    /// via a unit quaternion).
    public init(uniform u1: Double, _ u2: Double, _ u3: Double) {
        let a = (1 - u1).squareRoot(), b = u1.squareRoot()
        let w = a * sin(2 * .pi * u2), x = a * cos(2 * .pi * u2)
        let y = b * sin(2 * .pi * u3), z = b * cos(2 * .pi * u3)
        self.init(rows:
            Vec3(1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)),
            Vec3(2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)),
            Vec3(2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)))
    }

    public var description: String { "Rotation(\(rowMajor))" }

    public static func == (a: Rotation, b: Rotation) -> Bool { a.rowMajor == b.rowMajor }
}
