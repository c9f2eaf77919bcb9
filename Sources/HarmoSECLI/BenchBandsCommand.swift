// `harmose bench-bands` (hidden): per-k-point timings behind tools/bench/bands.sh.
import ArgumentParser
import Benchmarks
import Bands
import Foundation
import Structures

public struct BenchBandsCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "bench-bands",
        abstract: "Time per-k-point band solves (used by tools/bench/bands.sh).",
        shouldDisplay: false
    )

    @Argument(help: "Structure folder.")
    public var structure: String

    @Option(help: ArgumentHelp("Diagonal supercell repeats n1,n2,n3 applied before timing.", valueName: "n1,n2,n3"))
    public var supercell: String = "1,1,1"

    @Option(help: "Number of k-points (spread over the standard path).")
    public var kpoints: Int = 8

    @Option(help: "Timed passes over the k-points.")
    public var repeats: Int = 5

    @Option(help: "k-points solved concurrently (default: all cores; OpenBLAS runs single-threaded inside each).")
    public var workers: Int = ProcessInfo.processInfo.activeProcessorCount

    @Option(help: ArgumentHelp("Write k, H(k), S(k) and eigenvalues here for the scipy comparison.", valueName: "file.h5"))
    public var export: String?

    public init() {}

    public func run() throws {
        let parts = supercell.split(separator: ",").compactMap { Int($0) }
        guard parts.count == 3, parts.allSatisfy({ $0 >= 1 }) else {
            throw ValidationError("--supercell must be three positive integers, got `\(supercell)`")
        }
        let input = try BandInput.load(structure: URL(fileURLWithPath: structure))
        var system = input.system
        let repeatsVector = SIMD3(parts[0], parts[1], parts[2])
        if repeatsVector != SIMD3(1, 1, 1) {
            let record = input.record
            let big = Supercell.make(record.structure, operators: [record.hamiltonian, record.overlap], repeats: repeatsVector)
            system = try BlochSystem(structure: big.structure, hamiltonian: big.operators[0]!, overlap: big.operators[1])
        }
        let path = KPath.standard(for: system.structure.lattice, periodic: system.dispersiveDirections).path.kpoints
        let step = max(1, path.count / max(1, kpoints))
        let ks = Array(stride(from: 0, to: path.count, by: step).prefix(kpoints)).map { path[$0] }
        let r = try BandsBenchmark.run(system, kpoints: ks, repeats: repeats, export: export.map { URL(fileURLWithPath: $0) },
                                          workers: max(1, workers))
        let json: [String: Any] = [
            "structure": structure, "supercell": supercell, "orbitals": r.orbitals, "kpoints": r.kpoints, "repeats": r.repeats,
            "median_assembly_s": r.medianAssembly, "median_solve_s": r.medianSolve, "parallel_wall_per_k_s": r.parallelPerK, "workers": r.workers,
        ]
        let data = try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }
}
