// `harmose bands`: band structure along a k-path from a structure folder's H(R), S(R) (or a
// replacement Hamiltonian, e.g. a prediction). A thin shell over Bands.
import ArgumentParser
import Bands
import Foundation
import Structures

public struct BandsCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "bands",
        abstract: "Compute a band structure (band.h5, bands.csv, bands.svg) from DFT or predicted H(R).",
        discussion: """
        STRUCTURE is one structure folder (DeepH-dock or DeepH legacy). H(k) = Σ_R e^{i2πk·R} H(R) \
        and S(k) likewise (k fractional, R in lattice units); the generalized eigenproblem \
        H(k)c = εS(k)c is solved at every k-point of the path, in parallel.

        k-path: --kpath FILE (DeepH-dock K_PATH format: one segment per line, \
        `N k1 k2 k3 k1' k2' k3' LABEL1 LABEL2`, fractional, N points including both ends); else \
        STRUCTURE/K_PATH if present; else a standard path chosen from the lattice (2D hexagonal, \
        square, rectangular; 3D simple/fcc/bcc cubic, hexagonal; Γ only for a molecule).

        Fermi level: info.json fermi_energy_eV (moved to mid-gap for an insulator, as DeepH-dock \
        does), else from the electron count (info.json occupation). Energies in band.h5 and \
        bands.csv are relative to it (band_data, DeepH-dock's keys); band_gap and is_metal follow.

        --hamiltonian replaces the DFT Hamiltonian: an operator file in the structure folder's \
        layout (hamiltonian.h5 / hamiltonians.h5) or another structure folder; its blocks must \
        match the structure's atoms and orbitals. --overlap-threshold removes S(k) directions with \
        eigenvalue below it (over-complete bases) and reports how many were dropped.

        Large structures: --solver sparse keeps only the --num-bands K eigenvalues nearest \
        --around E (default: the Fermi level), by shift-invert (UMFPACK LU of H(k) − σS(k) \
        driving ARPACK); band.h5 then records solver, solver_target_eV, solver_shift_eV, \
        bands_kept and residual_norms ‖Hψ − εSψ‖. --solver auto uses it above \(BandSolver.autoThreshold) \
        orbitals. --window W makes it an error for a kept eigenvalue to lie farther than W eV \
        from the target.

        Examples:
          harmose bands data/MoTe2 --out outputs/bands
          harmose bands big-supercell --solver sparse --num-bands 40 --out outputs/big-bands
          harmose bands data/MoTe2 --hamiltonian predicted/hamiltonian.h5 --out outputs/pred-bands
        """
    )

    @Argument(help: "Structure folder (DeepH-dock or DeepH legacy).")
    public var structure: String

    @Option(help: ArgumentHelp("K_PATH file (DeepH-dock format).", valueName: "file"))
    public var kpath: String?

    @Option(help: ArgumentHelp("Hamiltonian to use instead of the DFT one (operator file or structure folder).", valueName: "file"))
    public var hamiltonian: String?

    @Option(name: .customLong("overlap-threshold"),
            help: ArgumentHelp("Drop S(k) eigen-directions below this value before solving.", valueName: "value"))
    public var overlapThreshold: Double?

    @Option(help: ArgumentHelp("Eigensolver: dense (all bands, LAPACK), sparse (K bands near --around), auto (sparse above \(BandSolver.autoThreshold) orbitals).",
                               valueName: "dense|sparse|auto"))
    public var solver: String = "dense"

    @Option(name: .customLong("num-bands"), help: "Sparse solver: eigenvalues kept per k-point (nearest the target).")
    public var numBands: Int = 40

    @Option(help: ArgumentHelp("Sparse solver: target energy in eV, absolute (default: the Fermi level of info.json).", valueName: "eV"))
    public var around: Double?

    @Option(help: ArgumentHelp("Sparse solver: fail unless every kept eigenvalue is within this many eV of the target.", valueName: "eV"))
    public var window: Double?

    @Option(name: .customLong("max-restarts"), help: "Sparse solver: ARPACK restart limit per k-point.")
    public var maxRestarts: Int = 300

    @Option(name: .customLong("points-per-inverse-angstrom"),
            help: "k-point density of automatic paths (points per 1/Å of path).")
    public var density: Double = 60

    @Option(help: "k-points solved concurrently (default 1 for now, see BlochSystem.defaultSolveWorkers: Debian's OpenBLAS 0.3.21 read past its operands when solves ran concurrently).")
    public var workers: Int = BlochSystem.defaultSolveWorkers

    @Option(help: ArgumentHelp("Output folder (band.h5, bands.csv, bands.svg are replaced atomically).", valueName: "dir"))
    public var out: String

    @Flag(name: .shortAndLong, help: "Print nothing but errors.")
    public var quiet = false

    public init() {}

    public func validate() throws {
        if let t = overlapThreshold, !(t >= 0 && t.isFinite) {
            throw ValidationError("--overlap-threshold must be a non-negative number, got \(t)")
        }
        guard density > 0, density.isFinite else { throw ValidationError("--points-per-inverse-angstrom must be positive") }
        guard workers >= 1 else { throw ValidationError("--workers must be at least 1, got \(workers)") }
        guard BandSolver(rawValue: solver) != nil else { throw ValidationError("--solver must be dense, sparse or auto, got `\(solver)`") }
        guard numBands >= 1 else { throw ValidationError("--num-bands must be at least 1, got \(numBands)") }
        if let a = around, !a.isFinite { throw ValidationError("--around must be a finite energy in eV") }
        if let w = window, !(w > 0 && w.isFinite) { throw ValidationError("--window must be a positive number of eV, got \(w)") }
        guard maxRestarts >= 1 else { throw ValidationError("--max-restarts must be at least 1") }
    }

    public func run() throws {
        let result = try execute { line in if !quiet { print(line) } }
        _ = result
    }

    /// Computes and writes the band structure; `log` receives human-readable lines.
    @discardableResult
    public func execute(log: (String) -> Void = { _ in }) throws -> BandStructure {
        let input = try BandInput.load(structure: URL(fileURLWithPath: structure),
                                       hamiltonian: hamiltonian.map { URL(fileURLWithPath: $0) })
        let path: KPath
        if let file = kpath.map({ URL(fileURLWithPath: $0) }) ?? input.folderKPath {
            path = try KPath.read(file)
            log("k-path: \(file.path) (\(path.segments.count) segments)")
        } else {
            let (auto, kind) = KPath.standard(for: input.record.structure.lattice, periodic: input.system.dispersiveDirections,
                                              density: density)
            path = auto
            log("k-path: standard \(kind.rawValue) path \(auto.boundaryLabels.joined(separator: "–"))")
        }
        let chosen = BandSolver(rawValue: solver)!.resolved(orbitals: input.system.orbitalCount)
        let bands: BandStructure
        if chosen == .sparse {
            guard let target = around ?? input.record.fermiEnergy else {
                throw ValidationError("\(structure): no fermi_energy_eV in info.json; give the target energy with --around")
            }
            var options = SparseSolverOptions(bandCount: numBands, target: target, overlapThreshold: overlapThreshold, window: window)
            options.maxRestarts = maxRestarts
            log("sparse solver: \(numBands) bands nearest \(target) eV, \(input.system.orbitalCount) orbitals, \(path.kpoints.count) k-points")
            bands = try BandStructure.computeSparse(input.system, structureName: structure, path: path,
                                                    fermiEnergy: input.record.fermiEnergy, options: options, log: log)
        } else {
            bands = try BandStructure.compute(input.system, path: path, fermiEnergy: input.record.fermiEnergy,
                                              electronCount: input.electronCount, overlapThreshold: overlapThreshold,
                                              workers: workers)
        }
        try bands.write(to: URL(fileURLWithPath: out))
        log(summary(bands))
        return bands
    }

    private func summary(_ b: BandStructure) -> String {
        var lines = ["\(b.bandCount) bands at \(b.kpoints.count) k-points → \(out)/band.h5, bands.csv, bands.svg"]
        if let s = b.sparse {
            lines.append(String(format: "sparse solver: %d bands nearest %.4f eV, largest residual ‖Hψ − εSψ‖ %.2e eV",
                                s.bandCount, s.target, s.residuals.flatMap { $0 }.max() ?? 0))
        }
        if let ef = b.analysis.fermiEnergy {
            lines.append(String(format: "Fermi level %.4f eV (%@)", ef, b.analysis.fermiSource))
        } else {
            lines.append("Fermi level unknown (no fermi_energy_eV or occupation in info.json): energies are absolute")
        }
        if b.analysis.isMetal == true { lines.append("metallic") }
        if b.analysis.isMetal == false, let gap = b.analysis.bandGap { lines.append(String(format: "band gap %.4f eV", gap)) }
        if let t = b.overlapThreshold {
            lines.append("overlap filter: threshold \(t), dropped up to \(b.droppedOverlapDirections) direction(s) per k-point")
        }
        return lines.joined(separator: "\n")
    }
}
