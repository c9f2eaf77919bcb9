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

        Examples:
          harmose bands data/MoTe2 --out outputs/bands
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

    @Option(name: .customLong("points-per-inverse-angstrom"),
            help: "k-point density of automatic paths (points per 1/Å of path).")
    public var density: Double = 60

    @Option(help: "k-points solved concurrently (default: all cores; OpenBLAS runs single-threaded inside each).")
    public var workers: Int = ProcessInfo.processInfo.activeProcessorCount

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
        let bands = try BandStructure.compute(input.system, path: path, fermiEnergy: input.record.fermiEnergy,
                                              electronCount: input.electronCount, overlapThreshold: overlapThreshold,
                                              workers: workers)
        try bands.write(to: URL(fileURLWithPath: out))
        log(summary(bands))
        return bands
    }

    private func summary(_ b: BandStructure) -> String {
        var lines = ["\(b.bandCount) bands at \(b.kpoints.count) k-points → \(out)/band.h5, bands.csv, bands.svg"]
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
