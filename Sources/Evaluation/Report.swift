// The outputs of an evaluation: metrics.json (stable keys, documented in docs/evaluation.md), a
// human-readable table, parity.svg and band overlays.
import Foundation
import StageAPI
import Plots
import Structures

public struct EvaluationReport: Sendable {
    /// Version of metrics.json's layout; bump when a key changes meaning or disappears.
    public static let formatVersion = 1

    public var prediction: String
    public var reference: String
    public var options: EvaluationOptions
    public var structures: [StructureEvaluation]
    public var unmatchedPredictions: [String]
    /// Reference structures left out for want of a prediction (`skipMissingPredictions`).
    public var skippedReferences: [String]
    public var sample: ReservoirSample

    public init(prediction: String, reference: String, options: EvaluationOptions, structures: [StructureEvaluation],
                unmatchedPredictions: [String], skippedReferences: [String] = [], sample: ReservoirSample) {
        self.prediction = prediction; self.reference = reference; self.options = options
        self.structures = structures; self.unmatchedPredictions = unmatchedPredictions
        self.skippedReferences = skippedReferences; self.sample = sample
    }

    /// H errors over all structures (every entry weighs the same).
    public var total: HamiltonianErrors {
        var t = HamiltonianErrors()
        for s in structures { t.merge(s.errors) }
        return t
    }

    /// Band summary over structures: each structure's windowed MAE weighs the same (k-point
    /// counts differ between structures; one long path must not dominate).
    public struct BandSummary: Sendable {
        public var structures = 0
        public var mae = ErrorStats()          // of per-structure window MAEs
        public var maxAbs = 0.0
        public var maeAllBands = ErrorStats()  // of per-structure all-band MAEs
        public var homo = ErrorStats(), lumo = ErrorStats(), gap = ErrorStats()
        public var ghostBands = 0, structuresWithGhosts = 0
        public var smallestOverlapEigenvalue = Double.infinity
        public var alternativeThreshold: Double?
        public var alternativeMAE = ErrorStats()   // of per-structure window MAEs at that threshold
    }

    public var bandSummary: BandSummary {
        var s = BandSummary()
        for e in structures {
            guard let b = e.bands, b.window.count > 0 else { continue }
            s.structures += 1
            s.mae.add(b.window.mae)
            s.maxAbs = max(s.maxAbs, b.window.maxAbs)
            s.maeAllBands.add(b.allBands.mae)
            if let x = b.homoError { s.homo.add(x) }
            if let x = b.lumoError { s.lumo.add(x) }
            if let x = b.gapError { s.gap.add(x) }
            s.ghostBands += b.ghostBands
            if b.ghostBands > 0 { s.structuresWithGhosts += 1 }
            if b.smallestOverlapEigenvalue.isFinite { s.smallestOverlapEigenvalue = min(s.smallestOverlapEigenvalue, b.smallestOverlapEigenvalue) }
            if let a = b.alternative, a.window.count > 0 { s.alternativeThreshold = a.threshold; s.alternativeMAE.add(a.window.mae) }
        }
        return s
    }

    public static let windowDescription = "occupied bands of the reference plus bands_above more (band index < n_occ + bands_above), every k-point"

    // MARK: JSON

    static func meV(_ x: Double?) -> JSONValue {
        guard let x, x.isFinite else { return .null }
        return .double(x * 1000)
    }

    static func eV(_ x: Double?) -> JSONValue {
        guard let x, x.isFinite else { return .null }
        return .double(x)
    }

    static func statsJSON(_ s: ErrorStats) -> JSONValue {
        ["count": .int(s.count), "mae_meV": meV(s.mae), "rmse_meV": meV(s.rmse), "max_abs_meV": meV(s.count > 0 ? s.maxAbs : nil)]
    }

    static func table(_ groups: [String: ErrorStats]) -> JSONValue {
        .object(groups.sorted { $0.key < $1.key }.map { ($0.key, statsJSON($0.value)) })
    }

    static func hamiltonianJSON(_ e: HamiltonianErrors, breakdown: Bool) -> JSONValue {
        var pairs: [(String, JSONValue)] = [
            ("overall", statsJSON(e.overall)), ("onsite", statsJSON(e.onsite)), ("offsite", statsJSON(e.offsite)),
        ]
        if let w = e.worst {
            pairs.append(("max_error", [
                "structure": .string(w.structure),
                "block": .array([w.key.shift.x, w.key.shift.y, w.key.shift.z, w.key.i, w.key.j].map { .int($0) }),
                "row": .int(w.row), "col": .int(w.col),
                "reference_eV": eV(w.reference), "predicted_eV": eV(w.predicted), "error_meV": meV(w.error),
            ]))
        } else {
            pairs.append(("max_error", .null))
        }
        if breakdown {
            pairs.append(("by_element_pair", table(e.byElementPair)))
            pairs.append(("by_l_pair", table(e.byLPair)))
            pairs.append(("by_shell_pair", .object(e.byShellPair.sorted { $0.key < $1.key }.map { ($0.key.description, statsJSON($0.value)) })))
        }
        pairs.append(("missing_blocks", .int(e.missingBlocks)))
        pairs.append(("extra_blocks", .int(e.extraBlocks)))
        return .object(pairs)
    }

    static func bandsJSON(_ b: BandComparison) -> JSONValue {
        [
            "kind": .string(b.kind.rawValue),
            "kpoints": .int(b.kpointCount),
            "bands": .int(b.bandCount),
            "occupied_bands": b.occupiedBands.map { .int($0) } ?? .null,
            "window_bands": .int(b.windowBands),
            "overlap_dropped_directions": .int(b.droppedOverlapDirections),
            "mae_meV": meV(b.window.mae),
            "rmse_meV": meV(b.window.rmse),
            "max_abs_meV": meV(b.window.count > 0 ? b.window.maxAbs : nil),
            "mae_all_bands_meV": meV(b.allBands.mae),
            "ghost_bands": .int(b.ghostBands),
            "smallest_overlap_eigenvalue": b.smallestOverlapEigenvalue.isFinite ? .double(b.smallestOverlapEigenvalue) : .null,
            "overlap_threshold": b.overlapThreshold.map { .double($0) } ?? .null,
            "alternative_threshold": b.alternative.map { a in
                ["overlap_threshold": .double(a.threshold), "mae_meV": meV(a.window.count > 0 ? a.window.mae : nil),
                 "ghost_bands": .int(a.ghostBands), "overlap_dropped_directions": .int(a.dropped)] } ?? .null,
            "homo_reference_eV": eV(b.homoReference), "homo_predicted_eV": eV(b.homoPredicted), "homo_error_meV": meV(b.homoError),
            "lumo_reference_eV": eV(b.lumoReference), "lumo_predicted_eV": eV(b.lumoPredicted), "lumo_error_meV": meV(b.lumoError),
            "gap_reference_eV": eV(b.gapReference), "gap_predicted_eV": eV(b.gapPredicted), "gap_error_meV": meV(b.gapError),
        ]
    }

    /// metrics.json.
    public var json: JSONValue {
        let t = total
        let bs = bandSummary
        let bands: JSONValue = bs.structures == 0 ? .null : [
            "structures": .int(bs.structures),
            "window": .string(Self.windowDescription),
            "mae_meV": Self.meV(bs.mae.mae),
            "max_abs_meV": Self.meV(bs.maxAbs),
            "mae_all_bands_meV": Self.meV(bs.maeAllBands.mae),
            "homo_mae_meV": Self.meV(bs.homo.mae), "lumo_mae_meV": Self.meV(bs.lumo.mae), "gap_mae_meV": Self.meV(bs.gap.mae),
            "homo_lumo_structures": .int(bs.gap.count),
            "ghost_bands": .int(bs.ghostBands), "structures_with_ghost_bands": .int(bs.structuresWithGhosts),
            "ghost_window_eV": .double(BandComparison.ghostWindow),
            "smallest_overlap_eigenvalue": bs.smallestOverlapEigenvalue.isFinite ? .double(bs.smallestOverlapEigenvalue) : .null,
            "alternative_threshold": bs.alternativeThreshold.map { t in
                ["overlap_threshold": .double(t), "mae_meV": Self.meV(bs.alternativeMAE.mae)] } ?? .null,
        ]
        return [
            "format_version": .int(Self.formatVersion),
            "prediction": .string(prediction),
            "reference": .string(reference),
            "structure_count": .int(structures.count),
            "options": [
                "bands_above": .int(options.bandsAbove), "kpoint_density": .double(options.kpointDensity),
                "minimum_kpoints": .int(options.minimumKPoints),
                "bands": .bool(options.computeBands), "parity_sample": .int(options.paritySample),
                "overlap_threshold": options.overlapThreshold.map { .double($0) } ?? .null,
                "skip_missing_predictions": .bool(options.skipMissingPredictions),
            ],
            "hamiltonian": Self.hamiltonianJSON(t, breakdown: true),
            "bands": bands,
            "structures": .array(structures.map { s in
                [
                    "name": .string(s.name), "reference": .string(s.referencePath), "prediction": .string(s.predictionPath),
                    "atoms": .int(s.atomCount), "orbitals": .int(s.orbitalCount), "blocks": .int(s.blockCount),
                    "hamiltonian": Self.hamiltonianJSON(s.errors, breakdown: false),
                    "prediction_hermiticity_max_meV": Self.meV(s.predictionHermiticity),
                    "bands": s.bands.map(Self.bandsJSON) ?? .null,
                ]
            }),
            "unmatched_predictions": .array(unmatchedPredictions.map { .string($0) }),
            "skipped_references": .array(skippedReferences.map { .string($0) }),
        ]
    }

    // MARK: Table

    static func num(_ x: Double?, _ width: Int = 10, scale: Double = 1000) -> String {
        guard let x, x.isFinite else { return String(repeating: " ", count: width - 1) + "–" }
        return String(format: "%\(width).3f", x * scale)
    }

    static func statsRow(_ label: String, _ s: ErrorStats, labelWidth: Int = 22) -> String {
        label.padding(toLength: labelWidth, withPad: " ", startingAt: 0)
            + num(s.mae) + num(s.rmse) + num(s.count > 0 ? s.maxAbs : nil) + String(format: "%12d", s.count)
    }

    /// The human-readable summary `harmose eval` prints.
    public var text: String {
        let t = total
        var lines: [String] = []
        lines.append("Evaluated \(structures.count) structure\(structures.count == 1 ? "" : "s"): predictions \(prediction) vs reference \(reference)")
        let header = "".padding(toLength: 22, withPad: " ", startingAt: 0) + "   MAE meV  RMSE meV   max meV     entries"
        lines.append("")
        lines.append("Hamiltonian error")
        lines.append(header)
        lines.append(Self.statsRow("all", t.overall))
        lines.append(Self.statsRow("on-site", t.onsite))
        lines.append(Self.statsRow("off-site", t.offsite))
        if t.missingBlocks > 0 { lines.append("  \(t.missingBlocks) reference block(s) missing from the predictions (counted as 0)") }
        if t.extraBlocks > 0 { lines.append("  \(t.extraBlocks) predicted block(s) without a reference block (ignored in H errors)") }
        if let w = t.worst {
            lines.append(String(format: "  largest error %.3f meV in %@ block %@ entry (%d, %d): DFT %.6f eV, predicted %.6f eV",
                                w.error * 1000, w.structure, w.key.description, w.row, w.col, w.reference, w.predicted))
        }
        lines.append("")
        lines.append("By element pair")
        lines.append(header)
        for (k, v) in t.byElementPair.sorted(by: { $0.key < $1.key }) { lines.append(Self.statsRow("  " + k, v)) }
        lines.append("")
        lines.append("By l pair")
        lines.append(header)
        for (k, v) in t.byLPair.sorted(by: { $0.key < $1.key }) { lines.append(Self.statsRow("  " + k, v)) }
        let shellPairs = t.byShellPair.sorted { $0.value.mae > $1.value.mae }
        if !shellPairs.isEmpty {
            lines.append("")
            lines.append("Worst shell pairs (all \(shellPairs.count) in metrics.json)")
            lines.append(header)
            for (k, v) in shellPairs.prefix(8) { lines.append(Self.statsRow("  " + k.description, v)) }
        }
        let bs = bandSummary
        if bs.structures > 0 {
            lines.append("")
            lines.append("Band error (window: occupied + \(options.bandsAbove) above; mean over \(bs.structures) structure\(bs.structures == 1 ? "" : "s"))")
            lines.append(String(format: "  MAE %.3f meV, max %.3f meV; all bands MAE %.3f meV", bs.mae.mae * 1000, bs.maxAbs * 1000, bs.maeAllBands.mae * 1000))
            if bs.gap.count > 0 {
                lines.append(String(format: "  HOMO MAE %.3f meV, LUMO MAE %.3f meV, gap MAE %.3f meV (%d structures)",
                                    bs.homo.mae * 1000, bs.lumo.mae * 1000, bs.gap.mae * 1000, bs.gap.count))
            }
            if let t = bs.alternativeThreshold {
                lines.append(String(format: "  at overlap threshold %.0e (DeepH's): MAE %.3f meV", t, bs.alternativeMAE.mae * 1000))
            }
            lines.append(String(format: "  ghost bands (within ±%.0f eV of E_F, no DFT counterpart): %d in %d structure%@; smallest S eigenvalue %.2e",
                                BandComparison.ghostWindow, bs.ghostBands, bs.structuresWithGhosts, bs.structuresWithGhosts == 1 ? "" : "s",
                                bs.smallestOverlapEigenvalue))
        }
        lines.append("")
        lines.append("Per structure".padding(toLength: 30, withPad: " ", startingAt: 0) + "  H MAE meV  band MAE meV  gap err meV  ghosts  min S eig")
        for s in structures {
            lines.append(s.name.padding(toLength: 30, withPad: " ", startingAt: 0) + " " + Self.num(s.errors.overall.mae)
                         + "   " + Self.num(s.bands.flatMap { $0.window.count > 0 ? $0.window.mae : nil })
                         + "   " + Self.num(s.bands?.gapError)
                         + (s.bands.map { String(format: "  %6d  %9.2e", $0.ghostBands, $0.smallestOverlapEigenvalue) } ?? ""))
        }
        if !skippedReferences.isEmpty {
            lines.append("")
            lines.append("note: \(skippedReferences.count) reference structure(s) without a prediction were skipped: \(skippedReferences.prefix(5).joined(separator: ", "))\(skippedReferences.count > 5 ? ", …" : "")")
        }
        if !unmatchedPredictions.isEmpty {
            lines.append("")
            lines.append("note: \(unmatchedPredictions.count) prediction(s) without a reference structure: \(unmatchedPredictions.prefix(5).joined(separator: ", "))\(unmatchedPredictions.count > 5 ? ", …" : "")")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    // MARK: Plots

    public var parityPlot: ScatterPlot {
        let t = total
        return ScatterPlot.parity(reference: sample.reference, predicted: sample.predicted, unit: "eV",
                                  title: "H entries: predicted vs DFT (\(structures.count) structure\(structures.count == 1 ? "" : "s"))",
                                  mae: t.overall.mae, maeScale: 1000, maeUnit: "meV",
                                  extraAnnotations: [String(format: "RMSE %.4g meV", t.overall.rmse * 1000)]
                                      + (sample.seen > sample.reference.count ? ["(plot: random \(sample.reference.count) of \(sample.seen))"] : []))
    }

    /// Writes metrics.json, table.txt, parity.svg and bands/<name>.svg overlays into `directory`,
    /// each file atomically.
    public func write(to directory: URL) throws {
        let fm = FileManager.default
        try fm.createDirectory(at: directory, withIntermediateDirectories: true)
        try AtomicOutput.write(Data(json.prettyString.utf8), to: directory.appendingPathComponent("metrics.json"))
        try AtomicOutput.write(Data(text.utf8), to: directory.appendingPathComponent("table.txt"))
        try parityPlot.write(to: directory.appendingPathComponent("parity.svg"))
        var drawn = 0
        for s in structures where drawn < options.bandPlots {
            guard let chart = s.bands?.overlayChart(title: "\(s.name): DFT vs predicted bands") else { continue }
            let file = s.name.replacingOccurrences(of: "/", with: "__") + ".svg"
            try chart.write(to: directory.appendingPathComponent("bands").appendingPathComponent(file))
            drawn += 1
        }
    }
}
