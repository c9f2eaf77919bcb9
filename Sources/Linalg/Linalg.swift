// Linalg: dense linear algebra on OpenBLAS — BLAS products and LAPACK eigen/linear solvers behind
// small Swift functions. Knows nothing of chemistry or autodiff.
import COpenBLAS

public enum BLASThreads {
    /// Number of threads OpenBLAS uses. Engines that parallelise above BLAS set this to 1.
    public static var count: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(newValue)) }
    }
}
