// The `bands` pipeline stage: the band structure of every structure of an ingest artifact, along
// the structure's K_PATH or a standard path (Γ only for molecules), written as bands/<name>/
// band.h5, bands.csv, bands.svg, plus summary.tsv with Fermi level, gap and HOMO/LUMO.
// Per-structure: with a partition, each rank computes only the structures it owns.
import Foundation
import Formats
import StageAPI
import Structures

public struct BandsStage: StageKind {
    public let name = "bands"
    public let summary = "Band structures (band.h5, bands.csv, bands.svg) and gaps of every ingested structure from its H(R), S(R)."
    /// Bump whenever the Bands module's numbers or files change for the same input (the runner
    /// cannot see code changes): every bands artifact is then rebuilt.
    /// 1: bands/<name>/{band.h5, bands.csv, bands.svg}, summary.tsv.
    /// 2: standard k-paths tolerate strained cells, pick the nearest K, have ≥ 150 points.
    /// 3: band.h5 stores hsk_symbol_list as DeepH-dock's [segments, 2] string array.
    /// 4: band.h5 records `solver`; large structures may use the sparse solver (K bands near E_F).
    public let artifactVersion = 4
    public let parameters: [ParameterSpec] = [
        ParameterSpec("points_per_inverse_angstrom", .number, default: 60.0, minimum: 1, maximum: 10000,
                      help: "k-point density of standard paths (points per 1/Å of path)"),
        ParameterSpec("overlap_threshold", .number, default: 0.0, minimum: 0,
                      help: "drop S(k) eigen-directions below this before solving (0: no filter)"),
        ParameterSpec("solver", .choice(["dense", "sparse", "auto"]), default: .string("auto"),
                      help: "dense: all bands (LAPACK); sparse: num_bands bands nearest E_F + around_fermi_offset_eV by shift-invert; auto: sparse above \(BandSolver.autoThreshold) orbitals"),
        ParameterSpec("num_bands", .integer, default: .int(40), minimum: 1, help: "sparse solver: eigenvalues kept per k-point"),
        ParameterSpec("around_fermi_offset_eV", .number, default: .double(0),
                      help: "sparse solver: target energy relative to each structure's Fermi level (eV), as `--around` is absolute for one structure"),
    ]
    public let inputs: [InputSpec] = [
        InputSpec("structures", .stage(kinds: ["ingest"]), help: "an ingest stage"),
    ]

    public init() {}

    public static let bandsFolder = "bands"

    public func run(_ context: StageContext) throws -> [String: StageAPI.JSONValue] {
        let structures = try IngestStage.structureFolders(in: context.input("structures"))
        let density = context.parameters.double("points_per_inverse_angstrom")
        let threshold = context.parameters.double("overlap_threshold")
        let owned = structures.enumerated().filter { context.partition.owns($0.offset) }.map(\.element)
        let out = context.outputDirectory.appendingPathComponent(BandsStage.bandsFolder)
        var rows: [String] = []
        var kpoints = 0, metals = 0
        var gaps: [Double] = []
        func format(_ x: Double?) -> String { x.map { String(format: "%.6f", $0) } ?? "" }
        for (n, (name, folder)) in owned.enumerated() {
            let input = try BandInput.load(structure: folder)
            let path = try input.folderKPath.map { try KPath.read($0) }
                ?? KPath.standard(for: input.record.structure.lattice, periodic: input.system.dispersiveDirections, density: density).path
            let solver = BandSolver(rawValue: context.parameters.string("solver"))!.resolved(orbitals: input.system.orbitalCount)
            let bands: BandStructure
            if solver == .sparse {
                guard let ef = input.record.fermiEnergy else {
                    throw BandsError.sparseSolverFailed(structure: folder.path, kIndex: 0, k: Vec3(0, 0, 0),
                                                        cause: "no fermi_energy_eV in info.json to place the target energy")
                }
                let options = SparseSolverOptions(bandCount: context.parameters.int("num_bands"),
                                                  target: ef + context.parameters.double("around_fermi_offset_eV"),
                                                  overlapThreshold: threshold > 0 ? threshold : nil)
                bands = try BandStructure.computeSparse(input.system, structureName: folder.path, path: path, fermiEnergy: ef,
                                                        options: options)
            } else {
                bands = try BandStructure.compute(input.system, path: path, fermiEnergy: input.record.fermiEnergy,
                                                  electronCount: input.electronCount,
                                                  overlapThreshold: threshold > 0 ? threshold : nil, workers: BlochSystem.defaultSolveWorkers)
            }
            try bands.write(to: out.appendingPathComponent(name))
            let a = bands.analysis
            kpoints += bands.kpoints.count
            if a.isMetal == true { metals += 1 }
            if a.isMetal == false, let gap = a.bandGap { gaps.append(gap) }
            rows.append([name, "\(bands.bandCount)", "\(bands.kpoints.count)", format(a.fermiEnergy), a.fermiSource,
                         a.isMetal.map { $0 ? "1" : "0" } ?? "", format(a.bandGap), format(a.homo), format(a.lumo),
                         "\(bands.droppedOverlapDirections)"].joined(separator: "\t"))
            context.progress(done: n + 1, total: owned.count)
        }
        let header = "name\tbands\tkpoints\tfermi_energy_eV\tfermi_source\tmetal\tgap_eV\thomo_eV\tlumo_eV\tdropped_overlap_directions\n"
        try Data((header + rows.map { $0 + "\n" }.joined()).utf8).write(to: context.outputDirectory.appendingPathComponent("summary.tsv"))
        context.log("computed \(owned.count) band structures at \(kpoints) k-points in all; \(metals) metallic")
        var metrics: [String: StageAPI.JSONValue] = [
            "structures": .int(owned.count),
            "kpoints": .int(kpoints),
            "metals": .int(metals),
        ]
        if !gaps.isEmpty {
            metrics["min_gap_eV"] = .double(gaps.min()!)
            metrics["mean_gap_eV"] = .double(gaps.reduce(0, +) / Double(gaps.count))
            metrics["gapped"] = .int(gaps.count)
        }
        return metrics
    }

    public var rankParallelism: RankParallelism { .perStructure }

    /// bands/ moved together by the runner; summary.tsv rows interleaved back into order. The
    /// mean gap is the ranks' means weighted by their counts (equal up to round-off).
    public func merge(_ parts: [StagePart]) throws -> [String: StageAPI.JSONValue] {
        let summary = try StagePart.interleavedTable(parts, file: "summary.tsv")
        try Data(summary.utf8).write(to: parts[0].directory.appendingPathComponent("summary.tsv"))
        var metrics: [String: StageAPI.JSONValue] = ["structures": StagePart.sum(parts, "structures"),
                                                     "kpoints": StagePart.sum(parts, "kpoints"), "metals": StagePart.sum(parts, "metals")]
        let gapped = parts.compactMap { p in p.metrics["gapped"]?.intValue.flatMap { n in p.metrics["mean_gap_eV"]?.doubleValue.map { (n, $0, p.metrics["min_gap_eV"]?.doubleValue ?? .infinity) } } }
        let count = gapped.reduce(0) { $0 + $1.0 }
        if count > 0 {
            metrics["min_gap_eV"] = .double(gapped.map(\.2).min()!)
            metrics["mean_gap_eV"] = .double(gapped.reduce(0.0) { $0 + Double($1.0) * $1.1 } / Double(count))
            metrics["gapped"] = .int(count)
        }
        return metrics
    }
}
