// Sparse: the sparse linear-algebra core (no chemistry). Owns compressed sparse rows for square
// matrices, the UMFPACK LU factorisation of indefinite complex matrices (shift-invert), the
// CHOLMOD Cholesky factorisation of real symmetric positive definite ones (KPM), ARPACK's
// implicitly restarted Arnoldi in shift-invert mode, and Chebyshev moments with stochastic
// traces. Complex vectors are interleaved (re, im) doubles, as in Linalg.ComplexMatrix.
//
// Why UMFPACK: H − σS is Hermitian but indefinite for an interior shift, so a factorisation
// without pivoting (CHOLMOD's LDLᴴ is simplicial and unpivoted) can break down on a small
// pivot; UMFPACK's multifrontal LU with threshold pivoting and the symmetric strategy (AMD on
// A + Aᵀ, diagonal pivots preferred) is stable, BLAS-3, and in Debian (libsuitesparse-dev).
import CSuiteSparse
import Dispatch
import Linalg

/// A square sparse matrix in compressed sparse rows: row r holds columns
/// `columns[rowStart[r] ..< rowStart[r + 1]]` (sorted). Values live beside it (real or complex),
/// so one pattern serves many matrices.
public struct SparsePattern: Sendable {
    public let size: Int
    public let rowStart: [Int]
    public let columns: [Int]
    public var nonzeros: Int { columns.count }

    public init(size: Int, rowStart: [Int], columns: [Int]) {
        precondition(rowStart.count == size + 1 && rowStart.last == columns.count, "inconsistent sparse pattern")
        self.size = size
        self.rowStart = rowStart
        self.columns = columns
    }

    /// y = A x for complex A (values interleaved per stored entry) and complex x, y.
    public func multiplyComplex(_ values: [Double], _ x: UnsafePointer<Double>, _ y: UnsafeMutablePointer<Double>) {
        values.withUnsafeBufferPointer { v in
            for r in 0 ..< size {
                var re = 0.0, im = 0.0
                for p in rowStart[r] ..< rowStart[r + 1] {
                    let c = columns[p]
                    let ar = v[2 * p], ai = v[2 * p + 1], xr = x[2 * c], xi = x[2 * c + 1]
                    re += ar * xr - ai * xi
                    im += ar * xi + ai * xr
                }
                y[2 * r] = re
                y[2 * r + 1] = im
            }
        }
    }
}

public enum SparseError: Error, CustomStringConvertible, Equatable {
    /// The matrix is singular to working precision (a zero pivot).
    case singular(routine: String)
    case outOfMemory(routine: String)
    case failed(routine: String, status: Int)
    /// CHOLMOD found a non-positive pivot: the matrix is not positive definite.
    case notPositiveDefinite(column: Int)
    /// ARPACK stopped before `requested` eigenpairs converged.
    case noConvergence(converged: Int, requested: Int, iterations: Int)
    case arpack(routine: String, info: Int)
    case tooManyEigenvalues(requested: Int, size: Int)

    public var description: String {
        switch self {
        case .singular(let r): return "\(r): the matrix is singular (zero pivot)"
        case .outOfMemory(let r): return "\(r): out of memory"
        case .failed(let r, let s): return "\(r) failed (status \(s))"
        case .notPositiveDefinite(let c):
            return "the overlap matrix is not positive definite (CHOLMOD: non-positive pivot in column \(c))"
        case .noConvergence(let c, let r, let i):
            return "the shift-invert Arnoldi iteration did not converge: \(c) of \(r) eigenpairs after \(i) restarts"
        case .arpack(let r, let i): return "ARPACK \(r) returned info = \(i)"
        case .tooManyEigenvalues(let k, let n):
            return "\(k) eigenvalues requested but the (filtered) matrix has only \(n) rows; ARPACK needs at most n − 2 "
                + "(ask for fewer bands or use the dense solver)"
        }
    }
}

/// UMFPACK analysis of a pattern (fill-reducing ordering), computed once and reused for every
/// matrix with that pattern (every k-point).
public final class SparseLUAnalysis: @unchecked Sendable {
    public let pattern: SparsePattern
    fileprivate var symbolic: UnsafeMutableRawPointer?
    fileprivate var control = [Double](repeating: 0, count: Int(UMFPACK_CONTROL))

    /// `values`: one matrix with the pattern (complex, interleaved), used for the analysis only.
    public init(pattern: SparsePattern, values: [Double]) throws {
        self.pattern = pattern
        umfpack_zl_defaults(&control)
        control[Int(UMFPACK_STRATEGY)] = Double(UMFPACK_STRATEGY_SYMMETRIC)
        // No iterative refinement: solves then never read A, so A's values need not be kept
        // beside the factors (the Arnoldi iteration and the final Rayleigh–Ritz step make the
        // eigenpairs accurate; their residuals are checked).
        control[Int(UMFPACK_IRSTEP)] = 0
        control[Int(UMFPACK_ORDERING)] = Double(UMFPACK_ORDERING_METIS)
        var info = [Double](repeating: 0, count: Int(UMFPACK_INFO))
        // UMFPACK reads compressed columns; our rows read as columns are Aᵀ, whose ordering and
        // pivots serve A (solves use UMFPACK_Aat).
        let status = pattern.rowStart.withUnsafeBufferPointer { p in
            pattern.columns.withUnsafeBufferPointer { i in
                values.withUnsafeBufferPointer { x in
                    umfpack_zl_symbolic(pattern.size, pattern.size, p.baseAddress, i.baseAddress, x.baseAddress, nil,
                                        &symbolic, control, &info)
                }
            }
        }
        guard status == UMFPACK_OK else { throw Self.error(status, "umfpack_zl_symbolic") }
    }

    deinit { if symbolic != nil { umfpack_zl_free_symbolic(&symbolic) } }

    static func error(_ status: Int, _ routine: String) -> SparseError {
        if status == Int(UMFPACK_ERROR_out_of_memory) { return .outOfMemory(routine: routine) }
        if status == Int(UMFPACK_WARNING_singular_matrix) { return .singular(routine: routine) }
        return .failed(routine: routine, status: status)
    }
}

/// LU factors of one complex matrix with an analysed pattern; `solve` gives A⁻¹b.
public final class SparseLU: @unchecked Sendable {
    public let analysis: SparseLUAnalysis
    private var numeric: UnsafeMutableRawPointer?
    /// UMFPACK's reciprocal condition estimate (min |U_ii| / max |U_ii|): crude, but 0 or tiny
    /// flags a shift on an eigenvalue.
    public let reciprocalCondition: Double
    /// Stored entries of L and U (for memory reports).
    public let factorNonzeros: Int

    /// Throws `.singular` on an exactly zero pivot.
    public init(analysis: SparseLUAnalysis, values: [Double]) throws {
        self.analysis = analysis
        let pattern = analysis.pattern
        var info = [Double](repeating: 0, count: Int(UMFPACK_INFO))
        var numeric: UnsafeMutableRawPointer?
        let status = pattern.rowStart.withUnsafeBufferPointer { p in
            pattern.columns.withUnsafeBufferPointer { i in
                values.withUnsafeBufferPointer { x in
                    umfpack_zl_numeric(p.baseAddress, i.baseAddress, x.baseAddress, nil, analysis.symbolic, &numeric,
                                       analysis.control, &info)
                }
            }
        }
        self.numeric = numeric
        reciprocalCondition = info[Int(UMFPACK_RCOND)]
        factorNonzeros = Int(info[Int(UMFPACK_LNZ)] + info[Int(UMFPACK_UNZ)])
        guard status == UMFPACK_OK else { throw SparseLUAnalysis.error(status, "umfpack_zl_numeric") }
    }

    deinit { if numeric != nil { umfpack_zl_free_numeric(&numeric) } }

    /// x = A⁻¹ b (complex, interleaved, length 2n each).
    public func solve(_ b: UnsafePointer<Double>, _ x: UnsafeMutablePointer<Double>) {
        var info = [Double](repeating: 0, count: Int(UMFPACK_INFO))
        // Without refinement UMFPACK does not touch A: pass no matrix.
        _ = umfpack_zl_solve(Int(UMFPACK_Aat), nil, nil, nil, nil, x, nil, b, nil, numeric, analysis.control, &info)
    }
}

extension SparsePattern {
    /// Y = A X for real A (one value per stored entry) and `columns` real vectors stored
    /// column-major (n × columns); rows split over the cores.
    public func multiplyReal(_ values: [Double], _ x: [Double], _ y: inout [Double], columns m: Int, workers: Int) {
        precondition(x.count == size * m && y.count == size * m)
        let n = size
        let chunks = max(1, min(workers, n / 256 + 1))
        values.withUnsafeBufferPointer { v in
            x.withUnsafeBufferPointer { xp in
                y.withUnsafeMutableBufferPointer { yp in
                    rowStart.withUnsafeBufferPointer { rs in
                        columns.withUnsafeBufferPointer { cs in
                            let v = v, xp = xp, yp = yp, rs = rs, cs = cs
                            ConcurrentLoop.perform(iterations: chunks) { w in
                                let lo = n * w / chunks, hi = n * (w + 1) / chunks
                                let acc = UnsafeMutablePointer<Double>.allocate(capacity: m)
                                defer { acc.deallocate() }
                                let vb = v.baseAddress!, xb = xp.baseAddress!, yb = yp.baseAddress!, cb = cs.baseAddress!
                                for r in lo ..< hi {
                                    acc.update(repeating: 0, count: m)
                                    var p = rs[r]
                                    let end = rs[r + 1]
                                    while p < end {
                                        let a = vb[p]
                                        var src = xb + cb[p]
                                        for c in 0 ..< m { acc[c] += a * src.pointee; src += n }
                                        p += 1
                                    }
                                    for c in 0 ..< m { yb[c * n + r] = acc[c] }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
