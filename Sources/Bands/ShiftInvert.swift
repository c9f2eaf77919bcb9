// The K eigenvalues of H(k)ψ = εS(k)ψ nearest a target energy, for structures too large for a
// dense solve: UMFPACK LU of H(k) − σS(k) (pattern analysed once, reused at every k) drives
// ARPACK's shift-invert Arnoldi in the S inner product; a final Rayleigh–Ritz step in the
// converged subspace gives exactly real eigenvalues and S-orthonormal eigenvectors, whose
// residuals ‖Hψ − εSψ‖ are reported.
//
// Over-complete bases: with an overlap threshold t, the eigenvectors U₀ of S(k) with eigenvalue
// ≤ t are found first by shift-invert on S itself (shift −t/2: every eigenvalue in [−2t, t] lies
// nearer to it than any above t; more are requested until one above t appears), and the problem
// is solved on their orthogonal complement V — the same subspace the dense filter
// (`Eigen.generalizedHermitianFiltered`) keeps. The restricted solve x ∈ V of P(H − σS)x = P b
// is the bordered system A x = b + U₀λ, U₀ᴴx = 0, i.e. x = z + Wλ with z = A⁻¹b, W = A⁻¹U₀,
// λ = −(U₀ᴴW)⁻¹U₀ᴴz: one LU of A serves both.
import Foundation
import Linalg
import Sparse
import Structures

public struct SparseSolverOptions: Sendable, Equatable {
    /// Eigenvalues kept per k-point (the K nearest the target).
    public var bandCount: Int
    /// Target energy σ (eV, absolute).
    public var target: Double
    /// Drop S(k) directions with eigenvalue ≤ this (nil: none).
    public var overlapThreshold: Double?
    /// When set, every kept eigenvalue must lie within target ± window (eV).
    public var window: Double?
    /// ARPACK's relative tolerance (0: machine precision) and restart limit.
    public var tolerance: Double = 0
    public var maxRestarts: Int = 300
    /// Largest residual ‖Hψ − εSψ‖ (ψ S-normalised) accepted, eV.
    public var residualLimit: Double = 1e-6

    public init(bandCount: Int, target: Double, overlapThreshold: Double? = nil, window: Double? = nil) {
        self.bandCount = bandCount
        self.target = target
        self.overlapThreshold = overlapThreshold
        self.window = window
    }
}

/// Why a sparse solve at one k-point failed (wrapped with the structure and k-point in
/// `BandsError.sparseSolverFailed`).
public enum SparseSolveFailure: Error, CustomStringConvertible {
    case singularShift(shift: Double)
    case overlapNotPositiveDefinite(smallest: Double, threshold: Double?)
    case tooManyBands(requested: Int, available: Int, dropped: Int)
    case windowEmpty(target: Double, window: Double, inside: Int, requested: Int, nearest: Double)
    case noConvergence(String)
    case allOverlapDirectionsDropped(threshold: Double)
    case solver(String)

    public var description: String {
        switch self {
        case .singularShift(let s):
            return String(format: "H(k) − σS(k) is singular at σ = %.9g eV and at nearby shifts; choose another --around", s)
        case .overlapNotPositiveDefinite(let s, let t):
            let fix = t == nil ? "; pass --overlap-threshold to drop near-singular directions of an over-complete basis"
                : " beyond the threshold \(t!); the overlap is not a valid metric"
            return (s.isFinite ? String(format: "S(k) is not positive definite (eigenvalue %.3e)", s)
                : "S(k) is not positive definite (an eigenvalue below −\(t ?? 0): Cholesky of S(k) + tI failed)") + fix
        case .tooManyBands(let k, let n, let d):
            return "--num-bands \(k) is larger than the matrix allows: \(n) orbitals" + (d > 0 ? " after dropping \(d) overlap directions" : "")
                + "; the sparse solver needs at most \(max(0, n - 2)) (use --solver dense for all bands)"
        case .windowEmpty(let e, let w, let inside, let k, let nearest):
            return String(format: "the window %.4f ± %.4f eV holds %d of the %d requested eigenvalues (nearest found %.4f eV)",
                          e, w, inside, k, nearest) + (inside == 0 ? ": no eigenvalues in the window" : "; ask for fewer bands or widen the window")
        case .noConvergence(let m): return m
        case .allOverlapDirectionsDropped(let t): return "every S(k) direction is at or below the overlap threshold \(t)"
        case .solver(let m): return m
        }
    }
}

public struct SparseKPointSolution: Sendable {
    /// Ascending eigenvalues (eV).
    public var values: [Double]
    /// S-orthonormal eigenvectors, n × K column-major complex.
    public var vectors: ComplexMatrix
    /// ‖H(k)ψ − ε S(k)ψ‖₂ per eigenpair (ψᴴSψ = 1).
    public var residuals: [Double]
    /// The shift actually factorised (differs from the target only if that was singular).
    public var shift: Double
    public var droppedDirections: Int
    public var restarts: Int
    public var factorNonzeros: Int
    /// Operator applications (solves with H − σS) and seconds spent in: overlap filter,
    /// assembly + LU, Arnoldi, Rayleigh–Ritz (for benchmarks).
    public var operatorApplications: Int
    public var seconds: (filter: Double, factor: Double, arnoldi: Double, rayleighRitz: Double)
}

/// Shift-invert solver for one Bloch system: the sparse pattern and its UMFPACK analysis are
/// built on first use and reused at every k-point.
public final class ShiftInvertSolver: @unchecked Sendable {
    public let bloch: SparseBloch
    private var analysis: SparseLUAnalysis?

    public init(_ system: BlochSystem) { bloch = SparseBloch(system) }

    private func factor(_ values: [Double]) throws -> SparseLU {
        if analysis == nil { analysis = try SparseLUAnalysis(pattern: bloch.pattern, values: values) }
        return try SparseLU(analysis: analysis!, values: values)
    }

    /// Deterministic start vector (so runs are reproducible).
    private func startVector(_ n: Int, seed: UInt64) -> [Double] {
        var state = seed
        return (0 ..< 2 * n).map { _ in
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            return Double(z >> 11) / Double(1 << 53) - 0.5
        }
    }

    public func solve(at k: Vec3, options: SparseSolverOptions) throws -> SparseKPointSolution {
        let n = bloch.pattern.size
        let kc = options.bandCount
        let orthogonal = bloch.overlap == nil
        var clock = Date()
        func lap() -> Double { let now = Date(); defer { clock = now }; return now.timeIntervalSince(clock) }
        do {
            // 1. Near-singular overlap directions.
            var u0: [[Double]] = []
            if let t = options.overlapThreshold, !orthogonal {
                u0 = try overlapNullDirections(at: k, threshold: t)
            }
            let filterSeconds = lap()
            let m = u0.count
            guard kc >= 1, kc <= n - m - 2 else { throw SparseSolveFailure.tooManyBands(requested: kc, available: n - m, dropped: m) }

            // 2. LU of H − σS; a zero pivot (σ on an eigenvalue to the last bit) moves σ a little.
            var shift = options.target
            var lu: SparseLU?
            for attempt in 0 ..< 4 {
                if attempt > 0 { shift = options.target + 1e-7 * pow(100, Double(attempt - 1)) * max(1, abs(options.target)) }
                do {
                    lu = try factor(bloch.values([(.hamiltonian, 1), (.overlap, -shift)], at: k))
                    break
                } catch SparseError.singular { continue }
            }
            guard let lu else { throw SparseSolveFailure.singularShift(shift: options.target) }
            let factorSeconds = lap()

            // 3. Bordered solve on V = U₀^⊥.
            var w: [[Double]] = []
            var gInverse: [Double] = []
            if m > 0 {
                w = u0.map { u in
                    var x = [Double](repeating: 0, count: 2 * n)
                    u.withUnsafeBufferPointer { b in x.withUnsafeMutableBufferPointer { lu.solve(b.baseAddress!, $0.baseAddress!) } }
                    return x
                }
                var g = [Double](repeating: 0, count: 2 * m * m) // G[r][c] = u_rᴴ w_c, row-major
                for r in 0 ..< m { for c in 0 ..< m { let d = innerProduct(u0[r], w[c]); g[2 * (r * m + c)] = d.re; g[2 * (r * m + c) + 1] = d.im } }
                gInverse = try invertComplex(g, m)
            }
            let restrictedSolve: (UnsafePointer<Double>, UnsafeMutablePointer<Double>) -> Void = { b, x in
                lu.solve(b, x)
                guard m > 0 else { return }
                var proj = [Double](repeating: 0, count: 2 * m)
                for r in 0 ..< m {
                    var re = 0.0, im = 0.0
                    u0[r].withUnsafeBufferPointer { u in
                        for i in 0 ..< n { re += u[2 * i] * x[2 * i] + u[2 * i + 1] * x[2 * i + 1]; im += u[2 * i] * x[2 * i + 1] - u[2 * i + 1] * x[2 * i] }
                    }
                    proj[2 * r] = re; proj[2 * r + 1] = im
                }
                for c in 0 ..< m {
                    // λ_c = −Σ_r G⁻¹[c][r] proj_r
                    var lr = 0.0, li = 0.0
                    for r in 0 ..< m {
                        let gr = gInverse[2 * (c * m + r)], gi = gInverse[2 * (c * m + r) + 1]
                        lr -= gr * proj[2 * r] - gi * proj[2 * r + 1]; li -= gr * proj[2 * r + 1] + gi * proj[2 * r]
                    }
                    w[c].withUnsafeBufferPointer { wc in
                        for i in 0 ..< n { x[2 * i] += wc[2 * i] * lr - wc[2 * i + 1] * li; x[2 * i + 1] += wc[2 * i] * li + wc[2 * i + 1] * lr }
                    }
                }
            }
            var start = startVector(n, seed: 0x5EED)
            project(&start, onto: u0)

            // 4. Shift-invert Arnoldi in the S inner product.
            let arnoldi: ArnoldiResult
            do {
                arnoldi = try ShiftInvertArnoldi.solve(
                    size: n, count: kc, shift: shift, tolerance: options.tolerance, maxRestarts: options.maxRestarts, start: start,
                    solve: restrictedSolve,
                    applyB: orthogonal ? nil : { x, y in self.bloch.multiply(.overlap, at: k, x, y) })
            } catch SparseError.noConvergence(let c, let r, let i) {
                throw SparseSolveFailure.noConvergence("the shift-invert Arnoldi iteration did not converge: \(c) of \(r) eigenpairs after \(i) restarts (raise --max-restarts or ask for fewer bands)")
            }

            let arnoldiSeconds = lap()
            // 5. Rayleigh–Ritz in the converged subspace.
            var z = ComplexMatrix(rows: n, cols: kc, storage: arnoldi.vectors)
            if m > 0 {
                for c in 0 ..< kc {
                    var col = Array(z.storage[2 * n * c ..< 2 * n * (c + 1)])
                    project(&col, onto: u0)
                    z.storage.replaceSubrange(2 * n * c ..< 2 * n * (c + 1), with: col)
                }
            }
            var hz = ComplexMatrix(rows: n, cols: kc), sz = ComplexMatrix(rows: n, cols: kc)
            z.storage.withUnsafeBufferPointer { zp in
                hz.storage.withUnsafeMutableBufferPointer { hp in
                    sz.storage.withUnsafeMutableBufferPointer { sp in
                        for c in 0 ..< kc {
                            bloch.multiply(.hamiltonian, at: k, zp.baseAddress! + 2 * n * c, hp.baseAddress! + 2 * n * c)
                            bloch.multiply(.overlap, at: k, zp.baseAddress! + 2 * n * c, sp.baseAddress! + 2 * n * c)
                        }
                    }
                }
            }
            var hs = Eigen.multiply(z, hz, conjugateTransposeLeft: true), ss = Eigen.multiply(z, sz, conjugateTransposeLeft: true)
            symmetrize(&hs); symmetrize(&ss)
            let values: [Double], y: ComplexMatrix
            do {
                let r = try Eigen.generalizedHermitian(hs, ss, vectors: true)
                values = r.values; y = r.vectors!
            } catch EigenError.notPositiveDefinite {
                let smallest = (try? Eigen.hermitian(ss, vectors: false).values.first) ?? .nan
                throw SparseSolveFailure.overlapNotPositiveDefinite(smallest: smallest, threshold: options.overlapThreshold)
            }
            let psi = Eigen.multiply(z, y), hpsi = Eigen.multiply(hz, y), spsi = Eigen.multiply(sz, y)
            // ‖Hψ − εSψ‖, or with dropped directions ‖P(Hψ − εSψ)‖: the restricted problem
            // holds on V only (as for the dense filter), so the part along U₀ is not a residual.
            var residuals = [Double](repeating: 0, count: kc)
            for c in 0 ..< kc {
                var d = [Double](repeating: 0, count: 2 * n)
                hpsi.storage.withUnsafeBufferPointer { h in
                    spsi.storage.withUnsafeBufferPointer { s in
                        for i in 0 ..< 2 * n { d[i] = h[2 * n * c + i] - values[c] * s[2 * n * c + i] }
                    }
                }
                if m > 0 { project(&d, onto: u0) }
                residuals[c] = d.reduce(0) { $0 + $1 * $1 }.squareRoot()
            }
            if let worst = residuals.max(), !(worst <= options.residualLimit) {
                throw SparseSolveFailure.noConvergence(String(format: "eigenpairs did not converge: largest residual ‖Hψ − εSψ‖ = %.3e eV (limit %.1e)", worst, options.residualLimit))
            }
            if let window = options.window {
                let inside = values.filter { abs($0 - options.target) <= window }.count
                if inside < kc {
                    let nearest = values.min(by: { abs($0 - options.target) < abs($1 - options.target) }) ?? .nan
                    throw SparseSolveFailure.windowEmpty(target: options.target, window: window, inside: inside, requested: kc, nearest: nearest)
                }
            }
            return SparseKPointSolution(values: values, vectors: psi, residuals: residuals, shift: shift, droppedDirections: m,
                                        restarts: arnoldi.restarts, factorNonzeros: lu.factorNonzeros,
                                        operatorApplications: arnoldi.operatorApplications,
                                        seconds: (filterSeconds, factorSeconds, arnoldiSeconds, lap()))
        } catch let e as SparseError {
            throw SparseSolveFailure.solver(e.description)
        }
    }

    /// Orthonormal eigenvectors of S(k) with eigenvalue ≤ threshold t. The Cholesky factor of
    /// S(k) + tI exists iff every eigenvalue of S(k) exceeds −t (else: not positive definite
    /// beyond the threshold); shift-invert at −t then returns S's eigenvalues in ascending order.
    private func overlapNullDirections(at k: Vec3, threshold t: Double) throws -> [[Double]] {
        let n = bloch.pattern.size
        let shift = -t
        let cholesky: SparseCholesky
        do {
            cholesky = try SparseCholesky(pattern: bloch.pattern, values: bloch.values([(.overlap, 1)], at: k).addingDiagonal(t, bloch.pattern),
                                          complex: true)
        } catch SparseError.notPositiveDefinite {
            throw SparseSolveFailure.overlapNotPositiveDefinite(smallest: -.infinity, threshold: t)
        }
        let lu = cholesky
        var count = min(16, n - 2)
        while true {
            let r = try ShiftInvertArnoldi.solve(size: n, count: count, shift: shift, start: startVector(n, seed: 0x0E1A),
                                                 solve: { b, x in lu.solveComplex(b, x) }, applyB: nil)
            // Rayleigh–Ritz with S (Hermitian standard problem) for clean values and vectors.
            var z = ComplexMatrix(rows: n, cols: count, storage: r.vectors)
            orthonormalize(&z)
            var sz = ComplexMatrix(rows: n, cols: count)
            z.storage.withUnsafeBufferPointer { zp in
                sz.storage.withUnsafeMutableBufferPointer { sp in
                    for c in 0 ..< count { bloch.multiply(.overlap, at: k, zp.baseAddress! + 2 * n * c, sp.baseAddress! + 2 * n * c) }
                }
            }
            var small = Eigen.multiply(z, sz, conjugateTransposeLeft: true)
            symmetrize(&small)
            let (s, yOpt) = try Eigen.hermitian(small, vectors: true)
            if let lowest = s.first, lowest < -t { throw SparseSolveFailure.overlapNotPositiveDefinite(smallest: lowest, threshold: t) }
            let below = s.filter { $0 <= t }.count
            if below < count || count >= n - 2 {
                if below >= n - 2 { throw SparseSolveFailure.allOverlapDirectionsDropped(threshold: t) }
                let u = Eigen.multiply(z, yOpt!)
                return (0 ..< below).map { Array(u.storage[2 * n * $0 ..< 2 * n * ($0 + 1)]) }
            }
            count = min(2 * count, n - 2)
        }
    }
}

extension Array where Element == Double {
    /// Complex values of a pattern with `x` added on the diagonal.
    func addingDiagonal(_ x: Double, _ pattern: SparsePattern) -> [Double] {
        var v = self
        for r in 0 ..< pattern.size {
            var lo = pattern.rowStart[r], hi = pattern.rowStart[r + 1]
            while lo < hi { let mid = (lo + hi) / 2; if pattern.columns[mid] < r { lo = mid + 1 } else { hi = mid } }
            v[2 * lo] += x
        }
        return v
    }
}

/// aᴴb of complex interleaved vectors.
func innerProduct(_ a: [Double], _ b: [Double]) -> (re: Double, im: Double) {
    var re = 0.0, im = 0.0
    for i in stride(from: 0, to: a.count, by: 2) {
        re += a[i] * b[i] + a[i + 1] * b[i + 1]
        im += a[i] * b[i + 1] - a[i + 1] * b[i]
    }
    return (re, im)
}

/// x ← (I − U Uᴴ) x for orthonormal columns U.
func project(_ x: inout [Double], onto u: [[Double]]) {
    for col in u {
        let d = innerProduct(col, x)
        for i in stride(from: 0, to: x.count, by: 2) {
            x[i] -= col[i] * d.re - col[i + 1] * d.im
            x[i + 1] -= col[i] * d.im + col[i + 1] * d.re
        }
    }
}

/// Makes a small matrix exactly Hermitian (averages rounding between the triangles).
func symmetrize(_ a: inout ComplexMatrix) {
    for c in 0 ..< a.cols {
        for r in 0 ... c {
            let x = a[r, c], y = a[c, r]
            let re = (x.re + y.re) / 2, im = (x.im - y.im) / 2
            a[r, c] = (re, im); a[c, r] = (re, -im)
        }
    }
}

/// Modified Gram–Schmidt, twice, on the columns.
func orthonormalize(_ z: inout ComplexMatrix) {
    let n = z.rows
    var cols = (0 ..< z.cols).map { Array(z.storage[2 * n * $0 ..< 2 * n * ($0 + 1)]) }
    for _ in 0 ..< 2 {
        for c in 0 ..< cols.count {
            project(&cols[c], onto: Array(cols[0 ..< c]))
            let norm = cols[c].reduce(0) { $0 + $1 * $1 }.squareRoot()
            if norm > 0 { cols[c] = cols[c].map { $0 / norm } }
        }
    }
    z.storage = cols.flatMap { $0 }
}

/// Inverse of a small complex matrix (row-major interleaved) by Gauss–Jordan with partial pivoting.
func invertComplex(_ g: [Double], _ m: Int) throws -> [Double] {
    var a = g
    var inv = [Double](repeating: 0, count: 2 * m * m)
    for i in 0 ..< m { inv[2 * (i * m + i)] = 1 }
    for col in 0 ..< m {
        var pivot = col, best = 0.0
        for r in col ..< m { let v = hypot(a[2 * (r * m + col)], a[2 * (r * m + col) + 1]); if v > best { best = v; pivot = r } }
        guard best > 0 else { throw SparseSolveFailure.solver("the bordered system for the dropped overlap directions is singular") }
        if pivot != col {
            for c in 0 ..< m {
                a.swapAt(2 * (pivot * m + c), 2 * (col * m + c)); a.swapAt(2 * (pivot * m + c) + 1, 2 * (col * m + c) + 1)
                inv.swapAt(2 * (pivot * m + c), 2 * (col * m + c)); inv.swapAt(2 * (pivot * m + c) + 1, 2 * (col * m + c) + 1)
            }
        }
        let pr = a[2 * (col * m + col)], pi = a[2 * (col * m + col) + 1]
        let d = pr * pr + pi * pi
        let ir = pr / d, ii = -pi / d
        for c in 0 ..< m {
            let (ar, ai) = (a[2 * (col * m + c)], a[2 * (col * m + c) + 1])
            a[2 * (col * m + c)] = ar * ir - ai * ii; a[2 * (col * m + c) + 1] = ar * ii + ai * ir
            let (br, bi) = (inv[2 * (col * m + c)], inv[2 * (col * m + c) + 1])
            inv[2 * (col * m + c)] = br * ir - bi * ii; inv[2 * (col * m + c) + 1] = br * ii + bi * ir
        }
        for r in 0 ..< m where r != col {
            let fr = a[2 * (r * m + col)], fi = a[2 * (r * m + col) + 1]
            if fr == 0 && fi == 0 { continue }
            for c in 0 ..< m {
                let (ar, ai) = (a[2 * (col * m + c)], a[2 * (col * m + c) + 1])
                a[2 * (r * m + c)] -= fr * ar - fi * ai; a[2 * (r * m + c) + 1] -= fr * ai + fi * ar
                let (br, bi) = (inv[2 * (col * m + c)], inv[2 * (col * m + c) + 1])
                inv[2 * (r * m + c)] -= fr * br - fi * bi; inv[2 * (r * m + c) + 1] -= fr * bi + fi * br
            }
        }
    }
    return inv
}
