// Eigen: dense symmetric / Hermitian eigensolvers on LAPACK's divide-and-conquer drivers
// (dsyevd, dsygvd, zheevd, zhegvd), called through their Fortran symbols (Debian's OpenBLAS has
// no LAPACKE), plus a generalized Hermitian solver that first projects out near-singular
// directions of the metric B, for over-complete bases. Every LAPACK `info != 0` becomes a typed
// `EigenError` that says which routine failed and why.
import COpenBLAS

/// A dense complex matrix stored column-major (LAPACK's order) as interleaved (re, im) doubles:
/// element (r, c) lives at `storage[2 * (r + c * rows)]` (real part) and the next slot
/// (imaginary part). Column-major keeps LAPACK calls copy-free; for a Hermitian matrix the
/// row-major reading is its conjugate, which has the same eigenvalues.
public struct ComplexMatrix: Equatable, Sendable {
    public let rows: Int
    public let cols: Int
    public var storage: [Double]

    public init(rows: Int, cols: Int) {
        precondition(rows >= 0 && cols >= 0, "matrix dimensions must be non-negative")
        self.rows = rows
        self.cols = cols
        storage = [Double](repeating: 0, count: 2 * rows * cols)
    }

    public init(rows: Int, cols: Int, storage: [Double]) {
        precondition(storage.count == 2 * rows * cols, "storage must hold 2·rows·cols doubles")
        self.rows = rows
        self.cols = cols
        self.storage = storage
    }

    public static func identity(_ n: Int) -> ComplexMatrix {
        var m = ComplexMatrix(rows: n, cols: n)
        for i in 0 ..< n { m.storage[2 * (i + i * n)] = 1 }
        return m
    }

    /// (re, im) of element (r, c).
    public subscript(r: Int, c: Int) -> (re: Double, im: Double) {
        get { let o = 2 * (r + c * rows); return (storage[o], storage[o + 1]) }
        set { let o = 2 * (r + c * rows); storage[o] = newValue.re; storage[o + 1] = newValue.im }
    }

    /// Largest |A(r,c) − conj(A(c,r))|; zero for an exactly Hermitian matrix.
    public var hermiticityDeviation: Double {
        precondition(rows == cols, "hermiticity needs a square matrix")
        var worst = 0.0
        for c in 0 ..< cols {
            for r in 0 ... c {
                let a = self[r, c], b = self[c, r]
                worst = max(worst, abs(a.re - b.re), abs(a.im + b.im))
            }
        }
        return worst
    }
}

public enum EigenError: Error, CustomStringConvertible, Equatable {
    /// A matrix was not square or the two matrices of a generalized problem differ in size.
    case shapeMismatch(String)
    /// LAPACK rejected argument number `argument` (a bug in the caller of LAPACK).
    case illegalArgument(routine: String, argument: Int)
    /// The eigenvalue iteration did not converge (`info` as LAPACK returned it).
    case noConvergence(routine: String, info: Int)
    /// The metric B of a generalized problem is not positive definite: its leading minor of
    /// order `order` is not (an overlap matrix with a (near-)null direction).
    case notPositiveDefinite(routine: String, order: Int)
    /// Every direction of the metric was below the drop threshold.
    case emptySubspace(threshold: Double, largest: Double)

    public var description: String {
        switch self {
        case .shapeMismatch(let m): return "eigensolver: \(m)"
        case .illegalArgument(let r, let a): return "\(r): LAPACK rejected argument \(a) (internal error)"
        case .noConvergence(let r, let i): return "\(r): eigenvalue iteration failed to converge (info = \(i))"
        case .notPositiveDefinite(let r, let o):
            return "\(r): the metric (overlap) matrix is not positive definite (leading minor of order \(o)); "
                + "use the near-singular-overlap filter (drop threshold) for over-complete bases"
        case .emptySubspace(let t, let l):
            return "eigensolver: every overlap eigenvalue is below the drop threshold \(t) (largest \(l))"
        }
    }
}

/// Result of a generalized solve in the subspace where the metric is well conditioned.
public struct FilteredEigenResult: Sendable {
    /// Eigenvalues ascending; `count == n − droppedDirections`.
    public var values: [Double]
    /// Eigenvectors in the original basis (n × kept), columns B-orthonormal; nil if not requested.
    public var vectors: ComplexMatrix?
    /// How many metric eigen-directions were below the threshold and removed.
    public var droppedDirections: Int
    /// Smallest metric eigenvalue (tells how close to singular B was).
    public var smallestMetricEigenvalue: Double
}

public enum Eigen {
    // MARK: Real symmetric

    /// Eigenvalues (ascending) and, if requested, eigenvectors (columns, column-major n×n) of the
    /// real symmetric `a` (column-major n×n; only the upper triangle is read).
    public static func symmetric(_ a: [Double], n: Int, vectors: Bool = true) throws -> (values: [Double], vectors: [Double]?) {
        BLASThreads.ensureSerial()
        guard a.count == n * n else { throw EigenError.shapeMismatch("symmetric: \(a.count) values for a \(n)×\(n) matrix") }
        if n == 0 { return ([], vectors ? [] : nil) }
        var a = a
        var w = [Double](repeating: 0, count: n)
        var nn = Int32(n), lda = Int32(n), info: Int32 = 0
        let jobz: UInt8 = vectors ? UInt8(ascii: "V") : UInt8(ascii: "N")
        var lwork: Int32 = -1, liwork: Int32 = -1
        var wq = [Double](repeating: 0, count: 1), iwq = [Int32](repeating: 0, count: 1)
        try call("dsyevd", jobz: jobz) { jobzPtr, uploPtr in
            dsyevd_(jobzPtr, uploPtr, &nn, &a, &lda, &w, &wq, &lwork, &iwq, &liwork, &info, 1, 1)
            return info
        }
        lwork = Int32(wq[0]); liwork = iwq[0]
        var work = [Double](repeating: 0, count: max(1, Int(lwork)) + slack)
        var iwork = [Int32](repeating: 0, count: max(1, Int(liwork)) + slack)
        try call("dsyevd", jobz: jobz) { jobzPtr, uploPtr in
            dsyevd_(jobzPtr, uploPtr, &nn, &a, &lda, &w, &work, &lwork, &iwork, &liwork, &info, 1, 1)
            return info
        }
        return (w, vectors ? a : nil)
    }

    /// Generalized real symmetric-definite problem A x = λ B x (column-major n×n inputs, upper
    /// triangles read). Eigenvectors are B-orthonormal.
    public static func generalizedSymmetric(_ a: [Double], _ b: [Double], n: Int, vectors: Bool = true) throws -> (values: [Double], vectors: [Double]?) {
        BLASThreads.ensureSerial()
        guard a.count == n * n, b.count == n * n else {
            throw EigenError.shapeMismatch("generalizedSymmetric: A has \(a.count) and B \(b.count) values for n = \(n)")
        }
        if n == 0 { return ([], vectors ? [] : nil) }
        var a = a, b = b
        var w = [Double](repeating: 0, count: n)
        var itype: Int32 = 1, nn = Int32(n), lda = Int32(n), ldb = Int32(n), info: Int32 = 0
        let jobz: UInt8 = vectors ? UInt8(ascii: "V") : UInt8(ascii: "N")
        var lwork: Int32 = -1, liwork: Int32 = -1
        var wq = [Double](repeating: 0, count: 1), iwq = [Int32](repeating: 0, count: 1)
        try call("dsygvd", jobz: jobz, n: n, generalized: true) { j, u in
            dsygvd_(&itype, j, u, &nn, &a, &lda, &b, &ldb, &w, &wq, &lwork, &iwq, &liwork, &info, 1, 1)
            return info
        }
        lwork = Int32(wq[0]); liwork = iwq[0]
        var work = [Double](repeating: 0, count: max(1, Int(lwork)) + slack)
        var iwork = [Int32](repeating: 0, count: max(1, Int(liwork)) + slack)
        try call("dsygvd", jobz: jobz, n: n, generalized: true) { j, u in
            dsygvd_(&itype, j, u, &nn, &a, &lda, &b, &ldb, &w, &work, &lwork, &iwork, &liwork, &info, 1, 1)
            return info
        }
        return (w, vectors ? a : nil)
    }

    // MARK: Complex Hermitian

    /// Eigenvalues (ascending) and optional eigenvectors (columns) of a Hermitian matrix; only
    /// the upper triangle is read.
    public static func hermitian(_ a: ComplexMatrix, vectors: Bool = true) throws -> (values: [Double], vectors: ComplexMatrix?) {
        BLASThreads.ensureSerial()
        guard a.rows == a.cols else { throw EigenError.shapeMismatch("hermitian: matrix is \(a.rows)×\(a.cols)") }
        let n = a.rows
        if n == 0 { return ([], vectors ? a : nil) }
        var m = ComplexMatrix(rows: n, cols: n, storage: padded(a.storage))
        var w = [Double](repeating: 0, count: n)
        var nn = Int32(n), lda = Int32(n), info: Int32 = 0
        let jobz: UInt8 = vectors ? UInt8(ascii: "V") : UInt8(ascii: "N")
        var lwork: Int32 = -1, lrwork: Int32 = -1, liwork: Int32 = -1
        var wq = [harmose_complex_double](repeating: .init(), count: 1)
        var rq = [Double](repeating: 0, count: 1), iq = [Int32](repeating: 0, count: 1)
        try m.storage.withUnsafeMutableBytes { raw in
            let ap = raw.baseAddress!.assumingMemoryBound(to: harmose_complex_double.self)
            try call("zheevd", jobz: jobz) { j, u in
                zheevd_(j, u, &nn, ap, &lda, &w, &wq, &lwork, &rq, &lrwork, &iq, &liwork, &info, 1, 1)
                return info
            }
            lwork = Int32(wq[0].re); lrwork = Int32(rq[0]); liwork = iq[0]
            var work = [harmose_complex_double](repeating: .init(), count: max(1, Int(lwork)) + slack)
            var rwork = [Double](repeating: 0, count: max(1, Int(lrwork)) + slack)
            var iwork = [Int32](repeating: 0, count: max(1, Int(liwork)) + slack)
            try call("zheevd", jobz: jobz) { j, u in
                zheevd_(j, u, &nn, ap, &lda, &w, &work, &lwork, &rwork, &lrwork, &iwork, &liwork, &info, 1, 1)
                return info
            }
        }
        return (w, vectors ? m : nil)
    }

    /// Generalized Hermitian-definite problem A x = λ B x (upper triangles read). Eigenvectors
    /// are B-orthonormal. Throws `notPositiveDefinite` when B has a non-positive direction.
    public static func generalizedHermitian(_ a: ComplexMatrix, _ b: ComplexMatrix, vectors: Bool = true) throws -> (values: [Double], vectors: ComplexMatrix?) {
        BLASThreads.ensureSerial()
        guard a.rows == a.cols, b.rows == b.cols, a.rows == b.rows else {
            throw EigenError.shapeMismatch("generalizedHermitian: A is \(a.rows)×\(a.cols), B is \(b.rows)×\(b.cols)")
        }
        let n = a.rows
        if n == 0 { return ([], vectors ? a : nil) }
        var m = ComplexMatrix(rows: n, cols: n, storage: padded(a.storage))
        var metric = ComplexMatrix(rows: n, cols: n, storage: padded(b.storage))
        var w = [Double](repeating: 0, count: n)
        var itype: Int32 = 1, nn = Int32(n), lda = Int32(n), ldb = Int32(n), info: Int32 = 0
        let jobz: UInt8 = vectors ? UInt8(ascii: "V") : UInt8(ascii: "N")
        var lwork: Int32 = -1, lrwork: Int32 = -1, liwork: Int32 = -1
        var wq = [harmose_complex_double](repeating: .init(), count: 1)
        var rq = [Double](repeating: 0, count: 1), iq = [Int32](repeating: 0, count: 1)
        try m.storage.withUnsafeMutableBytes { rawA in
            try metric.storage.withUnsafeMutableBytes { rawB in
                let ap = rawA.baseAddress!.assumingMemoryBound(to: harmose_complex_double.self)
                let bp = rawB.baseAddress!.assumingMemoryBound(to: harmose_complex_double.self)
                try call("zhegvd", jobz: jobz, n: n, generalized: true) { j, u in
                    zhegvd_(&itype, j, u, &nn, ap, &lda, bp, &ldb, &w, &wq, &lwork, &rq, &lrwork, &iq, &liwork, &info, 1, 1)
                    return info
                }
                lwork = Int32(wq[0].re); lrwork = Int32(rq[0]); liwork = iq[0]
                var work = [harmose_complex_double](repeating: .init(), count: max(1, Int(lwork)) + slack)
                var rwork = [Double](repeating: 0, count: max(1, Int(lrwork)) + slack)
                var iwork = [Int32](repeating: 0, count: max(1, Int(liwork)) + slack)
                try call("zhegvd", jobz: jobz, n: n, generalized: true) { j, u in
                    zhegvd_(&itype, j, u, &nn, ap, &lda, bp, &ldb, &w, &work, &lwork, &rwork, &lrwork, &iwork, &liwork, &info, 1, 1)
                    return info
                }
            }
        }
        return (w, vectors ? m : nil)
    }

    /// Generalized Hermitian problem A x = λ B x solved in the span of B's eigenvectors whose
    /// eigenvalues exceed `threshold`: with B = U diag(s) Uᴴ and X = U_kept diag(s_kept^{-1/2}),
    /// solves the ordinary problem (Xᴴ A X) y = λ y and returns x = X y. Over-complete bases make B
    /// nearly singular; the dropped directions carry no physical states but would otherwise give
    /// huge spurious eigenvalues or a failed Cholesky. With threshold ≤ 0 nothing is dropped
    /// unless B has non-positive eigenvalues.
    public static func generalizedHermitianFiltered(_ a: ComplexMatrix, _ b: ComplexMatrix, threshold: Double,
                                                    vectors: Bool = true) throws -> FilteredEigenResult {
        guard a.rows == a.cols, b.rows == b.cols, a.rows == b.rows else {
            throw EigenError.shapeMismatch("generalizedHermitianFiltered: A is \(a.rows)×\(a.cols), B is \(b.rows)×\(b.cols)")
        }
        let n = a.rows
        if n == 0 { return FilteredEigenResult(values: [], vectors: vectors ? a : nil, droppedDirections: 0, smallestMetricEigenvalue: .nan) }
        let metric = try filteredMetricBasis(b, threshold: threshold)
        let x = metric.basis
        // A X (n × kept), then Xᴴ (A X) (kept × kept).
        let ax = multiply(a, x)
        let reduced = multiply(x, ax, conjugateTransposeLeft: true)
        let (values, yOpt) = try hermitian(reduced, vectors: vectors)
        let vecs = yOpt.map { multiply(x, $0) }
        return FilteredEigenResult(values: values, vectors: vecs, droppedDirections: metric.droppedDirections,
                                   smallestMetricEigenvalue: metric.smallestEigenvalue)
    }

    /// The basis of the well-conditioned part of a Hermitian metric B: X = U_kept diag(s_kept^{-1/2})
    /// (n × kept, Xᴴ B X = 1) over B's eigen-directions with eigenvalue above `threshold` (≤ 0:
    /// every positive one). For over-complete bases this is the Löwdin orthogonalisation
    /// restricted to the directions that carry physical states; `generalizedHermitianFiltered`
    /// solves in it, and band-space losses measure errors in it.
    public static func filteredMetricBasis(_ b: ComplexMatrix, threshold: Double) throws
        -> (basis: ComplexMatrix, droppedDirections: Int, smallestEigenvalue: Double) {
        guard b.rows == b.cols else { throw EigenError.shapeMismatch("filteredMetricBasis: B is \(b.rows)×\(b.cols)") }
        let n = b.rows
        let (s, uOpt) = try hermitian(b, vectors: true)
        let u = uOpt!
        let cut = max(threshold, 0)
        // s is ascending: the kept directions are a contiguous tail.
        let first = s.firstIndex(where: { $0 > cut }) ?? n
        let kept = n - first
        guard kept > 0 else { throw EigenError.emptySubspace(threshold: threshold, largest: s.last ?? 0) }
        var x = ComplexMatrix(rows: n, cols: kept)
        for c in 0 ..< kept {
            let scale = 1 / s[first + c].squareRoot()
            let src = 2 * n * (first + c), dst = 2 * n * c
            for r in 0 ..< 2 * n { x.storage[dst + r] = u.storage[src + r] * scale }
        }
        return (x, first, s.first ?? .nan)
    }

    /// C = op(A) B with op = identity or conjugate transpose (zgemm).
    public static func multiply(_ a: ComplexMatrix, _ b: ComplexMatrix, conjugateTransposeLeft: Bool = false) -> ComplexMatrix {
        BLASThreads.ensureSerial()
        let m = conjugateTransposeLeft ? a.cols : a.rows
        let k = conjugateTransposeLeft ? a.rows : a.cols
        precondition(k == b.rows, "multiply: inner dimensions \(k) and \(b.rows) differ")
        var c = ComplexMatrix(rows: m, cols: b.cols, storage: padded([Double](repeating: 0, count: 2 * m * b.cols)))
        if m == 0 || b.cols == 0 { return c }
        var one = harmose_complex_double(re: 1, im: 0), zero = harmose_complex_double(re: 0, im: 0)
        let aPadded = padded(a.storage), bPadded = padded(b.storage)
        aPadded.withUnsafeBytes { pa in
            bPadded.withUnsafeBytes { pb in
                c.storage.withUnsafeMutableBytes { pc in
                    cblas_zgemm(CblasColMajor, conjugateTransposeLeft ? CblasConjTrans : CblasNoTrans, CblasNoTrans,
                                Int32(m), Int32(b.cols), Int32(k), &one, pa.baseAddress, Int32(max(1, a.rows)),
                                pb.baseAddress, Int32(max(1, b.rows)), &zero, pc.baseAddress, Int32(max(1, m)))
                }
            }
        }
        return c
    }

    // MARK: LAPACK plumbing

    /// Doubles of addressable slack after every buffer handed to OpenBLAS. Debian's OpenBLAS
    /// 0.3.21 intermittently dies with a bad-pointer read inside its kernels on the filtered
    /// solves of GPAW dzp hBN (99 kept S(k) directions): 1 run in 8 of the pipeline's evaluate
    /// stage, single-threaded, more often when k-points are solved concurrently — the signature of
    /// a kernel reading a little past the end of an operand, which faults only when the operand
    /// ends at a page boundary. Buffers with slack behind them make such reads harmless; the values
    /// read there never reach a result (the routines' outputs are unchanged bit for bit).
    static let slack = 512

    /// A copy of `values` with `slack` more doubles of capacity behind its end.
    static func padded(_ values: [Double]) -> [Double] {
        var p = [Double]()
        p.reserveCapacity(values.count + slack)
        p.append(contentsOf: values)
        return p
    }

    /// Runs one LAPACK call with jobz/uplo character arguments and maps `info` to an error.
    private static func call(_ routine: String, jobz: UInt8, n: Int = 0, generalized: Bool = false,
                             _ body: (UnsafePointer<CChar>, UnsafePointer<CChar>) -> Int32) throws {
        var j = CChar(bitPattern: jobz)
        var u = CChar(bitPattern: UInt8(ascii: "U"))
        let info = Int(body(&j, &u))
        if info == 0 { return }
        if info < 0 { throw EigenError.illegalArgument(routine: routine, argument: -info) }
        if generalized && info > n { throw EigenError.notPositiveDefinite(routine: routine, order: info - n) }
        throw EigenError.noConvergence(routine: routine, info: info)
    }
}
