// BLAS.swift: row-major matrix products on OpenBLAS for Float and Double behind one generic
// interface, so engines above (Autograd) write each operation once and dispatch on the scalar type.
import COpenBLAS
import Dispatch
import Foundation

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
        BLASThreads.ensureSerial()
        T.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
               a: a, lda: transA ? m : k, b: b, ldb: transB ? k : n, beta: beta, c: c, ldc: n)
    }

    /// The same product cut into slabs of C (rows when C is tall, else columns), each computed
    /// by single-threaded BLAS, the slabs shared among `workers` threads (the caller's thread
    /// budget). The slabs depend on the shape alone — at most 8, each ≥ 16 rows/columns and
    /// ≥ 1 MFLOP; long reductions are cut along k instead, at most 4 slabs of ≥ 512 — never on
    /// `workers` or on the machine, so the result is bit-identical for any thread count and core
    /// count. More slabs than threads only cost per-core efficiency.
    public static func gemmSplit<T: BLASScalar>(transA: Bool = false, transB: Bool = false,
                                                m: Int, n: Int, k: Int, alpha: T = 1,
                                                a: UnsafePointer<T>, b: UnsafePointer<T>,
                                                beta: T = 0, c: UnsafeMutablePointer<T>, workers: Int) {
        let slabs = min(8, max(1, (2 * m * n * k) >> 20), max(1, max(m, n) / 16))
        if slabs <= 1 || k == 0 {
            gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, b: b, beta: beta, c: c)
            return
        }
        BLASThreads.ensureSerial()
        let lda = transA ? m : k, ldb = transB ? k : n
        let cAddress = Int(bitPattern: c)
        if k >= 4 * max(m, n) {
            // A long reduction (weight gradients: Xᵀ·dY over many rows). Slabs of C would each
            // repack all of the long operands, so split k instead: partial products into scratch,
            // then C = beta·C + Σ partials summed in slab order.
            // Every extra k-slab costs per-core efficiency (measured on the MLP's 256×256×10⁴
            // weight gradient: 111 → 104 → 93 → 84 GFLOP per CPU-second for 1, 2, 4, 8 slabs), so
            // at most 4, each ≥ 512 long: a property of the shape, so results depend neither on
            // `workers` nor on the machine's core count.
            let kSlabs = min(4, max(1, k / 512))
            let scratch = UnsafeMutablePointer<T>.allocate(capacity: kSlabs * m * n)
            defer { scratch.deallocate() }
            let threads = max(1, min(workers, kSlabs))
            ConcurrentLoop.perform(iterations: threads) { w in
                var p = w
                while p < kSlabs {
                    defer { p += threads }
                    let lo = k * p / kSlabs, hi = k * (p + 1) / kSlabs
                    T.gemm(transA: transA, transB: transB, m: m, n: n, k: hi - lo, alpha: alpha,
                           a: transA ? a + lo * m : a + lo, lda: lda, b: transB ? b + lo : b + lo * n, ldb: ldb,
                           beta: 0, c: scratch + p * m * n, ldc: n)
                }
            }
            let count = m * n
            ConcurrentLoop.perform(iterations: threads) { w in
                let cc = UnsafeMutablePointer<T>(bitPattern: cAddress)!
                for i in (count * w / threads)..<(count * (w + 1) / threads) {
                    var sum = beta == 0 ? 0 : beta * cc[i]
                    for p in 0..<kSlabs { sum += scratch[p * count + i] }
                    cc[i] = sum
                }
            }
            return
        }
        let splitRows = m >= n
        let threads = max(1, min(workers, slabs))
        ConcurrentLoop.perform(iterations: threads) { w in
            let cc = UnsafeMutablePointer<T>(bitPattern: cAddress)!
            var p = w
            while p < slabs {
                defer { p += threads }
                if splitRows {
                    let lo = m * p / slabs, hi = m * (p + 1) / slabs
                    T.gemm(transA: transA, transB: transB, m: hi - lo, n: n, k: k, alpha: alpha,
                           a: transA ? a + lo : a + lo * k, lda: lda, b: b, ldb: ldb, beta: beta, c: cc + lo * n, ldc: n)
                } else {
                    let lo = n * p / slabs, hi = n * (p + 1) / slabs
                    T.gemm(transA: transA, transB: transB, m: m, n: hi - lo, k: k, alpha: alpha,
                           a: a, lda: lda, b: transB ? b + lo * k : b + lo, ldb: ldb, beta: beta, c: cc + lo, ldc: n)
                }
            }
        }
    }

    /// `batch` independent products C[i] = alpha·op(A[i])·op(B[i]) + beta·C[i], each matrix
    /// densely packed and the batch contiguous. Small products run in parallel across the batch on
    /// up to `workers` threads; large ones one after another, each split by `gemmSplit`. Every
    /// product is computed the same way for any `workers`.
    public static func gemmBatched<T: BLASScalar>(batch: Int, workers: Int, transA: Bool = false, transB: Bool = false,
                                                  m: Int, n: Int, k: Int, alpha: T = 1,
                                                  a: UnsafePointer<T>, b: UnsafePointer<T>,
                                                  beta: T = 0, c: UnsafeMutablePointer<T>) {
        let sa = m * k, sb = k * n, sc = m * n
        if batch == 0 { return }
        let flopsEach = 2 * m * n * max(k, 1)
        if batch == 1 || flopsEach >= 1 << 22 || workers <= 1 {
            for i in 0..<batch {
                if flopsEach >= 1 << 22 {
                    gemmSplit(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                              a: a + i * sa, b: b + i * sb, beta: beta, c: c + i * sc, workers: workers)
                } else {
                    gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                         a: a + i * sa, b: b + i * sb, beta: beta, c: c + i * sc)
                }
            }
            return
        }
        let threads = min(batch, workers)
        let cAddress = Int(bitPattern: c)
        ConcurrentLoop.perform(iterations: threads) { w in
            let cc = UnsafeMutablePointer<T>(bitPattern: cAddress)!
            var i = w
            while i < batch {
                gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                     a: a + i * sa, b: b + i * sb, beta: beta, c: cc + i * sc)
                i += threads
            }
        }
    }
}
