// The ablation table: several prediction sets (model variants — stage 1 alone, hybrid-empirical,
// hybrid-strict, …) evaluated against one reference with identical options, one row each; optional
// columns for each variant's predictions on randomly rotated copies of the test set, evaluated
// against the rotated reference.
import Foundation
import StageAPI
import Structures

public struct AblationRow: Sendable {
    public var name: String
    public var report: EvaluationReport
    /// The variant evaluated on rotated copies, when given.
    public var rotated: EvaluationReport?

    public var hamiltonianMAE: Double { report.total.overall.mae }
    public var hamiltonianRMSE: Double { report.total.overall.rmse }
    public var bandMAE: Double? { let b = report.bandSummary; return b.structures > 0 ? b.mae.mae : nil }
    public var gapMAE: Double? { let b = report.bandSummary; return b.gap.count > 0 ? b.gap.mae : nil }
    public var rotatedHamiltonianMAE: Double? { rotated?.total.overall.mae }
    public var rotatedBandMAE: Double? { rotated.flatMap { r in let b = r.bandSummary; return b.structures > 0 ? b.mae.mae : nil } }
}

public struct AblationTable: Sendable {
    public var reference: String
    public var rotatedReference: String?
    public var rows: [AblationRow]

    public init(reference: String, rotatedReference: String? = nil, rows: [AblationRow]) {
        self.reference = reference; self.rotatedReference = rotatedReference; self.rows = rows
    }

    /// Evaluates every variant against `reference` (and, for variants named in `rotated`, their
    /// rotated predictions against `rotatedReference`). Names must be unique.
    public static func evaluate(variants: [(name: String, predictions: URL)], reference: URL,
                                rotated: [(name: String, predictions: URL)] = [], rotatedReference: URL? = nil,
                                options: EvaluationOptions = EvaluationOptions(),
                                progress: (String) -> Void = { _ in }) throws -> AblationTable {
        var seen = Set<String>()
        for v in variants where !seen.insert(v.name).inserted {
            throw EvaluationError.invalidInput(file: v.predictions.path, message: "variant name '\(v.name)' given twice")
        }
        let rotatedByName = Dictionary(rotated.map { ($0.name, $0.predictions) }, uniquingKeysWith: { a, _ in a })
        for r in rotated where !seen.contains(r.name) {
            throw EvaluationError.invalidInput(file: r.predictions.path, message: "rotated predictions for '\(r.name)', which is not one of the variants (\(variants.map(\.name).joined(separator: ", ")))")
        }
        if !rotated.isEmpty && rotatedReference == nil {
            throw EvaluationError.invalidInput(file: rotated[0].predictions.path, message: "rotated predictions need the rotated reference dataset (--rotated-ref)")
        }
        var rows: [AblationRow] = []
        for v in variants {
            progress("evaluating \(v.name): \(v.predictions.path)")
            let report = try Evaluator.evaluate(predictions: v.predictions, reference: reference, options: options)
            var rotatedReport: EvaluationReport?
            if let r = rotatedByName[v.name], let rref = rotatedReference {
                progress("evaluating \(v.name) on rotated copies: \(r.path)")
                rotatedReport = try Evaluator.evaluate(predictions: r, reference: rref, options: options)
            }
            rows.append(AblationRow(name: v.name, report: report, rotated: rotatedReport))
        }
        return AblationTable(reference: reference.path, rotatedReference: rotatedReference?.path, rows: rows)
    }

    private var hasRotated: Bool { rows.contains { $0.rotated != nil } }
    private var hasGap: Bool { rows.contains { $0.gapMAE != nil } }

    /// ablation.json: one object per variant, values in meV, null where not measured.
    public var json: JSONValue {
        [
            "format_version": .int(EvaluationReport.formatVersion),
            "reference": .string(reference),
            "rotated_reference": rotatedReference.map { .string($0) } ?? .null,
            "band_window": .string(EvaluationReport.windowDescription),
            "variants": .array(rows.map { r in
                [
                    "name": .string(r.name),
                    "predictions": .string(r.report.prediction),
                    "structures": .int(r.report.structures.count),
                    "h_mae_meV": EvaluationReport.meV(r.hamiltonianMAE),
                    "h_rmse_meV": EvaluationReport.meV(r.hamiltonianRMSE),
                    "h_onsite_mae_meV": EvaluationReport.meV(r.report.total.onsite.mae),
                    "h_offsite_mae_meV": EvaluationReport.meV(r.report.total.offsite.mae),
                    "band_mae_meV": EvaluationReport.meV(r.bandMAE),
                    "gap_mae_meV": EvaluationReport.meV(r.gapMAE),
                    "rotated_predictions": r.rotated.map { .string($0.prediction) } ?? .null,
                    "rotated_h_mae_meV": EvaluationReport.meV(r.rotatedHamiltonianMAE),
                    "rotated_band_mae_meV": EvaluationReport.meV(r.rotatedBandMAE),
                ]
            }),
        ]
    }

    /// ablation.md: a Markdown table, rows = variants.
    public var markdown: String {
        func cell(_ x: Double?) -> String {
            guard let x, x.isFinite else { return "–" }
            return String(format: "%.3f", x * 1000)
        }
        var header = ["variant", "structures", "H MAE (meV)", "H RMSE (meV)", "band MAE (meV)"]
        if hasGap { header.append("gap MAE (meV)") }
        if hasRotated { header += ["rotated H MAE (meV)", "rotated band MAE (meV)"] }
        var lines = ["| " + header.joined(separator: " | ") + " |",
                     "|" + header.enumerated().map { $0.offset == 0 ? "---" : "---:" }.joined(separator: "|") + "|"]
        for r in rows {
            var cells = [r.name, "\(r.report.structures.count)", cell(r.hamiltonianMAE), cell(r.hamiltonianRMSE), cell(r.bandMAE)]
            if hasGap { cells.append(cell(r.gapMAE)) }
            if hasRotated { cells += [cell(r.rotatedHamiltonianMAE), cell(r.rotatedBandMAE)] }
            lines.append("| " + cells.joined(separator: " | ") + " |")
        }
        var out = lines.joined(separator: "\n") + "\n"
        out += "\nReference: \(reference)"
        if let rotatedReference { out += "; rotated reference: \(rotatedReference)" }
        out += ". Band MAE: \(EvaluationReport.windowDescription), mean over structures.\n"
        return out
    }

    /// Writes ablation.json and ablation.md into `directory`, each atomically.
    public func write(to directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try AtomicOutput.write(Data(json.prettyString.utf8), to: directory.appendingPathComponent("ablation.json"))
        try AtomicOutput.write(Data(markdown.utf8), to: directory.appendingPathComponent("ablation.md"))
    }
}
