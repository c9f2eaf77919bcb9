// Pipeline stage kind `evaluate`: a predict stage's output (or any folder of predictions) against
// a reference dataset — and, given the reference's `bands` stage, against the bands it stored —
// writes metrics.json, table.txt, parity.svg and band overlays (a final report: nothing reads it).
import Foundation
import StageAPI

public struct EvaluateStageKind: StageKind {
    public init() {}
    public let name = "evaluate"
    public let summary = "Compares predicted Hamiltonians with the DFT reference: H errors (meV; overall, on/off-site, element, l and shell pairs), band errors, parity plot."
    // 2: metrics.json also has ghost bands, the smallest S eigenvalue and the band error at overlap threshold 5e-4.
    public let artifactVersion = 2
    public let parameters: [ParameterSpec] = [
        ParameterSpec("bands", .boolean, default: true, help: "compute band (or molecular orbital) energy errors"),
        ParameterSpec("bands_above", .integer, default: 4, minimum: 0, maximum: 10_000,
                      help: "bands above the occupied ones in the band-error window"),
        ParameterSpec("kpoint_density", .number, default: 30, minimum: 1, maximum: 1000,
                      help: "k-points per 1/Å on automatic k-paths (a K_PATH file in the reference folder wins); not used with reference_bands"),
        ParameterSpec("overlap_threshold", .number, default: 1e-3, minimum: 0, maximum: 1,
                      help: "drop S(k) eigen-directions below this before solving both H_DFT and H_pred (0: keep all); not used with reference_bands"),
        ParameterSpec("missing_predictions", .choice(["error", "skip"]), default: .string("error"),
                      help: "a reference structure without a prediction: fail, or leave it out (when only one split was predicted)"),
        ParameterSpec("parity_sample", .integer, default: 200_000, minimum: 0, maximum: 10_000_000,
                      help: "H entries drawn (seeded) into the parity plot; metrics use all entries"),
    ]
    public let inputs: [InputSpec] = [
        InputSpec("predictions", .pathOrStageOf(kinds: ["predict"]), help: "predicted Hamiltonians: a predict stage or a folder of structure folders with hamiltonian_pred.h5 / hamiltonians_pred.h5"),
        InputSpec("reference", .pathOrStageOf(kinds: ["ingest"]), help: "the DFT dataset the predictions are compared with (structure folders matched by name)"),
        InputSpec("reference_bands", .stage(kinds: ["bands"]), required: false,
                  help: "the bands stage of the same reference: its stored DFT bands, k-points and overlap filter are the reference (one band configuration for both sides; nothing recomputed)"),
    ]

    public func run(_ context: StageContext) throws -> [String: JSONValue] {
        var options = EvaluationOptions()
        options.computeBands = context.parameters.bool("bands")
        options.bandsAbove = context.parameters.int("bands_above")
        options.kpointDensity = context.parameters.double("kpoint_density")
        options.paritySample = context.parameters.int("parity_sample")
        options.skipMissingPredictions = context.parameters.string("missing_predictions") == "skip"
        let threshold = context.parameters.double("overlap_threshold")
        options.overlapThreshold = threshold > 0 ? threshold : nil
        options.referenceBands = context.inputs["reference_bands"]?.first
        if options.referenceBands != nil { context.log("reference bands: the bands stage's band.h5 files (its k-points and overlap filter)") }
        var report = try Evaluator.evaluate(predictions: context.input("predictions"), reference: context.input("reference"),
                                            options: options) { done, total in context.progress(done: done, total: total) }
        // Paths inside the artifact store are written relative to it (e.g. predict/<id>/water/…),
        // so the same inputs give the same bytes wherever outputs/ lives.
        let store = context.outputDirectory.deletingLastPathComponent().deletingLastPathComponent().standardizedFileURL.path + "/"
        func relative(_ path: String) -> String { path.hasPrefix(store) ? String(path.dropFirst(store.count)) : path }
        report.prediction = relative(report.prediction)
        report.reference = relative(report.reference)
        for i in report.structures.indices {
            report.structures[i].referencePath = relative(report.structures[i].referencePath)
            report.structures[i].predictionPath = relative(report.structures[i].predictionPath)
        }
        try report.write(to: context.outputDirectory)
        for line in report.text.split(separator: "\n") { context.log(String(line)) }
        let t = report.total, b = report.bandSummary
        return [
            "structures": .int(report.structures.count),
            "skipped_references": .int(report.skippedReferences.count),
            "h_mae_meV": EvaluationReport.meV(t.overall.mae),
            "h_rmse_meV": EvaluationReport.meV(t.overall.rmse),
            "h_onsite_mae_meV": EvaluationReport.meV(t.onsite.mae),
            "h_offsite_mae_meV": EvaluationReport.meV(t.offsite.mae),
            "band_mae_meV": b.structures > 0 ? EvaluationReport.meV(b.mae.mae) : .null,
        ]
    }
}
