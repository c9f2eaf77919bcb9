// `harmose dos`: density of states on a Monkhorst–Pack mesh with Gaussian smearing. A thin shell
// over Bands.
import ArgumentParser
import Bands
import Foundation
import Structures

public struct DOSCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "dos",
        abstract: "Compute the density of states (dos.h5, dos.svg) on a k-mesh with Gaussian smearing.",
        discussion: """
        STRUCTURE is one structure folder (DeepH-dock or DeepH legacy). Eigenvalues of \
        H(k)c = εS(k)c on a Monkhorst–Pack mesh (directions without hoppings get one k-point) are \
        broadened by Gaussians of width --sigma; the DOS counts both spins (states/eV/cell). E_F: \
        info.json fermi_energy_eV, else the level holding info.json occupation electrons.

        --method kpm: the kernel polynomial method at Γ of the given cell, for large supercells \
        (whose Γ point samples the primitive zone): --moments Chebyshev moments (Jackson kernel, \
        resolution ≈ π·(spectral half-width)/moments) traced with --random-vectors Rademacher \
        vectors through a sparse Cholesky factor of S; dos.h5 adds dos_standard_error (from the \
        spread over vectors). --mesh and --sigma do not apply.

        Examples:
          harmose dos data/MoTe2 --mesh 12,12,1 --sigma 0.05 --out outputs/dos
          harmose dos big-supercell --method kpm --moments 1024 --random-vectors 16 --out outputs/kpm
        """
    )

    @Argument(help: "Structure folder (DeepH-dock or DeepH legacy).")
    public var structure: String

    @Option(help: ArgumentHelp("Monkhorst–Pack mesh n1,n2,n3.", valueName: "n1,n2,n3"))
    public var mesh: String = "12,12,1"

    @Option(help: ArgumentHelp("Gaussian smearing width (eV).", valueName: "eV"))
    public var sigma: Double = 0.05

    @Option(help: ArgumentHelp("smearing (diagonalise on a k-mesh) or kpm (kernel polynomial method at Γ, large cells).",
                               valueName: "smearing|kpm"))
    public var method: String = "smearing"

    @Option(help: "KPM: Chebyshev moments (even).")
    public var moments: Int = 1024

    @Option(name: .customLong("random-vectors"), help: "KPM: random vectors of the stochastic trace (error bars shrink as 1/√count).")
    public var randomVectors: Int = 16

    @Option(help: ArgumentHelp("Hamiltonian to use instead of the DFT one (operator file or structure folder).", valueName: "file"))
    public var hamiltonian: String?

    @Option(name: .customLong("overlap-threshold"),
            help: ArgumentHelp("Drop S(k) eigen-directions below this value before solving.", valueName: "value"))
    public var overlapThreshold: Double?

    @Option(help: "k-points solved concurrently (default: all cores; OpenBLAS runs single-threaded inside each).")
    public var workers: Int = ProcessInfo.processInfo.activeProcessorCount

    @Option(help: ArgumentHelp("Output folder (dos.h5, dos.svg are replaced atomically).", valueName: "dir"))
    public var out: String

    @Flag(name: .shortAndLong, help: "Print nothing but errors.")
    public var quiet = false

    public init() {}

    /// The parsed --mesh.
    public var meshSize: SIMD3<Int> {
        get throws {
            let parts = mesh.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard parts.count == 3, let a = parts[0], let b = parts[1], let c = parts[2], a >= 1, b >= 1, c >= 1 else {
                throw ValidationError("--mesh must be three positive integers like 12,12,1, got `\(mesh)`")
            }
            // Checked as given, before non-periodic directions collapse to 1: a mesh is bounded
            // whatever the structure (and the product may not overflow).
            let (ab, o1) = a.multipliedReportingOverflow(by: b), (abc, o2) = ab.multipliedReportingOverflow(by: c)
            guard !o1, !o2, abc <= 1_000_000 else {
                throw ValidationError("--mesh \(mesh) asks for more than a million k-points, the limit")
            }
            return SIMD3(a, b, c)
        }
    }

    public func validate() throws {
        _ = try meshSize
        guard method == "smearing" || method == "kpm" else { throw ValidationError("--method must be smearing or kpm, got `\(method)`") }
        if method == "kpm" {
            guard moments >= 2, moments % 2 == 0 else { throw ValidationError("--moments must be an even number ≥ 2, got \(moments)") }
            guard randomVectors >= 2 else { throw ValidationError("--random-vectors must be at least 2, got \(randomVectors)") }
            if overlapThreshold != nil { throw ValidationError("--overlap-threshold does not apply to --method kpm (it needs a positive definite S)") }
        }
        guard workers >= 1 else { throw ValidationError("--workers must be at least 1, got \(workers)") }
        guard sigma > 0, sigma.isFinite else { throw ValidationError("--sigma must be a positive number of eV, got \(sigma)") }
        if let t = overlapThreshold, !(t >= 0 && t.isFinite) {
            throw ValidationError("--overlap-threshold must be a non-negative number, got \(t)")
        }
    }

    public func run() throws {
        let log: (String) -> Void = { line in if !quiet { print(line) } }
        if method == "kpm" { _ = try executeKPM(log: log) } else { _ = try execute(log: log) }
    }

    @discardableResult
    public func execute(log: (String) -> Void = { _ in }) throws -> DensityOfStates {
        let input = try BandInput.load(structure: URL(fileURLWithPath: structure),
                                       hamiltonian: hamiltonian.map { URL(fileURLWithPath: $0) })
        guard method == "smearing" else { throw ValidationError("execute() computes the smeared DOS; executeKPM() does --method kpm") }
        let dos = try DensityOfStates.compute(input.system, mesh: try meshSize, sigma: sigma, fermiEnergy: input.record.fermiEnergy,
                                              electronCount: input.electronCount, overlapThreshold: overlapThreshold,
                                              workers: workers)
        try dos.write(to: URL(fileURLWithPath: out))
        log("DOS of \(dos.bandCount) bands on a \(dos.mesh.x)×\(dos.mesh.y)×\(dos.mesh.z) mesh, σ = \(sigma) eV → \(out)/dos.h5, dos.svg")
        if let ef = dos.fermiEnergy { log(String(format: "Fermi level %.4f eV (%@)", ef, dos.fermiSource)) }
        return dos
    }

    /// `--method kpm`: the kernel polynomial DOS at Γ of the given cell.
    @discardableResult
    public func executeKPM(log: (String) -> Void = { _ in }) throws -> KPMDensity {
        let input = try BandInput.load(structure: URL(fileURLWithPath: structure),
                                       hamiltonian: hamiltonian.map { URL(fileURLWithPath: $0) })
        var options = KPMOptions(moments: moments, randomVectors: randomVectors)
        options.workers = workers
        let kpm = try KPMDensity.compute(input.system, structureName: structure, options: options, log: log)
        let ef = input.record.fermiEnergy
        try kpm.write(to: URL(fileURLWithPath: out), fermiEnergy: ef, fermiSource: ef == nil ? "unknown" : "info.json fermi_energy_eV")
        log("KPM DOS of \(kpm.orbitals) orbitals at Γ, \(moments) moments, \(randomVectors) random vectors → \(out)/dos.h5, dos.svg")
        return kpm
    }
}
