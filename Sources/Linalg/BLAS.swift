// BLAS.swift: row-major matrix products on OpenBLAS for Float and Double behind one generic
// interface, so engines above (Autograd) write each operation once and dispatch on the scalar type.
import COpenBLAS
import Dispatch

/// A real scalar OpenBLAS can multiply: Float (sgemm) or Double (dgemm).
public protocol BLASScalar: BinaryFloatingPoint, Sendable {
    /// C = alpha·op(A)·op(B) + beta·C on row-major matrices; op(A) is m×k, op(B) is k×n.
    static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Self,
                     a: UnsafePointer<Self>, lda: Int, b: UnsafePointer<Self>, ldb: Int,
                     beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int)
}

extension Float: BLASScalar {
    public static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                            a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                            beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}

extension Double: BLASScalar {
    public static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Double,
                            a: UnsafePointer<Double>, lda: Int, b: UnsafePointer<Double>, ldb: Int,
                            beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int) {
        cblas_dgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}

public enum BLAS {
    /// C = alpha·op(A)·op(B) + beta·C, row-major, densely packed (leading dimensions are the
    /// stored row lengths). Empty products are handled here because BLAS rejects zero leading
    /// dimensions: with k == 0 the product is zero and only the beta scaling remains.
    public static func gemm<T: BLASScalar>(transA: Bool = false, transB: Bool = false,
                                           m: Int, n: Int, k: Int, alpha: T = 1,
                                           a: UnsafePointer<T>, b: UnsafePointer<T>,
                                           beta: T = 0, c: UnsafeMutablePointer<T>) {
        if m == 0 || n == 0 { return }
        if k == 0 {
            for i in 0..<(m * n) { c[i] = beta == 0 ? 0 : beta * c[i] }
            return
        }
        T.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
               a: a, lda: transA ? m : k, b: b, ldb: transB ? k : n, beta: beta, c: c, ldc: n)
    }

    /// `batch` independent products C[i] = alpha·op(A[i])·op(B[i]) + beta·C[i], each matrix
    /// densely packed and the batch contiguous. Small products run in parallel across the batch
    /// with OpenBLAS held at one thread (it would otherwise oversubscribe the cores); large ones
    /// run one after another with OpenBLAS threading inside each.
    public static func gemmBatched<T: BLASScalar>(batch: Int, transA: Bool = false, transB: Bool = false,
                                                  m: Int, n: Int, k: Int, alpha: T = 1,
                                                  a: UnsafePointer<T>, b: UnsafePointer<T>,
                                                  beta: T = 0, c: UnsafeMutablePointer<T>) {
        let sa = m * k, sb = k * n, sc = m * n
        if batch == 0 { return }
        let flopsEach = 2 * m * n * max(k, 1)
        if batch == 1 || flopsEach >= 1 << 22 {
            for i in 0..<batch {
                gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                     a: a + i * sa, b: b + i * sb, beta: beta, c: c + i * sc)
            }
            return
        }
        let saved = BLASThreads.count
        BLASThreads.count = 1
        defer { BLASThreads.count = saved }
        let workers = min(batch, BLASThreads.parallelWorkers)
        let cAddress = Int(bitPattern: c)
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            let cc = UnsafeMutablePointer<T>(bitPattern: cAddress)!
            var i = w
            while i < batch {
                gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                     a: a + i * sa, b: b + i * sb, beta: beta, c: cc + i * sc)
                i += workers
            }
        }
    }
}

extension BLASThreads {
    /// Workers an engine uses when it parallelises above BLAS: the thread count OpenBLAS was
    /// started with (OPENBLAS_NUM_THREADS, else the core count), captured once.
    public static let parallelWorkers: Int = max(1, Int(openblas_get_num_threads()))
}
