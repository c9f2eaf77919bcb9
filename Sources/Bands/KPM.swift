// Density of states of large structures by the kernel polynomial method, at Γ of the given
// cell (meant for supercells, whose Γ point samples the primitive Brillouin zone). The
// generalized problem Hψ = εSψ becomes the ordinary symmetric one for M = L⁻¹PHPᵀL⁻ᵀ with the
// CHOLMOD factor PSPᵀ = LLᵀ (same eigenvalues); its Chebyshev moments are traced with Rademacher
// vectors, so the spread over vectors gives error bars on the DOS.
import Foundation
import HDF5Kit
import Plots
import Sparse
import StageAPI
import Structures

public struct KPMOptions: Sendable {
    public var moments: Int
    public var randomVectors: Int
    /// Vectors pushed through the operator together (one pass over L and H serves them all).
    public var block: Int = 8
    public var seed: UInt64 = 2024
    public var workers: Int = ProcessInfo.processInfo.activeProcessorCount
    public init(moments: Int, randomVectors: Int) { self.moments = moments; self.randomVectors = randomVectors }
}

public struct KPMDensity: Sendable {
    /// Absolute energies (eV) of the grid.
    public var energies: [Double]
    /// States per eV per cell, both spins, and the standard error of the mean over vectors.
    public var dos: [Double]
    public var standardError: [Double]
    /// Spectral bounds used for the rescaling (eV).
    public var lower: Double
    public var upper: Double
    public var moments: Int
    public var randomVectors: Int
    /// Mean moment estimates μ_n (trace of T_n over the cell's orbitals) and their standard errors.
    public var meanMoments: [Double]
    public var momentErrors: [Double]
    public var orbitals: Int
    public var factorNonzeros: Int

    /// Computes the KPM DOS of `system` at Γ. `log` gets progress lines with an ETA.
    public static func compute(_ system: BlochSystem, structureName: String, options: KPMOptions,
                               log: (String) -> Void = { _ in }) throws -> KPMDensity {
        guard options.moments >= 2, options.moments % 2 == 0 else {
            throw BandsError.invalidKPM("--moments must be an even number ≥ 2, got \(options.moments)")
        }
        guard options.randomVectors >= 2 else {
            throw BandsError.invalidKPM("--random-vectors must be at least 2 (error bars need a spread), got \(options.randomVectors)")
        }
        let bloch = SparseBloch(system)
        let pattern = bloch.pattern
        let n = pattern.size
        let gamma = Vec3(0, 0, 0)
        func real(_ which: SparseBloch.Operator) -> [Double] {
            let c = bloch.values([(which, 1)], at: gamma)
            return (0 ..< pattern.nonzeros).map { c[2 * $0] }
        }
        let h = real(.hamiltonian)
        var cholesky: SparseCholesky?
        if !system.isOrthogonal {
            do {
                cholesky = try SparseCholesky(pattern: pattern, values: real(.overlap))
            } catch let e as SparseError {
                throw BandsError.sparseSolverFailed(structure: structureName, kIndex: 0, k: gamma,
                                                    cause: "\(e); KPM needs a positive definite overlap (no filtering)")
            }
        }
        let workers = options.workers
        let apply: ([Double], inout [Double], Int) -> Void = { x, y, m in
            guard let chol = cholesky else { pattern.multiplyReal(h, x, &y, columns: m, workers: workers); return }
            var t = x
            chol.apply(.lowerTransposed, &t, columns: m)
            chol.apply(.permuteTransposed, &t, columns: m)
            pattern.multiplyReal(h, t, &y, columns: m, workers: workers)
            chol.apply(.permute, &y, columns: m)
            chol.apply(.lower, &y, columns: m)
        }
        let bounds = KernelPolynomial.lanczosBounds(size: n, steps: 80, seed: options.seed, apply: apply)
        // Lanczos extremes converge from inside: widen by 2 % of the range for safety.
        let pad = 0.02 * (bounds.upper - bounds.lower) + 1e-6
        let lower = bounds.lower - pad, upper = bounds.upper + pad
        let center = (upper + lower) / 2, halfWidth = (upper - lower) / 2
        log(String(format: "KPM: %d orbitals, spectrum within [%.2f, %.2f] eV, %d moments × %d random vectors",
                   n, lower, upper, options.moments, options.randomVectors))
        let start = Date()
        let perVector = KernelPolynomial.moments(size: n, count: options.moments, vectors: options.randomVectors,
                                                 block: options.block, seed: options.seed, center: center, halfWidth: halfWidth,
                                                 apply: apply) { done in
            let t = Date().timeIntervalSince(start)
            log(String(format: "KPM: %d/%d random vectors, %.0f s elapsed, ETA %.0f s", done, options.randomVectors, t,
                       t / Double(done) * Double(options.randomVectors - done)))
        }
        let r = Double(perVector.count)
        let nm = options.moments
        var mean = [Double](repeating: 0, count: nm), err = [Double](repeating: 0, count: nm)
        for v in perVector { for j in 0 ..< nm { mean[j] += v[j] / r } }
        for v in perVector { for j in 0 ..< nm { err[j] += (v[j] - mean[j]) * (v[j] - mean[j]) } }
        err = err.map { ($0 / (r - 1) / r).squareRoot() }
        // Grid: 4 points per Jackson resolution π·halfWidth/N, inside the bounds.
        let count = max(2001, 4 * nm + 1)
        let xs = (0 ..< count).map { -0.999 + 1.998 * Double($0) / Double(count - 1) }
        let energies = xs.map { center + halfWidth * $0 }
        // Per vector, then mean and standard error (both spins: × 2; per eV: / halfWidth).
        let scale = 2 / halfWidth
        let densities = KernelPolynomial.densities(moments: perVector, at: xs).map { $0.map { $0 * scale } }
        var dos = [Double](repeating: 0, count: count), se = [Double](repeating: 0, count: count)
        for d in densities { for g in 0 ..< count { dos[g] += d[g] / r } }
        for d in densities { for g in 0 ..< count { se[g] += (d[g] - dos[g]) * (d[g] - dos[g]) } }
        se = se.map { ($0 / (r - 1) / r).squareRoot() }
        return KPMDensity(energies: energies, dos: dos, standardError: se, lower: lower, upper: upper, moments: nm,
                          randomVectors: perVector.count, meanMoments: mean, momentErrors: err, orbitals: n,
                          factorNonzeros: cholesky?.factorNonzeros ?? 0)
    }
}

extension KPMDensity {
    /// ∫ DOS dE from the bottom of the grid (electrons per cell).
    public var integrated: [Double] {
        var out = [Double](repeating: 0, count: dos.count)
        for g in 1 ..< dos.count { out[g] = out[g - 1] + 0.5 * (dos[g] + dos[g - 1]) * (energies[g] - energies[g - 1]) }
        return out
    }

    /// Writes dos.h5 (energies relative to `fermiEnergy` when known) and dos.svg, each atomically.
    public func write(to directory: URL, fermiEnergy: Double?, fermiSource: String) throws {
        let shift = fermiEnergy ?? 0
        let e = energies.map { $0 - shift }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try AtomicOutput.writeFile(at: directory.appendingPathComponent("dos.h5")) { url in
            let f = try HDF5File(creatingAt: url.path)
            try f.write("method", string: "kpm")
            try f.write("energy_eV", doubles: e, shape: [e.count])
            try f.write("dos", doubles: dos, shape: [dos.count])
            try f.write("dos_standard_error", doubles: standardError, shape: [dos.count])
            try f.write("integrated_dos", doubles: integrated, shape: [dos.count])
            try f.write("fermi_energy_before_shift_eV", doubles: [fermiEnergy ?? .nan], shape: [])
            try f.write("fermi_energy_source", string: fermiSource)
            try f.write("kpm_moments", int64s: [Int64(moments)], shape: [])
            try f.write("kpm_random_vectors", int64s: [Int64(randomVectors)], shape: [])
            try f.write("kpm_kernel", string: "jackson")
            try f.write("kpm_spectral_bounds_eV", doubles: [lower, upper], shape: [2])
            try f.write("kpm_mean_moments", doubles: meanMoments, shape: [moments])
            try f.write("kpm_moment_standard_errors", doubles: momentErrors, shape: [moments])
            try f.write("kmesh", int64s: [1, 1, 1], shape: [3])
            try f.write("band_quantity", int64s: [Int64(orbitals)], shape: [])
            try f.flush()
        }
        var chart = LineChart(title: "KPM DOS at Γ, \(moments) moments, \(randomVectors) random vectors (band: ±2 s.e.)",
                              xLabel: fermiEnergy == nil ? "Energy (eV)" : "E − E_F (eV)", yLabel: "DOS (states / eV / cell)")
        var xMin = e.first ?? -1, xMax = e.last ?? 1
        if fermiEnergy != nil { xMin = max(xMin, -6); xMax = min(xMax, 6) }
        let keep = e.indices.filter { e[$0] >= xMin && e[$0] <= xMax }
        chart.xRange = xMin ... xMax
        chart.yRange = 0 ... max(keep.map { dos[$0] + 2 * standardError[$0] }.max() ?? 1, 1e-9) * 1.08
        chart.series = [
            Series(x: keep.map { e[$0] }, y: keep.map { dos[$0] + 2 * standardError[$0] }, color: "#e6a19a", width: 0.7),
            Series(x: keep.map { e[$0] }, y: keep.map { max(0, dos[$0] - 2 * standardError[$0]) }, color: "#e6a19a", width: 0.7),
            Series(x: keep.map { e[$0] }, y: keep.map { dos[$0] }, color: bandColor, width: 1.3),
        ]
        if fermiEnergy != nil { chart.verticalMarkers = [VerticalMarker(x: 0, label: "E_F")] }
        try AtomicOutput.write(Data(chart.render().utf8), to: directory.appendingPathComponent("dos.svg"))
    }
}
