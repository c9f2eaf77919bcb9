// Timing of the per-k-point work (Bloch sum, generalized eigen-solve) for `harmose bench-bands`,
// and an export of the exact matrices so tools/bench_bands_scipy.py can time scipy on the same
// problems and check it gets the same eigenvalues.
import Dispatch
import Foundation
import StageAPI
import HDF5Kit
import Bands
import Linalg
import Structures

public struct BandsBenchmarkResult: Sendable {
    public var orbitals: Int
    public var kpoints: Int
    public var repeats: Int
    /// Median seconds per k-point: building H(k) and S(k); solving (values only, 1 BLAS thread).
    public var medianAssembly: Double
    public var medianSolve: Double
    /// Wall time per k-point of a whole run over all k-points with `workers` concurrent solves.
    public var parallelPerK: Double
    public var workers: Int
}

public enum BandsBenchmark {
    static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) * 1e-9 }

    static func median(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    /// Times `repeats` passes over `kpoints`; if `export` is given, writes k, H(k), S(k) (as
    /// [nk, n, n, 2] row-major re/im) and our eigenvalues [nk, n] there.
    public static func run(_ system: BlochSystem, kpoints: [Vec3], repeats: Int, export: URL? = nil,
                           workers: Int = ProcessInfo.processInfo.activeProcessorCount) throws -> BandsBenchmarkResult {
        var assembly: [Double] = [], solve: [Double] = []
        var values: [[Double]] = []
        for r in 0 ..< repeats {
            for k in kpoints {
                let t0 = now()
                let h = system.hamiltonian(at: k), s = system.overlap(at: k)
                let t1 = now()
                let w = try Eigen.generalizedHermitian(h, s, vectors: false).values
                let t2 = now()
                assembly.append(t1 - t0); solve.append(t2 - t1)
                if r == 0 { values.append(w) }
            }
        }
        // Parallel run as `harmose bands` does it.
        let rounds = max(1, repeats / 2)
        var parallel: [Double] = []
        for _ in 0 ..< rounds {
            let t0 = now()
            _ = try system.eigenvalues(at: kpoints, workers: workers)
            parallel.append((now() - t0) / Double(kpoints.count))
        }
        if let export {
            let n = system.orbitalCount
            try AtomicOutput.writeFile(at: export) { url in
                let f = try HDF5File(creatingAt: url.path)
                try f.write("k", doubles: kpoints.flatMap { [$0.x, $0.y, $0.z] }, shape: [kpoints.count, 3])
                for (name, build) in [("h", system.hamiltonian(at:)), ("s", system.overlap(at:))] {
                    var flat: [Double] = []
                    flat.reserveCapacity(kpoints.count * n * n * 2)
                    for k in kpoints {
                        let m = build(k)
                        for r in 0 ..< n { for c in 0 ..< n { let e = m[r, c]; flat.append(e.re); flat.append(e.im) } }
                    }
                    try f.write(name, doubles: flat, shape: [kpoints.count, n, n, 2])
                }
                try f.write("eigenvalues", doubles: values.flatMap { $0 }, shape: [kpoints.count, n])
                try f.write("swift_median_solve_s", doubles: [median(solve)], shape: [])
                try f.flush()
            }
        }
        return BandsBenchmarkResult(orbitals: system.orbitalCount, kpoints: kpoints.count, repeats: repeats,
                                    medianAssembly: median(assembly), medianSolve: median(solve),
                                    parallelPerK: median(parallel), workers: workers)
    }
}
