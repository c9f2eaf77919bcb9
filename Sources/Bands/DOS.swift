// Density of states on a Monkhorst–Pack mesh with Gaussian smearing. The electron count that fixes
// E_F without a Fermi energy is info.json `occupation`, which the Formats reader carries in the
// record (`DFTRecord.electronCount`).
import Foundation
import StageAPI
import HDF5Kit
import Structures

public struct DensityOfStates: Sendable {
    public var mesh: SIMD3<Int>
    public var sigma: Double
    /// Energy grid relative to E_F (absolute when E_F is unknown), eV.
    public var energies: [Double]
    /// States per eV per cell, both spin channels (each band holds two electrons).
    public var dos: [Double]
    /// ∫ DOS dE from the bottom of the grid (electrons per cell).
    public var integrated: [Double]
    /// Absolute Fermi energy (eV) and where it came from.
    public var fermiEnergy: Double?
    public var fermiSource: String
    public var bandCount: Int
    public var droppedOverlapDirections: Int

    /// Solves every k of the mesh, then sums Gaussians of width `sigma` (eV). E_F: `fermiEnergy`
    /// (info.json) when given; otherwise the level at which the smeared occupation holds
    /// `electronCount` electrons; otherwise unknown (energies stay absolute).
    public static func compute(_ system: BlochSystem, mesh: SIMD3<Int>, sigma: Double, fermiEnergy: Double?,
                               electronCount: Double?, overlapThreshold: Double? = nil, step: Double? = nil,
                               workers: Int = BlochSystem.defaultSolveWorkers) throws -> DensityOfStates {
        guard sigma > 0, sigma.isFinite else { throw BandsError.invalidSigma(sigma) }
        // Directions without dispersion need no sampling.
        var m = mesh
        for d in 0 ..< 3 where !system.dispersiveDirections[d] { m[d] = 1 }
        let kpoints = try monkhorstPack(m)
        let (bands, dropped) = try system.eigenvalues(at: kpoints, overlapThreshold: overlapThreshold, workers: workers)
        let levels = bands.flatMap { $0 }
        let weight = 2 / Double(kpoints.count)

        var ef = fermiEnergy
        var source = fermiEnergy == nil ? "unknown" : "info.json fermi_energy_eV"
        if ef == nil, let n = electronCount, n > 0, let lo = levels.min(), let hi = levels.max() {
            // Smeared occupation N(E) = Σ w · ½ erfc((ε − E)/(√2 σ)) is monotone: bisect.
            func count(_ e: Double) -> Double { levels.reduce(0) { $0 + weight * 0.5 * erfc(($1 - e) / (2.0.squareRoot() * sigma)) } }
            var a = lo - 10 * sigma, b = hi + 10 * sigma
            for _ in 0 ..< 200 where b - a > 1e-12 {
                let mid = (a + b) / 2
                if count(mid) < n { a = mid } else { b = mid }
            }
            ef = (a + b) / 2
            source = "electron count (occupation), Gaussian-smeared"
        }
        let shift = ef ?? 0
        let lo = (levels.min() ?? 0) - shift - 5 * sigma, hi = (levels.max() ?? 0) - shift + 5 * sigma
        let de = max(step ?? sigma / 5, (hi - lo) / 20000)
        let count = Int(((hi - lo) / de).rounded(.up)) + 1
        let energies = (0 ..< count).map { lo + Double($0) * de }
        var dos = [Double](repeating: 0, count: count)
        let norm = weight / (sigma * (2 * Double.pi).squareRoot())
        let reach = 6 * sigma
        for level in levels {
            let e = level - shift
            let first = max(0, Int(((e - reach - lo) / de).rounded(.down)))
            let last = min(count - 1, Int(((e + reach - lo) / de).rounded(.up)))
            if first > last { continue }
            for g in first ... last {
                let x = (energies[g] - e) / sigma
                dos[g] += norm * exp(-0.5 * x * x)
            }
        }
        var integrated = [Double](repeating: 0, count: count)
        for g in 1 ..< count { integrated[g] = integrated[g - 1] + 0.5 * (dos[g] + dos[g - 1]) * de }
        return DensityOfStates(mesh: m, sigma: sigma, energies: energies, dos: dos, integrated: integrated,
                               fermiEnergy: ef, fermiSource: source, bandCount: bands.count, droppedOverlapDirections: dropped)
    }

    /// Writes dos.h5 and dos.svg into `directory` as one unit (staged, then moved into place).
    public func write(to directory: URL) throws {
        try AtomicOutput.writeFiles(in: directory, names: ["dos.h5", "dos.svg"]) { stage in
            let f = try HDF5File(creatingAt: stage.appendingPathComponent("dos.h5").path)
            try f.write("energy_eV", doubles: energies, shape: [energies.count])
            try f.write("dos", doubles: dos, shape: [dos.count])
            try f.write("integrated_dos", doubles: integrated, shape: [integrated.count])
            try f.write("fermi_energy_before_shift_eV", doubles: [fermiEnergy ?? .nan], shape: [])
            try f.write("fermi_energy_source", string: fermiSource)
            try f.write("sigma_eV", doubles: [sigma], shape: [])
            try f.write("kmesh", int64s: [Int64(mesh.x), Int64(mesh.y), Int64(mesh.z)], shape: [3])
            try f.write("band_quantity", int64s: [Int64(bandCount)], shape: [])
            try f.write("overlap_dropped_directions", int64s: [Int64(droppedOverlapDirections)], shape: [])
            try f.flush()
            try Data(svg.utf8).write(to: stage.appendingPathComponent("dos.svg"))
        }
    }
}
