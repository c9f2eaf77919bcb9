// `harmose bench-sparse` (hidden): per-k-point time and peak memory of the sparse shift-invert
// solver (and of the KPM DOS) on tiled supercells, behind tools/bench/sparse.sh; exports the
// exact sparse H(k), S(k) so tools/bench_sparse_scipy.py can time SciPy on the same matrices.
import ArgumentParser
import Bands
import Formats
import Foundation
import HDF5Kit
import StageAPI
import Structures

public struct BenchSparseCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "bench-sparse",
        abstract: "Time the sparse band solver / KPM DOS on a tiled supercell (used by tools/bench/sparse.sh).",
        shouldDisplay: false
    )

    @Argument(help: "Structure folder (periodic).")
    public var structure: String

    @Option(help: ArgumentHelp("Diagonal supercell repeats n1,n2,n3.", valueName: "n1,n2,n3"))
    public var supercell: String = "1,1,1"

    @Option(name: .customLong("num-bands"), help: "Eigenvalues nearest E_F per k-point.")
    public var numBands: Int = 40

    @Option(help: ArgumentHelp("k-points (fractional of the supercell), `;`-separated triples.", valueName: "k1,k2,k3;…"))
    public var kpoints: String = "0,0,0;0.1,0.2,0"

    @Flag(help: "Also solve densely (LAPACK) and report the time and the largest eigenvalue difference.")
    public var dense = false

    @Option(help: ArgumentHelp("Instead of bands: KPM DOS at Γ with this many moments.", valueName: "N"))
    public var kpmMoments: Int?

    @Option(help: "KPM random vectors.")
    public var kpmVectors: Int = 16

    @Option(help: ArgumentHelp("Write the first k-point's H(k), S(k) (CSR) and our eigenvalues here.", valueName: "file.h5"))
    public var export: String?

    @Option(name: .customLong("write-supercell"),
            help: ArgumentHelp("Write the tiled supercell as a DeepH-dock folder here (for `harmose bands`) and exit.", valueName: "dir"))
    public var writeSupercell: String?

    public init() {}

    static func peakRSSGiB() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_maxrss) / 1024 / 1024 // kB → GiB
    }

    public func run() throws {
        let parts = supercell.split(separator: ",").compactMap { Int($0) }
        guard parts.count == 3, parts.allSatisfy({ $0 >= 1 }) else { throw ValidationError("--supercell must be three positive integers") }
        let input = try BandInput.load(structure: URL(fileURLWithPath: structure))
        let record = input.record
        let t0 = Date()
        let big = Supercell.make(record.structure, operators: [record.hamiltonian, record.overlap], repeats: SIMD3(parts[0], parts[1], parts[2]))
        let system = try BlochSystem(structure: big.structure, hamiltonian: big.operators[0]!, overlap: big.operators[1])
        let buildSeconds = Date().timeIntervalSince(t0)
        guard let ef = record.fermiEnergy else { throw ValidationError("\(structure): no fermi_energy_eV") }
        if let writeSupercell {
            let url = URL(fileURLWithPath: writeSupercell)
            let tiled = DFTRecord(name: url.lastPathComponent, structure: big.structure, hamiltonian: big.operators[0],
                                  overlap: big.operators[1], fermiEnergy: ef)
            try FormatWriter.write(tiled, to: url, format: .deephDock)
            print("wrote \(big.structure.atomCount) atoms, \(system.orbitalCount) orbitals → \(url.path)")
            return
        }
        var json: [String: Any] = ["structure": structure, "supercell": supercell, "atoms": system.structure.atomCount,
                                   "orbitals": system.orbitalCount, "build_s": buildSeconds]
        if let moments = kpmMoments {
            var options = KPMOptions(moments: moments, randomVectors: kpmVectors)
            options.block = min(16, kpmVectors)
            let t = Date()
            let kpm = try KPMDensity.compute(system, structureName: structure, options: options) { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
            json["kpm_s"] = Date().timeIntervalSince(t)
            json["kpm_moments"] = moments
            json["kpm_vectors"] = kpmVectors
            json["factor_nonzeros"] = kpm.factorNonzeros
            json["peak_rss_GiB"] = Self.peakRSSGiB()
            let data = try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        let ks: [Vec3] = try kpoints.split(separator: ";").map { triple in
            let v = triple.split(separator: ",").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
            guard v.count == 3 else { throw ValidationError("--kpoints: `\(triple)` is not k1,k2,k3") }
            return Vec3(v[0], v[1], v[2])
        }
        let solver = ShiftInvertSolver(system)
        json["nonzeros"] = solver.bloch.pattern.nonzeros
        var times: [Double] = [], residual = 0.0, firstValues: [Double] = [], factor = 0
        var denseTimes: [Double] = [], worstDifference = 0.0
        var phases: [[String: Double]] = []
        for (q, k) in ks.enumerated() {
            let t = Date()
            let r = try solver.solve(at: k, options: SparseSolverOptions(bandCount: numBands, target: ef))
            times.append(Date().timeIntervalSince(t))
            residual = max(residual, r.residuals.max() ?? 0)
            factor = r.factorNonzeros
            phases.append(["filter_s": r.seconds.filter, "factor_s": r.seconds.factor, "arnoldi_s": r.seconds.arnoldi,
                           "rayleigh_ritz_s": r.seconds.rayleighRitz, "operator_applications": Double(r.operatorApplications),
                           "restarts": Double(r.restarts)])
            if q == 0 { firstValues = r.values }
            if dense {
                let t = Date()
                let all = try system.eigenvalues(at: k).values
                denseTimes.append(Date().timeIntervalSince(t))
                let near = Array(all.sorted { abs($0 - ef) < abs($1 - ef) }.prefix(numBands)).sorted()
                worstDifference = max(worstDifference, zip(near, r.values).map { abs($0 - $1) }.max() ?? 0)
            }
        }
        let sorted = times.sorted()
        json["per_k_s"] = times
        json["median_per_k_s"] = sorted[sorted.count / 2]
        json["max_residual_eV"] = residual
        json["lu_nonzeros"] = factor
        json["phases"] = phases
        json["peak_rss_GiB"] = Self.peakRSSGiB()
        if dense {
            json["dense_per_k_s"] = denseTimes
            json["max_abs_difference_vs_dense_eV"] = worstDifference
        }
        if let export {
            let k = ks[0]
            let bloch = solver.bloch
            try AtomicOutput.writeFile(at: URL(fileURLWithPath: export)) { url in
                let f = try HDF5File(creatingAt: url.path)
                let p = bloch.pattern
                try f.write("indptr", int64s: p.rowStart.map(Int64.init), shape: [p.size + 1])
                try f.write("indices", int64s: p.columns.map(Int64.init), shape: [p.nonzeros])
                for (name, op) in [("h", SparseBloch.Operator.hamiltonian), ("s", .overlap)] {
                    let v = bloch.values([(op, 1)], at: k)
                    try f.write(name, doubles: v, shape: [p.nonzeros, 2])
                }
                try f.write("k", doubles: [k.x, k.y, k.z], shape: [3])
                try f.write("target_eV", doubles: [ef], shape: [])
                try f.write("eigenvalues", doubles: firstValues, shape: [firstValues.count])
                try f.flush()
            }
        }
        let data = try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }
}
