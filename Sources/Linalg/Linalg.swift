// Linalg: dense linear algebra on OpenBLAS — BLAS products and LAPACK eigen/linear solvers behind
// small Swift functions. Knows nothing of chemistry or autodiff.
import COpenBLAS

/// OpenBLAS runs single-threaded in HarmoSE. Its thread count is process-wide state, so two
/// pieces of work that set and restored it around themselves (a training and a band structure
/// running side by side) would change each other's settings; instead every caller parallelises
/// above BLAS on its own thread budget (an execution context) and OpenBLAS is set to one thread
/// once, before its first use, and never changed again.
public enum BLASThreads {
    private static let serial: Bool = {
        openblas_set_num_threads(1)
        return true
    }()

    /// Sets OpenBLAS to one thread the first time it is called (thread-safe, once per process);
    /// every Linalg entry point that reaches OpenBLAS or LAPACK calls it first.
    @inline(__always)
    public static func ensureSerial() { _ = serial }

    /// Threads OpenBLAS uses (always 1 once any Linalg routine ran).
    public static var count: Int { Int(openblas_get_num_threads()) }
}
