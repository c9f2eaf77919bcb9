// Band errors: the eigenvalues of the predicted H and of the DFT H, both with the DFT S, compared
// band by band (sorted eigenvalues, same index) at every k-point of the structure's path. The
// window is the occupied bands plus `bandsAbove` more, because deep and high unoccupied bands are
// not what a user of predicted bands looks at while the occupied manifold and the gap are.
import Bands
import Foundation
import Plots
import Structures

public struct BandComparison: Sendable {
    public enum Kind: String, Sendable { case periodic, molecule }
    public var kind: Kind
    public var kpointCount: Int
    public var bandCount: Int
    /// Occupied bands of the reference (nil when neither E_F nor an electron count is known).
    public var occupiedBands: Int?
    /// Bands 0..<windowBands enter the windowed errors.
    public var windowBands: Int
    /// Errors ε_pred − ε_DFT over the window (all k) and over every band.
    public var window = ErrorStats()
    public var allBands = ErrorStats()
    /// Highest occupied / lowest unoccupied levels (max/min over k), absolute eV, both computed
    /// with the reference's occupied count. Gap = LUMO − HOMO.
    public var homoReference: Double?
    public var homoPredicted: Double?
    public var lumoReference: Double?
    public var lumoPredicted: Double?
    /// Reference Fermi level (eV, absolute) used for plots.
    public var fermiEnergy: Double?
    /// Band-major energies [band][k], kept for overlay plots.
    public var referenceBands: [[Double]]
    public var predictedBands: [[Double]]
    public var path: KPath?
    public var distances: [Double]
    public var boundaryDistances: [Double] = []
    /// Most S(k) directions the overlap filter removed at any k (0 without filtering).
    public var droppedOverlapDirections = 0
    /// The filter's threshold (nil: no filtering).
    public var overlapThreshold: Double?
    /// Smallest S(k) eigenvalue over the k-points (how near-singular the basis is; 1 if orthogonal).
    public var smallestOverlapEigenvalue = Double.nan
    /// "Ghost bands": max over k of (N_pred(k) − N_DFT(k))⁺, N_pred = predicted eigenvalues within
    /// ±`ghostWindow` eV of the reference E_F, N_DFT = DFT eigenvalues within ±(ghostWindow +
    /// `ghostMargin`) — predicted levels near E_F that DFT does not have there. The margin keeps a
    /// DFT level just inside the window edge, moved a few meV across it, from counting (0 without
    /// a Fermi level).
    public var ghostBands = 0
    public static let ghostWindow = 1.0, ghostMargin = 0.1
    /// The windowed error with a second overlap threshold (DeepH's 5e-4), when evaluated.
    public var alternative: (threshold: Double, window: ErrorStats, ghostBands: Int, dropped: Int)?

    public var gapReference: Double? { zip2(lumoReference, homoReference, -) }
    public var gapPredicted: Double? { zip2(lumoPredicted, homoPredicted, -) }
    public var homoError: Double? { zip2(homoPredicted, homoReference, -) }
    public var lumoError: Double? { zip2(lumoPredicted, lumoReference, -) }
    public var gapError: Double? { zip2(gapPredicted, gapReference, -) }

    /// Compares `predicted` with `reference` (the same structure and overlap). Molecules (no H
    /// block with R ≠ 0 in the reference) are solved at Γ only; periodic structures along `path`
    /// (nil: the automatic standard path of Bands at `density` points per 1/Å).
    public static func compute(reference: BlochSystem, predicted: BlochSystem, path: KPath?, fermiEnergy: Double?,
                               electronCount: Double?, bandsAbove: Int, density: Double,
                               overlapThreshold: Double? = nil, minimumKPoints: Int = 60,
                               stored: StoredBands? = nil,
                               workers: Int = BlochSystem.defaultSolveWorkers) throws -> BandComparison {
        if let stored { return try compare(stored: stored, predicted: predicted, reference: reference, fermiEnergy: fermiEnergy,
                                           electronCount: electronCount, bandsAbove: bandsAbove, workers: workers) }
        let molecule = !reference.dispersiveDirections.contains(true)
        var kpath: KPath?
        let kpoints: [Vec3]
        var distances: [Double] = [0], boundaries: [Double] = []
        if molecule {
            kpoints = [.zero]
        } else {
            let p = path ?? KPath.standard(for: reference.structure.lattice, periodic: reference.dispersiveDirections,
                                             density: density, minimumPoints: minimumKPoints).path
            kpath = p
            kpoints = p.kpoints
            distances = p.distances(reference.structure.lattice)
            boundaries = p.boundaryDistances(reference.structure.lattice)
        }
        let (ref, dropped) = try reference.eigenvalues(at: kpoints, overlapThreshold: overlapThreshold, workers: workers)
        let pred = try predicted.eigenvalues(at: kpoints, overlapThreshold: overlapThreshold, workers: workers).bands
        var out = summarize(reference: ref, predicted: pred, molecule: molecule, kpoints: kpoints.count, path: kpath,
                            distances: distances, boundaries: boundaries, dropped: dropped, fermiEnergy: fermiEnergy,
                            electronCount: electronCount, bandsAbove: bandsAbove)
        out.overlapThreshold = overlapThreshold
        out.smallestOverlapEigenvalue = try reference.smallestOverlapEigenvalue(at: kpoints)
        return out
    }

    /// Against reference bands a `bands` stage stored: its k-points (Γ alone for a molecule),
    /// its overlap filter, its energies; only the predicted side is solved.
    static func compare(stored: StoredBands, predicted: BlochSystem, reference: BlochSystem, fermiEnergy: Double?,
                        electronCount: Double?, bandsAbove: Int, workers: Int) throws -> BandComparison {
        let molecule = !reference.dispersiveDirections.contains(true)
        let kpoints = molecule ? [stored.kpoints[0]] : stored.kpoints
        let ref = molecule ? stored.energies.map { [$0[0]] } : stored.energies
        let pred = try predicted.eigenvalues(at: kpoints, overlapThreshold: stored.overlapThreshold, workers: workers).bands
        var out = summarize(reference: ref, predicted: pred, molecule: molecule, kpoints: kpoints.count,
                            path: molecule ? nil : stored.path, distances: molecule ? [0] : stored.distances,
                            boundaries: molecule ? [] : stored.boundaryDistances, dropped: stored.droppedOverlapDirections,
                            fermiEnergy: fermiEnergy, electronCount: electronCount, bandsAbove: bandsAbove)
        out.overlapThreshold = stored.overlapThreshold
        out.smallestOverlapEigenvalue = try reference.smallestOverlapEigenvalue(at: kpoints)
        return out
    }

    static func summarize(reference ref: [[Double]], predicted pred: [[Double]], molecule: Bool, kpoints kcount: Int, path kpath: KPath?,
                          distances: [Double], boundaries: [Double], dropped: Int, fermiEnergy: Double?, electronCount: Double?,
                          bandsAbove: Int) -> BandComparison {
        let nb = min(ref.count, pred.count)
        let analysis = BandAnalysis.analyze(bands: ref, fermiEnergy: fermiEnergy, electronCount: electronCount)
        var occupied: Int?
        if let n = analysis.occupiedBands {
            occupied = n
        } else if let e = electronCount, e > 0 {
            occupied = min(nb, Int((e / 2).rounded(.up)))
        } else if let ef = analysis.fermiEnergy {
            occupied = (0 ..< kcount).map { k in ref.prefix(nb).filter { $0[k] <= ef }.count }.max()
        }
        let windowBands = occupied.map { min(nb, $0 + max(0, bandsAbove)) } ?? nb
        var out = BandComparison(kind: molecule ? .molecule : .periodic, kpointCount: kcount, bandCount: nb,
                                 occupiedBands: occupied, windowBands: windowBands, fermiEnergy: analysis.fermiEnergy,
                                 referenceBands: Array(ref.prefix(nb)), predictedBands: Array(pred.prefix(nb)),
                                 path: kpath, distances: distances, boundaryDistances: boundaries)
        out.droppedOverlapDirections = dropped
        if let ef = analysis.fermiEnergy {
            for k in 0 ..< kcount {
                let predicted = pred.filter { abs($0[k] - ef) <= ghostWindow }.count
                let dft = ref.filter { abs($0[k] - ef) <= ghostWindow + ghostMargin }.count
                out.ghostBands = max(out.ghostBands, predicted - dft)
            }
        }
        for b in 0 ..< nb {
            for k in 0 ..< kcount {
                let e = pred[b][k] - ref[b][k]
                out.allBands.add(e)
                if b < windowBands { out.window.add(e) }
            }
        }
        if let n = occupied, n >= 1, n < nb {
            out.homoReference = ref[n - 1].max()
            out.homoPredicted = pred[n - 1].max()
            out.lumoReference = ref[n].min()
            out.lumoPredicted = pred[n].min()
        }
        return out
    }

    /// DFT bands (solid) with predicted bands (dashed) on one chart, relative to the reference
    /// E_F; nil for molecules.
    public func overlayChart(title: String) -> LineChart? {
        guard kind == .periodic, let path else { return nil }
        let ef = fermiEnergy ?? 0
        let shift = { (bands: [[Double]]) in bands.map { $0.map { $0 - ef } } }
        let ref = shift(referenceBands), pred = shift(predictedBands)
        let all = (ref + pred).flatMap { $0 }
        let lo = all.min() ?? -1, hi = all.max() ?? 1
        var chart = LineChart(title: title, xLabel: "k-path", yLabel: fermiEnergy == nil ? "Energy (eV)" : "E − E_F (eV)")
        chart.xRange = 0 ... max(distances.last ?? 1, 1e-9)
        chart.yRange = fermiEnergy == nil ? (lo - 0.5) ... (hi + 0.5) : max(-6, lo - 0.5) ... min(6, hi + 0.5)
        let boundaries = boundaryDistances
        if let t = overlapThreshold {
            chart.title += droppedOverlapDirections > 0
                ? String(format: " — %d S(k) direction%@ below %.0e removed", droppedOverlapDirections, droppedOverlapDirections == 1 ? "" : "s", t)
                : String(format: " — no S(k) direction below %.0e", t)
        }
        chart.xTicks = zip(boundaries, path.boundaryLabels).map { ($0, $1 == "GAMMA" ? "Γ" : $1) }
        chart.verticalMarkers = boundaries.map { VerticalMarker(x: $0, style: .solid, color: "#555", width: 0.7) }
        if fermiEnergy != nil { chart.horizontalLines = [HorizontalLine(y: 0, label: "E_F")] }
        chart.series = ref.enumerated().map { b, e in
            Series(name: b == 0 ? "DFT" : nil, x: distances, y: e, color: "#1f2d3d", width: 1.4)
        } + pred.enumerated().map { b, e in
            Series(name: b == 0 ? "predicted" : nil, x: distances, y: e, color: "#d62728", style: .dashed, width: 1.2)
        }
        return chart
    }
}

@inline(__always) func zip2(_ a: Double?, _ b: Double?, _ op: (Double, Double) -> Double) -> Double? {
    guard let a, let b else { return nil }
    return op(a, b)
}
