// CHOLMOD supernodal Cholesky P A Pᵀ = L Lᴴ of a symmetric (real) or Hermitian (complex)
// positive definite matrix: the overlap S at Γ for the kernel polynomial method (real, solves on
// blocks of vectors so each pass over L serves many right-hand sides), and S(k) + tI for the
// over-complete-basis filter (complex; its success proves S(k) has no eigenvalue ≤ −t).
import CSuiteSparse

public final class SparseCholesky: @unchecked Sendable {
    private var common = cholmod_common()
    private var factor: UnsafeMutablePointer<cholmod_factor>?
    public let size: Int
    /// Stored entries of L.
    public private(set) var factorNonzeros = 0

    public let isComplex: Bool

    /// `values`: real (one per stored entry of `pattern`) or complex (interleaved pairs, one per
    /// entry, rows read as columns: for a Hermitian matrix that is its conjugate, which
    /// `solveComplex` undoes). The upper triangle is read. Throws `.notPositiveDefinite` naming
    /// the failing column (in the fill-reducing order).
    public init(pattern: SparsePattern, values: [Double], complex: Bool = false) throws {
        precondition(values.count == (complex ? 2 : 1) * pattern.nonzeros, "one value per stored entry")
        size = pattern.size
        isComplex = complex
        cholmod_l_start(&common)
        common.supernodal = Int32(CHOLMOD_SUPERNODAL)
        common.final_ll = 1
        var rowStart = pattern.rowStart, columns = pattern.columns, x = values
        let status: Int32 = rowStart.withUnsafeMutableBufferPointer { p in
            columns.withUnsafeMutableBufferPointer { i in
                x.withUnsafeMutableBufferPointer { v in
                    var a = cholmod_sparse(nrow: pattern.size, ncol: pattern.size, nzmax: pattern.nonzeros,
                                           p: UnsafeMutableRawPointer(p.baseAddress), i: UnsafeMutableRawPointer(i.baseAddress),
                                           nz: nil, x: UnsafeMutableRawPointer(v.baseAddress), z: nil, stype: 1,
                                           itype: Int32(CHOLMOD_LONG), xtype: Int32(complex ? CHOLMOD_COMPLEX : CHOLMOD_REAL), dtype: Int32(CHOLMOD_DOUBLE),
                                           sorted: 1, packed: 1)
                    factor = cholmod_l_analyze(&a, &common)
                    guard factor != nil else { return common.status }
                    _ = cholmod_l_factorize(&a, factor, &common)
                    return common.status
                }
            }
        }
        if status == Int32(CHOLMOD_NOT_POSDEF) {
            let minor = factor.map { Int($0.pointee.minor) } ?? -1
            throw SparseError.notPositiveDefinite(column: minor)
        }
        guard status == 0, let factor else {
            throw status == Int32(CHOLMOD_OUT_OF_MEMORY) ? SparseError.outOfMemory(routine: "cholmod_l_factorize")
                : SparseError.failed(routine: "cholmod_l_factorize", status: Int(status))
        }
        // Supernodal L: xsize counts the stored entries.
        factorNonzeros = factor.pointee.is_super != 0 ? Int(factor.pointee.xsize) : Int(factor.pointee.nzmax)
    }

    deinit {
        if factor != nil { cholmod_l_free_factor(&factor, &common) }
        cholmod_l_finish(&common)
    }

    public enum Step: Int32 {
        case lower = 4 /* L x = b */, lowerTransposed = 5 /* Lᵀ x = b */
        case permute = 7 /* x = P b */, permuteTransposed = 8 /* x = Pᵀ b */
    }

    /// x = A⁻¹ b for a complex factor (b, x interleaved, length 2n).
    public func solveComplex(_ b: UnsafePointer<Double>, _ x: UnsafeMutablePointer<Double>) {
        precondition(isComplex)
        // The factor is of conj(A): solve conj(A) conj(x) = conj(b).
        for i in 0 ..< size { x[2 * i] = b[2 * i]; x[2 * i + 1] = -b[2 * i + 1] }
        var d = cholmod_dense(nrow: size, ncol: 1, nzmax: size, d: size, x: UnsafeMutableRawPointer(x), z: nil,
                              xtype: Int32(CHOLMOD_COMPLEX), dtype: Int32(CHOLMOD_DOUBLE))
        guard let out = cholmod_l_solve(Int32(CHOLMOD_A), factor, &d, &common) else { return }
        let r = out.pointee.x.assumingMemoryBound(to: Double.self)
        for i in 0 ..< size { x[2 * i] = r[2 * i]; x[2 * i + 1] = -r[2 * i + 1] }
        var ptr: UnsafeMutablePointer<cholmod_dense>? = out
        cholmod_l_free_dense(&ptr, &common)
    }

    /// Applies one CHOLMOD solve step to `columns` vectors stored column-major in `x` (n × columns).
    public func apply(_ step: Step, _ x: inout [Double], columns: Int) {
        precondition(!isComplex && x.count == size * columns)
        x.withUnsafeMutableBufferPointer { buf in
            var b = cholmod_dense(nrow: size, ncol: columns, nzmax: size * columns, d: size,
                                  x: UnsafeMutableRawPointer(buf.baseAddress), z: nil,
                                  xtype: Int32(CHOLMOD_REAL), dtype: Int32(CHOLMOD_DOUBLE))
            guard var out = cholmod_l_solve(step.rawValue, factor, &b, &common) else { return }
            buf.baseAddress!.update(from: out.pointee.x.assumingMemoryBound(to: Double.self), count: size * columns)
            var ptr: UnsafeMutablePointer<cholmod_dense>? = out
            cholmod_l_free_dense(&ptr, &common)
            out = ptr ?? out
        }
    }
}
