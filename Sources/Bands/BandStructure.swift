// Band structures along a k-path: Fermi level and gap analysis, and the band.h5 / bands.csv /
// bands.svg outputs (band.h5 uses DeepH-dock's keys so its tools can read ours).
import Foundation
import StageAPI
import HDF5Kit
import Linalg
import Structures

/// Where the Fermi level came from and what the bands say about gap and metallicity.
public struct BandAnalysis: Equatable, Sendable {
    /// Absolute Fermi energy (eV) that energies are shifted by; nil when it cannot be known
    /// (no Fermi energy in info.json and no electron count).
    public var fermiEnergy: Double?
    public var fermiSource: String
    /// Lowest unoccupied minus highest occupied energy over the sampled k (0 for a metal).
    public var bandGap: Double?
    public var isMetal: Bool?
    /// Highest occupied / lowest unoccupied energy (absolute eV) of an insulator.
    public var homo: Double?
    public var lumo: Double?
    /// Number of occupied bands of an insulator.
    public var occupiedBands: Int?

    /// Fermi level, gap and metallicity from band-major energies [band][k].
    ///
    /// With a Fermi energy (info.json): as DeepH-dock does, the number of bands below E_F is
    /// counted at every k; if it is the same at (nearly) every k the system is an insulator and
    /// E_F is moved to mid-gap, otherwise it is a metal and E_F is kept. Without one, an electron
    /// count (info.json `occupation`, two electrons per band) fills the lowest bands: a positive
    /// gap gives mid-gap E_F; otherwise E_F is the level that holds that many electrons on
    /// average over the sampled k-points — on a path this is only an estimate, so prefer a DFT
    /// Fermi energy for metals.
    public static func analyze(bands: [[Double]], fermiEnergy: Double?, electronCount: Double?) -> BandAnalysis {
        let nb = bands.count
        let nk = bands.first?.count ?? 0
        guard nb > 0, nk > 0 else {
            return BandAnalysis(fermiEnergy: fermiEnergy, fermiSource: fermiEnergy == nil ? "unknown" : "info.json")
        }
        func insulator(_ nocc: Int, source: String) -> BandAnalysis? {
            guard nocc >= 1, nocc < nb else { return nil }
            let homo = bands[nocc - 1].max()!, lumo = bands[nocc].min()!
            guard lumo > homo else { return nil }
            return BandAnalysis(fermiEnergy: (homo + lumo) / 2, fermiSource: source, bandGap: lumo - homo,
                                isMetal: false, homo: homo, lumo: lumo, occupiedBands: nocc)
        }
        if let ef = fermiEnergy {
            var histogram: [Int: Int] = [:]
            for k in 0 ..< nk { histogram[(0 ..< nb).reduce(0) { $0 + (bands[$1][k] < ef ? 1 : 0) }, default: 0] += 1 }
            // A few k-points grazing E_F do not make a metal: only categories holding more than
            // 5 % of the k-points (per category) count, as in DeepH-dock.
            let minCount = max(1, Int(0.05 * Double(nk) / Double(histogram.count)))
            let significant = histogram.values.filter { $0 > minCount }.count
            let metal = histogram.count > 1 && significant > 1
            if !metal {
                let nocc = histogram.max(by: { ($0.value, -$0.key) < ($1.value, -$1.key) })!.key
                if let r = insulator(nocc, source: "info.json fermi_energy_eV, moved to mid-gap") { return r }
            }
            return BandAnalysis(fermiEnergy: ef, fermiSource: "info.json fermi_energy_eV", bandGap: 0, isMetal: true)
        }
        if let electrons = electronCount, electrons > 0 {
            let filled = electrons / 2
            if filled == filled.rounded(), let r = insulator(Int(filled), source: "electron count (occupation), mid-gap") {
                return r
            }
            let sorted = bands.flatMap { $0 }.sorted()
            let m = min(max(Int((filled * Double(nk)).rounded()), 1), sorted.count - 1)
            return BandAnalysis(fermiEnergy: (sorted[m - 1] + sorted[m]) / 2,
                                fermiSource: "electron count (occupation), k-path estimate", bandGap: 0, isMetal: true)
        }
        return BandAnalysis(fermiEnergy: nil, fermiSource: "unknown")
    }
}

/// Bands along a k-path with everything a plot or band.h5 needs.
public struct BandStructure: Sendable {
    public var path: KPath
    public var kpoints: [Vec3]
    public var distances: [Double]
    public var boundaryDistances: [Double]
    /// Absolute energies (eV), band-major [band][k].
    public var energies: [[Double]]
    public var analysis: BandAnalysis
    /// Reciprocal vectors (rows, with 2π, 1/Å).
    public var reciprocalVectors: [Vec3]
    public var overlapThreshold: Double?
    /// Most S(k) directions removed at any k (0 without filtering).
    public var droppedOverlapDirections: Int
    /// Set when the bands come from the sparse shift-invert solver (K bands near a target).
    public var sparse: SparseBandInfo? = nil

    public static func compute(_ system: BlochSystem, path: KPath, fermiEnergy: Double?, electronCount: Double?,
                               overlapThreshold: Double? = nil,
                               workers: Int = BlochSystem.defaultSolveWorkers) throws -> BandStructure {
        let lattice = system.structure.lattice
        try path.checkSize(source: "k-path")
        let kpoints = path.kpoints
        let (bands, dropped) = try system.eigenvalues(at: kpoints, overlapThreshold: overlapThreshold, workers: workers)
        return BandStructure(path: path, kpoints: kpoints, distances: path.distances(lattice),
                             boundaryDistances: path.boundaryDistances(lattice), energies: bands,
                             analysis: .analyze(bands: bands, fermiEnergy: fermiEnergy, electronCount: electronCount),
                             reciprocalVectors: lattice.reciprocalVectors, overlapThreshold: overlapThreshold,
                             droppedOverlapDirections: dropped)
    }

    public var bandCount: Int { energies.count }

    /// Energies relative to the Fermi level (unshifted when it is unknown).
    public var shiftedEnergies: [[Double]] {
        let ef = analysis.fermiEnergy ?? 0
        return energies.map { $0.map { $0 - ef } }
    }

    /// Writes band.h5, bands.csv and bands.svg into `directory` as one unit: all three are
    /// built in a staging folder and moved into place only when every one is complete.
    public func write(to directory: URL) throws {
        try AtomicOutput.writeFiles(in: directory, names: ["band.h5", "bands.csv", "bands.svg"]) { stage in
            try writeHDF5(to: stage.appendingPathComponent("band.h5"))
            try Data(csv.utf8).write(to: stage.appendingPathComponent("bands.csv"))
            try Data(svg.utf8).write(to: stage.appendingPathComponent("bands.svg"))
        }
    }

    /// band.h5 with DeepH-dock's keys (`band_data` [bands × k] in eV with E_F = 0, …) plus
    /// HarmoSE's: `fermi_energy_source`, `overlap_drop_threshold`, `overlap_dropped_directions`,
    /// `homo_eV`/`lumo_eV` (absolute, insulators only).
    public func writeHDF5(to url: URL) throws {
        let f = try HDF5File(creatingAt: url.path)
        let nk = kpoints.count, nb = bandCount, np = path.segments.count
        try f.write("rlv", doubles: reciprocalVectors.flatMap { [$0.x, $0.y, $0.z] }, shape: [3, 3])
        try f.write("spinful", int64s: [0], shape: [])
        try f.write("band_quantity", int64s: [Int64(nb)], shape: [])
        try f.write("fermi_energy_before_shift_eV", doubles: [analysis.fermiEnergy ?? .nan], shape: [])
        try f.write("fermi_energy_eV", doubles: [analysis.fermiEnergy == nil ? .nan : 0], shape: [])
        try f.write("fermi_energy_source", string: analysis.fermiSource)
        try f.write("k_path_quantity", int64s: [Int64(np)], shape: [])
        try f.write("k_path_density_list", int64s: path.segments.map { Int64($0.count) }, shape: [np])
        try f.write("hsk_vector_list", doubles: path.segments.flatMap { [$0.start.x, $0.start.y, $0.start.z, $0.end.x, $0.end.y, $0.end.z] },
                    shape: [np, 2, 3])
        try f.write("hsk_symbol_list", strings: path.segments.flatMap { [$0.startLabel, $0.endLabel] }, shape: [np, 2])
        try f.write("kpoints_quantity", int64s: [Int64(nk)], shape: [])
        try f.write("kpoints_frac_list", doubles: kpoints.flatMap { [$0.x, $0.y, $0.z] }, shape: [nk, 3])
        try f.write("kpoints_distance_list", doubles: distances, shape: [nk])
        try f.write("hsk_distance_list", doubles: boundaryDistances, shape: [np + 1])
        try f.write("band_data", doubles: shiftedEnergies.flatMap { $0 }, shape: [nb, nk])
        try f.write("band_gap", doubles: [analysis.bandGap ?? .nan], shape: [])
        try f.write("is_metal", int64s: [analysis.isMetal.map { $0 ? 1 : 0 } ?? -1], shape: [])
        try f.write("overlap_drop_threshold", doubles: [overlapThreshold ?? 0], shape: [])
        try f.write("overlap_dropped_directions", int64s: [Int64(droppedOverlapDirections)], shape: [])
        try f.write("solver", string: sparse == nil ? "dense" : "sparse")
        if let sparse {
            // Sparse solver: band_data holds the K bands nearest the target, not all bands.
            try f.write("solver_target_eV", doubles: [sparse.target], shape: [])
            try f.write("solver_shift_eV", doubles: sparse.shifts, shape: [nk])
            try f.write("bands_kept", int64s: [Int64(sparse.bandCount)], shape: [])
            try f.write("residual_norms", doubles: sparse.residuals.flatMap { $0 }, shape: [nb, nk])
            try f.write("overlap_dropped_directions_per_k", int64s: sparse.droppedDirections.map(Int64.init), shape: [nk])
        }
        if let homo = analysis.homo, let lumo = analysis.lumo {
            try f.write("homo_eV", doubles: [homo], shape: [])
            try f.write("lumo_eV", doubles: [lumo], shape: [])
        }
        try f.flush()
    }

    /// One row per k-point: index, path distance, fractional k, label at path boundaries, then
    /// every band's energy relative to E_F.
    public var csv: String {
        var labelAt: [Int: String] = [:]
        var start = 0
        let labels = path.boundaryLabels
        for (p, s) in path.segments.enumerated() {
            labelAt[start] = labelAt[start].map { $0 } ?? labels[p]
            labelAt[start + s.count - 1] = labels[p + 1]
            start += s.count
        }
        var out = "k_index,distance_inv_angstrom,k1,k2,k3,label"
        for b in 0 ..< bandCount { out += ",band_\(b + 1)_eV" }
        out += "\n"
        let shifted = shiftedEnergies
        for q in 0 ..< kpoints.count {
            let k = kpoints[q]
            out += "\(q),\(distances[q]),\(k.x),\(k.y),\(k.z),\(labelAt[q] ?? "")"
            for b in 0 ..< bandCount { out += ",\(shifted[b][q])" }
            out += "\n"
        }
        return out
    }

    var bandTitle: String {
        var t = "\(bandCount) bands, \(kpoints.count) k-points"
        if let gap = analysis.bandGap, analysis.isMetal == false { t += String(format: ", gap %.3f eV", gap) }
        if analysis.isMetal == true { t += ", metallic" }
        return t
    }
}

/// "GAMMA" → "Γ" (and the other Greek names K_PATH files spell out).
func prettyLabel(_ label: String) -> String {
    let greek = ["GAMMA": "Γ", "G": "Γ", "DELTA": "Δ", "LAMBDA": "Λ", "SIGMA": "Σ", "SIGMA1": "Σ₁"]
    return label.split(separator: "|").map { greek[$0.uppercased()] ?? String($0) }.joined(separator: "|")
}
