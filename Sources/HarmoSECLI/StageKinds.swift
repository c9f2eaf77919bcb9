// The one list of pipeline stage kinds `harmose run` knows. A module that owns a kind (Formats,
// Graphs, Bands, and later Models/Training) defines a type conforming to Pipeline.StageKind; add
// it here and nowhere else.
import Bands
import Formats
import Foundation
import Graphs
import Evaluation
import Pipeline
import Training

public enum StageKinds {
    /// Production kinds, in the order `harmose run --list-kinds` shows them.
    public static let production: [any StageKind] = [
        IngestStage(),
        GraphStage(),
        BandsStage(),
        FeaturesStageKind(),
        TrainStageKind(),
        RefineStageKind(),
        PredictStageKind(),
        EvaluateStageKind(),
    ]

    /// Every kind this process registers. The diagnostic kinds (DiagnosticStageKinds.swift) join
    /// only when HARMOSE_DIAGNOSTIC_KINDS=1, for the CLI's own tests and benchmarks.
    public static var all: [any StageKind] {
        production + (diagnosticKindsEnabled ? DiagnosticStageKinds.all : [])
    }

    public static var diagnosticKindsEnabled: Bool {
        ProcessInfo.processInfo.environment["HARMOSE_DIAGNOSTIC_KINDS"] == "1"
    }

    public static func registry() throws -> StageRegistry { try StageRegistry(all) }
}
