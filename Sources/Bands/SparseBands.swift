// Band structures of large structures from the sparse shift-invert solver: K bands nearest a
// target energy at every k-point of a path (solved one k at a time; the LU and BLAS use the
// cores), with the solver, shift, bands kept and residual norms recorded for band.h5. Also the
// measured switch between the dense and the sparse solver (`--solver auto`).
import Foundation
import Linalg
import Structures

public enum BandSolver: String, Sendable, CaseIterable {
    case dense, sparse, auto

    /// Orbitals above which `auto` picks the sparse solver. Measured on tiled graphene
    /// (BENCHMARKS.md, "Sparse bands"): a dense k-point costs as much as a sparse one for 40
    /// bands near about 2 000 orbitals and grows as n³ beyond.
    public static let autoThreshold = 2000

    public func resolved(orbitals: Int) -> BandSolver {
        self == .auto ? (orbitals > Self.autoThreshold ? .sparse : .dense) : self
    }
}

/// What band.h5 records about a sparse solve.
public struct SparseBandInfo: Sendable {
    public var target: Double
    public var bandCount: Int
    /// Shift factorised at each k (equals the target unless it was singular there).
    public var shifts: [Double]
    /// Residual norms [band][k].
    public var residuals: [[Double]]
    public var droppedDirections: [Int]
}

extension BandStructure {
    /// K bands nearest `options.target` along `path`. Errors name `structureName`, the k-point
    /// and the cause. `log` receives one line per k-point with an ETA.
    public static func computeSparse(_ system: BlochSystem, structureName: String, path: KPath, fermiEnergy: Double?,
                                     options: SparseSolverOptions, log: (String) -> Void = { _ in }) throws -> BandStructure {
        let lattice = system.structure.lattice
        let kpoints = path.kpoints
        let solver = ShiftInvertSolver(system)
        var perK: [[Double]] = [], residuals: [[Double]] = [], shifts: [Double] = [], dropped: [Int] = []
        let start = Date()
        for (q, k) in kpoints.enumerated() {
            let solution: SparseKPointSolution
            do {
                solution = try solver.solve(at: k, options: options)
            } catch let e as SparseSolveFailure {
                throw BandsError.sparseSolverFailed(structure: structureName, kIndex: q, k: k, cause: e.description)
            }
            perK.append(solution.values); residuals.append(solution.residuals)
            shifts.append(solution.shift); dropped.append(solution.droppedDirections)
            let elapsed = Date().timeIntervalSince(start)
            let eta = elapsed / Double(q + 1) * Double(kpoints.count - q - 1)
            log(String(format: "k-point %d/%d: %d bands, max residual %.1e eV, %.1f s elapsed, ETA %.0f s",
                       q + 1, kpoints.count, solution.values.count, solution.residuals.max() ?? 0, elapsed, eta))
        }
        let kc = options.bandCount, nk = kpoints.count
        let bands = (0 ..< kc).map { b in (0 ..< nk).map { perK[$0][b] } }
        let res = (0 ..< kc).map { b in (0 ..< nk).map { residuals[$0][b] } }
        var out = BandStructure(path: path, kpoints: kpoints, distances: path.distances(lattice),
                                boundaryDistances: path.boundaryDistances(lattice), energies: bands,
                                analysis: .analyze(bands: bands, fermiEnergy: fermiEnergy, electronCount: nil),
                                reciprocalVectors: lattice.reciprocalVectors, overlapThreshold: options.overlapThreshold,
                                droppedOverlapDirections: dropped.max() ?? 0)
        out.sparse = SparseBandInfo(target: options.target, bandCount: kc, shifts: shifts, residuals: res, droppedDirections: dropped)
        return out
    }
}
